"""The training driver: seeds, devices, logging, checkpoints, final evaluation and video.

``config.algo`` picks the algorithm: PPO, or DCPO (:mod:`mnemax.train.dcpo`). The driver needs only what
both provide: ``init(key) -> RunnerState`` and ``update(runner) -> (runner, metrics)`` for one seed
(``metrics`` with the episode sums of :func:`~mnemax.train.ppo.episode_metrics`), and ``network``,
``env``, ``env_params`` and ``env_action`` for evaluation and videos.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mnemax.envs.video import write_video
from mnemax.train import sharding
from mnemax.train.checkpoint import Checkpointer
from mnemax.train.config import PPOConfig, config_differences
from mnemax.train.dcpo import DCPO
from mnemax.train.evaluate import greedy_episodes, greedy_frames
from mnemax.train.logger import RunLogger, plot_learning_curve
from mnemax.train.ppo import PER_ENV_FIELDS, PPO, RunnerState

CONFIG_FILE = "config.json"


def make_algorithm(config: PPOConfig, num_devices: int = 1) -> PPO:
    """The algorithm ``config.algo`` names, built for ``config``."""
    config.validate(num_devices)
    return {"ppo": PPO, "dcpo": DCPO}[config.algo](config, num_devices=num_devices)


@dataclasses.dataclass
class TrainResult:
    """What a finished run leaves behind. Per-seed lists are ordered ``seed, seed + 1, ...``."""

    config: PPOConfig
    run_dir: Path
    success: list[float]  # greedy success rate over `eval_episodes` episodes, per seed
    episode_return: list[float]  # greedy mean episode return, per seed
    steps: int  # environment steps trained, per seed
    steps_per_second: float  # training throughput over all seeds, compile time excluded
    video: Path | None
    runner: RunnerState
    is_main_process: bool = True  # with several hosts, only process 0 writes logs, videos and reports


class Trainer:
    """Jitted, seed-vmapped and device-sharded functions for one configuration.

    ``init()`` builds the training state of all seeds; ``train_interval(state)`` runs
    ``config.updates_per_log`` updates of the configured algorithm (PPO or DCPO) and returns the new
    state and per-update metrics ``[num_seeds, updates_per_log]``.
    """

    def __init__(self, config: PPOConfig):
        self.mesh = sharding.make_mesh(config.num_devices)
        self.config = config
        self.algorithm = make_algorithm(config, num_devices=self.mesh.size)
        seeds = jnp.arange(config.seed, config.seed + config.num_seeds)
        self.keys = jax.vmap(jax.random.PRNGKey)(seeds)
        # Seeds are initialised one after the other (lax.map, not vmap): batched QR decompositions of
        # the orthogonal initialisers have been seen to hang XLA's CPU runtime.
        init_all = lambda: jax.lax.map(self.algorithm.init, self.keys)  # noqa: E731
        self.shardings = sharding.shardings_for(jax.eval_shape(init_all), self.mesh, PER_ENV_FIELDS, batch_axis=1)
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


def train(config: PPOConfig) -> TrainResult:
    """Train (or resume) the run described by ``config``; returns its final evaluation."""
    run_dir = Path(config.run_dir) / config.name
    trainer = Trainer(config)  # validates the config and builds env and agent before any compilation
    checkpointer = Checkpointer(run_dir / "checkpoints")
    start = _check_resume(config, run_dir, checkpointer)
    main = jax.process_index() == 0
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(run_dir / CONFIG_FILE, config.to_json())

    runner = trainer.init()
    if start:
        runner = checkpointer.restore(start, runner)
    steps_per_interval = config.updates_per_log * config.steps_per_update
    logger = RunLogger(
        run_dir, config.num_log_intervals * steps_per_interval, start * steps_per_interval, config.progress, enabled=main
    )
    train_seconds, train_steps = 0.0, 0
    try:
        for interval in range(start, config.num_log_intervals):
            t0 = time.perf_counter()
            runner, metrics = trainer.train_interval(runner)
            metrics = jax.device_get(metrics)
            seconds = time.perf_counter() - t0
            if interval > start:  # the first interval includes compilation
                train_seconds += seconds
                train_steps += steps_per_interval * config.num_seeds
            step = (interval + 1) * steps_per_interval
            logger.log(_rows(metrics, step, config.seed), steps_per_interval * config.num_seeds / seconds)
            done = interval + 1 == config.num_log_intervals
            if done or (interval + 1) % config.checkpoint_every == 0:
                checkpointer.save(interval + 1, runner)
    finally:
        logger.close()
        checkpointer.close()

    if main:
        title = f"{config.env} / {config.agent_name} / {config.algo}"
        plot_learning_curve(logger.csv_path, run_dir / "learning_curve.png", title)
    eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(trainer.keys)
    success, episode_return = jax.device_get(trainer.evaluate(runner.train_state.params, eval_keys))
    video = None
    if config.video and main:
        first_seed = jax.tree_util.tree_map(lambda x: x[0], runner.train_state.params)
        frames = np.asarray(trainer.frames(first_seed, eval_keys[0]))
        video = write_video(Path(config.video_dir) / f"{config.name}.mp4", frames)
    return TrainResult(
        config=config,
        run_dir=run_dir,
        success=[float(s) for s in success],
        episode_return=[float(r) for r in episode_return],
        steps=config.num_log_intervals * steps_per_interval,
        steps_per_second=train_steps / train_seconds if train_seconds else float("nan"),
        video=video,
        runner=runner,
        is_main_process=main,
    )


def _check_resume(config: PPOConfig, run_dir: Path, checkpointer: Checkpointer) -> int:
    """The log interval to start from (0 for a fresh run); refuses checkpoints of another config."""
    latest = checkpointer.latest_step()
    if not config.resume:
        for step in checkpointer.manager.all_steps():  # a fresh run replaces an earlier one of that name
            checkpointer.manager.delete(step)
        return 0
    if latest is None:
        raise ValueError(f"--resume: no checkpoint found in {run_dir / 'checkpoints'}")
    saved = PPOConfig.from_json((run_dir / CONFIG_FILE).read_text())
    diffs = config_differences(saved, config)
    if diffs:
        lines = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in sorted(diffs.items()))
        raise ValueError(f"the checkpoint in {run_dir} was made with another configuration ({lines})")
    return latest


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
