"""Attention pieces shared by the attention-based memory modules (Transformer-XL, HCAM, linear attention).

Layouts inside the attention modules are batch-major: ``[B, T, D]`` sequences and ``[B, T, H, Dh]`` heads.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

ROTARY_BASE = 10_000.0


@jax.jit
def rotary(x: jax.Array, positions: jax.Array) -> jax.Array:
    """Rotary position embedding (Su et al. 2021) of ``x`` ``[B, S, H, Dh]`` at integer ``positions``
    ``[S]`` (shared by the batch) or ``[B, S]``.

    Only differences of positions matter to the dot products of rotated queries and keys, so any origin
    (e.g. the start of a cached window, or of the episode) serves. ``Dh`` must be even.
    """
    half = x.shape[-1] // 2
    inv_freq = 1.0 / ROTARY_BASE ** (jnp.arange(half, dtype=jnp.float32) / half)
    angles = positions.astype(jnp.float32)[..., None] * inv_freq  # [..., S, Dh/2]
    sin, cos = jnp.sin(angles)[..., None, :], jnp.cos(angles)[..., None, :]  # [..., S, 1, Dh/2]
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def masked_softmax(logits: jax.Array, mask: jax.Array, axis: int = -1) -> jax.Array:
    """Softmax of ``logits`` over ``axis`` restricted to ``mask`` (broadcastable to ``logits``).

    Masked entries get exactly zero weight (so masked inputs cannot leak into the result, not even in the
    last bits), and a row with no unmasked entry gives all zeros instead of NaN.
    """
    mask = jnp.broadcast_to(mask, logits.shape)
    logits = logits.astype(jnp.float32)
    peak = jnp.max(jnp.where(mask, logits, -jnp.inf), axis=axis, keepdims=True)
    peak = jax.lax.stop_gradient(jnp.where(jnp.isfinite(peak), peak, 0.0))
    weights = jnp.where(mask, jnp.exp(jnp.where(mask, logits - peak, 0.0)), 0.0)
    total = jnp.sum(weights, axis=axis, keepdims=True)
    return weights / jnp.where(total > 0, total, 1.0)


def masked_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """Scaled dot-product attention restricted to ``mask``, over any leading axes.

    Args:
        q: ``[..., Q, H, Dh]``.
        k, v: ``[..., K, H, Dh]``.
        mask: bool, broadcastable to ``[..., H, Q, K]``; a query with no allowed key gets zeros.

    Returns:
        ``[..., Q, H, Dh]`` in the dtype of ``v``; logits and softmax are f32.
    """
    logits = jnp.einsum("...qhd,...khd->...hqk", q, k, preferred_element_type=jnp.float32)
    weights = masked_softmax(logits * q.shape[-1] ** -0.5, mask)
    return jnp.einsum("...hqk,...khd->...qhd", weights.astype(v.dtype), v)


@jax.jit
def episode_segments(resets: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Episode labels that keep attention inside an episode.

    Args:
        resets: ``[B, T]`` bool, True where an episode starts.
        valid: ``[B, M]`` bool, True for cached slots of the episode that is running at the start of the call.

    Returns:
        ``(query_segments [B, T], key_segments [B, M + T])``: a query may attend to a key only where the two
        labels are equal. Steps before the first reset of the call are 0, and each reset starts a new label;
        cached slots are 0 if valid, else -1 (never equal to a query's label).
    """
    query = jnp.cumsum(resets, axis=1, dtype=jnp.int32)
    cached = jnp.where(valid, 0, -1).astype(jnp.int32)
    return query, jnp.concatenate([cached, query], axis=1)


# Query blocks longer than this are attended in chunks of this many queries (see window_attention). For
# B = 16, 4 heads of 64 and a dense window of T = 4096, XLA's memory analysis (CPU) of forward + backward:
# 43.2 GB of temporaries with the block whole, 11.3 GB in chunks of 1024, 5.9 GB in chunks of 512.
QUERY_CHUNK = 512
# Sequences of at least this many queries recompute a short window's attention in the backward pass
# instead of keeping its per-block keys and weights (see window_attention); shorter ones, as PPO trains
# on, keep them.
REMAT_BAND_STEPS = 2048


@functools.partial(jax.jit, static_argnames=("window", "query_chunk"))
def window_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    q_segments: jax.Array,
    k_segments: jax.Array,
    window: int,
    query_chunk: int = QUERY_CHUNK,
) -> jax.Array:
    """Causal attention of each query to itself and the ``window`` steps before it, within its episode.

    Keys are ``[cache; inputs]``: key ``window + t`` is the step of query ``t``. The queries are cut into
    blocks of ``b >= window`` steps that each see the ``window + b`` keys before and at them, so the cost is
    ``O(T * window)``, not ``O(T^2)``; :func:`query_block` picks ``b`` (``b = T``, one dense
    ``[T, window + T]`` attention, when ``T`` is not much longer than the window).
    From :data:`REMAT_BAND_STEPS` queries on, the blocks are recomputed in the backward pass instead of
    kept for it (each block's copy of its keys, twice the keys in all, and its attention weights).

    Args:
        q: ``[B, T, H, Dh]`` queries (positions already encoded).
        k, v: ``[B, window + T, H, Dh]``.
        q_segments: ``[B, T]`` episode labels (see :func:`episode_segments`).
        k_segments: ``[B, window + T]``.
        window: how many past steps a query may see.
        query_chunk: blocks of more queries than this (a window of thousands of steps) are attended this
            many queries at a time, each chunk recomputed in the backward pass, so that the logits of one
            chunk, not of the whole block, exist at once; the same result.

    Returns:
        ``[B, T, H, Dh]``.
    """
    batch, steps, heads, head_dim = q.shape
    block = query_block(steps, window, query_chunk)
    num_blocks = -(-steps // block)
    pad = num_blocks * block - steps
    if pad:
        q = jnp.pad(q, ((0, 0), (0, pad), (0, 0), (0, 0)))
        k = jnp.pad(k, ((0, 0), (0, pad), (0, 0), (0, 0)))
        v = jnp.pad(v, ((0, 0), (0, pad), (0, 0), (0, 0)))
        q_segments = jnp.pad(q_segments, ((0, 0), (0, pad)), constant_values=-2)
        k_segments = jnp.pad(k_segments, ((0, 0), (0, pad)), constant_values=-2)
    q = q.reshape(batch, num_blocks, block, heads, head_dim)
    q_segments = q_segments.reshape(batch, num_blocks, block)

    def blocked_keys(k, v, k_segments):  # [B, window + T, ...] -> [B, n, window + block, ...]
        if num_blocks == 1:
            return k[:, None], v[:, None], k_segments[:, None]
        # Padded in front to n + 1 whole blocks, the keys of block i are the last `window` of block i and
        # all of block i + 1: two slices of the blocks, not a gather, whose backward pass (a scatter-add) is
        # slow on GPUs.
        def pairs(x):
            x = jnp.pad(x, [(0, 0), (block - window, 0)] + [(0, 0)] * (x.ndim - 2))
            x = x.reshape(batch, num_blocks + 1, block, *x.shape[2:])
            return jnp.concatenate([x[:, :-1, block - window :], x[:, 1:]], axis=2)

        return pairs(k), pairs(v), pairs(k_segments)

    if block <= query_chunk:

        def band(q, k, v, q_segments, k_segments):
            k, v, k_segments = blocked_keys(k, v, k_segments)
            return _band_attention(q, k, v, q_segments, k_segments, jnp.arange(block), window)

        # Long sequences recompute the band in the backward pass: its keys copied per block (twice the keys)
        # and its [block, window + block] weights per block would otherwise stay alive until then.
        out = (jax.checkpoint(band) if steps >= REMAT_BAND_STEPS else band)(q, k, v, q_segments, k_segments)
    else:
        k, v, k_segments = blocked_keys(k, v, k_segments)
        # Long blocks (a window of thousands of steps): the queries in chunks, each recomputed in the
        # backward pass, so that only one chunk's [chunk, keys] logits exist at a time.
        chunks = -(-block // query_chunk)
        padded = chunks * query_chunk
        q = jnp.pad(q, ((0, 0), (0, 0), (0, padded - block), (0, 0), (0, 0)))
        q_segments = jnp.pad(q_segments, ((0, 0), (0, 0), (0, padded - block)), constant_values=-3)

        @jax.checkpoint
        def chunk(c):
            rows = c * query_chunk + jnp.arange(query_chunk)
            q_c = jax.lax.dynamic_slice_in_dim(q, c * query_chunk, query_chunk, axis=2)
            s_c = jax.lax.dynamic_slice_in_dim(q_segments, c * query_chunk, query_chunk, axis=2)
            return _band_attention(q_c, k, v, s_c, k_segments, rows, window)

        out = jax.lax.map(chunk, jnp.arange(chunks))  # [chunks, B, n, query_chunk, H, Dh]
        out = jnp.moveaxis(out, 0, 2).reshape(batch, num_blocks, padded, heads, head_dim)[:, :, :block]
    return out.reshape(batch, num_blocks * block, heads, head_dim)[:, :steps]


def query_block(steps: int, window: int, query_chunk: int = QUERY_CHUNK) -> int:
    """The length ``b`` of :func:`window_attention`'s query blocks for ``steps`` queries: of ``window``
    and the whole-block splits ``ceil(steps / n) >= window`` (``n`` = 1: one dense block), the one with the
    fewest query-key pairs, padding included (``ceil(steps / b)`` blocks of ``b`` queries, rounded up to
    whole ``query_chunk`` chunks beyond that, times ``window + b`` keys). The preset's 256 steps with a
    window of 118 make 2 blocks of 128 (62,976 pairs) instead of 3 of 118, one of them mostly padding
    (83,544)."""
    if steps <= window:
        return steps

    def pairs(b: int) -> int:
        rows = b if b <= query_chunk else -(-b // query_chunk) * query_chunk
        return -(-steps // b) * rows * (window + b)

    splits = [-(-steps // n) for n in range(1, steps // window + 1)]  # each >= window
    return min([window, *splits], key=lambda b: (pairs(b), b))


def _band_attention(q, k, v, q_segments, k_segments, rows, window):
    """Attention of the block queries ``q [B, n, R, H, Dh]`` at block rows ``rows [R]`` to their block's keys
    ``[B, n, window + block, H, Dh]``: query row ``i`` is step ``window + i`` of its keys and sees keys
    ``i .. window + i`` of its own episode."""
    i = rows[:, None]
    j = jnp.arange(k.shape[2])[None, :]
    band = (j >= i) & (j <= i + window)
    mask = band & (q_segments[..., :, None] == k_segments[..., None, :])  # [B, n, R, keys]
    return masked_attention(q, k, v, mask[:, :, None])


def ring_attention(
    q: jax.Array, k: jax.Array, v: jax.Array, ring_keys: jax.Array, ring_values: jax.Array, allowed: jax.Array
) -> jax.Array:
    """Attention of one step to itself and to earlier steps whose keys and values sit in slots of any order.

    Args:
        q, k, v: ``[B, 1, H, Dh]``, the step's query, key and value (positions already encoded).
        ring_keys, ring_values: ``[B, M, H, Dh]``, earlier steps' keys (positions encoded) and values.
        allowed: ``[B, M]`` bool, the slots the step may see.

    Returns:
        ``[B, 1, H, Dh]`` in the dtype of ``v``; logits and softmax are f32, as in :func:`masked_attention`.
    """
    # The step's own key is scored apart and joined to the window's in the softmax's sums, not by
    # concatenating the logits: fused into the logits' reduction, the concatenation made it several times
    # slower on an H200 (the whole window is read there).
    scale = q.shape[-1] ** -0.5
    past = jnp.einsum("bqhd,bkhd->bhqk", q, ring_keys, preferred_element_type=jnp.float32) * scale  # [B, H, 1, M]
    own = jnp.einsum("bqhd,bqhd->bhq", q, k, preferred_element_type=jnp.float32)[..., None] * scale  # [B, H, 1, 1]
    mask = allowed[:, None, None, :]
    peak = jax.lax.stop_gradient(jnp.maximum(jnp.max(jnp.where(mask, past, -jnp.inf), axis=-1, keepdims=True), own))
    past_weights = jnp.where(mask, jnp.exp(jnp.where(mask, past - peak, 0.0)), 0.0)
    own_weight = jnp.exp(own - peak)
    total = jnp.sum(past_weights, axis=-1, keepdims=True) + own_weight  # >= 1: the step sees itself
    mixed = jnp.einsum("bhqk,bkhd->bqhd", (past_weights / total).astype(v.dtype), ring_values)
    return mixed + (own_weight / total).astype(v.dtype).transpose(0, 2, 1, 3) * v


def head_projector(features: int, num_heads: int, dtype: Any, name: str) -> nn.DenseGeneral:
    """The projection of ``[..., features]`` to ``num_heads`` heads ``[..., H, features / H]``, as a module
    (inside compact modules, where one projection is applied to several inputs)."""
    return nn.DenseGeneral(features=(num_heads, features // num_heads), dtype=dtype, name=name)


def head_projection(x: jax.Array, num_heads: int, dtype: Any, name: str) -> jax.Array:
    """Project ``x`` ``[..., D]`` to ``num_heads`` heads: ``[..., H, D / H]`` (used inside compact modules)."""
    return head_projector(x.shape[-1], num_heads, dtype, name)(x)


def merge_heads(x: jax.Array, features: int, dtype: Any, name: str) -> jax.Array:
    """Project ``[..., H, Dh]`` back to ``[..., features]`` (used inside compact modules)."""
    return nn.DenseGeneral(features=features, axis=(-2, -1), dtype=dtype, name=name)(x)


class WindowSelfAttention(nn.Module):
    """Multi-head rotary self-attention of each step to itself and the ``window`` steps before it.

    Called with the normalised inputs ``x`` ``[B, T, D]`` in one of two ways:

    * over a window (any ``T``): ``cache`` ``[B, window, D]`` holds the normalised inputs of the ``window``
      steps before ``x``, oldest first; their keys and values are projected here and
      :func:`window_attention` keeps queries inside their episode (``q_segments``, ``k_segments`` from
      :func:`episode_segments`). ``positions`` are the rotary positions of ``[cache; x]``, ``[B, window + T]``
      (default ``0 .. window + T - 1``). Returns the output ``[B, T, D]`` and the keys (positions applied)
      and values ``[B, window, H, Dh]`` of the last ``window`` steps of ``[cache; x]``; over ``T = 0`` steps
      it only projects the cache.
    * one step against a ring (``T = 1``): ``ring = (keys, values, allowed)``, earlier steps' keys (positions
      applied) and values ``[B, window, H, Dh]`` in slots of any order, and the slots the step may see
      ``[B, window]``; ``positions`` ``[B, 1]``. Returns the output and the step's own key and value
      ``[B, 1, H, Dh]``, for the caller to write into its ring (see :func:`ring_attention`).
    """

    num_heads: int
    window: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, cache=None, q_segments=None, k_segments=None, positions=None, ring=None):
        if (cache is None) == (ring is None):
            raise ValueError("WindowSelfAttention: give either cache (a window) or ring (one step), not both")
        features = x.shape[-1]
        query, key, value = (head_projector(features, self.num_heads, self.dtype, n) for n in ("query", "key", "value"))
        if ring is not None:
            q, k, v = rotary(query(x), positions), rotary(key(x), positions), value(x)
            out = ring_attention(q, k, v, *ring)
            return merge_heads(out, features, self.dtype, "out"), k, v
        stream = jnp.concatenate([cache, x], axis=1)
        if positions is None:
            positions = jnp.arange(stream.shape[1])
        keys, values = rotary(key(stream), positions), value(stream)
        if x.shape[1] == 0:  # a call over no steps only projects the cache (see TransformerXL)
            return x, keys, values
        q = rotary(query(x), positions[..., self.window :])
        out = window_attention(q, keys, values, q_segments, k_segments, self.window)
        return merge_heads(out, features, self.dtype, "out"), keys[:, -self.window :], values[:, -self.window :]


class Residual(nn.Module):
    """``x + y``, or with ``gated`` the GRU-type gate of GTrXL (Parisotto et al. 2020).

    The gate is ``(1 - z) * x + z * h`` with ``z = sigmoid(W_z y + U_z x - b)``; ``b`` starts at
    ``gate_bias`` (2), so ``z`` is about 0.12 and a new block starts close to the identity map.
    """

    gated: bool = False
    gate_bias: float = 2.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        if not self.gated:
            return x + y
        features = x.shape[-1]
        dense = lambda n, name: nn.Dense(n, use_bias=False, dtype=self.dtype, name=name)  # noqa: E731
        y = nn.relu(y)
        y_r, y_z, y_h = jnp.split(dense(3 * features, "from_update")(y).astype(jnp.float32), 3, axis=-1)
        x_r, x_z = jnp.split(dense(2 * features, "from_stream")(x).astype(jnp.float32), 2, axis=-1)
        bias = self.param("gate_bias", nn.initializers.constant(self.gate_bias), (features,))
        r = jax.nn.sigmoid(y_r + x_r)
        z = jax.nn.sigmoid(y_z + x_z - bias)
        h = jnp.tanh(y_h + dense(features, "from_reset")(r * x).astype(jnp.float32))
        return (1.0 - z) * x + z * h


class FeedForward(nn.Module):
    """Position-wise MLP ``D -> ratio * D -> D`` with GELU."""

    ratio: int = 4
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = x.shape[-1]
        h = nn.Dense(self.ratio * features, dtype=self.dtype, name="hidden")(x)
        # GELU recomputed in the backward pass: of the [..., ratio * D] activations only the GELU's input
        # is kept for it (not also its output and its tanh); the parameters are those of a plain Dense.
        return RecomputedGeluDense(features, dtype=self.dtype, name="out")(h)


class GeluDense(nn.Dense):
    """``Dense(gelu(x))``."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return super().__call__(nn.gelu(x))


RecomputedGeluDense = nn.remat(GeluDense)


def check_heads(module: nn.Module, rotary_heads: bool = True) -> None:
    """Raise a clear ValueError when ``module.features`` cannot be split into ``module.num_heads`` heads
    (of even size where ``rotary_heads``: rotary positions rotate pairs of dimensions)."""
    name, features, heads = type(module).__name__, module.features, module.num_heads
    if heads < 1:
        raise ValueError(f"{name}: num_heads must be >= 1, got {heads}")
    if features % heads:
        raise ValueError(f"{name}: features ({features}) must be divisible by num_heads ({heads})")
    if rotary_heads and (features // heads) % 2:
        raise ValueError(f"{name}: the head size features / num_heads = {features // heads} must be even")
