"""A branch that few copies of a vmapped computation take, computed only for those copies.

Under ``vmap`` a ``lax.cond`` whose predicate differs between copies becomes a ``select`` that computes
both branches for every copy. Where one branch is costly and rarely taken (an environment's new path once
a goal is reached, a memory's write at the end of a segment, the value of an episode cut by its time
limit), that makes every step pay for it. :func:`rarely` has its own batching rule instead: in each
group of contiguous copies it gathers those whose predicate holds, up to a fixed share of the group,
computes the branch for those only and scatters the results back (nothing when no copy takes it); when
more copies of a group take it in one step than the share holds, it computes the branch for all copies,
as ``select`` would. Either way the results are the same as ``jnp.where(pred, fn(*operands), otherwise)``
copy by copy.

Operands that are the same for every copy (a network's parameters) can be passed as ``shared``: they reach
``fn`` unbatched, so that a matrix product with them stays one product over the gathered copies rather
than one per copy.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

# The branch is computed for at most this share of a group's copies without falling back to all of them.
SHARE = 8
# Copies are compacted in groups of contiguous copies of at most this many (the largest power of two that
# divides the batch), so that where a batch is sharded over devices in blocks that hold a multiple of it, no
# copy moves between devices.
GROUP = 64


def rarely(pred: jax.Array, fn: Callable[..., Any], otherwise: Any, *operands: Any, shared: Any = None) -> Any:
    """``fn(*operands)`` if ``pred`` else ``otherwise``; under ``vmap``, ``fn`` runs only where ``pred`` holds.

    Args:
        pred: scalar bool.
        fn: a pure function of ``operands`` alone (no traced values closed over) that returns a pytree
            shaped as ``otherwise``; called as ``fn(shared, *operands)`` where ``shared`` is given.
        otherwise: the result where ``pred`` is false.
        *operands: ``fn``'s arguments (pytrees).
        shared: a pytree that the innermost ``vmap`` does not batch (e.g. parameters); ``fn`` gets it as is,
            not a copy per copy. Outer ``vmap`` s may batch it.

    Returns:
        A pytree shaped as ``otherwise``. Differentiable: its derivatives are those of ``where(pred,
        fn(...), otherwise)``, computed that way (for every copy).
    """
    if shared is None:
        return rarely(pred, lambda _, *args: fn(*args), otherwise, *operands, shared=())
    apply = _in_groups(fn)

    @jax.custom_jvp
    def branch(pred, otherwise, shared, *operands):
        # A group axis of one copy, which the batching rule widens (the innermost vmap) or batches (the
        # others); `shared` has no such axis: one entry per group, not per copy.
        lead = lambda tree: jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], tree)  # noqa: E731
        out = apply(lead(pred), lead(otherwise), shared, *lead(operands))
        return jax.tree_util.tree_map(lambda x: x[0], out)

    @branch.defjvp
    def branch_jvp(primals, tangents):  # the custom batching rule has no derivative: take select's
        pred, *differentiable = primals

        def selected(otherwise, shared, *operands):
            return select(pred, fn(shared, *operands), otherwise)

        _, tangent = jax.jvp(selected, tuple(differentiable), tuple(tangents[1:]))
        return branch(*primals), tangent

    return branch(pred, otherwise, shared, *operands)


def rarely_rows(pred: jax.Array, fn: Callable[..., Any], otherwise: Any, *operands: Any, shared: Any = ()) -> Any:
    """:func:`rarely` row by row: ``select(pred, fn(shared, *operands), otherwise)`` for ``pred [B]`` and
    pytrees whose leaves have the rows as leading axis, with ``fn`` (a function of such batches, ``shared``
    first) computed only for the rows where ``pred`` holds, each as a batch of one."""

    def one_row(shared, *row):
        out = fn(shared, *jax.tree_util.tree_map(lambda a: a[None], row))
        return jax.tree_util.tree_map(lambda a: a[0], out)

    each = lambda p, o, *ops: rarely(p, one_row, o, *ops, shared=shared)  # noqa: E731
    return jax.vmap(each)(pred, otherwise, *operands)


def select(pred: jax.Array, taken: Any, otherwise: Any) -> Any:
    """``where(pred, taken, otherwise)`` leaf by leaf (``taken`` cast to ``otherwise``'s dtypes), ``pred`` over
    the leading axes of every leaf."""

    def leaf(t, o):
        return jnp.where(pred.reshape(pred.shape + (1,) * (o.ndim - pred.ndim)), t.astype(o.dtype), o)

    return jax.tree_util.tree_map(leaf, taken, otherwise)


def _in_groups(fn):
    """``apply(pred [*B, g], otherwise [*B, g, ...], shared [*B, ...], *operands [*B, g, ...])``:
    :func:`rarely` over groups of ``g`` copies, the groups laid out over the batch axes ``B``."""

    @jax.custom_batching.custom_vmap
    def apply(pred, otherwise, shared, *operands):
        batch_axes, size = pred.ndim - 1, pred.shape[-1]
        capacity = -(-size // SHARE)

        def each_group(f):
            for _ in range(batch_axes):
                f = jax.vmap(f)
            return f

        def some(pred, otherwise, shared, *operands):  # one group: every copy that takes the branch (<= capacity)
            (index,) = jnp.nonzero(pred, size=capacity, fill_value=size)  # unused places: `size`, dropped
            gathered = jax.tree_util.tree_map(lambda x: x[jnp.minimum(index, size - 1)], operands)
            taken = jax.vmap(fn, (None,) + (0,) * len(operands))(shared, *gathered)
            put = lambda o, t: o.at[index].set(t.astype(o.dtype), mode="drop")  # noqa: E731
            return jax.tree_util.tree_map(put, otherwise, taken)

        def every(pred, otherwise, shared, *operands):  # one group: the branch for all its copies, as select would
            return select(pred, jax.vmap(fn, (None,) + (0,) * len(operands))(shared, *operands), otherwise)

        most = jnp.max(jnp.sum(pred, axis=-1))  # the most copies one group asks for
        branch = jnp.where(most == 0, 0, jnp.where(most <= capacity, 1, 2))
        args = (pred, otherwise, shared, *operands)
        branches = (lambda: otherwise, lambda: each_group(some)(*args), lambda: each_group(every)(*args))
        return jax.lax.switch(branch, branches)

    @apply.def_vmap
    def apply_batched(axis_size, in_batched, pred, otherwise, shared, *operands):
        def widen(tree, batched, size=axis_size):  # a leading axis of `size` where `batched` says there is none
            grow = lambda x, b: x if b else jnp.broadcast_to(x, (size,) + jnp.shape(x))  # noqa: E731
            return jax.tree_util.tree_map(grow, tree, batched)

        batched = (in_batched[0], in_batched[1], tuple(in_batched[3:]))
        pred, otherwise, operands = widen((pred, otherwise, operands), batched)
        if pred.shape[1:] != (1,):  # grouped already: the new axis lays out more groups
            out = apply(pred, otherwise, widen(shared, in_batched[2]), *operands)
        else:  # the innermost vmap (the copies): groups of contiguous copies
            if any(jax.tree_util.tree_leaves(in_batched[2])):
                raise ValueError("rarely: `shared` must be the same for every copy of the innermost vmap")
            size = axis_size if axis_size <= SHARE else math.gcd(axis_size, GROUP)
            regroup = lambda x: x.reshape((axis_size // size, size) + x.shape[2:])  # noqa: E731
            pred, otherwise, operands = jax.tree_util.tree_map(regroup, (pred, otherwise, operands))
            out = apply(pred, otherwise, widen(shared, in_batched[2], axis_size // size), *operands)  # one per group
            out = jax.tree_util.tree_map(lambda x: x.reshape((axis_size, 1) + x.shape[2:]), out)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    return apply
