"""Command-line entry points: ``mnemax-train`` (``python -m mnemax.train``) and ``mnemax-eval``.

``mnemax-train [ALGORITHM] [FLAGS]``: the algorithm is a subcommand (``mnemax-train ppo ...``,
``mnemax-train dcpo ...``, :mod:`mnemax.train.algorithms`), PPO when none is given, and the flags are the
fields of its configuration.

A mistake in the arguments, the configuration or the run directory is one line on stderr and exit
code 2, before anything compiles; a run that diverges exits with 1 and one that SIGINT or SIGTERM
stops (after saving a checkpoint) with 130 or 143. ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Annotated, Union

import tyro

from mnemax.envs.tools.command_line import UserError, parse_dataclass, reported_errors
from mnemax.train import algorithms
from mnemax.train.config import DEFAULT_ALGORITHM, TrainConfig


def train_main(argv: list[str] | None = None) -> None:
    """Train a memory agent (``mnemax-train --help``)."""
    config = parse_train_args(sys.argv[1:] if argv is None else argv)
    with reported_errors("mnemax-train", config.debug):
        if config.distributed:
            initialize_distributed()
        from mnemax.train.loop import train

        result = train(config)
        if not result.is_main_process:
            return
        _report(result.config, result.run_dir, result.success, result.episode_return, result.steps_per_second)
        if result.video:
            print(f"video: {result.video}")


def parse_train_args(args: list[str]) -> TrainConfig:
    """The configuration of ``mnemax-train ARGS``: the algorithm a first word names (the default without
    one), its fields from the flags, over the defaults of ``--preset NAME`` when it is given."""
    with reported_errors("mnemax-train", "--debug" in args, user_errors=(ValueError,)):
        if "--algo" in args:
            raise UserError("the algorithm is a subcommand, not --algo: `mnemax-train dcpo ...` (see --help)")
        algo = args[0] if args and not args[0].startswith("-") else DEFAULT_ALGORITHM
        defaults = _preset_defaults(algorithms.config_class(algo), args)
    if not args or args[0] != algo:
        args = [algo, *args]

    def subcommand(name: str):
        given = {"default": defaults} if name == algo else {}  # only the chosen one is parsed
        config_class = algorithms.config_class(name)
        return Annotated[config_class, tyro.conf.subcommand(name, description=_description(name), **given)]

    return parse_dataclass(Union[tuple(subcommand(name) for name in algorithms.names())], args, "mnemax-train")


def _description(algo: str) -> str:
    from mnemax import memory_modules

    others = ", ".join(f"`mnemax-train {name} --help`" for name in algorithms.names() if name != algo)
    summary = " ".join(algorithms.config_class(algo).__doc__.split())
    default = f" `mnemax-train` without an algorithm is `mnemax-train {algo}`." if algo == DEFAULT_ALGORITHM else ""
    return (
        f"{summary}{default} Every field of the configuration is a flag; other algorithms: {others}.\n\n"
        "Environment ids: `mnemax-envs` lists them, one per line; `mnemax-envs ID` shows the parameters of one "
        "(set them with --env-params).\n"
        f"Memory modules (--memory): {', '.join(memory_modules.names())}, or none."
    )


def _preset_defaults(config_class: type[TrainConfig], argv: list[str]) -> TrainConfig:
    """The defaults the other flags override: those of ``--preset NAME`` when it is given."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--preset", default="")
    parser.add_argument("--memory", default=config_class.memory)  # the preset's memory fields depend on it
    known = parser.parse_known_args(argv)[0]
    return config_class.from_preset(known.preset, memory=known.memory) if known.preset else config_class()


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
    video_format: str = "mp4"
    """mp4 (H.264 through imageio-ffmpeg) or gif (e.g. for a README gallery)"""
    env: str = ""
    """play this registered env instead of the run's (same observation and action spaces), e.g. a harder level
    of the task it trained on"""
    env_params: dict[str, Union[int, float, bool, str]] = dataclasses.field(default_factory=dict)
    """env parameters over the run's, e.g. a longer corridor_length than it trained with"""
    memory_config: dict[str, Union[int, float, bool, str]] = dataclasses.field(default_factory=dict)
    """memory settings over the run's that size buffers rather than parameters, e.g. HCAM's memory_chunks for
    longer episodes (a setting that changes the parameters is refused)"""
    debug: bool = False
    """show the traceback of an error, not just its message"""


def eval_main(argv: list[str] | None = None) -> None:
    """Load the last intact checkpoint of a run, report greedy success, write videos to
    ``videos/<run>-eval-<i>.mp4`` (``.gif`` with ``--video-format gif``)."""
    args = parse_dataclass(EvalArgs, argv, "mnemax-eval", eval_main.__doc__.replace("``", ""))
    with reported_errors("mnemax-eval", args.debug):
        _evaluate(args)


def _evaluate(args: EvalArgs) -> None:
    import jax
    import numpy as np

    from mnemax.envs.tools.video import check_video_format, write_video
    from mnemax.train.loop import build_trainer, network_from, saved_config

    for name in ("episodes", "video_steps"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.videos < 0:
        raise UserError(f"--videos must be >= 0, got {args.videos}")
    check_video_format(args.video_format)
    run_dir = Path(args.run)
    trained = saved_config(run_dir)
    config = dataclasses.replace(
        trained, eval_episodes=args.episodes, video_steps=args.video_steps, env=args.env or trained.env,
        env_params={**trained.env_params, **args.env_params},
        memory_config={**trained.memory_config, **args.memory_config},
    )  # fmt: skip
    trainer = build_trainer(config)
    params = network_from(run_dir, trainer)  # checked against this env's and memory's network
    if (config.env, config.env_params) != (trained.env, trained.env_params):
        print(f"playing {_task(config)} (trained on {_task(trained)})")
    keys = jax.vmap(lambda k: jax.random.fold_in(k, 2))(trainer.keys)
    success, episode_return = jax.device_get(trainer.evaluate(params, keys))
    _report(config, run_dir, success, episode_return)
    first_seed = jax.tree_util.tree_map(lambda x: x[0], params)
    for i in range(args.videos):
        frames = np.asarray(trainer.frames(first_seed, jax.random.fold_in(keys[0], i)))
        print(f"video: {write_video(Path(args.video_dir) / f'{run_dir.name}-eval-{i}.{args.video_format}', frames)}")


def _task(config: TrainConfig) -> str:
    """The env id and its parameters, e.g. ``mnemax/TMaze-Passive-v0 corridor_length=100``."""
    return " ".join([config.env] + [f"{key}={value}" for key, value in config.env_params.items()])


def _report(config, run_dir, success, episode_return, steps_per_second=None) -> None:
    seeds = range(config.seed, config.seed + len(success))
    for seed, s, r in zip(seeds, success, episode_return):
        print(f"seed {seed}: greedy success {float(s):.3f}, mean return {float(r):.3f}")
    print(f"final success rate (mean over seeds): {sum(map(float, success)) / len(success):.3f}")
    if steps_per_second is not None and math.isnan(steps_per_second):
        # The first log interval a command trains includes compilation and is not counted; none followed it.
        print("training throughput: not measured (only one log interval trained, and it included compilation)")
    elif steps_per_second is not None:
        print(f"training throughput: {steps_per_second:,.0f} env steps/s")
    print(f"run directory: {run_dir}")
