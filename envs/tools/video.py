"""Writing rendered frames to video files (H.264 mp4 through the ffmpeg of imageio-ffmpeg, or GIF)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from mnemax.envs.tools.command_line import UserError

VIDEO_FORMATS = ("mp4", "gif")


def check_video_format(video_format: str) -> str:
    """``video_format`` if :func:`write_video` writes it (:data:`VIDEO_FORMATS`), else a UserError."""
    if video_format not in VIDEO_FORMATS:
        raise UserError(f"--video-format must be one of {', '.join(VIDEO_FORMATS)}, got {video_format!r}")
    return video_format


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


def write_video(path: str | Path, frames: np.ndarray, fps: float = 10, min_height: int = 256) -> Path:
    """Write ``uint8 [T, H, W, 3]`` frames to ``path`` (``.mp4`` or ``.gif``), creating its folder.

    Frames are first upscaled to at least ``min_height`` pixels and padded to 16-pixel blocks
    (:func:`prepare_frames`; ``min_height=0`` keeps their size when it is a multiple of 16 already).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = prepare_frames(frames, min_height)
    if path.suffix == ".gif":
        import imageio.v2 as imageio

        imageio.mimsave(path, list(frames), duration=1000 / fps, loop=0)
    else:
        _encode_h264(path, frames, fps)
    return path


def _encode_h264(path: Path, frames: np.ndarray, fps: float) -> None:
    """Pipe raw frames into the ffmpeg that imageio-ffmpeg ships.

    imageio's writer starts ffmpeg with a Python ``preexec_fn``, which makes ``subprocess`` fork the
    (multithreaded) interpreter and run Python in the child: JAX then warns that a fork may deadlock.
    Without a ``preexec_fn`` the child runs no Python; ``start_new_session`` keeps a Ctrl-C in the terminal
    from reaching ffmpeg mid-write, which is what imageio's ``preexec_fn`` was for.
    """
    import imageio_ffmpeg

    height, width = frames.shape[1:3]
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", "-",
        "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "15", str(path),
    ]  # fmt: skip
    result = subprocess.run(
        command, input=np.ascontiguousarray(frames).tobytes(), capture_output=True, start_new_session=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not write {path}: {result.stderr.decode(errors='replace').strip()}")
