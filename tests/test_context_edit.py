"""Context-editing tasks: edit rules, scoring, the stream's guarantees, the curators' returns, and the
proof that answering needs the context."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mnemax.envs
from mnemax.envs.tasks import context_edit as ce
from mnemax.envs.tasks import context_edit_curators as curators
from mnemax.envs.tasks.context_edit import DELETE, MERGE, NOOP, WRITE
from mnemax.envs.tasks.context_edit_stream import CHAIN_QUERY, COMPOUND, DISTRACTOR, FACT, QUERY, UPDATE

IDS = ["ContextEdit-KVUpdate-v0", "ContextEdit-MultiHop-v0", "ContextEdit-Distractor-v0"]
K = 16  # num_keys of the KVUpdate variant: key index k is token 1 + k, value index v token 1 + K + v
C = 8  # its context_size; the current item is source C in a merge
NUM_EPISODES = 256


def key(k):
    return 1 + k


def val(v):
    return 1 + K + v


def context(*rows, size=C):
    """``(slots, stamps)`` from ``(item, stamp)`` pairs, padded with empty slots."""
    slots = np.zeros((size, 4), np.int32)
    stamps = np.zeros(size, np.int32)
    for i, (item, stamp) in enumerate(rows):
        slots[i], stamps[i] = item, stamp
    return jnp.asarray(slots), jnp.asarray(stamps)


_apply_edit = jax.jit(ce.apply_edit)
_merge = jax.jit(ce.merge_items)


def edit(rows, item, t, op, slot=0, source=C):
    slots, stamps = context(*rows)
    slots, stamps = _apply_edit(slots, stamps, jnp.asarray(item, jnp.int32), t, jnp.array([op, slot, source, 0]))
    return np.asarray(slots), np.asarray(stamps)


# ----------------------------------------------------------------------------------- edit rules
def test_write_overwrites_and_delete_empties():
    fact = [FACT, key(1), val(2), 0]
    slots, stamps = edit([([FACT, key(3), val(4), 0], 2)], fact, 9, WRITE, slot=0)
    assert slots[0].tolist() == fact and stamps[0] == 9 and (slots[1:] == 0).all()
    slots, stamps = edit([(fact, 9), (fact, 9)], [QUERY, key(1), 0, 0], 12, DELETE, slot=1)
    assert slots[0].tolist() == fact and slots[1].tolist() == [0, 0, 0, 0] and stamps[1] == 0
    slots, _ = edit([(fact, 9)], [QUERY, key(1), 0, 0], 12, NOOP, slot=0)
    assert slots[0].tolist() == fact


F12, F15, U17 = [FACT, key(1), val(2), 0], [FACT, key(1), val(5), 0], [UPDATE, key(1), val(7), 0]
LINK_AB, LINK_BV, UPDATE_BW = [FACT, key(1), key(9), 0], [FACT, key(9), val(3), 0], [UPDATE, key(9), val(6), 0]
COMPOUND_ABV = [COMPOUND, key(1), key(9), val(3)]


@pytest.mark.parametrize(
    "x,sx,y,sy,expected,stamp",
    [
        (F12, 3, U17, 8, U17, 8),  # same key: the latest value wins
        (U17, 8, F15, 3, U17, 8),  # ... whichever side it is on
        (LINK_AB, 5, LINK_BV, 2, COMPOUND_ABV, 2),  # a -> b with b -> v: a compound, stamped by v
        (LINK_BV, 2, LINK_AB, 5, COMPOUND_ABV, 2),  # either order
        (COMPOUND_ABV, 2, UPDATE_BW, 7, [COMPOUND, key(1), key(9), val(6)], 7),  # an update reaches a compound
        (UPDATE_BW, 7, COMPOUND_ABV, 2, [COMPOUND, key(1), key(9), val(6)], 7),
        (COMPOUND_ABV, 6, [FACT, key(9), val(0), 0], 4, COMPOUND_ABV, 6),  # an older value does not
    ],
)
def test_merge_rules(x, sx, y, sy, expected, stamp):
    item, merged_stamp, ok = _merge(jnp.array(x), sx, jnp.array(y), sy)
    assert bool(ok) and np.asarray(item).tolist() == expected and int(merged_stamp) == stamp


@pytest.mark.parametrize(
    "x,y",
    [
        (F12, [FACT, key(2), val(2), 0]),  # different keys, no chain
        (F12, [DISTRACTOR, key(1), val(9), 0]),  # distractors never merge
        (F12, [QUERY, key(1), 0, 0]),
        ([0, 0, 0, 0], F12),  # empty slot
        (COMPOUND_ABV, [FACT, key(1), key(4), 0]),  # a compound's head link is fixed
        (COMPOUND_ABV, COMPOUND_ABV),
    ],
)
def test_pairs_that_do_not_merge(x, y):
    item, stamp, ok = _merge(jnp.array(x), 3, jnp.array(y), 5)
    assert not bool(ok) and np.asarray(item).tolist() == x and int(stamp) == 3


def test_merge_of_two_slots_empties_the_source_and_invalid_merges_change_nothing():
    slots, stamps = edit([(F12, 2), (U17, 6)], [DISTRACTOR, key(0), val(0), 0], 9, MERGE, slot=0, source=1)
    assert slots[0].tolist() == U17 and stamps[0] == 6 and slots[1].tolist() == [0, 0, 0, 0]
    slots, stamps = edit([(LINK_AB, 4)], LINK_BV, 9, MERGE, slot=0, source=C)  # with the current item
    assert slots[0].tolist() == COMPOUND_ABV and stamps[0] == 9 and (slots[1:] == 0).all()
    before = context((F12, 2), (F15, 3))
    for slot, source in [(0, 0), (0, C)]:  # a slot with itself; a distractor
        slots, stamps = edit([(F12, 2), (F15, 3)], [DISTRACTOR, key(1), val(1), 0], 9, MERGE, slot, source)
        np.testing.assert_array_equal(slots, before[0])
        np.testing.assert_array_equal(stamps, before[1])


# ----------------------------------------------------------------------------------- scoring
@functools.lru_cache
def _kv_env():
    env, params = mnemax.envs.make("ContextEdit-KVUpdate-v0")
    return env, params, jax.jit(env.step_env)


def _step_from(rows, item, target, action, time=20):
    env, params, step_env = _kv_env()
    _, state = env.reset(jax.random.key(0), params)
    slots, stamps = context(*rows)
    item, target = jnp.array(item, jnp.int32), jnp.int32(target)
    state = state.replace(time=jnp.int32(time), slots=slots, stamps=stamps, item=item, target=target)
    obs, state, reward, terminated, truncated, info = step_env(jax.random.key(1), state, jnp.array(action), params)
    return float(reward), {k: np.asarray(v).item() for k, v in info.items()}, params


def test_right_answers_score_one_wrong_cost_nothing_and_every_occupied_slot_costs():
    rows = [(F12, 3), ([FACT, key(2), val(4), 0], 5), ([FACT, key(3), val(8), 0], 7)]
    query = [QUERY, key(2), 0, 0]
    reward, info, params = _step_from(rows, query, target=4, action=[NOOP, 0, 0, 4])
    assert reward == pytest.approx(1.0 - 3 * params.slot_cost)
    assert info["is_query"] and info["correct"] and not info["edited"] and info["occupied"] == 3 and info["target"] == 4
    reward, info, _ = _step_from(rows, query, target=4, action=[NOOP, 0, 0, 5])
    assert reward == pytest.approx(-3 * params.slot_cost) and info["is_query"] and not info["correct"]
    # The cost is charged on the context after this step's edit: deleting the asked fact saves its slot.
    reward, info, _ = _step_from(rows, query, target=4, action=[DELETE, 1, 0, 4])
    assert reward == pytest.approx(1.0 - 2 * params.slot_cost) and info["edited"] and info["occupied"] == 2
    # Outside queries the answer is ignored; a write fills a fourth slot.
    reward, info, _ = _step_from(rows, [FACT, key(5), val(1), 0], target=-1, action=[WRITE, 3, 0, 1])
    assert reward == pytest.approx(-4 * params.slot_cost) and not info["is_query"] and not info["correct"]
    assert info["edited"] and info["occupied"] == 4


def test_edits_that_change_nothing_are_not_edits():
    rows = [(F12, 3)]
    for action in ([DELETE, 5, 0, 0], [MERGE, 0, C, 0], [NOOP, 0, 0, 0]):
        _, info, _ = _step_from(rows, [DISTRACTOR, key(1), val(3), 0], target=-1, action=action)
        assert not info["edited"]


def test_observation_layout_ages_and_text():
    env, params, step_env = _kv_env()
    _, state = env.reset(jax.random.key(0), params)
    slots, stamps = context((F12, 3), (COMPOUND_ABV, 6))
    state = state.replace(time=jnp.int32(10), slots=slots, stamps=stamps, item=jnp.array(U17), target=jnp.int32(-1))
    obs = np.asarray(env.observe(state, params))
    assert obs.shape == (C + 1, 5) and obs.dtype == np.int32
    assert obs[0].tolist() == F12 + [7] and obs[1].tolist() == COMPOUND_ABV + [4] and obs[C].tolist() == U17 + [0]
    assert (obs[2:C] == 0).all()
    assert bool(env.observation_space(params).contains(obs))
    text = ce.render_text(state, params)
    assert "slot 0: fact k1 -> v2  (age 7)" in text
    assert "slot 1: compound k1 -> k9 -> v3  (age 4)" in text
    assert "item  : update k1 -> v7" in text and "occupied 2/8" in text
    frame = np.asarray(jax.jit(env.render)(state, params))
    empty = np.asarray(jax.jit(env.render)(state.replace(slots=jnp.zeros_like(slots)), params))
    assert frame.dtype == np.uint8 and frame.shape == ((C + 2) * env.cell_px, 8 * env.cell_px, 3)
    assert not np.array_equal(frame, empty)


@pytest.mark.parametrize(
    "override,match",
    [
        ({"max_open": 9}, "max_open"),
        ({"hops": 3}, "hops"),
        ({"num_keys": 5}, "num_keys"),
        ({"num_values": 1}, "num_values"),
        ({"distractor_rate": 0.8, "update_rate": 0.3}, "distractor_rate"),
        ({"update_rate": -0.1}, "update_rate"),
        ({"min_query_delay": 0}, "min_query_delay"),
        ({"max_query_delay": 4}, "max_query_delay"),
        ({"slot_cost": -1.0}, "slot_cost"),
        ({"stream_length": 0}, "stream_length"),
    ],
)
def test_invalid_params_raise(override, match):
    with pytest.raises(ValueError, match=match):
        mnemax.envs.make("ContextEdit-KVUpdate-v0", **override)


def test_multi_hop_needs_room_for_both_links():
    with pytest.raises(ValueError, match="min_query_delay"):
        mnemax.envs.make("ContextEdit-MultiHop-v0", min_query_delay=1)
    with pytest.raises(ValueError, match="num_keys"):
        mnemax.envs.make("ContextEdit-MultiHop-v0", num_keys=7)


# ----------------------------------------------------------------------------------- rollouts
CURATORS = {
    "perfect": (curators.perfect_curator, False),
    "perfect_without_merges": (curators.perfect_without_merges, False),
    "keep_latest": (curators.keep_latest_curator, False),
    "keep_everything": (curators.keep_everything, True),
}


@functools.lru_cache
def _rollout(env_id, name):
    env, params = mnemax.envs.make(env_id)
    curator, unlimited = CURATORS[name]
    if unlimited:
        params = curators.unlimited_context(params)
    steps = curators.rollout(env, params, curator, jax.random.key(0), NUM_EPISODES)
    steps = {k: np.asarray(v) for k, v in steps.items()}
    summary = {k: np.asarray(v) for k, v in curators.summarize(steps, params).items()}
    return params, steps, summary


def _replay(items, hops):
    """Follows one episode's stream by its rules. Per query: ``(step, answer token, step the fact
    opened, step of the oldest item the answer needs)``; also the number of facts."""
    latest, opened, queries, facts = {}, {}, [], 0
    for t, (tag, a, b, _) in enumerate(items.tolist()):
        if tag in (FACT, UPDATE):
            latest[a] = (b, t)
            if tag == FACT:
                facts += 1
                opened[a] = t
        elif tag in (QUERY, CHAIN_QUERY):
            value, oldest = latest[a]
            start = opened[a]
            if tag == CHAIN_QUERY:
                bridge = value
                value, when = latest[bridge]
                oldest, start = min(oldest, when), min(start, opened[bridge])
            queries.append((t, value, start, oldest))
    return queries, facts


@pytest.mark.parametrize("env_id", IDS)
def test_stream_follows_its_rules(env_id):
    """Targets are the latest values (updates overwrite), each fact is asked about exactly once, at most
    max_open facts are needed at a time, and queries come min_query_delay steps or more after the fact
    except while the stream closes its last facts."""
    params, steps, _ = _rollout(env_id, "perfect")
    num_keys, hops, length = params.num_keys, params.hops, int(params.stream_length)
    assert steps["needed"].max() <= params.max_open and (steps["needed"][:, -1] == 0).all()
    delays = []
    for items, targets in zip(steps["item"], steps["target"]):
        queries, facts = _replay(items, hops)
        assert facts == hops * len(queries)
        for t, value, start, _ in queries:
            assert value == 1 + num_keys + targets[t]
            if t < length - hops * params.max_open:
                assert t - start >= int(params.min_query_delay)
            delays.append(t - start)
        assert (targets[[t for t, *_ in queries]] >= 0).all() and (targets >= 0).sum() == len(queries)
    assert np.mean(delays) > int(params.min_query_delay)


def test_compound_prob_merges_a_chains_second_link_into_its_first():
    """With ``compound_prob = 1`` every chain's second link arrives as the compound ``a -> b -> v`` whose
    value is what the chain's query then asks for (unless an update comes between); with 0 no compound
    arrives; every other item of the stream stays as it was."""
    streams = {}
    for prob in (0.0, 1.0):
        env, params = mnemax.envs.make("ContextEdit-MultiHop-v0", compound_prob=prob)
        steps = curators.rollout(env, params, curators.keep_latest_curator, jax.random.key(3), 8)
        streams[prob] = (np.asarray(steps["item"]), np.asarray(steps["target"]))
    (plain, targets), (merged, merged_targets) = streams[0.0], streams[1.0]
    np.testing.assert_array_equal(merged_targets, targets)
    assert not (plain[..., 0] == COMPOUND).any()
    arrived = merged[..., 0] == COMPOUND
    assert arrived.sum() == (plain[..., 0] == CHAIN_QUERY).sum() > 0  # one per chain
    np.testing.assert_array_equal(merged[~arrived], plain[~arrived])
    num_keys = int(params.num_keys)
    for items, old, answers in zip(merged, plain, targets):
        for t in np.flatnonzero(items[:, 0] == COMPOUND):
            a, b, v = items[t, 1:].tolist()
            assert old[t, 0] == FACT and old[t, 1:3].tolist() in ([a, b], [b, v])  # the link it stands for
            query = next(u for u in range(t + 1, len(items)) if items[u, 0] == CHAIN_QUERY and items[u, 1] == a)
            updated = any(items[u, 0] == UPDATE and items[u, 1] == b for u in range(t + 1, query))
            assert updated or v == 1 + num_keys + answers[query]


@pytest.mark.parametrize("env_id", IDS)
def test_stream_depends_only_on_the_reset_key(env_id):
    _, perfect, _ = _rollout(env_id, "perfect")
    _, fifo, _ = _rollout(env_id, "keep_latest")
    np.testing.assert_array_equal(perfect["item"], fifo["item"])
    np.testing.assert_array_equal(perfect["target"], fifo["target"])
    assert len({items.tobytes() for items in perfect["item"]}) == NUM_EPISODES


def test_context_answer_reads_the_latest_value_and_knows_when_it_does_not():
    env, params, _ = _kv_env()
    slots, stamps = context((F12, 3), (U17, 9), (LINK_AB, 4), (LINK_BV, 5))
    ages = 20 - stamps

    def ask(kind, k):
        obs = jnp.concatenate([jnp.concatenate([slots, ages[:, None]], 1), jnp.array([[kind, key(k), 0, 0, 0]])])
        known, answer = curators.context_answer(obs, params)
        return bool(known), int(answer)

    assert ask(QUERY, 1) == (True, 7)  # the update is newer than the fact
    assert ask(CHAIN_QUERY, 1) == (False, 0)  # k1 -> v7 now, not k1 -> k9: no chain to follow
    assert ask(QUERY, 9) == (True, 3)
    assert ask(QUERY, 4) == (False, 0)  # nothing about k4: a guess


@pytest.mark.parametrize("env_id", IDS)
def test_perfect_curator_reaches_the_best_return(env_id):
    _, steps, summary = _rollout(env_id, "perfect")
    assert (summary["accuracy"] == 1.0).all() and summary["queries"].min() > 0
    np.testing.assert_array_equal(steps["occupied"], steps["needed"])  # exactly the facts still needed
    np.testing.assert_allclose(summary["return"], summary["best_return"], rtol=1e-5, atol=1e-4)
    assert steps["edited"].any(axis=1).all() and not steps["edited"].all()


@pytest.mark.parametrize("env_id", IDS)
def test_perfect_without_merges_falls_short_only_where_chains_need_merging(env_id):
    """Writing an update over its key's slot does what merging it does; a chain's two links written apart
    take two slots, so on MultiHop the write-only oracle runs out of room and misses answers."""
    params, steps, summary = _rollout(env_id, "perfect_without_merges")
    _, perfect_steps, perfect = _rollout(env_id, "perfect")
    assert not (steps["action"][..., 0] == MERGE).any() and (summary["merges"] == 0).all()
    assert (perfect["merges"] > 0).any()  # the oracle merges updates, and on MultiHop the links of chains
    if params.hops == 1:
        assert (summary["accuracy"] == 1.0).all()
        np.testing.assert_array_equal(steps["occupied"], perfect_steps["occupied"])
    else:
        assert 0.3 < summary["accuracy"].mean() < 0.95
        assert steps["occupied"].mean() > perfect_steps["occupied"].mean()


@pytest.mark.parametrize("env_id", IDS)
def test_keep_latest_loses_facts_queried_long_after_they_appeared(env_id):
    """FIFO answers right exactly when everything the answer needs is among the last context_size items
    (or when its fallback guess, value 0, happens to be right), and that is rare here."""
    params, steps, summary = _rollout(env_id, "keep_latest")
    _, _, perfect = _rollout(env_id, "perfect")
    predicted, correct = [], []
    for items, targets, right in zip(steps["item"], steps["target"], steps["correct"]):
        for t, _, _, oldest in _replay(items, params.hops)[0]:
            predicted.append(t - oldest <= params.context_size or targets[t] == 0)
            correct.append(right[t])
    np.testing.assert_array_equal(correct, predicted)
    assert np.mean(correct) < 0.5
    assert summary["return"].mean() < perfect["return"].mean() - 5
    assert steps["occupied"].mean() > perfect["mean_occupied"].mean()


@pytest.mark.parametrize("env_id", IDS)
def test_keep_everything_answers_all_but_pays_for_every_item(env_id):
    params, steps, summary = _rollout(env_id, "keep_everything")
    _, _, perfect = _rollout(env_id, "perfect")
    assert params.context_size == params.stream_length
    assert (summary["accuracy"] == 1.0).all()
    every_item = np.arange(1, params.stream_length + 1)  # one more slot after each step
    np.testing.assert_array_equal(steps["occupied"], np.broadcast_to(every_item, steps["occupied"].shape))
    np.testing.assert_allclose(summary["best_return"], perfect["best_return"], rtol=1e-5)  # the same streams
    assert (summary["return"] < perfect["return"]).all()
    assert summary["mean_occupied"].mean() > 5 * perfect["mean_occupied"].mean()


@pytest.mark.parametrize("env_id", ["ContextEdit-KVUpdate-v0", "ContextEdit-MultiHop-v0"])
def test_memory_is_needed(env_id):
    """Answering from the current item alone -- the best table from query to answer, fitted on half of
    the episodes and scored on the other half -- is at chance; the perfect curator answers everything."""
    params, steps, summary = _rollout(env_id, "perfect")
    assert (summary["accuracy"] == 1.0).all()
    half = NUM_EPISODES // 2

    def queries(episodes):
        mask = steps["is_query"][episodes]
        return steps["item"][episodes][mask][:, 1], steps["target"][episodes][mask]

    keys, targets = queries(slice(None, half))
    counts = np.zeros((params.num_keys + 1, params.num_values))
    np.add.at(counts, (keys, targets), 1)
    table = counts.argmax(axis=1)
    keys, targets = queries(slice(half, None))
    accuracy = np.mean(table[keys] == targets)
    chance = 1.0 / params.num_values
    assert abs(accuracy - chance) < 4 * np.sqrt(chance * (1 - chance) / len(targets)), accuracy


def test_demonstration_is_the_oracle_and_marks_what_its_action_depends_on():
    """The teacher's action (for kickstarting a learner) is the oracle curator's; the mask says which of
    ``[op, slot, source, answer]`` it depends on: a merge all but the answer, a write its slot, a keep
    only the op, a query's delete its slot and its answer."""
    env, params = mnemax.envs.make("ContextEdit-MultiHop-v0", context_size=2, max_open=2)
    k, v = (lambda i: 1 + i), (lambda i: 1 + params.num_keys + i)
    link = [FACT, k(0), k(1), 0, 3]  # k0 -> k1, 3 steps old
    compound = [COMPOUND, k(0), k(1), v(5), 1]
    cases = [  # (slots, current item, expected action, relevant)
        ([link, [0] * 5], [FACT, k(1), v(5), 0, 0], (MERGE, 0, 2), (1, 1, 1, 0)),
        ([link, [0] * 5], [DISTRACTOR, k(4), v(2), 0, 0], (NOOP,), (1, 0, 0, 0)),
        ([link, [0] * 5], [FACT, k(6), k(7), 0, 0], (WRITE, 1), (1, 1, 0, 0)),
        ([[0] * 5, compound], [CHAIN_QUERY, k(0), 0, 0, 0], (DELETE, 1, 2, 5), (1, 1, 0, 1)),
    ]
    for slots, item, expected, relevant in cases:
        obs = jnp.array(slots + [item], jnp.int32)
        action, mask = env.demonstration(obs, params)
        np.testing.assert_array_equal(action, curators.perfect_curator(obs, params))
        assert tuple(np.asarray(action)[: len(expected)]) == expected, (item, action)
        assert tuple(np.asarray(mask).astype(int)) == relevant, (item, mask)
