"""Scripted curators for the context-editing tasks: baselines that are pure JAX policies
``(obs, params) -> action`` (``obs`` as in :mod:`mnemax.envs.tasks.context_edit`, jit- and vmap-able).

* :func:`perfect_curator` keeps exactly the facts still needed: it writes each fact into a free slot,
  merges updates (and the second link of a chain) into the slot they concern, deletes a fact once it
  has been asked about, ignores distractors, and answers from its context. It answers every query with
  ``needed`` slots occupied, the least any agent that answers every query can hold.
  :func:`perfect_without_merges` follows the same rules with writes in place of merges (how much of a
  task needs the merge op). :func:`demonstration` gives its action to a learner as a teacher's, with the
  components of it that matter.
* :func:`keep_latest` (FIFO) writes every item into a free slot or over the oldest one: the last ``k``
  items, a truncated transcript. It loses facts queried long after they appeared.
* :func:`keep_everything` writes every item into a free slot: the whole transcript. It needs
  ``context_size >= stream_length`` (see :func:`unlimited_context`) and pays for every slot.

:func:`rollout` plays whole episodes and :func:`run_curator` reports their return, accuracy and
occupied slots.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from mnemax.envs.tasks.context_edit import DELETE, MERGE, NOOP, WRITE, ContextEditParams
from mnemax.envs.tasks.context_edit_stream import (
    CHAIN_QUERY,
    COMPOUND,
    EMPTY,
    FACT,
    QUERY,
    UPDATE,
    is_value_token,
)

_FAR = jnp.iinfo(jnp.int32).max


def _newest(mask: jax.Array, ages: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(found, index)`` of the youngest row where ``mask`` holds."""
    return jnp.any(mask), jnp.argmin(jnp.where(mask, ages, _FAR))


def value_of(slots: jax.Array, ages: jax.Array, key: jax.Array) -> jax.Array:
    """The latest value token the context holds for token ``key`` (0 if none): from a fact or update
    ``key -> x``, a compound headed by ``key`` (its bridge) or a compound bridging through ``key``."""
    tag, tok1, tok2, tok3 = slots[:, 0], slots[:, 1], slots[:, 2], slots[:, 3]
    fact = ((tag == FACT) | (tag == UPDATE)) & (tok1 == key)
    head = (tag == COMPOUND) & (tok1 == key)
    bridge = (tag == COMPOUND) & (tok2 == key)
    found, i = _newest(fact | head | bridge, ages)
    value = jnp.where(bridge[i], tok3[i], tok2[i])
    return jnp.where(found & (key > 0), value, 0)


def free_or_oldest(tag: jax.Array, ages: jax.Array) -> jax.Array:
    """The first empty slot, or the oldest one when none is empty (where a write loses least)."""
    return jnp.where(jnp.any(tag == EMPTY), jnp.argmax(tag == EMPTY), jnp.argmax(ages))


def context_answer(obs: jax.Array, params: ContextEditParams) -> tuple[jax.Array, jax.Array]:
    """``(known, answer)``: whether the context holds an answer to the current item if it is a
    (chain-)query, and that answer (a value index; 0, a guess, when the context does not know)."""
    size = params.context_size
    slots, ages, item = obs[:size, :4], obs[:size, 4], obs[size]
    value = value_of(slots, ages, item[1])
    value = jnp.where(item[0] == CHAIN_QUERY, value_of(slots, ages, value), value)
    known = is_value_token(value, params.num_keys)
    return known, jnp.where(known, value - params.num_keys - 1, 0).astype(jnp.int32)


def answer_from_context(obs: jax.Array, params: ContextEditParams) -> jax.Array:
    """The answer (value index) the context gives to the current item if it is a (chain-)query; 0 when
    the context does not know (a guess)."""
    return context_answer(obs, params)[1]


def _action(op, slot, source, answer) -> jax.Array:
    return jnp.stack([jnp.asarray(x, jnp.int32) for x in (op, slot, source, answer)])


def perfect_curator(obs: jax.Array, params: ContextEditParams) -> jax.Array:
    """Keeps exactly the facts still needed (see the module docstring)."""
    size = params.context_size
    slots, ages, item = obs[:size, :4], obs[:size, 4], obs[size]
    tag, tok1, tok2 = slots[:, 0], slots[:, 1], slots[:, 2]
    fact = (tag == FACT) | (tag == UPDATE)
    compound = tag == COMPOUND
    kind, key, value = item[0], item[1], item[2]
    # The slot an item concerns: the same key (update, query), or the other link of its chain.
    same_thread = (fact & (tok1 == key)) | (compound & ((tok1 == key) | (tok2 == key)))
    chain_partner = fact & ((tok2 == key) | (tok1 == value))
    partner_found, partner = _newest(jnp.where(kind == FACT, chain_partner, same_thread), ages)
    free = jnp.argmax(tag == EMPTY)
    answer = answer_from_context(obs, params)

    is_query = (kind == QUERY) | (kind == CHAIN_QUERY)
    op = jnp.select(
        [is_query & partner_found, ((kind == UPDATE) | (kind == FACT)) & partner_found, kind == FACT],
        [DELETE, MERGE, WRITE],
        NOOP,
    )
    slot = jnp.where(op == WRITE, free, partner)
    return _action(op, slot, size, answer)


def demonstration(obs: jax.Array, params: ContextEditParams) -> tuple[jax.Array, jax.Array]:
    """The oracle's action as a teacher's (see ``kickstart_coef`` in :mod:`mnemax.train.config`):
    ``(action int32[4], relevant bool[4])``, where ``relevant`` marks the components the action depends on:
    the op always, the slot unless the op is keep, the source of a merge only, the answer at queries only."""
    action = perfect_curator(obs, params)
    op, kind = action[0], obs[params.context_size, 0]
    relevant = jnp.stack([True, op != NOOP, op == MERGE, (kind == QUERY) | (kind == CHAIN_QUERY)])
    return action, relevant


def perfect_without_merges(obs: jax.Array, params: ContextEditParams) -> jax.Array:
    """:func:`perfect_curator` with writes in place of merges: an update overwrites the slot of its key
    (which a merge of the two does too), and a chain's other link goes into a free slot, or over the
    oldest one when none is free. What an editor that never learned the merge op can do at best by these
    rules: on KVUpdate all of it; on MultiHop, where a merged chain ``a -> b -> v`` takes one slot and its
    two links two, it runs out of slots once more chains are open than half the context holds."""
    action = perfect_curator(obs, params)
    size = params.context_size
    tag, ages, kind = obs[:size, 0], obs[:size, 4], obs[size, 0]
    slot = jnp.where(kind == UPDATE, action[1], free_or_oldest(tag, ages))
    return jnp.where(action[0] == MERGE, _action(WRITE, slot, size, action[3]), action)


def keep_latest(k: int | None = None) -> Callable[[jax.Array, ContextEditParams], jax.Array]:
    """The FIFO curator over the first ``k`` slots (all of them when ``k`` is None): every item goes into
    a free slot, or over the oldest one when all ``k`` are taken."""

    def curator(obs: jax.Array, params: ContextEditParams) -> jax.Array:
        window = params.context_size if k is None else min(int(k), params.context_size)
        tag, ages = obs[:window, 0], obs[:window, 4]
        slot = free_or_oldest(tag, ages)
        return _action(WRITE, slot, params.context_size, answer_from_context(obs, params))

    return curator


keep_latest_curator = keep_latest()


def keep_everything(obs: jax.Array, params: ContextEditParams) -> jax.Array:
    """Writes every item into a free slot (and nothing once none is left): the whole transcript when
    ``context_size >= stream_length``."""
    free = obs[: params.context_size, 0] == EMPTY
    op = jnp.where(jnp.any(free), WRITE, NOOP)
    return _action(op, jnp.argmax(free), params.context_size, answer_from_context(obs, params))


def unlimited_context(params: ContextEditParams) -> ContextEditParams:
    """``params`` with one slot per stream item, the setting :func:`keep_everything` needs."""
    return params.replace(context_size=max(int(params.context_size), int(params.stream_length)))


def rollout(env, params: ContextEditParams, curator, key: jax.Array, num_episodes: int) -> dict[str, jax.Array]:
    """Play ``num_episodes`` whole episodes (one per key split from ``key``) with ``curator``.

    Returns per-step arrays ``[num_episodes, stream_length]``: ``item`` (int32[..., 4], the current item
    acted on), ``action`` (int32[..., 4]), ``reward`` and the info entries ``is_query``, ``correct``,
    ``target``, ``edited``, ``occupied`` and ``needed``.
    """
    length = int(params.stream_length)
    info_keys = ("is_query", "correct", "target", "edited", "occupied", "needed")

    def episode(key):
        obs, state = env.reset_env(key, params)

        def body(carry, step_key):
            obs, state = carry
            action = curator(obs, params)
            next_obs, state, reward, _, _, info = env.step_env(step_key, state, action, params)
            step = {"item": obs[params.context_size, :4], "action": action, "reward": reward}
            return (next_obs, state), dict(step, **{k: info[k] for k in info_keys})

        keys = jax.random.split(jax.random.fold_in(key, 1), length)
        return jax.lax.scan(body, (obs, state), keys)[1]

    return jax.jit(jax.vmap(episode))(jax.random.split(key, num_episodes))


def summarize(steps: dict[str, jax.Array], params: ContextEditParams) -> dict[str, jax.Array]:
    """Per-episode ``return``, ``accuracy`` (correct / queries; 1 without queries), ``queries``,
    ``mean_occupied``, ``mean_needed``, ``merges`` (merge ops that changed the context) and
    ``best_return`` (``queries - slot_cost * sum(needed)``, the most an agent that answers every query
    can score) from :func:`rollout`'s steps."""
    queries = jnp.sum(steps["is_query"], axis=-1)
    return {
        "return": jnp.sum(steps["reward"], axis=-1),
        "accuracy": jnp.where(queries > 0, jnp.sum(steps["correct"], axis=-1) / jnp.maximum(queries, 1), 1.0),
        "queries": queries,
        "mean_occupied": jnp.mean(steps["occupied"], axis=-1),
        "mean_needed": jnp.mean(steps["needed"], axis=-1),
        "merges": jnp.sum((steps["action"][..., 0] == MERGE) & steps["edited"], axis=-1),
        "best_return": queries - params.slot_cost * jnp.sum(steps["needed"], axis=-1),
    }


def run_curator(env, params: ContextEditParams, curator, key: jax.Array, num_episodes: int) -> dict[str, jax.Array]:
    """:func:`summarize` of :func:`rollout`: per-episode metrics of ``curator``."""
    return summarize(rollout(env, params, curator, key, num_episodes), params)
