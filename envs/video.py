"""Writing rendered frames to video files (mp4 through imageio's ffmpeg plugin, or GIF)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def prepare_frames(frames: np.ndarray, min_height: int = 256, block: int = 16) -> np.ndarray:
    """Upscale ``uint8 [T, H, W, 3]`` frames by an integer factor to at least ``min_height`` pixels and
    pad them to multiples of ``block`` (what H.264 encoders and most players expect)."""
    frames = np.asarray(frames, np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got shape {frames.shape}")
    factor = max(1, -(-min_height // frames.shape[1]))
    frames = frames.repeat(factor, axis=1).repeat(factor, axis=2)
    pad_h, pad_w = -frames.shape[1] % block, -frames.shape[2] % block
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))


def write_video(path: str | Path, frames: np.ndarray, fps: int = 10, min_height: int = 256) -> Path:
    """Write ``uint8 [T, H, W, 3]`` frames to ``path`` (``.mp4`` or ``.gif``), creating its folder."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = prepare_frames(frames, min_height)
    if path.suffix == ".gif":
        imageio.mimsave(path, list(frames), duration=1000 / fps, loop=0)
    else:
        with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=1) as writer:
            for frame in frames:
                writer.append_data(frame)
    return path
