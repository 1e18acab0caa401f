"""Decks of playing cards dealt lazily, and card tiles drawn for ``render``, shared by the diagnostic tasks.

A deck is a multiset of card *kinds* (suits, colours or ranks): ``num_decks`` standard 52-card decks
hold ``52 * num_decks / num_kinds`` cards of each kind. Instead of shuffling the deck at reset, a state
keeps how many cards of each kind are still in the deck and :func:`deal` draws the next one with
probability proportional to those counts. Drawing card after card this way is distributed exactly like
dealing from a shuffled deck, and a reset costs a few integer operations instead of a sort; that
matters because ``Environment.step`` builds a fresh initial state at every step for the auto-reset.

Suits are numbered as in POPGym: ``0 spades, 1 diamonds, 2 clubs, 3 hearts``; a card's colour is
``suit % 2`` (0 black, 1 red).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mnemax.envs.core import rendering

DECK_SIZE = 52
NUM_SUITS = 4
NUM_RANKS = 13
# What a card can be counted by, and into how many kinds it falls.
NUM_KINDS = {"colors": 2, "suits": NUM_SUITS, "ranks": NUM_RANKS}

TILE = 24  # pixels of one square card tile in rendered frames
BACKGROUND = (0.1, 0.12, 0.1)
CARD_FACE = (0.96, 0.95, 0.9)
HIGHLIGHT = (1.0, 0.8, 0.15)
# A four-colour deck (spades black, diamonds blue, clubs green, hearts red) tells suits apart at a glance.
SUIT_COLORS = np.array([(0.1, 0.1, 0.14), (0.15, 0.4, 0.9), (0.1, 0.6, 0.25), (0.88, 0.15, 0.15)], np.float32)
# Colours of kinds that are not suits (card colours, ranks, bits, symbols); 13 distinguishable hues.
PALETTE = np.array(
    [
        (0.1, 0.1, 0.14), (0.88, 0.15, 0.15), (0.15, 0.4, 0.9), (0.1, 0.6, 0.25), (0.95, 0.6, 0.1),
        (0.55, 0.25, 0.75), (0.0, 0.65, 0.7), (0.9, 0.4, 0.65), (0.5, 0.35, 0.2), (0.6, 0.75, 0.1),
        (0.45, 0.45, 0.5), (0.1, 0.2, 0.5), (0.75, 0.1, 0.35),
    ],
    np.float32,
)  # fmt: skip


# ----------------------------------------------------------------------------------------------- dealing
def full_deck(num_decks: int, num_kinds: int) -> jax.Array:
    """``int32[num_kinds]``: how many cards of each kind ``num_decks`` full decks hold."""
    return jnp.full((num_kinds,), DECK_SIZE * num_decks // num_kinds, jnp.int32)


def deal(key: jax.Array, remaining: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Draw one card from a deck holding ``remaining[i]`` cards of kind ``i``.

    Args:
        key: a PRNG key.
        remaining: ``int32[K]``, the cards of each kind still in the deck.

    Returns:
        ``(kind, remaining)``: the kind dealt (``int32`` scalar) and the deck without that card. An empty
        deck deals kind ``K - 1`` and stays empty (callers deal only while cards remain).
    """
    total = jnp.sum(remaining)
    u = jax.random.randint(key, (), 0, jnp.maximum(total, 1))
    # Inverse CDF on integers: the kind whose cumulative count first exceeds u; exact, no float rounding.
    kind = jnp.minimum(jnp.sum(jnp.cumsum(remaining) <= u), remaining.shape[0] - 1).astype(jnp.int32)
    return kind, remaining.at[kind].add(-(total > 0).astype(remaining.dtype))


# --------------------------------------------------------------------------------------------- rendering
def suit_masks(size: int = TILE) -> jax.Array:
    """``bool[4, size, size]``: spade, diamond, club and heart glyphs on a square tile."""
    s = float(size)

    def circle(cy, cx, r):
        return rendering.circle_mask(size, size, cy * s, cx * s, r * s)

    def poly(*points):
        return rendering.polygon_mask(size, size, [(y * s, x * s) for y, x in points])

    heart = circle(0.4, 0.36, 0.15) | circle(0.4, 0.64, 0.15) | poly((0.46, 0.22), (0.46, 0.78), (0.8, 0.5))
    stem = poly((0.55, 0.5), (0.82, 0.36), (0.82, 0.64))
    spade = heart[::-1] | stem  # a heart upside down on a stem
    diamond = poly((0.16, 0.5), (0.5, 0.76), (0.84, 0.5), (0.5, 0.24))
    club = circle(0.34, 0.5, 0.13) | circle(0.56, 0.33, 0.13) | circle(0.56, 0.67, 0.13) | stem
    return jnp.stack([spade, diamond, club, heart])


def tile_strip(kinds: jax.Array, highlight: jax.Array | None = None, *, suits: bool = True, size: int = TILE) -> jax.Array:
    """A row of card tiles: ``float32[size, W * size, 3]``.

    Args:
        kinds: ``int[W]``, the kind shown on each tile; ``-1`` leaves the slot empty.
        highlight: ``bool[W]`` or None; highlighted tiles get a gold frame (the card to answer).
        suits: draw kinds as suit glyphs (kinds < 4); otherwise as squares coloured from ``PALETTE``.
        size: the tile size in pixels.
    """
    kinds = jnp.asarray(kinds, jnp.int32)
    width = kinds.shape[0]
    highlight = jnp.zeros(width, bool) if highlight is None else jnp.asarray(highlight, bool)
    # Every pixel column belongs to one slot; local coordinates repeat per slot (constants under jit).
    slot = np.arange(width * size) // size
    ys, xs = np.mgrid[0:size, 0 : width * size]
    local_x = xs % size
    kind = kinds[slot][None, :]  # [1, W*size]
    margin = size // 12 + 1
    inner = (ys >= margin) & (ys < size - margin) & (local_x >= margin) & (local_x < size - margin)
    if suits:
        glyph = suit_masks(size)[jnp.clip(kind, 0, NUM_SUITS - 1), ys, local_x]
        ink = jnp.asarray(SUIT_COLORS)[jnp.clip(kind, 0, NUM_SUITS - 1)]
    else:
        pad = size // 4
        glyph = jnp.asarray((ys >= pad) & (ys < size - pad) & (local_x >= pad) & (local_x < size - pad))
        ink = jnp.asarray(PALETTE)[jnp.clip(kind, 0, len(PALETTE) - 1) % len(PALETTE)]
    ink = jnp.broadcast_to(ink, (size, width * size, 3))
    image = rendering.canvas(size, width * size, BACKGROUND)
    image = rendering.paint(image, ~inner & highlight[slot][None, :], HIGHLIGHT)
    image = rendering.paint(image, inner & (kind >= 0), CARD_FACE)
    weight = (glyph & inner & (kind >= 0)).astype(jnp.float32)[..., None]
    return image * (1.0 - weight) + ink * weight


def progress_bar(fraction: jax.Array, width: int, height: int = 6, color=(0.3, 0.75, 0.95)) -> jax.Array:
    """``float32[height, width, 3]``: a bar filled from the left to ``fraction`` (in ``[0, 1]``)."""
    image = rendering.canvas(height, width, (0.25, 0.25, 0.28))
    filled = rendering.rect_mask(height, width, 1, 0, height - 1, fraction * width)
    return rendering.paint(image, filled, color)


def column_chart(fractions: jax.Array, highlight: jax.Array, height: int, size: int = TILE) -> jax.Array:
    """``float32[height, K * size, 3]``: one column per kind, ``fractions[k]`` of ``height`` tall; the
    highlighted columns in gold, the others grey."""
    num = fractions.shape[0]
    slot = np.arange(num * size) // size
    ys, xs = rendering.pixel_centers(height, num * size)
    local_x = xs % size
    top = height * (1.0 - jnp.clip(fractions, 0.0, 1.0))[slot][None, :]
    column = (ys >= top) & (local_x >= 2) & (local_x < size - 2)
    image = rendering.canvas(height, num * size, BACKGROUND)
    image = rendering.paint(image, column, (0.6, 0.6, 0.65))
    return rendering.paint(image, column & highlight[slot][None, :], HIGHLIGHT)


def stack_rows(*rows: jax.Array, gap: int = 4) -> jax.Array:
    """Rows of different widths stacked top to bottom, left aligned on a common background, as ``uint8``."""
    width = max(row.shape[1] for row in rows) + 2 * gap
    parts = [rendering.canvas(gap, width, BACKGROUND)]
    for row in rows:
        left = rendering.canvas(row.shape[0], gap, BACKGROUND)
        right = rendering.canvas(row.shape[0], width - gap - row.shape[1], BACKGROUND)
        parts += [jnp.concatenate([left, row, right], axis=1), rendering.canvas(gap, width, BACKGROUND)]
    return rendering.to_uint8(jnp.concatenate(parts, axis=0))
