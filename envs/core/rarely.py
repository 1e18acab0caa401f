"""A branch that few copies of a vmapped environment take, computed only for those copies.

Under ``vmap`` a ``lax.cond`` whose predicate differs between copies becomes a ``select`` that computes
both branches for every copy. Where one branch is costly and rarely taken (a new path once a goal is
reached), that makes every step pay for it. :func:`rarely` has its own batching rule instead: it gathers
the copies whose predicate holds, up to a fixed share of the batch, computes the branch for those only
and scatters the results back (nothing when no copy takes it); when more copies take it in one step
than the share holds, it computes the branch for all of them, as ``select`` would. Either way the results
are the same as ``jnp.where(pred, fn(*operands), otherwise)`` copy by copy.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

# The branch is computed for at most this share of a batch's copies without falling back to all of them.
SHARE = 8


def rarely(pred: jax.Array, fn: Callable[..., Any], otherwise: Any, *operands: Any) -> Any:
    """``fn(*operands)`` if ``pred`` else ``otherwise``; under ``vmap``, ``fn`` runs only where ``pred`` holds.

    Args:
        pred: scalar bool.
        fn: a pure function of ``operands`` alone (no traced values closed over) that returns a pytree
            shaped as ``otherwise``.
        otherwise: the result where ``pred`` is false.
        *operands: ``fn``'s arguments (pytrees).

    Returns:
        A pytree shaped as ``otherwise``.
    """
    # A leading axis of one, so that the batching rule can fold every batch axis around this call into it.
    lead = lambda tree: jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], tree)  # noqa: E731
    out = _over_copies(fn)(lead(pred), lead(otherwise), *lead(operands))
    return jax.tree_util.tree_map(lambda x: x[0], out)


def _over_copies(fn):
    """``apply(pred [n], otherwise [n, ...], *operands [n, ...])``: :func:`rarely` over ``n`` copies."""

    @jax.custom_batching.custom_vmap
    def apply(pred, otherwise, *operands):
        copies = pred.shape[0]
        capacity = -(-copies // SHARE)

        def some():  # every copy that takes the branch (at most `capacity` of them), gathered
            (index,) = jnp.nonzero(pred, size=capacity, fill_value=copies)  # unused places: `copies`, dropped
            gathered = jax.tree_util.tree_map(lambda x: x[jnp.minimum(index, copies - 1)], operands)
            taken = jax.vmap(fn)(*gathered)
            put = lambda o, t: o.at[index].set(t.astype(o.dtype), mode="drop")  # noqa: E731
            return jax.tree_util.tree_map(put, otherwise, taken)

        def every():
            taken = jax.vmap(fn)(*operands)
            where = lambda o: pred.reshape(pred.shape + (1,) * (o.ndim - 1))  # noqa: E731
            return jax.tree_util.tree_map(lambda o, t: jnp.where(where(o), t.astype(o.dtype), o), otherwise, taken)

        count = jnp.sum(pred)
        branch = jnp.where(count == 0, 0, jnp.where(count <= capacity, 1, 2))
        return jax.lax.switch(branch, (lambda: otherwise, some, every))

    @apply.def_vmap
    def apply_batched(axis_size, in_batched, *args):
        def fold(x, batched):  # [axis_size, n, ...] -> [axis_size * n, ...]
            x = x if batched else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x))
            return x.reshape((-1,) + x.shape[2:])

        out = apply(*jax.tree_util.tree_map(fold, args, tuple(in_batched)))
        unfold = lambda x: x.reshape((axis_size, -1) + x.shape[1:])  # noqa: E731
        return jax.tree_util.tree_map(unfold, out), jax.tree_util.tree_map(lambda _: True, out)

    return apply
