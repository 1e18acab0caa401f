"""Hierarchical Chunk Attention Memory (HCAM; Lampinen et al. 2021, "Towards mental time travel").

The past of the current episode is kept in chunks of ``chunk_size`` (``C``) steps; a chunk enters the
memory when its last step has been processed, and the memory keeps the latest ``memory_chunks`` (``N``)
completed chunks. Each chunk is summarised by the mean of its keys. A query

1. attends over the summaries of the chunks completed strictly before it (same episode),
2. keeps the ``top_k`` most relevant chunks,
3. attends in detail within each of them, and
4. mixes the per-chunk results by the chunk weights renormalised over the kept chunks.

So a query costs ``O(number of chunks + top_k * C)``, not the ``O(T)`` of dense attention. The steps of
the current, incomplete chunk are left to a short local attention window (Transformer-XL style).

:class:`HCAMAttention` is the memory read as a layer, :class:`HCAMBlock` the paper's block (local
attention, HCAM attention, MLP; each pre-layernorm with a residual), and :class:`HCAM` the memory module.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.memory_modules.attention import (
    Residual,
    check_heads,
    episode_segments,
    head_projection,
    head_projector,
    masked_softmax,
    merge_heads,
)
from mnemax.memory_modules.base import MemoryModule, check_positive, check_sequence_inputs
from mnemax.memory_modules.transformer_xl import FeedForwardSublayer, WindowSublayer, next_window_valid

# Queries are read in blocks of this many steps, each block rematerialised in the backward pass, so the
# gathered chunks ([B, block, H, top_k, C, Dh]) never exist for the whole sequence at once.
READ_BLOCK = 128
# Up to this many memory entries scored per query (the read window's chunks x chunk size) the detailed read
# scores every entry with one matrix product and zeroes the chunks not selected, instead of gathering the
# selected chunks per query: the same result. On an H200 (width 256, batch 16, 4 layers, forward + backward)
# the product won at 4,224 entries (225 ms against 320) and the gather at 8,320 (518 ms against 789); the
# bound sits between them. On a 2-core CPU both ways cost the same at T = 256 and 1024.
DENSE_READ_ENTRIES = 6144


def sinusoid_positions(length: int, features: int) -> jax.Array:
    """``[length, features]`` f32 sinusoidal encodings of the places ``0 .. length - 1`` in a chunk, counted
    from its last entry (as the reference HCAM's ``sinusoid_position_encoding``); ``features`` even."""
    inv_freq = 1e4 ** (-jnp.arange(0, features, 2, dtype=jnp.float32) / features)
    angles = jnp.arange(length - 1, -1, -1, dtype=jnp.float32)[:, None] * inv_freq
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class WindowCarry(NamedTuple):
    """HCAM's local window: the last ``M`` inputs of every layer, oldest first.

    Attributes:
        memory: ``[B, L, M, D]`` f32, the inputs of each of the ``L`` layers at the last ``M`` steps.
        valid: ``[B, M]`` bool, True for the slots that belong to the episode running now.
    """

    memory: jax.Array
    valid: jax.Array


def initial_window(batch_size: int, num_layers: int, length: int, features: int) -> WindowCarry:
    """An empty window."""
    return WindowCarry(
        memory=jnp.zeros((batch_size, num_layers, length, features), jnp.float32),
        valid=jnp.zeros((batch_size, length), bool),
    )


class ChunkMemory(NamedTuple):
    """Keys and values of one layer's chunk memory (the leading ``L`` axis is absent inside a layer).

    Attributes:
        keys, values: ``[B, L, N, C, H, Dh]`` f32, the completed chunks, oldest first.
        summaries: ``[B, L, N, H, Dh]`` f32, mean key of each chunk.
        recent_keys, recent_values: ``[B, L, C, H, Dh]`` f32, the last ``C`` steps, from which the
            current incomplete chunk is completed.
    """

    keys: jax.Array
    values: jax.Array
    summaries: jax.Array
    recent_keys: jax.Array
    recent_values: jax.Array


class HCAMCarry(NamedTuple):
    """Carry of :class:`HCAM`; every leaf has the batch as leading axis.

    Attributes:
        window: the local attention window (see :class:`WindowCarry`).
        chunks: :class:`ChunkMemory` of every layer.
        chunk_valid: ``[B, N]`` bool, True for completed chunks of the episode that runs now.
        fill: ``[B]`` int32, how many steps of the current chunk have been seen (``0 .. C - 1``).
    """

    window: WindowCarry
    chunks: ChunkMemory
    chunk_valid: jax.Array
    fill: jax.Array


class ChunkLayout(NamedTuple):
    """Where the steps of a call go in the chunk memory and which chunks each query may read.

    The call's stream of entries is ``[last C steps of the carry; T new steps]`` (``S = C + T``), and the
    chunks completed during the call fill ``K = ceil(T / C)`` new slots, in order of completion.

    Attributes:
        write_index: ``[B, S]`` int32, ``slot * C + offset`` for entries of chunks that complete in this
            call, and ``K * C`` (out of range, dropped) for the others.
        visible: ``[B, T, N + K]`` bool, which of ``[carried chunks; new slots]`` query ``t`` may read.
        keep_index: ``[B, N]`` int32, the ``N`` latest completed chunks in ``[carried; new]`` (next carry).
        chunk_valid: ``[B, N]`` bool, ``chunk_valid`` of the next carry.
        fill: ``[B]`` int32, ``fill`` of the next carry.
    """

    write_index: jax.Array
    visible: jax.Array
    keep_index: jax.Array
    chunk_valid: jax.Array
    fill: jax.Array


@functools.partial(jax.jit, static_argnames=("chunk_size", "memory_chunks"))
def chunk_layout(
    resets: jax.Array, fill: jax.Array, chunk_valid: jax.Array, chunk_size: int, memory_chunks: int
) -> ChunkLayout:
    """Chunk bookkeeping of one call, shared by all layers; batch-major ``resets [B, T]``.

    Chunks start at the beginning of each episode and every ``chunk_size`` steps after; a reset drops
    the unfinished chunk. The rules are those of a step-by-step memory: a query reads the completed chunks
    of its episode that are among the ``memory_chunks`` latest completed before its step.
    """
    batch, steps = resets.shape
    size, capacity = chunk_size, memory_chunks
    slots = -(-steps // size)
    t = jnp.arange(steps)
    # Offset of each new step inside its chunk.
    last_reset = jax.lax.cummax(jnp.where(resets, t, -1), axis=1)
    since_start = jnp.where(last_reset >= 0, t - last_reset, t + fill[:, None])
    offset_new = since_start % size
    # Carried entries (steps -C .. -1): the last `fill` of them are the start of the current chunk.
    offset_old = fill[:, None] + jnp.arange(-size, 0)
    offset = jnp.concatenate([offset_old, offset_new], axis=1)  # [B, S]
    step = jnp.arange(-size, steps)
    member = jnp.concatenate([offset_old >= 0, jnp.ones((batch, steps), bool)], axis=1)
    end = step + (size - 1 - offset)  # the step at which the entry's chunk completes
    # A chunk completes if it ends inside the call before any later reset.
    reset_stream = jnp.concatenate([jnp.zeros((batch, size), bool), resets], axis=1)
    first_reset_from = jax.lax.cummin(jnp.where(reset_stream, step, steps), axis=1, reverse=True)
    next_reset = jnp.concatenate([first_reset_from[:, 1:], jnp.full((batch, 1), steps)], axis=1)
    completes = member & (end <= steps - 1) & (end < next_reset)
    # Chunk completions in the call, in order: completions before step t give the slot of t's chunk.
    events = offset_new == size - 1
    before = jnp.cumsum(events, axis=1, dtype=jnp.int32) - events  # completed strictly before t
    slot = jnp.concatenate([jnp.zeros((batch, size), jnp.int32), before], axis=1)
    write_index = jnp.where(completes, slot * size + offset, slots * size).astype(jnp.int32)
    # Episode of each new slot (-1 for unused slots).
    segments = jnp.cumsum(resets, axis=1, dtype=jnp.int32)
    slot_segment = jax.vmap(
        lambda seg, idx, ev: jnp.full((slots,), -1, jnp.int32).at[jnp.where(ev, idx, slots)].set(seg, mode="drop")
    )(segments, before, events)
    # Ordinals: carried chunk i is -N + i, new slot s is s; query t reads ordinals >= before_t - N.
    seen = before[:, :, None]
    new_ids = jnp.arange(slots)[None, None, :]
    visible_new = (new_ids < seen) & (new_ids >= seen - capacity)
    visible_new &= slot_segment[:, None, :] == segments[:, :, None]
    visible_old = chunk_valid[:, None, :] & (segments[:, :, None] == 0)
    visible_old &= jnp.arange(capacity)[None, None, :] >= seen
    completed = jnp.sum(events, axis=1, dtype=jnp.int32)
    keep_index = completed[:, None] + jnp.arange(capacity, dtype=jnp.int32)[None, :]
    final_segment = segments[:, -1:]
    new_valid = (slot_segment == final_segment) & (jnp.arange(slots) < completed[:, None])
    valid_all = jnp.concatenate([chunk_valid & (final_segment == 0), new_valid], axis=1)
    return ChunkLayout(
        write_index=write_index,
        visible=jnp.concatenate([visible_old, visible_new], axis=2),
        keep_index=keep_index,
        chunk_valid=jnp.take_along_axis(valid_all, keep_index, axis=1),
        fill=((offset_new[:, -1] + 1) % size).astype(jnp.int32),
    )


@functools.partial(jax.jit, static_argnames=("num_slots", "chunk_size"))
def write_chunks(stream: jax.Array, write_index: jax.Array, num_slots: int, chunk_size: int) -> jax.Array:
    """Scatter ``stream`` ``[B, S, ...]`` into chunk slots ``[B, num_slots, chunk_size, ...]``."""

    def scatter(entries, index):
        empty = jnp.zeros((num_slots * chunk_size,) + entries.shape[1:], entries.dtype)
        return empty.at[index].set(entries, mode="drop")

    flat = jax.vmap(scatter)(stream, write_index)
    return flat.reshape((stream.shape[0], num_slots, chunk_size) + stream.shape[2:])


def _gather_chunks(chunks: jax.Array, index: jax.Array) -> jax.Array:
    """``chunks [B, N, C, H, Dh]``, ``index [B, T, H, K]`` -> ``[B, T, H, K, C, Dh]``."""
    per_head = jnp.moveaxis(chunks, 3, 1)  # [B, H, N, C, Dh]
    take = lambda c, i: c[i]  # noqa: E731  ([N, C, Dh], [T, K]) -> [T, K, C, Dh]
    return jax.vmap(jax.vmap(take, in_axes=(0, 1), out_axes=1))(per_head, index)


def select_chunks(q: jax.Array, summaries: jax.Array, visible: jax.Array, top_k: int) -> tuple[jax.Array, jax.Array]:
    """The first stage of the HCAM read: which chunks each query and head reads, with what weight.

    Args as for :func:`hierarchical_read`. Returns ``(index, weights)``, both ``[B, T, H, top_k]``: the
    ``top_k`` chunks with the highest summary scores, and their softmax weights renormalised over those
    of them that are visible (zero for invisible ones, all zero for a query with no visible chunk).
    """
    scores = jnp.einsum("bthd,bnhd->bthn", q, summaries, preferred_element_type=jnp.float32) * q.shape[-1] ** -0.5
    visible = jnp.broadcast_to(visible[:, :, None, :], scores.shape)
    scores = jnp.where(visible, scores, jnp.finfo(jnp.float32).min)
    top_scores, index = jax.lax.top_k(scores, top_k)
    return index, masked_softmax(top_scores, jnp.take_along_axis(visible, index, axis=-1))


def chunk_attention(q: jax.Array, summaries: jax.Array, visible: jax.Array, top_k: int) -> jax.Array:
    """``[B, T, H, N]`` f32: the weight each query and head puts on each of the ``N`` chunks in the read
    of :func:`hierarchical_read` (the weights of :func:`select_chunks` scattered back over all chunks;
    each row sums to 1 over the visible chunks, or is all zero where none is visible)."""
    return _over_all_chunks(*select_chunks(q, summaries, visible, top_k), summaries.shape[1])


def _over_all_chunks(index: jax.Array, weights: jax.Array, num_chunks: int) -> jax.Array:
    """The top-k ``weights`` of chunks ``index`` (both ``[B, T, H, K]``) as ``[B, T, H, num_chunks]``, zero
    for the chunks outside a query's top k."""
    return jnp.sum(weights[..., None] * jax.nn.one_hot(index, num_chunks, dtype=weights.dtype), axis=-2)


def _gathered_read(q, keys, values, index, chunk_weights):
    """The detailed read over the chunks ``index`` gathered for each query and head, mixed by ``chunk_weights``
    (both ``[B, T, H, top_k]``, from :func:`select_chunks`)."""
    k, v = _gather_chunks(keys, index), _gather_chunks(values, index)
    logits = jnp.einsum("bthd,bthkcd->bthkc", q, k, preferred_element_type=jnp.float32) * q.shape[-1] ** -0.5
    within = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    per_chunk = jnp.einsum("bthkc,bthkcd->bthkd", within, v)
    return jnp.einsum("bthk,bthkd->bthd", chunk_weights.astype(v.dtype), per_chunk)


def _dense_read(q, keys, values, index, chunk_weights):
    """The same read with every entry scored by one product and the unselected chunks weighted zero."""
    weights = _over_all_chunks(index, chunk_weights, keys.shape[1])
    logits = jnp.einsum("bthd,bnchd->bthnc", q, keys, preferred_element_type=jnp.float32) * q.shape[-1] ** -0.5
    within = jax.nn.softmax(logits, axis=-1) * weights[..., None]
    return jnp.einsum("bthnc,bnchd->bthd", within.astype(values.dtype), values)


def window_starts(visible: jax.Array, block: int, width: int) -> jax.Array:
    """``[B, ceil(T / block)]`` int32: for each block of ``block`` queries, the first of ``width`` consecutive
    chunks that hold every chunk its queries may read, given ``visible [B, T, N]`` in which each query's
    visible chunks lie in ``width`` chunks from its first visible one (:func:`hierarchical_read`'s
    ``window``). Blocks with nothing visible get any start."""
    batch, steps, total = visible.shape
    first = jnp.where(jnp.any(visible, axis=-1), jnp.argmax(visible, axis=-1), total)
    blocks = -(-steps // block)
    first = jnp.pad(first, ((0, 0), (0, blocks * block - steps)), constant_values=total)
    return jnp.clip(first.reshape(batch, blocks, block).min(axis=-1), 0, total - width).astype(jnp.int32)


def _window(chunks: jax.Array, start: jax.Array, width: int) -> jax.Array:
    """``chunks [B, N, ...]`` -> ``[B, width, ...]`` from chunk ``start [B]`` on."""
    return jax.vmap(lambda c, s: jax.lax.dynamic_slice_in_dim(c, s, width, axis=0))(chunks, start)


@functools.partial(jax.jit, static_argnames=("top_k", "block", "dense", "window", "group"))
def hierarchical_read(
    q: jax.Array,
    summaries: jax.Array,
    keys: jax.Array,
    values: jax.Array,
    visible: jax.Array,
    top_k: int,
    block: int = READ_BLOCK,
    dense: bool | None = None,
    window: int | None = None,
    group: int = 1,
) -> jax.Array:
    """The HCAM read: top-k chunks by summary, detailed attention inside each, mixed by chunk weight.

    Args:
        q: ``[B, T, H, Dh]`` queries.
        summaries: ``[B, N, H, Dh]`` one key per chunk.
        keys, values: ``[B, N, C, H, Dh]`` chunk contents (every entry of a chunk is valid).
        visible: ``[B, T, N]`` bool, the chunks each query may read.
        top_k: chunks kept per query and head.
        block: queries per block (blocks are rematerialised in the backward pass).
        dense: score every entry with one product instead of gathering the ``top_k`` chunks (``top_k * C``
            scores per query); ``None`` picks dense up to :data:`DENSE_READ_ENTRIES` entries scored.
        window: a promise that the chunks any ``block`` consecutive queries may read lie within ``window``
            consecutive chunks (HCAM's memory: the latest ``memory_chunks`` chunks before each query, see
            :class:`HCAMAttention`). The dense read then scores only those ``window * C`` entries per query
            instead of all ``N * C``. ``None``: no such promise.
        group: blocks read together (vmapped) at each step of the loop over blocks: fewer, wider steps for a
            GPU, at ``group`` times the scratch memory of one block; the same result.

    Returns:
        ``[B, T, H, Dh]``; zeros for a query with no visible chunk.
    """
    batch, steps = q.shape[:2]
    block = min(block, steps)
    total = keys.shape[1]
    width = total if window is None else min(window, total)
    if dense is None:
        dense = width * keys.shape[2] <= DENSE_READ_ENTRIES
    sliced = dense and width < total

    def read(q, visible, start):
        index, weights = select_chunks(q, summaries, visible, top_k)
        if not dense:
            return _gathered_read(q, keys, values, index, weights)
        if not sliced:
            return _dense_read(q, keys, values, index, weights)
        # Chunks picked outside the window carry zero weight (a query with fewer than top_k visible chunks).
        shifted = index - start[:, None, None, None]
        return _dense_read(q, _window(keys, start, width), _window(values, start, width), shifted, weights)

    num_blocks = -(-steps // block)
    # Where each block's window starts (only the sliced read uses it).
    starts = window_starts(visible, block, width) if sliced else jnp.zeros((batch, num_blocks), jnp.int32)
    if num_blocks == 1:
        return read(q, visible, starts[:, 0])
    pad = num_blocks * block - steps
    q_blocks = jnp.pad(q, ((0, 0), (0, pad), (0, 0), (0, 0)))
    visible_blocks = jnp.pad(visible, ((0, 0), (0, pad), (0, 0)))
    to_blocks = lambda a: jnp.moveaxis(a.reshape((batch, num_blocks, block) + a.shape[2:]), 1, 0)  # noqa: E731
    blocks = (to_blocks(q_blocks), to_blocks(visible_blocks), starts.T)
    out = jax.lax.map(lambda args: jax.checkpoint(read)(*args), blocks, batch_size=group if group > 1 else None)
    return jnp.moveaxis(out, 0, 1).reshape((batch, num_blocks * block) + out.shape[3:])[:, :steps]


class HCAMAttention(nn.Module):
    """HCAM attention of ``queries`` to the chunk memory built from ``entries`` (one layer).

    Call with ``queries`` and ``entries`` ``[B, T, D]`` (both already normalised), this layer's
    :class:`ChunkMemory` (without the layer axis) and the call's :class:`ChunkLayout`. Returns
    ``([B, T, D], next ChunkMemory)``. Entries are written as keys/values once, when they are seen, so
    acting costs ``O(N + top_k * C)`` per query and layer.

    Applied with ``mutable=["intermediates"]``, the layer also sows ``chunk_weights``
    (:func:`chunk_attention`, ``[B, T, H, N + K]`` f32): the weight of each query and head on the
    carried chunks (oldest first) followed by the ``K = ceil(T / C)`` slots of chunks completed during
    the call. Outputs and memory are the same either way.
    """

    num_heads: int
    chunk_size: int
    top_k: int
    memory_chunks: int
    dtype: Any = jnp.float32
    read_block: int = READ_BLOCK
    dense_read: Optional[bool] = None
    read_group: int = 1
    chunk_positions: bool = False

    @nn.compact
    def __call__(self, queries, entries, memory: ChunkMemory, layout: ChunkLayout):
        batch, steps, features = queries.shape
        slots = -(-steps // self.chunk_size)
        q = head_projection(queries, self.num_heads, self.dtype, "query")
        key = head_projector(features, self.num_heads, self.dtype, "key")
        value = head_projector(features, self.num_heads, self.dtype, "value")
        stream_k = jnp.concatenate([memory.recent_keys.astype(self.dtype), key(entries)], 1)
        stream_v = jnp.concatenate([memory.recent_values.astype(self.dtype), value(entries)], 1)
        new_k = write_chunks(stream_k, layout.write_index, slots, self.chunk_size)
        new_v = write_chunks(stream_v, layout.write_index, slots, self.chunk_size)
        all_k = jnp.concatenate([memory.keys.astype(self.dtype), new_k], axis=1)
        all_v = jnp.concatenate([memory.values.astype(self.dtype), new_v], axis=1)
        all_s = jnp.concatenate([memory.summaries, jnp.mean(new_k.astype(jnp.float32), axis=2)], axis=1)
        # A query reads among the memory_chunks chunks completed last before it, and from the first query of
        # a block of Q to its last at most ceil((Q - 1) / C) chunks complete: the window of hierarchical_read.
        window = self.memory_chunks + -(-(min(self.read_block, steps) - 1) // self.chunk_size)
        read_k, read_v = all_k, all_v
        if self.chunk_positions:
            # As the reference HCAM (memory_position_encoding), the detailed read sees each entry's place in
            # its chunk: a sinusoid of it is added to the entries before their key and value projections
            # (linear, so added here as projected terms, bias left out). Chunk summaries stay position-free.
            positions = sinusoid_positions(self.chunk_size, features).astype(self.dtype)
            origin = jnp.zeros((1, features), self.dtype)
            read_k = all_k + (key(positions) - key(origin))[None, None]
            read_v = all_v + (value(positions) - value(origin))[None, None]
        out = hierarchical_read(
            q, all_s.astype(self.dtype), read_k, read_v, layout.visible, self.top_k, self.read_block, self.dense_read,
            window, self.read_group,
        )  # fmt: skip
        if self.is_mutable_collection("intermediates"):
            weights = chunk_attention(q, all_s.astype(self.dtype), layout.visible, self.top_k)
            self.sow("intermediates", "chunk_weights", weights)

        def keep(a):
            index = layout.keep_index.reshape(layout.keep_index.shape + (1,) * (a.ndim - 2))
            return jnp.take_along_axis(a, index, axis=1).astype(jnp.float32)

        memory = ChunkMemory(
            keys=keep(all_k),
            values=keep(all_v),
            summaries=keep(all_s),
            recent_keys=stream_k[:, -self.chunk_size :].astype(jnp.float32),
            recent_values=stream_v[:, -self.chunk_size :].astype(jnp.float32),
        )
        return merge_heads(out, features, self.dtype, "out"), memory


class HCAMBlock(nn.Module):
    """The HCAM transformer block: local window attention, HCAM attention to the chunk memory, MLP.

    Each sublayer is pre-layernorm with a residual connection (or a GTrXL gate with ``gated``). The chunk
    memory of the block holds its inputs ``x`` (normalised, projected to keys and values).
    """

    num_heads: int
    local_length: int
    chunk_size: int
    top_k: int
    memory_chunks: int
    gated: bool = False
    dtype: Any = jnp.float32
    read_block: int = READ_BLOCK
    dense_read: Optional[bool] = None
    read_group: int = 1
    chunk_positions: bool = False

    @nn.compact
    def __call__(self, x, cache, memory: ChunkMemory, q_segments, k_segments, layout: ChunkLayout):
        entries = nn.LayerNorm(dtype=self.dtype, name="memory_norm")(x)
        x, (cache, _, _) = WindowSublayer(self.num_heads, self.local_length, self.gated, self.dtype, name="local")(
            x, cache, q_segments, k_segments
        )
        queries = nn.LayerNorm(dtype=self.dtype, name="hcam_norm")(x)
        y, memory = HCAMAttention(
            self.num_heads,
            self.chunk_size,
            self.top_k,
            self.memory_chunks,
            self.dtype,
            self.read_block,
            self.dense_read,
            self.read_group,
            self.chunk_positions,
            name="hcam",
        )(queries, entries, memory, layout)
        x = Residual(self.gated, dtype=self.dtype, name="hcam_residual")(x, y)
        x = FeedForwardSublayer(self.gated, self.dtype, name="feed_forward")(x)
        return x, cache, memory


class HCAM(MemoryModule):
    """HCAM memory module: a stack of :class:`HCAMBlock` over an input projection.

    Shapes:
        inputs ``[T, B, D_in]``, resets ``[T, B]`` -> outputs ``[T, B, features]``.
        carry: :class:`HCAMCarry`; the chunk memory is ``2 * B * L * N * C * features`` floats (keys and
        values), the local window ``B * L * local_length * features``.

    Cost per query and layer: ``N + K`` summary scores (``K = ceil(T / C)`` chunks completed during the
    call), ``top_k * C`` detailed scores and ``local_length + 1`` local ones.

    Attributes:
        features: model width ``D`` (and output width).
        num_layers: number of HCAM blocks ``L``.
        num_heads: attention heads; ``features / num_heads`` must be even. Chunks are chosen per head.
        chunk_size: ``C``, steps per chunk.
        top_k: chunks read in detail per query and head; at most ``memory_chunks``.
        memory_chunks: ``N``, completed chunks kept (the memory spans the last ``N * C`` steps).
        local_length: window of the local attention (default ``chunk_size``, which covers the current chunk).
        gated: GTrXL gates instead of residual sums.
        dtype: dtype of the matrix products; residual stream and carry stay f32.
        read_block, dense_read, read_group: how the chunk memory is read (:func:`hierarchical_read`'s ``block``,
            ``dense`` and ``group``); speed and memory only, the outputs are the same.
        chunk_positions: the detailed read sees each entry's place in its chunk (a sinusoid added to the
            entries, as the reference's ``memory_position_encoding``); without it a chunk is a bag of steps.
    """

    features: int
    num_layers: int = 2
    num_heads: int = 4
    chunk_size: int = 16
    top_k: int = 4
    memory_chunks: int = 64
    local_length: Optional[int] = None
    gated: bool = False
    dtype: Any = jnp.float32
    read_block: int = READ_BLOCK
    dense_read: Optional[bool] = None
    read_group: int = 1
    chunk_positions: bool = False

    def __post_init__(self):
        super().__post_init__()
        check_heads(self)
        check_positive(
            self, "num_layers", "chunk_size", "top_k", "memory_chunks", "local_length", "read_block", "read_group"
        )
        if self.top_k > self.memory_chunks:
            raise ValueError(f"HCAM: top_k ({self.top_k}) must not exceed memory_chunks ({self.memory_chunks})")

    @property
    def window(self) -> int:
        return self.chunk_size if self.local_length is None else self.local_length

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> HCAMCarry:
        b, layers, n, c, h = batch_size, self.num_layers, self.memory_chunks, self.chunk_size, self.num_heads
        dh = self.features // h
        zeros = lambda *shape: jnp.zeros(shape, jnp.float32)  # noqa: E731
        return HCAMCarry(
            window=initial_window(b, layers, self.window, self.features),
            chunks=ChunkMemory(
                keys=zeros(b, layers, n, c, h, dh),
                values=zeros(b, layers, n, c, h, dh),
                summaries=zeros(b, layers, n, h, dh),
                recent_keys=zeros(b, layers, c, h, dh),
                recent_values=zeros(b, layers, c, h, dh),
            ),
            chunk_valid=jnp.zeros((b, n), bool),
            fill=jnp.zeros((b,), jnp.int32),
        )

    @nn.compact
    def __call__(self, carry: HCAMCarry, inputs: jax.Array, resets: jax.Array):
        check_sequence_inputs(inputs, resets)
        x = nn.Dense(self.features, dtype=self.dtype, name="input")(inputs.swapaxes(0, 1)).astype(jnp.float32)
        resets = resets.T
        q_segments, k_segments = episode_segments(resets, carry.window.valid)
        layout = chunk_layout(resets, carry.fill, carry.chunk_valid, self.chunk_size, self.memory_chunks)
        caches, memories = [], []
        for layer in range(self.num_layers):
            block = HCAMBlock(
                self.num_heads,
                self.window,
                self.chunk_size,
                self.top_k,
                self.memory_chunks,
                self.gated,
                self.dtype,
                self.read_block,
                self.dense_read,
                self.read_group,
                self.chunk_positions,
                name=f"block_{layer}",
            )
            layer_memory = jax.tree_util.tree_map(lambda a: a[:, layer], carry.chunks)
            x, cache, memory = block(x, carry.window.memory[:, layer], layer_memory, q_segments, k_segments, layout)
            caches.append(cache)
            memories.append(memory)
        y = nn.LayerNorm(dtype=self.dtype, name="out_norm")(x)
        carry = HCAMCarry(
            window=WindowCarry(
                memory=jnp.stack(caches, axis=1), valid=next_window_valid(q_segments, k_segments, self.window)
            ),
            chunks=jax.tree_util.tree_map(lambda *a: jnp.stack(a, axis=1), *memories),
            chunk_valid=layout.chunk_valid,
            fill=layout.fill,
        )
        return carry, y.swapaxes(0, 1).astype(self.dtype)
