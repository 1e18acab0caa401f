"""Object permanence, a recall task in the style of the object-permanence task of Lampinen et al. 2021
("Towards mental time travel"), simplified to the 2D room of :mod:`mnemax.envs.tasks.ballet`.

Identical closed boxes stand at ``num_boxes`` of the eight fixed spots of the 11 x 11 room; the agent
starts in the centre. ``num_objects`` distinct objects (each its own colour and shape) are hidden one at
a time, object ``j`` into box ``j``:

**Hiding phase.** Object ``j`` shows for ``show_steps`` steps: it stands on the floor cell in front of
its box (the neighbour of the box towards the room's centre) and, at the last of these steps, sits in
the open box. Then the box closes over it, the object is out of sight, and ``delay`` quiet steps
follow. Object ``j``'s ``i``-th step is step ``t = j * (show_steps + delay) + i``. The agent's actions
are ignored throughout.

**Answer phase.** At ``t = num_objects * (show_steps + delay)`` the cue shows one of the hidden
objects; the agent walks with the 8 actions ``N NE E SE S SW W NW`` (walls block) and must walk onto
the box that holds it: reward 1 and the episode ends; any other box gives 0 and ends the episode too;
after ``answer_steps`` moves the episode ends unsuccessfully. The boxes all look alike and the objects
stay hidden, so the box must be remembered from when the object went into it.

**Observations** (``params.observation``), with the same dynamics:

* ``"pixels"``: ``uint8 [88, 88, 3]``, the room at 8 px per cell: floor black, walls dark grey, the
  agent white, boxes tan with a dark lid line, objects their shape in their colour. The cue is the
  wanted object drawn in the four corner cells of the wall.
* ``"symbolic"``: ``float32 [11 * 11 * 23 + 20]``: the one-hot grid ``[11, 11, 23]`` with channels
  ``wall, agent, box, colour_0..9, shape_0..9``, flattened, then the cue ``[20]`` = the wanted object's
  one-hot colour ``[10]`` and one-hot shape ``[10]`` (zero while objects are being hidden).

``info`` carries ``success`` and ``phase`` (0: hiding, the action was ignored; 1: answer-phase move).
Ids: ``ObjectPermanence-4-Delay16-v0`` (4 boxes, 4 objects) and ``ObjectPermanence-8-Delay48-v0``
(8 boxes, 8 objects), each with a ``-Symbolic`` twin; other settings through ``make`` overrides.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mnemax.envs.tasks.ballet import (
    AGENT_RGB,
    AGENT_START,
    CELL_PX,
    EMPTY_ROOM,
    FLOOR_RGB,
    MAX_ITEMS,
    MAX_PHASE_STEPS,
    NUM_COLOURS,
    NUM_SHAPES,
    PHASE_STEPS_WHY,
    ROOM,
    SPOTS,
    WALL_RGB,
    Cue,
    RecallParams,
    RecallRoom,
    RecallState,
    TileSet,
    jit_method,
    make_tileset,
    new_episode,
    performance,
)
from mnemax.envs.core.params import param
from mnemax.envs.core.registration import register

# The floor cell in front of each spot, one step towards the centre: where an object waits before it
# goes into the box on that spot.
FRONT_CELLS = (SPOTS + np.sign(np.array(AGENT_START) - SPOTS)).astype(np.int32)
CUE_CELLS = np.array([(0, 0), (0, ROOM - 1), (ROOM - 1, 0), (ROOM - 1, ROOM - 1)], np.int32)
BOX = 3  # tile id of a closed box


@struct.dataclass
class ObjectPermanenceState(RecallState):
    """``colour``/``shape`` describe object ``k``, hidden in box ``k`` (at spot ``spot[k]``)."""


@struct.dataclass
class ObjectPermanenceParams(RecallParams):
    num_boxes: int = param(4, ge=1, le=MAX_ITEMS, why="the room has 8 spots")
    num_objects: int = param(4, ge=1, le=MAX_ITEMS)  # at most num_boxes; boxes beyond the objects stay empty
    show_steps: int = param(4, ge=1, le=MAX_PHASE_STEPS, why=PHASE_STEPS_WHY)
    delay: int = param(16, ge=1, le=MAX_PHASE_STEPS, why=PHASE_STEPS_WHY)


def _box_picture(px: int = CELL_PX) -> np.ndarray:
    picture = np.empty((px, px, 3), np.uint8)
    picture[:] = (190, 150, 100)
    picture[px // 4] = (110, 80, 50)  # the lid's edge
    return picture


@functools.lru_cache(maxsize=None)
def object_permanence_tiles() -> TileSet:
    """Floor, wall, agent, box, then the objects; symbolic channels ``wall, agent, box, colours, shapes``."""
    return make_tileset(
        [(FLOOR_RGB, (0, 0, 0)), (WALL_RGB, (1, 0, 0)), (AGENT_RGB, (0, 1, 0)), (_box_picture(), (0, 0, 1))]
    )


class ObjectPermanence(RecallRoom):
    """Objects go into identical boxes one at a time; later, find the box holding the cued object."""

    @property
    def tiles(self) -> TileSet:
        return object_permanence_tiles()

    @property
    def default_params(self) -> ObjectPermanenceParams:
        return ObjectPermanenceParams()

    def validate_params(self, params: ObjectPermanenceParams) -> None:
        super().validate_params(params)
        if params.num_objects > params.num_boxes:
            raise ValueError(f"num_objects must be <= num_boxes ({params.num_boxes}), got {params.num_objects}")

    def num_items(self, params):
        return params.num_boxes

    def answer_start(self, params):
        return params.num_objects * (params.show_steps + params.delay)

    @jit_method
    def initial_state(self, key, params):
        fields, _ = new_episode(key, params.num_objects)
        return ObjectPermanenceState(**fields)

    def shown_object(self, state, params) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(index, cell, visible)``: the object on show at ``state.time`` and its cell (int32 [2])."""
        index, step = performance(state.time, params.show_steps, params.delay)
        visible = (step > 0) & (index < params.num_objects)
        index = jnp.clip(index, 0, MAX_ITEMS - 1)
        spot = state.spot[index]
        in_box = step == params.show_steps
        cell = jnp.where(in_box, jnp.asarray(SPOTS)[spot], jnp.asarray(FRONT_CELLS)[spot])
        return index, cell, visible

    def scene(self, state, params):
        boxes = jnp.arange(MAX_ITEMS) < params.num_boxes
        room = jnp.asarray(EMPTY_ROOM)
        grid = self.place_items(room, jnp.asarray(SPOTS)[state.spot], jnp.full(MAX_ITEMS, BOX, jnp.int32), boxes)
        index, cell, visible = self.shown_object(state, params)
        grid = self.place_items(grid, cell[None], self.appearance(state)[index][None], visible[None])
        return self.place_agent(grid, state)

    def cue(self, state, params):
        wanted = state.target
        vector = jnp.concatenate(
            [
                jax.nn.one_hot(state.colour[wanted], NUM_COLOURS, dtype=jnp.float32),
                jax.nn.one_hot(state.shape[wanted], NUM_SHAPES, dtype=jnp.float32),
            ]
        )
        return Cue(
            cells=jnp.asarray(CUE_CELLS),
            tile=self.appearance(state)[wanted],
            vector=vector,
            visible=state.time >= self.answer_start(params),
        )

    def cue_size(self, params) -> int:
        return NUM_COLOURS + NUM_SHAPES


for _boxes, _delay in ((4, 16), (8, 48)):
    for _mode, _suffix in (("pixels", ""), ("symbolic", "-Symbolic")):
        register(
            f"ObjectPermanence-{_boxes}-Delay{_delay}{_suffix}-v0",
            ObjectPermanence,
            f"object permanence, {_boxes} boxes and objects, delay {_delay}, {_mode} observations",
            num_boxes=_boxes,
            num_objects=_boxes,
            delay=_delay,
            observation=_mode,
        )
