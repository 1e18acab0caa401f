"""The functional environment core, in the style of gymnax 1.x.

An :class:`Environment` holds no mutable state. Everything that changes lives in a frozen ``EnvState``
pytree and everything that configures a task lives in a frozen ``EnvParams`` pytree::

    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

Actions: ``step`` and ``step_env`` pass a task only actions of its space: an action is cast to the
space's dtype (floats truncated towards zero) and clipped into the space (:meth:`spaces.Space.clip`),
the same for every task, and an action of the wrong shape raises ``ValueError`` while tracing. Nothing
is checked at run time, so a jitted step costs no more; wrap an environment in
:class:`mnemax.envs.core.wrappers.CheckedActions` to have actions outside the space refused instead.

``step`` auto-resets: when an episode ends, the returned ``obs``/``state`` already belong to the next
episode and ``info["final_obs"]`` holds the last observation of the finished one. Under ``vmap`` every
copy computes a fresh initial state at every step (``jnp.where`` keeps it only where an episode ended);
for tasks whose reset is costly (Mystery Path searches for a path) ``wrappers.Vmap(..., reset_pool=K)``
draws initial states ahead, K per copy at a time, and passes them in as ``reset_state``. Under ``jit`` the
final observation costs nothing unless it is used (XLA drops unused outputs). ``reset_env`` and
``step_env`` are the same functions without auto-reset (the gymnasium single-env adapter uses them).

A task implements three pure functions: :meth:`Environment.initial_state`, :meth:`Environment.transition`
and :meth:`Environment.observe`, plus its spaces. The base class counts time and truncates episodes at
``params.max_steps_in_episode``, so tasks never handle time limits themselves. Unlike gymnax, where a task
overrides ``reset_env`` and ``step_env``, here those are derived from the three: a task that overrode them
would lose the time limit and the auto-reset without a word, so a subclass that does fails when it is
defined, with a message that points to ``initial_state`` and ``transition``.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp
from flax import struct

from mnemax.envs.core import spaces
from mnemax.envs.core.params import check_params, param


@struct.dataclass
class EnvState:
    """Base of every state: ``time`` counts the steps taken in the current episode."""

    time: jax.Array


# A time limit that is never reached: tasks that end their episodes themselves set it, and trainers
# skip the bootstrapping of truncated episodes for them.
NO_TIME_LIMIT = 1 << 30


@struct.dataclass
class EnvParams:
    """Base of every parameter set: episodes are truncated after ``max_steps_in_episode`` steps."""

    max_steps_in_episode: int = param(1000, ge=1)


StateT = TypeVar("StateT", bound=EnvState)
ParamsT = TypeVar("ParamsT", bound=EnvParams)


class Environment(Generic[StateT, ParamsT]):
    """Base class of all mnemax environments. Subclasses define the task; this class defines the API.

    Every task reports ``info["success"]`` (bool; meaningful on the step that ends an episode) so that
    episode statistics, logging and tests treat all tasks alike.
    """

    # What a gymnax task would override, and what a mnemax task implements instead.
    DERIVED_METHODS = {
        "reset_env": "initial_state(key, params) -> state (the observation comes from observe)",
        "step_env": "transition(key, state, action, params) -> (next_state, reward, terminated, info)",
    }

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, instead in Environment.DERIVED_METHODS.items():
            if name in vars(cls):
                raise TypeError(
                    f"{cls.__name__} overrides {name}, which mnemax derives (with the time limit and the "
                    f"auto-reset); implement {instead} instead"
                )

    # ----------------------------------------------------------------- implemented by each task
    @property
    def default_params(self) -> ParamsT:
        raise NotImplementedError

    def initial_state(self, key: jax.Array, params: ParamsT) -> StateT:
        """A fresh episode's state (with ``time == 0``)."""
        raise NotImplementedError

    def transition(
        self, key: jax.Array, state: StateT, action: Any, params: ParamsT
    ) -> tuple[StateT, jax.Array, jax.Array, dict[str, jax.Array]]:
        """One step of the dynamics: ``(next_state, reward, terminated, info)``; ``time`` is handled here."""
        raise NotImplementedError

    def observe(self, state: StateT, params: ParamsT) -> Any:
        """The agent's observation of ``state``."""
        raise NotImplementedError

    def observation_space(self, params: ParamsT) -> spaces.Space:
        raise NotImplementedError

    def action_space(self, params: ParamsT) -> spaces.Space:
        raise NotImplementedError

    def render(self, state: StateT, params: ParamsT) -> jax.Array:
        """A ``uint8 [H, W, 3]`` picture of ``state`` for humans and videos (pure JAX, jit-able)."""
        raise NotImplementedError

    def validate_params(self, params: ParamsT) -> None:
        """Raise ``ValueError`` for parameters the task cannot run with. Called by ``make``.

        This checks every field against its declaration (:mod:`mnemax.envs.core.params`: kind, range, variant);
        tasks extend it with the relations between fields.
        """
        check_params(params, self.default_params, self.variant, self.name)

    @property
    def variant(self) -> frozenset[str]:
        """Tags of the variant this instance is (e.g. ``{"grid", "endless"}``); parameters declared
        ``only`` for a tag missing here must keep their defaults."""
        return frozenset()

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def unwrapped(self) -> Environment:
        return self

    # ----------------------------------------------------------------- the functional API
    def reset_env(self, key: jax.Array, params: ParamsT | None = None) -> tuple[Any, StateT]:
        """Start an episode: ``(obs, state)``."""
        params = self.default_params if params is None else params
        state = self.initial_state(key, params)
        return self.observe(state, params), state

    def step_env(self, key: jax.Array, state: StateT, action: Any, params: ParamsT | None = None):
        """One step without auto-reset: ``(obs, state, reward, terminated, truncated, info)``."""
        params = self.default_params if params is None else params
        key_step, _ = jax.random.split(key)  # the same transition key as `step` uses
        state, reward, terminated, truncated, info = self._advance(key_step, state, action, params)
        return self.observe(state, params), state, reward, terminated, truncated, info

    def _advance(self, key, state, action, params):
        action = self.action_space(params).clip(action)  # one rule for actions outside the space
        next_state, reward, terminated, info = self.transition(key, state, action, params)
        next_state = next_state.replace(time=state.time + 1)
        terminated = jnp.asarray(terminated, bool)
        truncated = (next_state.time >= params.max_steps_in_episode) & ~terminated
        return next_state, jnp.asarray(reward, jnp.float32), terminated, truncated, info

    def reset(self, key: jax.Array, params: ParamsT | None = None) -> tuple[Any, StateT]:
        """Start an episode: ``(obs, state)``. Same as :meth:`reset_env`."""
        return self.reset_env(key, params)

    def step(
        self, key: jax.Array, state: StateT, action: Any, params: ParamsT | None = None, reset_state: StateT | None = None
    ):
        """One step with auto-reset: ``(obs, state, reward, terminated, truncated, info)``.

        When ``terminated | truncated``, ``obs`` and ``state`` start the next episode and
        ``info["final_obs"]`` is the last observation of the episode that ended. The next episode starts
        from ``reset_state`` when one is given (an initial state drawn ahead of time, as
        :class:`mnemax.envs.core.wrappers.Vmap` does with ``reset_pool``), otherwise from a fresh
        ``initial_state`` drawn from ``key``.
        """
        params = self.default_params if params is None else params
        key_step, key_reset = jax.random.split(key)
        next_state, reward, terminated, truncated, info = self._advance(key_step, state, action, params)
        done = terminated | truncated
        fresh = self.initial_state(key_reset, params) if reset_state is None else reset_state
        state = jax.tree_util.tree_map(lambda a, b: jnp.where(done, a, b), fresh, next_state)
        info = dict(info, final_obs=self.observe(next_state, params))
        return self.observe(state, params), state, reward, terminated, truncated, info
