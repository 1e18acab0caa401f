"""Long short-term memory with in-scan episode resets."""

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


def _forget_bias_init(features: int, forget_bias: float, max_timescale: int | None):
    """Zeros, except ``forget_bias`` on the forget-gate block of an ``[i, f, g, o]`` bias; with
    ``max_timescale`` the forget gate gets spread time scales and the input gate their negatives
    (Tallec & Ollivier 2018)."""

    def init(key, shape, dtype=jnp.float32):
        del key
        bias = jnp.zeros(shape, dtype)
        if not max_timescale:
            return bias.at[features : 2 * features].set(forget_bias)
        chrono = timescale_bias(features, 2.0, max_timescale)
        return bias.at[:features].set(-chrono).at[features : 2 * features].set(chrono)

    return init


class LSTMCell:
    """The LSTM's step after the recurrent product (a :class:`~mnemax.memory_modules.scan.GatedCell`; gates
    ``[i, f, g, o]``, carry ``(c, h)``)."""

    @staticmethod
    def hidden(carry):
        return carry[1]

    @staticmethod
    def with_hidden(carry, h):
        return carry[0], h

    @staticmethod
    def forward(carry, x_gates, h_gates):
        c, _ = carry
        i, f, g, o = jnp.split(x_gates + h_gates, 4, axis=-1)
        i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
        c = f * c + i * g
        tanh_c = jnp.tanh(c)
        h = o * tanh_c
        return (c, h), h, (i, f, g, o, tanh_c)

    @staticmethod
    def backward(d_carry, d_output, carry, residuals):
        i, f, g, o, tanh_c = residuals
        dc, dh = d_carry
        dh = dh + d_output
        dc = dc + dh * o * (1.0 - tanh_c * tanh_c)
        d_gates = jnp.concatenate(
            [dc * g * i * (1.0 - i), dc * carry[0] * f * (1.0 - f), dc * i * (1.0 - g * g), dh * tanh_c * o * (1.0 - o)],
            axis=-1,
        )
        return (dc * f, jnp.zeros_like(dh)), d_gates, d_gates


class LSTM(MemoryModule):
    """An LSTM (Hochreiter & Schmidhuber 1997, gates ``[i, f, g, o]``) scanned over time.

    As in :class:`~mnemax.memory_modules.GRU`, the input projections of all ``T`` steps are one matrix
    product before the scan; the scan does the ``[B, F] x [F, 4F]`` recurrent product. The forget gate
    starts biased open (``forget_bias``) so gradients survive long sequences early in training. The gradient
    is hand-written (:func:`~mnemax.memory_modules.scan.gated_scan`).

    Attributes:
        features: hidden size ``F``; outputs are ``h``, ``[T, B, F]``; the carry is ``(c, h)``, each ``[B, F]``.
        forget_bias: initial bias of the forget gate.
        max_timescale: if set, replaces ``forget_bias``: forget-gate biases that spread the units' memory
            time scales log-uniformly over ``[2, max_timescale]`` steps, input-gate biases their negatives
            (see :func:`~mnemax.memory_modules.scan.timescale_bias`).
        hidden_init: how the recurrent kernel starts (:func:`~mnemax.memory_modules.scan.hidden_kernel_init`):
            one ``orthogonal`` matrix over all gates or an orthogonal block ``per_gate`` (flax's cells).
        unroll: steps per iteration of the loop over time (None: by backend, see
            :func:`~mnemax.memory_modules.scan.time_unroll`); speed only.
        dtype: dtype of the matrix products; the carry stays f32.
        backward: how the gradient is computed (:data:`~mnemax.memory_modules.scan.BACKWARDS`); speed only.
    """

    features: int
    forget_bias: float = 1.0
    max_timescale: int | None = None
    hidden_init: str = "orthogonal"
    unroll: int | None = None
    dtype: Any = jnp.float32
    backward: str = "custom"

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "max_timescale", "unroll")
        check_backward(self)
        check_hidden_init(self)

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> tuple[jax.Array, jax.Array]:
        zeros = jnp.zeros((batch_size, self.features), jnp.float32)
        return zeros, zeros

    @nn.compact
    def __call__(self, carry, inputs: jax.Array, resets: jax.Array):
        check_sequence_inputs(inputs, resets)
        f = self.features
        input_gates = nn.Dense(4 * f, use_bias=False, dtype=self.dtype, name="input")(inputs)
        w_h = self.param("hidden_kernel", hidden_kernel_init(self.hidden_init, 4), (f, 4 * f))
        b = self.param("bias", _forget_bias_init(f, self.forget_bias, self.max_timescale), (4 * f,))
        return gated_recurrence(LSTMCell, self.backward, w_h, b, carry, input_gates, resets, self.dtype, self.unroll)
