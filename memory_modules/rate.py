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
  (``fill``), the memory that segment reads, and each layer's attention keys and values of the segment's
  read tokens and steps so far (a cache, as in a language model's decoding). A single step runs only its
  own token through the layers against that cache (causal attention makes this exact); the step that
  starts a segment first computes the read tokens' keys and values, and the step that completes it runs
  the write tokens against the cache and replaces the memory, each for those copies of the batch alone.
  The cache is a function of the other fields: a call over several steps recomputes it at its end from
  them, and a call over zero steps recomputes it alone (``projected_fields``), so that acting after a
  parameter update reads keys and values of the new parameters, as a call over several steps does.
* A call over ``T`` steps is cut into blocks of ``b = min(K, T)`` steps, processed in order by a scan.
  As segments have ``K`` steps, at most one segment completes in a block, and every segment a block's
  steps belong to started at most ``K`` steps before the block, inside the block's window of
  ``K + b`` steps. A step of the block reads one of three memories: the one in force when the block
  starts, zeros (its segment started at a reset), or the memory written by the segment that completed
  earlier in this block. A block runs its window once, with the read tokens of the first two and of the
  memory the previous block wrote, and the write tokens. The steps that read a memory written in their
  own block get their outputs from the next block, where they are among the ``K`` steps before it and
  read that memory as the previous block's; those of the last block, from one more pass after the scan.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.envs.core.rarely import rarely_rows, select
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
        keys, values: ``[B, num_layers, M + K, H, D / H]`` f32, each layer's attention keys and values of
            the unfinished segment's read tokens (the first ``M`` slots) and steps (slot ``M + offset``);
            zeros where there is no such token (all of them when ``fill`` is 0). What a single step reads
            instead of recomputing the segment.
    """

    inputs: jax.Array
    fill: jax.Array
    memory: jax.Array
    keys: jax.Array
    values: jax.Array


class MaskedSelfAttention(nn.Module):
    """Multi-head self-attention of ``[B, N, D]`` tokens over ``P`` cached earlier tokens and themselves.

    Call with ``x [B, N, D]``, ``mask [B, N, P + N]`` and ``prefix``, the cached ``(keys, values)``
    ``[B, P, H, Dh]`` of the earlier tokens (None: ``P = 0``); returns the output ``[B, N, D]`` and the
    tokens' own ``(keys, values)`` ``[B, N, H, Dh]``.
    """

    num_heads: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, prefix=None):
        q, k, v = (head_projection(x, self.num_heads, self.dtype, name) for name in ("query", "key", "value"))
        keys, values = (k, v)
        if prefix is not None:
            keys, values = (jnp.concatenate([cached.astype(k.dtype), own], 1) for cached, own in zip(prefix, (k, v)))
        out = masked_attention(q, keys, values, mask[:, None])
        return merge_heads(out, x.shape[-1], self.dtype, "out"), (k, v)


class SegmentTransformer(nn.Module):
    """``num_layers`` pre-layernorm blocks (masked self-attention, MLP), residual stream in f32.

    Positions are learned embeddings added to the step tokens (their offset in the segment), so this
    part knows nothing of time: the mask says who sees whom.

    Call with ``x [B, N, D]``, ``mask [B, N, P + N]`` and ``prefix``, the cached ``(keys, values)``
    ``[B, num_layers, P, H, Dh]`` of ``P`` earlier tokens (None: ``P = 0``); returns the outputs
    ``[B, N, D]`` f32 and the tokens' own ``(keys, values)`` ``[B, num_layers, N, H, Dh]``.
    """

    num_layers: int
    num_heads: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, prefix=None):
        keys, values = [], []
        for layer in range(self.num_layers):
            normed = nn.LayerNorm(dtype=self.dtype, name=f"norm_{layer}")(x)
            cached = None if prefix is None else (prefix[0][:, layer], prefix[1][:, layer])
            attention = MaskedSelfAttention(self.num_heads, self.dtype, name=f"attention_{layer}")
            out, (k, v) = attention(normed, mask, cached)
            x = FeedForwardSublayer(dtype=self.dtype, name=f"feed_forward_{layer}")((x + out).astype(jnp.float32))
            keys.append(k)
            values.append(v)
        return x.astype(jnp.float32), (jnp.stack(keys, 1), jnp.stack(values, 1))


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
    # The steps before a block (the first K of its window) read as they did in their own block: those of the
    # segment running when the block starts are its keys (that segment reads the memory in force at the
    # start, or zeros), and those that read the memory written in the block before get their outputs here
    # (`READ_NEW` means the memory the previous block wrote). The carried steps read the memory in force.
    window_labels = stream_labels[:, window]  # [B, n, K + b]
    window_reads = jnp.pad(reads, ((0, 0), (size, pad)), constant_values=READ_START)[:, window]
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
    """The segment transformer with its memory embeddings. Called in a scan over the blocks of a call
    (``__call__``), with :meth:`after_completion` for the last block's steps that read a memory written in
    it; :meth:`step` is one step against the carried keys and values, :meth:`cache` computes those from the
    segment's inputs."""

    features: int
    segment_length: int
    memory_tokens: int
    num_layers: int
    num_heads: int
    dtype: Any = jnp.float32

    def setup(self):
        shape = (self.memory_tokens, self.features)
        self.read_embed = self.param("read_embed", nn.initializers.normal(0.02), shape)
        self.write_embed = self.param("write_embed", nn.initializers.normal(0.02), shape)
        self.transformer = SegmentTransformer(self.num_layers, self.num_heads, self.dtype)
        self.memory_norm = nn.LayerNorm()

    def __call__(self, memories, xs: tuple[jax.Array, BlockPlan]):
        """``memories``: the memory in force at the block start and the one the previous block wrote (zeros
        if none), ``[B, M, D]`` each; returns them for the next block and the outputs ``[B, K + b, D]`` of
        the window's steps (right only for those that read one of these two memories or zeros)."""
        memory, previous = memories
        tokens, plan = xs  # tokens [B, K + b, D]: the window's steps with their position embeddings
        m = self.memory_tokens
        zeros = jnp.zeros_like(memory)
        reads = (memory, zeros, previous)  # READ_START, READ_ZERO, READ_NEW: the groups of read tokens
        written_from = jnp.where((plan.write_read == READ_ZERO)[:, None, None], zeros, memory)
        window = jnp.concatenate([r + self.read_embed for r in reads] + [tokens, written_from + self.write_embed], 1)
        mask = segment_mask(plan.labels, plan.reads, len(reads), m, plan.write_label, plan.write_read)
        window, _ = self.transformer(window, mask)
        written = self.memory_norm(window[:, -m:])
        choice = plan.next_memory[:, None, None]
        memory = jnp.where(choice == READ_NEW, written, jnp.where(choice == READ_ZERO, zeros, memory))
        return (memory, written), window[:, len(reads) * m : -m]

    def after_completion(self, written: jax.Array, tokens: jax.Array, plan: BlockPlan) -> jax.Array:
        """Outputs ``[B, b, D]`` of the steps of a block (the last of a call) that read ``written``
        ``[B, M, D]``, the memory written earlier in that block (``READ_NEW``); zeros-read elsewhere."""
        size = self.segment_length
        labels, reads = plan.labels[:, size:], plan.reads[:, size:]
        after = reads == READ_NEW
        mask = segment_mask(jnp.where(after, labels, -1), jnp.where(after, 0, READ_NONE), 1, self.memory_tokens)
        tokens = jnp.concatenate([written + self.read_embed, tokens[:, size:]], 1)
        return self.transformer(tokens, mask)[0][:, self.memory_tokens :]

    def read_cache(self, memory: jax.Array):
        """Keys and values ``[B, layers, M, H, Dh]`` of the read tokens of ``memory`` (they see each other
        causally, nothing else): the first ``M`` slots of a segment's cache."""
        m = self.memory_tokens
        causal = jnp.broadcast_to(jnp.tril(jnp.ones((m, m), bool)), (memory.shape[0], m, m))
        return self.transformer(memory + self.read_embed, causal)[1]

    def step(self, cache, fill: jax.Array, token: jax.Array):
        """One step of the unfinished segment: its token ``[B, 1, D]`` (position embedding added) at offset
        ``fill [B]`` attends to the cached ``(keys, values)`` ``[B, layers, M + K, H, Dh]`` of the read tokens
        and the segment's earlier steps. Returns the output ``[B, 1, D]`` and the cache with this step's keys
        and values in slot ``M + fill``."""
        m, size = self.memory_tokens, self.segment_length
        batch = token.shape[0]
        slots = jnp.arange(size)
        seen = jnp.concatenate(
            [jnp.ones((batch, m), bool), slots[None] < fill[:, None], jnp.ones((batch, 1), bool)], 1
        )
        output, (k, v) = self.transformer(token, seen[:, None], cache)
        here = (jnp.arange(m + size) == m + fill[:, None])[:, None, :, None, None]  # [B, 1, M + K, 1, 1]
        return output, tuple(jnp.where(here, new.astype(c.dtype), c) for new, c in zip((k, v), cache))

    def write(self, memory: jax.Array, cache):
        """The memory ``[B, M, D]`` a complete segment writes: its write tokens (on ``memory``, the one it
        read) see the read tokens and every step in ``cache`` ``[B, layers, M + K, H, Dh]``, and each other."""
        m, size = self.memory_tokens, self.segment_length
        causal = jnp.tril(jnp.ones((m, m), bool))
        mask = jnp.concatenate([jnp.ones((m, m + size), bool), causal], 1)
        written, _ = self.transformer(
            memory + self.write_embed, jnp.broadcast_to(mask, (memory.shape[0],) + mask.shape), cache
        )
        return self.memory_norm(written)

    def cache(self, memory: jax.Array, inputs: jax.Array, fill: jax.Array, position: jax.Array):
        """The keys and values the carry holds for the unfinished segment: its ``fill [B]`` steps are the
        last slots of ``inputs [B, K, D]`` (no position embedding yet; ``position [K, D]``), it reads
        ``memory [B, M, D]``."""
        m, size = self.memory_tokens, self.segment_length
        slots = jnp.arange(size)
        steps = jnp.take_along_axis(inputs, ((slots[None] + size - fill[:, None]) % size)[..., None], 1) + position
        valid = slots[None] < fill[:, None]  # [B, K]: left-aligned, step i at offset i
        mask = segment_mask(jnp.where(valid, 0, -1), jnp.where(valid, 0, READ_NONE), 1, m)
        _, cache = self.transformer(jnp.concatenate([memory + self.read_embed, steps], 1), mask)
        return clear_cache(cache, fill, m)


def clear_cache(cache, fill: jax.Array, memory_tokens: int):
    """Zeros in every slot of ``cache`` ``(keys, values)`` ``[B, layers, M + K, H, Dh]`` that holds no token of
    a segment with ``fill [B]`` steps (the read tokens' slots too when ``fill`` is 0)."""
    size = cache[0].shape[2] - memory_tokens
    slot = jnp.arange(memory_tokens + size)
    kept = jnp.where(slot < memory_tokens, fill[:, None] > 0, slot - memory_tokens < fill[:, None])
    return tuple(jnp.where(kept[:, None, :, None, None], c, 0.0).astype(jnp.float32) for c in cache)


class RATE(MemoryModule):
    """RATE memory: segments of ``segment_length`` steps, ``memory_tokens`` tokens carried between them.

    See the module docstring for the token layout and how steps and sequences agree. Inputs are projected
    to ``features``; each step token gets a learned embedding of its offset in the segment; the transformer
    has ``num_layers`` pre-layernorm blocks of causal self-attention and an MLP; the written memory is
    layer-normalised, so it cannot grow over many segments. (The published model also attends to the
    previous segment's cached hidden states, as Transformer-XL does, and a later version gates the memory
    update; neither is here: the memory tokens are the only path between segments.)

    Cost: a single step (acting) runs its own token against the cached keys and values, ``O(M + K)``
    attention per layer; the ``M`` read tokens (where a segment starts) and the ``M`` write tokens (where it
    completes) run only for the copies of the batch at such a step (:func:`~mnemax.envs.core.rarely.rarely`),
    ``2M`` tokens per segment instead of per step. A call over ``T`` steps is a scan over ``T / K`` blocks,
    each one pass of ``2K + 4M`` tokens (``O((2K + 4M)^2)`` attention per layer), and one pass of ``K + M``
    tokens after it.

    When to choose it: when the cue and its use are far apart but the memory needed is a few items
    (T-Maze, key-to-door): attention inside a segment is precise like ``trxl``, and the memory tokens
    reach any distance at constant cost, which Transformer-XL's window cannot; but everything older than
    the segment must fit through ``memory_tokens`` vectors written once per segment.

    Shapes:
        inputs ``[T, B, D_in]``, resets ``[T, B]`` -> outputs ``[T, B, features]``; carry :class:`RATECarry`
        with ``inputs [B, K, features]``, ``fill [B]``, ``memory [B, memory_tokens, features]`` and the
        ``keys`` and ``values`` ``[B, num_layers, memory_tokens + K, num_heads, features / num_heads]``.

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
    projected_fields = ("keys", "values")  # the cache of the unfinished segment

    def __post_init__(self):
        super().__post_init__()
        check_heads(self, rotary_heads=False)
        check_positive(self, "segment_length", "memory_tokens", "num_layers")

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> RATECarry:
        slots = self.memory_tokens + self.segment_length
        cache = (batch_size, self.num_layers, slots, self.num_heads, self.features // self.num_heads)
        return RATECarry(
            inputs=jnp.zeros((batch_size, self.segment_length, self.features), jnp.float32),
            fill=jnp.zeros((batch_size,), jnp.int32),
            memory=jnp.zeros((batch_size, self.memory_tokens, self.features), jnp.float32),
            keys=jnp.zeros(cache, jnp.float32),
            values=jnp.zeros(cache, jnp.float32),
        )

    @nn.compact
    def __call__(self, carry: RATECarry, inputs: jax.Array, resets: jax.Array):
        check_sequence_inputs(inputs, resets)
        size, steps = self.segment_length, inputs.shape[0]
        x = nn.Dense(self.features, dtype=self.dtype, name="input")(inputs.swapaxes(0, 1)).astype(jnp.float32)
        position = self.param("position_embed", nn.initializers.normal(0.02), (size, self.features))
        settings = (self.features, size, self.memory_tokens, self.num_layers, self.num_heads, self.dtype)
        if steps == 0:  # the cache again, with these parameters
            keys, values = RATEBlock(*settings, name="blocks").cache(carry.memory, carry.inputs, carry.fill, position)
            carry, outputs = carry._replace(keys=keys, values=values), x
        elif steps == 1:  # acting: one token against the cache
            carry, outputs = self._step(RATEBlock(*settings, name="blocks"), carry, x[:, 0], resets[0], position)
        else:
            carry, outputs = self._sequence(settings, carry, x, resets, position)
        y = nn.LayerNorm(dtype=self.dtype, name="out_norm")(outputs)
        return carry, y.swapaxes(0, 1).astype(self.dtype)

    @nn.nowrap
    def _step(self, block: RATEBlock, carry: RATECarry, x: jax.Array, reset: jax.Array, position: jax.Array):
        """One step, ``x [B, D]`` projected: outputs ``[B, 1, D]`` (before the output norm)."""
        size, m = self.segment_length, self.memory_tokens
        start = reset[:, None, None]
        memory = jnp.where(start, 0.0, carry.memory)
        inputs = jnp.where(start, 0.0, carry.inputs)
        fill = jnp.where(reset, 0, carry.fill)
        # The read tokens' keys and values change only where a segment starts, and the write tokens only
        # matter where it completes: 2M tokens that a step computes for those copies alone, 1/K of the steps.
        starting = fill == 0
        empty = jnp.zeros(carry.keys.shape[:2] + (m,) + carry.keys.shape[3:], jnp.float32)
        reads = self._only_where(block, "read_cache", starting, (empty, empty), memory)
        padding = ((0, 0), (0, 0), (0, size), (0, 0), (0, 0))
        cache = tuple(
            jnp.where(starting[:, None, None, None, None], jnp.pad(r, padding), c)
            for r, c in zip(reads, (carry.keys, carry.values))
        )
        output, cache = block.step(cache, fill, (x + position[fill])[:, None])
        memory = self._only_where(block, "write", fill == size - 1, memory, memory, cache)
        fill = (fill + 1) % size
        inputs = jnp.where((fill > 0)[:, None, None], jnp.concatenate([inputs[:, 1:], x[:, None]], 1), 0.0)
        keys, values = clear_cache(cache, fill, m)
        return RATECarry(inputs=inputs, fill=fill, memory=memory, keys=keys, values=values), output

    @nn.nowrap
    def _only_where(self, block: RATEBlock, method: str, pred: jax.Array, otherwise, *operands):
        """``select(pred, block.<method>(*operands), otherwise)`` row by row (``pred [B]``), computed only for
        the rows where ``pred`` holds (:func:`~mnemax.envs.core.rarely.rarely_rows`, also under a trainer's
        vmap over seeds), unless the parameters are still being created."""
        if self.is_initializing():
            return select(pred, getattr(block, method)(*operands), otherwise)
        definition = block.clone(parent=None, name=None)
        apply = lambda params, *ops: definition.apply({"params": params}, *ops, method=method)  # noqa: E731
        return rarely_rows(pred, apply, otherwise, *operands, shared=self.variables["params"]["blocks"])

    @nn.nowrap
    def _sequence(self, settings, carry: RATECarry, x: jax.Array, resets: jax.Array, position: jax.Array):
        """A call over ``T > 1`` steps, ``x [B, T, D]`` projected: outputs ``[B, T, D]`` (before the output
        norm)."""
        size, steps = self.segment_length, x.shape[1]
        block = min(size, steps)
        plan, window, offsets, fill, keep = plan_blocks(resets.T, carry.fill, size, block)
        pad = window.shape[0] * block - steps
        stream = jnp.concatenate([carry.inputs, x, jnp.zeros((x.shape[0], pad, self.features))], axis=1)
        tokens = stream + position[offsets]
        windows = jnp.moveaxis(tokens[:, window], 1, 0)  # [n, B, K + b, D]

        # Rematerialised: the backward pass keeps only the memory between blocks and recomputes each block, so
        # what training stores grows with T by the memory tokens, not by every block's activations.
        scan = nn.scan(
            nn.remat(RATEBlock), variable_broadcast="params", split_rngs={"params": False}, in_axes=0, out_axes=0
        )
        blocks = scan(*settings, name="blocks")
        (memory, written), outputs = blocks((carry.memory, jnp.zeros_like(carry.memory)), (windows, plan))
        # A step that reads the memory written in its own block takes its output from the next block's window
        # (its first K steps, of which the last b are this block's), or, in the last block, from one more pass.
        last = blocks.after_completion(written, windows[-1], jax.tree_util.tree_map(lambda a: a[-1], plan))
        later = jnp.concatenate([outputs[1:, :, size - block : size], last[None]], 0)  # [n, B, b, D]
        reads_new = (plan.reads[:, :, size:] == READ_NEW)[..., None]
        outputs = jnp.where(reads_new, later, outputs[:, :, size:])
        outputs = jnp.moveaxis(outputs, 0, 1).reshape(x.shape[0], -1, self.features)[:, :steps]
        inputs = jnp.where(keep[..., None], stream[:, steps : steps + size], 0.0)
        fill = fill.astype(jnp.int32)
        # What a following single step reads; unused (and left out by XLA) where only the outputs matter.
        keys, values = blocks.cache(memory, inputs, fill, position)
        return RATECarry(inputs=inputs, fill=fill, memory=memory, keys=keys, values=values), outputs
