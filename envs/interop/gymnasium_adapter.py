"""gymnasium ``Env`` and ``VectorEnv`` backed by the jitted functional core.

These are the entry points behind ``gymnasium.make("mnemax/<id>")`` and
``gymnasium.make_vec("mnemax/<id>", num_envs=N)``. The vector env steps all N copies in one jitted,
vmapped call (no Python loop over environments) and auto-resets in the same step (gymnasium's
``AutoresetMode.SAME_STEP``): ``info["final_obs"]`` holds the last observation of finished episodes.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mnemax.envs.core import wrappers
from mnemax.envs.core.registration import make


def _to_numpy(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def _check_action(space: gymnasium.Space, action) -> None:
    candidate = np.asarray(action) if isinstance(action, (list, tuple)) else action
    if not space.contains(candidate):
        raise ValueError(f"action {action!r} is outside the action space {space}")


def _seed_key(np_random: np.random.Generator) -> jax.Array:
    """A JAX key drawn from gymnasium's seeded generator, so ``reset(seed=s)`` is reproducible."""
    return jax.random.key(int(np_random.integers(0, 2**32 - 1, dtype=np.uint64)))


def _single_functions(env_id: str, params: dict):
    """``(env, params, reset_env, step_env, render)``, jitted; shared by every adapter of the same id and
    parameters, so making an environment again does not compile again."""
    try:
        return _cached_single_functions(env_id, tuple(sorted(params.items())))
    except TypeError:  # unhashable parameter values (e.g. lists): build without the cache
        return _build_single_functions(env_id, tuple(params.items()))


def _build_single_functions(env_id: str, params: tuple):
    env, env_params = make(env_id, **dict(params))
    return env, env_params, jax.jit(env.reset_env), jax.jit(env.step_env), jax.jit(env.render)


_cached_single_functions = functools.lru_cache(maxsize=64)(_build_single_functions)


class GymnasiumEnv(gymnasium.Env):
    """One mnemax environment as a ``gymnasium.Env``.

    Args:
        env_id: a registered id (with or without ``mnemax/``).
        render_mode: ``None``, ``"rgb_array"`` (``render()`` returns the uint8 frame) or ``"human"``
            (a pygame window).
        **params: parameter overrides, as for :func:`mnemax.envs.make`.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 10}

    def __init__(self, env_id: str, render_mode: str | None = None, **params):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.env, self.params, self._reset, self._step, self._render = _single_functions(env_id, params)
        self.render_mode = render_mode
        self.observation_space = self.env.observation_space(self.params).to_gymnasium()
        self.action_space = self.env.action_space(self.params).to_gymnasium()
        self._key = None
        self._state = None
        self._window = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._key = _seed_key(self.np_random)
        self._key, key = jax.random.split(self._key)
        obs, self._state = self._reset(key, self.params)
        if self.render_mode == "human":
            self.render()
        return _to_numpy(obs), {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        _check_action(self.action_space, action)
        self._key, key = jax.random.split(self._key)
        obs, self._state, reward, terminated, truncated, info = self._step(
            key, self._state, jnp.asarray(action), self.params
        )
        if self.render_mode == "human":
            self.render()
        info = {k: v.item() if np.ndim(v) == 0 else v for k, v in _to_numpy(info).items()}
        return _to_numpy(obs), float(reward), bool(terminated), bool(truncated), info

    def render(self):
        if self.render_mode is None or self._state is None:
            return None
        frame = np.asarray(self._render(self._state, self.params))
        if self.render_mode == "rgb_array":
            return frame
        from mnemax.envs.tools.human_render import Window  # pygame only when a window is wanted

        if self._window is None:
            self._window = Window(f"mnemax {self.env.name}", frame.shape)
        self._window.show(frame, fps=self.metadata["render_fps"])
        return None

    def close(self):
        if self._window is not None:
            self._window.close()
            self._window = None


class GymnasiumVectorEnv(VectorEnv):
    """``num_envs`` copies of a mnemax environment stepped by one jitted, vmapped call.

    Observations, rewards and flags come back as NumPy arrays with a leading ``num_envs`` axis.
    ``reset_pool=K`` draws the initial states of each copy's next episodes ahead, K at a time
    (:class:`mnemax.envs.core.wrappers.Vmap`): faster where resets are costly, e.g.
    ``gymnasium.make_vec("mnemax/MysteryPath-Grid-v0", num_envs=64, reset_pool=16)``.
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env_id: str, num_envs: int = 1, render_mode: str | None = None, reset_pool: int = 0, **params):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.env, self.params = make(env_id, **params)
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.single_observation_space = self.env.observation_space(self.params).to_gymnasium()
        self.single_action_space = self.env.action_space(self.params).to_gymnasium()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        vec_env = wrappers.Vmap(self.env, self.num_envs, reset_pool=reset_pool)
        self._reset, self._step, self._render = jax.jit(vec_env.reset), jax.jit(vec_env.step), jax.jit(vec_env.render)
        self._key = None
        self._state = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._key, key = jax.random.split(_seed_key(self.np_random))
        obs, self._state = self._reset(key, self.params)
        return _to_numpy(obs), {}

    def step(self, actions):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        _check_action(self.action_space, np.asarray(actions))
        self._key, key = jax.random.split(self._key)
        obs, self._state, reward, terminated, truncated, info = self._step(
            key, self._state, jnp.asarray(actions), self.params
        )
        obs, reward, terminated, truncated, info = _to_numpy((obs, reward, terminated, truncated, info))
        done = terminated | truncated
        final_obs = info.pop("final_obs")
        infos = {key: value for key, value in info.items()}
        infos.update({f"_{key}": np.ones(self.num_envs, bool) for key in info})
        if done.any():
            # gymnasium's layout: an object array with the final observation where an episode ended.
            infos["final_obs"] = np.empty(self.num_envs, dtype=object)
            for i in np.flatnonzero(done):
                infos["final_obs"][i] = final_obs[i]
            infos["_final_obs"] = done
        return obs, reward, terminated, truncated, infos

    def render(self):
        if self.render_mode != "rgb_array" or self._state is None:
            return None
        return tuple(np.asarray(self._render(self._state, self.params)))
