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
from mnemax.envs.core import wrappers
from mnemax.envs.core.rarely import rarely, rarely_rows

IDS = mnemax.envs.registered_ids()
NUM_ENVS, NUM_STEPS = 16, 96


@functools.lru_cache(maxsize=None)
def _probe(env_id):
    """One jitted function per id that rolls out ``NUM_ENVS`` copies for ``NUM_STEPS`` random steps and
    records everything the tests below check, so each id compiles once. The parameters are an argument, as
    in the gymnasium adapter: ids that differ only in traced parameters (corridor lengths, Ballet's dancers
    and delays, ...) give the same program, which the compilation cache (conftest.py) compiles once.

    At every step it applies the auto-resetting ``step`` (inside ``EpisodeStatistics``) and, from the same
    state and key, the plain ``step_env``, and it observes the returned state again; at the end it renders
    the final states.
    """
    env, params = mnemax.envs.make(env_id)
    stats = wrappers.EpisodeStatistics(env)
    action_space = env.action_space(params)
    batched = lambda f: jax.vmap(f, in_axes=(0, 0, 0, None))  # noqa: E731

    def run(key, params):
        key, reset_key = jax.random.split(key)
        obs, state = jax.vmap(stats.reset, in_axes=(0, None))(jax.random.split(reset_key, NUM_ENVS), params)

        def body(carry, key):
            obs, state = carry
            act_key, step_key = jax.random.split(key)
            action = jax.vmap(action_space.sample)(jax.random.split(act_key, NUM_ENVS))
            keys = jax.random.split(step_key, NUM_ENVS)
            next_obs, next_state, reward, terminated, truncated, info = batched(stats.step)(keys, state, action, params)
            plain_obs, _, plain_reward, plain_terminated, plain_truncated, _ = batched(env.step_env)(
                keys, state.env_state, action, params
            )
            record = {
                "obs": obs,
                "action": action,
                "reward": reward,
                "terminated": terminated,
                "truncated": truncated,
                "success": info["success"],
                "final_obs": info["final_obs"],
                "next_obs": next_obs,
                "next_time": next_state.env_state.time,
                "observed_next": jax.vmap(env.observe, in_axes=(0, None))(next_state.env_state, params),
                "plain_obs": plain_obs,
                "plain_reward": plain_reward,
                "plain_terminated": plain_terminated,
                "plain_truncated": plain_truncated,
                "episode_return": info["returned_episode_return"],
                "episode_length": info["returned_episode_length"],
                "episode_done": info["returned_episode"],
            }
            return (next_obs, next_state), record

        (_, state), trajectory = jax.lax.scan(body, (obs, state), jax.random.split(key, NUM_STEPS))
        frames = jax.vmap(env.render, in_axes=(0, None))(state.env_state, params)
        return trajectory, frames

    return env, params, jax.jit(run)


def _equal(a, b):
    def check(x, y):
        # np.testing's report is slow on the pixel trajectories (hundreds of MB per id): it runs only to
        # describe a difference that np.array_equal found.
        if not np.array_equal(x, y):
            np.testing.assert_array_equal(x, y)

    jax.tree_util.tree_map(check, a, b)


@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id):
    env = gymnasium.make(env_id, render_mode="rgb_array")
    check_env(env.unwrapped)
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


def _renders_pixels(env_id):
    env, params = mnemax.envs.make(env_id)
    return len(env.observation_space(params).shape) == 3


# The pixel ids' rollouts run longer than they compile: with XLA's optimisations the three rollouts of pixel
# Mortar Mayhem took 0.9 s instead of 5.7 s, for 1.5 s more compiling (Ballet's and Object Permanence's
# pixel ids alike); the symbolic ids are compile-bound and cheaper without them.
RUN_BOUND = {i for i in IDS if _renders_pixels(i)}
assert {"mnemax/SearingSpotlights-v0", "mnemax/Ballet-2-Delay16-v0"} <= RUN_BOUND
assert "mnemax/SearingSpotlights-Symbolic-v0" not in RUN_BOUND


@pytest.mark.parametrize(
    "env_id", [pytest.param(i, marks=pytest.mark.optimized) if i in RUN_BOUND else i for i in IDS]
)
def test_dynamics(env_id):
    """Determinism, observations in the space, auto-reset, episode statistics and rendering."""
    env, params, run = _probe(env_id)
    t, frames = jax.device_get(run(jax.random.key(3), params))
    again, _ = jax.device_get(run(jax.random.key(3), params))
    other, _ = jax.device_get(run(jax.random.key(4), params))

    # The same key gives the same trajectory; another key another one.
    _equal(t, again)
    assert not np.array_equal(t["action"], other["action"])

    # Observations stay in the observation space; rewards are finite; flags are consistent.
    space = env.observation_space(params)
    flat = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), t["obs"])
    assert bool(jnp.all(jax.vmap(space.contains)(flat)))
    assert np.all(np.isfinite(t["reward"]))
    assert not np.any(t["terminated"] & t["truncated"])
    done = t["terminated"] | t["truncated"]
    assert not np.any(t["success"] & ~done), "success is reported only when episodes end"

    # Auto-reset: `step` agrees with `step_env` from the same state and key; the final observation is
    # in info; where an episode ended the returned state is a fresh episode consistent with its
    # observation, elsewhere the observation is step_env's.
    _equal(t["reward"], t["plain_reward"])
    _equal(t["terminated"], t["plain_terminated"])
    _equal(t["truncated"], t["plain_truncated"])
    _equal(t["final_obs"], t["plain_obs"])
    _equal(t["next_obs"], t["observed_next"])
    assert np.all(t["next_time"][done] == 0)
    keep = lambda x: x[~done]  # noqa: E731
    _equal(jax.tree_util.tree_map(keep, t["next_obs"]), jax.tree_util.tree_map(keep, t["plain_obs"]))

    # Episode statistics: returns and lengths of every episode that ended, summed by hand.
    _equal(t["episode_done"], done)
    for copy in range(NUM_ENVS):
        start = 0
        for end in np.flatnonzero(done[:, copy]):
            np.testing.assert_allclose(
                t["episode_return"][end, copy], t["reward"][start : end + 1, copy].sum(), rtol=1e-5, atol=1e-5
            )
            assert t["episode_length"][end, copy] == end + 1 - start
            start = end + 1

    # Rendering is jit- and vmap-able and gives RGB frames.
    assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[0] == NUM_ENVS and frames.shape[-1] == 3


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


@pytest.mark.parametrize("reset_pool", [0, 2])
def test_make_vec_uses_the_vectorized_core(reset_pool):
    venv = gymnasium.make_vec("mnemax/TMaze-Passive-v0", num_envs=8, corridor_length=3, reset_pool=reset_pool)
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


@pytest.mark.parametrize("method", ["step_env", "reset_env"])
def test_a_task_that_overrides_the_derived_methods_fails_when_defined(method):
    """gymnax tasks override ``step_env`` / ``reset_env``; here that would skip the time limit and the
    auto-reset, so the class is refused, pointing to what a mnemax task implements instead."""
    instead = {"step_env": "transition", "reset_env": "initial_state"}[method]
    with pytest.raises(TypeError, match=rf"overrides {method}.*implement {instead}\("):
        type("GymnaxStyle", (mnemax.envs.Environment,), {method: lambda self, *args: None})


def test_module_paths_from_before_the_grouping_by_role_name_the_same_modules():
    import importlib

    for former, current in mnemax.envs.FORMER_PATHS.items():
        module = importlib.import_module(f"mnemax.envs.{former}")
        assert module is importlib.import_module(f"mnemax.envs.{current}"), former
    from mnemax.envs.gymnax_adapter import GymnaxAdapter
    from mnemax.envs.interop.gymnax_adapter import GymnaxAdapter as Current
    from mnemax.envs.tmaze import TMaze

    assert GymnaxAdapter is Current and mnemax.envs.tmaze.TMaze is TMaze
    for tool in ("play", "render_rollouts"):  # `python -m mnemax.envs.<tool>` still runs the tool
        out = subprocess.run([sys.executable, "-m", f"mnemax.envs.{tool}", "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "usage:" in out.stdout and not out.stderr, out.stderr


def test_vmap_reset_pool_starts_episodes_from_spares_and_draws_them_again():
    """Every copy truncates at steps 3 and 6: each starts its next episode from its next spare, and once a
    copy has used its last spare (step 6) all are drawn again. The same key gives the same steps."""
    env, params = mnemax.envs.make("mnemax/MysteryPath-Grid-Symbolic-v0", max_steps_in_episode=3)
    num_envs, pool = 4, 2
    venv = wrappers.Vmap(env, num_envs, reset_pool=pool)
    reset = jax.jit(venv.reset)  # op by op, the path searches of the reset compiled hundreds of small programs
    obs, state = reset(jax.random.key(0), params)
    first_spares = state.spares
    assert first_spares.on_path.shape == (num_envs, pool, 7, 7)
    step = jax.jit(venv.step)
    observe = jax.jit(jax.vmap(env.observe, in_axes=(0, None)))
    actions = jnp.zeros(num_envs, jnp.int32)
    outputs = []
    for t in range(1, 7):
        before = state
        obs, state, _, terminated, truncated, _ = step(jax.random.key(t), state, actions, params)
        outputs.append(obs)
        done = np.asarray(terminated | truncated)
        assert done.all() == (t % 3 == 0) and (done.any() == done.all())
        if t % 3 == 0:
            spare = jax.tree_util.tree_map(lambda s: s[jnp.arange(num_envs), before.used], before.spares)
            jax.tree_util.tree_map(np.testing.assert_array_equal, state.envs, spare)
            np.testing.assert_array_equal(obs, observe(spare, params))
        np.testing.assert_array_equal(state.used, np.full(num_envs, (t // 3) % pool))
    assert not np.array_equal(state.spares.on_path, first_spares.on_path)  # drawn again at step 6
    # Reproducible: the same keys give the same observations.
    _, again = reset(jax.random.key(0), params)
    for t in range(1, 7):
        obs, again, *_ = step(jax.random.key(t), again, actions, params)
        np.testing.assert_array_equal(obs, outputs[t - 1])


def test_vmap_reset_pool_under_an_outer_vmap_redraws_by_cond_and_keeps_each_seeds_episodes():
    """A trainer vmaps the pooled batch over seeds. The redraw must stay a `cond` there (a batched predicate
    would turn it into a `select` that draws every spare at every step), and each seed must step exactly
    as it does alone: seeds whose spares last longer are not redrawn when another seed's run out."""
    env, params = mnemax.envs.make("mnemax/TMaze-Passive-v0", corridor_length=10, max_steps_in_episode=3)
    venv = wrappers.Vmap(env, 2, reset_pool=2)
    actions = jnp.zeros(2, jnp.int32)

    def rollout(key, length):  # seed 1 plays episodes of 3 steps, seed 0 of 4 (truncation ends them)
        _, state = venv.reset(key, params)
        p = params.replace(max_steps_in_episode=length)

        def body(state, k):
            obs, state, *_ = venv.step(k, state, actions, p)
            return state, (obs, state.used)

        return jax.lax.scan(body, state, jax.random.split(key, 13))[1]

    keys, lengths = jax.random.split(jax.random.key(3), 2), jnp.array([4, 3])
    batched = jax.jit(jax.vmap(rollout))(keys, lengths)
    for seed in range(2):
        alone = jax.jit(rollout)(keys[seed], lengths[seed])
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(a[seed], b), batched, alone)
    used = np.asarray(batched[1])[:, :, 0]
    assert not np.array_equal(used[0], used[1])  # the seeds' pools were redrawn at different steps
    seed_keys = jax.random.split(jax.random.key(0), 3)
    states = jax.vmap(venv.reset, in_axes=(0, None))(seed_keys, params)[1]
    jaxpr = str(jax.make_jaxpr(jax.vmap(venv.step, in_axes=(0, 0, None, None)))(seed_keys, states, actions, params))
    assert "cond[" in jaxpr


@pytest.mark.parametrize("taken", [0, 1, 2, 3, 16])
def test_rarely_equals_where_for_any_number_of_copies_taking_the_branch(taken):
    """16 copies: none, up to the share (2), just over it and all of them take the branch; the results are
    `where(pred, fn(x), otherwise)` copy by copy, under one vmap, under two nested ones, and unbatched, with
    an operand given as `shared` too, and differentiated."""
    fn = lambda x, scale: (jnp.sin(x) * scale, (x > 0).astype(jnp.int32))  # noqa: E731
    xs = jax.random.normal(jax.random.key(taken), (16, 3))
    otherwise = (jnp.zeros((16, 3)), jnp.full((16, 3), 7, jnp.int32))
    pred = jnp.zeros(16, bool).at[jnp.arange(taken) * 5 % 16].set(True)
    where = lambda t, o: jnp.where(pred.reshape((16,) + (1,) * (t.ndim - 1)), t, o)  # noqa: E731
    expected = jax.tree_util.tree_map(where, jax.vmap(fn, (0, None))(xs, 2.0), otherwise)
    call = lambda p, o, x: rarely(p, fn, o, x, 2.0)  # noqa: E731
    jax.tree_util.tree_map(np.testing.assert_allclose, jax.jit(jax.vmap(call))(pred, otherwise, xs), expected)
    four_by_four = jax.tree_util.tree_map(lambda a: a.reshape((4, 4) + a.shape[1:]), (pred, otherwise, xs))
    nested = jax.jit(jax.vmap(jax.vmap(call)))(*four_by_four)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a.reshape(b.shape), b), nested, expected)
    one = call(pred[0], jax.tree_util.tree_map(lambda a: a[0], otherwise), xs[0])
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b[0]), one, expected)

    # The scale as `shared`: one value for the copies of the innermost vmap, batched by an outer one.
    shared = lambda p, o, x, scale: rarely(p, lambda s, x: fn(x, s), o, x, shared=scale)  # noqa: E731
    jax.tree_util.tree_map(
        np.testing.assert_allclose, jax.jit(jax.vmap(shared, (0, 0, 0, None)))(pred, otherwise, xs, 2.0), expected
    )
    scales = jnp.array([2.0, 2.0, -1.0, 2.0])  # the third row of four copies scaled otherwise
    outer = jax.jit(jax.vmap(jax.vmap(shared, (0, 0, 0, None))))(*four_by_four, scales)
    expected_rows = jax.tree_util.tree_map(lambda a: np.array(a.reshape((4, 4) + a.shape[1:])), expected)
    taken_row = np.asarray(four_by_four[0][2])[:, None]
    expected_rows[0][2] = np.where(taken_row, -np.sin(np.asarray(four_by_four[2][2])), 0.0)
    jax.tree_util.tree_map(np.testing.assert_allclose, outer, tuple(expected_rows))
    # Row by row over a batch, `fn` taking batches: the same.
    rows = rarely_rows(pred, lambda s, x: jax.vmap(fn, (0, None))(x, s), otherwise, xs, shared=2.0)
    jax.tree_util.tree_map(np.testing.assert_allclose, rows, expected)
    with pytest.raises(ValueError, match="shared"):
        jax.vmap(shared)(pred, otherwise, xs, jnp.full(16, 2.0))

    # Differentiable, with the derivatives of the select: cos(x) * scale where taken, zero elsewhere.
    grads = jax.grad(lambda x, s: jnp.sum(jax.vmap(shared, (0, 0, 0, None))(pred, otherwise, x, s)[0]), (0, 1))
    dx, dscale = jax.jit(grads)(xs, 2.0)
    taken_rows = np.asarray(pred)[:, None]
    np.testing.assert_allclose(dx, np.where(taken_rows, 2.0 * np.cos(np.asarray(xs)), 0.0), rtol=1e-6)
    np.testing.assert_allclose(dscale, np.sum(np.where(taken_rows, np.sin(np.asarray(xs)), 0.0)), rtol=1e-5)


def test_endless_mystery_path_draws_a_new_path_only_at_a_goal_and_as_before():
    """The new path of Endless Mystery Path (computed by `rarely`) is the one the path search gives from the
    goal just reached, whether the env runs alone or in a vmapped batch."""
    # Jitted: run op by op, the path search compiled hundreds of small programs.
    env, params = mnemax.envs.make("mnemax/EndlessMysteryPath-Symbolic-v0")
    _, state = jax.jit(env.reset)(jax.random.key(0), params)
    at_goal = state.replace(position=env.place_on(state.goal, params), off_path=jnp.bool_(False))
    key = jax.random.key(5)
    _, alone, *_ = jax.jit(env.step)(key, at_goal, jnp.zeros(2, jnp.int32), params)  # no move
    key_step = jax.random.split(key)[0]
    expected = jax.jit(env._next_path)(key_step, at_goal, params)  # where the agent reached the goal: a new path
    np.testing.assert_array_equal(alone.on_path, expected.on_path)
    np.testing.assert_array_equal(alone.origin, at_goal.goal)
    batch = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), at_goal, state)  # copy 1: not at its goal
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, None, None)))
    _, stepped, *_ = step(jnp.stack([key, key]), batch, jnp.zeros(2, jnp.int32), params)
    np.testing.assert_array_equal(stepped.on_path[0], expected.on_path)
    np.testing.assert_array_equal(stepped.on_path[1], state.on_path)


def test_vmap_without_a_pool_steps_as_vmap_of_step():
    env, params = mnemax.envs.make("mnemax/TMaze-Passive-v0")
    venv = wrappers.Vmap(env, 3)
    keys = jax.random.split(jax.random.key(1), 3)
    _, state = venv.reset(jax.random.key(1), params)
    _, expected = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    jax.tree_util.tree_map(np.testing.assert_array_equal, state, expected)
    with pytest.raises(ValueError, match="reset_pool"):
        wrappers.Vmap(env, 3, reset_pool=-1)
