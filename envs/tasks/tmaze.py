"""T-Maze (Bakker 2001), in the passive and active forms of Ni et al. 2023 ("When do transformers shine
in RL? Decoupling memory from credit assignment").

A corridor of ``corridor_length`` L cells ends in a junction with one exit up and one down; the goal is
one of the two, drawn at reset. The goal side is shown by a cue:

* **passive** -- the cue is shown at the first step only, at the start cell ``x = 0``;
* **active** -- the cue stands in an oracle cell ``x = 0`` one step *behind* the start ``x = 1``; the
  agent sees it only while standing there, so it must first walk back (credit assignment and memory).

At the junction ``x = L`` moving up or down ends the episode: reward 1 for the goal side, 0 for the
other. Every step that does not advance towards the junction costs ``step_penalty / L``. The episode
also ends (unsuccessfully) at the task horizon, the minimum number of steps that solves it: ``L + 1``
(passive) or ``L + 2`` (active). The memory length the task needs is therefore L.

Two training curricula (``TrainConfig.train_env_params``), not part of the task, each ignored by the other
form: ``oracle_start_prob`` (active form, default 0) starts that fraction of episodes on the oracle cell
itself, cue in view; ``near_start_prob`` (passive form, default 0) starts that fraction of episodes closer to
the junction, ``d = floor(L ** u)`` cells before it (``u`` uniform in [0, 1): distances log-uniform in
``[1, L)``), with the cue shown at that first step: short episodes reach the junction often and teach the
turn, and the spread of distances is a curriculum over the memory length.

Observation: ``float32[3] = [cue_up, cue_down, at_junction]``. Actions: ``0 up, 1 right, 2 down, 3 left``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from mnemax.envs.core import rendering, spaces
from mnemax.envs.core.environment import NO_TIME_LIMIT, Environment, EnvParams, EnvState
from mnemax.envs.core.params import param
from mnemax.envs.core.registration import register

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3


@struct.dataclass
class TMazeState(EnvState):
    x: jax.Array  # position along the corridor, 0 .. L
    goal: jax.Array  # 0: the goal is up, 1: down


@struct.dataclass
class TMazeParams(EnvParams):
    corridor_length: int = param(10, ge=1, le=1 << 30, why="the horizon L + 2 is counted in int32")
    active: bool = param(False)
    # Active form: the probability that an episode starts *at* the oracle cell, cue in view, instead of one
    # step ahead of it (a training curriculum; 0 is the task of Ni et al.). Such episodes teach the memory
    # what the cue means, which is what makes walking back to it worth anything.
    oracle_start_prob: float = param(0.0, ge=0.0, le=1.0)
    # Passive form: the probability that an episode starts d = floor(L ** u) cells before the junction (u
    # uniform in [0, 1)) instead of L. At L = 1000 a junction visit is one step in 1001, and the policy settles
    # on walking on before a turn is ever rewarded; starts log-uniform in distance make it one step in ~145.
    near_start_prob: float = param(0.0, ge=0.0, le=1.0)
    step_penalty: float = param(1.0, ge=0.0)
    # The task horizon ends episodes; this generic limit is set out of its way.
    max_steps_in_episode: int = NO_TIME_LIMIT


class TMaze(Environment[TMazeState, TMazeParams]):
    """Passive or active T-Maze; see the module docstring for the rules."""

    window = 11  # cells shown by ``render`` around the agent (long corridors do not fit a frame)
    cell_px = 16

    @property
    def default_params(self) -> TMazeParams:
        return TMazeParams()

    def horizon(self, params: TMazeParams) -> jax.Array:
        """The number of steps an episode may take: the fewest that solve it."""
        return params.corridor_length + 1 + jnp.asarray(params.active, jnp.int32)

    def initial_state(self, key, params):
        goal = jax.random.bernoulli(key).astype(jnp.int32)
        key_start = jax.random.fold_in(key, 1)
        # active: start one cell ahead of the oracle, or on it with probability oracle_start_prob
        ahead = jnp.asarray(params.active) & ~jax.random.bernoulli(key_start, params.oracle_start_prob)
        # passive: start at the cue's cell 0, or d = floor(L ** u) cells before the junction
        key_near, key_distance = jax.random.split(jax.random.fold_in(key, 2))
        near = ~jnp.asarray(params.active) & jax.random.bernoulli(key_near, params.near_start_prob)
        u = jax.random.uniform(key_distance)
        length = params.corridor_length
        distance = jnp.clip(jnp.floor(jnp.power(jnp.float32(length), u)).astype(jnp.int32), 1, length)
        x = jnp.where(near, length - distance, ahead.astype(jnp.int32))
        return TMazeState(time=jnp.int32(0), x=x, goal=goal)

    def transition(self, key, state, action, params):
        length = params.corridor_length
        at_junction = state.x == length
        turned = at_junction & ((action == UP) | (action == DOWN))
        correct = turned & (action == jnp.where(state.goal == 0, UP, DOWN))
        x = jnp.clip(state.x + (action == RIGHT) - (action == LEFT), 0, length)
        out_of_time = state.time + 1 >= self.horizon(params)
        penalty = jnp.where(turned | (x > state.x), 0.0, params.step_penalty / length)
        reward = correct.astype(jnp.float32) - penalty
        terminated = turned | out_of_time
        return state.replace(x=x), reward, terminated, {"success": correct}

    def cue_visible(self, state: TMazeState, params: TMazeParams) -> jax.Array:
        return jnp.where(params.active, state.x == 0, state.time == 0)

    def observe(self, state, params):
        cue = self.cue_visible(state, params)
        return jnp.stack(
            [
                cue & (state.goal == 0),
                cue & (state.goal == 1),
                state.x == params.corridor_length,
            ]
        ).astype(jnp.float32)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (3,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(4)

    def render(self, state, params):
        """A side view of the ``window`` cells around the agent: corridor grey, junction exits above and
        below the last cell (goal exit green), the cue cell blue (goal up) or orange (goal down)."""
        w, px = self.window, self.cell_px
        length = params.corridor_length
        first = jnp.clip(state.x - w // 2, 0, jnp.maximum(length - w + 1, 0))
        cells = first + jnp.arange(w)  # corridor position of every column
        in_maze = cells <= length
        height, width = 3 * px, w * px
        image = rendering.canvas(height, width, (0.08, 0.08, 0.1))
        col = jnp.arange(w)
        goal_row = jnp.where(state.goal == 0, 0, 2)
        cue_color = jnp.where(state.goal == 0, jnp.array([0.2, 0.45, 1.0]), jnp.array([1.0, 0.55, 0.1]))
        for c in range(w):
            left, right = c * px + 1, (c + 1) * px - 1
            corridor = rendering.rect_mask(height, width, px + 1, left, 2 * px - 1, right)
            image = rendering.paint(image, corridor & in_maze[c], (0.55, 0.55, 0.6))
            is_cue = (cells[c] == 0) & self.cue_visible(state.replace(x=jnp.int32(0)), params)
            image = rendering.paint(image, corridor & is_cue, cue_color)
            for row in (0, 2):
                exit_mask = rendering.rect_mask(height, width, row * px + 1, left, (row + 1) * px - 1, right)
                color = jnp.where(goal_row == row, jnp.array([0.2, 0.8, 0.3]), jnp.array([0.55, 0.55, 0.6]))
                image = rendering.paint(image, exit_mask & (cells[c] == length), color)
        agent_col = jnp.argmax(cells == state.x)
        agent = rendering.circle_mask(height, width, 1.5 * px, (col[agent_col] + 0.5) * px, 0.35 * px)
        image = rendering.paint(image, agent, (0.95, 0.2, 0.2))
        return rendering.to_uint8(image)


for _length in (10, 100, 1000):
    _suffix = "" if _length == 10 else f"-L{_length}"
    register(f"TMaze-Passive{_suffix}-v0", TMaze, f"passive T-Maze, corridor {_length}", corridor_length=_length)
    register(f"TMaze-Active{_suffix}-v0", TMaze, f"active T-Maze, corridor {_length}", corridor_length=_length, active=True)
