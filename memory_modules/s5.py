"""S5: a diagonal linear state-space layer run by an associative scan (Smith et al., ICLR 2023).

S5 is the memory of R2I (Samsonov et al. 2024, "Mastering memory tasks with world models").
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mnemax.memory_modules.base import ComplexStateStack, check_positive, check_range, half_glu
from mnemax.memory_modules.scan import complex_diagonal_layer, log_uniform_init


def hippo_n_frequencies(size: int) -> np.ndarray:
    """Imaginary parts of the S5 initialisation: the ``size`` non-negative eigenvalue frequencies of the
    normal part of the HiPPO-LegS matrix of order ``2 * size``, ascending.

    The normal part is ``-1/2 I`` plus a skew-symmetric matrix, so its eigenvalues are ``-1/2 + i w`` in
    conjugate pairs; keeping one of each pair and taking twice the real part of the output (conjugate
    symmetry) gives the same real system at half the cost.
    """
    order = 2 * size
    n = np.arange(order)
    q = np.sqrt(2 * n + 1)
    legs = -(np.tril(np.outer(q, q)) - np.diag(n))  # HiPPO-LegS: -(n + 1) on the diagonal
    p = np.sqrt(n + 0.5)  # its rank-one correction: legs + p p^T is normal
    skew = legs + np.outer(p, p) + 0.5 * np.eye(order)  # the normal part minus its -1/2 diagonal
    frequencies = np.linalg.eigvalsh(-1j * skew)  # -i * skew is Hermitian: real eigenvalues, +-w pairs
    return np.sort(frequencies)[-size:]


class S5Layer(nn.Module):
    """One S5 layer on ``[T, B, H]`` (time-major) with its state ``[B, P]`` complex64.

    Continuous system ``x' = Lambda x + B u``, ``y = Re(C x) + D u`` with diagonal complex ``Lambda``
    (``Re Lambda < 0`` by construction: ``-exp`` of a parameter), discretised by zero-order hold with a
    learned step ``Delta`` per state::

        A_bar = exp(Lambda Delta),  B_bar = (A_bar - 1) / Lambda * B
        x_t = A_bar x_{t-1} + B_bar u_t,  y_t = 2 Re(C x_t) + D u_t

    then ``GELU`` and a sigmoid gate (S5's "half GLU"). ``|A_bar| < 1`` always, so the recurrence
    cannot blow up however long the sequence.
    """

    state_size: int
    blocks: int
    min_step: float
    max_step: float
    dtype: Any = jnp.float32

    def _frequency_init(self, key, shape):
        del key
        # As in S5: the eigenvalues of `blocks` smaller HiPPO matrices, which keeps the frequencies low
        # (the largest grows with the square of the order).
        return jnp.asarray(np.tile(hippo_n_frequencies(shape[0] // self.blocks), self.blocks), jnp.float32)

    @nn.compact
    def __call__(self, u: jax.Array, state: jax.Array, resets: jax.Array) -> tuple[jax.Array, jax.Array]:
        p, h = self.state_size, u.shape[-1]
        log_neg_real = self.param("log_neg_real", nn.initializers.constant(np.log(0.5)), (p,))
        frequency = self.param("frequency", self._frequency_init, (p,))
        log_step = self.param("log_step", log_uniform_init(self.min_step, self.max_step), (p,))
        # Each of the real and imaginary parts carries half the variance of a real lecun-normal matrix.
        half_normal = nn.initializers.variance_scaling(0.5, "fan_in", "normal")
        b_re = self.param("b_real", half_normal, (h, p))
        b_im = self.param("b_imag", half_normal, (h, p))
        c_re = self.param("c_real", half_normal, (p, h))
        c_im = self.param("c_imag", half_normal, (p, h))
        d = self.param("d", nn.initializers.normal(1.0), (h,))

        lam = jax.lax.complex(-jnp.exp(log_neg_real), frequency)
        decay = jnp.exp(lam * jnp.exp(log_step))  # [P]
        b_bar = ((decay - 1.0) / lam) * jax.lax.complex(b_re, b_im)  # [H, P]
        c = jax.lax.complex(c_re, c_im)  # [P, H]
        read, states = complex_diagonal_layer(u, decay, b_bar, c, state, resets, self.dtype)
        y = 2.0 * read + d * u
        return half_glu(nn.gelu(y), self.dtype), states[-1]


class S5(ComplexStateStack):
    """S5 memory: an input projection, ``num_layers`` pre-layernorm S5 layers with residuals, a LayerNorm.

    Each layer is a diagonal complex linear recurrence (see :class:`S5Layer`), so a whole sequence is one
    associative scan per layer (parallel over ``T``) in training and the plain update with ``T = 1`` when
    acting; resets drop the state inside the scan. ``Lambda`` starts at the HiPPO-N eigenvalues
    (``Re = -1/2``, frequencies from ``blocks`` HiPPO-LegS matrices of order ``2 P / blocks``) and the steps
    log-uniform in
    ``[min_step, max_step]``, which spreads the initial memory horizons over roughly
    ``2 / max_step .. 2 / min_step`` steps.

    When to choose it: long horizons at the cost of an FFM-sized state, with a well-studied
    initialisation (the memory of R2I); like ``ffm``, its state is a fixed linear function of the
    inputs, so use ``mamba`` when what to keep must depend on the input.

    Shapes:
        inputs ``[T, B, D_in]``, resets ``[T, B]`` -> outputs ``[T, B, features]``; carry
        ``[B, num_layers, state_size]`` complex64.

    Attributes:
        features: model width ``H`` (and output width).
        state_size: ``P``, complex states per layer (conjugate-symmetric: a real system of order ``2P``).
        blocks: HiPPO blocks of the initialisation; ``state_size`` must be divisible by it.
        num_layers: stacked layers.
        min_step, max_step: range of the initial discretisation steps ``Delta``.
        dtype: dtype of the matrix products; the recurrence and the carry run in complex64.
    """

    features: int
    state_size: int = 64
    blocks: int = 4
    num_layers: int = 1
    min_step: float = 1e-3
    max_step: float = 1e-1
    dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "state_size", "blocks", "num_layers")
        if self.state_size % self.blocks:
            raise ValueError(f"S5: state_size ({self.state_size}) must be divisible by blocks ({self.blocks})")
        check_range(self, "min_step", "max_step", above=0.0)

    @nn.nowrap
    def layer(self, i: int) -> S5Layer:
        return S5Layer(self.state_size, self.blocks, self.min_step, self.max_step, self.dtype, name=f"s5_{i}")
