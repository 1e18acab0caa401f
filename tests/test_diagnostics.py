"""Rules of the memory diagnostics (POPGym cards, N-parity, delayed match-to-sample) and the proof that
each of them needs memory.

One batch of whole episodes per registered id serves every check of that id: the answers the task
expects are recomputed here from the observations alone, rewards are checked against them, a scripted
policy with memory is shown to reach the maximum return, and the best memoryless policy is measured.
No action changes what these tasks show, so the best memoryless policy answers each observation with
the answer most often right after it, and its accuracy can be computed from the same samples; the
exhaustive search of ``memory_probe.best_memoryless`` confirms it on instances small enough to search.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mnemax.envs
from mnemax.envs.tasks import cards
from mnemax.envs.tasks.diagnostics import PROBE, SAMPLE
from memory_probe import best_memoryless

TASKS = ("RepeatFirst", "RepeatPrevious", "CountRecall", "Autoencode", "NParity", "DelayedMatch")
SAMPLES = 100_000  # scored answers per id for the memoryless bound ...
MIN_EPISODES = 1024  # ... from at least this many episodes (RepeatFirst asks one question per episode) ...
MAX_STEPS = 500_000  # ... and at most this many steps
MARGIN = 0.03  # how far above chance the best memoryless accuracy may lie


def _task(env_id: str) -> str:
    return env_id.split("/")[1].split("-")[0]


IDS = [i for i in mnemax.envs.registered_ids() if _task(i) in TASKS]


# --------------------------------------------------------------------- the rules, from observations alone
def _answers_from_observations(task: str, obs: np.ndarray, params) -> tuple[np.ndarray, np.ndarray]:
    """``(answers, scored)`` for one episode's observations ``[T, D]``, straight from the task's rules."""
    steps = np.arange(len(obs))
    if task == "RepeatFirst":
        suits = obs.argmax(1)
        return np.full(len(obs), suits[0]), np.ones(len(obs), bool)
    if task == "RepeatPrevious":
        suits, k = obs.argmax(1), params.k
        return suits[np.maximum(steps - (k - 1), 0)], steps >= k - 1
    if task == "CountRecall":
        kinds = obs.shape[1] // 2
        shown = np.cumsum(obs[:, :kinds], axis=0)  # [T, K]: value cards of each kind shown up to step t
        return shown[steps, obs[:, kinds:].argmax(1)].astype(int), np.ones(len(obs), bool)
    if task == "Autoencode":
        n = (len(obs) + 1) // 2
        suits = obs[:n, :4].argmax(1)
        return suits[np.clip(2 * n - 2 - steps, 0, n - 1)], steps >= n - 1
    if task == "NParity":
        ones = np.concatenate([[0], np.cumsum(obs.argmax(1))])  # ones[t]: 1-bits among the first t
        n = params.n
        return (ones[steps + 1] - ones[np.maximum(steps + 1 - n, 0)]) % 2, steps >= n - 1
    if task == "DelayedMatch":
        symbols, phase = obs[:, :-3].argmax(1), obs[:, -3:].argmax(1)
        sample_step = np.maximum.accumulate(np.where(phase == SAMPLE, steps, 0))
        return (symbols == symbols[sample_step]).astype(int), phase == PROBE
    raise KeyError(task)


# --------------------------------------------------------------------- scripted policies with memory
def _memory_policy(task: str, params):
    """``(policy, memory)``: ``policy(obs, memory) -> (action, memory)`` answers every question right
    using only the observations it has seen."""
    if task == "RepeatFirst":

        def repeat_first(obs, first):  # -1 until the first card is seen
            first = jnp.where(first < 0, jnp.argmax(obs), first)
            return first, first

        return repeat_first, jnp.int32(-1)
    if task == "RepeatPrevious":

        def repeat_previous(obs, recent):  # the last k suits, oldest first
            recent = jnp.concatenate([recent[1:], jnp.argmax(obs)[None]])
            return recent[0], recent

        return repeat_previous, jnp.zeros(params.k, jnp.int32)
    if task == "CountRecall":
        kinds = cards.NUM_KINDS[params.count_by]

        def count_recall(obs, counts):
            counts = counts + obs[:kinds].astype(jnp.int32)
            return counts[jnp.argmax(obs[kinds:])], counts

        return count_recall, jnp.zeros(kinds, jnp.int32)
    if task == "Autoencode":
        n = cards.DECK_SIZE * params.num_decks

        def autoencode(obs, memory):
            seen, t = memory
            seen = jnp.where(obs[:4].sum() > 0, seen.at[jnp.minimum(t, n - 1)].set(jnp.argmax(obs[:4])), seen)
            return seen[jnp.clip(2 * n - 2 - t, 0, n - 1)], (seen, t + 1)

        return autoencode, (jnp.zeros(n, jnp.int32), jnp.int32(0))
    if task == "NParity":

        def parity(obs, recent):  # the last n bits
            recent = jnp.concatenate([recent[1:], jnp.argmax(obs)[None]])
            return jnp.sum(recent) % 2, recent

        return parity, jnp.zeros(params.n, jnp.int32)
    if task == "DelayedMatch":

        def delayed_match(obs, sample):
            symbol, phase = jnp.argmax(obs[:-3]), jnp.argmax(obs[-3:])
            sample = jnp.where(phase == SAMPLE, symbol, sample)
            return (symbol == sample).astype(jnp.int32), sample

        return delayed_match, jnp.int32(0)
    raise KeyError(task)


def _episodes(env, params, policy, memory, epsilons, seed=0):
    """One whole episode per entry of ``epsilons``: ``policy`` acts, except that with probability
    ``epsilon`` a step takes a uniformly random action instead. Returns a dict of ``[E, T]`` arrays
    (``obs`` is ``[E, T, D]``) and the observation after the last step, ``[E, D]``."""
    steps = int(env.episode_length(params))
    num_actions = env.action_space(params).n

    def episode(key, epsilon):
        key, reset_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def body(carry, key):
            obs, state, memory = carry
            key, coin_key, action_key = jax.random.split(key, 3)
            action, memory = policy(obs, memory)
            explore = jax.random.uniform(coin_key) < epsilon
            action = jnp.where(explore, jax.random.randint(action_key, (), 0, num_actions), action)
            next_obs, state, reward, terminated, truncated, info = env.step_env(key, state, action, params)
            out = dict(obs=obs, action=action, reward=reward, terminated=terminated, truncated=truncated, **info)
            return (next_obs, state, memory), out

        (final_obs, _, _), trajectory = jax.lax.scan(body, (obs, state, memory), jax.random.split(key, steps))
        return trajectory, final_obs

    keys = jax.random.split(jax.random.key(seed), len(epsilons))
    trajectory, final_obs = jax.jit(jax.vmap(episode))(keys, jnp.asarray(epsilons, jnp.float32))
    return jax.tree_util.tree_map(np.asarray, trajectory), np.asarray(final_obs)


def _memoryless_bound(obs: np.ndarray, answers: np.ndarray, num_actions: int) -> dict[str, float]:
    """Accuracies on (observation, right answer) samples of uniform guessing, of the best constant
    answer ("chance") and of the best answer per distinct observation ("memoryless").

    Both best answers are picked on the samples they are scored on, which flatters them a little
    (more so with many distinct observations); "memoryless_held_out" picks the memoryless answers on
    one half of the samples and scores them on the other, which does not.
    """
    assert np.isin(obs, (0.0, 1.0)).all()
    ids = obs.astype(np.int64) @ (1 << np.arange(obs.shape[1], dtype=np.int64))  # an integer per 0/1 vector
    _, which = np.unique(ids, return_inverse=True)
    half = len(which) // 2

    def joint(rows):
        table = np.zeros((which.max() + 1, num_actions))
        np.add.at(table, (which[rows], answers[rows]), 1)
        return table

    everything, first = joint(slice(None)), joint(slice(0, half))
    return {
        "uniform": 1.0 / num_actions,
        "chance": everything.sum(0).max() / len(which),
        "memoryless": everything.max(1).sum() / len(which),
        "memoryless_held_out": np.mean(first.argmax(1)[which[half:]] == answers[half:]),
    }


@pytest.mark.parametrize("env_id", IDS)
def test_rules_and_memory_needed(env_id):
    task = _task(env_id)
    env, params = mnemax.envs.make(env_id)
    steps, num_answers = int(env.episode_length(params)), int(env.num_answers(params))
    num_actions = env.action_space(params).n
    policy, memory = _memory_policy(task, params)
    perfect = min(max(math.ceil(SAMPLES / num_answers), MIN_EPISODES), MAX_STEPS // steps)  # scripted episodes
    epsilons = np.concatenate([np.zeros(perfect), np.full(16, 0.05), np.full(16, 0.5)])
    run, final_obs = _episodes(env, params, policy, memory, epsilons)

    # The answer expected at every step and whether it counts follow from the observations alone.
    for e in [*range(64), *range(perfect, len(epsilons))]:
        answers, scored = _answers_from_observations(task, run["obs"][e], params)
        np.testing.assert_array_equal(run["scored"][e], scored)
        np.testing.assert_array_equal(run["answer"][e][scored], answers[scored])
    assert run["scored"][0].sum() == num_answers

    # Rewards: +1/A for a right answer, -1/A for a wrong one, 0 when not scored; the episode ends at its
    # fixed length, by termination, with success exactly when every scored answer was right.
    right = run["action"] == run["answer"]
    scale = np.float32(1.0 / num_answers)
    np.testing.assert_array_equal(run["reward"], np.where(run["scored"], np.where(right, scale, -scale), 0))
    np.testing.assert_array_equal(run["terminated"], np.broadcast_to(np.arange(steps) == steps - 1, run["terminated"].shape))
    assert not run["truncated"].any()
    all_right = np.all(right | ~run["scored"], axis=1)
    np.testing.assert_array_equal(run["success"][:, -1], all_right)
    assert not run["success"][:, :-1].any()
    returns = run["reward"].sum(1)
    mistakes = np.sum(~right & run["scored"], axis=1)
    np.testing.assert_allclose(returns, 1.0 - 2.0 * mistakes / num_answers, atol=1e-5)
    assert mistakes[perfect:].sum() > 0 and (returns >= -1 - 1e-5).all() and (returns <= 1 + 1e-5).all()

    # The policy with memory answers everything right: the maximum return, 1.
    assert all_right[:perfect].all()
    np.testing.assert_allclose(returns[:perfect], 1.0, atol=1e-5)

    # Cards come from full decks: over an episode (and its final observation) every suit of RepeatFirst,
    # RepeatPrevious and Autoencode shows up 13 times per deck.
    if task in ("RepeatFirst", "RepeatPrevious", "Autoencode"):
        shown = np.concatenate([run["obs"][:, :, :4], final_obs[:, None, :4]], axis=1).sum(1)
        np.testing.assert_array_equal(shown, 13 * params.num_decks)

    # The best memoryless policy is at chance, up to a small margin.
    scored = run["scored"][:perfect]
    bound = _memoryless_bound(run["obs"][:perfect][scored], run["answer"][:perfect][scored], num_actions)
    print(env_id, ", ".join(f"{name} {value:.4f}" for name, value in bound.items()))
    assert bound["memoryless"] - bound["chance"] < MARGIN, bound


def test_popgym_sizes():
    expected = {
        "RepeatFirst": ({"num_decks": 1}, {"num_decks": 8}, {"num_decks": 16}),
        "RepeatPrevious": ({"num_decks": 1, "k": 4}, {"num_decks": 2, "k": 32}, {"num_decks": 3, "k": 64}),
        "CountRecall": (
            {"num_decks": 1, "count_by": "colors"},
            {"num_decks": 2, "count_by": "suits"},
            {"num_decks": 4, "count_by": "ranks"},
        ),
        "Autoencode": ({"num_decks": 1}, {"num_decks": 2}, {"num_decks": 3}),
    }
    lengths = {
        "RepeatFirst": (51, 415, 831),
        "RepeatPrevious": (51, 103, 155),
        "CountRecall": (51, 103, 207),
        "Autoencode": (103, 207, 311),
        "NParity": (64, 64, 64),
        "DelayedMatch": (48, 144, 528),
    }
    for task in TASKS:
        for i, level in enumerate(("Easy", "Medium", "Hard")):
            env, params = mnemax.envs.make(f"{task}-{level}-v0")
            assert int(env.episode_length(params)) == lengths[task][i]
            for name, value in expected.get(task, ({}, {}, {}))[i].items():
                assert getattr(params, name) == value
    env, params = mnemax.envs.make("CountRecall-Hard-v0")
    assert env.action_space(params).n == 17 and env.observation_space(params).shape == (26,)


@pytest.mark.parametrize(
    "env_id,overrides,match",
    [
        ("RepeatPrevious-Easy-v0", {"k": 52}, "k must be"),
        ("RepeatPrevious-Medium-v0", {"k": 0}, "k must be"),
        ("RepeatFirst-Easy-v0", {"num_decks": 0}, "num_decks"),
        ("CountRecall-Easy-v0", {"count_by": "faces"}, "count_by"),
        ("NParity-Easy-v0", {"n": 0}, "n must be"),
        ("NParity-Easy-v0", {"n": 65}, "n must be"),
        ("DelayedMatch-Easy-v0", {"delay": -1}, "delay"),
        ("DelayedMatch-Easy-v0", {"num_trials": 0}, "num_trials"),
        ("DelayedMatch-Easy-v0", {"num_symbols": 1}, "num_symbols"),
    ],
)
def test_invalid_params_raise(env_id, overrides, match):
    with pytest.raises(ValueError, match=match):
        mnemax.envs.make(env_id, **overrides)


def test_repeat_previous_with_k_1_repeats_the_current_card():
    env, params = mnemax.envs.make("RepeatPrevious-Easy-v0", k=1)
    obs, state = env.reset(jax.random.key(0), params)
    right, scored = env.answer(state, params)
    assert bool(scored) and int(right) == int(np.argmax(obs)) and int(env.num_answers(params)) == 51


@pytest.mark.parametrize("env_id,first_flagged", [("RepeatFirst-Easy-v0", None), ("RepeatPrevious-Easy-v0", 3)])
def test_card_flag_follows_popgym(env_id, first_flagged):
    """The fifth observation entry is POPGym's flag: RepeatFirst's ``is_start`` (the first step only),
    RepeatPrevious's ``should_act`` (every step from the first scored one, ``k - 1``, on)."""
    env, params = mnemax.envs.make(env_id)
    obs, state = env.reset(jax.random.key(0), params)
    flags = []
    for t in range(8):
        flags.append(float(obs[4]))
        assert float(obs[:4].sum()) == 1.0  # a card is shown at every step
        obs, state, *_ = env.step(jax.random.key(t), state, 0, params)
    expected = [1.0] + [0.0] * 7 if first_flagged is None else [float(t >= first_flagged) for t in range(8)]
    assert flags == expected


@pytest.mark.parametrize(
    "env_id,overrides,observations,horizon",
    [
        # one scored answer: the parity of the two bits of the stream
        ("NParity-Easy-v0", {"stream_length": 2}, np.eye(2), 2),
        # one trial without distractors: sample, two blanks, probe
        (
            "DelayedMatch-Easy-v0",
            {"num_trials": 1, "delay": 2, "distractors": False},
            [np.eye(7)[s] + np.eye(7)[4] for s in range(4)]
            + [np.eye(7)[5]]
            + [np.eye(7)[s] + np.eye(7)[6] for s in range(4)],
            4,
        ),
    ],
)
def test_exhaustive_memoryless_search_is_at_chance(env_id, overrides, observations, horizon):
    """On instances whose observations are few, every deterministic memoryless policy is tried."""
    env, params = mnemax.envs.make(env_id, **overrides)
    assert int(env.episode_length(params)) == horizon
    best, table = best_memoryless(env, params, observations, num_actions=2, num_episodes=1024, max_steps=horizon)
    print(env_id, overrides, f"best memoryless success {best:.4f}, chance 0.5")
    assert best < 0.5 + 0.06, f"best memoryless success {best} with table {table}"


def test_traced_params_share_one_compilation():
    """k, n, delay and num_trials are traced: changing them does not compile the step again."""
    for env_id, field, values in (("RepeatPrevious-Easy-v0", "k", (4, 9)), ("DelayedMatch-Easy-v0", "delay", (4, 7))):
        env, params = mnemax.envs.make(env_id)
        _, state = env.reset(jax.random.key(0), params)
        traces = []

        def step(state, params):
            traces.append(1)  # runs once per trace, not per call
            return env.step_env(jax.random.key(0), state, 0, params)

        step = jax.jit(step)
        for value in values:
            step(state, params.replace(**{field: value}))
        assert len(traces) == 1


def test_render_shows_the_card_to_remember():
    env, params = mnemax.envs.make("RepeatFirst-Easy-v0")
    _, state = env.reset(jax.random.key(0), params)
    render = jax.jit(env.render)
    frames = [np.asarray(render(state.replace(first=jnp.int32(s)), params)) for s in range(4)]
    assert all(f.shape == frames[0].shape and f.dtype == np.uint8 for f in frames)
    assert len({f.tobytes() for f in frames}) == 4
