"""RATE: Recurrent Action Transformer with Memory (Bessonov et al. 2023).

Each episode is cut into segments of ``segment_length`` (``K``) steps, counted from the episode start.
A segment is processed by a causal transformer over the tokens

    [ read memory (M) | the segment's steps (K) | write memory (M) ]

The read tokens carry the memory written by the previous segment into this one; the write tokens, last in
the causal order, see the whole segment, and their outputs become the memory of the next segment. So a
step attends to the memory and to the earlier steps of its own segment: ``O(K + M)`` per step whatever the
episode length, and the memory is the only path from older segments. An episode reset drops the unfinished
segment and clears the memory (to zeros, to which the learned read/write embeddings are added).

How this fits the one interface (T single steps = one call over T steps, resets anywhere):

* The carry holds the projected inputs of the current, unfinished segment, how many steps it has
  (``fill``), and the memory that segment reads. A step recomputes its segment so far from those inputs
  (causal attention makes this exact), and when a step completes a segment the write tokens are run and
  the memory replaced.
* A call over ``T`` steps is cut into blocks of ``b = min(K, T)`` steps, processed in order by a scan.
  As segments have ``K`` steps, at most one segment completes in a block, and every segment a block's
  steps belong to started at most ``K`` steps before the block, inside the block's window of
  ``K + b`` steps. A step of the block reads one of three memories: the one in force when the block
  starts, zeros (its segment started at a reset), or the memory written by the segment that completed
  earlier in this block. The first pass of a block runs the window with the first two and the write
  tokens; a second pass recomputes the steps after the completion with the memory just written.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.memory_modules.attention import check_heads, head_projection, masked_attention, merge_heads
from mnemax.memory_modules.base import MemoryModule, check_positive, check_sequence_inputs
from mnemax.memory_modules.transformer_xl import FeedForwardSublayer

# Which memory a step reads, in the per-step ``read`` codes of a block.
READ_START, READ_ZERO, READ_NEW, READ_NONE = 0, 1, 2, -1


class RATECarry(NamedTuple):
    """Carry of :class:`RATE`; every leaf has the batch as leading axis.

    Attributes:
        inputs: ``[B, K, D]`` f32, the projected inputs of the unfinished segment, right-aligned: the
            last ``fill`` slots hold its steps, oldest first; the other slots are zeros.
        fill: ``[B]`` int32, steps of the unfinished segment (``0 .. K - 1``).
        memory: ``[B, M, D]`` f32, the memory tokens the unfinished segment reads (zeros in a new episode).
    """

    inputs: jax.Array
    fill: jax.Array
    memory: jax.Array


class MaskedSelfAttention(nn.Module):
    """Multi-head self-attention over ``[B, N, D]`` tokens with an explicit ``[B, N, N]`` mask."""

    num_heads: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        q, k, v = (head_projection(x, self.num_heads, self.dtype, name) for name in ("query", "key", "value"))
        out = masked_attention(q, k, v, mask[:, None])
        return merge_heads(out, x.shape[-1], self.dtype, "out")


class SegmentTransformer(nn.Module):
    """``num_layers`` pre-layernorm blocks (masked self-attention, MLP), residual stream in f32.

    Positions are learned embeddings added to the step tokens (their offset in the segment), so this
    part knows nothing of time: the mask says who sees whom.
    """

    num_layers: int
    num_heads: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        for layer in range(self.num_layers):
            normed = nn.LayerNorm(dtype=self.dtype, name=f"norm_{layer}")(x)
            x = x + MaskedSelfAttention(self.num_heads, self.dtype, name=f"attention_{layer}")(normed, mask)
            x = FeedForwardSublayer(dtype=self.dtype, name=f"feed_forward_{layer}")(x.astype(jnp.float32))
        return x.astype(jnp.float32)


def segment_mask(
    labels: jax.Array,
    reads: jax.Array,
    num_reads: int,
    num_tokens: int,
    write_label: jax.Array | None = None,
    write_read: jax.Array | None = None,
) -> jax.Array:
    """Attention mask over the tokens ``[read tokens of memories 0 .. R-1 | steps | write tokens]``.

    * Read tokens see the earlier read tokens of the same memory (they depend on the memory alone).
    * A step sees the read tokens of memory ``reads[i]`` and the earlier steps with its label (its
      segment); a step with a negative label (padding, empty cache slots) sees nothing.
    * Write tokens (when ``write_label`` is given) see the read tokens of memory ``write_read``, every step
      labelled ``write_label`` (the segment that completes) and the earlier write tokens.

    Args:
        labels: ``[B, S]`` int32, segment label of each step, negative where there is no step.
        reads: ``[B, S]`` int32, which memory each step reads (``-1``: none).
        num_reads: ``R``.
        num_tokens: ``M``, tokens per memory.
        write_label, write_read: ``[B]`` int32, or None for no write tokens.

    Returns:
        ``[B, N, N]`` bool with ``N = R * M + S (+ M)``.
    """
    batch, steps = labels.shape
    causal = jnp.tril(jnp.ones((num_tokens, num_tokens), bool))
    group = jnp.repeat(jnp.arange(num_reads), num_tokens)  # the memory of each read token
    within = jnp.tile(jnp.arange(num_tokens), num_reads)
    read_rows = (group[:, None] == group[None, :]) & (within[None, :] <= within[:, None])  # [RM, RM]
    order = jnp.arange(steps)
    step_to_step = (
        (labels[:, :, None] == labels[:, None, :]) & (labels[:, :, None] >= 0) & (order[None, None] <= order[:, None])
    )
    step_to_read = (reads[:, :, None] == group) & (labels[:, :, None] >= 0)
    rows = [
        jnp.concatenate(
            [
                jnp.broadcast_to(read_rows, (batch,) + read_rows.shape),
                jnp.zeros((batch, num_reads * num_tokens, steps), bool),
            ],
            2,
        ),
        jnp.concatenate([step_to_read, step_to_step], 2),
    ]
    if write_label is None:
        return jnp.concatenate(rows, 1)
    rows = [jnp.pad(r, ((0, 0), (0, 0), (0, num_tokens))) for r in rows]
    write_to_read = jnp.broadcast_to(
        (write_read[:, None] == group)[:, None], (batch, num_tokens, num_reads * num_tokens)
    )
    segment = (labels == write_label[:, None]) & (labels >= 0)
    write_to_step = jnp.broadcast_to(segment[:, None], (batch, num_tokens, steps))
    write_to_write = jnp.broadcast_to(causal, (batch, num_tokens, num_tokens))
    rows.append(jnp.concatenate([write_to_read, write_to_step, write_to_write], 2))
    return jnp.concatenate(rows, 1)


class BlockPlan(NamedTuple):
    """What the scan over blocks needs, per block (leading axis ``n``): see :func:`plan_blocks`.

    Attributes:
        labels: ``[n, B, K + b]`` int32, segment labels in the window (negative: no step).
        reads: ``[n, B, K + b]`` int32, ``READ_*`` code of each window step.
        write_label: ``[n, B]`` int32, label of the segment that completes in the block (-1: none).
        write_read: ``[n, B]`` int32, the memory that segment reads (``READ_START`` or ``READ_ZERO``).
        next_memory: ``[n, B]`` int32, ``READ_*`` code of the memory in force after the block.
    """

    labels: jax.Array
    reads: jax.Array
    write_label: jax.Array
    write_read: jax.Array
    next_memory: jax.Array


@functools.partial(jax.jit, static_argnames=("segment_length", "block"))
def plan_blocks(resets: jax.Array, fill: jax.Array, segment_length: int, block: int):
    """Segment bookkeeping of one call; batch-major ``resets [B, T]``, ``fill [B]`` from the carry.

    The stream of a call is ``[K carried slots; T new steps; padding to n * b]``; position ``p`` is step
    ``p - K``, and block ``c`` covers steps ``c b .. c b + b - 1``. Returns
    ``(plan, window [n, K + b], offsets [B, K + n b], final_fill [B], final_keep [B, K])``: the stream
    positions of each block's window (its ``b`` steps last), the steps' offsets in their segments (for the
    position embeddings), and which of the stream positions ``T .. T + K - 1`` stay in the carry.
    """
    size = segment_length
    batch, steps = resets.shape
    num_blocks = -(-steps // block)
    t = jnp.arange(steps)
    last_reset = jax.lax.cummax(jnp.where(resets, t, -1), axis=1)
    since_start = jnp.where(last_reset >= 0, t - last_reset, t + fill[:, None])
    offset = since_start % size
    completes = offset == size - 1
    labels = jnp.cumsum(offset == 0, axis=1, dtype=jnp.int32)  # the carried segment, if going on, is 0
    fresh = (last_reset >= 0) & (t - last_reset < size)  # the segment started at a reset: zero memory
    segment_start = t - offset
    block_start = (t // block) * block
    reads = jnp.where(fresh, READ_ZERO, jnp.where(segment_start > block_start, READ_NEW, READ_START))

    carried = jnp.arange(-size, 0)[None, :] >= -fill[:, None]
    pad = num_blocks * block - steps
    stream_labels = jnp.concatenate(
        [jnp.where(carried, 0, -1), labels, jnp.full((batch, pad), -1, jnp.int32)], axis=1
    ).astype(jnp.int32)
    offsets = jnp.concatenate(
        [jnp.where(carried, fill[:, None] + jnp.arange(-size, 0), 0), offset, jnp.zeros((batch, pad), offset.dtype)], 1
    )

    window = (jnp.arange(num_blocks) * block)[:, None] + jnp.arange(size + block)[None, :]  # [n, K + b]
    # The steps before a block (the first K of its window) matter as keys of the segment running when the
    # block starts, which reads the memory in force then.
    window_labels = stream_labels[:, window]  # [B, n, K + b]
    before_block = jnp.arange(size + block) < size
    window_reads = jnp.where(before_block, READ_START, jnp.pad(reads, ((0, 0), (size, pad)))[:, window])
    window_reads = jnp.where(window_labels >= 0, window_reads, READ_NONE)

    def blocks(a):  # [B, T] -> [B, n, b]; padding steps never complete
        return jnp.pad(a, ((0, 0), (0, pad))).reshape(batch, num_blocks, block)

    block_completes = blocks(completes)
    write_label = jnp.max(jnp.where(block_completes, blocks(labels), -1), axis=2)  # [B, n]
    write_read = jnp.max(jnp.where(block_completes, blocks(reads), READ_START), axis=2)
    last = jnp.minimum(jnp.arange(num_blocks) * block + block - 1, steps - 1)  # last real step of each block
    next_memory = jnp.where(completes[:, last], READ_NEW, reads[:, last])
    plan = BlockPlan(
        labels=jnp.moveaxis(window_labels, 1, 0),
        reads=jnp.moveaxis(window_reads, 1, 0),
        write_label=write_label.T,
        write_read=write_read.T,
        next_memory=next_memory.T,
    )
    final_keep = (stream_labels[:, steps : steps + size] == labels[:, -1:]) & ~completes[:, -1:]
    return plan, window, offsets, (offset[:, -1] + 1) % size, final_keep


class RATEBlock(nn.Module):
    """One step of the scan over blocks: carry the memory ``[B, M, D]`` in force at the block start,
    return the memory after the block and the outputs of the block's ``b`` steps ``[B, b, D]``."""

    segment_length: int
    memory_tokens: int
    num_layers: int
    num_heads: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, memory: jax.Array, xs: tuple[jax.Array, BlockPlan]) -> tuple[jax.Array, jax.Array]:
        tokens, plan = xs  # tokens [B, K + b, D]: the window's steps with their position embeddings
        m, size, features = self.memory_tokens, self.segment_length, memory.shape[-1]
        read_embed = self.param("read_embed", nn.initializers.normal(0.02), (m, features))
        write_embed = self.param("write_embed", nn.initializers.normal(0.02), (m, features))
        transformer = SegmentTransformer(self.num_layers, self.num_heads, self.dtype, name="transformer")
        zeros = jnp.zeros_like(memory)

        # Pass 1: the window with the memory in force at the block start, zeros, and the write tokens.
        written_from = jnp.where((plan.write_read == READ_ZERO)[:, None, None], zeros, memory)
        first = jnp.concatenate([memory + read_embed, zeros + read_embed, tokens, written_from + write_embed], 1)
        mask = segment_mask(plan.labels, plan.reads, 2, m, plan.write_label, plan.write_read)
        first = transformer(first, mask)
        written = nn.LayerNorm(name="memory_norm")(first[:, -m:])

        # Pass 2: the block's steps whose segment starts after the completion, with the new memory.
        block_tokens, labels, reads = tokens[:, size:], plan.labels[:, size:], plan.reads[:, size:]
        after = reads == READ_NEW
        second = jnp.concatenate([written + read_embed, block_tokens], 1)
        mask = segment_mask(jnp.where(after, labels, -1), jnp.where(after, 0, READ_NONE), 1, m)
        second = transformer(second, mask)

        outputs = jnp.where(after[..., None], second[:, m:], first[:, 2 * m + size : -m])
        choice = plan.next_memory[:, None, None]
        memory = jnp.where(choice == READ_NEW, written, jnp.where(choice == READ_ZERO, zeros, memory))
        return memory, outputs


class RATE(MemoryModule):
    """RATE memory: segments of ``segment_length`` steps, ``memory_tokens`` tokens carried between them.

    See the module docstring for the token layout and how steps and sequences agree. Inputs are projected
    to ``features``; each step token gets a learned embedding of its offset in the segment; the transformer
    has ``num_layers`` pre-layernorm blocks of causal self-attention and an MLP; the written memory is
    layer-normalised, so it cannot grow over many segments. (The published model also attends to the
    previous segment's cached hidden states, as Transformer-XL does, and a later version gates the memory
    update; neither is here: the memory tokens are the only path between segments.)

    Cost: acting recomputes the unfinished segment, ``O((K + 3M)^2)`` attention per layer and step; a call
    over ``T`` steps is a scan over ``T / K`` blocks, each ``O((2K + 3M)^2)`` attention per layer.

    When to choose it: when the cue and its use are far apart but the memory needed is a few items
    (T-Maze, key-to-door): attention inside a segment is precise like ``trxl``, and the memory tokens
    reach any distance at constant cost, which Transformer-XL's window cannot; but everything older than
    the segment must fit through ``memory_tokens`` vectors written once per segment.

    Shapes:
        inputs ``[T, B, D_in]``, resets ``[T, B]`` -> outputs ``[T, B, features]``; carry :class:`RATECarry`
        with ``inputs [B, K, features]``, ``fill [B]``, ``memory [B, memory_tokens, features]``.

    Attributes:
        features: model width ``D`` (and output width).
        segment_length: ``K``, steps per segment.
        memory_tokens: ``M``, memory tokens read and written per segment.
        num_layers: transformer blocks.
        num_heads: attention heads; ``features`` must be divisible by it.
        dtype: dtype of the matrix products; the residual stream and the carry stay f32.
    """

    features: int
    segment_length: int = 64
    memory_tokens: int = 8
    num_layers: int = 2
    num_heads: int = 4
    dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        check_heads(self, rotary_heads=False)
        check_positive(self, "segment_length", "memory_tokens", "num_layers")

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> RATECarry:
        return RATECarry(
            inputs=jnp.zeros((batch_size, self.segment_length, self.features), jnp.float32),
            fill=jnp.zeros((batch_size,), jnp.int32),
            memory=jnp.zeros((batch_size, self.memory_tokens, self.features), jnp.float32),
        )

    @nn.compact
    def __call__(self, carry: RATECarry, inputs: jax.Array, resets: jax.Array):
        check_sequence_inputs(inputs, resets)
        size, steps = self.segment_length, inputs.shape[0]
        block = min(size, steps)
        x = nn.Dense(self.features, dtype=self.dtype, name="input")(inputs.swapaxes(0, 1)).astype(jnp.float32)
        plan, window, offsets, fill, keep = plan_blocks(resets.T, carry.fill, size, block)
        pad = window.shape[0] * block - steps
        stream = jnp.concatenate([carry.inputs, x, jnp.zeros((x.shape[0], pad, self.features))], axis=1)
        position = self.param("position_embed", nn.initializers.normal(0.02), (size, self.features))
        tokens = stream + position[offsets]
        windows = jnp.moveaxis(tokens[:, window], 1, 0)  # [n, B, K + b, D]

        # Rematerialised: the backward pass keeps only the memory between blocks and recomputes each block, so
        # what training stores grows with T by the memory tokens, not by every block's activations.
        scan = nn.scan(
            nn.remat(RATEBlock), variable_broadcast="params", split_rngs={"params": False}, in_axes=0, out_axes=0
        )
        memory, outputs = scan(size, self.memory_tokens, self.num_layers, self.num_heads, self.dtype, name="blocks")(
            carry.memory, (windows, plan)
        )
        outputs = jnp.moveaxis(outputs, 0, 1).reshape(x.shape[0], -1, self.features)[:, :steps]
        y = nn.LayerNorm(dtype=self.dtype, name="out_norm")(outputs)
        cached = jnp.where(keep[..., None], stream[:, steps : steps + size], 0.0)
        return RATECarry(inputs=cached, fill=fill.astype(jnp.int32), memory=memory), y.swapaxes(0, 1).astype(self.dtype)
