"""Exhaustive search over memoryless policies: the proof that a task needs memory.

A memoryless (reactive) policy picks its action from the current observation alone. For tasks whose
observations take few distinct values, every deterministic reactive policy (one action per distinct
observation) can be evaluated; the best of them bounds what an agent without memory achieves on
these tasks. The tests compare that bound with chance and with a scripted policy that remembers.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np


def rollout(env, params, policy_fn, policy_params, num_episodes: int, max_steps: int, seed: int = 0):
    """Play one episode per copy with ``policy_fn(policy_params, obs, memory) -> (action, memory)``.

    Returns per-episode ``(success, return, finished, memory)`` arrays; steps after an episode's end
    are masked out. ``memory`` is a float32[8] scratch vector the policy may use (zeros at the start).
    """

    def one_episode(key):
        key, reset_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def body(carry, _):
            obs, state, memory, key, finished, ret, success = carry
            key, step_key = jax.random.split(key)
            action, memory = policy_fn(policy_params, obs, memory)
            obs, state, reward, terminated, truncated, info = env.step(step_key, state, action, params)
            live = ~finished
            ret = ret + jnp.where(live, reward, 0.0)
            success = success | (live & (terminated | truncated) & info["success"])
            finished = finished | terminated | truncated
            return (obs, state, memory, key, finished, ret, success), None

        init = (obs, state, jnp.zeros(8), key, jnp.bool_(False), jnp.float32(0.0), jnp.bool_(False))
        (_, _, memory, _, finished, ret, success), _ = jax.lax.scan(body, init, None, length=max_steps)
        return success, ret, finished, memory

    keys = jax.random.split(jax.random.key(seed), num_episodes)
    return jax.vmap(one_episode)(keys)


def mean_success(env, params, policy_fn, num_episodes: int, max_steps: int, policy_params=None, seed: int = 0):
    """Mean success and mean return of a policy; fails if an episode does not end within max_steps."""
    run = jax.jit(lambda p: rollout(env, params, policy_fn, p, num_episodes, max_steps, seed))
    success, ret, finished, _ = run(policy_params)
    assert bool(jnp.all(finished)), "episodes did not end within max_steps"
    return float(jnp.mean(success)), float(jnp.mean(ret))


def best_memoryless(env, params, observations, num_actions: int, num_episodes: int, max_steps: int):
    """The best mean success over all deterministic maps {distinct observation -> action}.

    ``observations`` lists every distinct observation the task can emit; meeting an unlisted one fails
    the search, so a wrong list cannot make the bound look better than it is.
    Returns ``(best_success, best_table)``.
    """
    table_obs = jnp.asarray(np.stack(observations), jnp.float32)
    tables = jnp.asarray(list(itertools.product(range(num_actions), repeat=len(observations))), jnp.int32)

    def policy(actions, obs, memory):
        match = jnp.all(table_obs == jnp.asarray(obs, jnp.float32)[None], axis=tuple(range(1, table_obs.ndim)))
        return actions[jnp.argmax(match)], memory.at[0].add((~match.any()).astype(jnp.float32))

    def evaluate(actions):
        success, _, finished, memory = rollout(env, params, policy, actions, num_episodes, max_steps)
        return jnp.mean(success), jnp.all(finished), jnp.max(memory[:, 0])

    success, finished, unknown = jax.jit(jax.vmap(evaluate))(tables)
    assert bool(jnp.all(finished)), "episodes did not end within max_steps"
    assert float(unknown.max()) == 0.0, "the task emitted an observation missing from the list"
    best = int(jnp.argmax(success))
    return float(success[best]), np.asarray(tables[best])
