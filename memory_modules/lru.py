"""LRU: the Linear Recurrent Unit (Orvieto et al., ICML 2023, "Resurrecting recurrent neural networks for
long sequences"), a diagonal complex linear recurrence with a stable exponential parameterisation."""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.memory_modules.base import ComplexStateStack, check_positive, half_glu
from mnemax.memory_modules.scan import complex_diagonal_layer


def ring_init(r_min: float, r_max: float):
    """Initialiser of ``nu_log`` (``|lambda| = exp(-exp(nu_log))``): radii drawn so that ``|lambda|^2`` is
    uniform on ``[r_min^2, r_max^2]``, i.e. the eigenvalues uniform by area on that ring (the paper's)."""

    def init(key, shape, dtype=jnp.float32):
        u = jax.random.uniform(key, shape, dtype, minval=1e-6)  # r_min = 0 would otherwise allow log(0)
        return jnp.log(-0.5 * jnp.log(u * (r_max**2 - r_min**2) + r_min**2))

    return init


def phase_init(max_phase: float):
    """Initialiser of ``theta_log`` (the eigenvalues' phase ``exp(theta_log)``), uniform in ``(0, max_phase]``."""

    def init(key, shape, dtype=jnp.float32):
        return jnp.log(max_phase * jax.random.uniform(key, shape, dtype, minval=1e-6))

    return init


class LRULayer(nn.Module):
    """One LRU layer on ``[T, B, H]`` (time-major) with its state ``[B, P]`` complex64::

        lambda = exp(-exp(nu_log) + i exp(theta_log)),   gamma = exp(gamma_log)
        x_t = lambda * x_{t-1} + gamma * (B u_t),   y_t = Re(C x_t) + D u_t

    then ``GELU`` and a sigmoid gate (as :class:`~mnemax.memory_modules.s5.S5Layer`). ``|lambda| < 1``
    whatever the parameters, and ``gamma`` starts at ``sqrt(1 - |lambda|^2)``, which keeps the state's
    scale that of its inputs however close ``|lambda|`` is to 1. Unlike S5 there is no discretisation step:
    the recurrence is learned directly in discrete time.
    """

    state_size: int
    r_min: float
    r_max: float
    max_phase: float
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, u: jax.Array, state: jax.Array, resets: jax.Array) -> tuple[jax.Array, jax.Array]:
        p, h = self.state_size, u.shape[-1]
        nu_log = self.param("nu_log", ring_init(self.r_min, self.r_max), (p,))
        theta_log = self.param("theta_log", phase_init(self.max_phase), (p,))
        # 1 - |lambda|^2 = -expm1(-2 nu): exact for radii near 1, where 1 - exp(.) would cancel
        gamma_log = self.param("gamma_log", lambda *_: 0.5 * jnp.log(-jnp.expm1(-2.0 * jnp.exp(nu_log))), (p,))
        # B: complex normal with variance 1 / H (1 / (2H) per part); C: 1 / P per part; D: standard normal
        b_init = nn.initializers.variance_scaling(0.5, "fan_in", "normal")
        c_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal")
        b_re, b_im = self.param("b_real", b_init, (h, p)), self.param("b_imag", b_init, (h, p))
        c_re, c_im = self.param("c_real", c_init, (p, h)), self.param("c_imag", c_init, (p, h))
        d = self.param("d", nn.initializers.normal(1.0), (h,))

        decay = jnp.exp(jax.lax.complex(-jnp.exp(nu_log), jnp.exp(theta_log)))  # [P]
        b = jax.lax.complex(b_re, b_im) * jnp.exp(gamma_log)  # [H, P]
        c = jax.lax.complex(c_re, c_im)  # [P, H]
        read, states = complex_diagonal_layer(u, decay, b, c, state, resets, self.dtype)
        y = read + d * u
        return half_glu(nn.gelu(y), self.dtype), states[-1]


class LRU(ComplexStateStack):
    """LRU memory: an input projection, ``num_layers`` pre-layernorm LRU layers with residuals, a LayerNorm.

    Each layer is a diagonal complex linear recurrence (see :class:`LRULayer`): one associative scan over
    ``T`` in training, the plain update with ``T = 1`` when acting; resets drop the state inside the scan.
    The eigenvalues start uniform on the ring ``r_min <= |lambda| <= r_max`` with phases up to
    ``max_phase``; the defaults (0.9, 0.999) are the paper's for its long-range tasks and put the initial
    memory horizons (``1 / (1 - |lambda|)``) between about 10 and 1000 steps.

    When to choose it: ``s5``'s job (a fixed decay profile, FFM's cost) with the eigenvalues learned
    directly rather than through a continuous system and its step; memorax offers it under the same name.

    Shapes:
        inputs ``[T, B, D_in]``, resets ``[T, B]`` -> outputs ``[T, B, features]``; carry
        ``[B, num_layers, state_size]`` complex64.

    Attributes:
        features: model width ``H`` (and output width).
        state_size: ``P``, complex states per layer.
        num_layers: stacked layers.
        r_min, r_max: the ring of the initial eigenvalues' radii, ``0 <= r_min <= r_max < 1``.
        max_phase: the largest initial phase (radians; the paper takes pi / 10 for its longest tasks).
        dtype: dtype of the matrix products; the recurrence and the carry run in complex64.
    """

    features: int
    state_size: int = 64
    num_layers: int = 1
    r_min: float = 0.9
    r_max: float = 0.999
    max_phase: float = 2 * math.pi
    dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "state_size", "num_layers")
        if not 0.0 <= self.r_min <= self.r_max < 1.0:  # below 1: a stable recurrence
            raise ValueError(f"LRU: need 0 <= r_min <= r_max < 1, got {self.r_min} and {self.r_max}")
        if not self.max_phase > 0:
            raise ValueError(f"LRU: max_phase must be positive, got {self.max_phase}")

    @nn.nowrap
    def layer(self, i: int) -> LRULayer:
        return LRULayer(self.state_size, self.r_min, self.r_max, self.max_phase, self.dtype, name=f"lru_{i}")
