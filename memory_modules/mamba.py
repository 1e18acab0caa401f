"""A selective state-space memory in the style of Mamba (Gu & Dao 2023), trained with an associative scan."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.memory_modules.base import MemoryModule, check_positive, check_range, check_sequence_inputs, residual_stack
from mnemax.memory_modules.scan import chunked_recurrence, linear_recurrence, log_uniform_init, time_unroll

# How a Mamba layer runs its recurrence over a sequence (SelectiveSSMLayer.scan): the same outputs either way.
SCANS = ("associative", "blocks")
# Steps per block of the "blocks" scan when ``chunk_size`` is None.
BLOCK_STEPS = 64


class MambaCarry(NamedTuple):
    """Carry of :class:`Mamba`; every leaf has the batch as leading axis.

    Attributes:
        conv: ``[B, L, conv_size - 1, E]`` f32, the last inputs of each layer's causal convolution, oldest
            first; zeros where they belong to an episode that has ended.
        ssm: ``[B, L, E, N]`` f32, the state of each layer's recurrence.
    """

    conv: jax.Array
    ssm: jax.Array


def causal_conv(x: jax.Array, cache: jax.Array, kernel: jax.Array, resets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Depthwise causal convolution over time that never reaches across an episode start.

    ``y_t = sum_j kernel[j] * x_{t-j}`` over the ``x_{t-j}`` of the episode of step ``t``; earlier steps
    count as zeros, as at the start of a sequence.

    Args:
        x: ``[T, B, E]``.
        cache: ``[B, K - 1, E]``, the inputs before step 0 (zeros where they are from an ended episode).
        kernel: ``[K, E]``; ``kernel[0]`` weights the current step.
        resets: ``[T, B]`` bool.

    Returns:
        ``(y [T, B, E], next cache [B, K - 1, E])``.
    """
    size, steps = kernel.shape[0], x.shape[0]
    stream = jnp.concatenate([cache.swapaxes(0, 1).astype(x.dtype), x], axis=0)  # [K - 1 + T, B, E]
    # The cache holds only the episode running at step 0 (label 0); each reset starts a new label.
    episode = jnp.concatenate([jnp.zeros((size - 1,) + resets.shape[1:], jnp.int32), jnp.cumsum(resets, 0)], 0)
    y = jnp.zeros_like(x)
    for j in range(size):
        start = size - 1 - j
        same = (episode[start : start + steps] == episode[size - 1 :])[..., None]
        y = y + jnp.where(same, stream[start : start + steps], 0) * kernel[j]
    tail_same = (episode[steps:] == episode[-1:])[..., None]
    return y, jnp.where(tail_same, stream[steps:], 0).swapaxes(0, 1)


def discretise(a: jax.Array, step: jax.Array, x: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(exp(Delta A), Delta x B)``, each ``[..., E, N]``: the decay and update of a step (``step`` and ``x``
    ``[..., E]``, ``b`` ``[..., N]``, ``a`` ``[E, N]``)."""
    return jnp.exp(step[..., None] * a), (step * x)[..., None] * b[..., None, :]


def selective_scan_blocks(
    step: jax.Array,
    x: jax.Array,
    b: jax.Array,
    c: jax.Array,
    a: jax.Array,
    initial: jax.Array,
    resets: jax.Array,
    block: int,
) -> tuple[jax.Array, jax.Array]:
    """Mamba's recurrence ``h_t = exp(Delta_t A) h_{t-1} + Delta_t x_t B_t``, ``y_t = h_t C_t``, in blocks.

    The associative scan over the whole sequence reads and writes the ``[T, B, E, N]`` states once per
    level (``log2 T`` levels). Here they are touched a few times in all, because every decay is
    ``exp(Delta_t A)`` with one ``A`` for all steps, so a block's decays multiply to ``exp(A sum Delta)``:

    1. each block's end state from a zero start, ``sum_s exp(A (S_end - S_s)) Delta_s x_s B_s`` with ``S``
       the running sum of ``Delta`` in the block (one fused reduction, recomputed in the backward pass);
    2. the states at the block starts, by a scan over the ``T / block`` blocks;
    3. every step's state and output by a sequential scan over the ``block`` steps of all blocks at once,
       each block from its start state.

    Args:
        step: ``[T, B, E]`` the steps ``Delta`` (> 0); x: ``[T, B, E]``; b, c: ``[T, B, N]``;
        a: ``[E, N]`` (< 0); initial: ``[B, E, N]`` the state before step 0; resets: ``[T, B]`` bool (the
        state is zeroed before a step where True); block: steps per block.

    Returns:
        ``(y [T, B, E], state after the last step [B, E, N])``, all f32.
    """
    steps, batch = resets.shape
    block = min(block, steps)  # a short call (acting: one step) is one block of its own length
    blocks = -(-steps // block)
    # Padding steps have Delta = 0: decay 1 and no update, so the final state passes through them.
    pad = lambda v: jnp.pad(v, [(0, blocks * block - steps)] + [(0, 0)] * (v.ndim - 1))  # noqa: E731
    step, x, b, c, resets = (pad(v).reshape((blocks, block) + v.shape[1:]) for v in (step, x, b, c, resets))
    update = step * x  # [blocks, block, B, E]
    since = jnp.cumsum(step, axis=1)
    offsets = jnp.arange(block)[None, :, None]
    last_reset = jnp.max(jnp.where(resets, offsets, -1), axis=1, keepdims=True)  # [blocks, 1, B]

    @jax.checkpoint
    def end_state(to_end, update, b, live):  # [blocks, B, E, N]; the [blocks, block, B, E, N] terms never stored
        terms = jnp.exp(to_end[..., None] * a) * update[..., None] * b[..., None, :]
        return jnp.sum(jnp.where(live[..., None, None], terms, 0.0), axis=1)

    local_end = end_state(since[:, -1:] - since, update, b, offsets >= last_reset)
    through = jnp.where(jnp.any(resets, axis=1)[..., None, None], 0.0, jnp.exp(since[:, -1, ..., None] * a))
    ends = linear_recurrence(through, local_end, initial, jnp.zeros((blocks, batch), bool))
    starts = jnp.concatenate([initial[None], ends[:-1]], axis=0)

    def advance(h, inputs):  # one step of every block
        step, x, b, c, reset = inputs
        decay, update = discretise(a, step, x, b)
        h = decay * jnp.where(reset[..., None, None], 0.0, h) + update
        return h, jnp.einsum("kben,kbn->kbe", h, c)

    by_step = lambda v: v.swapaxes(0, 1)  # noqa: E731
    _, y = jax.lax.scan(
        jax.checkpoint(advance), starts, tuple(map(by_step, (step, x, b, c, resets))), unroll=time_unroll()
    )
    return by_step(y).reshape((blocks * block,) + y.shape[2:])[:steps], ends[-1]


def step_bias_init(min_step: float, max_step: float):
    """Bias that makes ``softplus(bias) = Delta`` with ``Delta`` log-uniform in ``[min_step, max_step]``."""
    log_step = log_uniform_init(min_step, max_step)

    def init(key, shape, dtype=jnp.float32):
        step = jnp.exp(log_step(key, shape, dtype))
        return step + jnp.log(-jnp.expm1(-step))  # inverse of softplus

    return init


class SelectiveSSMLayer(nn.Module):
    """One Mamba block on ``[T, B, H]`` (time-major); state :class:`MambaCarry` without the layer axis.

    With ``E = expand * H`` channels and ``N`` states per channel::

        x, z        = split(W_in u_t)                             # [E] each
        x           = silu(causal_conv(x) + b)                    # short causal convolution
        r, B_t, C_t = split(W_select x)                           # [ceil(H / 16)], [N], [N]: input-dependent
        Delta       = softplus(W_step r + b_step)                 # [E], a step per channel, also selective
        h_t         = exp(Delta A) * h_{t-1} + Delta * x * B_t    # [E, N], A = -exp(A_log) < 0, diagonal
        y_t         = (h_t C_t + D x) * silu(z)                   # gated output
        out         = W_out y_t

    The recurrence is linear in ``h`` with input-dependent coefficients. With ``scan="associative"`` the
    sequence is one associative scan, run ``chunk_size`` steps at a time where the ``[T, B, E, N]`` states
    of the whole sequence would cost too much memory (by default on the CPU:
    :func:`~mnemax.memory_modules.scan.recurrence_chunk`); with ``scan="blocks"`` it is
    :func:`selective_scan_blocks` over blocks of ``chunk_size`` steps (default :data:`BLOCK_STEPS`). Both
    give the same outputs; they differ in speed and memory. Every decay ``exp(Delta A)`` is in ``(0, 1)``,
    so ``h`` stays bounded.
    """

    state_size: int
    expand: int
    conv_size: int
    min_step: float
    max_step: float
    chunk_size: int | None = None
    dtype: Any = jnp.float32
    scan: str = "associative"

    @nn.compact
    def __call__(self, u: jax.Array, state: MambaCarry, resets: jax.Array):
        conv_state, ssm_state = state
        features, n = u.shape[-1], self.state_size
        channels, rank = self.expand * features, math.ceil(features / 16)
        dense = lambda size, name, **kw: nn.Dense(size, dtype=self.dtype, name=name, **kw)  # noqa: E731
        f32 = lambda a: a.astype(jnp.float32)  # noqa: E731

        x, z = jnp.split(f32(dense(2 * channels, "in", use_bias=False)(u)), 2, axis=-1)
        # The torch Conv1d default: uniform in +-1/sqrt(kernel size) for a depthwise kernel.
        kernel = self.param(
            "conv_kernel", nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"), (self.conv_size, channels)
        )
        x, conv_state = causal_conv(x, conv_state, kernel, resets)
        x = nn.silu(x + self.param("conv_bias", nn.initializers.zeros_init(), (channels,)))

        step_low, b, c = jnp.split(f32(dense(rank + 2 * n, "select", use_bias=False)(x)), [rank, rank + n], axis=-1)
        step = jax.nn.softplus(
            f32(dense(channels, "step", bias_init=step_bias_init(self.min_step, self.max_step))(step_low))
        )
        # A_log = log(1..N) per channel: the S4D-real initialisation used by Mamba.
        a_log = self.param(
            "a_log", lambda key, shape: jnp.log(jnp.broadcast_to(jnp.arange(1, n + 1.0), shape)), (channels, n)
        )
        a = -jnp.exp(a_log)

        if self.scan == "blocks":
            block = BLOCK_STEPS if self.chunk_size is None else self.chunk_size
            y, ssm_state = selective_scan_blocks(step, x, b, c, a, ssm_state, resets, block)
        else:

            def coefficients(inputs):  # [n, B, E, N] each, built one piece of the sequence at a time
                step, x, b, _ = inputs
                return discretise(a, step, x, b)

            readout = lambda states, inputs: jnp.einsum("tben,tbn->tbe", states, inputs[3])  # noqa: E731
            y, ssm_state = chunked_recurrence(
                coefficients, readout, ssm_state, (step, x, b, c), resets, self.chunk_size
            )
        y = (y + self.param("d", nn.initializers.ones_init(), (channels,)) * x) * nn.silu(z)
        return dense(features, "out", use_bias=False)(y), MambaCarry(conv_state, ssm_state)


class Mamba(MemoryModule):
    """Selective SSM memory: an input projection, ``num_layers`` pre-layernorm Mamba blocks with
    residuals (see :class:`SelectiveSSMLayer`), a final LayerNorm.

    Unlike ``s5``/``ffm``, the decay and the write of every step depend on the input (``Delta``, ``B``,
    ``C`` are functions of ``x_t``), so the memory can hold a cue for as long as nothing relevant comes and
    overwrite it on demand. Training runs one associative scan per layer (in pieces of ``chunk_size`` on the
    CPU, see :class:`SelectiveSSMLayer`); acting with ``T = 1`` is the plain update. The short causal convolution keeps its last
    ``conv_size - 1`` inputs in the carry; resets clear them along with the SSM state.

    When to choose it: tasks where what to remember depends on the observation (key-to-door, counting,
    recall of one item among distractors); it costs ``E * N`` states per layer, ``N = state_size`` times
    the memory traffic of ``min_gru``, so prefer ``s5``/``ffm`` when a fixed decay profile suffices.

    Shapes:
        inputs ``[T, B, D_in]``, resets ``[T, B]`` -> outputs ``[T, B, features]``; carry
        :class:`MambaCarry` with ``conv [B, num_layers, conv_size - 1, E]`` and
        ``ssm [B, num_layers, E, state_size]``, both f32, ``E = expand * features``.

    Attributes:
        features: model width ``H`` (and output width).
        state_size: ``N``, states per channel.
        expand: ``E / H`` (Mamba uses 2; 1 halves the cost of the scan).
        conv_size: kernel of the causal convolution; 1 means no mixing over time before the scan.
        num_layers: stacked blocks.
        min_step, max_step: range of the initial ``Delta``.
        chunk_size: with ``scan="associative"``, steps per piece of the training scan
            (:func:`~mnemax.memory_modules.scan.chunked_recurrence`): only one piece's ``[chunk_size, B, E, N]``
            states are held at a time; ``None``: the whole sequence on accelerators, 64 steps on the CPU
            (:func:`~mnemax.memory_modules.scan.recurrence_chunk`). With ``scan="blocks"``, steps per block
            (``None``: :data:`BLOCK_STEPS`). Speed and memory only.
        dtype: dtype of the matrix products; the recurrence and the carry run in f32.
        scan: how training runs the recurrence over a sequence, one of :data:`SCANS` (see
            :class:`SelectiveSSMLayer`); speed and memory only, the outputs are the same.
    """

    features: int
    state_size: int = 16
    expand: int = 1
    conv_size: int = 4
    num_layers: int = 1
    min_step: float = 1e-3
    max_step: float = 1e-1
    chunk_size: int | None = None
    dtype: Any = jnp.float32
    scan: str = "associative"

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "state_size", "expand", "conv_size", "num_layers", "chunk_size")
        check_range(self, "min_step", "max_step", above=0.0)
        if self.scan not in SCANS:
            raise ValueError(f"Mamba: scan must be one of {', '.join(SCANS)}, got {self.scan!r}")

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> MambaCarry:
        channels = self.expand * self.features
        return MambaCarry(
            conv=jnp.zeros((batch_size, self.num_layers, self.conv_size - 1, channels), jnp.float32),
            ssm=jnp.zeros((batch_size, self.num_layers, channels, self.state_size), jnp.float32),
        )

    @nn.compact
    def __call__(self, carry: MambaCarry, inputs: jax.Array, resets: jax.Array):
        check_sequence_inputs(inputs, resets)

        def layer(i):
            sizes = (self.state_size, self.expand, self.conv_size, self.min_step, self.max_step, self.chunk_size)
            return SelectiveSSMLayer(*sizes, self.dtype, self.scan, name=f"block_{i}")

        return residual_stack(inputs, carry, resets, layer, self.num_layers, self.features, self.dtype)
