"""API tests that every registered environment must pass (parametrized from the registry)."""

import functools
import subprocess
import sys

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mnemax.envs
from mnemax.envs import wrappers

IDS = mnemax.envs.registered_ids()
NUM_ENVS, NUM_STEPS = 16, 96


def _random_rollout(env_id, seed, num_envs=NUM_ENVS, num_steps=NUM_STEPS):
    env, params, run = _compiled_rollout(env_id, num_envs, num_steps)
    return env, params, run(jax.random.key(seed))


@functools.lru_cache(maxsize=None)
def _compiled_rollout(env_id, num_envs, num_steps):
    """The jitted rollout of ``env_id`` (compiled once, shared by the tests that roll it out)."""
    env, params = mnemax.envs.make(env_id)
    vec = wrappers.Vmap(env, num_envs)
    action_space = env.action_space(params)

    def run(key):
        key, reset_key = jax.random.split(key)
        obs, state = vec.reset(reset_key, params)

        def body(carry, key):
            obs, state = carry
            act_key, step_key = jax.random.split(key)
            action = jax.vmap(action_space.sample)(jax.random.split(act_key, num_envs))
            next_obs, state, reward, terminated, truncated, info = vec.step(step_key, state, action, params)
            return (next_obs, state), (obs, action, reward, terminated, truncated, info["success"])

        _, trajectory = jax.lax.scan(body, (obs, state), jax.random.split(key, num_steps))
        return trajectory

    return env, params, jax.jit(run)


@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id):
    env = gymnasium.make(env_id, render_mode="rgb_array")
    check_env(env.unwrapped)
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


@pytest.mark.parametrize("env_id", IDS)
def test_same_key_same_trajectory(env_id):
    _, _, first = _random_rollout(env_id, seed=3)
    _, _, again = _random_rollout(env_id, seed=3)
    _, _, other = _random_rollout(env_id, seed=4)
    jax.tree_util.tree_map(np.testing.assert_array_equal, first, again)
    assert not np.array_equal(first[1], other[1])


@pytest.mark.parametrize("env_id", IDS)
def test_observations_in_space_and_rewards_finite(env_id):
    env, params, (obs, _, reward, terminated, truncated, success) = _random_rollout(env_id, seed=0)
    space = env.observation_space(params)
    flat = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), obs)
    assert bool(jnp.all(jax.vmap(space.contains)(flat)))
    assert bool(jnp.all(jnp.isfinite(reward)))
    assert not bool(jnp.any(terminated & truncated))
    assert not bool(jnp.any(success & ~(terminated | truncated))), "success is reported only when episodes end"


@pytest.mark.parametrize("env_id", IDS)
def test_auto_reset(env_id):
    """`step` equals `step_env` until an episode ends; then the final observation moves to info and
    the returned state is a fresh episode (time 0, observation consistent with the state)."""
    env, params = mnemax.envs.make(env_id)
    action_space = env.action_space(params)
    key = jax.random.key(0)
    obs, state = env.reset(key, params)
    step, step_env = jax.jit(env.step), jax.jit(env.step_env)
    observe = jax.jit(env.observe)
    ended = 0
    for t in range(400):
        key, act_key, step_key = jax.random.split(key, 3)
        action = action_space.sample(act_key)
        obs_auto, state_auto, reward, term, trunc, info = step(step_key, state, action, params)
        obs_plain, state_plain, reward_plain, term_plain, trunc_plain, _ = step_env(step_key, state, action, params)
        assert float(reward) == float(reward_plain) and bool(term) == bool(term_plain) and bool(trunc) == bool(trunc_plain)
        jax.tree_util.tree_map(np.testing.assert_array_equal, info["final_obs"], obs_plain)
        if bool(term | trunc):
            ended += 1
            assert int(state_auto.time) == 0
            jax.tree_util.tree_map(np.testing.assert_array_equal, obs_auto, observe(state_auto, params))
        else:
            jax.tree_util.tree_map(np.testing.assert_array_equal, obs_auto, obs_plain)
        state = state_auto
        if ended >= 3:
            break


@pytest.mark.parametrize("env_id", IDS)
def test_episode_statistics(env_id):
    env, params = mnemax.envs.make(env_id)
    stats = wrappers.EpisodeStatistics(env)
    action_space = env.action_space(params)

    def body(carry, key):
        state = carry
        act_key, step_key = jax.random.split(key)
        _, state, reward, term, trunc, info = stats.step(step_key, state, action_space.sample(act_key), params)
        return state, (reward, term | trunc, info)

    _, state = stats.reset(jax.random.key(0), params)
    _, (reward, done, info) = jax.jit(lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.key(1), 300)))(state)
    np.testing.assert_array_equal(info["returned_episode"], done)
    ends = np.flatnonzero(np.asarray(done))
    start = 0
    for end in ends:
        np.testing.assert_allclose(info["returned_episode_return"][end], np.sum(reward[start : end + 1]), rtol=1e-5, atol=1e-5)
        assert int(info["returned_episode_length"][end]) == end + 1 - start
        start = end + 1


@pytest.mark.parametrize("env_id", IDS)
def test_render_is_jittable_and_vmappable(env_id):
    env, params = mnemax.envs.make(env_id)
    keys = jax.random.split(jax.random.key(0), 3)
    _, states = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    frames = jax.jit(jax.vmap(env.render, in_axes=(0, None)))(states, params)
    assert frames.dtype == jnp.uint8 and frames.ndim == 4 and frames.shape[-1] == 3


def test_unknown_id_lists_close_matches():
    with pytest.raises(ValueError, match="Did you mean: mnemax/TMaze-Passive-v0"):
        mnemax.envs.make("mnemax/TMaze-Pasive-v0")


def test_unknown_and_invalid_params_raise_at_make_time():
    with pytest.raises(ValueError, match="has no parameter"):
        mnemax.envs.make("TMaze-Passive-v0", corridor=5)
    with pytest.raises(ValueError, match="corridor_length"):
        mnemax.envs.make("TMaze-Passive-v0", corridor_length=0)
    with pytest.raises(ValueError, match="corridor_length"):
        gymnasium.make("mnemax/TMaze-Passive-v0", corridor_length=-3)


def test_gymnasium_action_outside_space_raises():
    env = gymnasium.make("mnemax/TMaze-Passive-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(4)


def test_gymnasium_module_prefix_form_needs_no_import():
    code = "import gymnasium; env = gymnasium.make('mnemax.envs:mnemax/TMaze-Passive-v0'); print(env.reset(seed=0)[0])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "[1. 0. 0.]" in out.stdout or "[0. 1. 0.]" in out.stdout


def test_make_vec_uses_the_vectorized_core():
    venv = gymnasium.make_vec("mnemax/TMaze-Passive-v0", num_envs=8, corridor_length=3)
    assert type(venv).__name__ == "GymnasiumVectorEnv"
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (8, 3)
    for _ in range(4):  # right x3 then up: every episode ends at the junction
        obs, reward, terminated, truncated, info = venv.step(np.full(8, 1 if _ < 3 else 0))
    assert terminated.all() and info["_final_obs"].all()
    np.testing.assert_array_equal(np.stack(info["final_obs"])[:, 2], 1.0)  # ended at the junction
    np.testing.assert_array_equal(obs[:, 2], 0.0)  # already reset
    with pytest.raises(ValueError, match="outside the action space"):
        venv.step(np.full(8, 9))


def test_gymnasium_seeding_is_reproducible():
    env = gymnasium.make("mnemax/TMaze-Passive-v0")
    first = [env.reset(seed=s)[0].tolist() for s in range(20)]
    again = [env.reset(seed=s)[0].tolist() for s in range(20)]
    assert first == again and len({tuple(o) for o in first}) == 2
