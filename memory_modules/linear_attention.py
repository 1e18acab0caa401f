"""Gated linear attention: a decaying matrix memory, trained in parallel, run recurrently when acting."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.memory_modules.attention import check_heads, head_projection, merge_heads
from mnemax.memory_modules.base import MemoryModule, check_positive, check_sequence_inputs
from mnemax.memory_modules.scan import linear_recurrence, timescale_bias_init
from mnemax.memory_modules.transformer_xl import FeedForwardSublayer


@functools.partial(jax.jit, static_argnames="chunk_size")
def chunked_linear_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    log_decay: jax.Array,
    resets: jax.Array,
    state: jax.Array,
    chunk_size: int,
) -> tuple[jax.Array, jax.Array]:
    """Outputs of the recurrence ``S_t = g_t S_{t-1} + k_t v_t^T``, ``o_t = S_t^T q_t``, chunk by chunk.

    A reset at ``t`` drops ``S_{t-1}``. The sequence is cut into chunks of ``C = min(chunk_size, T)``
    steps: inside a chunk the outputs are a masked, decay-weighted attention (``O(C)`` per step), and the
    states at chunk ends come from :func:`~mnemax.memory_modules.scan.linear_recurrence` over chunks.
    So the ``[dk, dv]`` state is materialised once per chunk, not once per step. All decay factors are
    ``exp`` of non-positive numbers, so nothing overflows however long the sequence.

    Args:
        q, k: ``[T, B, H, dk]``.
        v: ``[T, B, H, dv]``.
        log_decay: ``[T, B, H]``, ``log g_t <= 0``.
        resets: ``[T, B]`` bool.
        state: ``[B, H, dk, dv]``, the state before step 0.
        chunk_size: steps per chunk.

    Returns:
        ``(outputs [T, B, H, dv], final state [B, H, dk, dv])``, in f32.
    """
    steps = q.shape[0]
    size = min(chunk_size, steps)
    num_chunks = -(-steps // size)
    pad = num_chunks * size - steps

    def chunked(a):  # [T, ...] -> [n, C, ...]; padding steps neither decay nor write
        a = jnp.pad(a, ((0, pad),) + ((0, 0),) * (a.ndim - 1))
        return a.reshape((num_chunks, size) + a.shape[1:])

    f32 = lambda a: a.astype(jnp.float32)  # noqa: E731
    q, k, v = chunked(f32(q)), chunked(f32(k)), chunked(f32(v))
    log_decay = chunked(jnp.where(resets[..., None], 0.0, f32(log_decay)))  # [n, C, B, H]
    resets = chunked(resets)  # [n, C, B]
    segment = jnp.cumsum(resets, axis=1)  # episodes inside each chunk
    cum = jnp.cumsum(log_decay, axis=1)  # log of the decay from the chunk start through step i

    # Inside a chunk: o_i += sum_{j <= i, same episode} exp(cum_i - cum_j) (q_i . k_j) v_j.
    causal = jnp.tril(jnp.ones((size, size), bool))
    mask = (causal[None, :, :, None] & (segment[:, :, None] == segment[:, None, :]))[..., None]  # [n,C,C,B,1]
    gap = cum[:, :, None] - cum[:, None, :]  # [n, C, C, B, H]
    weights = jnp.where(mask, jnp.exp(jnp.where(mask, gap, 0.0)), 0.0)
    scores = jnp.einsum("nibhd,njbhd->nijbh", q, k) * weights
    inside = jnp.einsum("nijbh,njbhe->nibhe", scores, v)

    # What each chunk adds to the state at its end, and how much of the earlier state survives it.
    last = cum[:, -1]  # [n, B, H]
    tail = (segment == segment[:, -1:])[..., None]  # steps of the chunk's last episode
    write = jnp.where(tail, jnp.exp(last[:, None] - cum), 0.0)  # [n, C, B, H]
    updates = jnp.einsum("njbh,njbhd,njbhe->nbhde", write, k, v)
    ends = linear_recurrence(jnp.exp(last)[..., None, None], updates, state, jnp.any(resets, axis=1))
    starts = jnp.concatenate([state[None], ends[:-1]], axis=0)  # [n, B, H, dk, dv]

    # From the state at the chunk start, for the steps before any reset in the chunk.
    carried = jnp.where((segment == 0)[..., None], jnp.exp(cum), 0.0)  # [n, C, B, H]
    before = jnp.einsum("nibhd,nbhde->nibhe", q, starts) * carried[..., None]
    out = (inside + before).reshape((num_chunks * size,) + inside.shape[2:])[:steps]
    return out, ends[-1]


class GatedLinearAttentionLayer(nn.Module):
    """Multi-head gated linear attention over ``[T, B, D]`` (time-major), with its state ``[B, H, dk, dv]``.

    Keys are L2-normalised and queries scaled by ``dk^-1/2``; each head has a data-dependent scalar decay
    ``g_t = sigmoid(w . x_t + b)`` whose initial time scales are log-spaced over heads from 4 to 1024 steps.
    Head outputs are RMS-normalised and gated by ``silu(W x_t)`` before the output projection.
    """

    num_heads: int
    chunk_size: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, state, resets):
        features = x.shape[-1]
        q = head_projection(x, self.num_heads, self.dtype, "query").astype(jnp.float32)
        k = head_projection(x, self.num_heads, self.dtype, "key").astype(jnp.float32)
        v = head_projection(x, self.num_heads, self.dtype, "value")
        q = q * q.shape[-1] ** -0.5
        k = k * jax.lax.rsqrt(jnp.sum(k * k, axis=-1, keepdims=True) + 1e-6)
        gate_logits = nn.Dense(
            self.num_heads, dtype=self.dtype, bias_init=timescale_bias_init(4.0, 1024.0), name="decay"
        )(x)
        log_decay = jax.nn.log_sigmoid(gate_logits.astype(jnp.float32))
        out, state = chunked_linear_attention(q, k, v, log_decay, resets, state, self.chunk_size)
        out = nn.RMSNorm(name="head_norm")(out)
        out = merge_heads(out.astype(self.dtype), features, self.dtype, "out")
        gate = nn.silu(nn.Dense(features, dtype=self.dtype, name="output_gate")(x))
        return out * gate, state


class LinearAttention(MemoryModule):
    """Gated linear attention memory (a matrix-valued linear RNN per head, e.g. GLA/RetNet with gates).

    Inputs are projected to ``features``, then ``num_layers`` pre-layernorm blocks of gated linear
    attention and an MLP, with residual connections. Training runs the recurrence in parallel over ``T``
    (chunkwise attention inside chunks, an associative scan across chunks); acting with ``T = 1`` is the
    recurrent update, ``O(features^2 / num_heads)`` per step and layer whatever the history length.

    Shapes:
        inputs ``[T, B, D_in]``, resets ``[T, B]`` -> outputs ``[T, B, features]``.
        carry ``[B, num_layers, H, dk, dk]`` f32 with ``dk = features / num_heads``.

    Attributes:
        features: model width (and output width).
        num_layers: number of blocks.
        num_heads: heads ``H``; ``features`` must be divisible by it.
        chunk_size: steps per chunk of the parallel form (memory ``O(T * chunk_size)`` inside chunks).
        dtype: dtype of the projections; the recurrence and the carry run in f32.
    """

    features: int
    num_layers: int = 1
    num_heads: int = 4
    chunk_size: int = 64
    dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        check_heads(self, rotary_heads=False)
        check_positive(self, "num_layers", "chunk_size")

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> jax.Array:
        dk = self.features // self.num_heads
        return jnp.zeros((batch_size, self.num_layers, self.num_heads, dk, dk), jnp.float32)

    @nn.compact
    def __call__(self, carry: jax.Array, inputs: jax.Array, resets: jax.Array):
        check_sequence_inputs(inputs, resets)
        x = nn.Dense(self.features, dtype=self.dtype, name="input")(inputs).astype(jnp.float32)
        states = []
        for layer in range(self.num_layers):
            normed = nn.LayerNorm(dtype=self.dtype, name=f"norm_{layer}")(x)
            attention = GatedLinearAttentionLayer(
                self.num_heads, self.chunk_size, self.dtype, name=f"attention_{layer}"
            )
            y, state = attention(normed, carry[:, layer], resets)
            x = x + y
            x = FeedForwardSublayer(dtype=self.dtype, name=f"feed_forward_{layer}")(x)
            states.append(state)
        y = nn.LayerNorm(dtype=self.dtype, name="out_norm")(x)
        return jnp.stack(states, axis=1), y.astype(self.dtype)
