"""Play any registered environment with the keyboard in a pygame window.

    python -m mnemax.envs.tools.play mnemax/MortarMayhem-Grid-v0 [--scale 6] [--seed 0] [--fps 6]

The arrow keys act (each environment maps the held keys to one of its actions through its
``keys_to_action(keys, params)`` method), space waits a step where the environment has a no-op, Esc or
closing the window quits. Turn-based tasks (grid movement: ``keys_to_action`` answers None when no key
is pressed) advance only on a key press; the others run at ``--fps`` and read the held keys every frame. ``--max-frames`` stops after that many frames (with
``SDL_VIDEODRIVER=dummy`` this runs headless, for tests).
"""

from __future__ import annotations

import jax
import numpy as np

import mnemax.envs
from mnemax.envs.tools.command_line import ArgumentParser, reported_errors
from mnemax.envs.tools.human_render import Window

_KEY_NAMES = {"K_UP": "up", "K_DOWN": "down", "K_LEFT": "left", "K_RIGHT": "right", "K_SPACE": "space"}  # pygame names


def default_keys_to_action(env, params):
    """A mapping for environments without ``keys_to_action``: arrows and space pick the first actions
    of a discrete action space in the order up, right, down, left, space."""
    n = getattr(env.action_space(params), "n", None)
    if n is None:
        raise ValueError(f"{env.name} has no keys_to_action and a non-discrete action space")
    order = ("up", "right", "down", "left", "space")[:n]

    def keys_to_action(keys, _params):
        for index, name in enumerate(order):
            if name in keys:
                return index
        return None

    return keys_to_action


def held_keys(pygame) -> frozenset:
    pressed = pygame.key.get_pressed()
    return frozenset(name for attr, name in _KEY_NAMES.items() if pressed[getattr(pygame, attr)])


def play(env_id: str, scale: int = 6, seed: int = 0, fps: float | None = None, max_frames: int | None = None) -> dict:
    """Run the game loop; returns a summary (frames shown, steps taken, episodes, total reward)."""
    import pygame

    env, params = mnemax.envs.make(env_id)
    keys_to_action = getattr(env, "keys_to_action", None) or default_keys_to_action(env, params)
    # Environments whose `keys_to_action` answers None for no key wait for the player (turn-based).
    turn_based = keys_to_action(frozenset(), params) is None
    fps = fps or getattr(env, "play_fps", 10)
    reset, step, render = jax.jit(env.reset), jax.jit(env.step), jax.jit(env.render)
    key = jax.random.key(seed)
    key, reset_key = jax.random.split(key)
    _, state = reset(reset_key, params)
    frame = np.asarray(render(state, params))
    window = Window(f"mnemax {env_id}", frame.shape, scale)
    key_codes = {getattr(pygame, attr): name for attr, name in _KEY_NAMES.items()}
    summary = {"frames": 0, "steps": 0, "episodes": 0, "return": 0.0}
    pressed_now: set[str] = set()
    running = True
    try:
        while running and (max_frames is None or summary["frames"] < max_frames):
            window.show(frame, fps=fps)
            summary["frames"] += 1
            pressed_now.clear()
            for event in window.events():
                if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                    running = False
                elif event.type == pygame.KEYDOWN and event.key in key_codes:
                    pressed_now.add(key_codes[event.key])
            # Turn-based tasks act once per key press; real-time ones read the keys held down.
            keys = frozenset(pressed_now) if turn_based else held_keys(pygame) | frozenset(pressed_now)
            action = keys_to_action(keys, params)
            if action is None:
                continue
            key, step_key = jax.random.split(key)
            _, state, reward, terminated, truncated, info = step(step_key, state, np.asarray(action), params)
            summary["steps"] += 1
            summary["return"] += float(reward)
            if bool(terminated | truncated):
                summary["episodes"] += 1
                print(f"episode over: success={bool(info['success'])}, return {summary['return']:.2f}", flush=True)
            frame = np.asarray(render(state, params))
    finally:
        window.close()
    return summary


def main(argv=None):
    parser = ArgumentParser(prog="python -m mnemax.envs.tools.play", description=__doc__.split("\n\n")[0])
    parser.add_argument("env_id", help="a registered id, e.g. mnemax/MortarMayhem-Grid-v0")
    parser.add_argument("--scale", type=int, default=6, help="integer upscaling of the frame")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fps", type=float, default=None, help="frames per second (default: the task's)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    args = parser.parse_args(argv)
    with reported_errors(parser.prog, args.debug, user_errors=(ValueError,)):
        mnemax.envs.make(args.env_id)  # a bad id is reported before a window opens
    summary = play(args.env_id, args.scale, args.seed, args.fps, args.max_frames)
    print(f"{summary['frames']} frames, {summary['steps']} steps, {summary['episodes']} episodes")


if __name__ == "__main__":
    main()
