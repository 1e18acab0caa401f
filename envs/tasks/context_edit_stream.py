"""Items, tokens and the item stream of the context-editing tasks (see :mod:`mnemax.envs.tasks.context_edit`).

An **item** is ``int32[ITEM_WIDTH] = [tag, tok1, tok2, tok3]``. Tokens share one vocabulary: ``0`` is
padding, ``1 .. num_keys`` are keys and ``num_keys + 1 .. num_keys + num_values`` are values. A *key
index* ``k`` in ``0 .. num_keys-1`` is token ``1 + k``; a *value index* ``v`` (also the answer a query
asks for) is token ``1 + num_keys + v``.

The stream is made of **threads**. A thread is the life of one queried fact: it opens with the fact
(multi-hop: with the first of its two links), may see updates, and closes with its query; it is queried
exactly once and is never needed after that (its keys may come back later in a new thread). At most
``max_open`` threads are open at once, and no two open threads share a key. Items are drawn one step at a
time by :func:`next_item`, from the episode's seed (drawn from the reset key) and the step index only, so
the stream never depends on the agent's actions: rollouts reset with one key see one stream.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

# Item tags. COMPOUND arrives in the stream only with ``compound_prob > 0`` (a curriculum); otherwise only a
# merge makes one.
EMPTY, FACT, UPDATE, QUERY, CHAIN_QUERY, DISTRACTOR, COMPOUND = range(7)
NUM_TAGS = 7
TAG_NAMES = ("empty", "fact", "update", "query", "chain-query", "distractor", "compound")
ITEM_WIDTH = 4

# Thread stages.
IDLE, WAITS_FOR_LINK, WAITS_FOR_QUERY = 0, 1, 2
# Which link of a multi-hop chain: head -> bridge, or bridge -> value.
HEAD_LINK, VALUE_LINK = 0, 1
# What a step of the stream does (the branches of `next_item`).
_ADVANCE, _DISTRACT, _UPDATE, _OPEN = range(4)
_NEVER = jnp.iinfo(jnp.int32).max


def key_token(k):
    """The token of key index ``k`` (keys come first in the vocabulary)."""
    return 1 + k


def value_token(v, num_keys: int):
    """The token of value index ``v``."""
    return 1 + num_keys + v


def is_key_token(tok, num_keys: int):
    return (tok >= 1) & (tok <= num_keys)


def is_value_token(tok, num_keys: int):
    return tok > num_keys


def make_item(tag, tok1=0, tok2=0, tok3=0) -> jax.Array:
    """``int32[4] = [tag, tok1, tok2, tok3]``."""
    return jnp.stack([jnp.asarray(x, jnp.int32) for x in (tag, tok1, tok2, tok3)])


@struct.dataclass
class Threads:
    """The generator's bookkeeping: one entry per possible open thread, each ``int32[max_open]``.

    ``head`` is the queried key; ``bridge`` the middle key of a multi-hop chain (unused with one hop);
    ``value`` the current answer (value index); ``pending_link`` which link of a chain is still to come
    (stage ``WAITS_FOR_LINK``); ``due`` the step at which the next event is due; ``query_at`` the planned
    step of the query.
    """

    stage: jax.Array
    head: jax.Array
    bridge: jax.Array
    value: jax.Array
    pending_link: jax.Array
    due: jax.Array
    query_at: jax.Array

    @classmethod
    def empty(cls, max_open: int) -> Threads:
        zeros = jnp.zeros(max_open, jnp.int32)
        return cls(zeros, zeros, zeros, zeros, zeros, zeros, zeros)

    @property
    def open(self) -> jax.Array:
        return self.stage != IDLE

    def entry(self, j) -> Threads:
        """Thread ``j`` alone (every field a scalar)."""
        return jax.tree_util.tree_map(lambda field: field[j], self)

    def with_entry(self, j, entry: Threads) -> Threads:
        """A copy with thread ``j`` replaced by ``entry`` (a select, which XLA handles more cheaply than a
        scatter, especially under ``vmap``)."""
        hit = jnp.arange(self.stage.shape[0]) == j
        return jax.tree_util.tree_map(lambda field, value: jnp.where(hit, value, field), self, entry)

    def events_to_close(self) -> jax.Array:
        """How many items the open threads still need: a missing link and the query, or the query."""
        return jnp.sum(jnp.where(self.stage == WAITS_FOR_LINK, 2, self.open.astype(jnp.int32)))


def _terminal_key(thread: Threads, hops: int):
    """The key whose fact holds the thread's answer: the head (one hop) or the bridge (two hops)."""
    return thread.bridge if hops == 2 else thread.head


def _link_item(thread: Threads, link, params) -> jax.Array:
    """A fact of ``thread``: ``head -> value`` (one hop), or the chain link ``link`` (two hops)."""
    terminal_key = key_token(_terminal_key(thread, params.hops))
    terminal = make_item(FACT, terminal_key, value_token(thread.value, params.num_keys))
    if params.hops == 1:
        return terminal
    head_link = make_item(FACT, key_token(thread.head), key_token(thread.bridge))
    return jnp.where(link == HEAD_LINK, head_link, terminal)


class Draws(NamedTuple):
    """The uniform numbers in ``[0, 1)`` one stream step may use, drawn together."""

    scalars: jax.Array  # float32[_NUM_SCALARS], indexed by the names below
    thread_noise: jax.Array  # float32[max_open]: picks the thread to update
    head_noise: jax.Array  # float32[num_keys]: picks a new head key
    bridge_noise: jax.Array  # float32[num_keys]: picks a new bridge key

    @classmethod
    def draw(cls, seed: jax.Array, t, params) -> Draws:
        """The numbers of stream step ``t`` of the episode with ``seed`` (uint32)."""
        m, k = params.max_open, params.num_keys
        u = uniform_hash(seed, t, _NUM_SCALARS + m + 2 * k)
        return cls(u[:_NUM_SCALARS], u[_NUM_SCALARS : _NUM_SCALARS + m], u[-2 * k : -k], u[-k:])

    def randint(self, name: int, low, high) -> jax.Array:
        """An integer in ``low .. high-1`` from scalar ``name``."""
        value = low + jnp.floor(self.scalars[name] * (high - low)).astype(jnp.int32)
        return jnp.minimum(value, high - 1)


_BAND, _VALUE, _DELAY, _GAP, _LINK, _SHIFT, _NOISE_KEY, _NOISE_VALUE, _NOISE_KIND = range(9)
_NUM_SCALARS = 9


def _choose(noise: jax.Array, allowed: jax.Array) -> jax.Array:
    """An index drawn uniformly from those where ``allowed`` holds (``noise`` uniform in [0, 1))."""
    return jnp.argmax(jnp.where(allowed, noise, -1.0)).astype(jnp.int32)


def _keys_in_use(threads: Threads, params) -> jax.Array:
    """bool[num_keys]: the keys held by open threads (heads, and bridges with two hops)."""
    keys = jnp.arange(params.num_keys)[:, None]
    used = (keys == threads.head) & threads.open
    if params.hops == 2:
        used = used | ((keys == threads.bridge) & threads.open)
    return jnp.any(used, axis=1)


# Each event returns ``(j, thread, item, target)``: the thread entry it rewrites, that entry's new
# contents, the item it emits and the answer (-1 unless a query).


def _advance(threads: Threads, t, draws: Draws, params):
    """The open thread whose next event is due first gets it: its missing link, else its query."""
    j = jnp.argmin(jnp.where(threads.open, threads.due, _NEVER))
    thread = threads.entry(j)
    needs_link = thread.stage == WAITS_FOR_LINK
    query = make_item(CHAIN_QUERY if params.hops == 2 else QUERY, key_token(thread.head))
    link = _link_item(thread, thread.pending_link, params)
    if params.hops == 2:  # the chain's second link may come merged with its first (`compound_prob`)
        compound = make_item(COMPOUND, key_token(thread.head), key_token(thread.bridge),
                             value_token(thread.value, params.num_keys))  # fmt: skip
        # _NOISE_KIND is a distractor's number, free on a step that advances a thread
        link = jnp.where(draws.scalars[_NOISE_KIND] < params.compound_prob, compound, link)
    item = jnp.where(needs_link, link, query)
    target = jnp.where(needs_link, -1, thread.value)
    return j, thread.replace(stage=jnp.where(needs_link, WAITS_FOR_QUERY, IDLE), due=thread.query_at), item, target


def _distract(threads: Threads, t, draws: Draws, params):
    """A distractor: fact-shaped, with a random key and a random value (or, with two hops, half the time a
    random key as if it were a chain link). It is never queried."""
    num_keys = params.num_keys
    tok2 = value_token(draws.randint(_NOISE_VALUE, 0, params.num_values), num_keys)
    if params.hops == 2:
        as_link = draws.scalars[_NOISE_KIND] < 0.5
        tok2 = jnp.where(as_link, key_token(draws.randint(_NOISE_VALUE, 0, num_keys)), tok2)
    item = make_item(DISTRACTOR, key_token(draws.randint(_NOISE_KEY, 0, num_keys)), tok2)
    return jnp.int32(0), threads.entry(0), item, jnp.int32(-1)


def _update(threads: Threads, t, draws: Draws, params):
    """A complete open thread, drawn uniformly, gets a new value (always different from the old one)."""
    j = _choose(draws.thread_noise, threads.stage == WAITS_FOR_QUERY)
    thread = threads.entry(j)
    shift = 1 + draws.randint(_SHIFT, 0, params.num_values - 1)
    thread = thread.replace(value=(thread.value + shift) % params.num_values)
    item = make_item(UPDATE, key_token(_terminal_key(thread, params.hops)), value_token(thread.value, params.num_keys))
    return j, thread, item, jnp.int32(-1)


def _open(threads: Threads, t, draws: Draws, params):
    """A new thread in the first idle entry: fresh key(s), a random value, a query ``min..max_query_delay``
    steps ahead; with two hops one link now (either one, at random) and the other at a random step between."""
    used = _keys_in_use(threads, params)
    head = _choose(draws.head_noise, ~used)
    bridge = jnp.int32(0)
    if params.hops == 2:
        bridge = _choose(draws.bridge_noise, ~used & (jnp.arange(params.num_keys) != head))
    delay = draws.randint(_DELAY, params.min_query_delay, params.max_query_delay + 1)
    query_at = t + delay
    if params.hops == 2:
        first_link = draws.randint(_LINK, 0, 2)
        stage, pending, due = WAITS_FOR_LINK, 1 - first_link, t + draws.randint(_GAP, 1, delay)
    else:
        first_link, stage, pending, due = HEAD_LINK, WAITS_FOR_QUERY, 0, query_at
    value = draws.randint(_VALUE, 0, params.num_values)
    thread = Threads(*(jnp.asarray(x, jnp.int32) for x in (stage, head, bridge, value, pending, due, query_at)))
    return jnp.argmax(threads.stage == IDLE), thread, _link_item(thread, first_link, params), jnp.int32(-1)


@jax.jit  # one compiled unit even when called eagerly (e.g. an un-jitted vmap of reset)
def next_item(threads: Threads, t, seed, params) -> tuple[Threads, jax.Array, jax.Array]:
    """Stream item number ``t`` of the episode with ``seed``: ``(threads, item int32[4], target)``;
    ``target`` is the answer (value index) when the item is a query, else ``-1``.

    The rules, in order of precedence:

    1. An open thread whose next event is due (or, near the end of the stream, *every* open thread when
       the remaining steps are just enough to close them all) advances: the earliest due gets its
       missing chain link, or else its query, which closes it.
    2. Otherwise a distractor with probability ``distractor_rate``;
    3. else an update of an open complete thread with probability ``update_rate`` (a distractor when
       there is none);
    4. else a new thread, if fewer than ``max_open`` are open and at least ``min_query_delay`` more steps
       than the open threads still need remain (a distractor otherwise).
    """
    draws = Draws.draw(seed, t, params)
    need = threads.events_to_close()
    remaining = params.stream_length - t
    due = jnp.any(threads.open & (threads.due <= t)) | (need >= remaining)
    u = draws.scalars[_BAND]
    can_update = jnp.any(threads.stage == WAITS_FOR_QUERY)
    can_open = jnp.any(threads.stage == IDLE) & (need + params.min_query_delay <= remaining - 1)
    free = jnp.where(
        u < params.distractor_rate,
        _DISTRACT,
        jnp.where(
            u < params.distractor_rate + params.update_rate,
            jnp.where(can_update, _UPDATE, _DISTRACT),
            jnp.where(can_open, _OPEN, _DISTRACT),
        ),
    )
    branch = jnp.where(due, _ADVANCE, free)
    j, thread, item, target = jax.lax.switch(branch, (_advance, _distract, _update, _open), threads, t, draws, params)
    return threads.with_entry(j, thread), item, target


def _mix32(x: jax.Array) -> jax.Array:
    """A bijective uint32 mixer with full avalanche (the "lowbias32" finalizer of C. Wellons)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def uniform_hash(seed: jax.Array, t, n: int) -> jax.Array:
    """``float32[n]`` uniform in ``[0, 1)``: a counter-based hash of ``(seed, t, i)``.

    The stream hashes instead of folding the step into a JAX key: that costs two Threefry calls per item
    (and ``step`` draws an item twice, once for the fresh episode of auto-reset), which made the step
    markedly slower to compile, while an item needs only a few well-mixed numbers, not cryptographic ones.
    """
    golden = jnp.uint32(0x9E3779B9)
    base = _mix32(jnp.asarray(seed, jnp.uint32) ^ _mix32(jnp.asarray(t).astype(jnp.uint32) * golden + golden))
    bits = _mix32(base + jnp.arange(n, dtype=jnp.uint32) * golden)
    return (bits >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)
