"""minGRU (Feng et al. 2024, "Were RNNs all we needed?"): a GRU whose gates see only the current input."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.memory_modules.base import MemoryModule, check_positive, check_range, check_sequence_inputs
from mnemax.memory_modules.scan import linear_recurrence, timescale_bias_init


class MinGRU(MemoryModule):
    """A stack of minGRU layers, each one associative scan over time.

    Per step and layer (``g = 1 - z`` of the paper, the share of the old state that is kept)::

        g_t  = sigmoid(W_g x_t + b_g)                 # keep gate, from x_t only
        h~_t = W_h x_t + b_h                          # candidate, from x_t only
        h_t  = g_t * h_{t-1} + (1 - g_t) * h~_t

    Nothing on the right depends on ``h_{t-1}`` except linearly, so the whole sequence is one
    :func:`~mnemax.memory_modules.scan.linear_recurrence` (depth ``O(log T)``) in training and the plain
    update with ``T = 1`` when acting. Layer ``l > 0`` reads the states of layer ``l - 1``: that is how
    the gates of a stack come to depend on the past.

    Numerics: the scan only multiplies gates in ``(0, 1)`` and adds, and ``h_t`` is a convex combination
    of candidates, so ``|h_t| <= max |h~|`` over any length; long products of gates underflow to 0, their
    true limit. (The paper's log-space form serves its cumsum-based scan, which divides by running
    products; the associative scan never divides, so the plain form is stable.) The keep gates start
    with time scales log-spaced over ``[min_timescale, max_timescale]``, as in linear attention.

    When to choose it: the cheapest recurrent memory that trains in parallel (two matrix products and
    one scan per layer); a drop-in for ``gru`` on long sequences, where the GRU's sequential scan is the
    bottleneck. It stores one vector per layer, so it is weaker than ``ffm``/``s5`` at holding many
    separate items.

    Shapes:
        inputs ``[T, B, D_in]``, resets ``[T, B]`` -> outputs ``[T, B, features]`` (the last layer's
        ``h``); carry ``[B, num_layers, features]`` f32.

    Attributes:
        features: hidden size ``F`` of every layer.
        num_layers: stacked layers.
        min_timescale, max_timescale: range of the initial time scales of the keep gates (both > 1).
        dtype: dtype of the matrix products; the recurrence and the carry run in f32.
    """

    features: int
    num_layers: int = 1
    min_timescale: float = 2.0
    max_timescale: float = 1024.0
    dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "num_layers")
        check_range(self, "min_timescale", "max_timescale", above=1.0)

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.num_layers, self.features), jnp.float32)

    @nn.compact
    def __call__(self, carry: jax.Array, inputs: jax.Array, resets: jax.Array):
        check_sequence_inputs(inputs, resets)
        x, states = inputs, []
        for layer in range(self.num_layers):
            keep_init = timescale_bias_init(self.min_timescale, self.max_timescale)
            logits = nn.Dense(self.features, dtype=self.dtype, bias_init=keep_init, name=f"keep_{layer}")(x)
            candidate = nn.Dense(self.features, dtype=self.dtype, name=f"candidate_{layer}")(x)
            logits = logits.astype(jnp.float32)
            # sigmoid(-l) rather than 1 - sigmoid(l): exact for the long time scales, where g is close to 1.
            write = jax.nn.sigmoid(-logits) * candidate.astype(jnp.float32)
            h = linear_recurrence(jax.nn.sigmoid(logits), write, carry[:, layer], resets)
            states.append(h[-1])
            x = h.astype(self.dtype)
        return jnp.stack(states, axis=1), x
