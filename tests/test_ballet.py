"""Ballet rules, the identical dynamics of its two observation modes, and the proof that it needs memory.

The scripted policies read the symbolic observation. The helpers at the top (playing a fixed action
sequence, walking towards a spot, the chance band) also serve ``test_object_permanence.py``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mnemax.envs
from mnemax.envs.tasks import ballet
from mnemax.envs.tasks.ballet import DANCE_LENGTH, DANCE_OFFSETS, LAMP_CELLS, MOVES, NUM_COLOURS, SPOTS
from memory_probe import mean_success, rollout

# ----------------------------------------------------------------------------------------- helpers
# ACTION_TOWARDS[dy + 1, dx + 1]: the action that moves by (dy, dx); (0, 0) maps to N (never needed).
ACTION_TOWARDS = np.zeros((3, 3), np.int32)
for _a, (_dy, _dx) in enumerate(MOVES):
    ACTION_TOWARDS[_dy + 1, _dx + 1] = _a


def towards(agent, cell):
    """The king move from ``agent`` towards ``cell``. From the centre the straight or diagonal line to
    any spot crosses no other spot, so walking this way reaches the chosen item first."""
    d = jnp.sign(cell - agent) + 1
    return jnp.asarray(ACTION_TOWARDS)[d[0], d[1]]


@functools.partial(jax.jit, static_argnums=0)
def play(env, params, state, actions):
    """``step_env`` through ``actions`` (int32 [T]); returns the stacked per-step
    ``(obs, state, reward, terminated, truncated, info)``."""

    def body(state, action):
        obs, state, reward, terminated, truncated, info = env.step_env(jax.random.key(0), state, action, params)
        return state, (obs, state, reward, terminated, truncated, info)

    return jax.lax.scan(body, state, actions)[1]


def assert_at_chance(success, num_choices, num_episodes):
    """``success`` lies within four binomial standard deviations of ``1 / num_choices``."""
    chance = 1.0 / num_choices
    sigma = np.sqrt(chance * (1 - chance) / num_episodes)
    assert abs(success - chance) < 4 * sigma, f"success {success:.3f}, chance {chance:.3f}"


def assert_modes_agree(env, params, num_envs, num_steps):
    """Random play (with auto-reset) under pixel and symbolic observations: the same keys give the
    same states, rewards, ends, successes and phases. Every copy must finish an episode. Returns the
    observation shapes ``(pixels, symbolic)``."""

    def play_randomly(params):
        def body(state, key):
            act_key, step_key = jax.random.split(key)
            action = jax.random.randint(act_key, (num_envs,), 0, 8)
            obs, state, reward, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(step_key, num_envs), state, action, params
            )
            return state, ((state, reward, term, trunc, info["success"], info["phase"]), obs[0])

        _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(1), num_envs), params)
        return jax.lax.scan(body, state, jax.random.split(jax.random.key(2), num_steps))[1]

    (a, pixels), (b, symbolic) = (jax.jit(play_randomly)(params.replace(observation=m)) for m in ("pixels", "symbolic"))
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
    assert np.all(np.asarray(a[2]).sum(0) >= 1), "a copy never finished an episode"
    return pixels.shape[1:], symbolic.shape[1:]


def assert_memoryless_at_chance(env, params_of, policy, sizes, episodes, max_steps):
    """``policy`` succeeds at chance, ``1 / n``, on ``params_of(n)`` for every ``n`` in ``sizes``.
    The sizes are traced parameters, so one compiled rollout (vmapped over them) serves all.
    Returns the measured rates."""

    @jax.jit
    @jax.vmap
    def success(n):
        won, _, finished, _ = rollout(env, params_of(n), policy, None, episodes, max_steps)
        return jnp.mean(won), jnp.all(finished)

    rates, finished = success(jnp.array(sizes))
    assert np.all(finished), "episodes did not end within max_steps"
    for n, rate in zip(sizes, np.asarray(rates)):
        assert_at_chance(float(rate), n, episodes)
    return np.asarray(rates)


def assert_always_succeeds(env_id, policy, episodes=64):
    """``policy`` wins every one of ``episodes`` episodes of ``env_id``, each within its length."""
    env, params = mnemax.envs.make(env_id)
    success, ret = mean_success(env, params, policy, episodes, int(env.episode_length(params)))
    assert success == 1.0 and ret == 1.0


def answer_phase_is_blind(env, params, state, alternatives, wait_action=0):
    """Episodes ``state`` and ``alternatives`` (each with a different correct item) show the same
    answer-phase observations under the same moves, while their watching phases differ."""
    start = int(env.answer_start(params))
    watch = jnp.full(start, wait_action, jnp.int32)
    moves = jnp.array([1, 5, 3, 7, 1, 5], jnp.int32)  # NE SW SE NW NE SW: wanders, touches no item
    spots = jnp.asarray(SPOTS)
    first = play(env, params, state, jnp.concatenate([watch, moves]))
    for other in alternatives:
        assert not np.array_equal(spots[state.spot[state.target]], spots[other.spot[other.target]])
        again = play(env, params, other, jnp.concatenate([watch, moves]))
        assert not np.array_equal(first[0][: start - 1], again[0][: start - 1]), "the watching phase differs"
        np.testing.assert_array_equal(first[0][start - 1 :], again[0][start - 1 :])  # from the instruction on
        assert not np.any(first[3]) and not np.any(again[3])


# ----------------------------------------------------------------------------------------- Ballet
ENV = ballet.Ballet()
GRID_DANCER = slice(2, 2 + NUM_COLOURS)  # symbolic channels: wall, agent, colours..., shapes...
# WINDOW_ROWS/COLS [8, 9]: the cells of each spot's 3 x 3 square, row-major; index 4 is the spot.
WINDOW_ROWS = SPOTS[:, 0, None] + np.repeat(np.arange(-1, 2), 3)[None]
WINDOW_COLS = SPOTS[:, 1, None] + np.tile(np.arange(-1, 2), 3)[None]


def _params(**overrides):
    return ENV.default_params.replace(**overrides)


def _parse(obs):
    grid, instruction = ENV.split_symbolic(obs)
    dancer = grid[..., GRID_DANCER].sum(-1) > 0
    agent = jnp.array(jnp.unravel_index(jnp.argmax(grid[..., 1]), grid.shape[:2]))
    return dancer, agent, instruction


def _off_home_code(offset):
    """0..7 for the eight cells around a spot, in row-major order (the spot itself excluded)."""
    code = (offset[..., 0] + 1) * 3 + offset[..., 1] + 1
    return code - (code > 4)


def _signatures():
    """float32 [13]: each dance's code from its first two off-spot positions (``9 + 8 * c1 + c2``)."""
    signatures = []
    for offsets in DANCE_OFFSETS:
        away = [o for o in offsets[1:] if np.any(o)]
        signatures.append(9 + 8 * _off_home_code(away[0]) + _off_home_code(away[1]))
    return np.array(signatures, np.float32)


SIGNATURES = _signatures()


def _remembering_policy(_, obs, memory):
    """Writes down, per spot, the first two off-spot cells of its dancer's dance (``memory[spot]``);
    in the answer phase walks to the spot whose record matches the named dance."""
    dancer, agent, instruction = _parse(obs)
    window = dancer[WINDOW_ROWS, WINDOW_COLS]  # [8, 9]
    cell = jnp.argmax(window, axis=-1)
    away = window.any(-1) & (cell != 4)
    code = (cell - (cell > 4)).astype(jnp.float32)
    memory = jnp.where(away & (memory == 0), 1 + code, jnp.where(away & (memory > 0) & (memory < 9), 9 + 8 * (memory - 1) + code, memory))
    spot = jnp.argmax(memory == jnp.asarray(SIGNATURES)[jnp.argmax(instruction)])
    return towards(agent, jnp.asarray(SPOTS)[spot]), memory


def _memoryless_policy(_, obs, memory):
    """Picks the (d mod n)-th occupied spot in reading order for named dance d: a function of the
    current observation only."""
    dancer, agent, instruction = _parse(obs)
    occupied = dancer[SPOTS[:, 0], SPOTS[:, 1]]
    k = jnp.argmax(instruction) % jnp.maximum(occupied.sum(), 1)
    spot = jnp.argmax(jnp.cumsum(occupied) == k + 1)
    return towards(agent, jnp.asarray(SPOTS)[spot]), memory


# ----------------------------------------------------------------------------------------- rules
def test_dances_are_sixteen_king_moves_that_return_home_and_differ():
    assert ballet.NUM_DANCES == 13 and DANCE_OFFSETS.shape == (13, DANCE_LENGTH + 1, 2)
    steps = np.diff(DANCE_OFFSETS, axis=1)
    assert np.all(np.abs(steps).max(-1) == 1), "every move goes to one of the 8 neighbours"
    assert np.all(np.abs(DANCE_OFFSETS) <= 1) and np.all(DANCE_OFFSETS[:, -1] == 0)
    assert len({o.tobytes() for o in DANCE_OFFSETS}) == 13
    assert len(set(SIGNATURES.tolist())) == 13  # two off-spot cells tell every dance apart
    circle_cw = [(0, 0), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]
    np.testing.assert_array_equal(DANCE_OFFSETS[ballet.DANCE_NAMES.index("circle_cw"), :9], circle_cw)
    # The lamps that name the dances are distinct wall cells.
    assert len({tuple(c) for c in LAMP_CELLS}) == 13
    assert all(min(r, c) == 0 or max(r, c) == ballet.ROOM - 1 for r, c in LAMP_CELLS)


def test_dances_play_one_at_a_time_and_actions_are_ignored():
    params = _params(num_dancers=4, dance_delay=3, observation="symbolic")
    _, state = ENV.reset(jax.random.key(5), params)
    start = int(ENV.answer_start(params))
    assert start == 4 * (16 + 3)
    actions = jax.random.randint(jax.random.key(6), (start + 1,), 0, 8)
    obs, states, reward, terminated, _, info = play(ENV, params, state, actions)
    grid, instruction = ENV.split_symbolic(obs)
    dancer = np.asarray(grid[..., GRID_DANCER].sum(-1) > 0)
    homes = SPOTS[np.asarray(state.spot)]
    for t in range(1, start + 1):  # obs[t - 1] is the observation after t steps
        expected = np.zeros((11, 11), bool)
        for k in range(4):
            j = t - k * (16 + 3)
            moved = DANCE_OFFSETS[int(state.dance[k]), j] if 1 <= j <= 16 else (0, 0)
            expected[tuple(homes[k] + moved)] = True
        np.testing.assert_array_equal(dancer[t - 1], expected, err_msg=f"step {t}")
    assert np.all(np.asarray(states.agent[:start]) == ballet.AGENT_START)  # ignored while dances play
    assert not np.array_equal(states.agent[start], ballet.AGENT_START)  # the first answer move counts
    assert not np.any(instruction[: start - 1]) and np.all(instruction[start - 1 :].sum(-1) == 1)
    np.testing.assert_array_equal(info["phase"], (np.arange(start + 1) >= start).astype(np.int32))
    assert not np.any(reward) and not np.any(terminated)


def test_instruction_names_a_performed_dance():
    params = _params(num_dancers=4, dance_delay=1)
    keys = jax.random.split(jax.random.key(0), 4000)
    states = jax.jit(jax.vmap(ENV.initial_state, in_axes=(0, None)))(keys, params)
    dance, target = np.asarray(states.dance[:, :4]), np.asarray(states.target)
    assert np.all(target < 4) and np.all(np.bincount(target, minlength=4) > 850)  # uniform over dancers
    for field in (states.dance, states.spot, states.colour, states.shape):
        assert all(len(set(row)) == len(row) for row in np.asarray(field[:, :4]).tolist())
    named = dance[np.arange(len(target)), target]
    assert np.all(np.bincount(named, minlength=13) > 200)  # every dance gets named
    # The instruction is the lamp of the named dance (pixels) or its one-hot (symbolic).
    state = jax.tree_util.tree_map(lambda x: x[0], states).replace(time=jnp.int32(ENV.answer_start(params)))
    frame = np.asarray(ENV.observe(state, params))
    lit = [np.all(frame[r * 8 : r * 8 + 8, c * 8 : c * 8 + 8] == ballet.LAMP_RGB) for r, c in LAMP_CELLS]
    assert lit == [d == named[0] for d in range(13)]
    symbolic = ENV.observe(state, params.replace(observation="symbolic"))
    np.testing.assert_array_equal(ENV.split_symbolic(symbolic)[1], np.eye(13)[named[0]])
    before = ENV.observe(state.replace(time=state.time - 1), params)
    assert not np.any(np.all(before == np.array(ballet.LAMP_RGB, np.uint8), axis=-1))


def _answer_state(params, target_spot, other_spot):
    """A 2-dancer episode at the start of the answer phase with the target at ``target_spot``."""
    _, state = ENV.reset(jax.random.key(0), params)
    spot = jnp.array([target_spot, other_spot] + [s for s in range(8) if s not in (target_spot, other_spot)])
    return state.replace(spot=spot, target=jnp.int32(0), time=jnp.int32(ENV.answer_start(params)))


@pytest.mark.parametrize("walk_to,reward", [(0, 1.0), (7, 0.0)])
def test_right_dancer_pays_one_wrong_dancer_zero_both_end(walk_to, reward):
    params = _params(num_dancers=2)
    state = _answer_state(params, target_spot=0, other_spot=7)  # target at (2, 2), the other at (8, 8)
    path = [7, 7, 7] if walk_to == 0 else [3, 3, 3]  # NW x3 or SE x3 from (5, 5)
    _, states, rewards, terminated, truncated, info = play(ENV, params, state, jnp.array(path))
    np.testing.assert_array_equal(states.agent[-1], SPOTS[walk_to])
    assert rewards.tolist() == [0.0, 0.0, reward] and terminated.tolist() == [False, False, True]
    assert info["success"].tolist() == [False, False, reward == 1.0] and not np.any(truncated)


def test_empty_spots_and_walls_do_not_end_the_episode():
    params = _params(num_dancers=2)
    state = _answer_state(params, target_spot=0, other_spot=7)
    # (2, 5) holds no dancer in this episode; then the wall above stops the agent.
    _, states, rewards, terminated, _, _ = play(ENV, params, state, jnp.array([0, 0, 0, 0, 1, 7]))
    assert [tuple(a) for a in np.asarray(states.agent)] == [(4, 5), (3, 5), (2, 5), (1, 5), (1, 5), (1, 5)]
    assert not np.any(terminated) and not np.any(rewards)


def test_answer_time_limit_ends_the_episode_unsuccessfully():
    params = _params(num_dancers=2, answer_steps=5)
    state = _answer_state(params, target_spot=0, other_spot=7)
    _, _, rewards, terminated, truncated, info = play(ENV, params, state, jnp.array([4, 0, 4, 0, 4]))
    assert terminated.tolist() == [False] * 4 + [True] and not np.any(truncated)
    assert not np.any(rewards) and not np.any(info["success"])
    assert int(ENV.episode_length(params)) == int(ENV.answer_start(params)) + 5


@pytest.mark.parametrize("dancers,delay,length", [(2, 16, 128), (4, 16, 192), (8, 16, 320), (2, 48, 192), (4, 48, 320), (8, 48, 576)])
def test_episode_lengths_of_the_paper_levels(dancers, delay, length):
    env, params = mnemax.envs.make(f"Ballet-{dancers}-Delay{delay}-v0")
    assert int(env.answer_start(params)) == dancers * (16 + delay)
    assert int(env.episode_length(params)) == length


def test_invalid_params_raise():
    for bad in ({"num_dancers": 9}, {"num_dancers": 0}, {"dance_delay": 0}, {"answer_steps": 0}, {"observation": "rgb"}):
        with pytest.raises(ValueError):
            mnemax.envs.make("Ballet-2-Delay16-v0", **bad)


def test_pixels_and_symbolic_have_identical_dynamics():
    # 72 watching steps and at most 64 answer moves: in 150 steps every copy ends an episode.
    shapes = assert_modes_agree(ENV, _params(num_dancers=4, dance_delay=2), num_envs=16, num_steps=150)
    assert shapes == ((88, 88, 3), (11 * 11 * 22 + 13,))


# ----------------------------------------------------------------------------------------- memory
def test_answer_phase_does_not_show_who_danced_what():
    """Give the named dance to each other dancer in turn: the watching phase changes, the answer
    phase does not, yet the right dancer does. A policy without memory answers all alike."""
    for observation in ("pixels", "symbolic"):
        params = _params(num_dancers=4, dance_delay=2, observation=observation)
        _, state = ENV.reset(jax.random.key(3), params)
        t = int(state.target)
        alternatives = []
        for other in range(4):
            if other != t:
                dance = state.dance.at[t].set(state.dance[other]).at[other].set(state.dance[t])
                alternatives.append(state.replace(dance=dance, target=jnp.int32(other)))
        answer_phase_is_blind(ENV, params, state, alternatives)


@pytest.mark.optimized  # 1,500 episodes played step by step
def test_memoryless_policy_is_at_chance():
    params = _params(dance_delay=1, observation="symbolic")
    longest = 8 * (16 + 1) + params.answer_steps
    assert_memoryless_at_chance(ENV, lambda n: params.replace(num_dancers=n), _memoryless_policy, [2, 4, 8], 500, longest)


@pytest.mark.parametrize("env_id", ["Ballet-2-Delay16-Symbolic-v0", "Ballet-8-Delay48-Symbolic-v0"])
def test_policy_with_memory_always_succeeds(env_id):
    assert_always_succeeds(env_id, _remembering_policy)


def test_show_dances_lists_each_spots_dance_in_the_answer_phase_only():
    """The diagnostic ``show_dances`` appends an ``[8 spots, 13 dances]`` one-hot table to the symbolic
    instruction: from the answer phase on, the row of each dancer's spot holds its dance and the other rows
    are zero (so the target's spot is the row that matches the instruction); zeros while the dances play.
    Pixel observations refuse it."""
    params = _params(num_dancers=3, dance_delay=2, observation="symbolic", show_dances=True)
    _, state = ENV.reset(jax.random.key(5), params)
    assert ENV.observation_space(params).shape == (11 * 11 * 22 + 13 * 9,)
    answering = state.replace(time=jnp.int32(ENV.answer_start(params)))
    instruction, table = np.split(np.asarray(ENV.split_symbolic(ENV.observe(answering, params))[1]), [13])
    table = table.reshape(8, 13)
    expected = np.zeros((8, 13))
    expected[np.asarray(state.spot[:3]), np.asarray(state.dance[:3])] = 1
    np.testing.assert_array_equal(table, expected)
    assert np.argmax(table @ instruction) == int(state.spot[state.target])
    watching = ENV.split_symbolic(ENV.observe(answering.replace(time=answering.time - 1), params))[1]
    assert not np.any(np.asarray(watching))
    with pytest.raises(ValueError, match="show_dances"):
        ENV.observe(answering, params.replace(observation="pixels"))


def test_observation_items_are_the_spots_squares_of_the_symbolic_grid():
    params = _params(num_dancers=3, dance_delay=2, observation="symbolic")
    _, state = ENV.reset(jax.random.key(6), params)
    obs = np.asarray(ENV.observe(state.replace(time=jnp.int32(5)), params))  # a dancer mid-dance
    grid = np.asarray(ENV.split_symbolic(obs)[0])
    items = ENV.observation_items(params)
    assert items.shape == (8, 9 * grid.shape[-1])
    for k, (row, col) in enumerate(SPOTS):
        np.testing.assert_array_equal(obs[items[k]], grid[row - 1 : row + 2, col - 1 : col + 2].reshape(-1))
    (instruction,) = ENV.observation_parts(params)
    np.testing.assert_array_equal(instruction, np.arange(grid.size, obs.size))  # all that follows the grid
    for method in (ENV.observation_items, ENV.observation_parts):
        with pytest.raises(ValueError, match="symbolic"):
            method(params.replace(observation="pixels"))
