"""Transformer-XL with a cached window per layer, and its gated form GTrXL (Parisotto et al. 2020)."""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.memory_modules.attention import (
    FeedForward,
    Residual,
    WindowSelfAttention,
    check_heads,
    episode_segments,
)
from mnemax.memory_modules.base import MemoryModule, check_positive, check_sequence_inputs


class WindowCarry(NamedTuple):
    """The cached window of a Transformer-XL: the last ``M`` inputs of every layer.

    Attributes:
        memory: ``[B, L, M, D]`` f32, the inputs of each of the ``L`` layers at the last ``M`` steps,
            oldest first.
        valid: ``[B, M]`` bool, True for the slots that belong to the episode running now.
    """

    memory: jax.Array
    valid: jax.Array


def initial_window(batch_size: int, num_layers: int, length: int, features: int) -> WindowCarry:
    return WindowCarry(
        memory=jnp.zeros((batch_size, num_layers, length, features), jnp.float32),
        valid=jnp.zeros((batch_size, length), bool),
    )


def next_window_valid(q_segments: jax.Array, k_segments: jax.Array, length: int) -> jax.Array:
    """Which of the last ``length`` keys belong to the episode that runs at the end of the call."""
    return k_segments[:, -length:] == q_segments[:, -1:]


class WindowSublayer(nn.Module):
    """Pre-layernorm self-attention over ``[cache; inputs]`` with a residual connection (or GTrXL gate).

    Returns the updated residual stream ``[B, T, D]`` and the new cache ``[B, window, D]`` (the last
    ``window`` inputs of this sublayer).
    """

    num_heads: int
    window: int
    gated: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, cache, q_segments, k_segments):
        stream = jnp.concatenate([cache, x], axis=1)
        normed = nn.LayerNorm(dtype=self.dtype, name="norm")(stream)
        y = WindowSelfAttention(self.num_heads, self.window, self.dtype, name="attention")(
            normed, q_segments, k_segments
        )
        x = Residual(self.gated, dtype=self.dtype, name="residual")(x, y)
        return x, stream[:, -self.window :]


class FeedForwardSublayer(nn.Module):
    """Pre-layernorm MLP with a residual connection (or GTrXL gate)."""

    gated: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        y = FeedForward(dtype=self.dtype, name="mlp")(nn.LayerNorm(dtype=self.dtype, name="norm")(x))
        return Residual(self.gated, dtype=self.dtype, name="residual")(x, y)


class TransformerXLBlock(nn.Module):
    """One layer: windowed self-attention, then an MLP, both pre-layernorm with residual/gate."""

    num_heads: int
    memory_length: int
    gated: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, cache, q_segments, k_segments):
        x, cache = WindowSublayer(self.num_heads, self.memory_length, self.gated, self.dtype, name="attention")(
            x, cache, q_segments, k_segments
        )
        return FeedForwardSublayer(self.gated, self.dtype, name="feed_forward")(x), cache


class TransformerXL(MemoryModule):
    """Transformer-XL memory (Dai et al. 2019) with rotary positions; ``gated=True`` gives GTrXL.

    Inputs are projected to ``features``; then ``num_layers`` pre-layernorm blocks. Each layer keeps the
    last ``memory_length`` (``M``) of its inputs, so a query at step ``t`` attends to itself and the
    ``M`` steps before it (from the cache or the current call), never across an episode reset. Positions
    are rotary, taken inside the ``[cache; inputs]`` window, so only relative time matters.

    Cost: acting (``T = 1``) attends over one window of ``M + 1`` keys per layer; a call over ``T`` steps
    costs ``O(T * M)`` attention (``O(T * (M + T))`` when ``T <= M``) and ``O(T + M)`` projections.

    Shapes:
        inputs ``[T, B, D_in]``, resets ``[T, B]`` -> outputs ``[T, B, features]``.
        carry: :class:`WindowCarry` with ``memory [B, num_layers, M, features]`` (f32) and ``valid [B, M]``.

    Attributes:
        features: model width ``D`` (and output width).
        num_layers: number of blocks.
        num_heads: attention heads; ``features / num_heads`` must be an even integer.
        memory_length: ``M``, the cached window per layer.
        gated: GTrXL gating (GRU-type gates with bias 2 instead of residual sums).
        dtype: dtype of the matrix products; the residual stream and the carry stay f32.
    """

    features: int
    num_layers: int = 2
    num_heads: int = 4
    memory_length: int = 64
    gated: bool = False
    dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        check_heads(self)
        check_positive(self, "num_layers", "memory_length")

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> WindowCarry:
        return initial_window(batch_size, self.num_layers, self.memory_length, self.features)

    @nn.compact
    def __call__(self, carry: WindowCarry, inputs: jax.Array, resets: jax.Array):
        check_sequence_inputs(inputs, resets)
        x = nn.Dense(self.features, dtype=self.dtype, name="input")(inputs.swapaxes(0, 1)).astype(jnp.float32)
        q_segments, k_segments = episode_segments(resets.T, carry.valid)
        caches = []
        for layer in range(self.num_layers):
            block = TransformerXLBlock(
                self.num_heads, self.memory_length, self.gated, self.dtype, name=f"block_{layer}"
            )
            x, cache = block(x, carry.memory[:, layer], q_segments, k_segments)
            caches.append(cache)
        y = nn.LayerNorm(dtype=self.dtype, name="out_norm")(x)
        carry = WindowCarry(
            memory=jnp.stack(caches, axis=1),
            valid=next_window_valid(q_segments, k_segments, self.memory_length),
        )
        return carry, y.swapaxes(0, 1).astype(self.dtype)
