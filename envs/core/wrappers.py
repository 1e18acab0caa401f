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

    def step(self, key, state, action, params=None):
        params = self.default_params if params is None else params
        self._env.action_space(params).check(action)
        return self._env.step(key, state, action, params)

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

    def step(self, key, state, action, params=None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(key, state.env_state, action, params)
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


class Vmap(Wrapper):
    """``num_envs`` independent copies stepped together; keys are split inside, params shared."""

    def __init__(self, env: Environment, num_envs: int):
        super().__init__(env)
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = int(num_envs)

    def reset(self, key, params=None):
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self._env.reset, in_axes=(0, None))(keys, params)

    def step(self, key, state, action, params=None):
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self._env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)

    def render(self, state, params):
        return jax.vmap(self._env.render, in_axes=(0, None))(state, params)


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

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
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

    def step(self, key, state, action, params=None):
        params = self.default_params if params is None else params
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        action = self._env.action_space(params).clip(action)  # the action the task acted on
        done = terminated | truncated
        # one_hot(-1) is all zeros: the new episode's first observation carries no previous action.
        n = len(self._action_sizes(params))
        start = self._append(obs, jnp.zeros(n, jnp.int32) - 1, jnp.float32(0.0), params)
        cont = self._append(obs, action, reward, params)
        info = dict(info, final_obs=self._append(info["final_obs"], action, reward, params))
        return jnp.where(done, start, cont), state, reward, terminated, truncated, info
