"""Ballet, the recall task of Lampinen et al. 2021 ("Towards mental time travel: a hierarchical memory for
reinforcement learning agents"), following the rules of DeepMind's pycolab release.

The room is 11 x 11 cells with walls on the border. Up to eight dancers stand at the fixed spots
``(2,2) (2,5) (2,8) (5,2) (5,8) (8,2) (8,5) (8,8)`` (row, column) around the agent, who starts at
``(5,5)``. Each dancer has a colour, a shape and one of the 13 dances of :data:`DANCE_NAMES`; within an
episode the dancers' colours, shapes and dances are all different.

**Dance phase.** The dancers dance one at a time, in random order. A dance is 16 moves, one cell per
step within the dancer's 3 x 3 square, and ends back on the dancer's spot; ``dance_delay`` quiet steps
follow each dance. The agent's actions are ignored throughout. In steps (``t`` = steps taken so far),
dancer ``k`` (``k = 0 .. n-1`` in order of performance) makes its ``j``-th move at
``t = k * (16 + dance_delay) + j``, exactly as in the release.

**Answer phase.** At ``t = n * (16 + dance_delay)`` (:meth:`Ballet.answer_start`) the instruction
appears: the name of one of the performed dances. From then on the agent walks with the 8 actions
``N NE E SE S SW W NW`` (walls block; a move into a wall leaves the agent in place). Walking onto the
dancer that performed the named dance gives reward 1 and ends the episode; walking onto any other
dancer gives 0 and ends it too. The episode also ends, unsuccessfully, after ``answer_steps`` moves.
The dancers stand still on their spots in this phase, so nothing on screen tells which dancer did
which dance: the binding dance -> dancer must be remembered from up to ``n * (16 + dance_delay)``
steps back.

**Observations** (``params.observation``), one implementation with the same dynamics for both:

* ``"pixels"``: ``uint8 [88, 88, 3]``, the whole room at 8 px per cell (the release crops an 11 x 11
  egocentric window; with the agent fixed at the centre during the dances the two views agree, and in
  the answer phase the whole room stays in view). Floor black, walls dark grey, the agent white, each
  dancer its shape in its colour on black. The instruction has no language channel here; it is a
  *lamp* in the wall: dance ``d`` lights the wall cell :data:`LAMP_CELLS` ``[d]`` pale yellow (every
  third wall cell clockwise from the top-left corner, so dance 0 lights the corner ``(0, 0)`` and
  dance 12 the cell ``(4, 0)``). No lamp is lit while the dances play.
* ``"symbolic"``: ``float32 [11 * 11 * 22 + 13]``: a one-hot grid ``[11, 11, 22]`` with channels
  ``wall, agent, colour_0..9, shape_0..9`` (a dancer's cell has one colour and one shape channel
  set), flattened, followed by the one-hot instruction ``[13]`` (all zero during the dances).
  :meth:`RecallRoom.split_symbolic` undoes the flattening.

``show_dances`` (symbolic only, off by default) is a diagnostic that takes memory out of the task: the
instruction vector also lists, for each of the 8 spots, the dance its dancer performed (``[8, 13]``
one-hot, flattened after the instruction), so the answer can be read off the observation.

``info`` carries ``success`` and ``phase`` (0: the dances were playing and the action was ignored,
1: the action was an answer-phase move).

The paper's levels ``"{2,4,8}_delay{16,48}"`` are the ids ``Ballet-{2,4,8}-Delay{16,48}-v0`` (pixels)
and ``Ballet-{2,4,8}-Delay{16,48}-Symbolic-v0``. All levels allow 64 answer moves; the release's
episode limits (320 steps at delay 16, 1024 at delay 48) leave the same 64 at ``8_delay16`` and more
elsewhere, which only matters for agents that wander.

This module also holds :class:`RecallRoom`, the room, walk, answer rules and observation encoding
that Ballet shares with :mod:`mnemax.envs.tasks.object_permanence`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mnemax.envs.core import rendering, spaces
from mnemax.envs.core.environment import NO_TIME_LIMIT, Environment, EnvParams, EnvState
from mnemax.envs.core.params import param
from mnemax.envs.core.registration import register

# ----------------------------------------------------------------------------------------- the room
ROOM = 11  # cells per side, walls included
SPOTS = np.array([(2, 2), (2, 5), (2, 8), (5, 2), (5, 8), (8, 2), (8, 5), (8, 8)], np.int32)
MAX_ITEMS = len(SPOTS)  # dancers (or boxes) a room can hold
AGENT_START = (5, 5)

ACTION_NAMES = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
MOVES = np.array([(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)], np.int32)  # (dy, dx)

CELL_PX = 8  # pixels per cell in the pixel observation

# ----------------------------------------------------------------------------------------- the dances
DANCE_LENGTH = 16
# Each dance as its 16 moves (compass directions); every dance stays in the dancer's 3 x 3 square and
# ends on the spot where it began. The order of this table is the instruction index.
_DANCE_MOVES = {
    "circle_cw": "N E S S W W N N E E S S W W N E",
    "circle_ccw": "N W S S E E N N W W S S E E N W",
    "up_and_down": "N S S N N S S N N S S N N S S N",
    "left_and_right": "E W W E E W W E E W W E E W W E",
    "diagonal_uldr": "NW SE SE NW NW SE SE NW NW SE SE NW NW SE SE NW",
    "diagonal_urdl": "NE SW SW NE NE SW SW NE NE SW SW NE NE SW SW NE",
    "plus_cw": "N S E W S N W E N S E W S N W E",
    "plus_ccw": "N S W E S N E W N S W E S N E W",
    "times_cw": "NE SW SE NW SW NE NW SE NE SW SE NW SW NE NW SE",
    "times_ccw": "NW SE SW NE SE NW NE SW NW SE SW NE SE NW NE SW",
    "zee": "NE W W E E SW NE SW SW E E W W NE SW NE",
    "chevron_down": "NW S SE NE N SW NE SW NE S SW NW N SE NW SE",
    "chevron_up": "SE N NW SW S NE SW NE SW N NE SE S NW SE NW",
}
DANCE_NAMES = tuple(_DANCE_MOVES)
NUM_DANCES = len(DANCE_NAMES)


def _dance_offsets() -> np.ndarray:
    """``int32 [NUM_DANCES, 17, 2]``: a dancer's offset from its spot after ``j = 0 .. 16`` moves."""
    moves = np.array([[MOVES[ACTION_NAMES.index(m)] for m in seq.split()] for seq in _DANCE_MOVES.values()])
    assert moves.shape == (NUM_DANCES, DANCE_LENGTH, 2)
    offsets = np.concatenate([np.zeros((NUM_DANCES, 1, 2), np.int32), np.cumsum(moves, axis=1)], axis=1)
    assert np.all(np.abs(offsets) <= 1) and np.all(offsets[:, -1] == 0), "a dance leaves its square or home"
    return offsets.astype(np.int32)


DANCE_OFFSETS = _dance_offsets()


def _wall_ring() -> np.ndarray:
    """``int32 [40, 2]``: the wall cells clockwise from the top-left corner."""
    top = [(0, c) for c in range(ROOM)]
    right = [(r, ROOM - 1) for r in range(1, ROOM)]
    bottom = [(ROOM - 1, c) for c in range(ROOM - 2, -1, -1)]
    left = [(r, 0) for r in range(ROOM - 2, 0, -1)]
    return np.array(top + right + bottom + left, np.int32)


LAMP_CELLS = _wall_ring()[::3][:NUM_DANCES]  # int32 [13, 2]: the lamp that names dance d

# ----------------------------------------------------------------------------------------- appearances
COLOURS = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (60, 100, 255),
    "yellow": (240, 220, 40),
    "magenta": (230, 60, 230),
    "cyan": (40, 220, 230),
    "orange": (255, 140, 20),
    "purple": (140, 70, 210),
    "pink": (255, 160, 200),
    "brown": (150, 90, 40),
}
SHAPES = ("triangle", "hollow_square", "plus", "cross", "disc", "ring", "diamond", "tee", "u", "stripes")
NUM_COLOURS, NUM_SHAPES = len(COLOURS), len(SHAPES)

FLOOR_RGB, WALL_RGB, AGENT_RGB = (0, 0, 0), (40, 40, 40), (255, 255, 255)
FLOOR, WALL, AGENT = 0, 1, 2  # tile ids every room task starts its tile set with


def shape_masks(px: int) -> np.ndarray:
    """``bool [NUM_SHAPES, px, px]``: every shape of :data:`SHAPES` drawn in one ``px``-pixel cell.

    Built once with NumPy on the pixel centres (constants, whatever traces the caller is in)."""
    h = px / 2
    ys, xs = rendering.pixel_centers(px, px)

    def rect(top, left, bottom, right):
        return rendering.rect_mask(px, px, top * px, left * px, bottom * px, right * px)

    def disc(radius):
        return rendering.circle_mask(px, px, h, h, radius * px)

    masks = {
        "triangle": np.abs(xs - h) <= ys / 2,  # apex at the top centre, base along the bottom
        "hollow_square": ~rect(0.25, 0.25, 0.75, 0.75),
        "plus": rect(0, 0.375, 1, 0.625) | rect(0.375, 0, 0.625, 1),
        "cross": (np.abs(ys - xs) <= 1) | (np.abs(ys + xs - px) <= 1),
        "disc": disc(0.45),
        "ring": disc(0.5) & ~disc(0.28),
        "diamond": np.abs(ys - h) + np.abs(xs - h) <= h,
        "tee": rect(0, 0, 0.375, 1) | rect(0, 0.375, 1, 0.625),
        "u": rect(0, 0, 1, 0.25) | rect(0, 0.75, 1, 1) | rect(0.75, 0, 1, 1),
        "stripes": np.floor(ys) % 2 == 0,
    }
    return np.stack([np.asarray(masks[name], bool) for name in SHAPES])


@dataclasses.dataclass(frozen=True)
class TileSet:
    """What every kind of cell looks like, for both observation modes.

    Tile ids index ``pixels`` (``uint8 [T, px, px, 3]``, the cell's picture) and ``features``
    (``float32 [T, C]``, the cell's symbolic channels). The fixed tiles of a task come first; then one
    tile per appearance, id ``appearance_base + colour * NUM_SHAPES + shape``.
    """

    pixels: np.ndarray
    features: np.ndarray
    appearance_base: int

    @property
    def channels(self) -> int:
        return self.features.shape[1]


def make_tileset(fixed: Sequence[tuple[tuple[int, int, int] | np.ndarray, Sequence[float]]], px: int = CELL_PX) -> TileSet:
    """A tile set: ``fixed`` lists ``(picture, features)`` per fixed tile, the picture an RGB colour
    (a filled cell) or a ``uint8 [px, px, 3]`` image; every appearance follows, with the fixed feature
    channels zero and one-hot colour and shape channels after them."""
    fixed_pixels = np.stack([np.broadcast_to(np.asarray(p, np.uint8), (px, px, 3)) for p, _ in fixed])
    palette = np.array(list(COLOURS.values()), np.uint8)
    masks = shape_masks(px)[None, :, :, :, None]  # [1, shape, px, px, 1]
    appearance_pixels = np.where(masks, palette[:, None, None, None, :], np.uint8(0)).reshape(-1, px, px, 3)

    fixed_features = np.array([f for _, f in fixed], np.float32)
    appearance_features = np.concatenate(
        [
            np.zeros((NUM_COLOURS * NUM_SHAPES, fixed_features.shape[1]), np.float32),
            np.repeat(np.eye(NUM_COLOURS, dtype=np.float32), NUM_SHAPES, axis=0),  # colour-major ids
            np.tile(np.eye(NUM_SHAPES, dtype=np.float32), (NUM_COLOURS, 1)),
        ],
        axis=1,
    )
    features = np.concatenate([np.pad(fixed_features, ((0, 0), (0, NUM_COLOURS + NUM_SHAPES))), appearance_features])
    return TileSet(np.concatenate([fixed_pixels, appearance_pixels.astype(np.uint8)]), features, len(fixed))


def tilemap(tiles: np.ndarray, grid: jax.Array) -> jax.Array:
    """The image whose cell ``(i, j)`` is ``tiles[grid[i, j]]``: ``[H * px, W * px, 3]`` from tiles
    ``[T, px, px, 3]`` and an int grid ``[H, W]``. One gather; no per-pixel arithmetic."""
    height, width = grid.shape
    _, px, qx, channels = tiles.shape
    cells = jnp.asarray(tiles)[grid]  # [H, W, px, px, 3]
    return cells.transpose(0, 2, 1, 3, 4).reshape(height * px, width * qx, channels)


def _empty_room() -> np.ndarray:
    grid = np.full((ROOM, ROOM), WALL, np.int32)
    grid[1:-1, 1:-1] = FLOOR
    return grid


EMPTY_ROOM = _empty_room()  # int32 [11, 11] tile ids: walls on the border, floor inside


def walk(position: jax.Array, action: jax.Array) -> jax.Array:
    """The agent's cell after ``action`` from ``position`` (int32 [2]); moves into a wall are no-ops."""
    target = position + jnp.asarray(MOVES)[action]
    inside = jnp.all((target >= 1) & (target <= ROOM - 2))
    return jnp.where(inside, target, position)


def performance(time: jax.Array, length: int, gap: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Which of a series of shows runs at step ``time``, and how far it has got.

    Show ``k`` takes ``length`` steps and is followed by ``gap`` quiet steps; its ``j``-th step
    (``j = 1 .. length``) is step ``k * (length + gap) + j``. Returns ``(k, j)`` with ``j = 0`` between
    shows (and at ``time = 0``); ``k`` may exceed the number of shows, which the caller checks.
    """
    u = time - 1
    period = length + gap
    k = jnp.floor_divide(u, period)
    j = u - k * period + 1
    return k, jnp.where((time >= 1) & (j <= length), j, 0)


# ----------------------------------------------------------------------------------------- shared core
@struct.dataclass
class RecallState(EnvState):
    agent: jax.Array  # int32 [2]: the agent's (row, column)
    spot: jax.Array  # int32 [8]: the spot (index into SPOTS) of item k; only the first num_items are in the room
    colour: jax.Array  # int32 [8]: colour of the k-th dancer / object (all different)
    shape: jax.Array  # int32 [8]: shape of the k-th dancer / object (all different)
    target: jax.Array  # int32: the item the agent must walk onto


OBSERVATION_MODES = ("pixels", "symbolic")
# Steps of a phase are bounded so that whole episodes stay countable in int32.
MAX_PHASE_STEPS = 1 << 20
PHASE_STEPS_WHY = "episode lengths are counted in int32"


@struct.dataclass
class RecallParams(EnvParams):
    # moves allowed after the instruction appears
    answer_steps: int = param(64, ge=1, le=MAX_PHASE_STEPS, why=PHASE_STEPS_WHY)
    observation: str = param("pixels", choices=OBSERVATION_MODES, static=True)
    # The task ends its own episodes; this generic limit is set out of the way.
    max_steps_in_episode: int = NO_TIME_LIMIT


@dataclasses.dataclass(frozen=True)
class Cue:
    """The instruction of the answer phase, in both encodings.

    ``cells`` (int32 [K, 2]) are painted with tile ``tile`` in the pixel frame; ``vector`` (float32 [M])
    is appended to the symbolic observation. Neither shows before ``visible``.
    """

    cells: jax.Array
    tile: jax.Array
    vector: jax.Array
    visible: jax.Array


def _mix(x: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser: a bijection of ``uint32`` words that scatters every input bit."""
    x = (x ^ (x >> 16)) * jnp.uint32(0x85EBCA6B)
    x = (x ^ (x >> 13)) * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def uniform_noise(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``float32`` noise, uniform in ``[0, 1)``, of ``shape``: 64 random bits from ``key``, stretched
    by hashing a counter with them.

    ``jax.random.uniform`` of a non-scalar shape compiles to a threefry program that XLA on CPU takes
    several times longer to compile than a scalar draw, and reset is compiled into every ``step``;
    hashing a counter gives the few dozen numbers an episode needs at the cost of a scalar draw.
    """
    seed = jax.random.bits(key, (2,), jnp.uint32)
    count = jnp.arange(int(np.prod(shape)), dtype=jnp.uint32).reshape(shape)
    bits = _mix(_mix(count ^ seed[0]) + seed[1])
    return (bits >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def random_orders(u: jax.Array, sizes: Sequence[int]) -> jax.Array:
    """``int32 [len(sizes), W]`` from uniform noise ``u`` (``[len(sizes), W]``, ``W >= max(sizes)``):
    row ``i`` begins with a uniformly random permutation of ``0 .. sizes[i] - 1``, padding after it."""
    width = u.shape[1]
    u = jnp.where(np.arange(width) < np.array(sizes)[:, None], u, 2.0)  # padding sorts last
    return jnp.argsort(u, axis=-1).astype(jnp.int32)


def new_episode(key: jax.Array, num_targets, num_labels: int = MAX_ITEMS) -> tuple[dict[str, jax.Array], jax.Array]:
    """A fresh episode's :class:`RecallState` fields and ``int32 [8]`` item labels.

    Spots, colours and shapes (each ``int32 [8]``) are all different; the labels are the start of a
    random order of ``num_labels`` (Ballet's dances); ``target`` is uniform below ``num_targets``.
    """
    sizes = (MAX_ITEMS, NUM_COLOURS, NUM_SHAPES, num_labels)
    u = uniform_noise(key, (len(sizes) + 1, max(sizes)))
    spot, colour, shape, label = random_orders(u[:-1], sizes)[:, :MAX_ITEMS]
    target = jnp.minimum(jnp.floor(u[-1, 0] * num_targets), num_targets - 1).astype(jnp.int32)
    fields = dict(
        time=jnp.int32(0), agent=jnp.array(AGENT_START, jnp.int32), spot=spot, colour=colour, shape=shape, target=target
    )
    return fields, label


def jit_method(method):
    """``method`` compiled with ``jax.jit``, ``self`` static. Eager callers (a ``vmap`` without ``jit``,
    notebooks) then compile it once as a whole instead of op by op; inside a ``jit`` it is inlined."""
    return jax.jit(method, static_argnums=0)


class RecallRoom(Environment):
    """Watch, then answer by walking onto one of the items at the fixed spots of the room.

    A task supplies :meth:`num_items`, :meth:`answer_start`, :meth:`scene` (the tile grid without the
    instruction), :meth:`cue` and :attr:`tiles`. This class owns the answer rules (walk only once the
    answer phase has begun; reaching an item ends the episode, reward 1 on the target; ``answer_steps``
    moves at most) and the two observation encodings.
    """

    tiles: TileSet

    def num_items(self, params) -> jax.Array:
        raise NotImplementedError

    def answer_start(self, params) -> jax.Array:
        """The step ``t`` at which the instruction appears; the agent moves from the next step on."""
        raise NotImplementedError

    def scene(self, state, params) -> jax.Array:
        """``int32 [11, 11]`` tile ids of the room at ``state.time``, the instruction left out."""
        raise NotImplementedError

    def cue(self, state, params) -> Cue:
        raise NotImplementedError

    def episode_length(self, params) -> jax.Array:
        """The longest an episode can last: the watching phase plus ``answer_steps`` moves."""
        return self.answer_start(params) + params.answer_steps

    def transition(self, key, state, action, params):
        start = self.answer_start(params)
        answering = state.time >= start
        agent = jnp.where(answering, walk(state.agent, action), state.agent)
        present = jnp.arange(MAX_ITEMS) < self.num_items(params)
        on_item = present & jnp.all(jnp.asarray(SPOTS)[state.spot] == agent, axis=-1)
        reached = answering & jnp.any(on_item)
        success = reached & on_item[state.target]
        out_of_time = answering & (state.time + 1 - start >= params.answer_steps)
        info = {"success": success, "phase": answering.astype(jnp.int32)}
        return state.replace(agent=agent), success.astype(jnp.float32), reached | out_of_time, info

    @jit_method
    def observe(self, state, params):
        grid = self.scene(state, params)
        cue = self.cue(state, params)
        if params.observation == "symbolic":
            cells = jnp.asarray(self.tiles.features)[grid].reshape(-1)
            return jnp.concatenate([cells, jnp.where(cue.visible, cue.vector, 0.0)])
        return self._frame(grid, cue)

    def _frame(self, grid, cue):
        count = cue.cells.shape[0]
        grid = self.place_items(grid, cue.cells, jnp.full(count, cue.tile), jnp.full(count, cue.visible))
        return tilemap(self.tiles.pixels, grid)

    def render(self, state, params):
        """The pixel observation, whatever the observation mode."""
        return self._frame(self.scene(state, params), self.cue(state, params))

    def cue_size(self, params) -> int:
        """The length of the instruction vector of the symbolic observation."""
        raise NotImplementedError

    def observation_space(self, params):
        if params.observation == "symbolic":
            size = ROOM * ROOM * self.tiles.channels + self.cue_size(params)
            return spaces.Box(0.0, 1.0, (size,), jnp.float32)
        side = ROOM * self.tiles.pixels.shape[1]
        return spaces.Box(0, 255, (side, side, 3), jnp.uint8)

    def action_space(self, params):
        return spaces.Discrete(len(MOVES))

    def observation_items(self, params) -> np.ndarray:
        """``int32 [8, 9 * C]``: where each spot's 3 x 3 square (its item, and a dancer's whole dance) lies
        in the flat symbolic observation, as indices into it; the agents' items encoder reads each square
        with one layer shared by the 8 spots, so that an item looks the same to it at every spot."""
        self._check_symbolic(params, "observation_items")
        cells = np.arange(ROOM * ROOM * self.tiles.channels).reshape(ROOM, ROOM, self.tiles.channels)
        around = np.arange(-1, 2)
        rows = SPOTS[:, 0, None, None] + around[None, :, None]  # [8, 3, 1]
        cols = SPOTS[:, 1, None, None] + around[None, None, :]  # [8, 1, 3]
        return cells[rows, cols].reshape(len(SPOTS), -1).astype(np.int32)

    def observation_parts(self, params) -> tuple[np.ndarray, ...]:
        """``(int32 [M],)``: where the instruction vector lies in the flat symbolic observation, the part beside
        the items that the agents' items encoder reads through a layer of its own (:meth:`observation_items`)."""
        self._check_symbolic(params, "observation_parts")
        cells = ROOM * ROOM * self.tiles.channels
        return (np.arange(cells, cells + self.cue_size(params), dtype=np.int32),)

    def _check_symbolic(self, params, method: str) -> None:
        """ValueError unless ``params`` ask for symbolic observations, the only ones with flat indices."""
        if params.observation != "symbolic":
            raise ValueError(f"{self.name}: {method} needs symbolic observations, got {params.observation!r}")

    def split_symbolic(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """A symbolic observation ``[..., N]`` as ``(grid [..., 11, 11, C], instruction [..., M])``."""
        cells = ROOM * ROOM * self.tiles.channels
        grid = obs[..., :cells].reshape(obs.shape[:-1] + (ROOM, ROOM, self.tiles.channels))
        return grid, obs[..., cells:]

    def place_agent(self, grid: jax.Array, state) -> jax.Array:
        """``grid`` with the agent drawn on top of whatever shares its cell."""
        return self.place_items(grid, state.agent[None], jnp.array([AGENT]), jnp.array([True]))

    def place_items(self, grid: jax.Array, positions: jax.Array, tile_ids: jax.Array, shown: jax.Array) -> jax.Array:
        """``grid`` with ``tile_ids[k]`` at ``positions[k]`` (int32 [K, 2]) wherever ``shown[k]``; the
        items must stand on different cells.

        Every cell compares itself with every position instead of scattering: elementwise work that
        fuses, and compiles much faster than a (batched, under ``vmap``) scatter.
        """
        rows, cols = np.arange(ROOM)[:, None], np.arange(ROOM)[None, :]
        here = shown[:, None, None] & (positions[:, 0, None, None] == rows) & (positions[:, 1, None, None] == cols)
        placed = jnp.max(jnp.where(here, tile_ids[:, None, None], -1), axis=0)  # [11, 11]
        return jnp.where(placed >= 0, placed, grid)

    def appearance(self, state) -> jax.Array:
        """``int32 [8]``: the tile id of each item's colour and shape."""
        return self.tiles.appearance_base + state.colour * NUM_SHAPES + state.shape


# ----------------------------------------------------------------------------------------- Ballet
@struct.dataclass
class BalletState(RecallState):
    dance: jax.Array  # int32 [8]: the dance (index into DANCE_NAMES) of the k-th dancer to perform


@struct.dataclass
class BalletParams(RecallParams):
    num_dancers: int = param(2, ge=1, le=MAX_ITEMS, why="the room has 8 spots")
    dance_delay: int = param(16, ge=1, le=MAX_PHASE_STEPS, why=PHASE_STEPS_WHY)
    # A diagnostic that takes memory out of the task (symbolic observations only): the instruction also
    # lists, for each of the 8 spots, the dance its dancer performed (one-hot, 8 x 13 after the
    # instruction's 13), so the answer can be read off the observation. Not part of the paper's task.
    show_dances: bool = param(False, static=True)


LAMP = 3  # tile id of the lit wall cell
LAMP_RGB = (255, 235, 130)


@functools.lru_cache(maxsize=None)
def ballet_tiles() -> TileSet:
    """Floor, wall, agent, lamp, then the dancers; symbolic channels ``wall, agent, colours, shapes``
    (a lamp reads as wall there: the instruction vector carries it)."""
    return make_tileset(
        [(FLOOR_RGB, (0, 0)), (WALL_RGB, (1, 0)), (AGENT_RGB, (0, 1)), (LAMP_RGB, (1, 0))]
    )


class Ballet(RecallRoom):
    """Ballet; see the module docstring for the rules, timing and observation encodings."""

    @property
    def tiles(self) -> TileSet:
        return ballet_tiles()

    @property
    def default_params(self) -> BalletParams:
        return BalletParams()

    def num_items(self, params):
        return params.num_dancers

    def answer_start(self, params):
        return params.num_dancers * (DANCE_LENGTH + params.dance_delay)

    @jit_method
    def initial_state(self, key, params):
        fields, dance = new_episode(key, params.num_dancers, NUM_DANCES)
        return BalletState(**fields, dance=dance)

    def dancer_positions(self, state: BalletState, params: BalletParams) -> jax.Array:
        """``int32 [8, 2]``: where each dancer stands at ``state.time`` (its spot unless it is dancing)."""
        performer, step = performance(state.time, DANCE_LENGTH, params.dance_delay)
        dancing = (jnp.arange(MAX_ITEMS) == performer) & (step > 0)
        offsets = jnp.asarray(DANCE_OFFSETS)[state.dance, step]  # step 0 is the spot itself
        return jnp.asarray(SPOTS)[state.spot] + jnp.where(dancing[:, None], offsets, 0)

    def scene(self, state, params):
        present = jnp.arange(MAX_ITEMS) < params.num_dancers
        grid = self.place_items(jnp.asarray(EMPTY_ROOM), self.dancer_positions(state, params), self.appearance(state), present)
        return self.place_agent(grid, state)

    def cue(self, state, params):
        named = state.dance[state.target]
        vector = jax.nn.one_hot(named, NUM_DANCES, dtype=jnp.float32)
        if params.show_dances:
            if params.observation != "symbolic":
                raise ValueError("Ballet: show_dances needs symbolic observations (the frame has no place for it)")
            present = (jnp.arange(MAX_ITEMS) < params.num_dancers)[:, None]
            danced = jax.nn.one_hot(state.dance, NUM_DANCES, dtype=jnp.float32) * present  # [8, 13] by dancer
            by_spot = jnp.zeros((MAX_ITEMS, NUM_DANCES), jnp.float32).at[state.spot].set(danced)
            vector = jnp.concatenate([vector, by_spot.reshape(-1)])
        return Cue(
            cells=jnp.asarray(LAMP_CELLS)[named][None],
            tile=jnp.int32(LAMP),
            vector=vector,
            visible=state.time >= self.answer_start(params),
        )

    def cue_size(self, params) -> int:
        return NUM_DANCES * (1 + MAX_ITEMS) if params.show_dances else NUM_DANCES

    def episode_marks(self, state: BalletState, params: BalletParams):
        """What a viewer should see marked on the time line of an episode at ``state`` (a single state,
        not batched; read by :mod:`mnemax.train.attention_video`): ``(intervals, framed, note)``, with
        ``intervals`` the ``(start, end, rgb)`` steps (end exclusive) in which each dancer danced, in its
        colour, ``framed`` the index of the asked dancer once the instruction is shown (else None) and
        ``note`` a line saying what the marks show."""
        period = DANCE_LENGTH + int(params.dance_delay)
        palette = list(COLOURS.values())
        intervals = [
            (k * period + 1, k * period + 1 + DANCE_LENGTH, palette[int(state.colour[k])])
            for k in range(int(params.num_dancers))
        ]
        if int(state.time) < int(self.answer_start(params)):
            return intervals, None, "dances playing (colours below: who danced when)"
        return intervals, int(state.target), "instruction shown: the asked dance is framed"


for _dancers in (2, 4, 8):
    for _delay in (16, 48):
        for _mode, _suffix in (("pixels", ""), ("symbolic", "-Symbolic")):
            register(
                f"Ballet-{_dancers}-Delay{_delay}{_suffix}-v0",
                Ballet,
                f"Ballet level {_dancers}_delay{_delay}, {_mode} observations",
                num_dancers=_dancers,
                dance_delay=_delay,
                observation=_mode,
            )
