"""Attention videos of HCAM agents: the greedy rollout of a trained run beside the memory chunks it reads.

    python -m mnemax.train.attention_video --run runs/<name> [--steps 600] [--out videos/] [--layer -1]

Loads the last checkpoint of a run whose memory is ``hcam``, plays ``--steps`` greedy steps (episodes
back to back) and writes ``<out>/<name>-attention.mp4`` (``.gif`` with ``--video-format gif``). Each frame
is the environment's picture with a panel beside it: for the current step, the weight that the chosen HCAM
layer (averaged over its heads) puts on each memory chunk, drawn as a bar over the episode steps the chunk
covers, so the bar's position is the step at which the chunk began. Under the bars, a strip shows the
intervals an environment asks to mark (its ``episode_marks`` method): on Ballet when each dancer danced, in
its colour, and once the instruction is shown the asked dancer's dance is framed, so a viewer sees whether
the agent looks back at the dance it is asked about.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mnemax.agents import distributions
from mnemax.envs.core import wrappers
from mnemax.envs.tools.command_line import UserError, parse_dataclass, reported_errors
from mnemax.envs.tools.video import check_video_format, write_video
from mnemax.train.config import TrainConfig
from mnemax.train.loop import restore_run, saved_config
from mnemax.train.on_policy import OnPolicy, time_major

BACKGROUND, GRID, TEXT_RGB, NOW_RGB = (16, 16, 24), (60, 60, 72), (220, 220, 220), (255, 255, 255)
MEMORY_RGB, BAR_RGB = (38, 38, 52), (90, 200, 255)  # a chunk in memory, and its weight


@dataclasses.dataclass(frozen=True)
class AttentionVideoArgs:
    """Write a greedy rollout of a trained HCAM run with the chunk attention of every step beside it."""

    run: str
    """the run directory, e.g. runs/Ballet-8-Delay48-Symbolic-v0-hcam-s0"""
    steps: int = 600
    """frames in the video (one Ballet-8-Delay48 episode is at most 576 steps)"""
    out: str = "videos"
    """folder of the video, written as <out>/<run name>-attention.mp4"""
    layer: int = -1
    """HCAM layer whose chunk weights are shown (negative: counted from the last)"""
    seed_index: int = 0
    """which of the run's seeds (0 .. num_seeds - 1) plays"""
    key: int = 0
    """random key of the rollout (episode layouts)"""
    fps: int = 10
    video_format: str = "mp4"
    """mp4 (H.264 through imageio-ffmpeg) or gif (e.g. for a README gallery)"""
    debug: bool = False
    """show the traceback of an error, not just its message"""


class AttentionTrace(NamedTuple):
    """A greedy rollout and what the memory read at every step (``S`` steps, ``N`` memory chunks).

    Attributes:
        frames: ``uint8 [S, H, W, 3]``, the environment before each step's action.
        weights: ``f32 [S, heads, N + 1]``, the layer's chunk weights per head: the ``N`` carried chunks,
            oldest first, and the slot of a chunk completed during the (one-step) call, which no query
            can read yet.
        visible: ``bool [S, N]``, the carried chunks of the current episode (the ones a query may read).
        episode_step: ``int32 [S]``, steps since the episode began.
        states: the environment states (leaves ``[S, ...]``), for annotations.
    """

    frames: np.ndarray
    weights: np.ndarray
    visible: np.ndarray
    episode_step: np.ndarray
    states: Any


def load_run(run_dir: str | Path) -> tuple[TrainConfig, OnPolicy, Any]:
    """``(config, algorithm, params)`` of the last checkpoint of a run; params carry the seed axis first.

    The checkpoint is restored onto one device, whatever the run trained on, against the shapes of a fresh
    training state, which is never computed (no training function is compiled)."""
    config = dataclasses.replace(saved_config(run_dir), num_devices=1)
    trainer, runner = restore_run(run_dir, config)
    return config, trainer.algorithm, runner.train_state.params


def hcam_layers(algorithm: OnPolicy) -> int:
    """The number of HCAM layers of the agent; raises ``UserError`` for other memories."""
    if algorithm.config.memory != "hcam":
        raise UserError(f"attention videos need an HCAM agent; this run's memory is {algorithm.config.memory!r}")
    return algorithm.network.memory.num_layers


def attention_rollout(algorithm: OnPolicy, params, key: jax.Array, num_steps: int, layer: int = -1) -> AttentionTrace:
    """Play ``num_steps`` greedy steps with one seed's ``params`` and record the chunk weights of ``layer``."""
    layers = hcam_layers(algorithm)
    if not -layers <= layer < layers:
        raise UserError(f"the agent has {layers} HCAM layers; --layer must be in {-layers}..{layers - 1}, got {layer}")
    name = f"block_{layer % layers}"
    env, env_params = wrappers.Vmap(algorithm.env, 1), algorithm.eval_env_params

    @jax.jit
    def run(params, key):
        key, reset_key = jax.random.split(key)
        obs, env_state = env.reset(reset_key, env_params)

        def step(s, key):
            obs, env_state, carry, reset, t = s
            t = jnp.where(reset[0], 0, t + 1)
            frame = env.render(env_state, env_params)[0]
            (next_carry, logits, _), sown = algorithm.network.apply(
                params, carry, time_major(obs), reset[None], mutable=["intermediates"]
            )
            (weights,) = sown["intermediates"]["memory"][name]["hcam"]["chunk_weights"]  # [1, 1, heads, N + 1]
            visible = carry.chunk_valid[0] & ~reset[0]  # a reset hides the chunks of the episode before
            action = algorithm.env_action(distributions.mode(logits[0]))
            next_obs, next_state, _, terminated, truncated, _ = env.step(key, env_state, action, env_params)
            record = (frame, weights[0, 0], visible, t, jax.tree_util.tree_map(lambda x: x[0], env_state))
            return (next_obs, next_state, next_carry, terminated | truncated, t), record

        init = (obs, env_state, algorithm.network.initialize_carry(1), jnp.ones(1, bool), jnp.int32(0))
        _, record = jax.lax.scan(step, init, jax.random.split(key, num_steps))
        return record

    frames, weights, visible, episode_step, states = jax.device_get(run(params, key))
    return AttentionTrace(np.asarray(frames), np.asarray(weights), np.asarray(visible), np.asarray(episode_step), states)


def chunk_starts(episode_step: np.ndarray, memory_chunks: int, chunk_size: int) -> np.ndarray:
    """``int [S, N]``: the episode step at which the chunk in each memory slot began (negative for slots
    not filled yet). Chunks start with the episode and every ``chunk_size`` steps after it; a query at
    step ``t`` reads the ``t // chunk_size`` chunks completed before it, the latest ``N`` of them kept."""
    completed = np.asarray(episode_step)[:, None] // chunk_size
    return (completed - memory_chunks + np.arange(memory_chunks)[None, :]) * chunk_size


@dataclasses.dataclass(frozen=True)
class Marks:
    """What the panel shows for one step besides the weights: ``(start, end, rgb)`` intervals of the
    episode (end exclusive) drawn below the bars, the index of one of them to frame (or ``None``), and a
    note for the header."""

    intervals: list[tuple[int, int, tuple[int, int, int]]]
    framed: int | None = None
    note: str = ""


def episode_marks(env, params, state) -> Marks:
    """The marks an environment asks for through its ``episode_marks(state, params)`` method (Ballet: when
    each dancer danced, and the asked dancer once the instruction is shown); none for the others."""
    marks = getattr(getattr(env, "unwrapped", env), "episode_marks", None)
    return Marks(*marks(state, params)) if marks is not None else Marks([])


def draw_panel(
    height: int,
    width: int,
    weights: np.ndarray,
    starts: np.ndarray,
    visible: np.ndarray,
    chunk_size: int,
    step: int,
    span: int,
    marks: Marks,
    title: str,
) -> np.ndarray:
    """``uint8 [height, width, 3]``: bars of ``weights`` (``[N]``) over the episode steps of each chunk.

    The horizontal axis covers ``span`` episode steps (sliding on when ``step`` passes it); a chunk that
    began at step ``s`` is a bar over ``[s, s + chunk_size)``, dark where it is in memory, lit to the
    height of its weight; a white line marks ``step``."""
    from PIL import Image, ImageDraw  # Pillow comes with imageio; its built-in font needs no font files

    panel = np.empty((height, width, 3), np.uint8)
    panel[:] = BACKGROUND
    left, right, top, base = 10, width - 10, 34, height - 44
    origin = max(0, (step + 1 - span + chunk_size - 1) // chunk_size * chunk_size)
    scale = (right - left) / span

    def x(s: float) -> int:
        return left + int(round((s - origin) * scale))

    def box(x0, x1, y0, y1, rgb):
        x0, x1 = max(x0, left), min(x1, right)
        if x1 > x0 and y1 > y0:
            panel[y0:y1, x0:x1] = rgb

    for weight, start, shown in zip(weights, starts, visible):
        if shown and start + chunk_size > origin:
            x0, x1 = x(start), max(x(start + chunk_size) - 1, x(start) + 1)
            box(x0, x1, top, base, MEMORY_RGB)
            box(x0, x1, base - int(round(float(weight) * (base - top))), base, BAR_RGB)
    box(left, right, base, base + 1, GRID)
    for k, (start, end, rgb) in enumerate(marks.intervals):
        if k == marks.framed:
            box(x(start) - 2, x(end) + 2, base + 2, base + 14, NOW_RGB)
            box(x(start) - 1, x(end) + 1, base + 3, base + 13, BACKGROUND)
        box(x(start), x(end), base + 4, base + 12, rgb)
    box(x(step), x(step) + 1, top - 4, base + 15, NOW_RGB)

    image = Image.fromarray(panel)
    draw = ImageDraw.Draw(image)
    draw.text((left, 4), f"episode step {step}" + (f"   {marks.note}" if marks.note else ""), fill=NOW_RGB)
    draw.text((left, 17), title, fill=TEXT_RGB)
    tick = _tick_spacing(span)
    for s in range(math.ceil(origin / tick) * tick, origin + span + 1, tick):
        box(x(s), x(s) + 1, base, base + 3, GRID)
        draw.text((x(s) - 3, base + 18), str(s), fill=TEXT_RGB)
    draw.text((left, height - 13), "x: episode step at which each memory chunk began", fill=TEXT_RGB)
    return np.asarray(image)


def _tick_spacing(span: int, most: int = 6) -> int:
    for spacing in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000):
        if span / spacing <= most:
            return spacing
    return 10 ** math.ceil(math.log10(span))


def compose(trace: AttentionTrace, algorithm: OnPolicy, layer: int = -1, min_height: int = 256) -> np.ndarray:
    """``uint8 [S, H, W, 3]``: every frame, upscaled to at least ``min_height`` pixels, beside its panel."""
    memory = algorithm.network.memory
    layers, heads = memory.num_layers, memory.num_heads
    size, capacity = memory.chunk_size, memory.memory_chunks
    base = getattr(algorithm.env, "unwrapped", algorithm.env)
    span = int(base.episode_length(algorithm.eval_env_params)) if hasattr(base, "episode_length") else capacity * size
    span = max(span, size)
    starts = chunk_starts(trace.episode_step, capacity, size)
    mean = trace.weights[:, :, :capacity].mean(axis=1)
    factor = max(1, -(-min_height // trace.frames.shape[1]))
    height = trace.frames.shape[1] * factor
    title = f"HCAM layer {layer % layers + 1} of {layers}: chunk weights, mean of {heads} heads"
    out = []
    for i, frame in enumerate(trace.frames):
        state = jax.tree_util.tree_map(lambda x: x[i], trace.states)
        marks = episode_marks(algorithm.env, algorithm.eval_env_params, state)
        panel = draw_panel(
            height, 2 * height, mean[i], starts[i], trace.visible[i], size, int(trace.episode_step[i]), span, marks, title
        )
        out.append(np.concatenate([frame.repeat(factor, axis=0).repeat(factor, axis=1), panel], axis=1))
    return np.stack(out)


def attention_video(args: AttentionVideoArgs) -> tuple[Path, AttentionTrace]:
    """Write the video of ``args``; returns its path and the trace it shows."""
    check_video_format(args.video_format)
    config, algorithm, params = load_run(args.run)
    if not 0 <= args.seed_index < config.num_seeds:
        raise UserError(f"--seed-index must be in 0..{config.num_seeds - 1}, got {args.seed_index}")
    params = jax.tree_util.tree_map(lambda x: x[args.seed_index], params)
    trace = attention_rollout(algorithm, params, jax.random.PRNGKey(args.key), args.steps, args.layer)
    frames = compose(trace, algorithm, args.layer)
    path = Path(args.out) / f"{Path(args.run).name}-attention.{args.video_format}"
    return write_video(path, frames, fps=args.fps), trace


def main(argv: list[str] | None = None) -> None:
    args = parse_dataclass(AttentionVideoArgs, argv, "python -m mnemax.train.attention_video")
    with reported_errors("attention_video", args.debug):
        path, _ = attention_video(args)
        print(f"video: {path}")


if __name__ == "__main__":
    main()
