"""The interface every memory module implements.

A memory module maps a sequence of inputs to a sequence of outputs while carrying state across calls::

    carry = module.initialize_carry(batch_size)             # no parameters needed
    carry, outputs = module.apply(params, carry, inputs, resets)
    # inputs:  [T, B, D_in]   time-major
    # resets:  [T, B] bool    True where a new episode starts *at* that step
    # outputs: [T, B, features]

The same call serves acting (T = 1, repeatedly) and learning (T = a whole sequence): for every module
``T`` single steps give the same outputs as one call over ``T`` steps. A reset at step ``t`` makes the
outputs from ``t`` on independent of everything before ``t`` for that batch element, so whole
rollouts that cross episode boundaries can be processed in one call.

A module whose carry holds values computed by its parameters (Transformer-XL's cached keys and values)
names those fields of its carry in ``projected_fields``; a call over zero steps (``inputs [0, B, D_in]``)
then returns the carry with those values made again, from the other fields, by the parameters it is given.
Trainers make that call after each parameter update, before acting, so checkpoints need not keep them
(:func:`without_projections`).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

Carry = Any


class MemoryModule(nn.Module):
    """Base class of the memory modules. Subclasses set ``features`` and implement both methods."""

    features: int
    # The fields of the carry (a NamedTuple) that hold values made by the parameters, which a call over zero
    # steps makes again from the other fields.
    projected_fields: ClassVar[tuple[str, ...]] = ()

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> Carry:
        """The carry at the start of an episode for ``batch_size`` independent streams."""
        raise NotImplementedError

    def __call__(self, carry: Carry, inputs: jax.Array, resets: jax.Array) -> tuple[Carry, jax.Array]:
        raise NotImplementedError


def without_projections(fields: tuple[str, ...], carries: Any) -> Any:
    """``carries`` (a pytree holding a memory module's carries, with any leading axes) with the ``fields`` of
    each, the module's ``projected_fields``, set to zeros.

    What a checkpoint keeps: the next call over zero steps makes those fields again from the others, and
    zeros take almost no room in a compressed checkpoint (Transformer-XL's keys and values are two thirds of
    its carry, and its carry most of a pixel run's state).
    """

    def is_carry(node) -> bool:
        return isinstance(node, tuple) and set(fields) <= set(getattr(node, "_fields", ()))

    def zero(node):
        return node._replace(**{f: jnp.zeros_like(getattr(node, f)) for f in fields}) if is_carry(node) else node

    return jax.tree_util.tree_map(zero, carries, is_leaf=is_carry) if fields else carries


def check_sequence_inputs(inputs: jax.Array, resets: jax.Array) -> None:
    """Raise a clear error when ``inputs``/``resets`` are not ``[T, B, D]`` / ``[T, B]``.

    Shapes are static under ``jit``, so this runs at trace time and costs nothing at run time.
    """
    if inputs.ndim != 3:
        raise ValueError(f"memory inputs must be [T, B, D], got shape {inputs.shape}")
    if resets.shape != inputs.shape[:2]:
        raise ValueError(f"resets must be [T, B] = {inputs.shape[:2]}, got shape {resets.shape}")


def check_positive(module: nn.Module, *fields: str) -> None:
    """Raise a ValueError naming the module and field when one of ``fields`` is below 1 (for ``__post_init__``)."""
    for field in fields:
        value = getattr(module, field)
        if value is not None and value < 1:
            raise ValueError(f"{type(module).__name__}: {field} must be >= 1, got {value}")


def check_range(module: nn.Module, low: str, high: str, above: float) -> None:
    """Raise a ValueError naming the module unless ``above < low <= high`` for the fields ``low``, ``high``
    (for ``__post_init__``; e.g. the range of initial time scales)."""
    lo, hi = getattr(module, low), getattr(module, high)
    if not above < lo <= hi:
        raise ValueError(f"{type(module).__name__}: need {above} < {low} <= {high}, got {lo} and {hi}")


def reset_carry(resets: jax.Array, carry: Carry, initial: Carry) -> Carry:
    """Replace the carry of the batch elements where ``resets`` ([B] bool) is True by ``initial``."""

    def select(init, current):
        mask = resets.reshape(resets.shape + (1,) * (current.ndim - resets.ndim))
        return jnp.where(mask, init, current)

    return jax.tree_util.tree_map(select, initial, carry)


class ComplexStateStack(MemoryModule):
    """Base of the stacked diagonal complex state spaces (S5, LRU): ``num_layers`` layers of ``state_size``
    complex states each, carried as one ``[B, num_layers, state_size]`` complex64 array, run by
    :func:`residual_stack` over the layers that :meth:`layer` builds. Subclasses declare ``state_size``,
    ``num_layers`` and ``dtype`` among their fields."""

    @nn.nowrap
    def layer(self, i: int) -> nn.Module:
        """Layer ``i``: ``([T, B, features], state [B, state_size], resets) -> (update, next state)``."""
        raise NotImplementedError

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.num_layers, self.state_size), jnp.complex64)

    @nn.compact
    def __call__(self, carry: jax.Array, inputs: jax.Array, resets: jax.Array) -> tuple[jax.Array, jax.Array]:
        check_sequence_inputs(inputs, resets)
        return residual_stack(inputs, carry, resets, self.layer, self.num_layers, self.features, self.dtype)


def half_glu(y: jax.Array, dtype: Any) -> jax.Array:
    """``y * sigmoid(Dense(y))``: the output gate of the state-space layers (S5's "half GLU"; the Dense is
    named ``gate``). Call it inside a compact method, which then owns the Dense."""
    gate = nn.Dense(y.shape[-1], dtype=dtype, name="gate")(y).astype(jnp.float32)
    return y * jax.nn.sigmoid(gate)


def residual_stack(
    inputs: jax.Array,
    carry: Carry,
    resets: jax.Array,
    layer: Callable[[int], nn.Module],
    num_layers: int,
    features: int,
    dtype: Any,
) -> tuple[Carry, jax.Array]:
    """The body shared by the stacked recurrent memories (S5, Mamba): an input projection ``input`` to
    ``features``, ``num_layers`` pre-layernorm residual layers ``x <- x + layer(i)(norm_i(x), carry_i,
    resets)``, and a final LayerNorm ``out_norm``. Call it inside a compact method, which then owns the
    submodules.

    ``carry`` is a pytree whose leaves are ``[B, num_layers, ...]``; ``layer(i)`` returns a module that maps
    ``([T, B, features], carry of layer i, resets)`` to ``(update [T, B, features], next carry of layer i)``.
    Returns the next carry (same structure) and the outputs ``[T, B, features]`` in ``dtype``; the
    residual stream is f32.
    """
    x = nn.Dense(features, dtype=dtype, name="input")(inputs).astype(jnp.float32)
    states = []
    for i in range(num_layers):
        normed = nn.LayerNorm(name=f"norm_{i}")(x)
        y, state = layer(i)(normed, jax.tree_util.tree_map(lambda c: c[:, i], carry), resets)
        x = x + y
        states.append(state)
    y = nn.LayerNorm(name="out_norm")(x)
    return jax.tree_util.tree_map(lambda *s: jnp.stack(s, axis=1), *states), y.astype(dtype)
