"""Gated recurrent unit with in-scan episode resets and a hand-written backward pass."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.memory_modules.base import MemoryModule, check_positive, check_sequence_inputs
from mnemax.memory_modules.scan import scan_with_resets, time_unroll, timescale_bias

# How the GRU's gradient is computed: "custom" (gru_scan's backward pass: per step only the one recurrent
# product the chain rule needs, the weight gradients as one product over all steps afterwards) or
# "autodiff" (JAX differentiating the scan, which also adds each step's outer product into the weight
# gradient inside the loop). The same gradients up to rounding (tests/test_memory_modules.py).
BACKWARDS = ("custom", "autodiff")


class GRU(MemoryModule):
    """A GRU (Cho et al. 2014, the PyTorch/cuDNN gate layout) scanned over time.

    The input projections of all ``T`` steps are one matrix product before the scan, so the sequential
    part does only the ``[B, F] x [F, 3F]`` recurrent product per step.

    Attributes:
        features: hidden size ``F``; outputs are ``[T, B, F]`` and the carry is ``[B, F]``.
        max_timescale: if set, the update gate starts biased so that the units' memory time scales
            spread log-uniformly over ``[2, max_timescale]`` steps (see
            :func:`~mnemax.memory_modules.scan.timescale_bias`); 0 starts every gate at 1/2.
        unroll: steps per iteration of the loop over time (None: by backend, see
            :func:`~mnemax.memory_modules.scan.time_unroll`); speed only.
        dtype: dtype of the matrix products (``jnp.bfloat16`` halves memory traffic); the carry stays f32.
        backward: how the gradient is computed (:data:`BACKWARDS`); speed only.
    """

    features: int
    max_timescale: int | None = None
    unroll: int | None = None
    dtype: Any = jnp.float32
    backward: str = "custom"

    def _hidden_bias_init(self, key, shape, dtype=jnp.float32):
        """Zeros, except the update-gate block (``[r, z, n]`` layout) with ``max_timescale`` set."""
        del key
        bias = jnp.zeros(shape, dtype)
        if self.max_timescale:
            bias = bias.at[self.features : 2 * self.features].set(timescale_bias(self.features, 2.0, self.max_timescale))
        return bias

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "max_timescale", "unroll")
        if self.backward not in BACKWARDS:
            raise ValueError(f"GRU: backward must be one of {', '.join(BACKWARDS)}, got {self.backward!r}")

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.features), jnp.float32)

    @nn.compact
    def __call__(self, carry: jax.Array, inputs: jax.Array, resets: jax.Array):
        check_sequence_inputs(inputs, resets)
        f = self.features
        input_gates = nn.Dense(3 * f, dtype=self.dtype, name="input")(inputs)
        w_h = self.param("hidden_kernel", nn.initializers.orthogonal(), (f, 3 * f))
        b_h = self.param("hidden_bias", self._hidden_bias_init, (3 * f,))
        if self.backward == "custom":
            carry, outputs = gru_scan(w_h, b_h, carry, input_gates, resets, jnp.dtype(self.dtype), time_unroll(self.unroll))
            return carry, outputs.astype(self.dtype)
        w_h, b_h = w_h.astype(self.dtype), b_h.astype(self.dtype)

        def cell(h, x_gates):
            h, _ = _gru_step(h, x_gates, w_h, b_h, self.dtype)
            return h, h

        carry, outputs = scan_with_resets(cell, carry, input_gates, resets, self.unroll)
        return carry, outputs.astype(self.dtype)


def _gru_step(h, x_gates, w_h, b_h, dtype):
    """One GRU step from ``h [B, F]`` (f32) and the input's gates ``[B, 3F]``: ``(h_next, (r, z, n, hn))``,
    the gates kept for the backward pass. The products run in ``dtype``, the gates in f32."""
    h_gates = h.astype(dtype) @ w_h.astype(dtype) + b_h.astype(dtype)
    xr, xz, xn = jnp.split(x_gates.astype(jnp.float32), 3, axis=-1)
    hr, hz, hn = jnp.split(h_gates.astype(jnp.float32), 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    return (1.0 - z) * n + z * h, (r, z, n, hn)


def _masked(resets, h):
    """``h [B, F]`` with the rows where ``resets [B]`` is True set to zero."""
    return jnp.where(resets[:, None], 0.0, h)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def gru_scan(w_h, b_h, h0, x_gates, resets, dtype=jnp.dtype(jnp.float32), unroll=1):
    """The GRU over time: ``(h_T [B, F], outputs [T, B, F] f32)`` from the recurrent kernel ``w_h [F, 3F]``,
    bias ``b_h [3F]``, carry ``h0 [B, F]``, the input's gates ``x_gates [T, B, 3F]`` (``[r, z, n]``) and
    ``resets [T, B]`` (True: the carry is zeroed before that step). Its gradient is hand-written: the
    backward loop does one ``[B, 3F] x [3F, F]`` product per step, and the gradients of ``w_h`` and
    ``b_h`` are one product over all steps after it, where differentiating the scan would add an outer
    product into them at every step."""
    return _gru_forward(w_h, b_h, h0, x_gates, resets, dtype, unroll)[0]


def _gru_forward(w_h, b_h, h0, x_gates, resets, dtype, unroll):
    def step(h, inputs):
        x, reset = inputs
        h_prev = _masked(reset, h)
        h, gates = _gru_step(h_prev, x, w_h, b_h, dtype)
        return h, (h, h_prev, gates)

    h_last, (outputs, h_prev, gates) = jax.lax.scan(step, h0, (x_gates, resets), unroll=unroll)
    return (h_last, outputs), (h_prev, gates)


def _gru_scan_fwd(w_h, b_h, h0, x_gates, resets, dtype, unroll):
    result, (h_prev, gates) = _gru_forward(w_h, b_h, h0, x_gates, resets, dtype, unroll)
    return result, (w_h, b_h, x_gates, resets, h_prev, gates)


def _gru_scan_bwd(dtype, unroll, residuals, cotangents):
    w_h, b_h, x_gates, resets, h_prev, (r, z, n, hn) = residuals
    dh_last, d_outputs = cotangents
    w_t = w_h.astype(dtype).T

    def step(dh, inputs):  # from the gradient of h_t to that of h_{t-1} (before its reset)
        d_out, reset, h_prev, r, z, n, hn = inputs
        dh = dh + d_out
        dn = dh * (1.0 - z) * (1.0 - n * n)  # through n = tanh(xn + r * hn)
        dz = dh * (h_prev - n) * z * (1.0 - z)
        dr = dn * hn * r * (1.0 - r)
        dx = jnp.concatenate([dr, dz, dn], axis=-1)  # the input gates' gradient
        dh_gates = jnp.concatenate([dr, dz, dn * r], axis=-1)
        dh_prev = dh * z + (dh_gates.astype(dtype) @ w_t).astype(jnp.float32)
        return _masked(reset, dh_prev), (dx, dh_gates)

    dh0, (dx, dh_gates) = jax.lax.scan(
        step, dh_last.astype(jnp.float32), (d_outputs, resets, h_prev, r, z, n, hn), reverse=True, unroll=unroll
    )
    dw_h = jnp.einsum("tbf,tbg->fg", h_prev.astype(dtype), dh_gates.astype(dtype), preferred_element_type=jnp.float32)
    db_h = dh_gates.sum(axis=(0, 1))
    return dw_h.astype(w_h.dtype), db_h.astype(b_h.dtype), dh0, dx.astype(x_gates.dtype), None


gru_scan.defvjp(_gru_scan_fwd, _gru_scan_bwd)
