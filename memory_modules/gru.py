"""Gated recurrent unit with in-scan episode resets."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.memory_modules.base import MemoryModule, check_positive, check_sequence_inputs
from mnemax.memory_modules.scan import (
    check_backward,
    check_hidden_init,
    gated_recurrence,
    hidden_kernel_init,
    timescale_bias,
)


class GRUCell:
    """The GRU's step after the recurrent product (a :class:`~mnemax.memory_modules.scan.GatedCell`; gates
    ``[r, z, n]``, the PyTorch/cuDNN layout: ``n = tanh(x_n + r * (h @ w_n + b_n))``)."""

    @staticmethod
    def hidden(h):
        return h

    @staticmethod
    def with_hidden(h, new):
        del h
        return new

    @staticmethod
    def forward(h, x_gates, h_gates):
        xr, xz, xn = jnp.split(x_gates, 3, axis=-1)
        hr, hz, hn = jnp.split(h_gates, 3, axis=-1)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)
        h = (1.0 - z) * n + z * h
        return h, h, (r, z, n, hn)

    @staticmethod
    def backward(dh, d_output, h, residuals):
        r, z, n, hn = residuals
        dh = dh + d_output
        dn = dh * (1.0 - z) * (1.0 - n * n)  # through tanh
        dz = dh * (h - n) * z * (1.0 - z)
        dr = dn * hn * r * (1.0 - r)
        return dh * z, jnp.concatenate([dr, dz, dn], axis=-1), jnp.concatenate([dr, dz, dn * r], axis=-1)


class GRU(MemoryModule):
    """A GRU (Cho et al. 2014, the PyTorch/cuDNN gate layout) scanned over time.

    The input projections of all ``T`` steps are one matrix product before the scan, so the sequential
    part does only the ``[B, F] x [F, 3F]`` recurrent product per step; the gradient is hand-written
    (:func:`~mnemax.memory_modules.scan.gated_scan`).

    Attributes:
        features: hidden size ``F``; outputs are ``[T, B, F]`` and the carry is ``[B, F]``.
        max_timescale: if set, the update gate starts biased so that the units' memory time scales
            spread log-uniformly over ``[2, max_timescale]`` steps (see
            :func:`~mnemax.memory_modules.scan.timescale_bias`); 0 starts every gate at 1/2.
        hidden_init: how the recurrent kernel starts (:func:`~mnemax.memory_modules.scan.hidden_kernel_init`):
            one ``orthogonal`` matrix over all gates or an orthogonal block ``per_gate`` (flax's cells).
        unroll: steps per iteration of the loop over time (None: by backend, see
            :func:`~mnemax.memory_modules.scan.time_unroll`); speed only.
        dtype: dtype of the matrix products (``jnp.bfloat16`` halves memory traffic); the carry stays f32.
        backward: how the gradient is computed (:data:`~mnemax.memory_modules.scan.BACKWARDS`); speed only.
    """

    features: int
    max_timescale: int | None = None
    hidden_init: str = "orthogonal"
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
        check_backward(self)
        check_hidden_init(self)

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.features), jnp.float32)

    @nn.compact
    def __call__(self, carry: jax.Array, inputs: jax.Array, resets: jax.Array):
        check_sequence_inputs(inputs, resets)
        f = self.features
        input_gates = nn.Dense(3 * f, dtype=self.dtype, name="input")(inputs)
        w_h = self.param("hidden_kernel", hidden_kernel_init(self.hidden_init, 3), (f, 3 * f))
        b_h = self.param("hidden_bias", self._hidden_bias_init, (3 * f,))
        return gated_recurrence(GRUCell, self.backward, w_h, b_h, carry, input_gates, resets, self.dtype, self.unroll)
