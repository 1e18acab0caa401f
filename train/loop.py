"""The training driver: seeds, devices, logging, checkpoints, final evaluation and video.

The configuration's algorithm (:mod:`mnemax.train.algorithms`) does the learning. The driver needs only
what every :class:`~mnemax.train.on_policy.OnPolicy` algorithm provides: ``init(key) -> RunnerState`` and
``update(runner) -> (runner, metrics)`` for one seed (``metrics`` with the episode sums of
:func:`~mnemax.train.on_policy.episode_metrics`), and ``network``, ``env``, ``env_params`` and
``env_action`` for evaluation and videos.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from mnemax.envs.tools.command_line import ReportedError, UserError
from mnemax.envs.tools.video import write_video
from mnemax.train import algorithms, sharding
from mnemax.train.checkpoint import Checkpointer
from mnemax.train.config import TrainConfig, config_differences
from mnemax.train.evaluate import greedy_episodes, greedy_frames
from mnemax.train.logger import METRICS_FILE, RunLogger, plot_learning_curve
from mnemax.train.on_policy import PER_ENV_FIELDS, RunnerState
from mnemax.train.run_dir import RunDirectory

CONFIG_FILE = "config.json"


@dataclasses.dataclass
class TrainResult:
    """What a finished run leaves behind. Per-seed lists are ordered ``seed, seed + 1, ...``."""

    config: TrainConfig
    run_dir: Path
    success: list[float]  # greedy success rate over `eval_episodes` episodes, per seed
    episode_return: list[float]  # greedy mean episode return, per seed
    steps: int  # environment steps trained, per seed
    steps_per_second: float  # training throughput over all seeds, compile time excluded
    video: Path | None
    runner: RunnerState
    is_main_process: bool = True  # with several hosts, only process 0 writes logs, videos and reports
    # SIGINT or SIGTERM arrived during the last interval or the final evaluation (which it let finish): the
    # run is complete, and a caller with more runs to start should stop
    stopped_by: str | None = None


class Trainer:
    """Jitted, seed-vmapped and device-sharded functions for one configuration.

    ``init()`` builds the training state of all seeds; ``train_interval(state)`` runs
    ``config.updates_per_log`` updates of the configuration's algorithm and returns the new state and
    per-update metrics ``[num_seeds, updates_per_log]``; ``abstract_state()`` is the state's structure,
    shapes, dtypes and shardings, what a checkpoint restores into without compiling ``init``.
    """

    def __init__(self, config: TrainConfig):
        self.mesh = sharding.make_mesh(config.num_devices)
        self.config = config
        self.algorithm = algorithms.make(config, num_devices=self.mesh.size)
        seeds = jnp.arange(config.seed, config.seed + config.num_seeds)
        self.keys = jax.vmap(jax.random.PRNGKey)(seeds)
        # Seeds are initialised one after the other (lax.map, not vmap): batched QR decompositions of
        # the orthogonal initialisers have been seen to hang XLA's CPU runtime.
        init_all = lambda: jax.lax.map(self.algorithm.init, self.keys)  # noqa: E731
        self._shapes = jax.eval_shape(init_all)
        self.shardings = sharding.shardings_for(self._shapes, self.mesh, PER_ENV_FIELDS, batch_axis=1)
        replicated = sharding.replicated(self.mesh)
        self.init = jax.jit(init_all, out_shardings=self.shardings)

        def interval(runner):
            return jax.lax.scan(lambda r, _: self.algorithm.update(r), runner, None, length=config.updates_per_log)

        self.interval = jax.vmap(interval)  # unjitted, for benchmarks that compare ways of compiling it
        self.train_interval = jax.jit(
            self.interval, in_shardings=(self.shardings,), out_shardings=(self.shardings, replicated), donate_argnums=0
        )
        self.evaluate = jax.jit(
            jax.vmap(lambda params, key: greedy_episodes(self.algorithm, params, key, config.eval_episodes))
        )
        self.frames = jax.jit(lambda params, key: greedy_frames(self.algorithm, params, key, config.video_steps))
        self.params_finite = jax.jit(jax.vmap(all_finite))  # per seed, checked after every log interval
        self._checkpoint_carry = jax.jit(self.algorithm.checkpoint_carry, out_shardings=self.shardings.carry)

    def checkpoint_state(self, runner: RunnerState) -> RunnerState:
        """``runner`` as a checkpoint keeps it: without ``checkpoint_rollout`` the per-environment fields
        are left out (``None``); otherwise the memory's projections are zeroed
        (:meth:`OnPolicy.checkpoint_carry`)."""
        if not self.config.checkpoint_rollout:
            return training_state_alone(runner)
        return runner.replace(carry=self._checkpoint_carry(runner.carry)) if self.algorithm.projected_fields else runner

    def abstract_state(self) -> RunnerState:
        """What :meth:`checkpoint_state` saves, as ``jax.ShapeDtypeStruct`` leaves with their shardings: a
        restore target that costs no compilation (building the state for real compiles the environment's
        reset and the network's initialisation, seconds for pixel tasks)."""
        state = jax.tree_util.tree_map(
            lambda leaf, place: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=place), self._shapes, self.shardings
        )
        return state if self.config.checkpoint_rollout else training_state_alone(state)

    def restored_state(self, saved: RunnerState) -> RunnerState:
        """The state to go on from, given what a checkpoint held: itself, or, for a checkpoint without the
        per-environment fields, fresh episodes (those ``init()`` starts) under the saved training state."""
        if self.config.checkpoint_rollout:
            return saved
        fresh = self.init()
        return fresh.replace(train_state=saved.train_state, key=saved.key, update=saved.update)


def training_state_alone(runner: RunnerState) -> RunnerState:
    """``runner`` without its per-environment fields (``None``): what a checkpoint holds, and what its restore
    target must be, under ``checkpoint_rollout=False``."""
    return runner.replace(**dict.fromkeys(PER_ENV_FIELDS))


class TrainingDiverged(ReportedError):
    """Losses, returns or parameters became non-finite; the run stopped without saving that state."""

    exit_code = 1


class TrainingInterrupted(ReportedError):
    """SIGINT, SIGTERM or ``time_limit`` stopped the run after it saved a checkpoint; ``resume=True``
    continues it. ``exit_code``: ``128 + signal`` (the shell's convention for a process ended by a signal),
    or ``TIME_LIMIT_EXIT_CODE``."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


TIME_LIMIT_EXIT_CODE = 124  # as `timeout`'s: the run ran out of its time and may continue


def train(config: TrainConfig) -> TrainResult:
    """Train (or resume) the run described by ``config``; returns its final evaluation.

    Raises:
        UserError: for a configuration or run directory that cannot be used, before anything compiles.
        TrainingDiverged: when the losses, returns or parameters of an update are not finite.
        TrainingInterrupted: after SIGINT or SIGTERM, or at ``time_limit``, once a checkpoint is saved.
    """
    started = time.monotonic()  # what time_limit counts from
    trainer = build_trainer(config)  # validates the config and builds env and agent before any compilation
    run = RunDirectory(Path(config.run_dir) / config.name)
    main = jax.process_index() == 0
    with run if main else contextlib.nullcontext():  # one process of a multi-host run holds the lock
        if main:
            run.claim(config.resume, config.overwrite)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("mnemax: run directory claimed")
        checkpointer = Checkpointer(run.checkpoints)
        try:
            _check_resume(config, run.path, checkpointer)
            if main:
                _write_atomically(run.path / CONFIG_FILE, config.to_json())
            start = 0
            if config.resume:  # _check_resume made sure there is a checkpoint to continue
                start, saved = checkpointer.restore_latest(trainer.abstract_state())
                runner = trainer.restored_state(saved)
            else:
                # another run's network is read and checked before init compiles anything
                network = network_from(Path(config.init_from), trainer) if config.init_from else None
                runner = trainer.init()
                if network is not None:
                    runner = _start_from(runner, network)
            runner, steps_per_second, received = _train_intervals(
                config, trainer, runner, start, run.path, checkpointer, main, started
            )
        finally:
            checkpointer.close()

    # The last checkpoint is saved: a signal now lets the plot and the evaluation finish (a second Ctrl-C
    # stops at once), so that a run stopped by a time limit just after its last interval reports its result.
    with StopSignals(when="finishing the final evaluation, then") as signals:
        if main:
            title = f"{config.env} / {config.agent_name} / {config.algo}"
            plot_learning_curve(run.path / METRICS_FILE, run.path / "learning_curve.png", title)
        eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(trainer.keys)
        success, episode_return = jax.device_get(trainer.evaluate(runner.train_state.params, eval_keys))
        video = None
        if config.video and main:
            first_seed = jax.tree_util.tree_map(lambda x: x[0], runner.train_state.params)
            frames = np.asarray(trainer.frames(first_seed, eval_keys[0]))
            video = write_video(Path(config.video_dir) / f"{config.name}.mp4", frames)
    stopped_by = received or signals.received
    return TrainResult(
        config=config,
        run_dir=run.path,
        success=[float(s) for s in success],
        episode_return=[float(r) for r in episode_return],
        steps=config.num_log_intervals * config.updates_per_log * config.steps_per_update,
        steps_per_second=steps_per_second,
        video=video,
        runner=runner,
        is_main_process=main,
        stopped_by=signal.Signals(stopped_by).name if stopped_by else None,
    )


def build_trainer(config: TrainConfig) -> Trainer:
    """The trainer; what the configuration gets wrong (ids, sizes, parameters) is a :class:`UserError`."""
    try:
        return Trainer(config)
    except (ValueError, TypeError) as error:
        raise UserError(str(error)) from error


def restore_run(run_dir: str | Path, config: TrainConfig | None = None) -> tuple[Trainer, RunnerState]:
    """The trainer of the run saved in ``run_dir`` (built from ``config``, by default the run's own) and
    the training state of its latest intact checkpoint (nothing is set aside), as saved: without the
    per-environment fields (``None``) for a run with ``checkpoint_rollout=False``.

    Raises:
        UserError: when ``run_dir`` is not a run directory or holds no intact checkpoint.
    """
    trainer = build_trainer(config or saved_config(run_dir))
    checkpointer = Checkpointer(RunDirectory(run_dir).checkpoints)
    try:
        _, runner = checkpointer.restore_latest(trainer.abstract_state(), set_aside=False)
    finally:
        checkpointer.close()
    return trainer, runner


def network_from(run_dir: Path, trainer: Trainer):
    """The network parameters of the run in ``run_dir`` (a run's ``init_from``; ``mnemax-eval`` on another
    env), checked against the structure and shapes of ``trainer``'s network without compiling its
    initialisation.

    Raises:
        UserError: when the saved network differs in structure or shapes (seeds included).
    """
    _, source = restore_run(run_dir)
    params, own = source.train_state.params, trainer.abstract_state().train_state.params
    paths = lambda tree: {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(tree)}  # noqa: E731
    theirs, ours = paths(params), paths(own)
    if theirs != ours:
        differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        detail = ", ".join(f"{k}: {theirs.get(k, 'missing')} there, {ours.get(k, 'missing')} here" for k in differ[:3])
        raise UserError(f"the network of {run_dir} differs from this configuration's ({detail})")
    return params


def _start_from(runner: RunnerState, params) -> RunnerState:
    """``runner`` with the network ``params`` (from :func:`network_from`), placed as ``runner``'s own;
    everything else (optimizer moments, environments, counters) stays fresh."""
    own = runner.train_state.params
    params = jax.tree_util.tree_map(lambda p, o: jax.device_put(p.astype(o.dtype), o.sharding), params, own)
    return runner.replace(train_state=runner.train_state.replace(params=params))


def saved_config(run_dir: str | Path) -> TrainConfig:
    """The configuration a run directory was trained with."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
    try:
        return algorithms.config_from_json(path.read_text())
    except ValueError as error:  # an algorithm this version does not know
        raise UserError(f"{path}: {error}") from error


def _train_intervals(
    config, trainer, runner, start, run_dir, checkpointer, main, started
) -> tuple[RunnerState, float, int | None]:
    """Log intervals ``start ..``: train, log, stop if anything became non-finite, save a checkpoint when
    due (by count, by clock, at the end, on a signal or when the next interval would overrun ``time_limit``
    seconds from ``started``). Returns the final state, the throughput (compilation excluded) and the signal
    that arrived during the last interval, if one did."""
    steps_per_interval = config.updates_per_log * config.steps_per_update
    total = config.num_log_intervals * steps_per_interval
    logger = RunLogger(run_dir, total, start * steps_per_interval, config.progress, enabled=main)
    train_seconds, train_steps = 0.0, 0
    last_save, saved = time.monotonic(), start
    try:
        with StopSignals() as signals:  # a signal while compiling stops the run after its first interval
            train_interval = trainer.train_interval
            if config.time_limit > 0 and start < config.num_log_intervals:
                # Compiled before the first interval, so that the first interval's time, the estimate of the
                # next one's, leaves compilation out (minutes for pixel tasks: enough to end a piece early).
                train_interval = trainer.train_interval.lower(runner).compile()
            for interval in range(start, config.num_log_intervals):
                t0 = time.perf_counter()
                runner, metrics = train_interval(runner)
                metrics = jax.device_get(metrics)
                seconds = time.perf_counter() - t0
                if interval > start:  # the first interval includes compilation
                    train_seconds += seconds
                    train_steps += steps_per_interval * config.num_seeds
                step = (interval + 1) * steps_per_interval
                logger.log(_rows(metrics, step, config.seed), steps_per_interval * config.num_seeds / seconds)
                params_finite = trainer.params_finite(runner.train_state.params)
                _stop_if_diverged(config, interval, metrics, params_finite, checkpointer, saved)
                done = interval + 1 == config.num_log_intervals
                due = done or (interval + 1) % config.checkpoint_every == 0
                late = config.checkpoint_minutes > 0 and time.monotonic() - last_save >= 60 * config.checkpoint_minutes
                # The next interval should take as long as this one.
                overrun = config.time_limit > 0 and time.monotonic() - started + seconds > config.time_limit
                save, stop, out_of_time = _agree(due or late, signals.received is not None or overrun, overrun)
                if save or stop:
                    checkpointer.save(interval + 1, trainer.checkpoint_state(runner))
                    last_save, saved = time.monotonic(), interval + 1
                if stop and not done:
                    saved_in = f"checkpoint saved in {checkpointer.directory}, continue with --resume"
                    if out_of_time and not signals.received:
                        raise TrainingInterrupted(
                            f"stopped at step {step:,}: another log interval (~{seconds:.0f} s) would end past the "
                            f"time limit ({config.time_limit:g} s); {saved_in}",
                            TIME_LIMIT_EXIT_CODE,
                        )
                    signum = signals.received or signal.SIGTERM  # another process of a multi-host run got it
                    raise TrainingInterrupted(
                        f"stopped by {signal.Signals(signum).name} at step {step:,}; {saved_in}", 128 + signum
                    )
    finally:
        logger.close()
    return runner, train_steps / train_seconds if train_seconds else float("nan"), signals.received


def _stop_if_diverged(config, interval, metrics, params_finite, checkpointer, saved) -> None:
    """Raise :class:`TrainingDiverged` naming the update where a metric or the parameters stopped being
    finite (``saved``: the interval of the last checkpoint, which stays the newest)."""
    problem = non_finite(metrics, jax.device_get(params_finite), config.seed)
    if problem is None:
        return
    update = interval * config.updates_per_log + problem[0] + 1
    kept = f"the last checkpoint, {checkpointer.directory / str(saved)}, is kept" if saved else "no checkpoint yet"
    raise TrainingDiverged(
        f"training diverged at update {update} (step {update * config.steps_per_update:,}): {problem[1]}; "
        f"stopped, {kept}"
    )


def non_finite(metrics: dict[str, np.ndarray], params_finite: np.ndarray, first_seed: int) -> tuple[int, str] | None:
    """The first non-finite value of an interval: ``(update within the interval, description)``, or None.

    ``metrics`` are per-update values ``[num_seeds, updates]``; ``params_finite`` says per seed whether
    the parameters at the end of the interval are finite.
    """
    found = []
    for key, values in metrics.items():
        bad = ~np.isfinite(values)
        if bad.any():
            update = int(np.flatnonzero(bad.any(axis=0))[0])
            seed = int(np.flatnonzero(bad[:, update])[0])
            found.append((update, f"{key} is {values[seed, update]} for seed {first_seed + seed}"))
    if not np.all(params_finite):  # known at the end of the interval only
        seed = int(np.flatnonzero(~np.asarray(params_finite))[0])
        last_update = next(iter(metrics.values())).shape[1] - 1
        found.append((last_update, f"the parameters of seed {first_seed + seed} are not finite"))
    return min(found, key=lambda f: f[0]) if found else None


def all_finite(tree) -> jax.Array:
    """Whether every number in ``tree`` is finite (a boolean scalar)."""
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree_util.tree_leaves(tree)]))


def _agree(*flags: bool) -> tuple[bool, ...]:
    """``flags`` as process 0 sees them, on every process: the processes of a multi-host run must save
    (a collective operation) and stop together, though their clocks and signals differ."""
    if jax.process_count() == 1:
        return flags
    return tuple(bool(f) for f in multihost_utils.broadcast_one_to_all(np.array(flags)))


class StopSignals:
    """While active (in the main thread), SIGINT and SIGTERM do not kill the run: ``received`` records the
    signal and the loop saves a checkpoint and stops at the end of the interval. A second SIGINT
    interrupts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, when: str = "saving a checkpoint at the end of this log interval, then"):
        self.received: int | None = None
        self.when = when  # what happens before the run stops, for the message
        self._previous = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum
        print(
            f"{signal.Signals(signum).name}: {self.when} stopping (Ctrl-C again stops at once)",
            file=sys.stderr,
            flush=True,
        )


def _check_resume(config: TrainConfig, run_dir: Path, checkpointer: Checkpointer) -> None:
    """For ``resume``: refuse a run without checkpoints or with checkpoints of another config."""
    if not config.resume:
        return
    if checkpointer.latest_step() is None:
        raise UserError(f"--resume: no checkpoint found in {checkpointer.directory}")
    diffs = config_differences(saved_config(run_dir), config)
    if diffs:
        lines = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in sorted(diffs.items()))
        raise UserError(f"the checkpoint in {run_dir} was made with another configuration ({lines})")


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step: when a multi-process run resumes, process 0 rewrites the config while
    the others read it (``_check_resume``), and a reader must never see it half written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _rows(metrics: dict[str, np.ndarray], step: int, first_seed: int) -> list[dict[str, float]]:
    """One CSV row per seed from per-update metrics ``[num_seeds, updates]``."""
    rows = []
    for s in range(metrics["episodes"].shape[0]):
        episodes = float(metrics["episodes"][s].sum())
        per_episode = lambda key: float(metrics[key][s].sum()) / episodes if episodes else float("nan")  # noqa: E731
        row = {"step": step, "seed": first_seed + s, "episodes": episodes}
        row |= {"return": per_episode("return_sum"), "success": per_episode("success_sum"), "length": per_episode("length_sum")}
        row |= {k: float(v[s].mean()) for k, v in metrics.items() if not k.endswith("_sum") and k != "episodes"}
        rows.append(row)
    return rows
