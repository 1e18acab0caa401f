"""Render rollouts of environments to mp4 videos (and optionally short GIFs).

    python -m mnemax.envs.tools.render_rollouts [--envs mnemax/MortarMayhem-Grid-v0 ...] [--policy scripted]
        [--steps 300] [--out videos/] [--gif-dir docs/gallery --gif-steps 60]

One video per environment, ``<out>/<Task>.mp4``, written with :func:`mnemax.envs.tools.video.write_video`; frames are
upscaled by an integer factor so that both sides are multiples of 16 (what H.264 players expect).
``--policy scripted`` plays an environment's ``expert_action(state, params)`` (a policy that reads the
hidden state, e.g. Mortar Mayhem's commands) where it has one and random actions elsewhere. The whole
rollout, rendering included, runs as one jitted ``lax.scan``.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import numpy as np

import mnemax.envs
from mnemax.envs.tools.command_line import ArgumentParser, reported_errors
from mnemax.envs.tools.video import write_video

DEFAULT_ENVS = (
    "mnemax/MortarMayhem-Grid-v0",
    "mnemax/MortarMayhem-v0",
    "mnemax/EndlessMortarMayhem-v0",
    "mnemax/MysteryPath-Grid-v0",
    "mnemax/MysteryPath-v0",
    "mnemax/EndlessMysteryPath-v0",
    "mnemax/SearingSpotlights-v0",
    "mnemax/EndlessSearingSpotlights-v0",
)


def rollout_frames(env_id: str, policy: str = "scripted", steps: int = 300, seed: int = 0) -> np.ndarray:
    """``uint8 [steps + 1, H, W, 3]``: the first frame of an episode and the frame after every step
    (episodes restart automatically)."""
    env, params = mnemax.envs.make(env_id)
    space = env.action_space(params)
    scripted = policy == "scripted" and hasattr(env, "expert_action")

    def run(key):
        key, reset_key = jax.random.split(key)
        _, state = env.reset(reset_key, params)

        def body(state, key):
            act_key, step_key = jax.random.split(key)
            action = env.expert_action(state, params) if scripted else space.sample(act_key)
            _, state, *_ = env.step(step_key, state, action, params)
            return state, env.render(state, params)

        _, frames = jax.lax.scan(body, state, jax.random.split(key, steps))
        return jax.numpy.concatenate([env.render(state, params)[None], frames])

    return np.asarray(jax.jit(run)(jax.random.key(seed)))


def block_scale(size: int, minimum: int, block: int = 16) -> int:
    """The smallest integer factor ``k >= minimum`` with ``size * k`` a multiple of ``block``."""
    step = block // math.gcd(size, block)
    return max(step, -(-minimum // step) * step)


def upscale_frames(frames: np.ndarray, minimum: int = 4, block: int = 16) -> np.ndarray:
    """Nearest-neighbour upscaling of ``[T, H, W, 3]`` so that ``H`` and ``W`` become multiples of ``block``."""
    height, width = frames.shape[1:3]
    k = max(block_scale(height, minimum, block), block_scale(width, minimum, block))
    return frames.repeat(k, axis=1).repeat(k, axis=2)


def write_gif(path: Path, frames: np.ndarray, fps: float) -> None:
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(path, list(frames), duration=1000.0 / fps, loop=0)


def task_name(env_id: str) -> str:
    return env_id.split("/")[-1].removesuffix("-v0")


def main(argv=None) -> list[Path]:
    parser = ArgumentParser(prog="python -m mnemax.envs.tools.render_rollouts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS))
    parser.add_argument("--policy", choices=("random", "scripted"), default="scripted")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("videos"))
    parser.add_argument("--scale", type=int, default=4, help="least upscaling factor (rounded up to fit 16-pixel blocks)")
    parser.add_argument("--fps", type=float, default=None, help="default: the task's own speed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gif-dir", type=Path, default=None, help="also write short GIFs here")
    parser.add_argument("--gif-steps", type=int, default=60)
    parser.add_argument("--gif-scale", type=int, default=2)
    args = parser.parse_args(argv)
    with reported_errors(parser.prog, args.debug, user_errors=(ValueError,)):
        for env_id in args.envs:  # bad ids are reported before anything renders
            mnemax.envs.make(env_id)
    written = []
    for env_id in args.envs:
        env, _ = mnemax.envs.make(env_id)
        fps = args.fps or min(getattr(env, "play_fps", 10), 15)
        frames = rollout_frames(env_id, args.policy, args.steps, args.seed)
        path = args.out / f"{task_name(env_id)}.mp4"
        write_video(path, upscale_frames(frames, args.scale), fps, min_height=0)
        written.append(path)
        print(f"{path}  ({len(frames)} frames, {fps:g} fps)", flush=True)
        if args.gif_dir is not None:
            gif = args.gif_dir / f"{task_name(env_id)}.gif"
            write_gif(gif, upscale_frames(frames[: args.gif_steps + 1], args.gif_scale, block=1), fps)
            written.append(gif)
            print(f"{gif}", flush=True)
    return written


if __name__ == "__main__":
    main()
