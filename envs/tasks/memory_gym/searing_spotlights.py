"""Searing Spotlights (Memory Gym, Pleines et al., ICLR 2023 / JMLR 2025) and its endless form.

A room with a chessboard floor; at the start the light dims to darkness over
``light_dim_off_duration`` steps, so the agent (drawn under the darkness) sees itself only at the
start, or while a spotlight passes over it. Spotlights fly across the room along curved paths; every
step the agent touches one costs ``spot_damage`` health (the floor flashes red with
``visual_feedback``), and losing all health ends the episode. The agent must collect the coins
(``reward_coin`` each), after which the exit opens; reaching it earns ``reward_exit`` and succeeds.
A top bar shows the health, the last action and whether the last step paid a reward, so the agent can
integrate its own movement in the dark.

**Endless Searing Spotlights** (``endless=True``): no exit; one coin at a time, shown for
``coin_show_duration`` steps after it appears; collecting it spawns the next; the episode ends when
the agent dies or fails to collect a coin within ``steps_per_coin`` steps.

Spotlights follow memory-gym 1.0.2: ``initial_spawns`` at the start, then one every
``initial_spawn_interval + spawn_interval_threshold`` steps (memory-gym computes a decaying schedule
with ``spawn_interval_decay`` but only ever uses its first interval; the field is kept for parameter
compatibility and has no effect) up to ``num_spawns``; endless: one every ``spawn_interval`` steps. The
spotlights alive at once live in ``max_spotlights`` slots, checked against the schedule in
``validate_params``.

Deliberate differences from memory-gym: the top bar shows the action and reward of the step just
taken (memory-gym shows them one step late), and ``reward_max_steps`` is paid at the step limit
(memory-gym declares it but never pays it; the default is 0).

Actions: ``MultiDiscrete([3, 3])`` = [none/left/right, none/up/down]. Observations: an 84 x 84 RGB
frame, or with ``symbolic=True`` a float vector with what the frame shows: light level, health, hit
flag, last action, last reward flag, then the agent, each coin, the exit and each spotlight as
(visible, position...) entries, zeroed where the frame does not show them.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mnemax.envs.core import rendering, spaces
from mnemax.envs.core.environment import NO_TIME_LIMIT, Environment, EnvParams, EnvState
from mnemax.envs.tasks.memory_gym import common
from mnemax.envs.core.params import param
from mnemax.envs.core.registration import register

N = common.SCREEN
BAR_PX = 4  # 16 * 0.25: height of the top bar
FLOOR_TILE_PX = 12  # 50 * 0.25
SPAWN_MARGIN = 7  # int(30 * 0.25): coins and the exit keep this far from the screen's edges
_ACTION_COLORS = np.array([[120, 120, 120], [116, 1, 113], [255, 94, 14]]) / 255
_EXIT_OPEN, _EXIT_CLOSED = np.array([48, 141, 70]) / 255, np.array([55, 55, 55]) / 255
_COIN = np.array([255, 165, 0]) / 255
MAX_SPOTLIGHTS = 128  # slots of spotlights alive at once
MAX_STEPS = 1 << 20  # bound of the counts and intervals in steps (int32 counters)
_SPEED_WHY = "the fraction of its path a spotlight flies per step"


@struct.dataclass
class SearingSpotlightsState(EnvState):
    position: jax.Array  # float32[2]: the agent's pixel (x, y)
    heading: jax.Array  # int32, 0 .. 7
    health: jax.Array  # float32
    spot_active: jax.Array  # bool[S]
    spot_t: jax.Array  # float32[S]: progress along the path, 0 .. 1
    spot_speed: jax.Array  # float32[S]
    spot_radius: jax.Array  # float32[S]
    spot_path: jax.Array  # float32[S, 3, 2]: spawn, target and offset points (x, y) of the path
    spot_drawn: jax.Array  # bool[S]: shown in the current frame
    spot_position: jax.Array  # float32[S, 2]: where it is shown
    spawn_timer: jax.Array  # int32
    spawns_left: jax.Array  # int32
    coins: jax.Array  # float32[C, 2]
    coin_active: jax.Array  # bool[C]: not collected yet
    coin_age: jax.Array  # int32: steps since the current coin appeared (endless)
    exit: jax.Array  # float32[2]
    hit: jax.Array  # bool: a spotlight touched the agent at the last step
    last_action: jax.Array  # int32[2]
    last_reward: jax.Array  # float32
    coins_collected: jax.Array  # int32
    num_coins: jax.Array  # int32


@struct.dataclass
class SearingSpotlightsParams(EnvParams):
    max_steps_in_episode: int = 256  # Memory Gym's "max_steps"
    symbolic: bool = param(False, static=True)
    max_spotlights: int = param(
        10, ge=1, le=MAX_SPOTLIGHTS, static=True, why="every slot is drawn over the whole frame at every step"
    )
    # Spotlights
    initial_spawns: int = param(4, ge=0, le=MAX_SPOTLIGHTS)
    num_spawns: int = param(30, ge=0, le=MAX_STEPS, only="finite")
    initial_spawn_interval: int = param(30, ge=0, le=MAX_STEPS, only="finite")
    spawn_interval_threshold: int = param(10, ge=0, le=MAX_STEPS, only="finite")
    spawn_interval_decay: float = param(0.95, gt=0.0, le=1.0, only="finite")
    spawn_interval: int = param(50, ge=1, le=MAX_STEPS, only="endless")
    spot_min_radius: float = param(30.0 * common.BASE_SCALE, ge=0.0, le=float(N), why="pixels")
    spot_max_radius: float = param(55.0 * common.BASE_SCALE, gt=0.0, le=float(N), why="pixels")
    spot_min_speed: float = param(0.0025, ge=1e-4, le=1.0, why=_SPEED_WHY)
    spot_max_speed: float = param(0.0075, ge=1e-4, le=1.0, why=_SPEED_WHY)
    spot_damage: float = param(1.0, ge=0.0)
    visual_feedback: bool = param(True)
    black_background: bool = param(False)
    hide_chessboard: bool = param(False)
    # Light
    light_dim_off_duration: int = param(6, ge=0, le=255, why="the darkness grows by 255 / duration per step")
    light_threshold: int = param(255, ge=0, le=255, why="an 8-bit opacity")
    # Coins and exit
    num_coins: tuple = param((1,), ge=0, le=16, static=True, only="finite", why="each coin needs a free spot")
    coin_scale: float = param(1.5 * common.BASE_SCALE, gt=0.0, le=4.0, why="a coin's radius is int(10 * scale) pixels")
    coins_visible: bool = param(False)
    coin_show_duration: int = param(6, ge=0, le=MAX_STEPS, only="endless")
    steps_per_coin: int = param(160, ge=1, le=MAX_STEPS, only="endless")
    use_exit: bool = param(True, only="finite")
    exit_scale: float = param(2.0 * common.BASE_SCALE, gt=0.0, le=4.0, only="finite", why="20 * scale pixels wide")
    exit_visible: bool = param(False, only="finite")
    # Agent
    agent_speed: float = common.agent_speed_param(only=None)
    agent_health: int = param(5, ge=1, le=MAX_STEPS)
    agent_scale: float = common.agent_scale_param()
    agent_visible: bool = param(False)
    sample_agent_position: bool = param(True)
    show_last_action: bool = param(True)
    show_last_positive_reward: bool = param(True)
    # Rewards
    reward_inside_spotlight: float = param(0.0)
    reward_outside_spotlight: float = param(0.0)
    reward_death: float = param(0.0)
    reward_exit: float = param(1.0, only="finite")
    reward_max_steps: float = param(0.0)
    reward_coin: float = param(0.25)


ENDLESS_DEFAULTS = dict(
    max_steps_in_episode=NO_TIME_LIMIT, max_spotlights=12, initial_spawns=3, agent_health=10, use_exit=False
)


def required_spotlight_slots(params: SearingSpotlightsParams, endless: bool) -> int:
    """The most spotlights that can be alive at once under ``params`` (the slowest ones live longest)."""
    lifetime = math.ceil(1.0 / float(params.spot_min_speed)) + 1
    if endless:
        interval = int(params.spawn_interval)
        spawns = math.inf
    else:
        interval = int(params.initial_spawn_interval + params.spawn_interval_threshold)
        spawns = min(int(params.num_spawns), int(params.max_steps_in_episode) // max(interval, 1))
    return int(params.initial_spawns) + int(min(spawns, math.ceil(lifetime / max(interval, 1))))


class SearingSpotlights(Environment[SearingSpotlightsState, SearingSpotlightsParams]):
    """Searing Spotlights; ``endless`` picks the endless coin-collection task."""

    play_fps = 25

    def __init__(self, endless: bool = False):
        self.endless = bool(endless)

    @property
    def name(self) -> str:
        return "EndlessSearingSpotlights" if self.endless else "SearingSpotlights"

    @property
    def default_params(self) -> SearingSpotlightsParams:
        return SearingSpotlightsParams(**(ENDLESS_DEFAULTS if self.endless else {}))

    @property
    def variant(self) -> frozenset[str]:
        return frozenset({"endless" if self.endless else "finite"})

    def validate_params(self, params: SearingSpotlightsParams) -> None:
        super().validate_params(params)
        if params.spot_min_speed > params.spot_max_speed:
            raise ValueError(
                f"spot_min_speed must be <= spot_max_speed ({params.spot_max_speed}), got {params.spot_min_speed}"
            )
        if params.spot_min_radius > params.spot_max_radius:
            raise ValueError(
                f"spot_min_radius must be <= spot_max_radius ({params.spot_max_radius}), got {params.spot_min_radius}"
            )
        interval = params.spawn_interval if self.endless else params.initial_spawn_interval + params.spawn_interval_threshold
        if int(interval) < 1:
            raise ValueError(f"the spawn interval must be >= 1, got {interval}")
        needed = required_spotlight_slots(params, self.endless)
        if int(params.max_spotlights) < needed:
            raise ValueError(
                f"max_spotlights={params.max_spotlights} is too small: with these initial_spawns, spawn intervals, "
                f"num_spawns, max_steps_in_episode and spot_min_speed up to {needed} spotlights can be alive at "
                f"once; pass max_spotlights={needed}"
            )

    # ------------------------------------------------------------------------------ spawning
    def _new_spots(self, u, params):
        """Radius, speed and path of spotlights, from uniform numbers ``u`` [..., 5]: each enters from a
        random side of a circle around the room, heads for the opposite side (+-45 degrees) and bends
        towards an offset point (+-135 degrees further)."""

        def integers(v, low, high):
            return low + jnp.minimum(jnp.floor(v * (high - low)), high - low - 1)

        low = jnp.floor(params.spot_min_radius)
        radius = integers(u[..., 0], low, jnp.maximum(jnp.floor(params.spot_max_radius + 1), low + 1))
        speed = params.spot_min_speed + u[..., 1] * (params.spot_max_speed - params.spot_min_speed)
        start = integers(u[..., 2], 0, 360)
        target = start + 180 + integers(u[..., 3], -45, 45)
        offset = target + integers(u[..., 4], -135, 135)
        angles = jnp.deg2rad(jnp.stack([start, target, offset], axis=-1))
        distance = (N * math.sqrt(2.0) / 2.0 + radius)[..., None]  # outside the screen at spawn
        path = N // 2 + distance[..., None] * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)
        return radius, speed, path

    def _spawn(self, u, state, do_spawn, params):
        """``state`` with a new spotlight in the first free slot where ``do_spawn`` (dropped if none)."""
        radius, speed, path = self._new_spots(u, params)
        slot = jnp.argmin(state.spot_active)
        put = do_spawn & ~state.spot_active[slot]
        return state.replace(
            spot_active=state.spot_active.at[slot].set(state.spot_active[slot] | put),
            spot_t=state.spot_t.at[slot].set(jnp.where(put, 0.0, state.spot_t[slot])),
            spot_speed=state.spot_speed.at[slot].set(jnp.where(put, speed, state.spot_speed[slot])),
            spot_radius=state.spot_radius.at[slot].set(jnp.where(put, radius, state.spot_radius[slot])),
            spot_path=state.spot_path.at[slot].set(jnp.where(put, path, state.spot_path[slot])),
        )

    def _place(self, rng, blocked, radius):
        """Memory Gym's spawn sampler: a free pixel, nudged by 2 .. 3 pixels; the area within
        ``radius`` of it is blocked for later spawns."""
        pixel = common.sample_free_pixel(rng.uniform((2,)), blocked)
        blocked = common.block_around(blocked, pixel, radius)
        return pixel + rng.randint((2,), 2, 4), blocked

    def _place_item(self, rng, blocked, radius):
        position, blocked = self._place(rng, blocked, radius)
        return jnp.clip(position, SPAWN_MARGIN, N - SPAWN_MARGIN).astype(jnp.float32), blocked

    def initial_state(self, key, params):
        max_coins = max(1, max(common.choices(params.num_coins)))
        slots = params.max_spotlights
        rng = common.RandomStream(key, 12 + 4 * max_coins + 5 * slots)
        sampled, sampled_blocked = self._place(rng, jnp.zeros((N, N), bool), 28)
        centre = jnp.array([N // 2, N // 2])
        sample = jnp.asarray(params.sample_agent_position)
        position = jnp.where(sample, sampled, centre)
        blocked = jnp.where(sample, sampled_blocked, common.block_around(jnp.zeros((N, N), bool), centre, 21))
        num_coins = rng.choose(params.num_coins).astype(jnp.int32)
        if self.endless:
            num_coins = jnp.int32(1)
        coins = []
        for i in range(max_coins):
            coin, new_blocked = self._place_item(rng, blocked, 28 if self.endless else 21)
            blocked = jnp.where(i < num_coins, new_blocked, blocked)
            coins.append(coin)
        exit_position, _ = self._place_item(rng, blocked, 21)
        state = SearingSpotlightsState(
            time=jnp.int32(0),
            position=position.astype(jnp.float32),
            heading=rng.randint((), 0, 8),
            health=jnp.asarray(params.agent_health, jnp.float32),
            spot_active=jnp.zeros(slots, bool),
            spot_t=jnp.zeros(slots),
            spot_speed=jnp.zeros(slots),
            spot_radius=jnp.zeros(slots),
            spot_path=jnp.zeros((slots, 3, 2)),
            spot_drawn=jnp.zeros(slots, bool),
            spot_position=jnp.zeros((slots, 2)),
            spawn_timer=jnp.int32(0),
            spawns_left=jnp.asarray(params.num_spawns, jnp.int32),
            coins=jnp.stack(coins),
            coin_active=jnp.arange(max_coins) < num_coins,
            coin_age=jnp.int32(0),
            exit=exit_position,
            hit=jnp.bool_(False),
            last_action=jnp.zeros(2, jnp.int32),
            last_reward=jnp.float32(0.0),
            coins_collected=jnp.int32(0),
            num_coins=num_coins,
        )
        radius, speed, path = self._new_spots(rng.uniform((slots, 5)), params)
        return state.replace(
            spot_active=jnp.arange(slots) < params.initial_spawns, spot_speed=speed, spot_radius=radius, spot_path=path
        )

    # ------------------------------------------------------------------------------ dynamics
    def light(self, time, params) -> jax.Array:
        """The darkness's opacity (0 .. 255) after ``time`` steps: it grows by 255 / duration per step
        until it passes ``light_threshold`` (or reaches 255)."""
        step = 255 // jnp.maximum(params.light_dim_off_duration, 1)
        steps = jnp.minimum(time, params.light_threshold // jnp.maximum(step, 1) + 1)
        dimming = jnp.minimum(255, step * steps)
        return jnp.where(params.light_dim_off_duration > 0, dimming, params.light_threshold).astype(jnp.float32)

    def agent_reach(self, params):
        return common.agent_radius(params.agent_scale)

    def coin_radius(self, params):
        return jnp.floor(10.0 * params.coin_scale)

    def exit_radius(self, params):
        return 10.0 * params.exit_scale

    def transition(self, key, state, action, params):
        rng = common.RandomStream(key, 9)
        velocity, turned = common.free_move(action, params.agent_speed)
        radius = self.agent_reach(params)
        position = jnp.clip(state.position + velocity, jnp.array([radius, BAR_PX + radius]), N - radius)
        heading = jnp.where(turned >= 0, turned, state.heading)

        # Spotlights: finished ones leave, one may enter, the others are drawn and move on.
        state = state.replace(spot_active=state.spot_active & (state.spot_t < 1.0))
        timer = state.spawn_timer + 1
        if self.endless:
            due = timer >= params.spawn_interval
        else:
            due = (timer >= params.initial_spawn_interval + params.spawn_interval_threshold) & (state.spawns_left > 0)
        state = self._spawn(rng.uniform((5,)), state, due, params)
        t = state.spot_t[:, None]
        start, target, offset = state.spot_path[:, 0], state.spot_path[:, 1], state.spot_path[:, 2]
        spot_position = start + (target + (offset - target) * t - start) * t
        distance = jnp.linalg.norm(spot_position - position, axis=1)
        hit = jnp.any(state.spot_active & (distance <= state.spot_radius + radius))
        health = state.health - jnp.where(hit, params.spot_damage, 0.0)
        died = health <= 0
        reward = jnp.where(hit, params.reward_inside_spotlight, params.reward_outside_spotlight)
        reward = reward + jnp.where(died, params.reward_death, 0.0)

        # Coins, then the exit once every coin is taken.
        touched = state.coin_active & (jnp.linalg.norm(state.coins - position, axis=1) <= self.coin_radius(params) + radius)
        collected = touched.sum()
        reward = reward + collected * params.reward_coin
        coin_active = state.coin_active & ~touched
        coins, coin_age = state.coins, state.coin_age
        if self.endless:  # the next coin appears away from the one just taken
            blocked = common.block_around(jnp.zeros((N, N), bool), state.coins[0], 28)
            new_coin, _ = self._place_item(rng, blocked, 28)
            coins = jnp.where(touched[:, None], new_coin[None], coins)
            coin_active = jnp.ones_like(coin_active)
            coin_age = jnp.where(collected > 0, 0, coin_age) + 1
        coins_done = ~coin_active.any()
        exit_open = coins_done & jnp.asarray(params.use_exit)
        exited = exit_open & (jnp.linalg.norm(state.exit - position) <= self.exit_radius(params) + radius)
        reward = reward + jnp.where(exited, params.reward_exit, 0.0)

        if self.endless:
            success = jnp.bool_(False)  # endless episodes end only by a failure or the step limit
            terminated = died | (coin_age >= params.steps_per_coin)
        else:
            finished = jnp.where(params.use_exit, exited, coins_done & (state.num_coins > 0))
            success = ~died & finished
            terminated = died | success
        out_of_time = (state.time + 1 >= params.max_steps_in_episode) & ~terminated
        reward = reward + jnp.where(out_of_time, params.reward_max_steps, 0.0)

        next_state = state.replace(
            position=position,
            heading=heading,
            health=health,
            spot_t=jnp.where(state.spot_active, jnp.minimum(state.spot_t + state.spot_speed, 1.0), state.spot_t),
            spot_drawn=state.spot_active,
            spot_position=spot_position,
            spawn_timer=jnp.where(due, 0, timer),
            spawns_left=state.spawns_left - due,
            coins=coins,
            coin_active=coin_active,
            coin_age=coin_age,
            hit=hit,
            last_action=jnp.asarray(action, jnp.int32),
            last_reward=reward,
            coins_collected=state.coins_collected + collected,
        )
        info = {
            "success": success,
            "agent_health": health / params.agent_health,
            "coins_collected": (
                next_state.coins_collected.astype(jnp.float32)
                if self.endless
                else next_state.coins_collected / jnp.maximum(state.num_coins, 1)
            ),
        }
        return next_state, reward, terminated, info

    def expert_action(self, state, params) -> jax.Array:
        """An action of a policy that knows where everything is: it walks to the nearest coin, then to
        the exit (it does not dodge spotlights)."""
        distance = jnp.where(state.coin_active, jnp.linalg.norm(state.coins - state.position, axis=1), jnp.inf)
        goal = jnp.where(state.coin_active.any(), state.coins[jnp.argmin(distance)], state.exit)
        return common.free_action_towards(state.position, goal)

    # --------------------------------------------------------------------------- observation
    def _lit(self, state, position, reach, params):
        """Whether something of radius ``reach`` at ``position`` ([..., 2]) shows: the light is not
        fully dimmed, or a spotlight shown in this frame overlaps it."""
        distance = jnp.linalg.norm(state.spot_position - position[..., None, :], axis=-1)
        overlap = jnp.any(state.spot_drawn & (distance <= state.spot_radius + reach), axis=-1)
        return overlap | (self.light(state.time, params) < 255)

    def coins_above_darkness(self, state, params):
        shown = jnp.asarray(params.coins_visible)
        if self.endless:
            shown = shown | (state.coin_age < params.coin_show_duration)
        return shown

    def observe(self, state, params):
        if not params.symbolic:
            return self.render(state, params)
        scale = 1.0 / N
        agent_shown = jnp.asarray(params.agent_visible) | self._lit(state, state.position, self.agent_reach(params), params)
        coin_shown = state.coin_active & (
            self.coins_above_darkness(state, params) | self._lit(state, state.coins, self.coin_radius(params), params)
        )
        exit_shown = jnp.asarray(params.use_exit) & (
            jnp.asarray(params.exit_visible) | self._lit(state, state.exit, self.exit_radius(params), params)
        )
        on_screen = state.spot_drawn & (
            jnp.linalg.norm(state.spot_position - jnp.clip(state.spot_position, 0, N), axis=1) <= state.spot_radius
        )
        exit_open = ~state.coin_active.any()
        parts = [
            jnp.stack(
                [
                    self.light(state.time, params) / 255.0,
                    state.health / params.agent_health,
                    (state.hit & jnp.asarray(params.visual_feedback)).astype(jnp.float32),
                ]
            ),
            jnp.concatenate([common.one_hot(state.last_action[0], 3), common.one_hot(state.last_action[1], 3)])
            * jnp.asarray(params.show_last_action, jnp.float32),
            ((state.last_reward > 0) & jnp.asarray(params.show_last_positive_reward)).astype(jnp.float32)[None],
            agent_shown.astype(jnp.float32)[None],
            state.position * scale * agent_shown,
            common.one_hot(state.heading, 8) * agent_shown,
            jnp.concatenate([coin_shown[:, None], state.coins * scale * coin_shown[:, None]], axis=1).reshape(-1),
            jnp.concatenate([jnp.stack([exit_shown, exit_shown & exit_open]), state.exit * scale * exit_shown]),
            jnp.concatenate(
                [on_screen[:, None], state.spot_position * scale * on_screen[:, None], (state.spot_radius * scale * on_screen)[:, None]],
                axis=1,
            ).reshape(-1),
        ]
        return jnp.concatenate([jnp.asarray(p, jnp.float32) for p in parts])

    def observation_space(self, params):
        if params.symbolic:
            max_coins = max(1, max(common.choices(params.num_coins)))
            size = 3 + 6 + 1 + 1 + 2 + 8 + 3 * max_coins + 4 + 4 * params.max_spotlights
            return spaces.Box(-2.0, 3.0, (size,), jnp.float32)
        return common.image_space()

    def action_space(self, params):
        return common.free_action_space()

    def keys_to_action(self, keys: frozenset, params):
        """The action for the held keys (names "up", "down", "left", "right")."""
        return common.free_keys_to_action(keys)

    def render(self, state, params):
        # Every pixel shows one of few colours: the floor's two or an entity's, each darkened or not
        # (or, on a spotlight's rim, brightened), an entity above the darkness, or a colour of the
        # top bar. The frame is a palette of them, blended once per colour as the layers would be
        # painted in turn, and an index per pixel: shapes are masks, the blends never touch pixels.
        ys, xs = rendering.pixel_axes(N, N)
        # Shapes are OR-ed one at a time (the slots are few): no [slots, H, W] intermediate, which
        # would cost gigabytes at large batch sizes.
        coin_mask = jnp.zeros((N, N), bool)
        for i in range(state.coins.shape[0]):
            cy, cx = jnp.floor(state.coins[i, 1]) + 0.5, jnp.floor(state.coins[i, 0]) + 0.5
            coin_mask = coin_mask | (rendering.circle_mask(N, N, cy, cx, self.coin_radius(params)) & state.coin_active[i])
        coins_above = self.coins_above_darkness(state, params)
        exit_mask, exit_edge = _exit_masks(state.exit, self.exit_radius(params))
        exit_color = jnp.where(~state.coin_active.any(), _EXIT_OPEN, _EXIT_CLOSED)
        exit_above = jnp.asarray(params.exit_visible)
        use_exit = jnp.asarray(params.use_exit)
        agent_above = jnp.asarray(params.agent_visible)
        x, y = state.position
        body, hands = common.agent_masks(N, N, x, y, state.heading, self.agent_reach(params))
        entity_colors = jnp.stack([jnp.asarray(c, jnp.float32) for c in (_COIN, exit_color, (0.0, 0.0, 0.0), common.AGENT_BODY, common.AGENT_HANDS)])

        def topmost(above):
            """int32 [N, N]: 1 + the index in entity_colors of the entity drawn on top, 0 for none."""
            shown = use_exit & (exit_above == above)
            agent_shown = agent_above == above
            layers = (coin_mask & (coins_above == above), exit_mask & shown, exit_edge & shown, body & agent_shown, hands & agent_shown)
            return common.topmost_layer(layers)

        # Scene colours under the darkness: 0 a white tile, 1 a coloured one (blue, or red while a
        # spotlight burns the agent), 2 .. 6 the entities.
        floor = jnp.where(state.hit & jnp.asarray(params.visual_feedback), jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 0.0, 1.0]))
        tiles = jnp.stack([jnp.ones(3), floor])
        tiles = jnp.where(jnp.asarray(params.black_background), 0.0, tiles)
        scene = jnp.concatenate([tiles, entity_colors])
        coloured_tile = jnp.asarray(~_chessboard()) & ~jnp.asarray(params.hide_chessboard)
        below = topmost(False)
        scene_index = jnp.where(below > 0, below + 1, coloured_tile.astype(jnp.int32))

        # Darkness everywhere but inside the spotlights; their rims are drawn on a black background.
        lit = rims = jnp.zeros((N, N), bool)
        for i in range(state.spot_position.shape[0]):
            cy, cx = jnp.floor(state.spot_position[i, 1]) + 0.5, jnp.floor(state.spot_position[i, 0]) + 0.5
            d2 = (ys - cy) ** 2 + (xs - cx) ** 2
            inside = state.spot_drawn[i] & (d2 <= state.spot_radius[i] ** 2)
            lit = lit | inside
            rims = rims | (inside & (d2 > (state.spot_radius[i] - 1.0) ** 2))
        darkness = self.light(state.time, params) / 255.0
        every = jnp.ones(scene.shape[0], bool)
        dark = rendering.paint(scene, every, (0.0, 0.0, 0.0), darkness)  # off the spotlights
        rim = rendering.paint(scene, every, (1.0, 1.0, 1.0), darkness)  # on a rim (rims are lit)
        light = jnp.where(~lit, 1, jnp.where(rims & jnp.asarray(params.black_background), 2, 0))

        k = scene.shape[0]
        index = light * k + scene_index
        above = topmost(True)
        index = jnp.where(above > 0, 3 * k + above - 1, index)
        bar_colors = self._top_bar_colors(state, params)
        index = jnp.where(np.arange(N)[:, None] < BAR_PX, 3 * k + entity_colors.shape[0] + np.arange(N)[None, :], index)
        palette = jnp.concatenate([scene, dark, rim, entity_colors, bar_colors])
        return rendering.to_uint8(palette)[index]

    def _top_bar_colors(self, state, params):
        """float32 [N, 3]: the colour of each column of the top bar (its rows are alike): health
        (green, burnt red from the left), the last action's two components and a yellow mark when
        the last step paid a reward."""
        xs = rendering.pixel_axes(N, N)[1][0]
        half = (N // 4) * 2
        burnt = jnp.floor(half * (1.0 - state.health / params.agent_health))
        color = jnp.where((xs < burnt)[..., None], jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0]))
        color = jnp.where((xs < half)[..., None], color, jnp.array([50 / 255] * 3))
        quarter = N // 4
        show_action = jnp.asarray(params.show_last_action)
        colors = jnp.asarray(_ACTION_COLORS)
        first = (xs >= 2 * quarter) & (xs < 3 * quarter) & show_action
        second = (xs >= 3 * quarter) & show_action
        color = jnp.where(first[..., None], colors[state.last_action[0]], color)
        color = jnp.where(second[..., None], colors[state.last_action[1]], color)
        mark_left = jnp.where(show_action, int(quarter * 2.75), 2 * quarter)
        mark_width = jnp.where(show_action, int(quarter * 0.5), 2 * quarter)
        mark = (xs >= mark_left) & (xs < mark_left + mark_width) & jnp.asarray(params.show_last_positive_reward)
        mark_color = jnp.where(state.last_reward > 0, jnp.array([1.0, 1.0, 0.0]), jnp.array([50 / 255] * 3))
        return jnp.where(mark[..., None], mark_color, color)


@functools.lru_cache(maxsize=None)
def _chessboard() -> np.ndarray:
    return rendering.checkerboard_mask(N, N, FLOOR_TILE_PX)


def _exit_masks(position, radius):
    """The exit: a square of side ``2 * radius`` centred at ``position`` with rounded top corners (a
    door), and its one-pixel outline."""
    ys, xs = rendering.pixel_axes(N, N)
    x0, y0 = jnp.floor(position[0] - radius), jnp.floor(position[1] - radius)
    side = 2.0 * radius

    def door(inset):
        lower = (xs >= x0 + inset) & (xs < x0 + side - inset) & (ys >= y0 + radius) & (ys < y0 + side - inset)
        dome = ((ys - (y0 + radius)) ** 2 + (xs - (x0 + radius)) ** 2 <= (radius - inset) ** 2) & (ys < y0 + radius)
        return lower | dome

    outer = door(0.0)
    return outer, outer & ~door(1.0)


def _register():
    finite = functools.partial(SearingSpotlights, endless=False)
    endless = functools.partial(SearingSpotlights, endless=True)
    for suffix, symbolic in (("", False), ("-Symbolic", True)):
        what = "symbolic observations" if symbolic else "84x84 pixels"
        register(f"SearingSpotlights{suffix}-v0", finite, f"Searing Spotlights, {what}", symbolic=symbolic)
        register(f"EndlessSearingSpotlights{suffix}-v0", endless, f"Endless Searing Spotlights, {what}", symbolic=symbolic)


_register()
