"""The two ways the recurrent modules run over time, both aware of episode resets.

* :func:`scan_with_resets` -- a sequential ``lax.scan`` of a nonlinear cell; :func:`gated_scan`, the same for
  the gated cells (GRU, LSTM) with a hand-written gradient.
* :func:`linear_recurrence` -- ``h_t = a_t * h_{t-1} + b_t`` evaluated in parallel with
  ``lax.associative_scan`` (FFM, the chunk states of linear attention). Depth ``O(log T)``, work ``O(T)``.
  :func:`chunked_recurrence` runs it piece by piece for states too large to keep for every step (Mamba).

In both, a reset at step ``t`` drops the carried state *before* step ``t`` is processed.

The initialisers at the end give the linear recurrences (linear attention, S5, Mamba, minGRU) their
initial time scales: a memory that starts out remembering over a spread of horizons trains much faster
on long-range tasks than one whose decays all start near 0.5.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from mnemax.memory_modules.base import reset_carry

Carry = Any


def time_unroll(unroll: int | None = None) -> int:
    """Steps per iteration of a sequential loop over time (``lax.scan``'s ``unroll``); ``None`` picks by backend.

    Every iteration of a loop on an accelerator has a fixed cost (its control flow and kernel launches)
    that a small step (a GRU step on a few hundred rows) does not hide; unrolled, one iteration runs several
    steps and XLA can fuse across them. The default, 8 on accelerators, was measured on an H200 (below); on
    the CPU unrolling only lengthened compilation, so the default there stays 1. The backend is
    ``jax.default_backend()``, the platform that computations go to unless placed elsewhere.
    """
    if unroll is None:
        return 1 if jax.default_backend() == "cpu" else ACCELERATOR_UNROLL
    if unroll < 1:
        raise ValueError(f"unroll must be >= 1 (None: by backend), got {unroll}")
    return unroll


# Measured on one H200 (benchmarks/results/scan_unroll_h200.md, PPO updates of the presets as they ship):
# unrolling both loops by 8 trains the `diagnostics` GRU 2.39x faster (16: 2.24x), its FFM 1.87x and the
# `tmaze` GRU 1.63x; pixel Memory Gym, bound by its CNN, gains 4%.
ACCELERATOR_UNROLL = 8


def scan_with_resets(
    cell: Callable[[Carry, Any], tuple[Carry, Any]], carry: Carry, xs: Any, resets: jax.Array, unroll: int | None = None
) -> tuple[Carry, Any]:
    """``lax.scan`` of ``cell(carry, x_t) -> (carry, y_t)`` over the leading axis of ``xs`` and ``resets``.

    Where ``resets[t, b]`` is True the carry of batch element ``b`` is set to zeros before step ``t``.
    Every leaf of ``carry`` must have the batch as its leading axis. ``unroll``: steps per loop iteration
    (:func:`time_unroll`; None picks by backend); it changes the speed, not the result.
    """
    zeros = jax.tree_util.tree_map(jnp.zeros_like, carry)

    def step(c, inputs):
        x, reset = inputs
        return cell(reset_carry(reset, c, zeros), x)

    return jax.lax.scan(step, carry, (xs, resets), unroll=time_unroll(unroll))


# How the gated cells' gradient is computed: "custom" (gated_scan's hand-written backward pass) or
# "autodiff" (JAX differentiating the scan of gated_step). The same gradients up to rounding
# (tests/test_memory_modules.py); speed only.
BACKWARDS = ("custom", "autodiff")


def check_backward(module: Any) -> None:
    """Raise a ValueError naming the module unless its ``backward`` field is one of :data:`BACKWARDS`."""
    if module.backward not in BACKWARDS:
        raise ValueError(f"{type(module).__name__}: backward must be one of {', '.join(BACKWARDS)}, got {module.backward!r}")


class GatedCell(Protocol):
    """The step of a gated recurrence for :func:`gated_scan`: the part after the recurrent product
    ``h_gates = h @ w_h + b_h`` (f32), and its backward pass. The carry's hidden state ``h`` (``hidden``) is
    what multiplies ``w_h``; every carry leaf is ``[B, F]``."""

    @staticmethod
    def hidden(carry: Carry) -> jax.Array: ...

    @staticmethod
    def with_hidden(carry: Carry, h: jax.Array) -> Carry:
        """``carry`` with its hidden-state leaf replaced by ``h``."""

    @staticmethod
    def forward(carry: Carry, x_gates: jax.Array, h_gates: jax.Array) -> tuple[Carry, jax.Array, Any]:
        """``(next carry, output [B, F], residuals)`` from the carry and both gate pre-activations (f32)."""

    @staticmethod
    def backward(d_carry: Carry, d_output: jax.Array, carry: Carry, residuals: Any) -> tuple[Carry, jax.Array, jax.Array]:
        """From the gradient of the next carry and of the output to ``(d carry (the direct paths, without
        the recurrent product), d x_gates, d h_gates)``; ``carry`` is the one the step started from."""


def _zero_rows(resets: jax.Array, carry: Carry) -> Carry:
    return jax.tree_util.tree_map(lambda c: jnp.where(resets[:, None], 0.0, c), carry)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 6, 7))
def gated_scan(cell: type, w_h, b_h, carry: Carry, x_gates: jax.Array, resets: jax.Array, dtype=jnp.float32, unroll=1):
    """A gated recurrence (GRU, LSTM) over time with a hand-written gradient: ``(final carry, outputs [T, B,
    F] f32)`` from the recurrent kernel ``w_h [F, G]`` and bias ``b_h [G]``, ``carry`` (leaves ``[B, F]``,
    zeros at a reset), the input's gate pre-activations ``x_gates [T, B, G]`` and ``resets [T, B]``
    (True: the carry is zeroed before that step). ``cell`` (:class:`GatedCell`) is the step; products run
    in ``dtype``, the gates in f32.

    Why by hand: differentiating a scan, JAX adds each step's outer product ``h_{t-1}^T dgates_t`` into the
    kernel's gradient inside the backward loop (a ``[F, G]`` accumulator read and written at every step).
    Here the backward loop does only the ``[B, G] x [G, F]`` product the chain rule needs, and the weight
    gradients are one product over all steps afterwards: a GRU-512 PPO update learned 1.46x faster on an
    H200 (benchmarks/results/ppo_profile_h200-variants.md).
    """
    return _gated_forward(cell, w_h, b_h, carry, x_gates, resets, dtype, unroll)[0]


def _recurrent_gates(cell, w_h, b_h, carry, dtype) -> jax.Array:
    """``h @ w_h`` in ``dtype``, plus ``b_h``, in f32."""
    return (cell.hidden(carry).astype(dtype) @ w_h.astype(dtype)).astype(jnp.float32) + b_h


def gated_step(cell: type, w_h, b_h, dtype=jnp.float32) -> Callable[[Carry, jax.Array], tuple[Carry, jax.Array]]:
    """One step of the recurrence of :func:`gated_scan`, ``(carry, x_gates) -> (carry, output)``, for
    :func:`scan_with_resets` (JAX differentiates it: ``backward="autodiff"``)."""

    def step(carry, x_gates):
        carry, output, _ = cell.forward(carry, x_gates.astype(jnp.float32), _recurrent_gates(cell, w_h, b_h, carry, dtype))
        return carry, output

    return step


def gated_recurrence(
    cell: type, backward: str, w_h, b_h, carry: Carry, x_gates: jax.Array, resets: jax.Array, dtype, unroll: int | None
) -> tuple[Carry, jax.Array]:
    """The gated ``cell`` over time with its gradient computed as ``backward`` says (:data:`BACKWARDS`):
    ``(final carry, outputs [T, B, F] in dtype)``; arguments as :func:`gated_scan`'s (``unroll`` None: by
    backend, :func:`time_unroll`)."""
    dtype = jnp.dtype(dtype)
    if backward == "custom":
        carry, outputs = gated_scan(cell, w_h, b_h, carry, x_gates, resets, dtype, time_unroll(unroll))
    else:
        carry, outputs = scan_with_resets(gated_step(cell, w_h, b_h, dtype), carry, x_gates, resets, unroll)
    return carry, outputs.astype(dtype)


def _gated_forward(cell, w_h, b_h, carry, x_gates, resets, dtype, unroll):
    def step(carry, inputs):
        x, reset = inputs
        start = _zero_rows(reset, carry)
        carry, output, residuals = cell.forward(start, x.astype(jnp.float32), _recurrent_gates(cell, w_h, b_h, start, dtype))
        return carry, (output, start, residuals)

    final, (outputs, starts, residuals) = jax.lax.scan(step, carry, (x_gates, resets), unroll=unroll)
    return (final, outputs), (starts, residuals)


def _gated_scan_fwd(cell, w_h, b_h, carry, x_gates, resets, dtype, unroll):
    result, saved = _gated_forward(cell, w_h, b_h, carry, x_gates, resets, dtype, unroll)
    return result, (w_h, b_h, x_gates, resets, saved)


def _gated_scan_bwd(cell, dtype, unroll, residuals, cotangents):
    w_h, b_h, x_gates, resets, (starts, saved) = residuals
    d_final, d_outputs = cotangents
    w_t = w_h.astype(dtype).T

    def step(d_carry, inputs):
        d_output, reset, start, saved = inputs
        d_direct, d_x, d_h_gates = cell.backward(d_carry, d_output, start, saved)
        d_hidden = cell.hidden(d_direct) + (d_h_gates.astype(dtype) @ w_t).astype(jnp.float32)
        return _zero_rows(reset, cell.with_hidden(d_direct, d_hidden)), (d_x, d_h_gates)

    d_final = jax.tree_util.tree_map(lambda d: d.astype(jnp.float32), d_final)
    d_carry, (d_x, d_h_gates) = jax.lax.scan(step, d_final, (d_outputs, resets, starts, saved), reverse=True, unroll=unroll)
    hidden = cell.hidden(starts).astype(dtype)
    d_w = jnp.einsum("tbf,tbg->fg", hidden, d_h_gates.astype(dtype), preferred_element_type=jnp.float32)
    return d_w.astype(w_h.dtype), d_h_gates.sum(axis=(0, 1)).astype(b_h.dtype), d_carry, d_x.astype(x_gates.dtype), None


gated_scan.defvjp(_gated_scan_fwd, _gated_scan_bwd)


@jax.jit
def linear_recurrence(decay: jax.Array, update: jax.Array, initial: jax.Array, resets: jax.Array) -> jax.Array:
    """All states of ``h_t = decay_t * h_{t-1} + update_t``, with ``h_{-1} = initial``, by an associative scan.

    Args:
        decay: ``[T, B, ...]``, broadcastable to ``update`` (e.g. ``[T, B, H, 1, 1]``); real or complex.
        update: ``[T, B, ...]``.
        initial: ``[B, ...]``, the state before step 0.
        resets: ``[T, B]`` bool; where True the carried state is dropped (``decay_t = 0``).

    Returns:
        ``[T, B, ...]``: ``h_t`` for every step; ``h[-1]`` is the state to carry to the next call.
    """
    mask = resets.reshape(resets.shape + (1,) * (update.ndim - resets.ndim))
    decay = jnp.where(mask, jnp.zeros((), decay.dtype), decay)
    # Folding the initial state into the first update makes the scan start from zero.
    update = update.at[0].add(decay[0] * initial)

    def combine(earlier, later):
        a1, b1 = earlier
        a2, b2 = later
        return a1 * a2, a2 * b1 + b2

    _, states = jax.lax.associative_scan(combine, (decay, update), axis=0)
    return states


def complex_diagonal_layer(
    u: jax.Array, decay: jax.Array, b: jax.Array, c: jax.Array, initial: jax.Array, resets: jax.Array, dtype: Any
) -> tuple[jax.Array, jax.Array]:
    """The core that the diagonal complex state-space layers (S5, LRU) share: the states
    ``x_t = decay * x_{t-1} + u_t @ b`` (``[T, B, P]`` complex64, :func:`linear_recurrence`) and their real
    read-out ``Re(x_t @ c)`` (``[T, B, H]`` float32), the matrix products computed in ``dtype``.

    ``u`` is ``[T, B, H]``, ``decay`` ``[P]``, ``b`` ``[H, P]`` and ``c`` ``[P, H]`` complex, ``initial``
    ``[B, P]``. Returns ``(read-out, states)``.
    """
    matmul = lambda a, w: (a.astype(dtype) @ w.astype(dtype)).astype(jnp.float32)  # noqa: E731
    update = jax.lax.complex(matmul(u, b.real), matmul(u, b.imag))
    states = linear_recurrence(decay, update, initial, resets)
    return matmul(states.real, c.real) - matmul(states.imag, c.imag), states


def chunked_recurrence(
    coefficients: Callable[[Any], tuple[jax.Array, jax.Array]],
    readout: Callable[[jax.Array, Any], Any],
    initial: jax.Array,
    xs: Any,
    resets: jax.Array,
    chunk_size: int | None,
) -> tuple[Any, jax.Array]:
    """:func:`linear_recurrence` read out chunk by chunk, for states too large to hold for every step.

    The ``T`` steps are cut into pieces of ``chunk_size`` (the last one shorter); a ``lax.scan`` over the
    pieces builds each piece's coefficients, runs its associative scan from the state the previous piece
    ended in and reads its states out, so only one piece's ``[chunk_size, B, ...]`` states exist at a time
    instead of ``[T, B, ...]``. The backward pass recomputes the whole pieces rather than storing their
    states (the shorter last piece is stored, and so is a single piece that covers the whole sequence).
    The outputs equal ``readout(linear_recurrence(...), xs)``.

    Args:
        coefficients: ``xs`` of ``n`` steps -> ``(decay, update)``, each ``[n, B, ...]`` (see
            :func:`linear_recurrence`).
        readout: ``(states [n, B, ...], xs of the same steps) -> outputs`` with a leading ``[n]`` axis.
        initial: ``[B, ...]``, the state before step 0.
        xs: a pytree of ``[T, B, ...]`` arrays.
        resets: ``[T, B]`` bool.
        chunk_size: steps per piece; ``None`` picks by backend (:func:`recurrence_chunk`).

    Returns:
        ``(outputs [T, ...], state after the last step [B, ...])``.
    """

    def piece(state, inputs):
        x, reset = inputs
        decay, update = coefficients(x)
        states = linear_recurrence(decay, update, state, reset)
        return states[-1], readout(states, x)

    chunk_size = recurrence_chunk(chunk_size)
    steps = resets.shape[0]
    if chunk_size >= steps:  # one piece (always for WHOLE_SEQUENCE), its states stored for the backward pass
        state, outputs = piece(initial, (xs, resets))
        return outputs, state
    whole = steps - steps % chunk_size
    state, outputs = initial, []
    if whole:
        split = lambda a: a[:whole].reshape((whole // chunk_size, chunk_size) + a.shape[1:])  # noqa: E731
        pieces = jax.tree_util.tree_map(split, (xs, resets))
        state, ys = jax.lax.scan(jax.checkpoint(piece, prevent_cse=False), state, pieces)
        outputs.append(jax.tree_util.tree_map(lambda a: a.reshape((whole,) + a.shape[2:]), ys))
    if whole < steps:
        state, ys = piece(state, jax.tree_util.tree_map(lambda a: a[whole:], (xs, resets)))
        outputs.append(ys)
    joined = jax.tree_util.tree_map(lambda *parts: jnp.concatenate(parts, axis=0), *outputs)
    return joined, state


def recurrence_chunk(chunk_size: int | None = None) -> int:
    """Steps per piece of :func:`chunked_recurrence`; ``None`` picks by backend (``jax.default_backend()``):
    the whole sequence at once on accelerators (:data:`WHOLE_SEQUENCE`), :data:`CPU_CHUNK` steps on the CPU.

    Pieces trade time for memory, and the trade differs by backend (Mamba, width 256, batch 16, T = 16384,
    forward + backward; benchmarks/results/memory_modules_h200.md, whose earlier version in git holds the
    whole-sequence row): on an H200 the whole sequence took 50.5 ms in 17.0 GB and 64-step pieces 161 ms
    in 4.8 GB; on the CPU 64-step pieces were faster (T = 1024: 3.4 s against 5.2 s) and T = 4096 ran out
    of memory without them.
    """
    if chunk_size is None:
        return CPU_CHUNK if jax.default_backend() == "cpu" else WHOLE_SEQUENCE
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 (None: by backend), got {chunk_size}")
    return chunk_size


CPU_CHUNK = 64
# No pieces: one associative scan over the whole sequence.
WHOLE_SEQUENCE = sys.maxsize


def timescale_bias(size: int, min_timescale: float, max_timescale: float) -> np.ndarray:
    """Biases ``[size]`` of a keep gate ``g = sigmoid(b)`` (the GRU's update gate, the LSTM's forget gate,
    a decay): channel ``i`` starts with ``g = 1 - 1 / tau_i``, ``tau`` log-spaced from ``min_timescale`` to
    ``max_timescale`` (both > 1), so an input fades to ``1/e`` of itself after about ``tau_i`` steps
    ("chrono" initialisation, Tallec & Ollivier 2018).

    With the usual zero bias every channel halves its memory at each step, so the gradient from a decision
    ``L`` steps after a cue shrinks like ``2^-L``; spread time scales let it through.
    """
    tau = np.geomspace(min_timescale, max(max_timescale, min_timescale), size)
    return np.log(tau - 1.0).astype(np.float32)


def timescale_bias_init(min_timescale: float, max_timescale: float):
    """An initialiser with :func:`timescale_bias` over the last axis."""

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.asarray(np.broadcast_to(timescale_bias(shape[-1], min_timescale, max_timescale), shape), dtype)

    return init


HIDDEN_INITS = ("orthogonal", "per_gate")
"""How a gated cell's recurrent kernel ``[F, G * F]`` (``G`` gates) starts; see :func:`hidden_kernel_init`."""


def check_hidden_init(module: Any) -> None:
    """Raise a ValueError naming the module unless its ``hidden_init`` field is one of :data:`HIDDEN_INITS`."""
    if module.hidden_init not in HIDDEN_INITS:
        name, choices = type(module).__name__, ", ".join(HIDDEN_INITS)
        raise ValueError(f"{name}: hidden_init must be one of {choices}, got {module.hidden_init!r}")


def hidden_kernel_init(how: str, gates: int):
    """The initialiser of a gated cell's recurrent kernel ``[F, G * F]``, ``how`` one of :data:`HIDDEN_INITS`.

    ``orthogonal`` draws one orthogonal matrix for all gates: its rows are orthonormal in ``G * F``
    dimensions, so each gate's ``F x F`` block has singular values spread over ``(0, 1)`` (mean about 0.5
    for three gates) and the hidden state's own path through each gate starts weak. ``per_gate`` draws an
    orthogonal block per gate (every singular value 1), as flax's ``GRUCell`` and ``OptimizedLSTMCell``
    (and so memorax) do. The blocks are drawn one after the other: batched QR decompositions have been seen
    to hang XLA's CPU runtime.
    """
    orthogonal = jax.nn.initializers.orthogonal()
    if how == "orthogonal":
        return orthogonal

    def init(key, shape, dtype=jnp.float32):
        rows, columns = shape
        keys = jax.random.split(key, gates)
        return jnp.concatenate([orthogonal(k, (rows, columns // gates), dtype) for k in keys], axis=-1)

    return init


def log_uniform_init(low: float, high: float):
    """``log(x)`` with ``x`` drawn log-uniformly from ``[low, high]``: the learnable log step of an SSM."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, np.log(low), np.log(high))

    return init
