"""Rasterization in pure JAX: shapes become boolean masks over the pixel grid, masks are painted.

Every function is jit- and vmap-able, and positions may be traced values, so thousands of frames render
on the accelerator without a host round trip. Images are composed in float32 ``[H, W, 3]`` with values
in ``[0, 1]`` and turned into ``uint8`` once, by :func:`to_uint8`.

Coordinates are in pixels, ``(y, x)`` order, with pixel ``(i, j)`` covering ``[i, i+1) x [j, j+1)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def canvas(height: int, width: int, color) -> jax.Array:
    """A ``[height, width, 3]`` float image filled with ``color`` (RGB in ``[0, 1]``)."""
    return jnp.broadcast_to(jnp.asarray(color, jnp.float32), (height, width, 3))


def pixel_centers(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ys, xs)``: the centre coordinates of every pixel, each ``[height, width]`` (constants)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    return ys, xs


def pixel_axes(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ys, xs)``: pixel centres as a column ``[height, 1]`` and a row ``[1, width]``. Shapes built from
    them by broadcasting compute per row and per column what :func:`pixel_centers` would have them compute
    per pixel, with the same values."""
    ys, xs = pixel_centers(height, width)
    return ys[:, :1], xs[:1, :]


def paint(image: jax.Array, mask: jax.Array, color, alpha=1.0) -> jax.Array:
    """Blend ``color`` into ``image`` where ``mask`` ([H, W] bool or float coverage) holds."""
    weight = (jnp.asarray(mask, jnp.float32) * alpha)[..., None]
    return image * (1.0 - weight) + jnp.asarray(color, jnp.float32) * weight


def fill(image: jax.Array, mask: jax.Array, color) -> jax.Array:
    """``image`` set to ``color`` where ``mask`` ([H, W] bool) holds: an opaque paint without
    blending, which keeps the image's dtype (``uint8`` frames need no float round trip)."""
    return jnp.where(mask[..., None], jnp.asarray(color, image.dtype), image)


def rect_mask(height: int, width: int, top, left, bottom, right) -> jax.Array:
    """Pixels whose centres lie in ``[top, bottom) x [left, right)``."""
    ys, xs = pixel_centers(height, width)
    return (ys >= top) & (ys < bottom) & (xs >= left) & (xs < right)


def circle_mask(height: int, width: int, cy, cx, radius) -> jax.Array:
    """Pixels whose centres lie within ``radius`` of ``(cy, cx)`` (squared distances per row and per
    column, :func:`pixel_axes`)."""
    ys, xs = pixel_axes(height, width)
    return (ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2


def polygon_mask(height: int, width: int, vertices) -> jax.Array:
    """Pixels inside the convex polygon with ``vertices`` ([N, 2] as (y, x), either winding)."""
    ys, xs = pixel_centers(height, width)
    v = jnp.asarray(vertices, jnp.float32)
    nxt = jnp.roll(v, -1, axis=0)
    # Sign of the cross product of each edge with the vector to the pixel: inside = same sign for all.
    cross = (nxt[:, 1] - v[:, 1])[:, None, None] * (ys - v[:, 0, None, None]) - (nxt[:, 0] - v[:, 0])[
        :, None, None
    ] * (xs - v[:, 1, None, None])
    return jnp.all(cross >= 0, axis=0) | jnp.all(cross <= 0, axis=0)


def ring_mask(height: int, width: int, cy, cx, radius, thickness) -> jax.Array:
    """Pixels whose centres lie within ``radius`` of ``(cy, cx)`` but not within ``radius - thickness``."""
    ys, xs = pixel_centers(height, width)
    d2 = (ys - cy) ** 2 + (xs - cx) ** 2
    return (d2 <= radius**2) & (d2 > (radius - thickness) ** 2)


def segment_mask(height: int, width: int, p0, p1, thickness) -> jax.Array:
    """Pixels whose centres lie within ``thickness / 2`` of the segment ``p0 -> p1`` (each ``(y, x)``).

    A thick line with round caps; a zero-length segment is a disc. The projection's row and column terms
    are computed per row and per column (:func:`pixel_axes`).
    """
    ys, xs = pixel_axes(height, width)
    p0 = jnp.asarray(p0, jnp.float32)
    d = jnp.asarray(p1, jnp.float32) - p0
    length2 = jnp.maximum(d[0] ** 2 + d[1] ** 2, 1e-12)
    # Project every pixel onto the segment, clamp to its ends, measure the distance to that point.
    u = jnp.clip(((ys - p0[0]) * d[0] + (xs - p0[1]) * d[1]) / length2, 0.0, 1.0)
    dy, dx = ys - (p0[0] + u * d[0]), xs - (p0[1] + u * d[1])
    return dy**2 + dx**2 <= (0.5 * thickness) ** 2


def checkerboard_mask(height: int, width: int, tile: int) -> np.ndarray:
    """``[height, width]`` bool constant: True on the tiles whose row + column index is even."""
    ys, xs = np.mgrid[0:height, 0:width]
    return ((ys // tile + xs // tile) % 2) == 0


def upscale(image: jax.Array, factor: int) -> jax.Array:
    """Nearest-neighbour upscaling of ``[H, W, C]`` by an integer ``factor``."""
    return jnp.repeat(jnp.repeat(image, factor, axis=0), factor, axis=1)


def to_uint8(image: jax.Array) -> jax.Array:
    """Turn a float image in ``[0, 1]`` into ``uint8``."""
    return jnp.round(jnp.clip(image, 0.0, 1.0) * 255.0).astype(jnp.uint8)
