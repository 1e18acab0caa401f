"""Context editing ("Memory as Action", Zhang et al. 2025) with token ids in place of a language model.

A stream of items arrives one per step: facts (``key -> value``), updates that give a key a new value
(the latest value wins), distractors and queries. The agent's memory is a working context of
``context_size`` slots that only its own edits change: each step it may write the current item into a
slot, delete a slot or merge two items into one slot, and at a query it answers from what it kept.
Every occupied slot costs ``slot_cost`` per step, so the best agent keeps exactly what is still needed.
The stream makes that learnable: each fact is asked about exactly once (after that it is never needed,
though its key may come back in a new fact), at most ``max_open`` facts await their query at a time and
no two of them share a key, and distractors are never asked about.

Variants (registered below): ``ContextEdit-KVUpdate-v0`` (key-value recall with updates),
``ContextEdit-MultiHop-v0`` (the answer needs two facts, ``a -> b`` and ``b -> v``) and
``ContextEdit-Distractor-v0`` (a long stream that is mostly distractors). How the stream is drawn is
described in :mod:`mnemax.envs.tasks.context_edit_stream`; what follows is all an agent sees.

Tokens
------
One vocabulary: ``0`` padding, ``1 .. K`` keys, ``K+1 .. K+V`` values (``K = num_keys``,
``V = num_values``). Answers are value indices ``0 .. V-1``: value token ``K + 1 + v`` is answer ``v``.

Observation: ``int32[context_size + 1, 5]``
-------------------------------------------
Rows ``0 .. C-1`` are the context slots (as left by the previous step's edit), row ``C`` the current
item. Each row is ``[tag, tok1, tok2, tok3, age]``::

    tag  name         tok1  tok2   tok3   meaning
    0    empty        0     0      0      an empty slot
    1    fact         key   value  0      key -> value (a chain link ``a -> b`` has a key as its value)
    2    update       key   value  0      key's value is now value; it replaces every earlier one
    3    query        key   0      0      answer: the current value of key
    4    chain-query  a     0      0      answer: the current value of the value of a (via a -> b -> v)
    5    distractor   key   value  0      fact-shaped noise; never asked about
    6    compound     a     b      v      a merged chain a -> b -> v (made by merges; see compound_prob)

``age`` is the number of steps since the row's value (its last token) arrived: 0 for the current item
and for empty slots, ``t - s`` for a slot whose value arrived at step ``s``.

Action: ``int32[4] = [op, slot, source, answer]`` in ``MultiDiscrete([4, C, C + 1, V])``
-----------------------------------------------------------------------------------------
``op``: 0 keep (no edit) -- 1 write: ``slot`` <- the current item, overwriting -- 2 delete ``slot`` --
3 merge: ``slot`` <- merge(``slot``, ``source``), where ``source == C`` is the current item and
``source < C`` another slot, which is then emptied. A merge combines two items into one (``x`` in
``slot``, ``y`` the source; facts means facts or updates):

* two facts with the same key: the newer one (the key's latest value);
* a fact ``a -> b`` and a fact ``b -> v`` (either order): the compound ``[a, b, v]``;
* a compound ``a -> b -> v`` and a fact ``b -> w``: the compound with the newer of ``v`` and ``w``.

Any other pair (empty slots, queries, distractors, ``source == slot``) leaves the context unchanged.
``answer`` is graded only when the current item is a query (or chain-query) and ignored otherwise.

Reward, info and episodes
-------------------------
``reward = [answer correct at a query] - slot_cost * occupied``, where ``occupied`` counts the slots in
use after this step's edit. Wrong answers cost nothing (answering at random scores ``1/V``). An episode
is exactly ``stream_length`` steps (terminated after the last item; the final observation's current
row is empty). ``info`` on every step:

* ``is_query`` (bool): the current item -- row ``C`` of the observation acted on -- was a query;
* ``correct`` (bool): ``is_query`` and the answer was right; ``target`` (int32): the right answer, or -1;
* ``edited`` (bool): the edit changed the context, so the next observation shows a different context
  (ages aside). Steps where it is True end the segments of a trajectory (DCPO);
* ``occupied`` (int32): slots in use after the edit (what the slot cost was charged on);
* ``needed`` (int32): facts still needed after this step (arrived, not yet asked about). A slot holds
  what one of them needs at most, so an agent sure to answer every query keeps at least this many slots
  and scores at most ``num_queries - slot_cost * sum(needed)``;
  :func:`mnemax.envs.tasks.context_edit_curators.perfect_curator` scores exactly that;
* ``success`` (bool): at the last step, every query of the episode was answered right (False before).

The stream depends only on the reset key (not on actions or step keys), so rollouts reset with the same
key see the same items: the groups that DCPO's group-normalized advantage compares.

``render`` draws a frame (pure JAX, one row of coloured cells per slot and the current item below);
:func:`render_text` writes the same as text. Scripted baselines live in
:mod:`mnemax.envs.tasks.context_edit_curators`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mnemax.envs.tasks import context_edit_stream as stream
from mnemax.envs.core import rendering, spaces
from mnemax.envs.tasks.context_edit_stream import (
    CHAIN_QUERY,
    COMPOUND,
    EMPTY,
    FACT,
    ITEM_WIDTH,
    NUM_TAGS,
    QUERY,
    TAG_NAMES,
    UPDATE,
)
from mnemax.envs.core.environment import NO_TIME_LIMIT, Environment, EnvParams, EnvState
from mnemax.envs.core.params import param
from mnemax.envs.core.registration import register

NOOP, WRITE, DELETE, MERGE = range(4)
OBS_WIDTH = ITEM_WIDTH + 1  # the item and its age
# The tags of the items that ask for an answer: with the observation space, all an agent needs to know of
# the observation format (`mnemax.agents.context_editor` reads it to silence the answer elsewhere).
QUERY_TAGS = (QUERY, CHAIN_QUERY)

# Bounds of the sizes, so that a state stays a few kilobytes and step numbers fit int32.
MAX_SLOTS, MAX_TOKENS, MAX_STREAM = 1024, 4096, 1 << 20
_SLOTS_WHY = "observations hold a row per slot"
_STREAM_WHY = "step numbers are int32"


@struct.dataclass
class ContextEditParams(EnvParams):
    """Task parameters. Shape-giving fields are static (changing them recompiles).

    ``max_open`` bounds the facts needed at once (so ``context_size >= max_open`` lets an agent keep them
    all); ``distractor_rate`` and ``update_rate`` are the chances that a step not taken by a due event is
    a distractor or an update (a new fact otherwise); a fact is queried ``min_query_delay ..
    max_query_delay`` steps after it arrived (a little later when several events fall due at once,
    earlier only in the last ``hops * max_open`` steps, when the stream must close every open fact).
    """

    context_size: int = param(8, ge=1, le=MAX_SLOTS, static=True, why=_SLOTS_WHY)
    num_keys: int = param(16, ge=1, le=MAX_TOKENS, static=True, why="every step draws a number per key")
    num_values: int = param(16, ge=2, le=MAX_TOKENS, static=True, why="answers are a choice among the values")
    hops: int = param(1, ge=1, le=2, static=True)
    max_open: int = param(6, ge=1, le=MAX_SLOTS, static=True, why=_SLOTS_WHY)
    stream_length: int = param(64, ge=1, le=MAX_STREAM, why=_STREAM_WHY)
    distractor_rate: float = param(0.2, ge=0.0, le=1.0)
    update_rate: float = param(0.3, ge=0.0, le=1.0)
    min_query_delay: int = param(8, ge=1, le=MAX_STREAM, why=_STREAM_WHY)
    max_query_delay: int = param(32, ge=1, le=MAX_STREAM, why=_STREAM_WHY)
    slot_cost: float = param(0.005, ge=0.0)
    # A curriculum for two hops (training only): the chance that a chain's second link arrives already
    # merged with its first, as the compound a -> b -> v, so that an editor meets compounds, and learns to
    # answer from them, before merging pays it anything.
    compound_prob: float = param(0.0, ge=0.0, le=1.0)
    # Episodes end with the stream; this generic limit is set out of its way.
    max_steps_in_episode: int = NO_TIME_LIMIT


@struct.dataclass
class ContextEditState(EnvState):
    """``slots`` int32[C, 4] items, ``stamps`` int32[C] the step each slot's value arrived, ``item``
    int32[4] the current item and ``target`` its answer (-1 unless a query), ``threads`` the stream's
    bookkeeping, ``seed`` the episode's stream seed; the counters decide ``success``."""

    slots: jax.Array
    stamps: jax.Array
    item: jax.Array
    target: jax.Array
    threads: stream.Threads
    seed: jax.Array
    num_queries: jax.Array
    num_correct: jax.Array


def _is_fact(item) -> jax.Array:
    return (item[0] == FACT) | (item[0] == UPDATE)


def merge_items(x, x_stamp, y, y_stamp) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Merge item ``y`` into item ``x``: ``(item, stamp, ok)``; ``ok`` is False when the pair does not
    merge (then ``item, stamp`` are ``x, x_stamp``). See the module docstring for the rules; a stamp
    is the step at which the item's value arrived, and ties go to ``y``."""
    fact_x, fact_y = _is_fact(x), _is_fact(y)
    y_newer = y_stamp >= x_stamp
    newest_stamp = jnp.maximum(x_stamp, y_stamp)
    same_key = fact_x & fact_y & (x[1] == y[1])
    x_then_y = fact_x & fact_y & (x[2] == y[1])  # x = a -> b, y = b -> v
    y_then_x = fact_x & fact_y & (y[2] == x[1])  # y = a -> b, x = b -> v
    refresh_x = (x[0] == COMPOUND) & fact_y & (y[1] == x[2])  # x = a -> b -> v, y = b -> w
    refresh_y = fact_x & (y[0] == COMPOUND) & (x[1] == y[2])  # x = b -> w, y = a -> b -> v
    cases = [
        (same_key, jnp.where(y_newer, y, x), newest_stamp),
        (x_then_y, stream.make_item(COMPOUND, x[1], x[2], y[2]), y_stamp),
        (y_then_x, stream.make_item(COMPOUND, y[1], y[2], x[2]), x_stamp),
        (refresh_x, stream.make_item(COMPOUND, x[1], x[2], jnp.where(y_newer, y[2], x[3])), newest_stamp),
        (refresh_y, stream.make_item(COMPOUND, y[1], y[2], jnp.where(y_newer, y[3], x[2])), newest_stamp),
    ]
    item, stamp = x, x_stamp
    for condition, merged, merged_stamp in reversed(cases):  # the first matching rule wins
        item = jnp.where(condition, merged, item)
        stamp = jnp.where(condition, merged_stamp, stamp)
    ok = same_key | x_then_y | y_then_x | refresh_x | refresh_y
    return item, stamp, ok


def apply_edit(slots, stamps, item, t, action) -> tuple[jax.Array, jax.Array]:
    """The context after the edit ``action[:3] = [op, slot, source]`` at step ``t`` with current
    ``item``: ``(slots int32[C, 4], stamps int32[C])``. Indices out of range are clipped."""
    size = slots.shape[0]
    op = action[0]
    i = jnp.clip(action[1], 0, size - 1)
    source = jnp.clip(action[2], 0, size)
    from_item = source == size
    j = jnp.minimum(source, size - 1)
    y = jnp.where(from_item, item, slots[j])
    y_stamp = jnp.where(from_item, t, stamps[j])
    merged, merged_stamp, merges = merge_items(slots[i], stamps[i], y, y_stamp)
    merges = (op == MERGE) & merges & (from_item | (j != i))

    # Row masks and selects rather than scatters: cheaper for XLA, especially under vmap.
    rows = jnp.arange(size)
    target = rows == i
    cleared = (target & (op == DELETE)) | ((rows == j) & merges & ~from_item)
    new_item = jnp.select([op == WRITE, merges], [item, merged], slots[i])
    new_stamp = jnp.select([op == WRITE, merges], [t, merged_stamp], stamps[i])
    slots = jnp.where(cleared[:, None], 0, jnp.where(target[:, None], new_item, slots))
    stamps = jnp.where(cleared, 0, jnp.where(target, new_stamp, stamps))
    return slots, stamps


def is_query_item(item) -> jax.Array:
    """Whether an item (or observation row) ``[..., >= 1]`` asks for an answer (its tag is in ``QUERY_TAGS``)."""
    return jnp.isin(item[..., 0], jnp.asarray(QUERY_TAGS))


class ContextEdit(Environment[ContextEditState, ContextEditParams]):
    """A context-editing task; see the module docstring for observation, action, reward and info."""

    cell_px = 12
    _columns = 8  # tag, three tokens, a gap, and a three-cell age bar

    @property
    def default_params(self) -> ContextEditParams:
        return ContextEditParams()

    def validate_params(self, params: ContextEditParams) -> None:
        super().validate_params(params)
        p = params
        relations = [  # (holds, field, what the field must be)
            (p.max_open <= p.context_size, "max_open", f"<= context_size ({p.context_size})"),
            (
                p.num_keys >= p.hops * p.max_open,
                "num_keys",
                f">= hops * max_open = {p.hops * p.max_open} (open facts never share a key)",
            ),
            (
                p.stream_length > p.min_query_delay,
                "stream_length",
                f"> min_query_delay ({p.min_query_delay}), or no fact could be asked about",
            ),
            (
                p.distractor_rate + p.update_rate < 1.0,
                "distractor_rate",
                f"< 1 - update_rate ({p.update_rate}): the rest of the free steps bring new facts",
            ),
            (p.min_query_delay >= p.hops, "min_query_delay", f">= hops ({p.hops})"),
            (p.max_query_delay >= p.min_query_delay, "max_query_delay", f">= min_query_delay ({p.min_query_delay})"),
        ]
        for holds, field, rule in relations:
            if not holds:
                raise ValueError(f"{field} must be {rule}, got {getattr(p, field)!r}")

    def demonstration(self, obs: jax.Array, params: ContextEditParams) -> tuple[jax.Array, jax.Array]:
        """A teacher's action for one observation and the components of it that matter:
        :func:`mnemax.envs.tasks.context_edit_curators.demonstration` (the oracle curator)."""
        from mnemax.envs.tasks import context_edit_curators  # it imports this module

        return context_edit_curators.demonstration(obs, params)

    # ----------------------------------------------------------------- dynamics
    def _arrive(self, threads, seed, t, params):
        """Stream item ``t`` (an empty row once the stream is over)."""
        threads, item, target = stream.next_item(threads, t, seed, params)
        over = t >= params.stream_length
        return threads, jnp.where(over, 0, item), jnp.where(over, -1, target)

    def initial_state(self, key, params):
        seed = jax.random.bits(key, (), jnp.uint32)
        threads, item, target = self._arrive(stream.Threads.empty(params.max_open), seed, 0, params)
        return ContextEditState(
            time=jnp.int32(0),
            slots=jnp.zeros((params.context_size, ITEM_WIDTH), jnp.int32),
            stamps=jnp.zeros(params.context_size, jnp.int32),
            item=item,
            target=target,
            threads=threads,
            seed=seed,
            num_queries=jnp.int32(0),
            num_correct=jnp.int32(0),
        )

    def transition(self, key, state, action, params):
        t = state.time
        action = jnp.asarray(action, jnp.int32)
        is_query = is_query_item(state.item)
        correct = is_query & (action[3] == state.target)
        slots, stamps = apply_edit(state.slots, state.stamps, state.item, t, action)
        occupied = jnp.sum(slots[:, 0] != EMPTY).astype(jnp.int32)
        edited = jnp.any(slots != state.slots) | jnp.any(stamps != state.stamps)
        needed = jnp.sum(state.threads.open).astype(jnp.int32)  # open after item t, before item t + 1
        threads, item, target = self._arrive(state.threads, state.seed, t + 1, params)
        num_queries = state.num_queries + is_query
        num_correct = state.num_correct + correct
        terminated = t + 1 >= params.stream_length
        reward = correct.astype(jnp.float32) - params.slot_cost * occupied
        info = {
            "success": terminated & (num_correct == num_queries),
            "is_query": is_query,
            "correct": correct,
            "target": state.target,
            "edited": edited,
            "occupied": occupied,
            "needed": needed,
        }
        state = state.replace(
            slots=slots,
            stamps=stamps,
            item=item,
            target=target,
            threads=threads,
            num_queries=num_queries,
            num_correct=num_correct,
        )
        return state, reward, terminated, info

    # ----------------------------------------------------------------- what the agent sees
    def observe(self, state, params):
        occupied = state.slots[:, 0] != EMPTY
        ages = jnp.where(occupied, state.time - state.stamps, 0)
        rows = jnp.concatenate([state.slots, state.item[None]], axis=0)
        ages = jnp.concatenate([ages, jnp.zeros(1, jnp.int32)])
        return jnp.concatenate([rows, ages[:, None]], axis=1).astype(jnp.int32)

    def observation_space(self, params):
        vocab = int(params.num_keys) + int(params.num_values)
        high = np.array([NUM_TAGS - 1, vocab, vocab, vocab, int(params.stream_length)], np.int32)
        shape = (int(params.context_size) + 1, OBS_WIDTH)
        return spaces.Box(0, np.broadcast_to(high, shape), shape, jnp.int32)

    def action_space(self, params):
        size = int(params.context_size)
        return spaces.MultiDiscrete([4, size, size + 1, int(params.num_values)])

    # ----------------------------------------------------------------- pictures and text
    def render(self, state, params):
        """The slots as rows of coloured cells, the current item one row below them. Per row: the tag
        cell (fact green, update amber, query blue, chain-query violet, distractor grey, compound teal),
        three token cells (keys squares, values discs, coloured by id) and a bar as long as the age."""
        px, columns = self.cell_px, self._columns
        obs = self.observe(state, params)
        size = params.context_size
        rows = jnp.concatenate([obs[:size], jnp.zeros((1, OBS_WIDTH), jnp.int32), obs[size:]])  # gap row
        height, width = (size + 2) * px, columns * px
        ys, xs = rendering.pixel_centers(height, width)
        row, col = (ys // px).astype(np.int32), (xs // px).astype(np.int32)
        local_y, local_x = ys - row * px, xs - col * px
        inset = (local_y >= 1) & (local_y < px - 1) & (local_x >= 1) & (local_x < px - 1)
        disc = (local_y - px / 2) ** 2 + (local_x - px / 2) ** 2 <= (px / 2 - 1.5) ** 2

        tags = rows[:, 0]
        tokens = rows[:, 1:4]
        token_colors = _token_colors(tokens, params.num_keys)  # [R, 3, 3]
        cell_colors = jnp.concatenate(
            [jnp.asarray(_TAG_COLORS)[tags][:, None], token_colors, jnp.zeros((rows.shape[0], columns - 4, 3))], axis=1
        )
        token_cell = (col >= 1) & (col <= 3)
        tok = tokens[row, np.clip(col - 1, 0, 2)]
        shape = jnp.where(token_cell & stream.is_value_token(tok, params.num_keys), disc, inset)
        filled = shape & (jnp.where(token_cell, tok, tags[row]) != 0) & (col <= 3)
        age_frac = rows[:, 4] / jnp.maximum(params.stream_length, 1)
        bar = inset & (col >= 5) & ((xs - 5 * px) < age_frac[row] * 3 * px) & (tags[row] != EMPTY)

        image = rendering.canvas(height, width, (0.1, 0.1, 0.12))
        image = rendering.paint(image, inset & (col <= 3) & (row != size), (0.16, 0.16, 0.19))
        image = jnp.where(filled[..., None], cell_colors[row, col], image)
        image = rendering.paint(image, bar, (0.85, 0.85, 0.85))
        return rendering.to_uint8(image)

    def render_text(self, state, params) -> str:
        return render_text(state, params)


# A NumPy constant, not a jax.Array: creating one at import would start the JAX backend, which must wait
# for jax.distributed.initialize() in a multi-process run.
_TAG_COLORS = np.array(
    [
        (0.1, 0.1, 0.12),  # empty
        (0.25, 0.75, 0.35),  # fact
        (0.95, 0.7, 0.15),  # update
        (0.25, 0.5, 1.0),  # query
        (0.6, 0.35, 0.95),  # chain-query
        (0.5, 0.5, 0.5),  # distractor
        (0.15, 0.7, 0.7),  # compound
    ],
    np.float32,
)


def _token_colors(tokens, num_keys: int) -> jax.Array:
    """RGB per token: hues spread by the golden ratio over keys and over values; padding black."""
    is_value = stream.is_value_token(tokens, num_keys)
    index = jnp.where(is_value, tokens - num_keys - 1, tokens - 1)
    hue = jnp.mod(index * 0.618034 + jnp.where(is_value, 0.3, 0.0), 1.0)[..., None]
    rgb = jnp.clip(jnp.abs(jnp.mod(hue * 6.0 + jnp.array([0.0, 4.0, 2.0]), 6.0) - 3.0) - 1.0, 0.0, 1.0)
    rgb = 0.25 + 0.7 * rgb
    return jnp.where((tokens > 0)[..., None], rgb, 0.0)


def token_name(tok: int, num_keys: int) -> str:
    """``k3`` for key index 3, ``v7`` for value index 7, ``_`` for padding."""
    tok = int(tok)
    if tok == 0:
        return "_"
    return f"k{tok - 1}" if tok <= num_keys else f"v{tok - num_keys - 1}"


def item_text(row, num_keys: int) -> str:
    """One item (``[tag, tok1, tok2, tok3, ...]``) as text, e.g. ``fact k3 -> v7``."""
    tag = int(row[0])
    a, b, c = (token_name(tok, num_keys) for tok in row[1:4])
    if tag == EMPTY:
        return "-"
    if tag in (QUERY, CHAIN_QUERY):
        return f"{TAG_NAMES[tag]} {a} ?"
    if tag == COMPOUND:
        return f"compound {a} -> {b} -> {c}"
    return f"{TAG_NAMES[tag]} {a} -> {b}"


def render_text(state: ContextEditState, params: ContextEditParams) -> str:
    """A human-readable page for one step: the slots with their ages, then the current item (with the
    answer it asks for). Pure Python on host copies of ``state``."""
    time = int(state.time)
    slots = np.asarray(state.slots)
    stamps = np.asarray(state.stamps)
    occupied = int(np.sum(slots[:, 0] != EMPTY))
    lines = [
        f"step {time}/{int(params.stream_length)}  occupied {occupied}/{params.context_size}  "
        f"needed {int(np.sum(np.asarray(state.threads.stage) != stream.IDLE))}"
    ]
    width = len(str(params.context_size - 1))
    for i, row in enumerate(slots):
        age = f"  (age {time - int(stamps[i])})" if row[0] != EMPTY else ""
        lines.append(f"  slot {i:>{width}}: {item_text(row, params.num_keys)}{age}")
    item = np.asarray(state.item)
    current = item_text(item, params.num_keys)
    if item[0] in (QUERY, CHAIN_QUERY):
        current += f"   (answer v{int(state.target)})"
    lines.append(f"  item {'':>{width}}: {current}")
    return "\n".join(lines)


register(
    "ContextEdit-KVUpdate-v0",
    ContextEdit,
    "context editing: key-value recall with updates, 8 slots, 64 items",
)
register(
    "ContextEdit-MultiHop-v0",
    ContextEdit,
    "context editing: two-hop lookups (a -> b, b -> v), 8 slots, 64 items",
    hops=2,
    num_keys=24,
    max_open=4,
    update_rate=0.2,
)
register(
    "ContextEdit-Distractor-v0",
    ContextEdit,
    "context editing: a 256-item stream of mostly distractors, queries 32-128 steps after the fact",
    stream_length=256,
    max_open=4,
    distractor_rate=0.8,
    update_rate=0.1,
    min_query_delay=32,
    max_query_delay=128,
)
