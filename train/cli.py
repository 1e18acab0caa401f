"""Command-line entry points: ``mnemax-train`` (``python -m mnemax.train``) and ``mnemax-eval``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import tyro

from mnemax.train.config import PPOConfig


def train_main(argv: list[str] | None = None) -> None:
    """Train a memory agent with PPO; every field of :class:`PPOConfig` is a flag (``--help``)."""
    config = tyro.cli(PPOConfig, args=argv, default=_preset_defaults(argv), description=train_main.__doc__)
    if config.distributed:
        initialize_distributed()
    from mnemax.train.loop import train

    result = train(config)
    if not result.is_main_process:
        return
    _report(result.config, result.run_dir, result.success, result.episode_return, result.steps_per_second)
    if result.video:
        print(f"video: {result.video}")


def _preset_defaults(argv: list[str] | None) -> PPOConfig:
    """The defaults the other flags override: those of ``--preset NAME`` when it is given."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--preset", default="")
    parser.add_argument("--memory", default=PPOConfig.memory)  # the preset's memory fields depend on it
    known = parser.parse_known_args(sys.argv[1:] if argv is None else argv)[0]
    return PPOConfig.from_preset(known.preset, memory=known.memory) if known.preset else PPOConfig()


def initialize_distributed() -> None:
    """Join a multi-process run: ``jax.distributed.initialize()`` before anything touches the devices.

    SLURM, Open MPI and TPU pods are detected by JAX itself. Elsewhere the cluster is described by
    ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``; JAX reads only the first of
    these from the environment, so the other two are passed on here.

    On the CPU, collectives between processes need an implementation: gloo unless one is chosen (the
    default of JAX 0.4.35 is none: no collectives across processes).
    """
    import os

    import jax

    def env_int(name: str) -> int | None:
        value = os.environ.get(name)
        return int(value) if value else None

    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(num_processes=env_int("JAX_NUM_PROCESSES"), process_id=env_int("JAX_PROCESS_ID"))


@dataclasses.dataclass(frozen=True)
class EvalArgs:
    """Evaluate a trained run greedily and write rollout videos."""

    run: str
    """the run directory, e.g. runs/TMaze-Passive-v0-gru-s0"""
    episodes: int = 256
    """greedy episodes per seed for the success rate"""
    videos: int = 1
    """videos to write, each from a different starting key"""
    video_steps: int = 200
    video_dir: str = "videos"


def eval_main(argv: list[str] | None = None) -> None:
    """Load the last checkpoint of a run, report greedy success, write videos to ``videos/<run>-eval-<i>.mp4``."""
    import jax
    import numpy as np

    from mnemax.envs.video import write_video
    from mnemax.train.loop import CONFIG_FILE, Trainer
    from mnemax.train.checkpoint import Checkpointer

    args = tyro.cli(EvalArgs, args=argv)
    run_dir = Path(args.run)
    if not (run_dir / CONFIG_FILE).exists():
        raise SystemExit(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
    saved = PPOConfig.from_json((run_dir / CONFIG_FILE).read_text())
    config = dataclasses.replace(saved, eval_episodes=args.episodes, video_steps=args.video_steps)
    trainer = Trainer(config)
    checkpointer = Checkpointer(run_dir / "checkpoints")
    step = checkpointer.latest_step()
    if step is None:
        raise SystemExit(f"no checkpoint in {run_dir / 'checkpoints'}")
    runner = checkpointer.restore(step, trainer.init())
    checkpointer.close()
    params = runner.train_state.params
    keys = jax.vmap(lambda k: jax.random.fold_in(k, 2))(trainer.keys)
    success, episode_return = jax.device_get(trainer.evaluate(params, keys))
    _report(config, run_dir, success, episode_return)
    first_seed = jax.tree_util.tree_map(lambda x: x[0], params)
    for i in range(args.videos):
        frames = np.asarray(trainer.frames(first_seed, jax.random.fold_in(keys[0], i)))
        print(f"video: {write_video(Path(args.video_dir) / f'{run_dir.name}-eval-{i}.mp4', frames)}")


def _report(config, run_dir, success, episode_return, steps_per_second=None) -> None:
    seeds = range(config.seed, config.seed + len(success))
    for seed, s, r in zip(seeds, success, episode_return):
        print(f"seed {seed}: greedy success {float(s):.3f}, mean return {float(r):.3f}")
    print(f"final success rate (mean over seeds): {sum(map(float, success)) / len(success):.3f}")
    if steps_per_second:
        print(f"training throughput: {steps_per_second:,.0f} env steps/s")
    print(f"run directory: {run_dir}")
