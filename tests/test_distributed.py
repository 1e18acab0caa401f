"""Several hosts, simulated on one machine.

Two processes joined by ``jax.distributed`` (CPU devices, gloo collectives, two forced devices each)
train through ``python -m mnemax.train --distributed``, told about each other only by the environment
variables a cluster sets. Their parameters equal those of one process on four devices, and the
checkpoint they write together resumes to the same parameters as the uninterrupted run.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from mnemax.train import algorithms
from mnemax.train.checkpoint import Checkpointer
from mnemax.train.loop import CONFIG_FILE, Trainer
from mnemax.train.logger import METRICS_FILE

pytestmark = pytest.mark.skipif(
    "jax_cpu_collectives_implementation" not in jax.config.values,
    reason=f"jax {jax.__version__} has no collectives between CPU processes (no jax_cpu_collectives_implementation)",
)

NUM_LOGS, NUM_SEEDS = 3, 2
# T-Maze with a short corridor, so that episodes end inside every rollout; 2 updates per log interval.
ARGS = [
    "--env", "mnemax/TMaze-Passive-v0", "--env-params", "corridor_length", "4", "--memory", "gru",
    "--hidden-size", "16", "--num-envs", "8", "--num-steps", "16", "--bptt-length", "8", "--num-minibatches", "2",
    "--update-epochs", "2", "--total-steps", str(8 * 16 * 2 * NUM_LOGS), "--num-logs", str(NUM_LOGS),
    "--checkpoint-every", "1", "--num-seeds", str(NUM_SEEDS), "--eval-episodes", "8", "--no-progress", "--no-video",
]  # fmt: skip
TIMEOUT_S = 600  # per run: a hung collective must fail the test, not stall it (generous for a loaded machine)
STACK_FRAME = re.compile(r"\s+@\s+0x")


def test_two_processes_match_one_process_on_four_devices_and_resume(tmp_path):
    runs, cache = tmp_path / "runs", tmp_path / "compilation-cache"
    common = [*ARGS, "--run-dir", str(runs), "--video-dir", str(tmp_path / "videos")]
    two = [*common, "--run-name", "two", "--distributed"]
    four = ([*common, "--run-name", "four"], _env(4, cache))
    outputs = _run_all([*_processes(two, 2, 2, cache), four], tmp_path / "logs")
    assert "final success rate" in outputs[0], outputs[0]
    # A process that had not joined the other would see only its own devices and report as process 0.
    assert "final success rate" not in outputs[1], "only process 0 reports:\n" + outputs[1]

    step, params_two = _last_checkpoint(runs / "two")
    assert step == NUM_LOGS
    _, params_four = _last_checkpoint(runs / "four")
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5), params_four, params_two
    )
    assert _metric_rows(runs / "two") == NUM_LOGS * NUM_SEEDS  # process 1 logs nothing

    # Kill-and-resume: drop the last checkpoint and train its two updates again from the one before,
    # whose environment states each process wrote for its own devices. Process 0 alone writes a video.
    shutil.rmtree(runs / "two" / "checkpoints" / str(NUM_LOGS))
    step, before = _last_checkpoint(runs / "two")
    assert step == NUM_LOGS - 1
    leaves = zip(jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(params_two))
    assert any(not np.array_equal(a, b) for a, b in leaves), "the interval to redo must change the parameters"
    resume = [*two, "--resume", "--video", "--video-steps", "8"]
    outputs = _run_all(_processes(resume, 2, 2, cache), tmp_path / "logs-resumed")
    assert "video:" in outputs[0] and "video:" not in outputs[1], outputs[0] + outputs[1]
    assert (tmp_path / "videos" / "two.mp4").stat().st_size > 0
    step, resumed = _last_checkpoint(runs / "two")
    assert step == NUM_LOGS
    jax.tree_util.tree_map(np.testing.assert_array_equal, params_two, resumed)
    assert _metric_rows(runs / "two") == NUM_LOGS * NUM_SEEDS  # the redone interval replaces its rows


def test_importing_mnemax_leaves_the_backend_for_distributed_initialize(tmp_path):
    """``jax.distributed.initialize()`` must come before the JAX backend starts, and ``--distributed`` calls it
    after importing the config (and with it the package): no module may create a jax.Array at import."""
    script = f"""
import importlib, pkgutil
import jax
import mnemax.agents, mnemax.envs, mnemax.memory_modules, mnemax.train
for package in (mnemax.agents, mnemax.envs, mnemax.memory_modules, mnemax.train):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith("__main__"):  # that one would start training
            importlib.import_module(module.name)
jax.distributed.initialize("127.0.0.1:{_free_port()}", num_processes=1, process_id=0)
print("initialized")
"""
    env = _env(1, tmp_path / "compilation-cache")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "initialized" in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]


def _processes(args: list[str], num_processes: int, devices_each: int, cache: Path) -> list[tuple[list[str], dict]]:
    """The command and environment of each process of one run, as a cluster would start them."""
    address = f"127.0.0.1:{_free_port()}"
    cluster = dict(JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES=str(num_processes))
    return [(args, _env(devices_each, cache, **cluster, JAX_PROCESS_ID=str(i))) for i in range(num_processes)]


def _env(devices: int, cache: Path, **extra: str) -> dict[str, str]:
    """CPU only, ``devices`` forced devices, no cluster inherited from the caller's environment.

    A persistent compilation cache lets the resumed run load the programs the first run compiled (the
    same programs on the same devices), which keeps the test fast on a small machine.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COORDINATOR", "JAX_NUM_PROC", "JAX_PROCESS"))}
    return env | {
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        **extra,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_all(commands: list[tuple[list[str], dict]], log_dir: Path) -> list[str]:
    """Start ``python -m mnemax.train`` for every (args, env) at once, wait for all, return their outputs.

    Processes of one run wait for each other in every collective, so they run concurrently, and once one
    fails (or the time is up) the others are stopped rather than left waiting; the failure shows the
    output of every process. Outputs go to files, which cannot fill up and block a process as a pipe can.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = [log_dir / f"process-{i}.log" for i in range(len(commands))]
    procs = []
    for (args, env), log in zip(commands, logs):
        with log.open("w") as out:  # the child keeps its own copy of the descriptor
            command = [sys.executable, "-m", "mnemax.train", *args]
            procs.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + TIMEOUT_S
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        if any(p.returncode not in (None, 0) for p in procs):
            break
        time.sleep(0.2)
    stopped = [i for i, p in enumerate(procs) if p.poll() is None]
    for i in stopped:
        procs[i].kill()
        procs[i].wait()
    # Without the native stack dumps that a failed collective adds, so that the Python traceback shows.
    outputs = ["".join(x for x in log.read_text().splitlines(True) if not STACK_FRAME.match(x)) for log in logs]
    failed = [i for i, p in enumerate(procs) if p.returncode != 0]
    if failed:
        why = f"still running after {TIMEOUT_S} s" if time.monotonic() >= deadline else "stopped when another failed"
        report = "\n".join(
            f"--- process {i} (exit {p.returncode}{', ' + why if i in stopped else ''}):\n{outputs[i][-4000:]}"
            for i, p in enumerate(procs)
        )
        pytest.fail(f"training processes {failed} did not finish:\n{report}")
    return outputs


def _last_checkpoint(run_dir: Path):
    """(step, parameters on the host) of the last checkpoint of a run, restored in this one-device process."""
    config = algorithms.config_from_json((run_dir / CONFIG_FILE).read_text())
    trainer = Trainer(config)
    checkpointer = Checkpointer(run_dir / "checkpoints")
    step = checkpointer.latest_step()
    runner = checkpointer.restore(step, jax.eval_shape(trainer.init))
    checkpointer.close()
    return step, jax.device_get(runner.train_state.params)


def _metric_rows(run_dir: Path) -> int:
    return len((run_dir / METRICS_FILE).read_text().strip().splitlines()) - 1  # without the header
