"""DCPO and the context editor: segments, groups, the surrogate, gradients, the trainer's outputs, and a
small learning check on a reduced key-value task."""

import csv
import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnemax.agents import distributions, greedy_curator
from mnemax.agents.context_editor import token_matches
from mnemax.envs.tasks import context_edit_curators as curators
from mnemax.train import DCPOConfig, PPOConfig, TrainConfig, algorithms, train
from mnemax.train.cli import parse_train_args
from mnemax.train.dcpo import DCPO, first_episode, group_advantages, segments

ENV = "mnemax/ContextEdit-KVUpdate-v0"
# A reduced key-value task: two slots, one fact open at a time, queried 2-4 steps after it arrives, so
# keeping the last two items (FIFO) loses about half the facts while keeping exactly the open fact
# answers everything.
EASY = dict(context_size=2, num_keys=2, num_values=4, max_open=1, stream_length=12, min_query_delay=2,
            max_query_delay=4, update_rate=0.0)  # fmt: skip
SMALL = dict(context_size=4, num_keys=4, num_values=4, max_open=2, stream_length=16, min_query_delay=2,
             max_query_delay=6)  # fmt: skip


def config(tmp_path, **overrides) -> DCPOConfig:
    base = dict(
        env=ENV, env_params=SMALL, agent="context_editor", num_envs=16, group_size=4,
        num_steps=16, num_minibatches=2, update_epochs=2, hidden_size=16, total_steps=16 * 16 * 2, num_logs=2,
        progress=False, video=False, eval_episodes=8, run_dir=str(tmp_path / "runs"),
        video_dir=str(tmp_path / "videos"),
    )  # fmt: skip
    return DCPOConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def rollout(tmp_path_factory):
    """A DCPO object, its runner and a grouped rollout (windows ``[1, T, N]`` and flat ``[T, N]``)."""
    dcpo = DCPO(config(tmp_path_factory.mktemp("dcpo")))
    # Jitted, initialisation included: op by op, it compiled a few hundred small programs.
    runner, carries, transitions = jax.jit(lambda key: dcpo.group_rollout(dcpo.init(key)))(jax.random.PRNGKey(0))
    flat = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), transitions)
    return dcpo, runner, carries, transitions, flat


# ------------------------------------------------------------------------------- segments and groups
def test_segments_end_exactly_at_edits():
    rng = np.random.default_rng(0)
    steps, copies = 24, 32
    edited = rng.random((steps, copies)) < 0.3
    done = rng.random((steps, copies)) < 0.05
    valid = np.asarray(first_episode(jnp.asarray(done)))
    seg = segments(jnp.asarray(edited), jnp.asarray(valid))
    segment, weight = np.asarray(seg.segment), np.asarray(seg.weight)
    for n in range(copies):
        length = int(valid[:, n].sum())
        # the first episode: everything up to and including the first done
        first_done = np.flatnonzero(done[:, n])
        assert length == (first_done[0] + 1 if len(first_done) else steps)
        assert (segment[length:, n] == -1).all() and (weight[length:, n] == 0).all()
        ids = segment[:length, n]
        assert ids[0] == 0
        # a new segment starts exactly after every edited step, and nowhere else
        np.testing.assert_array_equal(np.diff(ids), edited[: length - 1, n].astype(int))
        # every step lies in exactly one segment, and each segment's weights sum to one
        counts = np.bincount(ids)
        assert counts.sum() == length and (counts > 0).all()
        np.testing.assert_allclose(weight[:length, n], 1.0 / counts[ids], rtol=1e-6)
        np.testing.assert_allclose(weight[:, n].sum(), len(counts), rtol=1e-5)


def test_groups_replay_one_task_instance_and_advantages_are_zero_mean_per_group(rollout):
    dcpo, _, _, _, flat = rollout
    g = dcpo.config.group_size
    current = np.asarray(flat.obs[:, :, -1, :4])  # [T, N, 4]: the stream's items
    grouped = current.reshape(current.shape[0], -1, g, 4)
    assert (grouped == grouped[:, :, :1]).all(), "copies of a group must see the same stream"
    assert len({grouped[:, k, 0].tobytes() for k in range(grouped.shape[1])}) > 1, "groups must differ"
    seg, returns, adv = dcpo.prepare(flat)
    assert bool(seg.valid.all()), "num_steps equals the stream length: every step is in the first episode"
    per_group = np.asarray(adv[0]).reshape(-1, g)
    np.testing.assert_allclose(per_group.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(adv), np.broadcast_to(np.asarray(adv[0]), adv.shape))  # one per episode
    # the advantages rank the episodes of a group by return
    r = np.asarray(returns).reshape(-1, g)
    assert (np.sign(per_group) == np.sign(r - r.mean(axis=1, keepdims=True))).all()
    # segments come from the task's info["edited"]
    edited = np.asarray(flat.extras["edited"][:-1])
    np.testing.assert_array_equal(np.diff(np.asarray(seg.segment), axis=0), edited.astype(int))


def test_group_advantages_normalise_each_group():
    returns = jnp.array([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    adv = np.asarray(group_advantages(returns, 3))
    np.testing.assert_allclose(adv[:3], [-1.2247, 0.0, 1.2247], atol=1e-3)
    np.testing.assert_allclose(adv[3:], 0.0)  # a group with one outcome teaches nothing


def test_group_advantages_ignore_float_rounding_between_equal_outcomes():
    # the same outcome summed in another order differs by a few ulps; that must not become an advantage
    returns = jnp.array([10.0, 10.0 + 1e-6, 10.0 - 1e-6, 10.0, 10.0, 10.005, 10.0, 10.0], jnp.float32)
    adv = np.asarray(group_advantages(returns, 4))
    assert np.abs(adv[:4]).max() < 0.02
    assert adv[5] > 1.0  # one slot-step of cost (0.005) less is still a clear difference


# ------------------------------------------------------------------------------- the loss
def test_surrogate_with_one_segment_is_ppos(rollout, tmp_path):
    dcpo, runner, carries, transitions, _ = rollout
    shared = {field.name: getattr(dcpo.config, field.name) for field in dataclasses.fields(TrainConfig)}
    ppo = algorithms.make(PPOConfig(**shared))
    no_edits = {"edited": jnp.zeros_like(transitions.extras["edited"])}
    t = transitions._replace(extras=no_edits)  # no edit: one segment per episode
    flat = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), t)
    seg, _, _ = dcpo.prepare(flat)
    adv = jax.random.normal(jax.random.PRNGKey(1), flat.reward.shape)
    adv = ((adv - adv.mean()) / adv.std()).reshape(t.reward.shape)  # already normalised: PPO keeps it
    # a different policy than the one that acted, so that ratios differ from one and some are clipped
    leaves, treedef = jax.tree_util.tree_flatten(runner.train_state.params)
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    params = treedef.unflatten([p + 0.5 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
    weight = seg.weight.reshape(t.reward.shape)
    window = lambda tree: jax.tree_util.tree_map(lambda x: x[0], tree)  # noqa: E731  (a single window)
    batch = (window(carries), window(t), (window(adv), window(weight)))
    _, dcpo_stats = jax.jit(dcpo.loss)(params, batch)
    _, ppo_stats = jax.jit(ppo.loss)(params, batch[:2] + ((window(adv), jnp.zeros_like(window(adv))),))
    assert float(dcpo_stats["clip_fraction"]) > 0
    np.testing.assert_allclose(dcpo_stats["policy_loss"], ppo_stats["policy_loss"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dcpo_stats["entropy"], ppo_stats["entropy"], rtol=1e-5)


def test_segment_level_aggregation_weighs_every_segment_once():
    """One episode: an edit at its first step makes a one-step segment (objective 1), then nine steps of
    objective 0: per segment the mean is (1 + 0) / 2, not 1 / 10 as per step."""
    edited = jnp.zeros((10, 1), bool).at[0, 0].set(True)
    seg = segments(edited, jnp.ones((10, 1), bool))
    objective = jnp.zeros((10, 1)).at[0, 0].set(1.0)
    np.testing.assert_allclose((objective * seg.weight).sum() / seg.weight.sum(), 0.5, rtol=1e-6)


def test_gradients_reach_every_head(rollout):
    dcpo, runner, carries, transitions, flat = rollout
    seg, _, adv = dcpo.prepare(flat)
    first = lambda tree: jax.tree_util.tree_map(lambda x: x[0], tree)  # noqa: E731  (a single window)
    window = lambda x: x.reshape(transitions.reward.shape)[0]  # noqa: E731
    batch = (first(carries), first(transitions), (window(adv), window(seg.weight)))
    grads, _ = jax.jit(jax.grad(dcpo.loss, has_aux=True))(runner.train_state.params, batch)
    leaves = jax.tree_util.tree_leaves_with_path(grads)
    assert all(bool(jnp.isfinite(g).all()) for _, g in leaves)
    for head in ("slot_rows", "source_rows", "tokens"):  # the pointers and the tied answer embedding
        assert any(head in jax.tree_util.keystr(path) and float(jnp.abs(g).sum()) > 0 for path, g in leaves), head


# ------------------------------------------------------------------------------- the agent and the config
@pytest.mark.parametrize("relations", [False, True])
def test_context_editor_treats_slots_as_a_set(rollout, relations):
    dcpo, runner, _, _, flat = rollout
    obs = flat.obs[5]  # [N, C + 1, 5]
    size = obs.shape[1] - 1
    perm = np.array([2, 0, 3, 1])
    permuted = jnp.concatenate([obs[:, perm], obs[:, size:]], axis=1)
    params, resets = runner.train_state.params, jnp.zeros((1, obs.shape[0]), bool)
    network = dcpo.network.clone(relations=relations)
    if relations:  # another input width: parameters of its own
        params = network.init(jax.random.PRNGKey(1), (), obs[None], resets)
    _, logits, value = network.apply(params, (), obs[None], resets)
    _, logits_p, value_p = network.apply(params, (), permuted[None], resets)
    np.testing.assert_allclose(value_p, value, atol=1e-5)
    for k in (0, 3):  # op and answer
        np.testing.assert_allclose(logits_p[..., k, :], logits[..., k, :], atol=1e-5)
    np.testing.assert_allclose(logits_p[..., 1, :size], logits[..., 1, perm], atol=1e-5)  # slot
    np.testing.assert_allclose(logits_p[..., 2, :size], logits[..., 2, perm], atol=1e-5)  # source
    np.testing.assert_allclose(logits_p[..., 2, size], logits[..., 2, size], atol=1e-5)  # source: the item
    # the answer is only read at queries: elsewhere it is answer 0 for sure
    is_query = np.isin(np.asarray(obs[:, size, 0]), (3, 4))
    assert (np.asarray(distributions.entropy(logits[0, ~is_query, 3:4])) < 1e-6).all()


def test_token_matches_find_the_slot_a_merge_or_an_update_needs():
    """Row features of ``relations=True``: which of a row's tokens equal which of the current item's."""
    fact, compound = 1, 6
    rows = jnp.array([[fact, 1, 2, 0, 3],  # a -> b: its value is the item's key (a merge makes a -> b -> v)
                      [fact, 2, 9, 0, 1],  # b -> w: the item's key (a newer b -> v replaces it)
                      [compound, 3, 4, 9, 2],  # shares no token with the item
                      [0, 0, 0, 0, 0],  # empty: padding matches nothing
                      [fact, 2, 7, 0, 0]])  # fmt: skip  # the item b -> v
    matches = np.asarray(token_matches(rows)).reshape(5, 3, 3)  # [row, own token, item token]
    assert matches[0].nonzero() == ((1,), (0,)) and matches[1].nonzero() == ((0,), (0,))
    assert not matches[2].any() and not matches[3].any()
    assert matches[4][0, 0] and matches[4][1, 1] and not matches[4][2].any()


def test_joint_edit_head_is_one_choice_of_op_and_slot(tmp_path):
    """With ``edit_head="joint"`` the editor's first component chooses keep or one (op, slot) pair of the
    ``1 + 3 C`` and :meth:`env_action` gives the task every pair exactly once; a DCPO update runs with it
    (its actions reach the task as ``[op, slot, source, answer]``) and permuting the slots permutes the
    pairs' logits."""
    dcpo = DCPO(config(tmp_path, agent_config={"edit_head": "joint"}))
    size = SMALL["context_size"]
    edits = jnp.stack([jnp.arange(1 + 3 * size), jnp.zeros(1 + 3 * size, int), jnp.ones(1 + 3 * size, int)], -1)
    task = np.asarray(dcpo.env_action(edits))
    assert task.shape == (1 + 3 * size, 4) and tuple(task[0, :2]) == (0, 0)
    assert sorted(map(tuple, task[1:, :2])) == [(op, slot) for op in (1, 2, 3) for slot in range(size)]
    assert (task[:, 2] == 0).all() and (task[:, 3] == 1).all()  # source and answer pass through

    runner, _, transitions = jax.jit(lambda key: dcpo.group_rollout(dcpo.init(key)))(jax.random.PRNGKey(0))
    assert transitions.action.shape[-1] == 3 and int(transitions.action[..., 0].max()) <= 3 * size
    obs = transitions.obs.reshape((-1,) + transitions.obs.shape[3:])[:8]
    params, resets = runner.train_state.params, jnp.zeros((1, 8), bool)
    _, logits, _ = dcpo.network.apply(params, (), obs[None], resets)
    assert logits.shape[-2] == 3 and (np.asarray(logits[..., 0, : 1 + 3 * size]) > distributions.PAD_LOGIT / 2).all()
    perm = np.array([2, 0, 3, 1])
    permuted = jnp.concatenate([obs[:, perm], obs[:, size:]], axis=1)
    _, logits_p, _ = dcpo.network.apply(params, (), permuted[None], resets)
    pairs = lambda logits: logits[..., 0, 1 : 1 + 3 * size].reshape(logits.shape[:-2] + (size, 3))  # noqa: E731
    np.testing.assert_allclose(pairs(logits_p), pairs(logits)[..., perm, :], atol=1e-5)  # [..., slot, op]
    # with the oracle as a teacher, whose actions reach the joint head in its own format
    cfg = config(
        tmp_path, agent_config={"edit_head": "joint"}, run_name="joint", video=True, video_steps=8, kickstart_coef=1.0
    )  # fmt: skip
    result = train(cfg)
    rows = list(csv.DictReader((result.run_dir / "metrics.csv").open()))
    assert rows and all(math.isfinite(float(v)) for row in rows for v in row.values())
    assert all(float(row["kickstart_loss"]) > 0 for row in rows)
    assert result.video is not None and result.video.stat().st_size > 0
    algo = algorithms.make(cfg)
    params = jax.tree_util.tree_map(lambda x: x[0], result.runner.train_state.params)
    steps = curators.rollout(algo.env, algo.env_params, greedy_curator(algo.network, params), jax.random.key(1), 4)
    assert steps["action"].shape[-1] == 4 and int(steps["action"][..., 1].max()) < size


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(group_size=3), "multiple of group_size"),
        (dict(group_size=1), "group_size must be >= 2"),
        (dict(agent="editor"), "agent must be one of"),
        (dict(env="mnemax/TMaze-Passive-v0", env_params={}), "needs a context-editing task"),
        (dict(agent_config={"depth": 2}), "unknown context editor field"),
        (dict(agent_config={"edit_head": "pairs"}), "edit_head must be"),
        (dict(agent_config={"relations": "true"}), "relations must be True or False"),
        (dict(agent="actor_critic", agent_config={"num_layers": 2}), "unknown actor critic field"),
        (dict(reset_pool=4), "reset_pool must be 0 for dcpo"),
        (dict(kickstart_updates=5), "kickstart_updates needs kickstart_coef"),
        (dict(kickstart_coef=1.0, prev_action_reward=True), "not prev_action_reward's"),
    ],
)
def test_bad_configs_fail_before_compiling(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        train(config(tmp_path, **overrides))


# ------------------------------------------------------------------------------- the trainer
def test_cli_flags_select_the_agent_and_the_algorithm(capsys):
    args = ["dcpo", "--env", ENV, "--agent", "context_editor", "--agent-config", "num_layers", "3", "--group-size", "4"]
    cfg = parse_train_args(args)
    assert (cfg.agent, cfg.agent_config, cfg.algo, cfg.group_size) == ("context_editor", {"num_layers": 3}, "dcpo", 4)
    assert cfg.name == "ContextEdit-KVUpdate-v0-context_editor-dcpo-s0"
    assert PPOConfig().name == "TMaze-Passive-v0-gru-s0"  # unchanged for PPO runs
    assert parse_train_args(["ppo", "--env", ENV]) == parse_train_args(["--env", ENV]) == PPOConfig(env=ENV)
    with pytest.raises(SystemExit) as exit:  # an unknown algorithm is refused before anything compiles
        parse_train_args(["grpo", "--env", ENV])
    assert exit.value.code == 2 and "unknown algorithm 'grpo'" in capsys.readouterr().err


@pytest.mark.slow
def test_dcpo_learns_a_small_key_value_task_and_writes_the_run(tmp_path):
    """DCPO with the context editor beats keeping the latest items on the reduced task; the run has
    the loop's logs, checkpoints and video."""
    # 40 updates: the greedy curators of seeds 0-3 answer 0.96-1.0 of the queries (1.0 after 80 updates; seed 4
    # stays near 0.25 after either), keeping the latest items 0.52.
    cfg = config(
        tmp_path, env_params=EASY, num_envs=128, group_size=8, num_steps=12, update_epochs=4, hidden_size=32,
        learning_rate=3e-3, ent_coef=0.01, anneal_lr=False, total_steps=128 * 12 * 40, num_logs=2,
        video=True, video_steps=12, run_name="easy",
    )  # fmt: skip
    result = train(cfg)
    rows = list(csv.DictReader((result.run_dir / "metrics.csv").open()))
    assert len(rows) == 2 and {"segments_per_episode", "group_return_std", "return", "success"} <= set(rows[0])
    assert all(math.isfinite(float(v)) for row in rows for v in row.values())
    assert float(rows[-1]["unfinished_episodes"]) == 0
    assert float(rows[-1]["episodes"]) == cfg.num_envs * cfg.updates_per_log  # one episode per copy and update
    assert json.loads((result.run_dir / "config.json").read_text())["algo"] == "dcpo"
    assert list((result.run_dir / "checkpoints").iterdir())
    assert result.video is not None and result.video.stat().st_size > 0

    algo = algorithms.make(cfg)
    params = jax.tree_util.tree_map(lambda x: x[0], result.runner.train_state.params)
    key = jax.random.PRNGKey(123)
    learned = curators.run_curator(algo.env, algo.env_params, greedy_curator(algo.network, params), key, 256)
    fifo = curators.run_curator(algo.env, algo.env_params, curators.keep_latest(), key, 256)
    accuracy, fifo_accuracy = float(learned["accuracy"].mean()), float(fifo["accuracy"].mean())
    assert fifo_accuracy < 0.7
    assert accuracy > fifo_accuracy + 0.15, (accuracy, fifo_accuracy)


def test_init_from_starts_dcpo_with_a_ppo_runs_editor(tmp_path):
    """``init_from``: the network of another run (here PPO's, with other env counts) starts this one;
    the optimizer starts fresh, and a network of other shapes is refused before training."""
    from mnemax.envs.tools.command_line import UserError
    from mnemax.train.loop import network_from, _start_from, build_trainer

    shared = {f.name for f in dataclasses.fields(PPOConfig)}
    ppo = {k: v for k, v in dataclasses.asdict(config(tmp_path)).items() if k in shared}
    source = train(PPOConfig(**{**ppo, "num_envs": 8, "run_name": "ppo"}))
    target = config(tmp_path, run_name="dcpo", init_from=str(source.run_dir))
    trainer = build_trainer(target)
    runner = _start_from(trainer.init(), network_from(source.run_dir, trainer))
    jax.tree_util.tree_map(np.testing.assert_array_equal, runner.train_state.params, source.runner.train_state.params)
    assert int(jax.tree_util.tree_leaves(runner.train_state.opt_state)[0].max()) == 0  # Adam's step count
    assert train(target).steps == target.total_steps  # and the whole run goes through with it
    with pytest.raises(UserError, match="the network of .* differs from this configuration"):
        train(config(tmp_path, run_name="wider", hidden_size=32, init_from=str(source.run_dir)))


# ------------------------------------------------------------------------------- a teacher
# Two chains open at a time and two slots: a chain fits only once its links are merged into one compound.
TWO_HOPS = dict(context_size=2, num_keys=8, num_values=8, max_open=2, stream_length=16, min_query_delay=2,
                max_query_delay=6)  # fmt: skip


@pytest.mark.slow
def test_kickstarting_teaches_the_oracles_merges(tmp_path):
    """With the oracle as teacher (``kickstart_coef``), PPO's editor learns to merge a chain's links on a
    small two-hop task and answers more than any editor that never merges; the teacher's term falls as it
    is learned, and it is gone once ``kickstart_updates`` have passed."""
    env = "mnemax/ContextEdit-MultiHop-v0"
    cfg = PPOConfig(
        env=env, env_params=TWO_HOPS, agent="context_editor", num_envs=64, num_steps=16, num_minibatches=2,
        update_epochs=4, hidden_size=32, learning_rate=3e-3, ent_coef=0.01, anneal_lr=False,
        total_steps=64 * 16 * 80, num_logs=4, kickstart_coef=1.0, kickstart_updates=60, progress=False,
        video=False, eval_episodes=8, run_dir=str(tmp_path / "runs"), run_name="kickstart",
    )  # fmt: skip
    result = train(cfg)
    rows = list(csv.DictReader((result.run_dir / "metrics.csv").open()))
    teacher = [float(row["kickstart_loss"]) for row in rows]
    assert teacher[1] < 0.5 * teacher[0] and teacher[-1] == 0.0, teacher

    algo = algorithms.make(cfg)
    params = jax.tree_util.tree_map(lambda x: x[0], result.runner.train_state.params)
    key = jax.random.PRNGKey(7)
    learned = curators.run_curator(algo.env, algo.env_params, greedy_curator(algo.network, params), key, 256)
    no_merge = curators.run_curator(algo.env, algo.env_params, curators.perfect_without_merges, key, 256)
    accuracy, no_merge_accuracy = float(learned["accuracy"].mean()), float(no_merge["accuracy"].mean())
    # 80 updates: 0.74 with 3.4 merges per episode (the oracle makes 4.1); writing links apart 0.48
    assert float(learned["merges"].mean()) > 2.0
    assert accuracy > no_merge_accuracy + 0.15, (accuracy, no_merge_accuracy)
    with pytest.raises(ValueError, match="no scripted demonstration"):
        train(PPOConfig(kickstart_coef=1.0, run_dir=str(tmp_path / "runs")))


def test_a_teachers_action_reaches_the_joint_edit_head_as_its_own():
    """``agent_action`` inverts ``env_action``: the teacher's ``[op, slot, source, answer]`` becomes the
    joint head's ``[edit, source, answer]`` and maps back; the edit matters where the op or slot did."""
    from mnemax.agents.context_editor import ContextEditor

    editor = ContextEditor(num_keys=4, num_values=4, max_age=16, num_tags=7, query_tags=(3, 4), edit_head="joint")
    size = 3
    actions = jnp.array([[0, 0, size, 2]] + [[op, slot, size, 1] for op in (1, 2, 3) for slot in range(size)])
    relevant = jnp.array([[1, 0, 0, 1]] + [[1, 1, op == 3, 0] for op in (1, 2, 3) for slot in range(size)], bool)
    joint, joint_relevant = editor.agent_action(actions, relevant)
    assert joint.shape == (len(actions), 3) and sorted(np.asarray(joint[:, 0]).tolist()) == list(range(1 + 3 * size))
    np.testing.assert_array_equal(editor.env_action(joint), actions)
    np.testing.assert_array_equal(joint_relevant, relevant[:, [0, 2, 3]])
