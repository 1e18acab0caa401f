"""Fast and Forgetful Memory (FFM; Morad et al., NeurIPS 2023)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mnemax.memory_modules.base import MemoryModule, check_positive, check_range, check_sequence_inputs
from mnemax.memory_modules.scan import linear_recurrence

FORGOTTEN_AT = 0.01  # fraction of an input left after its decay horizon, used to initialise alpha


class FFM(MemoryModule):
    """Fast and Forgetful Memory: a gated, complex-valued, decaying sum of the past.

    Per step ``t`` (``m = memory_size``, ``c = context_size``)::

        x~_t = W_v x_t * sigmoid(W_i x_t)                                       # [m], input gate
        S_t  = gamma * S_{t-1} + x~_t  (x~ broadcast over c)                     # [m, c] complex
        gamma[j, k] = exp(alpha_j + i * omega_k),  alpha < 0 (decay), omega (frequency), both learned
        z_t  = W_z [Re S_t, Im S_t]                                             # [features]
        g_t  = sigmoid(W_o x_t)
        y_t  = LayerNorm(z_t) * g_t + W_s x_t * (1 - g_t)                       # output gate, skip

    The recurrence is linear, so a whole sequence is one associative scan (parallel over ``T``); with
    ``T = 1`` it is the plain recurrent update. A reset drops the carried state inside the scan.
    ``alpha`` starts so that inputs fade to 1% over horizons log-spaced in ``[min_period, max_period]``
    steps; ``omega = 2 pi / period`` with periods evenly spaced in the same range.

    Shapes:
        inputs ``[T, B, D_in]``, resets ``[T, B]`` -> outputs ``[T, B, features]``; carry ``[B, m, c]``
        complex64.

    Attributes:
        features: output width.
        memory_size: ``m``, decay channels.
        context_size: ``c``, frequencies per channel (state size ``m * c`` complex numbers).
        min_period, max_period: range of the initial time scales.
        dtype: dtype of the dense layers; the aggregator itself runs in complex64.
    """

    features: int
    memory_size: int = 32
    context_size: int = 4
    min_period: int = 1
    max_period: int = 1024
    dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "memory_size", "context_size", "min_period", "max_period")
        check_range(self, "min_period", "max_period", above=0)

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.memory_size, self.context_size), jnp.complex64)

    def _log_neg_alpha_init(self, key, shape):
        del key
        horizons = np.geomspace(self.min_period, self.max_period, shape[0])
        return jnp.asarray(np.log(-np.log(FORGOTTEN_AT) / horizons), jnp.float32)

    def _omega_init(self, key, shape):
        del key
        return jnp.asarray(2 * np.pi / np.linspace(self.min_period, self.max_period, shape[0]), jnp.float32)

    @nn.compact
    def __call__(self, carry: jax.Array, inputs: jax.Array, resets: jax.Array):
        check_sequence_inputs(inputs, resets)
        m, c, f = self.memory_size, self.context_size, self.features
        pre = nn.Dense(2 * m + 2 * f, dtype=self.dtype, name="pre")(inputs).astype(jnp.float32)
        value, skip, gates = jnp.split(pre, [m, m + f], axis=-1)
        in_gate, out_gate = jnp.split(jax.nn.sigmoid(gates), [m], axis=-1)

        log_neg_alpha = self.param("log_neg_alpha", self._log_neg_alpha_init, (m,))
        omega = self.param("omega", self._omega_init, (c,))
        alpha = jnp.broadcast_to(-jnp.exp(log_neg_alpha)[:, None], (m, c))
        gamma = jnp.exp(jax.lax.complex(alpha, jnp.broadcast_to(omega[None, :], (m, c))))  # [m, c]

        steps, batch = resets.shape
        update = jnp.broadcast_to((value * in_gate)[..., None], (steps, batch, m, c)).astype(jnp.complex64)
        states = linear_recurrence(gamma, update, carry, resets)  # [T, B, m, c]

        flat = jnp.concatenate([states.real, states.imag], axis=-1).reshape(steps, batch, 2 * m * c)
        z = nn.Dense(f, dtype=self.dtype, name="mix")(flat).astype(jnp.float32)
        z = nn.LayerNorm(use_bias=False, use_scale=False, name="norm")(z)
        y = z * out_gate + skip * (1.0 - out_gate)
        return states[-1], y.astype(self.dtype)
