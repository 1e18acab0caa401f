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
    """The cached window of a Transformer-XL: the last ``M`` inputs of every layer, and their keys and values.

    Attributes:
        memory: ``[B, L, M, D]`` f32, the inputs of each of the ``L`` layers at the last ``M`` steps,
            oldest first.
        valid: ``[B, M]`` bool, True for the slots that belong to the episode running now.
        keys, values: ``[B, L, M, H, D / H]`` in the module's dtype, the attention's keys (before rotary
            positions) and values of ``memory``, as the parameters of the call that wrote them made them
            (see :class:`TransformerXL`); ``None`` where a module keeps only the inputs (HCAM's local window).
    """

    memory: jax.Array
    valid: jax.Array
    keys: jax.Array | None = None
    values: jax.Array | None = None


def initial_window(
    batch_size: int, num_layers: int, length: int, features: int, num_heads: int | None = None, dtype=jnp.float32
) -> WindowCarry:
    """An empty window; with ``num_heads`` it also holds (zero) keys and values."""
    heads = None
    if num_heads is not None:
        heads = jnp.zeros((batch_size, num_layers, length, num_heads, features // num_heads), dtype)
    return WindowCarry(
        memory=jnp.zeros((batch_size, num_layers, length, features), jnp.float32),
        valid=jnp.zeros((batch_size, length), bool),
        keys=heads,
        values=heads,
    )


def next_window_valid(q_segments: jax.Array, k_segments: jax.Array, length: int) -> jax.Array:
    """Which of the last ``length`` keys belong to the episode that runs at the end of the call."""
    return k_segments[:, -length:] == q_segments[:, -1:]


class WindowSublayer(nn.Module):
    """Pre-layernorm self-attention over ``[cache; inputs]`` with a residual connection (or GTrXL gate).

    ``cache`` holds the layer's inputs at its last ``window`` steps ``[B, window, D]``; their keys and values
    are projected here, unless ``cached_keys`` and ``cached_values`` (``[B, window, H, D / H]``, from an
    earlier call) are given. Returns the updated residual stream ``[B, T, D]`` and the new window's
    ``(inputs, keys, values)``.
    """

    num_heads: int
    window: int
    gated: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, cache, q_segments, k_segments, cached_keys=None, cached_values=None):
        norm = nn.LayerNorm(dtype=self.dtype, name="norm")
        attention = WindowSelfAttention(self.num_heads, self.window, self.dtype, name="attention")
        if cached_keys is None:
            y, keys, values = attention(norm(x), q_segments, k_segments, cache=norm(cache))
        else:
            y, keys, values = attention(norm(x), q_segments, k_segments, cache_keys=cached_keys, cache_values=cached_values)
        stream = jnp.concatenate([cache, x], axis=1)
        if x.shape[1]:
            x = Residual(self.gated, dtype=self.dtype, name="residual")(x, y)
        return x, (stream[:, -self.window :], keys, values)


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
    def __call__(self, x, cache, q_segments, k_segments, cached_keys=None, cached_values=None):
        x, cache = WindowSublayer(self.num_heads, self.memory_length, self.gated, self.dtype, name="attention")(
            x, cache, q_segments, k_segments, cached_keys, cached_values
        )
        return FeedForwardSublayer(self.gated, self.dtype, name="feed_forward")(x), cache


class TransformerXL(MemoryModule):
    """Transformer-XL memory (Dai et al. 2019) with rotary positions; ``gated=True`` gives GTrXL.

    Inputs are projected to ``features``; then ``num_layers`` pre-layernorm blocks. Each layer keeps the
    last ``memory_length`` (``M``) of its inputs, so a query at step ``t`` attends to itself and the
    ``M`` steps before it (from the cache or the current call), never across an episode reset. Positions
    are rotary, taken inside the ``[cache; inputs]`` window, so only relative time matters.

    Cost: acting (``T = 1``) attends over one window of ``M + 1`` keys per layer and projects one step: the
    carry holds the keys and values of the cached window, so a call over one step reads them. A call over
    ``T > 1`` steps (training) projects the cached inputs again with the parameters it is given, whose
    gradient then reaches them, as Transformer-XL's cache of inputs has it; it costs ``O(T * M)`` attention
    (``O(T * (M + T))`` when ``T <= M``) and ``O(T + M)`` projections. The cached keys and values are
    those of the parameters of the call that wrote them: after the parameters change, a call over zero
    steps (``inputs [0, B, D_in]``) projects them again and returns that carry (on-policy trainers make
    one before each rollout), so that acting uses the parameters being trained.

    Shapes:
        inputs ``[T, B, D_in]``, resets ``[T, B]`` -> outputs ``[T, B, features]``.
        carry: :class:`WindowCarry` with ``memory [B, num_layers, M, features]`` (f32), ``valid [B, M]``,
        and ``keys``, ``values`` ``[B, num_layers, M, num_heads, features / num_heads]`` (``dtype``).

    Attributes:
        features: model width ``D`` (and output width).
        num_layers: number of blocks.
        num_heads: attention heads; ``features / num_heads`` must be an even integer.
        memory_length: ``M``, the cached window per layer.
        gated: GTrXL gating (GRU-type gates with bias 2 instead of residual sums).
        dtype: dtype of the matrix products; the residual stream and the carry stay f32.
    """

    projects_carry = True

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
        return initial_window(
            batch_size, self.num_layers, self.memory_length, self.features, self.num_heads, self.dtype
        )

    @nn.compact
    def __call__(self, carry: WindowCarry, inputs: jax.Array, resets: jax.Array):
        check_sequence_inputs(inputs, resets)
        steps = inputs.shape[0]
        x = nn.Dense(self.features, dtype=self.dtype, name="input")(inputs.swapaxes(0, 1)).astype(jnp.float32)
        q_segments, k_segments = episode_segments(resets.T, carry.valid)
        caches = []
        for layer in range(self.num_layers):
            block = TransformerXLBlock(
                self.num_heads, self.memory_length, self.gated, self.dtype, name=f"block_{layer}"
            )
            cached = (carry.keys[:, layer], carry.values[:, layer]) if steps == 1 else (None, None)
            x, cache = block(x, carry.memory[:, layer], q_segments, k_segments, *cached)
            caches.append(cache)
        y = nn.LayerNorm(dtype=self.dtype, name="out_norm")(x)
        memory, keys, values = (jnp.stack(parts, axis=1) for parts in zip(*caches))
        valid = next_window_valid(q_segments, k_segments, self.memory_length) if steps else carry.valid
        carry = WindowCarry(memory=memory, valid=valid, keys=keys, values=values)
        return carry, y.swapaxes(0, 1).astype(self.dtype)
