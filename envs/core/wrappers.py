"""Wrappers around the functional core. Each keeps the ``reset``/``step`` API, so they stack.

``EpisodeStatistics`` adds episode return, length and success to ``info``; ``Vmap`` batches an
environment; ``FlattenObservation`` and ``PreviousActionReward`` reshape what the agent sees;
``CheckedActions`` refuses actions outside the action space (which ``step`` otherwise clips).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mnemax.envs.core import spaces
from mnemax.envs.core.environment import Environment
from mnemax.envs.core.rarely import rarely


class Wrapper:
    """Delegates every attribute it does not override to the wrapped environment (or wrapper)."""

    def __init__(self, env: Environment | Wrapper):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    @property
    def unwrapped(self) -> Environment:
        return getattr(self._env, "unwrapped", self._env)


class CheckedActions(Wrapper):
    """Refuses actions outside the action space, where an environment would clip them.

    A wrong shape or a float action for a discrete space raises while tracing; an action out of range
    fails a ``jax.experimental.checkify`` check. Called eagerly, ``step`` raises at once; under ``jit``
    (and ``vmap``, ``scan``) the stepping function must be functionalized::

        env = CheckedActions(env)
        step = jax.jit(checkify.checkify(env.step))
        error, (obs, state, reward, terminated, truncated, info) = step(key, state, action, params)
        error.throw()  # JaxRuntimeError (a ValueError) naming the action and the space
    """

    def step(self, key, state, action, params=None, reset_state=None):
        params = self.default_params if params is None else params
        self._env.action_space(params).check(action)
        return self._env.step(key, state, action, params, reset_state)

    def step_env(self, key, state, action, params=None):
        params = self.default_params if params is None else params
        self._env.action_space(params).check(action)
        return self._env.step_env(key, state, action, params)


@struct.dataclass
class EpisodeStatisticsState:
    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array


class EpisodeStatistics(Wrapper):
    """Tracks the running return and length and reports them when an episode ends.

    ``info`` gains ``returned_episode`` (bool: an episode ended at this step) and, valid where it is
    True, ``returned_episode_return``, ``returned_episode_length`` and ``returned_episode_success``.
    """

    def reset(self, key, params=None):
        obs, env_state = self._env.reset(key, params)
        return obs, EpisodeStatisticsState(env_state, jnp.float32(0.0), jnp.int32(0))

    def step(self, key, state, action, params=None, reset_state=None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params, reset_state
        )
        done = terminated | truncated
        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1
        info = dict(
            info,
            returned_episode=done,
            returned_episode_return=episode_return,
            returned_episode_length=episode_length,
            returned_episode_success=done & info["success"],
        )
        state = EpisodeStatisticsState(
            env_state,
            jnp.where(done, 0.0, episode_return),
            jnp.where(done, 0, episode_length),
        )
        return obs, state, reward, terminated, truncated, info


@struct.dataclass
class PooledState:
    """The state of :class:`Vmap` with a reset pool: the copies' states, ``spares`` (``[num_envs, K]``
    initial states of the innermost environment, drawn ahead) and ``used`` (``int32[num_envs]``: how
    many of its K spares each copy has started an episode from since the pool was last drawn)."""

    envs: Any
    spares: Any
    used: jax.Array


class Vmap(Wrapper):
    """``num_envs`` independent copies stepped together; keys are split inside, params shared.

    ``reset_pool=K`` (> 0) draws the initial states of the copies' next episodes ahead of time, K per
    copy, and draws all of them again (one batched ``initial_state`` of ``K * num_envs``) only once some
    copy has used up its K. Without it every copy computes a fresh initial state at every step and keeps
    it only where an episode ended, which is the larger part of a step where the reset is costly
    (Mystery Path's path search: a loop of 45 dependent iterations). Where the reset is cheap and the state
    large it costs more than it saves: each step gathers every copy's spare (on a 2-core CPU a
    context-editing task's 512 copies step 2x slower with a pool of 16). Episodes are independent either
    way; only which random numbers start them differs. Spares are drawn with the ``params`` of the step
    that draws them, so a change of ``params`` reaches the next K episodes of a copy late at most.
    """

    def __init__(self, env: Environment, num_envs: int, reset_pool: int = 0):
        super().__init__(env)
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if reset_pool < 0:
            raise ValueError(f"reset_pool must be >= 0 (0: no pool), got {reset_pool}")
        self.num_envs = int(num_envs)
        self.reset_pool = int(reset_pool)

    def _draw_spares(self, key, params):
        params = self.unwrapped.default_params if params is None else params
        keys = jax.random.split(key, (self.num_envs, self.reset_pool))  # copies first, as every state's leaves
        return jax.vmap(jax.vmap(self.unwrapped.initial_state, in_axes=(0, None)), in_axes=(0, None))(keys, params)

    def reset(self, key, params=None):
        if self.reset_pool:
            key, pool_key = jax.random.split(key)
        obs, state = jax.vmap(self._env.reset, in_axes=(0, None))(jax.random.split(key, self.num_envs), params)
        if not self.reset_pool:
            return obs, state
        return obs, PooledState(state, self._draw_spares(pool_key, params), jnp.zeros(self.num_envs, jnp.int32))

    def step(self, key, state, action, params=None):
        if not self.reset_pool:
            keys = jax.random.split(key, self.num_envs)
            return jax.vmap(self._env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)
        key, pool_key = jax.random.split(key)
        keys = jax.random.split(key, self.num_envs)
        # Each copy's next spare, indexed copy by copy (a gather over both axes would make a sharded batch
        # collect every device's spares).
        next_spare = lambda spares, used: jax.tree_util.tree_map(lambda s: s[used], spares)  # noqa: E731
        spare = jax.vmap(next_spare)(state.spares, state.used)
        obs, envs, reward, terminated, truncated, info = jax.vmap(self._env.step, in_axes=(0, 0, 0, None, 0))(
            keys, state.envs, action, params, spare
        )
        used = state.used + (terminated | truncated)
        # Every copy keeps a spare for its next step: all are drawn again once one copy has used its last.
        # `rarely`, not `lax.cond`: under a trainer's vmap over seeds a cond would become a select that
        # draws every spare at every step; this way only the seeds whose spares are used up draw again.
        spares, used = rarely(jnp.any(used == self.reset_pool), self._redraw, (state.spares, used), pool_key, params)
        return obs, PooledState(envs, spares, used), reward, terminated, truncated, info

    def _redraw(self, key, params):
        return self._draw_spares(key, params), jnp.zeros(self.num_envs, jnp.int32)

    def render(self, state, params):
        envs = state.envs if isinstance(state, PooledState) else state
        return jax.vmap(self._env.render, in_axes=(0, None))(envs, params)


class FlattenObservation(Wrapper):
    """Observations reshaped to one float32 vector."""

    def observation_space(self, params):
        space = self._env.observation_space(params)
        if not isinstance(space, spaces.Box):
            raise TypeError(f"FlattenObservation needs a Box observation space, got {space}")
        size = int(np.prod(space.shape))
        return spaces.Box(space.low.reshape(size), space.high.reshape(size), (size,), jnp.float32)

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return _flat(obs), state

    def step(self, key, state, action, params=None, reset_state=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params, reset_state)
        info = dict(info, final_obs=_flat(info["final_obs"]))
        return _flat(obs), state, reward, terminated, truncated, info


def _flat(obs):
    return jnp.asarray(obs, jnp.float32).reshape(-1)


class PreviousActionReward(Wrapper):
    """Appends the one-hot previous action and the previous reward to a vector observation.

    At the first step of an episode both are zero. For ``MultiDiscrete`` actions the one-hots of all
    components are concatenated.
    """

    def _action_sizes(self, params) -> tuple[int, ...]:
        space = self._env.action_space(params)
        if isinstance(space, spaces.Discrete):
            return (space.n,)
        if isinstance(space, spaces.MultiDiscrete):
            return tuple(int(n) for n in space.nvec)
        raise TypeError(f"PreviousActionReward needs a discrete action space, got {space}")

    def observation_space(self, params):
        space = self._env.observation_space(params)
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise TypeError(f"PreviousActionReward needs a vector (1-D Box) observation, got {space}")
        extra = sum(self._action_sizes(params)) + 1
        low = np.concatenate([space.low, np.zeros(extra - 1), [-np.inf]]).astype(np.float32)
        high = np.concatenate([space.high, np.ones(extra - 1), [np.inf]]).astype(np.float32)
        return spaces.Box(low, high, (space.shape[0] + extra,), jnp.float32)

    def _append(self, obs, action, reward, params):
        sizes = self._action_sizes(params)
        action = jnp.reshape(action, (len(sizes),))
        onehots = [jax.nn.one_hot(action[i], n) for i, n in enumerate(sizes)]
        return jnp.concatenate([jnp.asarray(obs, jnp.float32), *onehots, jnp.reshape(reward, (1,))])

    def reset(self, key, params=None):
        params = self.default_params if params is None else params
        obs, state = self._env.reset(key, params)
        n = len(self._action_sizes(params))
        return self._append(obs, jnp.zeros(n, jnp.int32) - 1, jnp.float32(0.0), params), state

    def step(self, key, state, action, params=None, reset_state=None):
        params = self.default_params if params is None else params
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params, reset_state)
        action = self._env.action_space(params).clip(action)  # the action the task acted on
        done = terminated | truncated
        # one_hot(-1) is all zeros: the new episode's first observation carries no previous action.
        n = len(self._action_sizes(params))
        start = self._append(obs, jnp.zeros(n, jnp.int32) - 1, jnp.float32(0.0), params)
        cont = self._append(obs, action, reward, params)
        info = dict(info, final_obs=self._append(info["final_obs"], action, reward, params))
        return jnp.where(done, start, cont), state, reward, terminated, truncated, info
