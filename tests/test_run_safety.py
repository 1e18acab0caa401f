"""Nothing lost, nothing silent: one run per directory, one-line errors, divergence, checkpoints that
survive faults, signals, logs for machines, no fork warning."""

import dataclasses
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnemax import memory_modules
from mnemax.envs.tools.command_line import UserError
from mnemax.envs.core.registration import registered_ids
from mnemax.envs.tools.list_envs import main as list_main
from mnemax.envs.tools.video import write_video
from mnemax.train import loop, train
from mnemax.train.checkpoint import Checkpointer
from mnemax.train.cli import eval_main, train_main
from mnemax.train import PPOConfig
from mnemax.train.config import float_options
from mnemax.train.run_dir import RunDirectory
from test_train import TINY, tiny

STEPS_PER_INTERVAL = TINY["num_envs"] * TINY["num_steps"]  # one update per log interval


def cli_args(tmp_path, **overrides) -> list[str]:
    """The flags of ``tiny(tmp_path, **overrides)``."""
    config = {**TINY, "run_dir": str(tmp_path / "runs"), "video_dir": str(tmp_path / "videos"), **overrides}
    args = []
    for name, value in config.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{flag[2:]}")
        else:
            args += [flag, str(value)]
    return args


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run whose checkpoints come from the clock alone (``checkpoint_every`` is never due)."""
    config = tiny(tmp_path_factory.mktemp("finished"), run_name="r", checkpoint_every=1000, checkpoint_minutes=1e-9)
    return config, train(config)


def _copy_run(finished, tmp_path) -> PPOConfig:
    """The finished run copied to ``tmp_path``, and its config pointing there."""
    config, result = finished
    shutil.copytree(result.run_dir, tmp_path / "runs" / config.name)
    return dataclasses.replace(config, run_dir=str(tmp_path / "runs"))


def _steps(run_dir) -> list[int]:
    return sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())


# ------------------------------------------------------------------------------------ run directory
def test_checkpoints_are_also_saved_by_the_clock(finished):
    config, result = finished
    assert config.num_log_intervals == 4
    assert _steps(result.run_dir) == [3, 4]  # by count only the final one (4) would exist


def test_a_fresh_run_refuses_a_directory_that_holds_another(finished, tmp_path):
    config = _copy_run(finished, tmp_path)
    run = tmp_path / "runs" / config.name
    before = (run / "metrics.csv").read_bytes()
    with pytest.raises(UserError, match=r"already holds a run \(checkpoints, metrics.csv.*--resume.*--overwrite"):
        train(config)
    assert (run / "metrics.csv").read_bytes() == before and _steps(run) == [3, 4]
    with pytest.raises(UserError, match="pick one"):
        train(dataclasses.replace(config, resume=True, overwrite=True))


def test_overwrite_replaces_the_earlier_run(finished, tmp_path):
    config = _copy_run(finished, tmp_path)
    # Half the steps in half the intervals: one update per interval, as before, so the programs are the first
    # run's, which the compilation cache (conftest.py) holds.
    replaced = train(dataclasses.replace(
        config, overwrite=True, total_steps=2 * STEPS_PER_INTERVAL, num_logs=2, checkpoint_minutes=0.0
    ))  # fmt: skip
    rows = (replaced.run_dir / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2
    assert _steps(replaced.run_dir) == [2]


def test_the_lock_keeps_a_second_run_out_and_dies_with_its_process(tmp_path):
    config = tiny(tmp_path, run_name="locked")
    path = tmp_path / "runs" / "locked"
    with RunDirectory(path):
        with pytest.raises(UserError, match=rf"in use by another run \(pid {os.getpid()} on"):
            train(config)
    # A process killed while it holds the lock leaves the file, not the lock.
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from mnemax.train.run_dir import RunDirectory; run = RunDirectory({str(path)!r}); run.lock(); "
         "print('locked', flush=True); import time; time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=rf"pid {holder.pid} on"):
            RunDirectory(path).lock()
    finally:
        holder.kill()
        holder.wait()
    with RunDirectory(path):
        assert (path / ".lock").read_text().startswith(f"pid {os.getpid()} ")


def test_a_file_system_without_locks_is_reported_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    import errno
    import fcntl

    def no_locks(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with RunDirectory(tmp_path / "run"):
        assert (tmp_path / "run" / ".lock").read_text().startswith(f"pid {os.getpid()} ")
    assert re.fullmatch(
        r"cannot lock .*run \(.*No locks available\): a second run there would not be noticed\n",
        capsys.readouterr().err,
    )


# ------------------------------------------------------------------------------------ errors
def _spy_on_compiling_calls(monkeypatch) -> list[str]:
    """Record every call of the trainer's compiling functions (``init``, ``train_interval``)."""
    calls = []

    class Spy(loop.Trainer):
        def __init__(self, config):
            super().__init__(config)
            for name in ("init", "train_interval"):
                function = getattr(self, name)
                setattr(self, name, lambda *a, _f=function, _n=name: calls.append(_n) or _f(*a))

    monkeypatch.setattr(loop, "Trainer", Spy)
    return calls


@pytest.mark.parametrize(
    "args,message",
    [
        (["--num-envz", "3"], "unrecognized arguments: --num-envz 3"),
        (["--num-envs", "x"], "--num-envs: invalid literal"),
        (["--num-envs", "0"], "num_envs must be >= 1, got 0"),
        (["--env", "mnemax/TMaze-Pasive-v0"], "Did you mean: mnemax/TMaze-Passive-v0"),
        (["--memory", "lstn"], "unknown memory module"),
        (["--env-params", "corridor_length", "2.5"], "corridor_length must be an integer in [1, 2**30]"),
        (["--memory-config", "bogus", "1"], "has no field(s) ['bogus']"),
        (["--learning-rate", "nan"], "learning_rate must be a finite number in (0, 1], got nan"),
        (["--ent-coef", "inf"], "ent_coef must be a finite number >= 0, got inf"),
        (["--resume", "--overwrite"], "pick one"),
        (["--resume"], "--resume: no checkpoint found"),
    ],
)
def test_train_user_errors_are_one_line_and_exit_code_2_before_compiling(tmp_path, capsys, monkeypatch, args, message):
    calls = _spy_on_compiling_calls(monkeypatch)
    with pytest.raises(SystemExit) as exit:
        train_main(cli_args(tmp_path, run_name="e") + args)
    err = capsys.readouterr().err
    assert exit.value.code == 2
    assert err.count("\n") == 1 and err.startswith("mnemax-train") and message in err, err
    assert calls == []


def test_debug_shows_the_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_main(cli_args(tmp_path) + ["--num-envs", "0", "--debug"])
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("mnemax-train: num_envs must be >= 1, got 0")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--run", "nowhere"], "not a run directory"),
        (["--episodes", "0"], "--episodes must be >= 1"),
        (["--video-format", "webm"], "--video-format must be one of mp4, gif"),
    ],
)
def test_eval_user_errors_are_one_line(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit:
        eval_main(["--run", str(tmp_path)] + args)
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1 and message in err, err


def test_every_float_option_is_checked_for_finiteness_and_range():
    floats = [f.name for f in dataclasses.fields(PPOConfig) if f.type in (float, "float")]
    assert sorted(floats) == sorted(float_options(PPOConfig))
    out_of_range = {"learning_rate": [0.0, 2.0], "gamma": [1.5, -0.1], "gae_lambda": [1.01], "clip_eps": [0.0],
                    "ent_coef": [-0.1], "barrier_coef": [-0.1], "vf_coef": [-1.0], "aux_reconstruction": [-0.5], "max_grad_norm": [0.0], "checkpoint_minutes": [-1.0],
                    "kickstart_coef": [-0.1], "time_limit": [-1.0]}  # fmt: skip
    for name in floats:
        for value in [math.nan, math.inf, -math.inf] + out_of_range[name]:
            with pytest.raises(ValueError, match=rf"^{name} must be a finite number"):
                dataclasses.replace(PPOConfig(), **{name: value}).validate()


def test_help_lists_memories_and_points_to_the_env_list(capsys):
    with pytest.raises(SystemExit) as exit:
        train_main(["--help"])
    assert exit.value.code == 0
    text = re.sub(r"[\s│╭╮╰╯─]+", " ", capsys.readouterr().out)
    assert f"Memory modules (--memory): {', '.join(memory_modules.names())}, or none." in text
    assert "mnemax-envs" in text
    assert ":class:" not in text and "``" not in text
    assert not re.search(r"\(default[^)]*\) \(default", text)
    assert "--overwrite" in text and "--checkpoint-minutes" in text
    list_main([])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == registered_ids()
    list_main(["mnemax/TMaze-Passive-v0"])
    assert "corridor_length = 10  (an integer in [1, 2**30])" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ divergence
def test_divergence_stops_at_its_update_with_one_line_and_exit_code_1(tmp_path, capsys, monkeypatch):
    """Parameters poisoned before the third interval: the run stops there, saves nothing more, and the
    last checkpoint (interval 2) stays intact."""

    class Poisoned(loop.Trainer):
        def __init__(self, config):
            super().__init__(config)
            train_interval, calls = self.train_interval, []

            def poisoned(runner):
                calls.append(1)
                if len(calls) == 3:
                    params = jax.tree_util.tree_map(lambda x: x * jnp.nan, runner.train_state.params)
                    runner = runner.replace(train_state=runner.train_state.replace(params=params))
                return train_interval(runner)

            self.train_interval = poisoned

    monkeypatch.setattr(loop, "Trainer", Poisoned)
    with pytest.raises(SystemExit) as exit:
        train_main(cli_args(tmp_path, run_name="nan", checkpoint_every=1))
    err = capsys.readouterr().err
    assert exit.value.code == 1
    assert re.fullmatch(
        rf"mnemax-train: training diverged at update 3 \(step {3 * STEPS_PER_INTERVAL}\): \w+ is nan for seed 0; "
        r"stopped, the last checkpoint, .*checkpoints/2, is kept\n",
        err,
    ), err
    run = tmp_path / "runs" / "nan"
    assert _steps(run) == [1, 2]
    checkpointer = Checkpointer(run / "checkpoints")
    step, state = checkpointer.restore_latest(loop.Trainer(tiny(tmp_path)).init())
    checkpointer.close()
    assert step == 2 and bool(loop.all_finite(state.train_state.params))


def test_non_finite_names_the_first_update_and_seed():
    metrics = {"policy_loss": np.array([[0.1, 0.2, np.inf], [0.1, np.nan, 0.3]]), "return_sum": np.ones((2, 3))}
    assert loop.non_finite(metrics, np.array([True, True]), 5) == (1, "policy_loss is nan for seed 6")
    clean = {"policy_loss": np.zeros((2, 3))}
    assert loop.non_finite(clean, np.array([True, True]), 0) is None
    assert loop.non_finite(clean, np.array([True, False]), 0) == (2, "the parameters of seed 1 are not finite")


# ------------------------------------------------------------------------------------ checkpoints
def test_a_checkpoint_of_another_structure_stops_the_restore_and_stays(tmp_path):
    """A state saved with other fields (another version's memory carry) is intact, not corrupt: restoring it
    raises a clear error and moves nothing aside."""
    checkpointer = Checkpointer(tmp_path / "checkpoints")
    checkpointer.save(1, {"params": jnp.ones(3), "carry": (jnp.zeros((2, 4)), jnp.zeros(2, bool))})
    checkpointer.manager.wait_until_finished()
    target = {"params": jnp.ones(3), "carry": (jnp.zeros((2, 4)), jnp.zeros(2, bool), jnp.zeros(2, jnp.int32))}
    another_structure = r"checkpoints/1 holds a state of another structure .*without carry.2.* left in place"
    with pytest.raises(UserError, match=another_structure):
        checkpointer.restore_latest(target)
    checkpointer.save(2, {"a.b": jnp.ones(3)})  # the same name, joined by dots, as {"a": {"b": ...}}
    checkpointer.manager.wait_until_finished()
    with pytest.raises(UserError, match=r"checkpoints/2 holds a state of another structure .*without a.b and with a.b"):
        checkpointer.restore_latest({"a": {"b": jnp.ones(3)}})
    checkpointer.close()
    assert _steps(tmp_path) == [1, 2] and not (tmp_path / "corrupt-checkpoints").exists()


def test_a_state_with_typed_random_keys_restores(tmp_path):
    """Typed PRNG keys are saved as their raw data (another shape and dtype in the metadata): not a mismatch."""
    checkpointer = Checkpointer(tmp_path / "checkpoints")
    state = {"key": jax.random.split(jax.random.key(0), 3), "w": jnp.ones(2)}
    checkpointer.save(1, state)
    checkpointer.manager.wait_until_finished()
    step, restored = checkpointer.restore_latest(state)
    checkpointer.close()
    assert step == 1 and bool((jax.random.key_data(restored["key"]) == jax.random.key_data(state["key"])).all())


def test_a_checkpoint_of_other_shapes_stops_the_restore_and_names_a_leaf(tmp_path):
    """A state with the run's fields but other shapes (another width or number of envs) is not corrupt
    either: the error names the first leaf that differs, read from the metadata, and nothing is moved."""
    checkpointer = Checkpointer(tmp_path / "checkpoints")
    checkpointer.save(1, {"params": {"w": jnp.ones((2, 4))}, "step": jnp.zeros((), jnp.int32)})
    checkpointer.manager.wait_until_finished()
    target = {"params": {"w": jnp.ones((2, 8))}, "step": jnp.zeros((), jnp.int32)}
    with pytest.raises(UserError, match=r"other shapes .*\(params.w is \(2, 4\) float32 there, \(2, 8\) float32 here"):
        checkpointer.restore_latest(target)
    dtype = {"params": {"w": jnp.ones((2, 4), jnp.bfloat16)}, "step": jnp.zeros((), jnp.int32)}
    with pytest.raises(UserError, match=r"params.w is \(2, 4\) float32 there, \(2, 4\) bfloat16 here"):
        checkpointer.restore_latest(dtype)
    step, state = checkpointer.restore_latest({"params": {"w": jnp.zeros((2, 4))}, "step": jnp.ones((), jnp.int32)})
    checkpointer.close()
    assert step == 1 and float(state["params"]["w"].sum()) == 8 and _steps(tmp_path) == [1]


# After a read that fails inside tensorstore, orbax may leave a callback for its closed event loop.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_resume_falls_back_to_the_newest_intact_checkpoint(finished, tmp_path, capsys):
    config = _copy_run(finished, tmp_path)
    run = tmp_path / "runs" / config.name
    metadata = run / "checkpoints" / "4" / "default" / "_METADATA"
    metadata.write_text(metadata.read_text()[:40])  # a write cut short

    eval_main(["--run", str(run), "--episodes", "8", "--videos", "0"])
    assert re.search(
        r"checkpoint .*checkpoints/4 is corrupt \(ValueError: default/_METADATA is not valid JSON",
        capsys.readouterr().err,
    )
    assert _steps(run) == [3, 4]  # evaluation reads; it moves nothing

    resumed = train(dataclasses.replace(config, resume=True))
    err = capsys.readouterr().err
    assert re.fullmatch(
        r"checkpoint .*checkpoints/4 is corrupt \(ValueError: .*\); moved to .*corrupt-checkpoints/4\n", err
    ), err
    assert (run / "corrupt-checkpoints" / "4" / "default").is_dir() and _steps(run) == [3, 4]
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 4
    jax.tree_util.tree_map(
        np.testing.assert_array_equal, finished[1].runner.train_state.params, resumed.runner.train_state.params
    )

    for step in (3, 4):
        shutil.rmtree(run / "checkpoints" / str(step) / "default" / "d")  # array data gone
    with pytest.raises(UserError, match="no intact checkpoint"):
        train(dataclasses.replace(config, resume=True))
    assert len(re.findall("is corrupt", capsys.readouterr().err)) == 2


_BLOCKED_SAVE = """
import sys, time
import jax.numpy as jnp
import orbax.checkpoint as ocp
from mnemax.train.checkpoint import Checkpointer

async def finalize(self, *args, **kwargs):  # the commit (a rename) of the second checkpoint never comes
    print("writing", flush=True)
    time.sleep(600)

checkpointer = Checkpointer(sys.argv[1])
checkpointer.save(1, {"w": jnp.full(1000, 1.0)})
checkpointer.manager.wait_until_finished()
ocp.path.atomicity.AtomicRenameTemporaryPath.finalize = finalize
checkpointer.save(2, {"w": jnp.full(1000, 2.0)})
checkpointer.manager.wait_until_finished()
"""


def test_kill_9_during_a_checkpoint_write_leaves_the_previous_one_usable(tmp_path):
    directory = tmp_path / "checkpoints"
    writer = subprocess.Popen([sys.executable, "-c", _BLOCKED_SAVE, str(directory)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()
    leftovers = [p.name for p in directory.iterdir()]
    assert "1" in leftovers and "2" not in leftovers and any(name.startswith("2.") for name in leftovers), leftovers
    checkpointer = Checkpointer(directory)
    step, state = checkpointer.restore_latest({"w": jnp.zeros(1000)})
    assert step == 1 and float(state["w"].sum()) == 1000.0
    checkpointer.save(2, {"w": jnp.full(1000, 3.0)})  # the leftover does not block the next save
    checkpointer.close()
    assert sorted(p.name for p in directory.iterdir() if p.name.isdigit()) == ["1", "2"]


# ------------------------------------------------------------------------------------ signals and logs
_LINE = re.compile(
    r"step [\d,]+/[\d,]+  [\d,]+ steps/s  return (-?[\d.]+|nan)  success ([\d.]+|nan)  elapsed \d+:\d\d:\d\d"
)


class _Run:
    """``mnemax-train`` in a subprocess, its stdout lines collected by a thread (a full pipe would stall it)."""

    def __init__(self, args):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mnemax.train", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines, self.first = [], threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self.first.set()

    def first_step(self, timeout=300) -> int:
        assert self.first.wait(timeout), self.process.stderr.read() if self.process.poll() is not None else "no output"
        match = re.match(r"step ([\d,]+)/", self.lines[0])
        assert match and _LINE.match(self.lines[0]), self.lines[0]
        return int(match.group(1).replace(",", ""))

    def stop(self, signum) -> tuple[int, str]:
        """Send ``signum``; the exit code and stderr once the run has ended. stdout stays with the reader
        thread to its end (``communicate`` would read it too, and close it under the thread)."""
        self.process.send_signal(signum)
        self.process.wait(timeout=300)  # stderr is a few lines, far from filling its pipe
        self.reader.join(timeout=60)
        return self.process.returncode, self.process.stderr.read()


def test_signals_save_a_checkpoint_and_resume_continues(tmp_path):
    """SIGTERM (a preempted job) and Ctrl-C stop a run with a checkpoint; meanwhile a second start with the
    same run directory is refused; progress comes as plain, flushed lines when stdout is a pipe."""
    args = cli_args(tmp_path, run_name="sig", total_steps=STEPS_PER_INTERVAL * 10**5, num_logs=10**5, progress=True)
    args += ["--checkpoint-every", "1000000", "--checkpoint-minutes", "0"]
    first = _Run(args)
    try:
        assert first.first_step() == STEPS_PER_INTERVAL
        second = subprocess.run(
            [sys.executable, "-m", "mnemax.train", *args], capture_output=True, text=True, timeout=300
        )
        assert second.returncode == 2
        assert re.fullmatch(
            rf"mnemax-train: .*sig is in use by another run \(pid {first.process.pid} on .*\); .*\n", second.stderr
        )
        code, err = first.stop(signal.SIGTERM)
    finally:
        first.process.kill()
    assert code == 128 + signal.SIGTERM, err
    stopped = re.search(
        r"mnemax-train: stopped by SIGTERM at step ([\d,]+); checkpoint saved in .*, continue with --resume\n$", err
    )
    assert stopped, err
    step = int(stopped.group(1).replace(",", ""))
    run = tmp_path / "runs" / "sig"
    assert _steps(run) == [step // STEPS_PER_INTERVAL]

    resumed = _Run(args + ["--resume"])
    try:
        assert resumed.first_step() == step + STEPS_PER_INTERVAL
        code, err = resumed.stop(signal.SIGINT)
    finally:
        resumed.process.kill()
    assert code == 128 + signal.SIGINT and "mnemax-train: stopped by SIGINT" in err, err
    assert len(_steps(run)) == 2 and _steps(run)[0] == step // STEPS_PER_INTERVAL and _steps(run)[1] > _steps(run)[0]


def test_a_time_limit_stops_with_a_checkpoint_before_an_interval_would_overrun_it(tmp_path):
    """``time_limit``: the run stops at the last log after which another interval would end past the limit
    (here the first: any interval overruns a millisecond), with a checkpoint and exit code 124; ``--resume``
    without the limit trains the rest to the same result as an uninterrupted run."""
    config = tiny(tmp_path, run_name="limited", time_limit=1e-3)
    with pytest.raises(loop.TrainingInterrupted, match=r"stopped at step 128: another log interval .* time limit") as stop:
        train(config)
    assert stop.value.exit_code == loop.TIME_LIMIT_EXIT_CODE == 124
    assert _steps(tmp_path / "runs" / "limited") == [1]
    resumed = train(dataclasses.replace(config, time_limit=0.0, resume=True))
    whole = train(tiny(tmp_path, run_name="whole", time_limit=1e6))  # a limit never reached changes nothing
    assert resumed.steps == whole.steps == config.total_steps
    jax.tree_util.tree_map(np.testing.assert_array_equal, resumed.runner.train_state.params, whole.runner.train_state.params)


def test_a_signal_as_a_run_ends_lets_its_evaluation_finish(finished, tmp_path, monkeypatch):
    """SIGTERM after the last checkpoint (here while the curve is plotted) does not lose the run's result: the
    evaluation finishes, and the result names the signal, so that a caller with more runs starts none."""
    config = dataclasses.replace(_copy_run(finished, tmp_path), resume=True)  # resumed at its end: no training

    def unprotected(signum, frame):
        raise AssertionError("the signal reached the handler in force before the run")

    monkeypatch.setattr(loop, "plot_learning_curve", lambda *args: os.kill(os.getpid(), signal.SIGTERM))
    previous = signal.signal(signal.SIGTERM, unprotected)
    try:
        result = train(config)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.stopped_by == "SIGTERM"
    assert result.success == finished[1].success and result.episode_return == finished[1].episode_return
    assert finished[1].stopped_by is None


def test_videos_are_written_without_forking_the_interpreter(tmp_path):
    jax.jit(lambda x: x + 1)(jnp.ones(2)).block_until_ready()  # JAX's threads are running
    frames = np.random.default_rng(0).integers(0, 255, (6, 20, 20, 3), dtype=np.uint8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = write_video(tmp_path / "v.mp4", frames)
    assert path.stat().st_size > 0
    assert not [w for w in caught if "fork" in str(w.message)], [str(w.message) for w in caught]


def test_eval_plays_other_env_params_with_the_runs_network(finished, capsys):
    """``mnemax-eval --env/--env-params/--memory-config``: the run's network on another level of its task
    (the overrides reach the env: a bad value is refused by it), refused on a task whose network differs."""
    _, result = finished
    run = ["--run", str(result.run_dir), "--episodes", "8", "--videos", "0"]
    eval_main(run + ["--env-params", "corridor_length", "12"])
    out = capsys.readouterr().out
    assert "playing mnemax/TMaze-Passive-v0 corridor_length=12 (trained on mnemax/TMaze-Passive-v0" in out, out
    assert "greedy success" in out
    for flags, message in [
        (["--env-params", "corridor_length", "0"], "corridor_length"),
        (["--env", "mnemax/RepeatFirst-Easy-v0"], "differs from this configuration's"),
        (["--memory-config", "features", "7"], "differs from this configuration's"),
    ]:
        with pytest.raises(SystemExit) as exit:
            eval_main(run + flags)
        err = capsys.readouterr().err
        assert exit.value.code == 2 and err.count("\n") == 1 and message in err, err
