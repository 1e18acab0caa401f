"""Mystery Path (Memory Gym, Pleines et al., ICLR 2023 / JMLR 2025) and an endless form of it.

An invisible path leads across a 7 x 7 grid from an origin on one edge to a goal on the opposite edge.
Every tile off the path is a pit: stepping on one shows a red cross at the agent for one frame
(``visual_feedback``) and the next step puts the agent back on the origin (that step's action is
ignored). Reaching the goal earns ``reward_goal`` and ends the episode; new path tiles can earn
``reward_path_progress``. Nothing but the agent is drawn (origin and goal only with ``show_origin`` /
``show_goal``), so the agent must remember which tiles were pits.

The path is generated as Memory Gym does it: random walls inside the grid (each interior tile with
probability 0.33), 4 or 8 walls on free border tiles, then an A* search with random step costs from
the origin to the goal (so the path is rarely the shortest one), traced back from the goal.

**Endless Mystery Path** (``endless=True``): reaching the goal earns ``reward_goal`` and a new path
starts at the goal, leading back to the opposite edge; the episode goes on until the agent falls into a
pit it already fell into on the current path (``end_on_repeated_fall``) or the step limit. (memory-gym's
endless task instead scrolls sideways along one unbounded path with a stamina budget; this form keeps
the finite task's screen and rules and only chains paths.)

Movement: ``"grid"`` (actions 0 no-op, 1 up, 2 right, 3 down, 4 left; or Memory Gym's turn controls)
or ``"free"`` (``MultiDiscrete([3, 3])`` at ``agent_speed`` pixels per step, tiles of 12 pixels).

Observations: an 84 x 84 RGB frame, or with ``symbolic=True`` the float vector
``[x, y, heading one-hot (8), fell, origin shown, origin x, origin y, goal shown, goal x, goal y]``
(positions in [0, 1]).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mnemax.envs.core import spaces
from mnemax.envs.core.environment import NO_TIME_LIMIT, EnvParams, EnvState
from mnemax.envs.core.rarely import rarely
from mnemax.envs.tasks.memory_gym import common
from mnemax.envs.core.params import param
from mnemax.envs.core.registration import register

GRID = 7  # tiles per side
TILE_PX = common.SCREEN // GRID  # 12 pixels
_BIG = 1 << 20


@struct.dataclass
class MysteryPathState(EnvState):
    position: jax.Array  # float32[2]: grid -- tile (x, y); free -- pixel (x, y)
    heading: jax.Array  # int32, 0 .. 7
    on_path: jax.Array  # bool[GRID, GRID] indexed [x, y]
    origin: jax.Array  # int32[2]: tile (x, y) of the path's start
    goal: jax.Array  # int32[2]
    cardinal: jax.Array  # int32: 0 left->right, 1 right->left, 2 top->bottom, 3 bottom->top
    visited: jax.Array  # bool[GRID, GRID]: path tiles that already paid the progress reward
    fell_at: jax.Array  # bool[GRID, GRID]: pits fallen into on this path
    off_path: jax.Array  # bool: the agent stands in a pit (it returns to the origin next step)
    num_fails: jax.Array  # int32
    goals_reached: jax.Array  # int32


@struct.dataclass
class MysteryPathParams(EnvParams):
    max_steps_in_episode: int = 128  # Memory Gym's "max_steps"
    symbolic: bool = param(False, static=True)
    turn_controls: bool = param(False, static=True, only="grid")
    # the sides the origin may be on: 0 left, 1 right, 2 top, 3 bottom
    cardinal_origin_choice: tuple = param((0, 1, 2, 3), ge=0, le=3, static=True)
    agent_scale: float = common.agent_scale_param()
    agent_speed: float = common.agent_speed_param()
    show_origin: bool = param(False)
    show_goal: bool = param(False)
    visual_feedback: bool = param(True)
    reward_goal: float = param(1.0)
    reward_fall_off: float = param(0.0)
    reward_path_progress: float = param(0.0)
    reward_step: float = param(0.0)
    end_on_repeated_fall: bool = param(True, only="endless")


FREE_DEFAULTS = dict(max_steps_in_episode=512, reward_path_progress=0.1)
ENDLESS_DEFAULTS = dict(max_steps_in_episode=NO_TIME_LIMIT, reward_path_progress=0.1)
ENDLESS_GRID_DEFAULTS = dict(max_steps_in_episode=NO_TIME_LIMIT)


# ------------------------------------------------------------------------------------ path generation
def _neighbour_table() -> tuple[np.ndarray, np.ndarray]:
    """For every tile (index ``x * GRID + y``) its 4 neighbours in Memory Gym's order (x+1, x-1, y+1,
    y-1) and whether each exists."""
    xs, ys = np.divmod(np.arange(GRID * GRID), GRID)
    steps = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]])
    nx, ny = xs[:, None] + steps[:, 0], ys[:, None] + steps[:, 1]
    valid = (nx >= 0) & (nx < GRID) & (ny >= 0) & (ny < GRID)
    index = np.where(valid, nx * GRID + ny, np.arange(GRID * GRID)[:, None])
    return index.astype(np.int32), valid


def _walls(rng: common.RandomStream, origin: jax.Array, goal: jax.Array) -> jax.Array:
    """bool[GRID, GRID]: random interior walls, then 4 or 8 walls on border tiles that touch no
    wall (diagonals included) and are neither an end tile nor next to one."""
    x, y = np.meshgrid(np.arange(GRID), np.arange(GRID), indexing="ij")
    interior = (x > 0) & (x < GRID - 2) & (y > 0) & (y < GRID - 2)
    walls = interior & (rng.randint((GRID, GRID), 0, 100) < 33)
    padded = jnp.pad(walls, 1)
    near_wall = jnp.zeros_like(walls)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            near_wall = near_wall | padded[1 + dx : 1 + dx + GRID, 1 + dy : 1 + dy + GRID]
    border = (x == 0) | (x == GRID - 1) | (y == 0) | (y == GRID - 1)

    def near(tile):  # the tile itself and its 4 neighbours
        return jnp.abs(x - tile[0]) + jnp.abs(y - tile[1]) <= 1

    candidates = border & ~near_wall & ~near(origin) & ~near(goal)
    count = jnp.where(rng.uniform() < 0.5, 8, 4)
    scores = jnp.where(candidates, rng.uniform((GRID, GRID)), 2.0).reshape(-1)
    # Each tile's place in a stable sort of the scores (what argsort(argsort(.)) gives), counted
    # rather than sorted: the tiles with a lower score, or an equal one earlier in the grid.
    tiles = np.arange(GRID * GRID)
    before = (scores[None, :] < scores[:, None]) | ((scores[None, :] == scores[:, None]) & (tiles[None, :] < tiles[:, None]))
    rank = before.sum(axis=1).reshape(GRID, GRID)
    return walls | (candidates & (rank < count))


PATH_RANDOM_NUMBERS = 2 * GRID * GRID + 1 + 4 * GRID * GRID  # what generate_path draws

# Every path has at least 4 walls on the border: the last column and the last row touch no interior
# wall (interior walls have x, y <= GRID - 3), and of their 2 * GRID - 1 tiles the ends and their
# neighbours take at most 6, which leaves >= 7 candidates for the 4 or 8 border walls. So at most
# GRID * GRID - 4 tiles are open to the search, it expands at most all but the goal, and one more
# iteration finds the goal: SEARCH_STEPS iterations end every search (more would change nothing).
MIN_WALLS = 4
SEARCH_STEPS = GRID * GRID - MIN_WALLS
TRACE_DOUBLINGS = int(np.ceil(np.log2(SEARCH_STEPS)))  # 2 ** 6 = 64 >= the longest route, 45 tiles


def generate_path(rng: common.RandomStream, origin: jax.Array, goal: jax.Array) -> jax.Array:
    """bool[GRID, GRID] (indexed [x, y]): a path of 4-connected tiles from ``origin`` to ``goal``.

    Memory Gym's generator: walls (see :func:`_walls`), then A* from the origin with a random cost of
    1 .. 8 per step and the Euclidean distance to the goal as heuristic. Its open list is scanned in
    insertion order and the first node cheaper than the oldest open node is expanded (not the
    cheapest), and a better route to an open node only changes that node's parent; both quirks shape
    the paths, so they are kept. In the rare case that walls cut the goal off, the path is the
    L-shaped route along the origin's row or column.

    Written for batches (``vmap``), where every environment runs every iteration: the search runs
    :data:`SEARCH_STEPS` iterations (enough for every path, see there), each finds the tile to expand
    with min reductions instead of argmins, and the route is read off the parent links by pointer
    doubling, in :data:`TRACE_DOUBLINGS` rounds instead of one round per tile.
    """
    n = GRID * GRID
    walls = _walls(rng, origin, goal).reshape(-1)
    neighbours, exists = (jnp.asarray(a) for a in _neighbour_table())
    costs = rng.randint((n, 4), 1, 9)
    xs, ys = np.divmod(np.arange(n), GRID)
    heuristic = jnp.sqrt((xs - goal[0]) ** 2.0 + (ys - goal[1]) ** 2.0)
    start, end = origin[0] * GRID + origin[1], goal[0] * GRID + goal[1]
    tiles = np.arange(n)
    # The open list's insertion order is kept as ``order * n + tile``: distinct, so one min gives the
    # oldest open tile and its index at once.
    never = jnp.int32(_BIG * n)

    def expand(_, carry):
        g, f, parent, is_open, closed, key, counter, found = carry
        oldest = jnp.min(jnp.where(is_open, key, never)) % n
        cheaper = jnp.min(jnp.where(is_open & (f < f[oldest]), key, never))
        node = jnp.where(cheaper < never, cheaper % n, oldest)
        stop = found | ~is_open.any()
        found = found | (~stop & (node == end))
        expanding = ~stop & (node != end)
        is_open = is_open.at[node].set(is_open[node] & ~expanding)
        closed = closed.at[node].set(closed[node] | expanding)
        nbs = neighbours[node]
        usable = expanding & exists[node] & ~closed[nbs] & ~walls[nbs]
        g_new = g[node] + costs[node]
        reopen = usable & is_open[nbs]
        fresh = usable & ~is_open[nbs]
        improved = reopen & (g_new < g[nbs])
        # New nodes join the open list in neighbour order.
        new_key = (counter + jnp.cumsum(fresh) - 1) * n + nbs
        g = g.at[nbs].set(jnp.where(fresh, g_new, g[nbs]))
        f = f.at[nbs].set(jnp.where(fresh, g_new + heuristic[nbs], f[nbs]))
        parent = parent.at[nbs].set(jnp.where(fresh | improved, node, parent[nbs]))
        key = key.at[nbs].set(jnp.where(fresh, new_key, key[nbs]))
        is_open = is_open.at[nbs].set(is_open[nbs] | fresh)
        return g, f, parent, is_open, closed, key, counter + fresh.sum(), found

    init = (
        jnp.zeros(n, jnp.int32),
        jnp.zeros(n, jnp.float32),
        jnp.full(n, -1, jnp.int32),
        tiles == start,
        jnp.zeros(n, bool),
        jnp.asarray(tiles, jnp.int32),  # order 0 for every tile; only the start is open
        jnp.int32(1),
        jnp.bool_(False),
    )
    _, _, parent, _, _, _, _, found = jax.lax.fori_loop(0, SEARCH_STEPS, expand, init)

    # The route: the goal and its ancestors. ``hop`` links every tile to its parent (the start and
    # unreached tiles to themselves); each round doubles both the known prefix of the route and the
    # length of the hop.
    hop = jnp.where((tiles == start) | (parent < 0), tiles, parent)
    route = end[None]
    for _ in range(TRACE_DOUBLINGS):
        route = jnp.concatenate([route, hop[route]])
        hop = hop[hop]
    path = jnp.any(route[:, None] == tiles[None, :], axis=0)
    return jnp.where(found, path.reshape(GRID, GRID), _straight_path(origin, goal))


def _straight_path(origin, goal) -> jax.Array:
    """The L-shaped route: along the origin's row/column to the goal's, then to the goal."""
    x, y = np.meshgrid(np.arange(GRID), np.arange(GRID), indexing="ij")

    def between(v, a, b):
        return (v >= jnp.minimum(a, b)) & (v <= jnp.maximum(a, b))

    leg_x = (y == origin[1]) & between(x, origin[0], goal[0])
    leg_y = (x == goal[0]) & between(y, origin[1], goal[1])
    return leg_x | leg_y


def sample_ends(rng: common.RandomStream, cardinal: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Origin and goal tiles ``(x, y)`` on opposite edges: ``cardinal`` 0 puts the origin on the left
    edge, 1 right, 2 top, 3 bottom."""
    a, b = rng.randint((2,), 0, GRID)
    last = GRID - 1
    origins = jnp.array([[0, a], [last, a], [a, 0], [a, last]])
    goals = jnp.array([[last, b], [0, b], [b, last], [b, 0]])
    return origins[cardinal].astype(jnp.int32), goals[cardinal].astype(jnp.int32)


def path_distances(on_path: jax.Array, goal: jax.Array) -> jax.Array:
    """int32[GRID, GRID]: steps along path tiles from each tile to ``goal`` (large off the path)."""
    inf = jnp.int32(_BIG)
    distance = jnp.full((GRID, GRID), inf).at[goal[0], goal[1]].set(0)

    def relax(_, d):
        padded = jnp.pad(d, 1, constant_values=inf)
        around = jnp.minimum(
            jnp.minimum(padded[:-2, 1:-1], padded[2:, 1:-1]), jnp.minimum(padded[1:-1, :-2], padded[1:-1, 2:])
        )
        return jnp.where(on_path, jnp.minimum(d, around + 1), d)

    return jax.lax.fori_loop(0, GRID * GRID, relax, distance)


class MysteryPath(common.MovementTask):
    """Mystery Path; ``movement`` is ``"grid"`` or ``"free"``, ``endless`` chains paths."""

    title = "MysteryPath"
    params_class = MysteryPathParams
    variant_defaults = {(False, False): FREE_DEFAULTS, (True, True): ENDLESS_GRID_DEFAULTS, (False, True): ENDLESS_DEFAULTS}
    grid_fps = 4

    # ------------------------------------------------------------------------------ geometry
    def tile_of(self, position, params=None) -> jax.Array:
        if self.grid:
            return position.astype(jnp.int32)
        return jnp.floor(position / TILE_PX).astype(jnp.int32)

    def place_on(self, tile, params) -> jax.Array:
        """The agent's position on ``tile``: the tile (grid) or a body radius from its corner (free)."""
        if self.grid:
            return tile.astype(jnp.float32)
        return jnp.floor(tile * TILE_PX) + common.agent_radius(params.agent_scale)

    def agent_pixel(self, position, params) -> jax.Array:
        if self.grid:  # Memory Gym draws grid agents at the tile's corner plus 6 pixels
            return jnp.floor(position * TILE_PX) + 6.0
        return position

    # ------------------------------------------------------------------------------ dynamics
    def initial_state(self, key, params):
        rng = common.RandomStream(key, 3 + PATH_RANDOM_NUMBERS)
        cardinal = rng.choose(params.cardinal_origin_choice).astype(jnp.int32)
        origin, goal = sample_ends(rng, cardinal)
        empty = jnp.zeros((GRID, GRID), bool)
        state = MysteryPathState(
            time=jnp.int32(0),
            position=self.place_on(origin, params),
            heading=jnp.int32(0),
            on_path=empty,
            origin=origin,
            goal=goal,
            cardinal=cardinal,
            visited=empty,
            fell_at=empty,
            off_path=jnp.bool_(False),
            num_fails=jnp.int32(0),
            goals_reached=jnp.int32(0),
        )
        return _with_new_path(state, rng, origin, goal, cardinal)

    def _move(self, state, action, params):
        if self.grid:
            tile, heading = common.grid_move(
                action, state.position.astype(jnp.int32), state.heading, GRID, params.turn_controls
            )
            return tile.astype(jnp.float32), heading
        velocity, heading = common.free_move(action, params.agent_speed)
        radius = common.agent_radius(params.agent_scale)
        position = jnp.clip(state.position + velocity, radius, common.SCREEN - radius)
        return position, jnp.where(heading >= 0, heading, state.heading)

    def transition(self, key, state, action, params):
        # A fall is shown for one frame; the next step carries the agent back to the origin.
        moved, turned = self._move(state, action, params)
        position = jnp.where(state.off_path, self.place_on(state.origin, params), moved)
        heading = jnp.where(state.off_path, state.heading, turned)
        tile = self.tile_of(position, params)
        at_goal = jnp.all(tile == state.goal)
        inside = jnp.all((tile >= 0) & (tile < GRID))
        tx, ty = jnp.clip(tile, 0, GRID - 1)
        on_path = inside & state.on_path[tx, ty]
        at_origin = jnp.all(tile == state.origin)
        progress = ~at_goal & on_path & ~state.visited[tx, ty] & ~at_origin
        fell = ~at_goal & ~on_path
        repeated = fell & state.fell_at[tx, ty]

        reward = (
            jnp.where(at_goal, params.reward_goal, 0.0)
            + jnp.where(progress, params.reward_path_progress, 0.0)
            + jnp.where(fell, params.reward_fall_off, 0.0)
            + params.reward_step
        )
        next_state = state.replace(
            position=position,
            heading=heading,
            visited=state.visited.at[tx, ty].set(state.visited[tx, ty] | progress),
            fell_at=state.fell_at.at[tx, ty].set(state.fell_at[tx, ty] | fell),
            off_path=fell,
            num_fails=state.num_fails + fell,
            goals_reached=state.goals_reached + at_goal,
        )
        if self.endless:
            # The path search runs only for the copies of a vmapped batch that reached their goal.
            next_state = rarely(at_goal, self._next_path, next_state, key, next_state, params)
            terminated = repeated & jnp.asarray(params.end_on_repeated_fall)
            success = jnp.bool_(False)  # endless episodes end only by a failure or the step limit
        else:
            terminated = success = at_goal
        info = {
            "success": success,
            "num_fails": next_state.num_fails.astype(jnp.float32),
            "goals_reached": next_state.goals_reached.astype(jnp.float32),
        }
        return next_state, reward, terminated, info

    def _next_path(self, key, state, params):
        """Endless task: a new path from the goal just reached to the opposite edge."""
        cardinal = state.cardinal ^ 1  # 0 <-> 1, 2 <-> 3: the goal's edge becomes the origin's
        rng = common.RandomStream(key, 2 + PATH_RANDOM_NUMBERS)
        _, goal = sample_ends(rng, cardinal)
        return _with_new_path(state, rng, state.goal, goal, cardinal)

    def expert_action(self, state, params) -> jax.Array:
        """An action of a policy that sees the hidden path: it steps to the neighbouring path tile
        closest (along the path) to the goal."""
        distance = path_distances(state.on_path, state.goal)
        tile = jnp.clip(self.tile_of(state.position, params), 0, GRID - 1)
        steps = jnp.asarray(common.GRID_MOVES[1:])  # up, right, down, left
        nxt = jnp.clip(tile[None] + steps, 0, GRID - 1)
        best = jnp.argmin(distance[nxt[:, 0], nxt[:, 1]])
        goal_tile = nxt[best]
        if self.grid:
            return common.grid_action_towards(tile, goal_tile, state.heading, params.turn_controls)
        centre = goal_tile * TILE_PX + TILE_PX // 2
        # Centre on the current tile's axis first so the body never clips a pit on the way.
        here = tile * TILE_PX + TILE_PX // 2
        moving_x = goal_tile[0] != tile[0]
        aim = jnp.where(moving_x, jnp.stack([centre[0], here[1]]), jnp.stack([here[0], centre[1]]))
        return common.free_action_towards(state.position, aim.astype(jnp.float32))

    # --------------------------------------------------------------------------- observation
    def fall_visible(self, state, params) -> jax.Array:
        return state.off_path & jnp.asarray(params.visual_feedback)

    def observe(self, state, params):
        if not params.symbolic:
            return self.render(state, params)
        if self.grid:
            xy = state.position / (GRID - 1)
        else:
            xy = state.position / common.SCREEN
        show_origin = jnp.asarray(params.show_origin, jnp.float32)
        show_goal = jnp.asarray(params.show_goal, jnp.float32)
        return jnp.concatenate(
            [
                xy.astype(jnp.float32),
                common.one_hot(state.heading, 8),
                self.fall_visible(state, params).astype(jnp.float32)[None],
                jnp.stack([show_origin, *(show_origin * state.origin / (GRID - 1))]),
                jnp.stack([show_goal, *(show_goal * state.goal / (GRID - 1))]),
            ]
        )

    def observation_space(self, params):
        if params.symbolic:
            return spaces.Box(0.0, 1.0, (2 + 8 + 1 + 3 + 3,), jnp.float32)
        return common.image_space()

    def render(self, state, params):
        n = common.SCREEN
        index, _ = common.tile_index_map(0, TILE_PX, GRID)
        origin_id = state.origin[0] * GRID + state.origin[1]
        goal_id = state.goal[0] * GRID + state.goal[1]
        x, y = self.agent_pixel(state.position, params)
        body, hands = common.agent_masks(n, n, x, y, state.heading, common.agent_radius(params.agent_scale))
        cross = common.cross_mask(n, n, x, y, 10.0, 3.0) & self.fall_visible(state, params)
        layers = [  # (mask, colour), bottom first, on black
            ((index == origin_id) & jnp.asarray(params.show_origin), (0, 0, 255)),
            ((index == goal_id) & jnp.asarray(params.show_goal), (0, 255, 0)),
            (body, common.AGENT_BODY_U8),
            (hands, common.AGENT_HANDS_U8),
            (cross, (255, 0, 0)),
        ]
        return common.layered_image(*zip(*layers))


def _with_new_path(state: MysteryPathState, rng, origin, goal, cardinal) -> MysteryPathState:
    """``state`` on a freshly generated path from ``origin`` to ``goal`` (nothing visited or fallen into)."""
    empty = jnp.zeros((GRID, GRID), bool)
    return state.replace(
        on_path=generate_path(rng, origin, goal),
        origin=origin,
        goal=goal,
        cardinal=cardinal,
        visited=empty,
        fell_at=empty,
    )


def _register():
    # The endless grid form stays available as MysteryPath(movement="grid", endless=True).
    variants = {
        "MysteryPath-Grid": functools.partial(MysteryPath, movement="grid"),
        "MysteryPath": functools.partial(MysteryPath, movement="free"),
        "EndlessMysteryPath": functools.partial(MysteryPath, movement="free", endless=True),
    }
    for suffix, symbolic in (("", False), ("-Symbolic", True)):
        what = "symbolic observations" if symbolic else "84x84 pixels"
        for name, env_class in variants.items():
            movement = "grid" if name.endswith("Grid") else "free"
            register(f"{name}{suffix}-v0", env_class, f"{name.split('-')[0]}, {movement} movement, {what}", symbolic=symbolic)


_register()
