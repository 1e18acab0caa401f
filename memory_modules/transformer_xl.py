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


def next_window_valid(q_segments: jax.Array, k_segments: jax.Array, length: int) -> jax.Array:
    """Which of the last ``length`` keys belong to the episode that runs at the end of the call."""
    return k_segments[:, -length:] == q_segments[:, -1:]


class WindowSublayer(nn.Module):
    """Pre-layernorm self-attention with a residual connection (or GTrXL gate): see :class:`WindowSelfAttention`.

    Over a window, ``cache`` holds the layer's inputs at its last ``window`` steps ``[B, window, D]``, and
    the call returns the updated residual stream ``[B, T, D]`` and the new window's ``(inputs, keys,
    values)``. Against a ring (one step), ``ring`` holds the earlier steps' keys, values and the slots
    allowed, and the call returns the stream and the step's own ``(input, key, value)``.
    """

    num_heads: int
    window: int
    gated: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, cache=None, q_segments=None, k_segments=None, positions=None, ring=None):
        norm = nn.LayerNorm(dtype=self.dtype, name="norm")
        attention = WindowSelfAttention(self.num_heads, self.window, self.dtype, name="attention")
        if ring is not None:
            y, keys, values = attention(norm(x), positions=positions, ring=ring)
            inputs = x
        else:
            y, keys, values = attention(norm(x), norm(cache), q_segments, k_segments, positions)
            inputs = jnp.concatenate([cache, x], axis=1)[:, -self.window :]
        if x.shape[1]:
            x = Residual(self.gated, dtype=self.dtype, name="residual")(x, y)
        return x, (inputs, keys, values)


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
    def __call__(self, x, cache=None, q_segments=None, k_segments=None, positions=None, ring=None):
        x, entries = WindowSublayer(self.num_heads, self.memory_length, self.gated, self.dtype, name="attention")(
            x, cache, q_segments, k_segments, positions, ring
        )
        return FeedForwardSublayer(self.gated, self.dtype, name="feed_forward")(x), entries


class TransformerXLCarry(NamedTuple):
    """The cached window of a Transformer-XL, kept as a ring: one step writes one slot.

    The ``M`` slots hold the last ``M`` steps; slot ``cursor`` holds the oldest, and slots ``cursor + 1,
    cursor + 2, ...`` (modulo ``M``) newer ones. A call over several steps returns the slots oldest first
    (``cursor`` 0).

    Attributes:
        memory: ``[B, L, M, D]`` f32, the inputs of each of the ``L`` layers at those steps.
        valid: ``[B, M]`` bool, True for the slots that belong to the episode running now.
        keys, values: ``[B, L, M, H, D / H]`` in the module's dtype, the attention's keys (rotary positions
            applied) and values of ``memory``, as the parameters of the call that wrote them made them
            (see :class:`TransformerXL`).
        cursor: ``[B]`` int32, the slot the next step overwrites.
        position: ``[B]`` int32, the next step's position in its episode (the steps of the episode before it),
            the rotary position of its query and key.
    """

    memory: jax.Array
    valid: jax.Array
    keys: jax.Array
    values: jax.Array
    cursor: jax.Array
    position: jax.Array


def slot_positions(cursor: jax.Array, position: jax.Array, length: int) -> jax.Array:
    """The episode positions ``[B, length]`` of the ring's slots: the slot before ``cursor`` holds the step
    before ``position``, and so on backwards (slots of an earlier episode get positions that are masked)."""
    age = (cursor[:, None] - 1 - jnp.arange(length)) % length + 1
    return position[:, None] - age


def episode_positions(resets: jax.Array, start: jax.Array) -> jax.Array:
    """The position of each step ``[B, T]`` in its episode, counting on from ``start`` ``[B]`` until a reset
    (``resets [B, T]``) starts again from 0."""
    steps = jnp.arange(resets.shape[1])
    last_reset = jax.lax.cummax(jnp.where(resets, steps, -1), axis=1)
    return jnp.where(last_reset >= 0, steps - last_reset, start[:, None] + steps)


def oldest_first(carry: TransformerXLCarry) -> tuple[jax.Array, jax.Array]:
    """The ring's ``memory`` and ``valid`` with the slots ordered oldest first."""
    slots = (carry.cursor[:, None] + jnp.arange(carry.valid.shape[1])) % carry.valid.shape[1]  # [B, M]
    memory = jnp.take_along_axis(carry.memory, slots[:, None, :, None], axis=2)
    return memory, jnp.take_along_axis(carry.valid, slots, axis=1)


def write_slot(ring: jax.Array, entry: jax.Array, cursor: jax.Array) -> jax.Array:
    """``ring [B, L, M, ...]`` with slot ``cursor [B]`` of each row replaced by ``entry [B, L, 1, ...]``
    (in place inside a loop: only the slot is written)."""
    return jax.vmap(lambda r, e, c: jax.lax.dynamic_update_slice_in_dim(r, e.astype(r.dtype), c, axis=1))(
        ring, entry, cursor
    )


class TransformerXL(MemoryModule):
    """Transformer-XL memory (Dai et al. 2019) with rotary positions; ``gated=True`` gives GTrXL.

    Inputs are projected to ``features``; then ``num_layers`` pre-layernorm blocks. Each layer keeps the
    last ``memory_length`` (``M``) of its inputs, so a query at step ``t`` attends to itself and the
    ``M`` steps before it (from the cache or the current call), never across an episode reset. Rotary
    positions count the steps of the episode, and only their differences matter.

    Cost: acting (``T = 1``) projects its one step, attends over the ``M`` cached keys and values and writes
    its own into one slot of the carry's ring (:class:`TransformerXLCarry`), so the window is read once and
    never moved. A call over ``T > 1`` steps (training) orders the ring oldest first and projects the
    cached inputs again with the parameters it is given, whose gradient then reaches them, as
    Transformer-XL's cache of inputs has it; it costs ``O(T * M)`` attention (``O(T * (M + T))`` when
    ``T <= M``) and ``O(T + M)`` projections. The cached keys and values are those of the parameters of
    the call that wrote them: after the parameters change, a call over zero steps (``inputs [0, B, D_in]``)
    projects them again and returns that carry (on-policy trainers make one before each rollout), so that
    acting uses the parameters being trained.

    Shapes:
        inputs ``[T, B, D_in]``, resets ``[T, B]`` -> outputs ``[T, B, features]``.
        carry: :class:`TransformerXLCarry` with ``memory [B, num_layers, M, features]`` (f32), ``valid
        [B, M]``, ``keys``, ``values`` ``[B, num_layers, M, num_heads, features / num_heads]`` (``dtype``),
        ``cursor`` and ``position`` ``[B]``.

    Attributes:
        features: model width ``D`` (and output width).
        num_layers: number of blocks.
        num_heads: attention heads; ``features / num_heads`` must be an even integer.
        memory_length: ``M``, the cached window per layer.
        gated: GTrXL gating (GRU-type gates with bias 2 instead of residual sums).
        dtype: dtype of the matrix products; the residual stream and the carry's inputs stay f32. Rotary
            angles are f32, so positions far into an episode (about 1e5 steps and more) lose a few bits of
            their phase.
    """

    projected_fields = ("keys", "values")

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
    def initialize_carry(self, batch_size: int) -> TransformerXLCarry:
        b, m, d, h = batch_size, self.memory_length, self.features, self.num_heads
        heads = jnp.zeros((b, self.num_layers, m, h, d // h), self.dtype)
        return TransformerXLCarry(
            memory=jnp.zeros((b, self.num_layers, m, d), jnp.float32),
            valid=jnp.zeros((b, m), bool),
            keys=heads,
            values=heads,
            cursor=jnp.zeros((b,), jnp.int32),
            position=jnp.zeros((b,), jnp.int32),
        )

    @nn.compact
    def __call__(self, carry: TransformerXLCarry, inputs: jax.Array, resets: jax.Array):
        check_sequence_inputs(inputs, resets)
        steps, m = inputs.shape[0], self.memory_length
        x = nn.Dense(self.features, dtype=self.dtype, name="input")(inputs.swapaxes(0, 1)).astype(jnp.float32)
        acting = steps == 1
        if acting:  # one step against the ring
            reset = resets[0].astype(bool)
            position = jnp.where(reset, 0, carry.position)
            allowed = carry.valid & ~reset[:, None]
        else:  # a window: the ring oldest first (over zero steps, left as it is)
            memory, valid = oldest_first(carry) if steps else (carry.memory, carry.valid)
            cursor = jnp.zeros_like(carry.cursor) if steps else carry.cursor
            q_segments, k_segments = episode_segments(resets.T, valid)
            step_positions = episode_positions(resets.T, carry.position)
            positions = jnp.concatenate([slot_positions(cursor, carry.position, m), step_positions], axis=1)
        entries = []
        for layer in range(self.num_layers):
            block = TransformerXLBlock(self.num_heads, m, self.gated, self.dtype, name=f"block_{layer}")
            if acting:
                ring = (carry.keys[:, layer], carry.values[:, layer], allowed)
                x, entry = block(x, positions=position[:, None], ring=ring)
            else:
                x, entry = block(x, memory[:, layer], q_segments, k_segments, positions)
            entries.append(entry)
        y = nn.LayerNorm(dtype=self.dtype, name="out_norm")(x)
        new_memory, new_keys, new_values = (jnp.stack(parts, axis=1) for parts in zip(*entries))
        if acting:
            # The slots are written once every layer has read the ring: left free, XLA may order a write before
            # a later layer's read and copy the whole ring to keep that read intact (seen on an H200).
            y, new_memory, new_keys, new_values = jax.lax.optimization_barrier((y, new_memory, new_keys, new_values))
            carry = TransformerXLCarry(
                memory=write_slot(carry.memory, new_memory, carry.cursor),
                valid=allowed | (jnp.arange(m) == carry.cursor[:, None]),
                keys=write_slot(carry.keys, new_keys, carry.cursor),
                values=write_slot(carry.values, new_values, carry.cursor),
                cursor=(carry.cursor + 1) % m,
                position=position + 1,
            )
        else:
            carry = TransformerXLCarry(
                memory=new_memory,
                valid=next_window_valid(q_segments, k_segments, m) if steps else valid,
                keys=new_keys,
                values=new_values,
                cursor=cursor,
                position=step_positions[:, -1] + 1 if steps else carry.position,
            )
        return carry, y.swapaxes(0, 1).astype(self.dtype)
