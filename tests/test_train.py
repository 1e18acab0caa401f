"""The PPO trainer: configuration errors, minibatching, sequence replay, resume, CLI outputs."""

import csv
import dataclasses
import json
import re
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnemax import memory_modules
from mnemax.train import PPO, DCPOConfig, PPOConfig, algorithms, train
from mnemax.train.config import config_differences, option_spec
from mnemax.train.cli import eval_main, train_main

TINY = dict(
    num_envs=8, num_steps=16, num_minibatches=2, update_epochs=2, hidden_size=32, total_steps=8 * 16 * 4,
    num_logs=4, progress=False, video=False, eval_episodes=16,
)  # fmt: skip


def tiny(tmp_path, **overrides) -> PPOConfig:
    return PPOConfig(**{**TINY, "run_dir": str(tmp_path / "runs"), "video_dir": str(tmp_path / "videos"), **overrides})


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(env="mnemax/TMaze-Pasive-v0"), "Did you mean"),
        (dict(memory="lstn"), "unknown memory module"),
        (dict(num_envs=10, num_minibatches=4), "divisible by num_minibatches"),
        (dict(bptt_length=5), "must divide num_steps"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(env_params={"corridor_length": 0}), "corridor_length"),
        (dict(memory_config={"features": -1}), "positive"),
        (dict(env="mnemax/CountRecall-Easy-v0", train_env_params={"num_decks": 2}), "action space"),
        (dict(curriculum_updates=2), "curriculum_updates needs train_env_params"),
        (
            dict(env="mnemax/MortarMayhem-Grid-Symbolic-v0", train_env_params={"command_count": (5,)}, curriculum_updates=2),
            "static parameter",
        ),
    ],
)
def test_bad_configs_fail_before_compiling(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        train(tiny(tmp_path, **overrides))


@pytest.mark.parametrize("total_steps", [1_000, 120_000, 122_880, 2e5, 1e8])
@pytest.mark.parametrize("num_logs", [1, 4, 50])
def test_a_budget_is_never_exceeded(total_steps, num_logs):
    """Whole updates and log intervals within ``total_steps`` (one update when it holds none), at least
    ``num_logs`` intervals when it holds that many updates."""
    config = PPOConfig(
        env="mnemax/TMaze-Passive-v0", total_steps=total_steps, num_envs=32, num_steps=32, num_logs=num_logs
    )
    trained = config.num_updates * config.steps_per_update
    assert trained <= max(total_steps, config.steps_per_update)
    # what is left out is less than about two log intervals
    assert total_steps - trained < max(2 * total_steps / num_logs, config.steps_per_update)
    assert config.num_log_intervals >= min(num_logs, total_steps // config.steps_per_update)


def test_train_env_params_change_what_training_plays_and_not_the_evaluation(tmp_path):
    config = tiny(tmp_path, env="mnemax/TMaze-Active-v0", env_params={"corridor_length": 4},
                  train_env_params={"oracle_start_prob": 1.0})  # fmt: skip
    algorithm = PPO(config)
    assert float(algorithm.env_params.oracle_start_prob) == 1.0
    assert float(algorithm.eval_env_params.oracle_start_prob) == 0.0
    assert algorithm.env_params.corridor_length == algorithm.eval_env_params.corridor_length == 4


def test_curriculum_updates_switch_training_to_the_task_after_them(tmp_path):
    config = tiny(tmp_path, env="mnemax/TMaze-Active-v0", env_params={"corridor_length": 4},
                  train_env_params={"oracle_start_prob": 1.0}, curriculum_updates=2)  # fmt: skip
    algorithm = PPO(config)
    played = jax.jit(lambda u: algorithm.training_env_params(u).oracle_start_prob)
    assert [float(played(jnp.int32(u))) for u in range(4)] == [1.0, 1.0, 0.0, 0.0]
    without = PPO(dataclasses.replace(config, curriculum_updates=0))  # the whole run plays train_env_params
    assert float(without.training_env_params(jnp.int32(10)).oracle_start_prob) == 1.0
    result = train(config)  # the switch compiles inside the update
    assert result.steps == config.total_steps and np.isfinite(result.success).all()


def test_minibatches_partition_the_sequences_and_keep_carries_aligned(tmp_path):
    config = tiny(tmp_path, num_envs=8, num_minibatches=4, num_steps=8, bptt_length=4)
    ppo = PPO(config)
    c, l, n = 2, 4, 8
    ids = jnp.arange(n)[None, None, :] * 100 + jnp.arange(c)[:, None, None] * 10 + jnp.arange(l)[None, :, None]
    carries = ids[:, 0, :].astype(jnp.float32)  # the id of the window's first step
    _, windows, (adv, _) = ppo.minibatches(jax.random.PRNGKey(0), carries, ids, (ids, ids))
    assert windows.shape == (4, l, (n // 4) * c) and carries.shape == (c, n)
    starts, _, _ = ppo.minibatches(jax.random.PRNGKey(0), carries, ids, (ids, ids))
    np.testing.assert_array_equal(starts, windows[:, 0])  # every sequence starts from its own carry
    np.testing.assert_array_equal(windows[:, 1:] - windows[:, :-1], 1)  # steps stay in order
    seen = sorted(np.asarray(windows[:, 0]).ravel().tolist())
    assert seen == sorted(np.asarray(ids[:, 0]).ravel().tolist())  # each (env, window) exactly once
    other, _, _ = ppo.minibatches(jax.random.PRNGKey(1), carries, ids, (ids, ids))
    assert not np.array_equal(other, starts)


SMALL_MEMORIES = {
    "trxl": {"num_layers": 1, "memory_length": 4, "num_heads": 2},
    "hcam": {"num_layers": 1, "chunk_size": 3, "memory_chunks": 4, "top_k": 2, "num_heads": 2},
    "linear_attention": {"chunk_size": 4},
    "rate": {"num_layers": 1, "segment_length": 3, "memory_tokens": 2, "num_heads": 2},
}


@pytest.mark.parametrize(
    "memory,bptt", [("gru", 4), ("gru", 0), ("none", 0)] + [(m, 8) for m in memory_modules.names() if m != "gru"]
)
def test_update_replays_the_rollout_exactly(tmp_path, memory, bptt):
    """Re-running the agent over the stored windows from the stored carries reproduces the
    log-probabilities and values seen while acting (so the first PPO ratio is exactly 1)."""
    config = tiny(tmp_path, memory=memory, bptt_length=bptt, num_steps=16, memory_config=SMALL_MEMORIES.get(memory, {}))
    ppo = PPO(config)
    runner = jax.jit(ppo.init)(jax.random.PRNGKey(0))  # op by op, the initialisation compiled hundreds of programs
    rollout = jax.jit(ppo.rollout)
    runner, _, _ = rollout(runner)  # start the windows mid-episode, with non-initial carries
    # ... made by other parameters, as after an update (Transformer-XL's cached keys and values must follow)
    moved = jax.tree_util.tree_map(lambda p: p * 1.05 + 0.01, runner.train_state.params)
    runner = runner.replace(train_state=runner.train_state.replace(params=moved))
    runner, carries, t = rollout(runner)
    params = runner.train_state.params
    replay = jax.vmap(lambda carry, obs, reset: ppo.network.apply(params, carry, obs, reset), in_axes=(0, 0, 0))
    _, logits, values = replay(carries, t.obs, t.reset)
    from mnemax.agents import distributions

    np.testing.assert_allclose(distributions.log_prob(logits, t.action), t.log_prob, atol=1e-5)
    np.testing.assert_allclose(values, t.value, atol=1e-5)
    assert bool(t.reset[:, 1:].any()), "the test needs an episode boundary inside a window"


def test_rollout_unroll_changes_the_speed_not_the_transitions(tmp_path):
    """Three steps per loop iteration over a 16-step rollout (a remainder included): the same transitions."""
    one, three = PPO(tiny(tmp_path)), PPO(tiny(tmp_path, rollout_unroll=3))
    runner = jax.jit(one.init)(jax.random.PRNGKey(0))
    expected, unrolled = jax.jit(one.rollout)(runner), jax.jit(three.rollout)(runner)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), unrolled, expected)


@pytest.mark.parametrize("memory", ["gru", "rate"])
def test_truncated_episodes_bootstrap_the_value_of_their_last_observation(tmp_path, memory):
    """The stored reward of an env cut by the time limit adds the discounted value of its last observation,
    computed for the cut envs alone: the same as one network call over every env, whether few envs or all
    of them were cut at the step."""
    corridor = {"corridor_length": 10, "max_steps_in_episode": 6}
    config = tiny(tmp_path, env="mnemax/TMaze-Passive-v0", env_params=corridor, memory=memory, num_envs=16,
                  memory_config=SMALL_MEMORIES.get(memory, {}))  # fmt: skip
    algorithm = algorithms.make(config)
    assert algorithm.bootstrap_truncated
    runner = jax.jit(algorithm.init)(jax.random.key(0))
    params = runner.train_state.params
    carry, _, _ = algorithm.network.apply(params, runner.carry, runner.obs[None], runner.reset[None])
    final_obs = jax.random.normal(jax.random.key(1), runner.obs.shape, runner.obs.dtype)
    values = algorithm.network.apply(params, carry, final_obs[None], jnp.zeros((1, 16), bool))[2][0]
    reward = jnp.linspace(-1.0, 1.0, 16)
    stored = jax.jit(algorithm.stored_reward)
    for truncated in (jnp.arange(16) == 3, jnp.arange(16) % 3 == 0, jnp.ones(16, bool), jnp.zeros(16, bool)):
        expected = reward + config.gamma * values * truncated
        got = stored(params, carry, reward, truncated, {"final_obs": final_obs})
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_reset_pool_trains_and_resumes_exactly(tmp_path):
    """With initial states drawn ahead (the pool is part of the environment state), a run trains, logs
    finite losses, and resumes bit-identically from a checkpoint."""
    # A corridor too long to reach the junction in 6 steps: every episode is truncated, so every one
    # starts from a spare of the pool.
    corridor = {"corridor_length": 10, "max_steps_in_episode": 6}
    config = tiny(tmp_path, env="mnemax/TMaze-Passive-v0", env_params=corridor, reset_pool=2, checkpoint_every=1,
                  run_name="pool")  # fmt: skip
    full = train(config)
    rows = list(csv.DictReader((full.run_dir / "metrics.csv").open()))
    assert all(np.isfinite(float(row[name])) for row in rows for name in ("policy_loss", "value_loss", "entropy"))
    assert float(rows[-1]["episodes"]) > 0 and float(rows[-1]["length"]) == 6.0  # every episode truncated
    import shutil

    shutil.rmtree(full.run_dir / "checkpoints" / str(config.num_log_intervals))
    resumed = train(dataclasses.replace(config, resume=True))
    jax.tree_util.tree_map(
        np.testing.assert_array_equal, full.runner.train_state.params, resumed.runner.train_state.params
    )


@pytest.mark.parametrize("memory", ["gru", "trxl"])
def test_resume_equals_uninterrupted_training(tmp_path, memory):
    small = SMALL_MEMORIES.get(memory, {})
    config = tiny(tmp_path, checkpoint_every=1, run_name="full", memory=memory, memory_config=small)
    full = train(config)
    # A run killed after its third checkpoint: drop the last one and resume.
    checkpoints = full.run_dir / "checkpoints"
    resumed_config = dataclasses.replace(config, resume=True)
    import shutil

    shutil.rmtree(checkpoints / str(config.num_log_intervals))
    if memory == "trxl":  # the checkpoint keeps the window's inputs, not the keys and values the rollout remakes
        from mnemax.train.checkpoint import Checkpointer
        from mnemax.train.loop import Trainer

        checkpointer = Checkpointer(checkpoints)
        _, saved = checkpointer.restore_latest(Trainer(config).abstract_state())
        checkpointer.close()
        assert np.any(saved.carry.memory) and not np.any(saved.carry.keys) and not np.any(saved.carry.values)
    resumed = train(resumed_config)
    jax.tree_util.tree_map(
        np.testing.assert_array_equal, full.runner.train_state.params, resumed.runner.train_state.params
    )
    rows = list(csv.DictReader((full.run_dir / "metrics.csv").open()))
    assert len(rows) == config.num_log_intervals  # one row per interval, none duplicated
    seconds = [float(row["seconds"]) for row in rows]  # wall-clock time goes on across the resume
    assert all(0 < a < b for a, b in zip(seconds, seconds[1:])), seconds


def test_checkpoint_without_rollout_state_resumes_on_fresh_episodes(tmp_path):
    """checkpoint_rollout=False saves no per-environment field; a resumed run starts fresh episodes
    (those of the run's start) under the saved parameters, optimiser, key and update count."""
    from mnemax.train.checkpoint import Checkpointer
    from mnemax.train.loop import Trainer, restore_run

    config = tiny(tmp_path, checkpoint_every=1, run_name="lean", memory="trxl", memory_config=SMALL_MEMORIES["trxl"],
                  checkpoint_rollout=False)  # fmt: skip
    full = train(config)
    checkpoints = full.run_dir / "checkpoints"
    trainer = Trainer(config)
    checkpointer = Checkpointer(checkpoints)
    step, saved = checkpointer.restore_latest(trainer.abstract_state())
    checkpointer.close()
    assert step == config.num_log_intervals
    assert all(getattr(saved, name) is None for name in ("env_state", "obs", "carry", "reset"))
    jax.tree_util.tree_map(np.testing.assert_array_equal, saved.train_state.params, full.runner.train_state.params)
    _, as_saved = restore_run(full.run_dir)  # what evaluation and videos read: parameters, no environments
    assert as_saved.env_state is None
    jax.tree_util.tree_map(np.testing.assert_array_equal, as_saved.train_state.params, full.runner.train_state.params)
    restored = trainer.restored_state(saved)
    fresh = trainer.init()
    jax.tree_util.tree_map(np.testing.assert_array_equal, restored.obs, fresh.obs)
    np.testing.assert_array_equal(restored.update, full.runner.update)

    import shutil

    shutil.rmtree(checkpoints / str(config.num_log_intervals))
    resumed = train(dataclasses.replace(config, resume=True))
    assert resumed.steps == full.steps
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(resumed.runner.train_state.params))
    # the last interval ran from other episodes than the uninterrupted run's, so it learned something else
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree_util.tree_leaves(full.runner.train_state.params),
                        jax.tree_util.tree_leaves(resumed.runner.train_state.params))
    )  # fmt: skip


def test_resume_refuses_another_config(tmp_path):
    config = tiny(tmp_path, run_name="a")
    train(config)
    with pytest.raises(ValueError, match="another configuration.*learning_rate"):
        train(dataclasses.replace(config, resume=True, learning_rate=1e-3))
    with pytest.raises(ValueError, match="no checkpoint"):
        train(dataclasses.replace(config, resume=True, run_name="never-trained"))


def test_resumable_fields_are_declared_and_earlier_config_files_load():
    resumable = {field.name for field in dataclasses.fields(PPOConfig) if option_spec(field).resumable}
    assert resumable == {
        "resume", "overwrite", "debug", "distributed", "progress", "video", "video_dir", "video_steps",
        "eval_episodes", "checkpoint_every", "checkpoint_minutes", "run_dir", "rollout_unroll", "init_from", "time_limit",
    }  # fmt: skip
    saved = PPOConfig(memory="lstm")
    assert config_differences(saved, dataclasses.replace(saved, video_dir="v", run_dir="r", resume=True)) == {}
    assert config_differences(saved, dataclasses.replace(saved, seed=1)) == {"seed": (0, 1)}
    assert config_differences(saved, DCPOConfig(memory="lstm")) == {"algo": ("ppo", "dcpo")}
    # config.json as runs wrote it when one configuration held the fields of both algorithms
    earlier = {**dataclasses.asdict(saved), "algo": "ppo", "group_size": 8}
    assert algorithms.config_from_json(json.dumps(earlier)) == saved
    earlier_dcpo = {**earlier, "algo": "dcpo", "agent": "context_editor", "group_size": 4}
    assert algorithms.config_from_json(json.dumps(earlier_dcpo)) == DCPOConfig(
        memory="lstm", agent="context_editor", group_size=4
    )
    assert algorithms.config_from_json(saved.to_json()) == saved


def test_seeds_are_independent_and_reproducible(tmp_path):
    two = train(tiny(tmp_path, num_seeds=2, run_name="two"))
    single = train(tiny(tmp_path, seed=1, run_name="one"))
    p2 = jax.tree_util.tree_map(lambda x: x[1], two.runner.train_state.params)
    p1 = jax.tree_util.tree_map(lambda x: x[0], single.runner.train_state.params)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), p2, p1)
    p0 = jax.tree_util.tree_map(lambda x: x[0], two.runner.train_state.params)
    assert not np.allclose(jax.tree_util.tree_leaves(p0)[0], jax.tree_util.tree_leaves(p1)[0])


def test_cli_reports_throughput_only_where_it_was_measured(capsys):
    """One log interval includes compilation and leaves the throughput unmeasured (NaN): said in words."""
    from mnemax.train.cli import _report

    _report(types.SimpleNamespace(seed=3), "runs/x", [0.5], [1.0], float("nan"))
    out = capsys.readouterr().out
    assert "seed 3: greedy success 0.500" in out and "training throughput: not measured" in out and "nan" not in out
    _report(types.SimpleNamespace(seed=0), "runs/x", [0.5], [1.0], 12345.6)
    assert "training throughput: 12,346 env steps/s" in capsys.readouterr().out


def test_cli_writes_logs_checkpoints_curve_and_videos(tmp_path, capsys):
    args = [
        "--env", "mnemax/TMaze-Passive-v0", "--memory", "gru", "--total-steps", "1e3", "--num-envs", "8",
        "--num-steps", "16", "--num-minibatches", "2", "--hidden-size", "16", "--no-progress",
        "--video-steps", "24", "--eval-episodes", "8", "--env-params", "corridor_length", "4",
        "--run-dir", str(tmp_path / "runs"), "--video-dir", str(tmp_path / "videos"), "--run-name", "cli",
    ]  # fmt: skip
    train_main(args)
    out = capsys.readouterr().out
    assert "final success rate" in out and re.search(r"training throughput: [\d,]+ env steps/s", out), out
    run = tmp_path / "runs" / "cli"
    for name in ("metrics.csv", "learning_curve.png", "config.json"):
        assert (run / name).stat().st_size > 0
    assert list((run / "tensorboard").iterdir())
    assert json.loads((run / "config.json").read_text())["env_params"] == {"corridor_length": 4}
    assert (tmp_path / "videos" / "cli.mp4").stat().st_size > 0
    eval_args = ["--run", str(run), "--episodes", "8", "--video-steps", "12", "--video-dir", str(tmp_path / "videos")]
    eval_main(eval_args + ["--video-format", "gif"])  # training wrote the mp4 above
    assert (tmp_path / "videos" / "cli-eval-0.gif").read_bytes()[:6] == b"GIF89a"
    assert "greedy success" in capsys.readouterr().out
