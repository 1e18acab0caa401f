"""Memory diagnostics: small question-answer tasks that isolate one kind of memory.

Four tasks follow POPGym (Morad et al., ICLR 2023), with cards dealt from shuffled decks of 52 cards
(4 suits, 13 ranks); two come from the RNN-timescale literature (Khajehabdollahi et al., ICLR 2024):

============== =========================================================== ==============================
task           the answer to give at step ``t``                            Easy / Medium / Hard
============== =========================================================== ==============================
RepeatFirst    the suit of the first card of the episode                   1 / 8 / 16 decks
RepeatPrevious the suit of the ``k``-th most recent card (current = 1st)   (1 deck, k 4) / (2, 32) / (3, 64)
CountRecall    how many value cards of the queried kind were shown so far  1 deck colours / 2 suits / 4 ranks
Autoencode     after watching a deck, its suits in reverse order           1 / 2 / 3 decks
NParity        the parity (XOR) of the last ``n`` bits of a random stream  n 2 / 4 / 8, 64 steps
DelayedMatch   at a probe: is it the sample shown ``delay + 1`` steps ago? delay 4 / 16 / 64, 8 trials
============== =========================================================== ==============================

Every task is a sequence of steps at which the observation poses a question and the action answers
it; some steps are not scored (the first ``k - 1`` cards of RepeatPrevious, Autoencode's watching
phase, DelayedMatch's sample and delay steps). A scored step pays ``+1 / A`` for the right answer and
``-1 / A`` for a wrong one, where ``A`` is the number of scored steps of an episode, so an episode's
return lies in ``[-1, 1]`` (1: every answer right) as in POPGym. Episodes have a fixed length and end
with ``terminated``. ``info["success"]`` is True on the last step of an episode in which every scored
answer was right; ``info["answer"]`` is the right action for the step and ``info["scored"]`` whether
the step counted.

No action changes what a task shows next, so a policy that ignores its history can do no better than
answer, for each observation, the answer most often right after it; ``tests/test_diagnostics.py``
measures that bound for every registered id.

Observations are float32 one-hot vectors (``Box(0, 1)``), actions are ``Discrete``. Sizes that fix
array shapes (decks, counted kinds, stream length, symbols) are static parameters; the others (``k``,
``n``, ``delay``, ``num_trials``, ``distractors``) are traced, so one compiled step serves them all.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from mnemax.envs.tasks import cards

from mnemax.envs.core import spaces
from mnemax.envs.tasks.cards import NUM_SUITS
from mnemax.envs.core.environment import NO_TIME_LIMIT, Environment, EnvParams, EnvState
from mnemax.envs.core.params import param
from mnemax.envs.core.registration import register

# Decks a card task may use: a state keeps the suit of every card dealt (52 bytes per deck).
MAX_DECKS = 256


@struct.dataclass
class AnswerState(EnvState):
    all_correct: jax.Array  # bool: no scored answer of this episode was wrong so far


class AnswerTask(Environment):
    """A task whose every step asks a question (see the module docstring for the reward and success).

    A task defines :meth:`answer` (the right action for the current observation and whether it is
    scored), :meth:`advance` (what it shows next), :meth:`episode_length` and :meth:`num_answers`,
    next to ``initial_state``, ``observe``, the spaces and ``render``.
    """

    def episode_length(self, params) -> jax.Array | int:
        """The number of steps of every episode."""
        raise NotImplementedError

    def num_answers(self, params) -> jax.Array | int:
        """The number of scored steps of every episode."""
        raise NotImplementedError

    def answer(self, state, params) -> tuple[jax.Array, jax.Array]:
        """``(right_action, scored)`` for the observation of ``state`` (int32 and bool scalars)."""
        raise NotImplementedError

    def advance(self, key: jax.Array, state, params):
        """The state after ``state`` has been answered (``time`` is advanced by the caller)."""
        return state

    def transition(self, key, state, action, params):
        right, scored = self.answer(state, params)
        correct = jnp.asarray(action) == right
        scale = 1.0 / jnp.asarray(self.num_answers(params), jnp.float32)
        reward = jnp.where(scored, jnp.where(correct, scale, -scale), 0.0)
        all_correct = state.all_correct & (correct | ~scored)
        terminated = state.time + 1 >= self.episode_length(params)
        next_state = self.advance(key, state, params).replace(all_correct=all_correct)
        info = {"success": terminated & all_correct, "answer": right, "scored": scored}
        return next_state, reward, terminated, info

    def progress(self, state, params) -> jax.Array:
        """The fraction of the episode played, for the progress bar of ``render``."""
        return state.time / jnp.asarray(self.episode_length(params), jnp.float32)

    def _render_rows(self, state, params, *rows):
        bar = cards.progress_bar(self.progress(state, params), max(row.shape[1] for row in rows))
        return cards.stack_rows(*rows, bar)


def _onehot(index, size: int) -> jax.Array:
    """``float32[size]``; an index of ``-1`` gives all zeros (nothing shown)."""
    return jax.nn.one_hot(index, size, dtype=jnp.float32)


def _card_and_flag(suit, flag) -> jax.Array:
    """``float32[5]``: the one-hot suit shown and POPGym's flag (for RepeatFirst: this is the card to
    repeat; RepeatPrevious: answers count from here; Autoencode: name the cards now)."""
    return jnp.concatenate([_onehot(suit, NUM_SUITS), jnp.asarray(flag, jnp.float32)[None]])


# ================================================================================== the POPGym card tasks
@struct.dataclass
class CardParams(EnvParams):
    num_decks: int = param(1, ge=1, le=MAX_DECKS, static=True, why="a state keeps every card dealt, 52 bytes per deck")
    max_steps_in_episode: int = NO_TIME_LIMIT


class CardTask(AnswerTask):
    """A task played with ``num_decks`` decks of 52 cards, one card dealt per step. By default the
    episode has one step per card but the last, which is only shown (POPGym's rules); actions are suits
    and observations a suit and a flag whose meaning each task gives (POPGym's observation tuple)."""

    @property
    def default_params(self) -> CardParams:
        return CardParams()

    def num_cards(self, params) -> int:
        return cards.DECK_SIZE * params.num_decks

    def episode_length(self, params):
        return self.num_cards(params) - 1

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (NUM_SUITS + 1,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(NUM_SUITS)


# ============================================================================================ RepeatFirst
@struct.dataclass
class RepeatFirstState(AnswerState):
    first: jax.Array  # suit of the first card
    card: jax.Array  # suit of the card shown now
    remaining: jax.Array  # int32[4]: cards of each suit still in the deck


class RepeatFirst(CardTask):
    """Cards are dealt one per step; at every step the agent names the suit of the *first* card.

    With ``n = 52 * num_decks`` cards the episode has ``n - 1`` steps, all scored; the last card is
    only shown (POPGym's rules). Observation: ``float32[5]``, the one-hot suit of the card shown now and
    a flag that is 1 on the first step only (POPGym's ``is_start``). Actions: ``Discrete(4)``, a suit.
    """

    def num_answers(self, params):
        return self.episode_length(params)

    def initial_state(self, key, params):
        card, remaining = cards.deal(key, cards.full_deck(params.num_decks, NUM_SUITS))
        return RepeatFirstState(time=jnp.int32(0), all_correct=jnp.bool_(True), first=card, card=card, remaining=remaining)

    def answer(self, state, params):
        return state.first, jnp.bool_(True)

    def advance(self, key, state, params):
        card, remaining = cards.deal(key, state.remaining)
        return state.replace(card=card, remaining=remaining)

    def observe(self, state, params):
        return _card_and_flag(state.card, state.time == 0)

    def render(self, state, params):
        """The first card (framed: the answer), a gap, the card shown now; the episode's progress."""
        strip = cards.tile_strip(jnp.stack([state.first, -1, state.card]), jnp.array([True, False, False]))
        return self._render_rows(state, params, strip)


# ========================================================================================= RepeatPrevious
@struct.dataclass
class DealtState(AnswerState):
    dealt: jax.Array  # int8[num_cards]: the suit of the t-th card dealt, at index t (later ones 0)
    remaining: jax.Array  # int32[4]: cards of each suit still in the deck


class DealtTask(CardTask):
    """A card task whose state keeps the suit of every card dealt, for answers about past cards."""

    def initial_state(self, key, params):
        suit, remaining = cards.deal(key, cards.full_deck(params.num_decks, NUM_SUITS))
        dealt = jnp.zeros(self.num_cards(params), jnp.int8).at[0].set(suit.astype(jnp.int8))
        return DealtState(time=jnp.int32(0), all_correct=jnp.bool_(True), dealt=dealt, remaining=remaining)

    def advance(self, key, state, params):
        """Deal the card that the next step shows, at index ``time + 1`` (none once all are dealt)."""
        suit, remaining = cards.deal(key, state.remaining)
        dealt = state.dealt.at[state.time + 1].set(suit.astype(jnp.int8), mode="drop")
        return state.replace(dealt=dealt, remaining=remaining)


@struct.dataclass
class RepeatPreviousParams(CardParams):
    k: int = param(4, ge=1, le=cards.DECK_SIZE * MAX_DECKS)


class RepeatPrevious(DealtTask):
    """Cards are dealt one per step; the agent names the suit of the ``k``-th most recent card, counting
    the card shown now as the first (``k = 1`` repeats the current card), as POPGym's ``RepeatPrevious``.

    With ``n = 52 * num_decks`` cards the episode has ``n - 1`` steps; the first ``k - 1`` have no
    ``k``-th most recent card and are not scored, so ``n - k`` answers count. Observation:
    ``float32[5]``, the one-hot suit shown now and a flag that is 1 from the first scored step on
    (POPGym's ``should_act``). Actions: ``Discrete(4)``, a suit.
    """

    window = 8  # recent cards drawn by render

    @property
    def default_params(self) -> RepeatPreviousParams:
        return RepeatPreviousParams()

    def validate_params(self, params):
        super().validate_params(params)
        num_cards = self.num_cards(params)
        if not 1 <= int(params.k) < num_cards:
            raise ValueError(f"k must be in [1, {num_cards}) for {params.num_decks} deck(s) of 52 cards, got {params.k}")

    def num_answers(self, params):
        return self.num_cards(params) - params.k

    def answer(self, state, params):
        back = state.time - (params.k - 1)
        return state.dealt[jnp.maximum(back, 0)].astype(jnp.int32), back >= 0

    def observe(self, state, params):
        return _card_and_flag(state.dealt[state.time], self.answer(state, params)[1])  # flag: this step is scored

    def render(self, state, params):
        """Left: the card to name (framed; empty before the first scored step). Right: the last
        ``window`` cards, the current one rightmost, framed where it is the card to name."""
        right, scored = self.answer(state, params)
        offsets = jnp.arange(self.window)[::-1]  # cards dealt this many steps ago
        recent = jnp.where(state.time - offsets >= 0, state.dealt[jnp.maximum(state.time - offsets, 0)], -1)
        framed = scored & (offsets == params.k - 1)
        kinds = jnp.concatenate([jnp.where(scored, right, -1)[None], jnp.array([-1]), recent.astype(jnp.int32)])
        strip = cards.tile_strip(kinds, jnp.concatenate([scored[None], jnp.array([False]), framed]))
        return self._render_rows(state, params, strip)


# ============================================================================================ CountRecall
@struct.dataclass
class CountRecallState(AnswerState):
    value: jax.Array  # kind of the value card shown now
    query: jax.Array  # kind of the query card shown now
    values_left: jax.Array  # int32[K]: value cards of each kind still in the value deck
    queries_left: jax.Array  # int32[K]: query cards of each kind still in the query deck


@struct.dataclass
class CountRecallParams(CardParams):
    count_by: str = param("colors", choices=tuple(cards.NUM_KINDS), static=True)  # 2, 4 or 13 kinds


class CountRecall(CardTask):
    """Each step deals a *value* card and a *query* card from two separately shuffled decks; the agent
    answers how many value cards of the query's kind have been shown so far, the current one included
    (POPGym's ``CountRecall``; kinds are card colours, suits or ranks).

    With ``n = 52 * num_decks`` cards per deck the episode has ``n - 1`` steps, all scored.
    Observation: ``float32[2K]``, the one-hot kinds of the value card and of the query card.
    Actions: ``Discrete(n / K + 1)``, a count (POPGym's space lacks the largest count; ours has it).
    """

    @property
    def default_params(self) -> CountRecallParams:
        return CountRecallParams()

    def num_kinds(self, params) -> int:
        return cards.NUM_KINDS[params.count_by]

    def max_count(self, params) -> int:
        """The number of cards of one kind in the value deck (the largest possible answer)."""
        return self.num_cards(params) // self.num_kinds(params)

    def num_answers(self, params):
        return self.episode_length(params)

    def _deal_pair(self, key, values_left, queries_left):
        key_value, key_query = jax.random.split(key)
        value, values_left = cards.deal(key_value, values_left)
        query, queries_left = cards.deal(key_query, queries_left)
        return dict(value=value, query=query, values_left=values_left, queries_left=queries_left)

    def initial_state(self, key, params):
        deck = cards.full_deck(params.num_decks, self.num_kinds(params))
        return CountRecallState(time=jnp.int32(0), all_correct=jnp.bool_(True), **self._deal_pair(key, deck, deck))

    def counts(self, state, params) -> jax.Array:
        """``int32[K]``: value cards of each kind shown so far (the current one included)."""
        return self.max_count(params) - state.values_left

    def answer(self, state, params):
        return self.counts(state, params)[state.query], jnp.bool_(True)

    def advance(self, key, state, params):
        return state.replace(**self._deal_pair(key, state.values_left, state.queries_left))

    def observe(self, state, params):
        kinds = self.num_kinds(params)
        return jnp.concatenate([_onehot(state.value, kinds), _onehot(state.query, kinds)])

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (2 * self.num_kinds(params),), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(self.max_count(params) + 1)

    def render(self, state, params):
        """The value card and the query card (framed); below, one column per kind, as tall as its
        count so far, the queried kind's column in gold."""
        kinds = self.num_kinds(params)
        suits = params.count_by == "suits"
        strip = cards.tile_strip(jnp.stack([state.value, -1, state.query]), jnp.array([False, False, True]), suits=suits)
        legend = cards.tile_strip(jnp.arange(kinds), suits=suits, size=cards.TILE // 2)
        fractions = self.counts(state, params) / self.max_count(params)
        chart = cards.column_chart(fractions, jnp.arange(kinds) == state.query, 2 * cards.TILE, size=cards.TILE // 2)
        return self._render_rows(state, params, strip, chart, legend)


# ============================================================================================= Autoencode
class Autoencode(DealtTask):
    """Watch a deck dealt one card per step, then name its suits in reverse order (POPGym's
    ``Autoencode``).

    With ``n = 52 * num_decks`` cards, steps ``0 .. n-1`` show the cards; from step ``n - 1`` (the
    last card, shown together with the answer flag) to ``2n - 2`` the agent names the cards from the
    last to the first: ``2n - 1`` steps, ``n`` scored. Observation: ``float32[5]``, the one-hot suit
    shown (zeros once the deck is dealt) and the answer flag. Actions: ``Discrete(4)``, a suit.
    """

    def episode_length(self, params):
        return 2 * self.num_cards(params) - 1

    def num_answers(self, params):
        return self.num_cards(params)

    def answer(self, state, params):
        n = self.num_cards(params)
        index = jnp.clip(2 * n - 2 - state.time, 0, n - 1)
        return state.dealt[index].astype(jnp.int32), state.time >= n - 1

    def shown(self, state, params) -> jax.Array:
        """The suit shown now, ``-1`` once every card has been shown."""
        n = self.num_cards(params)
        return jnp.where(state.time < n, state.dealt[jnp.minimum(state.time, n - 1)].astype(jnp.int32), -1)

    def observe(self, state, params):
        return _card_and_flag(self.shown(state, params), self.answer(state, params)[1])  # flag: this step is scored

    def render(self, state, params):
        """The card shown (while watching) and the card to name (framed, while answering); the bar
        fills while watching, then empties while answering."""
        right, scored = self.answer(state, params)
        kinds = jnp.stack([self.shown(state, params), -1, jnp.where(scored, right, -1)])
        strip = cards.tile_strip(kinds, jnp.stack([False, False, scored]))
        return self._render_rows(state, params, strip)

    def progress(self, state, params):
        n = self.num_cards(params)
        return jnp.where(state.time < n, state.time + 1, 2 * n - 1 - state.time) / n


# ================================================================================================ NParity
@struct.dataclass
class NParityState(AnswerState):
    bits: jax.Array  # bool[stream_length]: the bit shown at step t, at index t (later ones False)


@struct.dataclass
class NParityParams(EnvParams):
    n: int = param(2, ge=1, le=1 << 16)
    stream_length: int = param(64, ge=1, le=1 << 16, static=True, why="a state keeps every bit of the stream")
    max_steps_in_episode: int = NO_TIME_LIMIT


class NParity(AnswerTask):
    """A stream of fair random bits, one per step; the agent answers the parity (XOR) of the last ``n``
    bits, the one shown now included.

    The episode has ``stream_length`` steps; the first ``n - 1`` are not scored (fewer than ``n`` bits
    seen), so ``stream_length - n + 1`` answers count. For ``n >= 2`` the answer is independent of the
    bit shown, so a policy without memory is at chance (``n = 1`` needs no memory: a control).
    Observation: ``float32[2]``, the one-hot bit. Actions: ``Discrete(2)``, the parity.
    """

    shown = 16  # most recent bits drawn by render

    @property
    def default_params(self) -> NParityParams:
        return NParityParams()

    def validate_params(self, params):
        super().validate_params(params)
        if not 1 <= int(params.n) <= int(params.stream_length):
            raise ValueError(f"n must be in [1, stream_length={params.stream_length}], got {params.n}")

    def episode_length(self, params):
        return params.stream_length

    def num_answers(self, params):
        return params.stream_length - params.n + 1

    def initial_state(self, key, params):
        bits = jnp.zeros(params.stream_length, bool).at[0].set(jax.random.bernoulli(key))
        return NParityState(time=jnp.int32(0), all_correct=jnp.bool_(True), bits=bits)

    def window(self, state, params) -> jax.Array:
        """``bool[stream_length]``: the positions of the last ``n`` bits."""
        index = jnp.arange(params.stream_length)
        return (index <= state.time) & (index > state.time - params.n)

    def answer(self, state, params):
        parity = jnp.sum(state.bits & self.window(state, params)) % 2
        return parity.astype(jnp.int32), state.time >= params.n - 1

    def advance(self, key, state, params):
        bits = state.bits.at[state.time + 1].set(jax.random.bernoulli(key), mode="drop")
        return state.replace(bits=bits)

    def observe(self, state, params):
        return _onehot(state.bits[state.time].astype(jnp.int32), 2)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (2,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(2)

    def render(self, state, params):
        """The last ``shown`` bits (current rightmost; 0 black, 1 red), framed where they fall in the
        window of ``n``; at the left, the parity to answer (framed when scored)."""
        right, scored = self.answer(state, params)
        offsets = jnp.arange(self.shown)[::-1]
        index = state.time - offsets
        recent = jnp.where(index >= 0, state.bits[jnp.maximum(index, 0)].astype(jnp.int32), -1)
        kinds = jnp.concatenate([jnp.where(scored, right, -1)[None], jnp.array([-1]), recent])
        framed = jnp.concatenate([scored[None], jnp.array([False]), (index >= 0) & (offsets < params.n)])
        strip = cards.tile_strip(kinds, framed, suits=False, size=cards.TILE // 2)
        return self._render_rows(state, params, strip)


# ========================================================================================== DelayedMatch
SAMPLE, DELAY, PROBE = 0, 1, 2


@struct.dataclass
class DelayedMatchState(AnswerState):
    sample: jax.Array  # the sample symbol of the current trial
    shown: jax.Array  # the symbol shown now (-1: a blank delay step)


@struct.dataclass
class DelayedMatchParams(EnvParams):
    delay: int = param(4, ge=0, le=1 << 16, why="episodes of num_trials * (delay + 2) steps are counted in int32")
    num_trials: int = param(8, ge=1, le=1 << 12, why="episodes of num_trials * (delay + 2) steps are counted in int32")
    distractors: bool = param(True)  # delay steps show random symbols (True) or nothing (False)
    num_symbols: int = param(
        4, ge=2, le=1024, static=True, why="a probe must be able to differ from the sample; observations are one-hot"
    )
    max_steps_in_episode: int = NO_TIME_LIMIT


class DelayedMatch(AnswerTask):
    """Delayed match-to-sample, ``num_trials`` trials per episode. A trial shows a sample symbol for one
    step, then ``delay`` steps of random distractor symbols (or blanks), then a probe symbol: the
    sample itself with probability 1/2, otherwise one of the other symbols. At the probe the agent
    answers ``1`` (match) or ``0`` (no match); other steps are not scored.

    An episode has ``num_trials * (delay + 2)`` steps and ``num_trials`` scored answers. The probe
    symbol alone says nothing about a match, so a policy without memory is at chance.
    Observation: ``float32[num_symbols + 3]``, the one-hot symbol shown and the one-hot phase
    (sample, delay, probe). Actions: ``Discrete(2)``: 0 no match, 1 match. With up to 4 symbols,
    ``render`` draws them as card suits.
    """

    @property
    def default_params(self) -> DelayedMatchParams:
        return DelayedMatchParams()

    def trial_length(self, params):
        return params.delay + 2

    def episode_length(self, params):
        return params.num_trials * self.trial_length(params)

    def num_answers(self, params):
        return params.num_trials

    def phase(self, time, params) -> jax.Array:
        """``SAMPLE``, ``DELAY`` or ``PROBE`` for step ``time``."""
        position = time % self.trial_length(params)
        return jnp.where(position == 0, SAMPLE, jnp.where(position == params.delay + 1, PROBE, DELAY))

    def initial_state(self, key, params):
        sample = jax.random.randint(key, (), 0, params.num_symbols)
        return DelayedMatchState(time=jnp.int32(0), all_correct=jnp.bool_(True), sample=sample, shown=sample)

    def answer(self, state, params):
        return (state.shown == state.sample).astype(jnp.int32), self.phase(state.time, params) == PROBE

    def advance(self, key, state, params):
        # One draw gives a fresh symbol, a shift in 1 .. M-1 and a coin: a non-matching probe is the
        # sample shifted by the shift, so it is any of the other symbols with equal probability.
        symbol, shift, match = jax.random.randint(key, (3,), jnp.array([0, 1, 0]), jnp.array([params.num_symbols, params.num_symbols, 2]))
        probe = jnp.where(match == 1, state.sample, (state.sample + shift) % params.num_symbols)
        distractor = jnp.where(params.distractors, symbol, -1)
        phase = self.phase(state.time + 1, params)
        shown = jnp.select([phase == SAMPLE, phase == PROBE], [symbol, probe], distractor)
        return state.replace(sample=jnp.where(phase == SAMPLE, symbol, state.sample), shown=shown)

    def observe(self, state, params):
        return jnp.concatenate([_onehot(state.shown, params.num_symbols), _onehot(self.phase(state.time, params), 3)])

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (params.num_symbols + 3,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(2)

    def render(self, state, params):
        """The sample (framed) and the symbol shown now; the bar shows the progress of the trial."""
        strip = cards.tile_strip(
            jnp.stack([state.sample, -1, state.shown]), jnp.array([True, False, False]), suits=params.num_symbols <= NUM_SUITS
        )
        return self._render_rows(state, params, strip)

    def progress(self, state, params):
        return (state.time % self.trial_length(params) + 1) / self.trial_length(params)


# ========================================================================================= registration
_POPGYM = "POPGym sizes"
for _level, _decks in (("Easy", 1), ("Medium", 8), ("Hard", 16)):
    register(f"RepeatFirst-{_level}-v0", RepeatFirst, f"repeat the first suit, {_decks} deck(s) ({_POPGYM})", num_decks=_decks)
for _level, (_decks, _k) in (("Easy", (1, 4)), ("Medium", (2, 32)), ("Hard", (3, 64))):
    register(f"RepeatPrevious-{_level}-v0", RepeatPrevious, f"repeat the suit {_k} cards back, {_decks} deck(s) ({_POPGYM})", num_decks=_decks, k=_k)
for _level, (_decks, _by) in (("Easy", (1, "colors")), ("Medium", (2, "suits")), ("Hard", (4, "ranks"))):
    register(f"CountRecall-{_level}-v0", CountRecall, f"count cards by {_by}, {_decks} deck(s) ({_POPGYM})", num_decks=_decks, count_by=_by)
for _level, _decks in (("Easy", 1), ("Medium", 2), ("Hard", 3)):
    register(f"Autoencode-{_level}-v0", Autoencode, f"recall a deck backwards, {_decks} deck(s) ({_POPGYM})", num_decks=_decks)
for _level, _n in (("Easy", 2), ("Medium", 4), ("Hard", 8)):
    register(f"NParity-{_level}-v0", NParity, f"parity of the last {_n} bits, 64 steps", n=_n)
for _level, _delay in (("Easy", 4), ("Medium", 16), ("Hard", 64)):
    register(f"DelayedMatch-{_level}-v0", DelayedMatch, f"delayed match-to-sample, delay {_delay}, 8 trials", delay=_delay)
