"""Greedy evaluation of a trained agent: success over many episodes, and frames for a video."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mnemax.agents import distributions
from mnemax.envs.core import wrappers
from mnemax.train.on_policy import time_major


def greedy_episodes(algorithm, params, key: jax.Array, num_episodes: int, max_steps: int = 100_000):
    """Play one greedy episode in each of ``num_episodes`` copies: ``(success_rate, mean_return)``.

    Episodes that have not ended after ``max_steps`` count as unsuccessful.
    """
    env, env_params = wrappers.Vmap(algorithm.env, num_episodes), algorithm.eval_env_params
    key, reset_key = jax.random.split(key)
    obs, env_state = env.reset(reset_key, env_params)
    zeros = jnp.zeros(num_episodes)
    init = (obs, env_state, algorithm.network.initialize_carry(num_episodes), jnp.ones(num_episodes, bool),
            zeros.astype(bool), zeros, zeros.astype(bool), key, jnp.int32(0))  # fmt: skip

    def cond(s):
        return ~jnp.all(s[4]) & (s[8] < max_steps)

    def body(s):
        obs, env_state, carry, reset, finished, ret, success, key, t = s
        key, step_key = jax.random.split(key)
        carry, action = _act(algorithm, params, carry, obs, reset)
        obs, env_state, reward, terminated, truncated, info = env.step(step_key, env_state, action, env_params)
        done = terminated | truncated
        ret = ret + jnp.where(finished, 0.0, reward)
        success = success | (~finished & done & info["success"])
        return obs, env_state, carry, done, finished | done, ret, success, key, t + 1

    final = jax.lax.while_loop(cond, body, init)
    return final[6].mean(), final[5].mean()


def greedy_frames(algorithm, params, key: jax.Array, num_steps: int) -> jax.Array:
    """``uint8 [num_steps, H, W, 3]``: the rendered states of one greedy rollout (episodes back to back)."""
    env, env_params = wrappers.Vmap(algorithm.env, 1), algorithm.eval_env_params
    key, reset_key = jax.random.split(key)
    obs, env_state = env.reset(reset_key, env_params)

    def step(s, key):
        obs, env_state, carry, reset = s
        frame = env.render(env_state, env_params)[0]
        carry, action = _act(algorithm, params, carry, obs, reset)
        obs, env_state, _, terminated, truncated, _ = env.step(key, env_state, action, env_params)
        return (obs, env_state, carry, terminated | truncated), frame

    init = (obs, env_state, algorithm.network.initialize_carry(1), jnp.ones(1, bool))
    _, frames = jax.lax.scan(step, init, jax.random.split(key, num_steps))
    return frames


def _act(algorithm, params, carry, obs, reset):
    """The greedy action of a batch of copies for one step."""
    carry, logits, _ = algorithm.network.apply(params, carry, time_major(obs), reset[None])
    return carry, algorithm.env_action(distributions.mode(logits[0]))
