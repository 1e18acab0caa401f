"""A selective state-space memory in the style of Mamba-2 (Dao & Gu 2024, "Transformers are SSMs"), trained
with the chunked state space duality (SSD) algorithm."""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.memory_modules.base import MemoryModule, check_positive, check_range, check_sequence_inputs, residual_stack
from mnemax.memory_modules.mamba import causal_conv, step_bias_init
from mnemax.memory_modules.scan import linear_recurrence


class Mamba2Carry(NamedTuple):
    """Carry of :class:`Mamba2`; every leaf has the batch as leading axis.

    Attributes:
        conv: ``[B, L, conv_size - 1, E + 2 N]`` f32, the last inputs (``x``, ``B``, ``C``) of each layer's
            causal convolution, oldest first; zeros where they belong to an episode that has ended.
        ssm: ``[B, L, heads, P, N]`` f32, the state of each layer's recurrence.
    """

    conv: jax.Array
    ssm: jax.Array


def segment_sum(log_decay: jax.Array) -> jax.Array:
    """``S[n, i, j] = sum_{j < k <= i} log_decay[n, k]`` for ``j <= i`` (0 above the diagonal).

    ``exp(S[n, i, j])`` is the decay from step ``j`` to step ``i`` of chunk ``n``. Taken, as Mamba-2's own
    kernels take it, as the difference of the chunk's running sum at ``i`` and ``j``: one ``[n, Q]`` sum
    and one elementwise pass over the ``[n, Q, Q]`` layout, where summing every entry from its own terms
    (a cumulative sum down the columns of a masked layout) costs a scan over that whole layout, forward
    and backward. The difference's error is a few units in the last place of the running sum, i.e.
    relative to ``|sum| ~ Q max |log_decay|`` rather than to ``S``; ``exp`` turns it into a relative
    error of about ``1e-7 |sum|`` on the decay (``1e-5`` for a sum of ``-100``, by which the decay is
    ``e^-100``). Entries above the diagonal are zeroed before anything exponentiates them.

    Args:
        log_decay: ``[n, Q, ...]``, chunks of ``Q`` steps.

    Returns:
        ``[n, Q, Q, ...]``.
    """
    size = log_decay.shape[1]
    causal = jnp.tril(jnp.ones((size, size), bool)).reshape((1, size, size) + (1,) * (log_decay.ndim - 2))
    running = jnp.cumsum(log_decay, axis=1)
    return jnp.where(causal, running[:, :, None] - running[:, None, :], 0.0)


def chunk_states(
    log_decay: jax.Array, writes: jax.Array, state: jax.Array, resets: jax.Array, dense_chunks: int = 0
) -> jax.Array:
    """The state at the end of every chunk: ``h_n = exp(log_decay_n) h_{n-1} + writes_n``, ``h_{-1} = state``,
    where a chunk that holds a reset drops ``h_{n-1}``.

    Up to ``dense_chunks`` chunks this is Mamba-2's own state passing, one matrix product: ``h_n = sum_{m <= n}
    D[n, m] writes_m + D[n, -1] state`` with ``D[n, m]`` the decay from the end of chunk ``m`` to the end of
    chunk ``n`` (:func:`segment_sum` over the chunks), zero across a reset. That is ``n^2 B H P N``
    multiply-adds (quadratic in the chunks) in a few kernels; more chunks take
    :func:`~mnemax.memory_modules.scan.linear_recurrence`, ``n log n`` work in ``~2 log2(n)`` levels of small
    kernels. Both give the same states.

    Args:
        log_decay: ``[n, B, H]``, ``<= 0``: each chunk's decay from its start to its end.
        writes: ``[n, B, H, P, N]``, what each chunk adds to the state by its end.
        state: ``[B, H, P, N]``, the state before chunk 0.
        resets: ``[n, B]`` bool, the chunks that hold a reset.
        dense_chunks: the most chunks for the matrix product.

    Returns:
        ``[n, B, H, P, N]``.
    """
    chunks = log_decay.shape[0]
    if chunks > dense_chunks:
        return linear_recurrence(jnp.exp(log_decay)[..., None, None], writes, state, resets)
    # Chunk m's write reaches the end of chunk n >= m unless a chunk in (m, n] holds a reset.
    episode = jnp.cumsum(resets, axis=0)  # [n, B]
    causal = jnp.tril(jnp.ones((chunks, chunks), bool))[..., None]
    live = causal & (episode[:, None] == episode[None, :])  # [n, n, B]
    decay = jnp.where(live[..., None], jnp.exp(segment_sum(log_decay[None])[0]), 0.0)  # [n, n, B, H]
    carried = jnp.where((episode == 0)[..., None], jnp.exp(jnp.cumsum(log_decay, axis=0)), 0.0)  # [n, B, H]
    return jnp.einsum("nmbh,mbhps->nbhps", decay, writes) + carried[..., None, None] * state


def ssd(
    x: jax.Array,
    log_decay: jax.Array,
    b: jax.Array,
    c: jax.Array,
    resets: jax.Array,
    state: jax.Array,
    chunk_size: int,
    dtype: Any = jnp.float32,
    dense_chunks: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Outputs of ``h_t = exp(log_decay_t) h_{t-1} + x_t b_t^T``, ``y_t = h_t c_t`` for every head, by SSD.

    ``h`` is ``[P, N]`` per head; its decay is one scalar per head and step, and ``b``, ``c`` are shared by
    the heads. A reset at ``t`` drops ``h_{t-1}`` (a zero decay), including the ``state`` carried in.

    The sequence is cut into chunks of ``Q = min(chunk_size, T)`` steps (the last one padded with steps
    that neither decay nor write). Inside a chunk the outputs are a masked matrix product, causal linear
    attention with a decay mask: ``y = (L o c b^T) x`` with ``L[i, j]`` the decay from ``j`` to ``i``
    (:func:`segment_sum`), zero across a reset. Between chunks, the ``[H, P, N]`` state at each chunk's end
    comes from :func:`chunk_states`, and each step adds what its chunk's starting state contributes.
    Resets enter as boolean masks, never as infinite log-decays, so no mask creates a NaN; every decay is
    ``exp`` of a non-positive number.

    Args:
        x: ``[T, B, H, P]``, the inputs already scaled by their steps (``Delta x``).
        log_decay: ``[T, B, H]``, ``<= 0`` (``Delta A``).
        b, c: ``[T, B, N]``.
        resets: ``[T, B]`` bool.
        state: ``[B, H, P, N]``, the state before step 0.
        chunk_size: steps per chunk (``O(T Q)`` memory inside chunks, ``T / Q`` states between them).
        dtype: dtype of the matrix products' operands; they accumulate, and the decays run, in f32.
        dense_chunks: the most chunks whose states :func:`chunk_states` computes as one matrix product.

    Returns:
        ``(outputs [T, B, H, P], final state [B, H, P, N])``, in f32.
    """
    f32 = lambda a: a.astype(jnp.float32)  # noqa: E731

    def product(spec, *operands):
        return jnp.einsum(spec, *(a.astype(dtype) for a in operands), preferred_element_type=jnp.float32)

    steps = x.shape[0]
    if steps == 1:  # acting: the plain update
        keep = jnp.where(resets[0][:, None], 0.0, jnp.exp(f32(log_decay[0])))  # [B, H]
        h = keep[..., None, None] * f32(state) + product("bhp,bs->bhps", x[0], b[0])
        return product("bhps,bs->bhp", h, c[0])[None], h

    size = min(chunk_size, steps)
    num_chunks = -(-steps // size)
    pad = num_chunks * size - steps

    def chunked(a):  # [T, ...] -> [n, Q, ...]; padding steps keep the state (log-decay 0) and write nothing
        a = jnp.pad(a, ((0, pad),) + ((0, 0),) * (a.ndim - 1))
        return a.reshape((num_chunks, size) + a.shape[1:])

    x, b, c, resets = chunked(x), chunked(b), chunked(c), chunked(resets)
    log_decay = chunked(f32(log_decay))  # [n, Q, B, H]
    episode = jnp.cumsum(resets, axis=1)  # [n, Q, B]: resets in the chunk up to each step

    # Inside a chunk: y_i = sum_{j <= i, same episode} exp(S_ij) (c_i . b_j) x_j.
    causal = jnp.tril(jnp.ones((size, size), bool))[None, :, :, None]
    same = causal & (episode[:, :, None] == episode[:, None, :])  # [n, Q, Q, B]
    segments = segment_sum(log_decay)  # [n, Q, Q, B, H]
    mask = jnp.where(same[..., None], jnp.exp(segments), 0.0)
    scores = product("nibs,njbs->nijb", c, b)
    inside = product("nijbh,njbhp->nibhp", scores[..., None] * mask, x)

    # What each chunk writes into the state at its end (its steps after its last reset), and how much of
    # the state before it survives the chunk (nothing once it holds a reset).
    to_end = jnp.where((episode == episode[:, -1:])[..., None], jnp.exp(segments[:, -1]), 0.0)  # [n, Q, B, H]
    writes = product("njbhp,njbs->nbhps", to_end[..., None] * f32(x), b)  # [n, B, H, P, N]
    from_start = jnp.cumsum(log_decay, axis=1)  # [n, Q, B, H]: decay from the chunk's start through step i
    ends = chunk_states(from_start[:, -1], writes, f32(state), episode[:, -1] > 0, dense_chunks)
    starts = jnp.concatenate([f32(state)[None], ends[:-1]], axis=0)  # [n, B, H, P, N]

    # The chunk's starting state reaches only the steps before the chunk's first reset.
    carried = jnp.where((episode == 0)[..., None], jnp.exp(from_start), 0.0)  # [n, Q, B, H]
    before = product("nibs,nbhps->nibhp", c, starts) * carried[..., None]
    out = (inside + before).reshape((num_chunks * size,) + inside.shape[2:])[:steps]
    return out, ends[-1]


class Mamba2Layer(nn.Module):
    """One Mamba-2 block on ``[T, B, F]`` (time-major); state :class:`Mamba2Carry` without the layer axis.

    With ``E = expand * F`` channels in ``heads = E / P`` heads of ``P = head_dim`` and ``N`` states::

        z, x, B_t, C_t, dt = split(W_in u_t)                 # [E], [E], [N], [N], [heads]
        x, B_t, C_t = silu(causal_conv(x, B_t, C_t) + b)     # short causal convolution
        Delta       = softplus(dt + b_step)                  # [heads], a step per head, selective
        h_t         = exp(Delta A) h_{t-1} + (Delta x) B_t^T  # [heads, P, N], A = -exp(A_log) < 0 per head
        y_t         = h_t C_t + D x                          # [heads, P] -> [E]
        out         = W_out RMSNorm(y_t * silu(z))           # gated RMSNorm

    Unlike Mamba's decay per channel and state, the decay is one scalar per head, so the sequence runs as
    matrix products inside chunks of ``chunk_size`` steps and a short recurrence over the chunks' states
    (:func:`ssd`); acting with ``T = 1`` is the plain update. ``B`` and ``C`` are shared by all heads (one
    group). Every decay is in ``[0, 1)``, so ``h`` stays bounded.
    """

    state_size: int
    head_dim: int
    expand: int
    conv_size: int
    chunk_size: int
    min_step: float
    max_step: float
    dense_chunks: int = 0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, u: jax.Array, state: Mamba2Carry, resets: jax.Array):
        conv_state, ssm_state = state
        steps, batch, features = u.shape
        n, p = self.state_size, self.head_dim
        channels = self.expand * features
        heads = channels // p
        dense = lambda size, name: nn.Dense(size, dtype=self.dtype, use_bias=False, name=name)  # noqa: E731

        projected = dense(2 * channels + 2 * n + heads, "in")(u).astype(jnp.float32)
        z, xbc, step = jnp.split(projected, [channels, 2 * channels + 2 * n], axis=-1)
        # The torch Conv1d default: uniform in +-1/sqrt(kernel size) for a depthwise kernel.
        kernel = self.param(
            "conv_kernel", nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"), (self.conv_size, xbc.shape[-1])
        )
        xbc, conv_state = causal_conv(xbc, conv_state, kernel, resets)
        xbc = nn.silu(xbc + self.param("conv_bias", nn.initializers.zeros_init(), (xbc.shape[-1],)))
        x, b, c = jnp.split(xbc, [channels, channels + n], axis=-1)
        x = x.reshape(steps, batch, heads, p)

        step = jax.nn.softplus(step + self.param("step_bias", step_bias_init(self.min_step, self.max_step), (heads,)))
        # A in [1, 16] per head, as Mamba-2 initialises it: horizons from 1 / (16 max_step) to 1 / min_step.
        a_init = lambda key, shape: jnp.log(jax.random.uniform(key, shape, minval=1.0, maxval=16.0))  # noqa: E731
        a_log = self.param("a_log", a_init, (heads,))
        log_decay = step * -jnp.exp(a_log)  # [T, B, heads]

        y, ssm_state = ssd(
            x * step[..., None], log_decay, b, c, resets, ssm_state, self.chunk_size, self.dtype, self.dense_chunks
        )
        y = y + self.param("d", nn.initializers.ones_init(), (heads,))[:, None] * x
        y = nn.RMSNorm(name="norm")(y.reshape(steps, batch, channels) * nn.silu(z))
        return dense(features, "out")(y), Mamba2Carry(conv_state, ssm_state)


class Mamba2(MemoryModule):
    """Mamba-2 memory: an input projection, ``num_layers`` pre-layernorm Mamba-2 blocks with residuals (see
    :class:`Mamba2Layer`), a final LayerNorm.

    Selective like ``mamba`` (the step ``Delta``, ``B`` and ``C`` are functions of the input), but the
    decay is one scalar per head and step instead of one per channel and state. That restriction lets
    training run the state space duality algorithm (:func:`ssd`): matrix products inside chunks of
    ``chunk_size`` steps and a recurrence over only ``T / chunk_size`` chunk states, so no per-step
    ``[E, N]`` state is ever formed, and the state can be larger (``N = 64`` by default against ``mamba``'s
    16). Acting with ``T = 1`` is the plain update. The short causal convolution keeps its last
    ``conv_size - 1`` inputs in the carry; resets clear them along with the SSM state.

    When to choose it: where ``mamba`` fits (what to remember depends on the observation) but on long
    sequences, or with a larger state; prefer ``mamba`` when channels need their own decays.

    Shapes:
        inputs ``[T, B, D_in]``, resets ``[T, B]`` -> outputs ``[T, B, features]``; carry
        :class:`Mamba2Carry` with ``conv [B, num_layers, conv_size - 1, E + 2 state_size]`` and
        ``ssm [B, num_layers, heads, head_dim, state_size]``, both f32, ``E = expand * features``,
        ``heads = E / head_dim``.

    Attributes:
        features: model width ``F`` (and output width).
        state_size: ``N``, the size of ``B`` and ``C``: states per channel.
        head_dim: ``P``, channels per head (per decay); ``expand * features`` must be divisible by it.
        expand: ``E / F``.
        conv_size: kernel of the causal convolution; 1 means no mixing over time before the SSM.
        num_layers: stacked blocks.
        chunk_size: steps per chunk of the training algorithm; speed and memory only (``O(T chunk_size)``
            inside chunks against ``T / chunk_size`` states between them).
        min_step, max_step: range of the initial ``Delta``.
        dense_chunks: speed only: up to this many chunks, the states between chunks come from one matrix
            product over every pair of chunks (quadratic in them) instead of an associative scan
            (:func:`chunk_states`); 0 always scans.
        dtype: dtype of the matrix products; the recurrence, the decays and the carry run in f32.
    """

    features: int
    state_size: int = 64
    head_dim: int = 64
    expand: int = 2
    conv_size: int = 4
    num_layers: int = 1
    chunk_size: int = 64
    min_step: float = 1e-3
    max_step: float = 1e-1
    dense_chunks: int = 0
    dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "state_size", "head_dim", "expand", "conv_size", "num_layers", "chunk_size")
        check_range(self, "min_step", "max_step", above=0.0)
        if self.dense_chunks < 0:
            raise ValueError(f"Mamba2: dense_chunks must be >= 0 (0 always scans), got {self.dense_chunks}")
        channels = self.expand * self.features
        if channels % self.head_dim:
            raise ValueError(
                f"Mamba2: expand * features ({self.expand} * {self.features} = {channels}) must be divisible by "
                f"head_dim ({self.head_dim})"
            )

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> Mamba2Carry:
        channels = self.expand * self.features
        heads, conv_channels = channels // self.head_dim, channels + 2 * self.state_size
        return Mamba2Carry(
            conv=jnp.zeros((batch_size, self.num_layers, self.conv_size - 1, conv_channels), jnp.float32),
            ssm=jnp.zeros((batch_size, self.num_layers, heads, self.head_dim, self.state_size), jnp.float32),
        )

    @nn.compact
    def __call__(self, carry: Mamba2Carry, inputs: jax.Array, resets: jax.Array):
        check_sequence_inputs(inputs, resets)

        def layer(i):
            sizes = (self.state_size, self.head_dim, self.expand, self.conv_size, self.chunk_size)
            return Mamba2Layer(*sizes, self.min_step, self.max_step, self.dense_chunks, self.dtype, name=f"block_{i}")

        return residual_stack(inputs, carry, resets, layer, self.num_layers, self.features, self.dtype)
