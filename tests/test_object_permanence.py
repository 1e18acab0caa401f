"""Object permanence rules, the identical dynamics of its two observation modes, and the proof that it
needs memory. The scripted policies read the symbolic observation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mnemax.envs
from mnemax.envs.tasks import object_permanence as op
from mnemax.envs.tasks.ballet import AGENT_START, NUM_COLOURS, NUM_SHAPES, SPOTS
from test_ballet import (
    answer_phase_is_blind,
    assert_always_succeeds,
    assert_memoryless_at_chance,
    assert_modes_agree,
    play,
    towards,
)

ENV = op.ObjectPermanence()
# Symbolic channels: wall, agent, box, colour_0..9, shape_0..9.
BOX_CHANNEL = 2
COLOUR_CHANNELS = slice(3, 3 + NUM_COLOURS)
SHAPE_CHANNELS = slice(3 + NUM_COLOURS, 3 + NUM_COLOURS + NUM_SHAPES)


def _params(**overrides):
    return ENV.default_params.replace(**overrides)


def _parse(obs):
    """``(object code per cell [11, 11] (0: none, else 1 + colour * 10 + shape), agent cell, cue code)``."""
    grid, cue = ENV.split_symbolic(obs)
    colour, shape = grid[..., COLOUR_CHANNELS], grid[..., SHAPE_CHANNELS]
    code = jnp.where(colour.sum(-1) > 0, 1 + jnp.argmax(colour, -1) * NUM_SHAPES + jnp.argmax(shape, -1), 0)
    agent = jnp.array(jnp.unravel_index(jnp.argmax(grid[..., 1]), grid.shape[:2]))
    cue_code = jnp.where(cue.sum() > 0, 1 + jnp.argmax(cue[:NUM_COLOURS]) * NUM_SHAPES + jnp.argmax(cue[NUM_COLOURS:]), 0)
    return grid, code, agent, cue_code


def _remembering_policy(_, obs, memory):
    """Notes which object waits in front of each spot's box (``memory[spot]``); in the answer phase
    walks to the box noted for the cued object."""
    _, code, agent, cue_code = _parse(obs)
    waiting = code[op.FRONT_CELLS[:, 0], op.FRONT_CELLS[:, 1]].astype(jnp.float32)
    memory = jnp.where(waiting > 0, waiting, memory)
    spot = jnp.argmax(memory == cue_code)
    return towards(agent, jnp.asarray(SPOTS)[spot]), memory


def _memoryless_policy(_, obs, memory):
    """Picks the (cue mod boxes)-th box in reading order: a function of the current observation only."""
    grid, _, agent, cue_code = _parse(obs)
    boxes = grid[SPOTS[:, 0], SPOTS[:, 1], BOX_CHANNEL] > 0
    k = cue_code % jnp.maximum(boxes.sum(), 1)
    spot = jnp.argmax(jnp.cumsum(boxes) == k + 1)
    return towards(agent, jnp.asarray(SPOTS)[spot]), memory


# ----------------------------------------------------------------------------------------- rules
def test_objects_show_one_at_a_time_then_hide_in_their_boxes():
    params = _params(num_boxes=4, num_objects=3, show_steps=3, delay=2, observation="symbolic")
    _, state = ENV.reset(jax.random.key(4), params)
    start = int(ENV.answer_start(params))
    assert start == 3 * (3 + 2)
    actions = jax.random.randint(jax.random.key(5), (start + 1,), 0, 8)
    obs, states, reward, terminated, _, info = play(ENV, params, state, actions)
    grid, code, _, cue_code = jax.vmap(_parse)(obs)
    code, boxes = np.asarray(code), np.asarray(grid[..., BOX_CHANNEL] > 0)
    spots = SPOTS[np.asarray(state.spot)]
    for t in range(1, start + 1):
        j, i = divmod(t - 1, 5)
        expected = np.zeros((11, 11), np.int64)
        box_cells = {tuple(s) for s in spots[:4]}
        if i < 3:  # object j is on show: in front of its box, then in it
            cell = tuple(op.FRONT_CELLS[int(state.spot[j])]) if i < 2 else tuple(spots[j])
            expected[cell] = 1 + int(state.colour[j]) * NUM_SHAPES + int(state.shape[j])
            box_cells.discard(cell)
        np.testing.assert_array_equal(code[t - 1], expected, err_msg=f"step {t}")
        assert {tuple(c) for c in np.argwhere(boxes[t - 1])} == box_cells
    assert np.all(np.asarray(states.agent[:start]) == AGENT_START)
    assert not np.any(cue_code[: start - 1]) and np.all(cue_code[start - 1 :] > 0)
    np.testing.assert_array_equal(info["phase"], (np.arange(start + 1) >= start).astype(np.int32))
    assert not np.any(reward) and not np.any(terminated)


def test_cue_shows_one_of_the_hidden_objects():
    params = _params(num_boxes=6, num_objects=4, delay=1)
    keys = jax.random.split(jax.random.key(0), 4000)
    states = jax.jit(jax.vmap(ENV.initial_state, in_axes=(0, None)))(keys, params)
    target = np.asarray(states.target)
    assert np.all(np.bincount(target, minlength=6)[:4] > 850) and np.all(target < 4)
    state = jax.tree_util.tree_map(lambda x: x[0], states).replace(time=jnp.int32(ENV.answer_start(params)))
    frame = np.asarray(ENV.observe(state, params))
    wanted = ENV.tiles.pixels[int(ENV.appearance(state)[state.target])]
    for r, c in op.CUE_CELLS:
        np.testing.assert_array_equal(frame[r * 8 : r * 8 + 8, c * 8 : c * 8 + 8], wanted)
    earlier = np.asarray(ENV.observe(state.replace(time=state.time - 1), params))
    assert not np.array_equal(earlier[:8, :8], wanted)
    _, _, _, cue_code = _parse(ENV.observe(state, params.replace(observation="symbolic")))
    assert int(cue_code) == 1 + int(state.colour[state.target]) * NUM_SHAPES + int(state.shape[state.target])


def _answer_state(params, boxes_at):
    """An episode at the start of the answer phase; box k stands at spot ``boxes_at[k]``, object 0 is wanted."""
    _, state = ENV.reset(jax.random.key(0), params)
    spot = jnp.array(list(boxes_at) + [s for s in range(8) if s not in boxes_at])
    return state.replace(spot=spot, target=jnp.int32(0), time=jnp.int32(ENV.answer_start(params)))


@pytest.mark.parametrize("walk_to,reward", [(0, 1.0), (7, 0.0), (2, 0.0)])
def test_right_box_pays_one_any_other_box_zero_all_end(walk_to, reward):
    """Box 0 (spot (2, 2)) holds the wanted object, box 1 (spot (8, 8)) another, box 2 (spot (2, 8)) none."""
    params = _params(num_boxes=3, num_objects=2)
    state = _answer_state(params, boxes_at=(0, 7, 2))
    path = {0: [7, 7, 7], 7: [3, 3, 3], 2: [1, 1, 1]}[walk_to]
    _, states, rewards, terminated, truncated, info = play(ENV, params, state, jnp.array(path))
    np.testing.assert_array_equal(states.agent[-1], SPOTS[walk_to])
    assert rewards.tolist() == [0.0, 0.0, reward] and terminated.tolist() == [False, False, True]
    assert info["success"].tolist() == [False, False, reward == 1.0] and not np.any(truncated)


def test_answer_time_limit_and_walls():
    params = _params(num_boxes=2, num_objects=2, answer_steps=6)
    state = _answer_state(params, boxes_at=(0, 7))
    # N x4 passes the empty spot (2, 5) and stops at the wall; NE into the wall; then out of time.
    _, states, rewards, terminated, truncated, _ = play(ENV, params, state, jnp.array([0, 0, 0, 0, 1, 4]))
    assert [tuple(a) for a in np.asarray(states.agent)] == [(4, 5), (3, 5), (2, 5), (1, 5), (1, 5), (2, 5)]
    assert terminated.tolist() == [False] * 5 + [True] and not np.any(rewards) and not np.any(truncated)


def test_invalid_params_raise():
    for bad in ({"num_objects": 5}, {"num_boxes": 9}, {"num_objects": 0}, {"show_steps": 0}, {"delay": 0}, {"observation": "x"}):
        with pytest.raises(ValueError):
            mnemax.envs.make("ObjectPermanence-4-Delay16-v0", **bad)


def test_pixels_and_symbolic_have_identical_dynamics():
    # 24 hiding steps and at most 64 answer moves: in 100 steps every copy ends an episode.
    shapes = assert_modes_agree(ENV, _params(num_boxes=4, num_objects=4, delay=2), num_envs=16, num_steps=100)
    assert shapes == ((88, 88, 3), (11 * 11 * 23 + 20,))


# ----------------------------------------------------------------------------------------- memory
def test_answer_phase_does_not_show_which_box_holds_what():
    """Hide the wanted object in each other box in turn: the hiding phase changes, the answer phase
    does not, yet the right box does."""
    for observation in ("pixels", "symbolic"):
        params = _params(num_boxes=4, num_objects=3, delay=2, observation=observation)
        _, state = ENV.reset(jax.random.key(7), params)
        t = int(state.target)
        alternatives = [
            state.replace(spot=state.spot.at[t].set(state.spot[m]).at[m].set(state.spot[t])) for m in range(4) if m != t
        ]
        answer_phase_is_blind(ENV, params, state, alternatives)


@pytest.mark.optimized  # episodes played step by step
def test_memoryless_policy_is_at_chance():
    params = _params(delay=1, observation="symbolic")
    longest = 8 * (4 + 1) + params.answer_steps

    def of_size(n):
        return params.replace(num_boxes=n, num_objects=n)

    assert_memoryless_at_chance(ENV, of_size, _memoryless_policy, [2, 4, 8], 500, longest)


@pytest.mark.parametrize("env_id", ["ObjectPermanence-4-Delay16-Symbolic-v0", "ObjectPermanence-8-Delay48-Symbolic-v0"])
def test_policy_with_memory_always_succeeds(env_id):
    assert_always_succeeds(env_id, _remembering_policy)
