"""Mortar Mayhem (Memory Gym, Pleines et al., ICLR 2023 / JMLR 2025) and Endless Mortar Mayhem.

The agent stands on an arena of ``arena_size x arena_size`` tiles. **Clue phase**: a sequence of
commands (move to a neighbouring tile -- right, down, left, up, and with ``allowed_commands = 9`` the
diagonals -- or stay) is shown one at a time in the middle of the screen, each for
``command_show_duration`` steps followed by ``command_show_delay`` blank steps; the agent cannot move.
**Execution phase**: each command has ``explosion_delay`` steps to reach its target tile (counted from
the previous target), then every other tile turns lethal (red, if ``visual_feedback``) for
``explosion_duration`` steps. Standing anywhere but on the target while the tiles are lethal ends the
episode. Each command executed earns ``reward_command_success``; executing all of them ends the episode
successfully. The clues are never shown again, so the agent must remember the whole sequence.

**Endless Mortar Mayhem** (``endless=True``): a 6 x 6 arena that wraps around (a torus). After the
agent executes the whole sequence, one new command is shown and the agent must execute the whole,
longer sequence again from where it stands; the episode lasts as long as the agent does not fail.

Movement: ``"grid"`` -- tile to tile, actions 0 no-op, 1 up, 2 right, 3 down, 4 left (or with
``turn_controls`` Memory Gym's 0 no-op, 1 turn left, 2 turn right, 3 forward); ``"free"`` -- Memory
Gym's continuous movement, ``MultiDiscrete([3, 3])`` = [none/left/right, none/up/down] at
``agent_speed`` pixels per step.

Timing follows memory-gym 1.0.2 step for step (the first check of a command comes after
``explosion_delay + 1`` moves, the next ones every ``explosion_delay + explosion_duration`` steps), with
one deliberate difference: an episode whose last command is missed ends unsuccessfully (memory-gym
reports it as a success).

Observations: an 84 x 84 RGB frame, or with ``symbolic=True`` a float vector with the same content:
``[x, y, heading one-hot (8), shown command one-hot (9), lethal tiles (arena_size**2, x-major)]``,
positions normalised to the arena.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mnemax.envs.core import rendering, spaces
from mnemax.envs.core.environment import NO_TIME_LIMIT, EnvParams, EnvState
from mnemax.envs.tasks.memory_gym import common
from mnemax.envs.core.params import param
from mnemax.envs.core.registration import register

# Memory Gym's commands, in its order (the first `allowed_commands` are used), as (dx, dy).
COMMAND_NAMES = ("right", "down", "left", "up", "stay", "right_down", "right_up", "left_down", "left_up")
COMMAND_MOVES = np.array([[1, 0], [0, 1], [-1, 0], [0, -1], [0, 0], [1, 1], [1, -1], [-1, 1], [-1, -1]], np.int32)
NUM_COMMANDS = len(COMMAND_NAMES)
TILE_PX = 14  # 56 * 0.25: a tile's side in pixels
MAX_COMMANDS = 256  # the longest command sequence of a finite episode
MAX_TIMING = 1 << 10  # the longest show, delay or explosion phase, in steps

_BLUE, _BLUE_EDGE = np.array([21, 43, 77]), np.array([29, 60, 107])
_RED, _RED_EDGE = np.array([81, 18, 26]), np.array([112, 24, 36])


@struct.dataclass
class MortarMayhemState(EnvState):
    position: jax.Array  # float32[2]: grid -- tile (x, y); free -- pixel (x, y)
    heading: jax.Array  # int32, 0 .. 7 (see common)
    commands: jax.Array  # int32[max(command_count)]: the sequence (finite task)
    command_seed: jax.Array  # uint32: seed of the endless command stream
    num_commands: jax.Array  # length of the current sequence
    current: jax.Array  # commands of this round checked so far
    completed: jax.Array  # commands executed in this episode
    target: jax.Array  # int32[2]: the tile the current command leads to
    clue_step: jax.Array  # index of the clue frame on screen (outside [0, clue_len): none)
    clue_len: jax.Array  # number of clue frames in this round
    clue_first: jax.Array  # index of the first command shown in this round
    command_steps: jax.Array  # steps since the lethal tiles went off (Memory Gym's counter)
    verify_step: jax.Array  # steps since the lethal tiles went on
    tiles_on: jax.Array  # bool: the lethal tiles are active
    show_duration: jax.Array  # the timings drawn for this episode
    show_delay: jax.Array
    explosion_delay: jax.Array
    explosion_duration: jax.Array


@struct.dataclass
class MortarMayhemParams(EnvParams):
    # The command schedule ends every finite episode; the endless task runs until the agent fails.
    max_steps_in_episode: int = NO_TIME_LIMIT
    symbolic: bool = param(False, static=True)
    turn_controls: bool = param(False, static=True, only="grid")
    arena_size: int = param(5, ge=2, le=6, static=True, why="the arena must fit the 84-pixel screen")
    # Values or tuples of values; each episode draws one (Memory Gym's lists, for curricula).
    command_count: tuple = param((10,), ge=1, le=MAX_COMMANDS, static=True, why="a state keeps the whole sequence")
    command_show_duration: tuple = param((3,), ge=1, le=MAX_TIMING, static=True)
    command_show_delay: tuple = param((1,), ge=0, le=MAX_TIMING, static=True)
    explosion_duration: tuple = param((2,), ge=1, le=MAX_TIMING, static=True)
    explosion_delay: tuple = param((6,), ge=1, le=MAX_TIMING, static=True)
    allowed_commands: int = param(5, ge=4, le=NUM_COMMANDS, why="Memory Gym's commands: 4 moves, stay, 4 diagonals")
    # endless task: commands shown at the start
    initial_command_count: int = param(1, ge=1, le=1 << 20, only="endless", why="rounds are counted in int32")
    agent_scale: float = common.agent_scale_param()
    agent_speed: float = common.agent_speed_param()
    visual_feedback: bool = param(True)
    reward_command_failure: float = param(0.0)
    reward_command_success: float = param(0.1)
    reward_episode_success: float = param(0.0)


# Memory Gym's default reset parameters of each variant (over the grid task's defaults above).
FREE_DEFAULTS = dict(allowed_commands=9, explosion_duration=(6,), explosion_delay=(18,))
ENDLESS_DEFAULTS = dict(arena_size=6, allowed_commands=9, explosion_duration=(6,), explosion_delay=(18,))
ENDLESS_GRID_DEFAULTS = dict(arena_size=6, allowed_commands=9)


class MortarMayhem(common.MovementTask):
    """Mortar Mayhem; ``movement`` is ``"grid"`` or ``"free"``, ``endless`` picks the endless task."""

    title = "MortarMayhem"
    params_class = MortarMayhemParams
    variant_defaults = {(False, False): FREE_DEFAULTS, (True, True): ENDLESS_GRID_DEFAULTS, (False, True): ENDLESS_DEFAULTS}

    # ------------------------------------------------------------------------------ geometry
    def arena_origin(self, params) -> int:
        """Pixel of the arena's top-left corner (the arena is centred on the screen)."""
        return (common.SCREEN - TILE_PX * params.arena_size) // 2

    def tile_of(self, position: jax.Array, params) -> jax.Array:
        """The tile ``(x, y)`` the agent stands on (may lie off the board while a free agent wraps)."""
        if self.grid:
            return position.astype(jnp.int32)
        return jnp.floor((position - self.arena_origin(params)) / TILE_PX).astype(jnp.int32)

    def agent_pixel(self, position: jax.Array, params) -> jax.Array:
        if self.grid:
            return self.arena_origin(params) + TILE_PX * position + TILE_PX // 2
        return position

    def command_at(self, state: MortarMayhemState, index: jax.Array, params) -> jax.Array:
        """The command with sequence number ``index``: drawn at reset (finite) or from the stream (endless)."""
        if self.endless:
            u = common.hash_uniform(state.command_seed, index)
            return jnp.minimum(jnp.floor(u * params.allowed_commands), params.allowed_commands - 1).astype(jnp.int32)
        return state.commands[jnp.clip(index, 0, state.commands.shape[0] - 1)]

    def _advance_target(self, target, command, params):
        target = target + jnp.asarray(COMMAND_MOVES)[command]
        return target % params.arena_size if self.endless else target

    # ------------------------------------------------------------------------------ dynamics
    def _sample_commands(self, scores, start, params):
        """A sequence that never leads off the arena: each command is drawn among those whose target
        tile lies on the board, given the tile the previous commands lead to."""
        size = params.arena_size
        allowed = jnp.arange(NUM_COMMANDS) < params.allowed_commands

        def draw(tile, u):
            nxt = tile[None] + jnp.asarray(COMMAND_MOVES)
            valid = allowed & jnp.all((nxt >= 0) & (nxt < size), axis=1)
            command = jnp.argmax(jnp.where(valid, u, -1.0)).astype(jnp.int32)
            return nxt[command], command

        _, commands = jax.lax.scan(draw, start, scores)
        return commands

    def initial_state(self, key, params):
        size = params.arena_size
        max_count = max(common.choices(params.command_count))
        rng = common.RandomStream(key, 9 + max_count * NUM_COMMANDS)
        spawn = rng.randint((), 0, size * size)
        start = jnp.stack([spawn // size, spawn % size]).astype(jnp.int32)
        if self.grid:
            position = start.astype(jnp.float32)
        else:
            position = (self.arena_origin(params) + TILE_PX * start + TILE_PX // 2).astype(jnp.float32)
            if self.endless:  # Memory Gym jitters the endless spawn by -2 .. 1 pixels
                position = position + rng.randint((2,), -2, 2)
        scores = rng.uniform((max_count, NUM_COMMANDS))
        if self.endless:
            commands = jnp.zeros((1,), jnp.int32)
            num = jnp.asarray(params.initial_command_count, jnp.int32)
        else:
            commands = self._sample_commands(scores, start, params)
            num = rng.choose(params.command_count).astype(jnp.int32)
        duration = rng.choose(params.command_show_duration).astype(jnp.int32)
        delay = rng.choose(params.command_show_delay).astype(jnp.int32)
        state = MortarMayhemState(
            time=jnp.int32(0),
            position=position,
            heading=jnp.int32(0),
            commands=commands,
            command_seed=jnp.floor(rng.uniform() * 2.0**31).astype(jnp.uint32),
            num_commands=num,
            current=jnp.int32(0),
            completed=jnp.int32(0),
            target=start,
            clue_step=jnp.int32(0),
            clue_len=(duration + delay) * num,
            clue_first=jnp.int32(0),
            command_steps=jnp.int32(0),
            verify_step=jnp.int32(0),
            tiles_on=jnp.bool_(False),
            show_duration=duration,
            show_delay=delay,
            explosion_delay=rng.choose(params.explosion_delay).astype(jnp.int32),
            explosion_duration=rng.choose(params.explosion_duration).astype(jnp.int32),
        )
        return state.replace(target=self._advance_target(start, self.command_at(state, 0, params), params))

    def _move(self, state, action, params):
        if self.grid:
            tile = state.position.astype(jnp.int32)
            if self.endless:  # the arena wraps around: move on an unbounded grid, then wrap
                tile, heading = common.grid_move(action, tile + 1, state.heading, params.arena_size + 2, params.turn_controls)
                tile = (tile - 1) % params.arena_size
            else:
                tile, heading = common.grid_move(action, tile, state.heading, params.arena_size, params.turn_controls)
            return tile.astype(jnp.float32), heading
        velocity, heading = common.free_move(action, params.agent_speed)
        heading = jnp.where(heading >= 0, heading, state.heading)
        position = state.position + velocity
        low = self.arena_origin(params)
        high = low + TILE_PX * params.arena_size
        radius = common.agent_radius(params.agent_scale)
        if self.endless:  # leaving one side enters the other, half a body radius beyond the edge
            margin = 0.5 * radius
            position = jnp.where(position > high + margin, low - margin, jnp.where(position < low - margin, high + margin, position))
        else:
            position = jnp.clip(position, low + radius, high - radius)
        return position, heading

    def transition(self, key, state, action, params):
        # While clue frames remain, the next one is shown and the agent stands still.
        in_clue = state.clue_step + 1 < state.clue_len
        acting = ~in_clue
        moved, turned = self._move(state, action, params)
        position = jnp.where(acting, moved, state.position)
        heading = jnp.where(acting, turned, state.heading)
        on_target = jnp.all(self.tile_of(position, params) == state.target)

        # A command is checked once its delay has passed: the lethal tiles go on.
        delay, duration = state.explosion_delay, state.explosion_duration
        verify = acting & ~state.tiles_on & (state.command_steps > 0) & (state.command_steps % delay == 0)
        current = state.current + verify
        verify_ok, verify_failed = verify & on_target, verify & ~on_target
        tiles_on = state.tiles_on | verify
        round_done = verify & (current >= state.num_commands)
        restart = round_done & self.endless  # endless: one more command, then the whole sequence again
        command_steps = jnp.where(verify, 1, state.command_steps)

        # While the tiles are lethal the agent must stay on the target; then they go off and the
        # next command's target becomes current.
        verify_step = jnp.where(restart, 0, state.verify_step)
        off = acting & tiles_on & (verify_step > 0) & (verify_step % duration == 0)
        check = acting & tiles_on & ~off
        check_failed = check & ~on_target
        verify_step = jnp.where(off, 0, verify_step + check)
        command_steps = command_steps + (acting & ~tiles_on)
        current = jnp.where(restart, 0, current)
        num_commands = state.num_commands + restart
        next_target = self._advance_target(state.target, self.command_at(state, current, params), params)
        target = jnp.where(off & (current < num_commands), next_target, state.target)
        tiles_on = tiles_on & ~off

        failed = verify_failed | check_failed
        success = round_done & ~failed & (not self.endless)
        reward = jnp.where(verify_ok, params.reward_command_success, 0.0)
        reward = jnp.where(failed, params.reward_command_failure, reward)
        reward = reward + jnp.where(success, params.reward_episode_success, 0.0)
        terminated = failed | success

        clue_step = jnp.where(in_clue, state.clue_step + 1, jnp.where(restart, -1, state.clue_len))
        clue_len = jnp.where(restart, state.show_duration + state.show_delay, state.clue_len)
        next_state = state.replace(
            position=position,
            heading=heading,
            num_commands=num_commands,
            current=current,
            completed=state.completed + verify_ok,
            target=target,
            clue_step=clue_step,
            clue_len=clue_len,
            clue_first=jnp.where(restart, state.num_commands, state.clue_first),
            command_steps=command_steps,
            verify_step=verify_step,
            tiles_on=tiles_on,
        )
        return next_state, reward, terminated, self._info(next_state, success)

    def _info(self, state, success):
        if self.endless:
            return {
                "success": jnp.bool_(False),  # endless episodes end only by a failure
                "commands_completed": state.completed.astype(jnp.float32),
                "max_command_sequence": jnp.maximum(state.num_commands - 1, 0).astype(jnp.float32),
            }
        return {
            "success": success,
            "commands_completed": state.completed / state.num_commands,
        }

    def episode_horizon(self, params) -> int:
        """The longest a finite episode can last (reached when every command is executed)."""
        n = max(common.choices(params.command_count))
        clue = (max(common.choices(params.command_show_duration)) + max(common.choices(params.command_show_delay))) * n
        delay = max(common.choices(params.explosion_delay))
        return clue - 1 + delay + 1 + (delay + max(common.choices(params.explosion_duration))) * (n - 1)

    def expert_action(self, state, params) -> jax.Array:
        """An action of a policy that reads the hidden commands from the state: it walks to the
        current command's target tile (used by tests, videos and as a reference score)."""
        if self.grid:
            tile = state.position.astype(jnp.int32)
            goal = state.target
            if self.endless:  # on the torus, go the short way round
                size = params.arena_size
                goal = tile + (goal - tile + size // 2) % size - size // 2
            return common.grid_action_towards(tile, goal, state.heading, params.turn_controls)
        centre = self.arena_origin(params) + TILE_PX * state.target + TILE_PX // 2
        return common.free_action_towards(state.position, centre.astype(jnp.float32))

    # --------------------------------------------------------------------------- observation
    def shown_command(self, state, params) -> jax.Array:
        """The command on screen, or -1 during the blank frames and the execution phase."""
        period = state.show_duration + state.show_delay
        step = state.clue_step
        visible = (step >= 0) & (step < state.clue_len) & (step % period < state.show_duration)
        command = self.command_at(state, state.clue_first + step // jnp.maximum(period, 1), params)
        return jnp.where(visible, command, -1)

    def lethal_tiles(self, state, params) -> jax.Array:
        """bool[arena_size ** 2] (index ``x * size + y``): tiles shown lethal on screen."""
        size = params.arena_size
        index = jnp.arange(size * size)
        is_target = index == state.target[0] * size + state.target[1]
        return state.tiles_on & jnp.asarray(params.visual_feedback) & ~is_target

    def observe(self, state, params):
        if not params.symbolic:
            return self.render(state, params)
        size = params.arena_size
        if self.grid:
            xy = state.position / (size - 1)
        else:
            xy = (state.position - self.arena_origin(params)) / (TILE_PX * size)
        return jnp.concatenate(
            [
                xy.astype(jnp.float32),
                common.one_hot(state.heading, 8),
                common.one_hot(self.shown_command(state, params), NUM_COMMANDS),
                self.lethal_tiles(state, params).astype(jnp.float32),
            ]
        )

    def observation_space(self, params):
        if params.symbolic:
            return spaces.Box(-1.0, 2.0, (2 + 8 + NUM_COMMANDS + params.arena_size**2,), jnp.float32)
        return common.image_space()

    def render(self, state, params):
        # Every lookup is elementwise against constant maps or a small matrix product (the glyph
        # table), which vmap turns into a GEMM rather than per-pixel gathers; colours are selected,
        # never blended, in uint8.
        n = common.SCREEN
        safe, lethal_look, index = arena_images(self.arena_origin(params), params.arena_size)
        target = state.target[0] * params.arena_size + state.target[1]
        lethal = (index >= 0) & (index != target) & state.tiles_on & jnp.asarray(params.visual_feedback)
        image = jnp.where(lethal[..., None], lethal_look, safe)
        x, y = self.agent_pixel(state.position, params)
        image = common.fill_agent(image, x, y, state.heading, common.agent_radius(params.agent_scale))
        glyphs = command_glyphs().reshape(NUM_COMMANDS + 1, n * n).astype(np.float32)
        glyph = common.one_hot(self.shown_command(state, params) + 1, NUM_COMMANDS + 1) @ glyphs
        return rendering.fill(image, glyph.reshape(n, n) > 0.5, (255, 255, 255))


@functools.lru_cache(maxsize=None)
def arena_images(origin: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Constants of the arena: the frame with every tile safe (blue) and the frame with every tile
    lethal (red), both uint8 [84, 84, 3], and the tile index ``x * size + y`` under each pixel (-1 off
    the board)."""
    index, border = common.tile_index_map(origin, TILE_PX, size)
    on_board = (index >= 0)[..., None]
    safe = np.where(on_board, np.where(border[..., None], _BLUE_EDGE, _BLUE), 0)
    lethal = np.where(on_board, np.where(border[..., None], _RED_EDGE, _RED), 0)
    return safe.astype(np.uint8), lethal.astype(np.uint8), index


@functools.lru_cache(maxsize=None)
def command_glyphs() -> np.ndarray:
    """bool[1 + 9, 84, 84]: no glyph, then each command's symbol in the screen's centre (an arrow in
    the command's direction; "stay" is a ring crossed by a bar), drawn like Memory Gym's."""
    n = common.SCREEN
    c = n / 2.0
    glyphs = [np.zeros((n, n), bool)]
    with jax.ensure_compile_time_eval():
        for name, (dx, dy) in zip(COMMAND_NAMES, COMMAND_MOVES):
            if name == "stay":
                ring = rendering.ring_mask(n, n, c - 1, c - 1, 10.0, 2.0)
                bar = rendering.segment_mask(n, n, (c - 2, c - 11), (c - 2, c + 8), 2.0)
                glyphs.append(np.asarray(ring | bar))
                continue
            # An arrow pointing along (dx, dy): a shaft and two barbs of Memory Gym's proportions.
            d = np.array([dx, dy], np.float32) / np.hypot(dx, dy)
            side = np.array([-d[1], d[0]])
            tip = c + 9.0 * d
            tail = c - 10.5 * d
            barb = 10.0
            mask = rendering.segment_mask(n, n, tail[::-1], tip[::-1], 2.0)
            for s in (-1.0, 1.0):
                end = tip - barb * d + s * barb * side
                mask = mask | rendering.segment_mask(n, n, tip[::-1], end[::-1], 2.0)
            glyphs.append(np.asarray(mask))
    return np.stack(glyphs)


def _register():
    # memory-gym's endless task moves freely; the grid form stays available as
    # MortarMayhem(movement="grid", endless=True) without an id of its own.
    grid = functools.partial(MortarMayhem, movement="grid")
    free = functools.partial(MortarMayhem, movement="free")
    endless = functools.partial(MortarMayhem, movement="free", endless=True)
    for suffix, symbolic in (("", False), ("-Symbolic", True)):
        what = "symbolic observations" if symbolic else "84x84 pixels"
        register(f"MortarMayhem-Grid{suffix}-v0", grid, f"Mortar Mayhem, grid movement, {what}", symbolic=symbolic)
        register(f"MortarMayhem{suffix}-v0", free, f"Mortar Mayhem, free movement, {what}", symbolic=symbolic)
        register(f"EndlessMortarMayhem{suffix}-v0", endless, f"Endless Mortar Mayhem, free movement, {what}", symbolic=symbolic)


_register()
