"""Memory Gym rules, rendering, pixel/symbolic parity, and the proof that the tasks need memory."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mnemax.envs
from mnemax.envs.tasks.memory_gym import common, mortar_mayhem, mystery_path

BODY = np.round(np.array(common.AGENT_BODY) * 255).astype(np.uint8)


# The endless tasks in grid movement have no registered id; they are built from their classes.
_UNREGISTERED = {
    "EndlessMortarMayhem-Grid": lambda: mortar_mayhem.MortarMayhem("grid", endless=True),
    "EndlessMysteryPath-Grid": lambda: mystery_path.MysteryPath("grid", endless=True),
}


def _make(env_id: str, **overrides):
    if env_id in _UNREGISTERED:
        env = _UNREGISTERED[env_id]()
        params = env.default_params.replace(**overrides)
        env.validate_params(params)
        return env, params
    return mnemax.envs.make(env_id, **overrides)


@functools.lru_cache(maxsize=None)
def _compiled(env_id: str, overrides: tuple = ()):
    """``(env, params, reset, step_env, step, render)`` with the functions jitted once per id."""
    env, params = _make(env_id, **dict(overrides))
    return env, params, jax.jit(env.reset), jax.jit(env.step_env), jax.jit(env.step), jax.jit(env.render)


def _play(env_id, state, actions, overrides=(), max_steps=2000):
    """Step ``state`` with ``actions`` (a list, or a policy ``state -> action`` run for at most
    ``max_steps``) until the episode ends; returns the list of ``(state, reward, terminated,
    truncated, info)``."""
    env, params, _, step_env, _, _ = _compiled(env_id, overrides)
    out = []
    for t in range(len(actions) if isinstance(actions, list) else max_steps):
        action = actions[t] if isinstance(actions, list) else actions(state)
        _, state, reward, terminated, truncated, info = step_env(jax.random.key(t), state, action, params)
        out.append((state, float(reward), bool(terminated), bool(truncated), {k: float(v) for k, v in info.items()}))
        if terminated or truncated:
            break
    return out


def _reset(env_id, seed=0, overrides=()):
    env, params, reset, *_ = _compiled(env_id, overrides)
    return env, params, reset(jax.random.key(seed), params)[1]


def _expert(env_id, overrides=()):
    env, params, *_ = _compiled(env_id, overrides)
    act = jax.jit(env.expert_action)
    return lambda state: act(state, params)


# ------------------------------------------------------------------------------------- Mortar Mayhem
@pytest.mark.parametrize("env_id,length", [("MortarMayhem-Grid-v0", 118), ("MortarMayhem-v0", 274)])
def test_mortar_mayhem_correct_sequence_succeeds_on_schedule(env_id, length):
    """10 commands shown 3 + 1 steps each, then memory-gym's execution schedule: 118 steps (grid) and
    274 steps (free movement) for a full episode, +0.1 per command."""
    env, params, state = _reset(env_id, seed=1)
    assert env.episode_horizon(params) == length
    steps = _play(env_id, state, _expert(env_id))
    assert len(steps) == length
    assert steps[-1][2] and steps[-1][4]["success"] == 1.0 and steps[-1][4]["commands_completed"] == 1.0
    assert sum(s[1] for s in steps) == pytest.approx(1.0)
    rewarded = [t + 1 for t, s in enumerate(steps) if s[1] > 0]
    delay, duration = params.explosion_delay[0], params.explosion_duration[0]
    first_check = 4 * 10 - 1 + delay + 1
    assert rewarded == [first_check + (delay + duration) * j for j in range(10)]


def _state_with_moving_first_command(env_id, seed=0):
    """A reset state whose commands are not "stay" (so standing still misses every one of them)."""
    for s in range(seed, seed + 50):
        env, params, state = _reset(env_id, seed=s)
        if not np.any(np.asarray(state.commands) == mortar_mayhem.COMMAND_NAMES.index("stay")):
            return env, params, state
    raise AssertionError("no command sequence without 'stay' found")


@pytest.mark.parametrize("missed", [0, 3, 9])
def test_mortar_mayhem_each_miss_ends_the_episode_at_its_check(missed):
    env_id = "MortarMayhem-Grid-v0"
    env, params, state = _state_with_moving_first_command(env_id)
    expert = _expert(env_id)

    def policy(s):  # executes the first `missed` commands, then stands still
        return expert(s) if int(s.current) < missed or bool(s.tiles_on) else common.NOOP

    steps = _play(env_id, state, policy)
    check = 4 * 10 - 1 + 7 + 8 * missed
    assert len(steps) == check and steps[-1][2] and steps[-1][4]["success"] == 0.0
    assert sum(s[1] for s in steps) == pytest.approx(0.1 * missed)
    assert steps[-1][4]["commands_completed"] == pytest.approx(missed / 10)


def test_mortar_mayhem_leaving_the_target_while_tiles_are_lethal_ends_the_episode():
    env_id = "MortarMayhem-Grid-v0"
    env, params, state = _reset(env_id, seed=2)
    expert = _expert(env_id)
    steps = _play(env_id, state, lambda s: expert(s) if not bool(s.tiles_on) else _away(s))
    # The first check (step 46) passes; the next step moves off the target while tiles are still lethal.
    assert len(steps) == 47 and steps[45][1] == pytest.approx(0.1) and steps[-1][2] and steps[-1][4]["success"] == 0.0


def _away(state):
    """A grid move that leaves the current tile."""
    x, _ = np.asarray(state.position).astype(int)
    return common.RIGHT if x < 4 else common.LEFT


def test_mortar_mayhem_missing_only_the_last_command_is_no_success():
    env_id = "MortarMayhem-Grid-v0"
    env, params, state = _state_with_moving_first_command(env_id)
    expert = _expert(env_id)
    steps = _play(env_id, state, lambda s: expert(s) if int(s.current) < 9 or bool(s.tiles_on) else common.NOOP)
    assert len(steps) == 118 and steps[-1][2]
    assert steps[-1][4]["success"] == 0.0 and steps[-1][4]["commands_completed"] == pytest.approx(0.9)


def test_endless_mortar_mayhem_grows_the_sequence_and_goes_on():
    env_id = "EndlessMortarMayhem-Grid"
    env, params, state = _reset(env_id, seed=0)
    expert = _expert(env_id)
    steps = _play(env_id, state, expert, max_steps=400)
    assert len(steps) == 400 and not any(s[2] for s in steps)
    final = steps[-1][0]
    assert int(final.num_commands) >= 4 and steps[-1][4]["commands_completed"] >= 6
    # After a round, only the new command is shown, then the whole sequence is executed again.
    shown = [int(env.shown_command(s[0], params)) for s in steps]
    assert sum(1 for a, b in zip(shown, shown[1:]) if a < 0 <= b) >= 3


def test_endless_grid_arena_wraps_around():
    env, params = _make("EndlessMortarMayhem-Grid")
    state = env.initial_state(jax.random.key(0), params).replace(position=jnp.array([0.0, 5.0]), clue_step=jnp.int32(99))
    moved, _ = env._move(state, common.LEFT, params)
    assert moved.tolist() == [5.0, 5.0]
    moved, _ = env._move(state.replace(position=jnp.array([3.0, 5.0])), common.DOWN, params)
    assert moved.tolist() == [3.0, 0.0]


# ------------------------------------------------------------------------------------- Mystery Path
@pytest.mark.parametrize("env_id", ["MysteryPath-Grid-v0", "MysteryPath-v0"])
def test_mystery_path_following_the_path_reaches_the_goal(env_id):
    env, params, state = _reset(env_id, seed=4)
    steps = _play(env_id, state, _expert(env_id))
    assert steps[-1][2] and steps[-1][4]["success"] == 1.0 and steps[-1][4]["num_fails"] == 0.0
    expected = 1.0 + params.reward_path_progress * (int(np.asarray(state.on_path).sum()) - 2)
    assert sum(s[1] for s in steps) == pytest.approx(expected)


def _pit_next_to_origin(state):
    """A grid move from the origin into a pit (or None if every neighbour is on the path)."""
    origin = np.asarray(state.origin)
    on_path = np.asarray(state.on_path)
    for action in (common.UP, common.RIGHT, common.DOWN, common.LEFT):
        x, y = origin + common.GRID_MOVES[action]
        if 0 <= x < 7 and 0 <= y < 7 and not on_path[x, y]:
            return action
    return None


def test_mystery_path_stepping_off_the_path_returns_to_the_origin():
    env_id = "MysteryPath-Grid-v0"
    for seed in range(20):
        env, params, state = _reset(env_id, seed=seed)
        pit = _pit_next_to_origin(state)
        if pit is not None:
            break
    render = _compiled(env_id)[5]
    steps = _play(env_id, state, [pit, common.NOOP, common.NOOP])
    fell, back, stay = (s[0] for s in steps)
    assert bool(fell.off_path) and steps[0][4]["num_fails"] == 1.0 and not steps[0][2]
    frame = np.asarray(render(fell, params))
    assert np.any(np.all(frame == [255, 0, 0], axis=-1)), "the fall is shown by a red cross"
    assert np.asarray(back.position).tolist() == np.asarray(state.origin).tolist() and not bool(back.off_path)
    assert not np.any(np.all(np.asarray(render(back, params)) == [255, 0, 0], axis=-1))
    assert np.asarray(stay.position).tolist() == np.asarray(state.origin).tolist()


def test_mystery_path_generator_matches_memory_gym_statistics():
    """Paths connect origin and goal through 4-connected tiles; memory-gym's generator gives paths of
    10.0 tiles on average (7 .. 16) from the left edge to the right edge."""

    def one(key):
        rng = common.RandomStream(key, 2 + mystery_path.PATH_RANDOM_NUMBERS)
        origin, goal = mystery_path.sample_ends(rng, jnp.int32(0))
        path = mystery_path.generate_path(rng, origin, goal)
        distance = mystery_path.path_distances(path, goal)
        return path.sum(), distance[origin[0], origin[1]]

    sizes, distances = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), 2000))
    sizes, distances = np.asarray(sizes), np.asarray(distances)
    assert np.all(distances < 49), "every origin is connected to its goal"
    assert 9.0 < sizes.mean() < 11.0 and sizes.min() >= 7 and sizes.max() <= 20


def _reference_path(rng, origin, goal):
    """Memory Gym's path generator written plainly (as ``generate_path`` first was): walls ranked by a
    double argsort, the A* run for GRID * GRID iterations with scatters, the route traced one tile per
    iteration. ``generate_path`` must give the same paths."""
    grid, n, big = mystery_path.GRID, mystery_path.GRID**2, mystery_path._BIG
    x, y = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    walls = ((x > 0) & (x < grid - 2) & (y > 0) & (y < grid - 2)) & (rng.randint((grid, grid), 0, 100) < 33)
    padded = jnp.pad(walls, 1)
    near_wall = functools.reduce(
        jnp.logical_or, [padded[1 + dx : 1 + dx + grid, 1 + dy : 1 + dy + grid] for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    )
    near = lambda t: jnp.abs(x - t[0]) + jnp.abs(y - t[1]) <= 1  # noqa: E731
    candidates = ((x == 0) | (x == grid - 1) | (y == 0) | (y == grid - 1)) & ~near_wall & ~near(origin) & ~near(goal)
    count = jnp.where(rng.uniform() < 0.5, 8, 4)
    scores = jnp.where(candidates, rng.uniform((grid, grid)), 2.0)
    rank = jnp.argsort(jnp.argsort(scores.reshape(-1))).reshape(grid, grid)
    walls = (walls | (candidates & (rank < count))).reshape(-1)
    neighbours, exists = (jnp.asarray(a) for a in mystery_path._neighbour_table())
    costs = rng.randint((n, 4), 1, 9)
    xs, ys = np.divmod(np.arange(n), grid)
    heuristic = jnp.sqrt((xs - goal[0]) ** 2.0 + (ys - goal[1]) ** 2.0)
    start, end = origin[0] * grid + origin[1], goal[0] * grid + goal[1]

    def expand(_, carry):
        g, f, parent, is_open, closed, order, counter, found = carry
        oldest = jnp.argmin(jnp.where(is_open, order, big))
        cheaper = is_open & (f < f[oldest])
        node = jnp.where(cheaper.any(), jnp.argmin(jnp.where(cheaper, order, big)), oldest)
        stop = found | ~is_open.any()
        found = found | (~stop & (node == end))
        expanding = ~stop & (node != end)
        is_open = is_open.at[node].set(is_open[node] & ~expanding)
        closed = closed.at[node].set(closed[node] | expanding)
        nbs = neighbours[node]
        usable = expanding & exists[node] & ~closed[nbs] & ~walls[nbs]
        g_new = g[node] + costs[node]
        fresh = usable & ~is_open[nbs]
        improved = usable & is_open[nbs] & (g_new < g[nbs])
        g = g.at[nbs].set(jnp.where(fresh, g_new, g[nbs]))
        f = f.at[nbs].set(jnp.where(fresh, g_new + heuristic[nbs], f[nbs]))
        parent = parent.at[nbs].set(jnp.where(fresh | improved, node, parent[nbs]))
        order = order.at[nbs].set(jnp.where(fresh, counter + jnp.cumsum(fresh) - 1, order[nbs]))
        is_open = is_open.at[nbs].set(is_open[nbs] | fresh)
        return g, f, parent, is_open, closed, order, counter + fresh.sum(), found

    zeros = jnp.zeros(n, jnp.int32)
    init = (zeros, jnp.zeros(n), zeros - 1, jnp.arange(n) == start, jnp.zeros(n, bool), zeros, jnp.int32(1), False)
    _, _, parent, _, _, _, _, found = jax.lax.fori_loop(0, n, expand, init)

    def trace(_, carry):
        node, path = carry
        return jnp.where(node == start, node, parent[node]), path.at[node].set(True)

    _, path = jax.lax.fori_loop(0, n, trace, (end, jnp.zeros(n, bool)))
    return jnp.where(found, path.reshape(grid, grid), mystery_path._straight_path(origin, goal))


def test_mystery_path_generator_equals_the_plain_search():
    """The batched generator (fewer search iterations, ranks by counting, the route by pointer
    doubling) gives exactly the paths of the plain one, from every side."""

    def paths(generate):
        def one(key, cardinal):
            rng = common.RandomStream(key, 2 + mystery_path.PATH_RANDOM_NUMBERS)
            origin, goal = mystery_path.sample_ends(rng, cardinal)
            return generate(rng, origin, goal)

        n = 4000
        return np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(3), n), jnp.arange(n) % 4))

    np.testing.assert_array_equal(paths(mystery_path.generate_path), paths(_reference_path))


def test_endless_mystery_path_continues_on_a_new_path_and_ends_on_a_repeated_fall():
    env_id = "EndlessMysteryPath-Grid"
    env, params, state = _reset(env_id, seed=1)
    expert = _expert(env_id)
    steps = _play(env_id, state, expert, max_steps=60)
    goals = [t for t, s in enumerate(steps) if s[4]["goals_reached"] > (steps[t - 1][4]["goals_reached"] if t else 0)]
    assert len(goals) >= 2 and not any(s[2] for s in steps)
    after = steps[goals[0]][0]
    assert np.asarray(after.origin).tolist() == np.asarray(after.position).astype(int).tolist()
    # Falling twice into the same pit of one path ends the episode.
    for seed in range(20):
        env, params, state = _reset(env_id, seed=seed)
        pit = _pit_next_to_origin(state)
        if pit is not None:
            break
    steps = _play(env_id, state, [pit, common.NOOP, pit, common.NOOP])
    assert [s[2] for s in steps] == [False, False, True]


# ------------------------------------------------------------------------------- Searing Spotlights
QUIET = (("initial_spawns", 0), ("num_spawns", 0))


def test_searing_spotlights_coins_then_exit_succeed():
    env_id = "SearingSpotlights-v0"
    env, params, state = _reset(env_id, seed=0, overrides=QUIET)
    # The exit is closed while coins remain: standing on it does nothing.
    on_exit = _play(env_id, state.replace(position=state.exit), [jnp.array([0, 0])], QUIET)
    assert not on_exit[0][2] and on_exit[0][1] == 0.0
    steps = _play(env_id, state, _expert(env_id, QUIET), QUIET)
    rewards = [s[1] for s in steps if s[1] != 0]
    assert rewards == [pytest.approx(0.25), pytest.approx(1.0)]
    assert steps[-1][2] and steps[-1][4]["success"] == 1.0 and steps[-1][4]["coins_collected"] == 1.0


def test_searing_spotlights_hits_cost_health_and_death_ends_the_episode():
    env_id = "SearingSpotlights-v0"
    env, params, state = _reset(env_id, seed=0)
    # Park one spotlight on the agent: a path whose three points all lie at the agent.
    state = state.replace(position=jnp.array([42.0, 42.0]))
    here = jnp.broadcast_to(state.position, (3, 2))
    state = state.replace(
        spot_active=state.spot_active.at[0].set(True),
        spot_path=state.spot_path.at[0].set(here),
        spot_radius=state.spot_radius.at[0].set(10.0),
        spot_t=state.spot_t.at[0].set(0.0),
    )
    render = _compiled(env_id)[5]
    steps = _play(env_id, state, [jnp.array([0, 0])] * 10)
    assert len(steps) == 5 and steps[-1][2] and steps[-1][4]["success"] == 0.0
    assert [s[4]["agent_health"] for s in steps] == pytest.approx([0.8, 0.6, 0.4, 0.2, 0.0])
    frame = np.asarray(render(steps[0][0], params))
    assert np.any(np.all(frame[10:] == [255, 0, 0], axis=-1)), "a hit turns the floor red"


def test_searing_spotlights_light_dims_and_hides_the_agent():
    env_id = "SearingSpotlights-v0"
    env, params, state = _reset(env_id, seed=3, overrides=QUIET)
    render = _compiled(env_id, QUIET)[5]
    assert [float(env.light(t, params)) for t in range(9)] == [0, 42, 84, 126, 168, 210, 252, 255, 255]
    assert _body_pixels(np.asarray(render(state, params))) > 0
    dark = _play(env_id, state, [jnp.array([0, 0])] * 7, QUIET)[-1][0]
    frame = np.asarray(render(dark, params))
    assert _body_pixels(frame) == 0 and np.all(frame[4:] == 0), "after dimming, only spotlights show anything"


def test_endless_searing_spotlights_spawns_new_coins_and_times_out():
    env_id = "EndlessSearingSpotlights-v0"
    overrides = (("initial_spawns", 0), ("spawn_interval", 10**6))
    env, params, state = _reset(env_id, seed=0, overrides=overrides)
    expert = _expert(env_id, overrides)
    steps = _play(env_id, state, expert, overrides, max_steps=150)
    assert not any(s[2] for s in steps) and steps[-1][4]["coins_collected"] >= 3
    idle = _play(env_id, state, [jnp.array([0, 0])] * 200, overrides)
    assert len(idle) == params.steps_per_coin and idle[-1][2] and idle[-1][4]["success"] == 0.0


def test_searing_spotlights_validates_spotlight_slots():
    with pytest.raises(ValueError, match="max_spotlights"):
        mnemax.envs.make("SearingSpotlights-v0", max_steps_in_episode=1000)
    mnemax.envs.make("SearingSpotlights-v0", max_steps_in_episode=1000, max_spotlights=15)


# -------------------------------------------------------------------------------------- rendering
def _body_pixels(frame):
    return int(np.all(frame == BODY, axis=-1).sum())


@pytest.mark.parametrize("env_id", ["MortarMayhem-Grid-v0", "MortarMayhem-v0", "MysteryPath-Grid-v0", "EndlessMortarMayhem-v0"])
def test_agent_is_drawn_where_the_state_puts_it(env_id):
    env, params, reset, _, step, render = _compiled(env_id)
    key = jax.random.key(0)
    _, state = reset(key, params)
    for t in range(60):
        key, k1, k2 = jax.random.split(key, 3)
        if t % 15 == 0 and not bool(getattr(state, "off_path", False)):  # a fall's cross covers the agent
            frame = np.asarray(render(state, params))
            x, y = np.floor(np.asarray(env.agent_pixel(state.position, params))).astype(int)
            ys, xs = np.nonzero(np.all(frame == BODY, axis=-1))
            assert np.array_equal(frame[y, x], BODY), "the body colour at the agent's position"
            assert len(ys) > 20 and np.all(np.hypot(ys - y, xs - x) <= 7), "and nowhere else"
        _, state, *_ = step(k2, state, env.action_space(params).sample(k1), params)


def test_command_glyphs_are_distinct():
    glyphs = mortar_mayhem.command_glyphs()
    flat = glyphs.reshape(len(glyphs), -1)
    assert len({g.tobytes() for g in flat}) == len(glyphs) and flat[0].sum() == 0 and flat[1:].sum(1).min() > 30


# ------------------------------------------------------------------------ pixel and symbolic parity
@pytest.mark.parametrize(
    "pixel_id",
    ["MortarMayhem-Grid-v0", "MortarMayhem-v0", "MysteryPath-Grid-v0", "SearingSpotlights-v0", "EndlessMortarMayhem-v0"],
)
def test_pixel_and_symbolic_variants_have_identical_dynamics(pixel_id):
    symbolic_id = pixel_id.replace("-v0", "-Symbolic-v0")

    def rollout(env_id):
        env, params = mnemax.envs.make(env_id)
        space = env.action_space(params)

        def run(key):
            _, state = env.reset(key, params)

            def body(state, key):
                k1, k2 = jax.random.split(key)
                _, state, reward, terminated, truncated, info = env.step(k2, state, space.sample(k1), params)
                return state, (reward, terminated, truncated, info["success"])

            return jax.lax.scan(body, state, jax.random.split(key, 300))[1]

        return jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(7), 4))

    pixel, symbolic = rollout(pixel_id), rollout(symbolic_id)
    for a, b in zip(pixel, symbolic):
        np.testing.assert_array_equal(a, b)
    assert bool(jnp.any(pixel[1] | pixel[2])), "episodes ended during the comparison"


# --------------------------------------------------------------------------------- memory is needed
def test_mortar_mayhem_commands_are_not_in_the_execution_frames():
    """Two states that differ only in their commands look the same once the clues are over."""
    for env_id in ("MortarMayhem-Grid-v0", "MortarMayhem-Grid-Symbolic-v0"):
        env, params, state = _reset(env_id, seed=0)
        observe = jax.jit(env.observe)  # op by op, a frame compiles a hundred small programs
        state = state.replace(clue_step=state.clue_len)  # execution phase
        other = state.replace(commands=(state.commands + 1) % 5, target=(state.target + 1) % 5)
        np.testing.assert_array_equal(observe(state, params), observe(other, params))
        clue = state.replace(clue_step=jnp.int32(0))
        assert not np.array_equal(observe(clue, params), observe(clue.replace(commands=(state.commands + 1) % 5), params))


def test_mystery_path_path_is_not_in_the_frames():
    for env_id in ("MysteryPath-Grid-v0", "MysteryPath-Grid-Symbolic-v0"):
        env, params, state = _reset(env_id, seed=0)
        observe = jax.jit(env.observe)  # op by op, a frame compiles a hundred small programs
        other = state.replace(on_path=~state.on_path)
        np.testing.assert_array_equal(observe(state, params), observe(other, params))


def test_searing_spotlights_position_is_not_in_dark_frames():
    for env_id in ("SearingSpotlights-v0", "SearingSpotlights-Symbolic-v0"):
        env, params, state = _reset(env_id, seed=0, overrides=QUIET)
        observe = jax.jit(env.observe)  # op by op, a frame compiles a hundred small programs
        dark = state.replace(time=jnp.int32(20))
        moved = dark.replace(position=dark.position + 9.0, coins=dark.coins + 5.0, exit=dark.exit - 5.0)
        np.testing.assert_array_equal(observe(dark, params), observe(moved, params))
        lit = state.replace(time=jnp.int32(1))
        assert not np.array_equal(observe(lit, params), observe(lit.replace(position=lit.position + 9.0), params))


def test_mortar_mayhem_memoryless_policies_are_at_chance():
    """With one command, a policy without memory sees the same execution frames whatever the command
    was, so it ends on the target with probability at most E[1 / #valid commands] = 0.2453 (5 x 5
    arena: 3 valid commands in corners, 4 on edges, 5 inside). A policy that remembers succeeds always."""
    env, params = mnemax.envs.make("MortarMayhem-Grid-Symbolic-v0", command_count=1)
    bound = (4 / 3 + 12 / 4 + 9 / 5) / 25
    n = 4000

    def success_rate(policy):
        def episode(key):
            _, state = env.reset(key, params)

            def body(carry, k):
                state, done, success = carry
                obs = env.observe(state, params)
                _, state, _, terminated, truncated, info = env.step_env(k, state, policy(obs, state, k), params)
                return (state, done | terminated | truncated, success | (~done & info["success"])), None

            (_, done, success), _ = jax.lax.scan(body, (state, False, False), jax.random.split(key, 20))
            return success & done

        return float(jnp.mean(jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(1), n))))

    remembering = success_rate(lambda obs, state, k: env.expert_action(state, params))
    assert remembering == 1.0
    sigma = np.sqrt(bound * (1 - bound) / n)
    for name, policy in {
        "stay": lambda obs, state, k: jnp.int32(common.NOOP),
        "right": lambda obs, state, k: jnp.int32(common.RIGHT),
        "random": lambda obs, state, k: jax.random.randint(k, (), 0, 5),
        # Reacts to its position only: moves towards the centre.
        "centre": lambda obs, state, k: common.grid_action_towards(
            jnp.round(obs[:2] * 4).astype(jnp.int32), jnp.array([2, 2]), obs[2:10].argmax(), False
        ),
    }.items():
        rate = success_rate(policy)
        assert rate <= bound + 4 * sigma, f"memoryless policy {name!r} succeeded {rate:.3f} > {bound:.3f}"


# ------------------------------------------------------------------------------------ fixed rollouts
# SHA-256 (first 16 hex digits) of everything a fixed rollout returns: observations, rewards, episode
# ends and every state field at every step, with auto-resets. Recorded on CPU with JAX 0.10; a change
# here is a change of the dynamics, the rendering or the random streams, which speed-ups must not make.
# Another compiler (a GPU, another JAX release) may round a float differently, so elsewhere they are skipped.
DIGESTS_RECORDED_WITH = ("cpu", "0.10")
ROLLOUT_DIGESTS = {
    ("MysteryPath-Grid-v0", ()): "ae6791ab3261393d",
    ("MysteryPath-Grid-Symbolic-v0", (("turn_controls", True),)): "26b7bb1f19be04f1",
    ("MysteryPath-v0", (("max_steps_in_episode", 64), ("show_origin", True), ("show_goal", True))): "47815f4e490677d7",
    ("EndlessMysteryPath-v0", ()): "7bfa5661a5f3c5f0",
    ("EndlessMysteryPath-Grid", (("symbolic", True),)): "cdf4ca84d56e160e",
    ("SearingSpotlights-v0", (("max_steps_in_episode", 100),)): "2bd2eb54c553a76b",
    ("SearingSpotlights-Symbolic-v0", (("num_coins", (1, 2, 3)),)): "ca636cf0f624349f",
    ("SearingSpotlights-v0", (("black_background", True), ("coins_visible", True), ("exit_visible", True), ("agent_visible", True), ("num_coins", (2, 3)))): "a2f2371f7a023ad9",
    ("EndlessSearingSpotlights-v0", ()): "191a8cb03898eb69",
}


def rollout_digest(env_id: str, overrides: tuple, num_envs: int = 4, num_steps: int = 200) -> str:
    """The digest of ``num_envs`` environments stepped ``num_steps`` times with random actions."""
    import hashlib

    env, params = _make(env_id, **dict(overrides))
    space = env.action_space(params)

    def run(key):
        obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(key, num_envs), params)

        def body(carry, key):
            act_key, step_key = jax.random.split(key)
            actions = jax.vmap(space.sample)(jax.random.split(act_key, num_envs))
            obs, state, reward, terminated, truncated, _ = jax.vmap(env.step, (0, 0, 0, None))(
                jax.random.split(step_key, num_envs), carry[1], actions, params
            )
            return (obs, state), (obs, state, reward, terminated, truncated)

        return (obs, state), jax.lax.scan(body, (obs, state), jax.random.split(key, num_steps))[1]

    out = jax.jit(run)(jax.random.key(2024))
    digest = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(out):
        digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return digest.hexdigest()[:16]


@pytest.mark.exact  # Searing Spotlights' digests change with XLA's optimisations off
@pytest.mark.parametrize("env_id,overrides", list(ROLLOUT_DIGESTS))
def test_fixed_rollouts_are_unchanged(env_id, overrides):
    here = (jax.default_backend(), ".".join(jax.__version__.split(".")[:2]))
    if here != DIGESTS_RECORDED_WITH:
        pytest.skip(f"digests recorded on {DIGESTS_RECORDED_WITH}, this is {here}")
    assert rollout_digest(env_id, overrides) == ROLLOUT_DIGESTS[env_id, overrides]
