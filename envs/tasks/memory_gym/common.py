"""Pieces shared by the Memory Gym tasks: screen geometry, the agent's movement, the agent sprite,
position sampling and keyboard mappings.

Conventions (those of Memory Gym): the screen is ``SCREEN x SCREEN`` = 84 x 84 pixels; positions are
``(x, y)`` pixel coordinates with ``y`` pointing down; the agent's ``heading`` is an integer ``h`` in
``0 .. 7`` for a rotation of ``45 * h`` degrees counter-clockwise from "up" (0 up, 2 left, 4 down,
6 right). The rendering module works in ``(y, x)``; the helpers here convert.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mnemax.envs.core import rendering, spaces
from mnemax.envs.core.environment import Environment
from mnemax.envs.core.params import param

SCREEN = 84  # side of the square observation, in pixels
BASE_SCALE = 0.25  # Memory Gym draws at 336 px and scales every size by 0.25 to get 84 px

# Facing direction (dx, dy) of every heading: rotation 45*h degrees counter-clockwise from up.
_ANGLES = np.deg2rad(45.0 * np.arange(8))
HEADING_VECTORS = np.stack([-np.sin(_ANGLES), -np.cos(_ANGLES)], axis=1).astype(np.float32)

# Grid moves: 0 no-op, 1 up, 2 right, 3 down, 4 left, as (dx, dy), and the heading each one gives.
NOOP, UP, RIGHT, DOWN, LEFT = range(5)
GRID_MOVES = np.array([[0, 0], [0, -1], [1, 0], [0, 1], [-1, 0]], np.int32)
GRID_MOVE_HEADINGS = np.array([-1, 0, 6, 4, 2], np.int32)  # -1: keep the heading
# Turn controls (Memory Gym's grid action set): 0 no-op, 1 turn left, 2 turn right, 3 forward.
TURN_NOOP, TURN_LEFT, TURN_RIGHT, FORWARD = range(4)

AGENT_BODY = (250 / 255, 204 / 255, 153 / 255)
AGENT_HANDS = (50 / 255, 50 / 255, 50 / 255)
AGENT_BODY_U8 = (250, 204, 153)
AGENT_HANDS_U8 = (50, 50, 50)


def choices(value) -> tuple:
    """A parameter that may hold one value or a tuple of values to draw from, as a tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


class RandomStream:
    """Slices of one block of uniform random numbers in [0, 1).

    Every ``jax.random`` call compiles its own copy of the generator, which dominates the compile
    time of these environments; drawing everything a function needs in one call and slicing it keeps
    compiles short. ``size`` must cover all draws (checked while tracing).
    """

    def __init__(self, key: jax.Array, size: int):
        self._u = jax.random.uniform(key, (size,))
        self._next = 0

    def uniform(self, shape=()) -> jax.Array:
        n = int(np.prod(shape, dtype=np.int64))
        if self._next + n > self._u.shape[0]:
            raise ValueError(f"RandomStream of {self._u.shape[0]} numbers exhausted")
        out = self._u[self._next : self._next + n].reshape(shape)
        self._next += n
        return out

    def randint(self, shape, low, high) -> jax.Array:
        """Integers in ``[low, high)`` (``low``/``high`` may be traced)."""
        low, high = jnp.asarray(low, jnp.int32), jnp.asarray(high, jnp.int32)
        draw = low + jnp.floor(self.uniform(shape) * (high - low)).astype(jnp.int32)
        return jnp.minimum(draw, high - 1)

    def choose(self, options) -> jax.Array:
        """One of ``options`` (a value or a tuple of values, static), uniformly at random."""
        options = choices(options)
        u = self.uniform()
        if len(options) == 1:
            return jnp.asarray(options[0])
        index = jnp.minimum(jnp.floor(u * len(options)).astype(jnp.int32), len(options) - 1)
        return jnp.asarray(options)[index]


def hash_uniform(seed: jax.Array, index: jax.Array) -> jax.Array:
    """A float in [0, 1) determined by ``(seed, index)`` through an integer hash (lowbias32): a stream
    of random values addressed by position, with nothing stored."""
    h = jnp.asarray(seed, jnp.uint32) ^ (jnp.asarray(index, jnp.uint32) * jnp.uint32(0x9E3779B9))
    for shift, mult in ((16, 0x7FEB352D), (15, 0x846CA68B)):
        h = (h ^ (h >> shift)) * jnp.uint32(mult)
    h = h ^ (h >> 16)
    return (h >> 8).astype(jnp.float32) / float(1 << 24)


# The agent's size and speed, declared alike by every task.
AGENT_SCALE_WHY = "the agent's radius is int(25 * agent_scale) pixels of the 84"
AGENT_SPEED_WHY = "pixels per step on an 84-pixel screen"


def agent_scale_param():
    """``agent_scale``: Memory Gym's 0.25, at most 1 (a body of 25 pixels radius)."""
    return param(1.0 * BASE_SCALE, gt=0.0, le=1.0, why=AGENT_SCALE_WHY)


def agent_speed_param(only: str | None = "free"):
    """``agent_speed``: Memory Gym's 3 pixels per step, at most the screen's width (free movement)."""
    return param(12.0 * BASE_SCALE, gt=0.0, le=float(SCREEN), only=only, why=AGENT_SPEED_WHY)


def agent_radius(agent_scale) -> jax.Array:
    """The agent's body radius in pixels (Memory Gym: ``int(25 * scale)``, 6 px at the default scale)."""
    return jnp.floor(25.0 * jnp.asarray(agent_scale, jnp.float32))


# ----------------------------------------------------------------------------------------- movement
def free_move(action: jax.Array, speed) -> tuple[jax.Array, jax.Array]:
    """Velocity ``(dx, dy)`` and heading of Memory Gym's free movement for ``action = [horizontal, vertical]``.

    ``horizontal``: 0 none, 1 left, 2 right; ``vertical``: 0 none, 1 up, 2 down. The direction is
    normalised, scaled by ``speed`` and truncated to whole pixels, as Memory Gym does (3 px straight,
    2 px per axis diagonally at the default speed). The heading is -1 when the agent does not move.
    """
    dx = jnp.where(action[0] == 1, -1.0, jnp.where(action[0] == 2, 1.0, 0.0))
    dy = jnp.where(action[1] == 1, -1.0, jnp.where(action[1] == 2, 1.0, 0.0))
    norm = jnp.sqrt(dx**2 + dy**2)
    scale = jnp.where(norm > 0, jnp.asarray(speed, jnp.float32) / jnp.maximum(norm, 1.0), 0.0)
    velocity = jnp.trunc(jnp.stack([dx, dy]) * scale)
    # Rotation of the sprite: 3x3 table over (dx, dy) in {-1, 0, 1}.
    table = jnp.array([[1, 2, 3], [0, -1, 4], [7, 6, 5]], jnp.int32)  # [dx + 1, dy + 1]
    heading = table[dx.astype(jnp.int32) + 1, dy.astype(jnp.int32) + 1]
    return velocity, heading


def grid_move(action: jax.Array, tile: jax.Array, heading: jax.Array, size, turn_controls: bool):
    """The next tile ``(x, y)`` and heading on a ``size x size`` grid; moves into the border are blocked.

    With ``turn_controls`` the action is Memory Gym's (0 no-op, 1 turn left, 2 turn right,
    3 forward); otherwise it is a move (0 no-op, 1 up, 2 right, 3 down, 4 left) that also turns the agent.
    """
    if turn_controls:
        heading = (heading + jnp.where(action == TURN_LEFT, 2, 0) - jnp.where(action == TURN_RIGHT, 2, 0)) % 8
        step = jnp.round(jnp.asarray(HEADING_VECTORS)[heading]).astype(jnp.int32) * (action == FORWARD)
    else:
        step = jnp.asarray(GRID_MOVES)[action]
        new_heading = jnp.asarray(GRID_MOVE_HEADINGS)[action]
        heading = jnp.where(new_heading >= 0, new_heading, heading)
    return jnp.clip(tile + step, 0, size - 1), heading


def grid_action_space(turn_controls: bool) -> spaces.Discrete:
    return spaces.Discrete(4 if turn_controls else 5)


def free_action_space() -> spaces.MultiDiscrete:
    return spaces.MultiDiscrete([3, 3])


def free_action_towards(position: jax.Array, goal: jax.Array, tolerance=1.0) -> jax.Array:
    """The free-movement action ``[horizontal, vertical]`` that heads from ``position`` to ``goal``
    (pixels), standing still on an axis within ``tolerance``."""
    d = goal - position
    return jnp.where(d > tolerance, 2, jnp.where(d < -tolerance, 1, 0)).astype(jnp.int32)


def grid_action_towards(tile: jax.Array, goal: jax.Array, heading: jax.Array, turn_controls: bool) -> jax.Array:
    """A grid action that brings the agent one step closer to ``goal`` (x first, then y)."""
    d = jnp.sign(goal - tile)
    move = jnp.where(d[0] > 0, RIGHT, jnp.where(d[0] < 0, LEFT, jnp.where(d[1] > 0, DOWN, jnp.where(d[1] < 0, UP, NOOP))))
    if not turn_controls:
        return move
    wanted = jnp.asarray(GRID_MOVE_HEADINGS)[move]
    turn = jnp.where((wanted - heading) % 8 == 2, TURN_LEFT, TURN_RIGHT)
    return jnp.where(move == NOOP, TURN_NOOP, jnp.where(wanted == heading, FORWARD, turn))


# -------------------------------------------------------------------------------------- keyboard
def grid_keys_to_action(keys: frozenset, turn_controls: bool) -> int | None:
    """The action for the held arrow keys, or ``None`` when no key asks for one (the game waits).

    Moves: the arrows move, space waits a step. Turn controls: left/right turn, up goes forward.
    """
    if turn_controls:
        table = (("up", FORWARD), ("left", TURN_LEFT), ("right", TURN_RIGHT), ("space", TURN_NOOP))
    else:
        table = (("up", UP), ("right", RIGHT), ("down", DOWN), ("left", LEFT), ("space", NOOP))
    for name, action in table:
        if name in keys:
            return action
    return None


def free_keys_to_action(keys: frozenset) -> np.ndarray:
    """``[horizontal, vertical]`` for the held arrow keys (two arrows move diagonally; none stands still)."""
    horizontal = 1 if "left" in keys else 2 if "right" in keys else 0
    vertical = 1 if "up" in keys else 2 if "down" in keys else 0
    return np.array([horizontal, vertical], np.int32)


# --------------------------------------------------------------------------------------- sampling
def sample_free_pixel(u: jax.Array, blocked: jax.Array) -> jax.Array:
    """The pixel ``(x, y)`` that two uniform numbers ``u`` pick among the ``False`` entries of
    ``blocked`` ([H, W], indexed [y, x]), each equally likely: a row with probability proportional to
    its free pixels, then a free pixel of that row (two short inverse CDFs instead of one over H * W)."""
    free = ~blocked
    per_row = free.sum(axis=1)
    row = jnp.argmax(jnp.cumsum(per_row) > jnp.floor(u[0] * per_row.sum()))
    in_row = free[row]
    column = jnp.argmax(jnp.cumsum(in_row) > jnp.floor(u[1] * in_row.sum()))
    return jnp.stack([column, row]).astype(jnp.int32)


def block_around(blocked: jax.Array, position: jax.Array, radius) -> jax.Array:
    """``blocked`` with every pixel closer than ``radius`` to ``position = (x, y)`` set."""
    # Squared offsets per column and per row, summed by broadcasting: integers, so exact.
    dx2 = (np.arange(blocked.shape[1]) - position[0]) ** 2
    dy2 = (np.arange(blocked.shape[0]) - position[1]) ** 2
    return blocked | (dy2[:, None] + dx2[None, :] < radius**2)


# -------------------------------------------------------------------------------------- rendering
def agent_masks(height: int, width: int, x, y, heading, radius) -> tuple[jax.Array, jax.Array]:
    """Masks ``(body, hands)`` of the Memory Gym character centred at pixel ``(x, y)``: a round body
    and two hands that show the heading (ahead of the body's centre, to its left and right)."""
    # Pixel (i, j) covers [i, i+1): the sprite's integer centre is the middle of that pixel.
    cx, cy = jnp.floor(x) + 0.5, jnp.floor(y) + 0.5
    body = rendering.circle_mask(height, width, cy, cx, radius)
    fx, fy = jnp.asarray(HEADING_VECTORS)[heading]
    side_x, side_y = -fy, fx  # perpendicular to the facing direction
    reach = 4.0 * radius / 6.0  # Memory Gym: hands 4 px ahead and 4 px aside of a 6 px body
    hand_radius = jnp.maximum(2.0 * radius / 6.0, 1.0)
    hands = jnp.zeros((height, width), bool)
    for sign in (-1.0, 1.0):
        hx = cx + reach * (fx + sign * side_x)
        hy = cy + reach * (fy + sign * side_y)
        hands = hands | rendering.circle_mask(height, width, hy, hx, hand_radius)
    return body, hands


def fill_agent(image: jax.Array, x, y, heading, radius) -> jax.Array:
    """Draw the character opaquely into a ``uint8`` image."""
    body, hands = agent_masks(image.shape[0], image.shape[1], x, y, heading, radius)
    return rendering.fill(rendering.fill(image, body, AGENT_BODY_U8), hands, AGENT_HANDS_U8)


def topmost_layer(layers) -> jax.Array:
    """int32 [H, W]: 1 + the index of the last of ``layers`` ([H, W] bool masks, bottom first) that
    covers each pixel, 0 where none does: the palette index of opaque layers filled in turn."""
    top = jnp.zeros(layers[0].shape, jnp.int32)
    for i, layer in enumerate(layers):
        top = jnp.where(layer, i + 1, top)
    return top


def layered_image(layers, colors) -> jax.Array:
    """A ``uint8`` [H, W, 3] image of opaque layers (``layers``: [H, W] bool masks, bottom first;
    ``colors``: their uint8 RGB) on black: what filling them in turn with :func:`rendering.fill`
    gives, with one palette lookup per pixel instead of a select per layer and channel."""
    palette = np.array([(0, 0, 0), *colors], np.uint8)
    return jnp.asarray(palette)[topmost_layer(layers)]


def cross_mask(height: int, width: int, x, y, size, thickness) -> jax.Array:
    """An X of two thick diagonals in the ``size``-pixel square centred at ``(x, y)``."""
    half = 0.5 * (size - 1)
    cx, cy = jnp.floor(x) + 0.5, jnp.floor(y) + 0.5
    a = rendering.segment_mask(height, width, (cy - half, cx - half), (cy + half, cx + half), thickness)
    b = rendering.segment_mask(height, width, (cy - half, cx + half), (cy + half, cx - half), thickness)
    return a | b


@functools.lru_cache(maxsize=None)
def tile_index_map(origin: int, tile: int, count: int, screen: int = SCREEN) -> tuple[np.ndarray, np.ndarray]:
    """Constants ``(index, border)`` for a ``count x count`` board of ``tile``-pixel tiles whose
    top-left corner is at pixel ``origin``: ``index`` [screen, screen] int32 is ``x * count + y`` of the
    tile under each pixel (-1 off the board); ``border`` marks each tile's one-pixel outline."""
    ys, xs = np.mgrid[0:screen, 0:screen]
    tx, ty = (xs - origin) // tile, (ys - origin) // tile
    inside = (xs >= origin) & (ys >= origin) & (tx < count) & (ty < count)
    index = np.where(inside, tx * count + ty, -1).astype(np.int32)
    rx, ry = (xs - origin) % tile, (ys - origin) % tile
    border = inside & ((rx == 0) | (ry == 0) | (rx == tile - 1) | (ry == tile - 1))
    return index, border


def one_hot(index: jax.Array, n: int, enabled=True) -> jax.Array:
    """float32 one-hot of ``index`` in ``n`` classes; all zeros where ``index`` is out of range or
    ``enabled`` is False."""
    return (jnp.arange(n) == index).astype(jnp.float32) * jnp.asarray(enabled, jnp.float32)


def image_space() -> spaces.Box:
    return spaces.Box(0, 255, (SCREEN, SCREEN, 3), jnp.uint8)


class MovementTask(Environment):
    """What the Memory Gym tasks with a grid and a free-movement form share: the variant chosen at
    construction (``movement`` ``"grid"`` or ``"free"``, ``endless``), each variant's default
    parameters, the action space and the keyboard mapping.

    Subclasses set ``title``, ``params_class`` and ``variant_defaults``: parameter overrides keyed by
    ``(grid, endless)``.
    """

    title = ""
    params_class: type
    variant_defaults: dict = {}
    grid_fps, free_fps = 6, 25  # speeds for human play

    def __init__(self, movement: str = "grid", endless: bool = False):
        if movement not in ("grid", "free"):
            raise ValueError(f"movement must be 'grid' or 'free', got {movement!r}")
        self.grid = movement == "grid"
        self.endless = bool(endless)
        self.play_fps = self.grid_fps if self.grid else self.free_fps

    @property
    def name(self) -> str:
        return f"{'Endless' if self.endless else ''}{self.title}-{'Grid' if self.grid else 'Free'}"

    @property
    def default_params(self):
        return self.params_class(**self.variant_defaults.get((self.grid, self.endless), {}))

    @property
    def variant(self) -> frozenset[str]:
        return frozenset({"grid" if self.grid else "free", "endless" if self.endless else "finite"})

    def action_space(self, params):
        return grid_action_space(params.turn_controls) if self.grid else free_action_space()

    def keys_to_action(self, keys: frozenset, params):
        """The action for the held keys (names "up", "down", "left", "right", "space"); None: wait."""
        if self.grid:
            return grid_keys_to_action(keys, params.turn_controls)
        return free_keys_to_action(keys)
