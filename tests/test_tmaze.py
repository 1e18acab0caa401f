"""T-Maze rules and the proof that it needs memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mnemax.envs
from mnemax.envs.tasks.tmaze import DOWN, LEFT, RIGHT, UP
from memory_probe import best_memoryless, mean_success


def _play(env_id, actions, goal, **params):
    env, p = mnemax.envs.make(env_id, **params)
    _, state = env.reset(jax.random.key(0), p)
    state = state.replace(goal=jnp.int32(goal))
    out = []
    for a in actions:
        obs, state, reward, terminated, truncated, info = env.step_env(jax.random.key(1), state, a, p)
        out.append((np.asarray(obs), float(reward), bool(terminated), bool(truncated), bool(info["success"]), int(state.x)))
    return out


def test_passive_cue_only_at_first_step():
    env, p = mnemax.envs.make("TMaze-Passive-v0")
    obs, state = env.reset(jax.random.key(0), p)
    assert obs[:2].sum() == 1 and obs[int(state.goal)] == 1
    obs, *_ = env.step_env(jax.random.key(0), state, LEFT, p)  # staying at the start: cue gone
    assert obs.tolist() == [0, 0, 0]


@pytest.mark.parametrize("goal,turn,reward", [(0, UP, 1.0), (0, DOWN, 0.0), (1, DOWN, 1.0), (1, UP, 0.0)])
def test_turn_at_junction_decides_reward(goal, turn, reward):
    steps = _play("TMaze-Passive-v0", [RIGHT] * 5 + [turn], goal, corridor_length=5)
    assert [s[5] for s in steps[:5]] == [1, 2, 3, 4, 5]
    assert steps[4][0][2] == 1  # the junction is visible
    obs, r, terminated, truncated, success, _ = steps[-1]
    assert terminated and not truncated and r == reward and success == (reward == 1.0)


def test_not_advancing_costs_step_penalty_and_horizon_ends_episode():
    steps = _play("TMaze-Passive-v0", [UP, RIGHT, RIGHT, RIGHT, RIGHT, RIGHT], goal=0, corridor_length=5)
    assert steps[0][1] == pytest.approx(-1 / 5)  # up in the corridor: no move, penalty
    assert steps[1][1] == 0.0
    assert steps[-1][2] and not steps[-1][4]  # horizon L + 1 reached before the junction turn
    assert len(steps) == 6


def test_active_cue_is_behind_the_start():
    env, p = mnemax.envs.make("TMaze-Active-v0", corridor_length=4)
    obs, state = env.reset(jax.random.key(0), p)
    assert int(state.x) == 1 and obs.tolist() == [0, 0, 0]
    steps = _play("TMaze-Active-v0", [LEFT, RIGHT, RIGHT, RIGHT, RIGHT, UP], goal=0, corridor_length=4)
    assert steps[0][0][0] == 1  # at the oracle cell the cue shows
    assert steps[0][1] == pytest.approx(-1 / 4)
    assert steps[-1][2] and steps[-1][4] and steps[-1][1] == 1.0


def test_active_oracle_start_prob_starts_episodes_on_the_cue():
    env, p = mnemax.envs.make("TMaze-Active-v0", corridor_length=4, oracle_start_prob=1.0)
    obs, state = env.reset(jax.random.key(0), p)
    assert int(state.x) == 0 and obs[:2].sum() == 1
    keys = jax.random.split(jax.random.key(1), 4000)
    _, states = jax.vmap(env.reset, in_axes=(0, None))(keys, p.replace(oracle_start_prob=0.25))
    assert abs(float((states.x == 0).mean()) - 0.25) < 0.03
    # the goal is drawn as without the curriculum, and the passive task starts at the cue anyway
    _, plain = jax.vmap(env.reset, in_axes=(0, None))(keys, p.replace(oracle_start_prob=0.0))
    assert bool(jnp.all(states.goal == plain.goal)) and bool(jnp.all(plain.x == 1))
    passive, q = mnemax.envs.make("TMaze-Passive-v0", corridor_length=4, oracle_start_prob=0.5)
    _, states = jax.vmap(passive.reset, in_axes=(0, None))(keys[:100], q)
    assert bool(jnp.all(states.x == 0))


def test_passive_near_start_prob_spreads_starts_towards_the_junction():
    env, p = mnemax.envs.make("TMaze-Passive-v0", corridor_length=1000, near_start_prob=0.5)
    keys = jax.random.split(jax.random.key(2), 4000)
    obs, states = jax.vmap(env.reset, in_axes=(0, None))(keys, p)
    near = states.x > 0
    assert abs(float(near.mean()) - 0.5) < 0.03
    distance = 1000 - states.x[near]
    assert int(distance.min()) >= 1 and int(distance.max()) < 1000
    # log-uniform: about a third of the near starts lie within 10 cells of the junction, a third beyond 100
    assert abs(float((distance < 10).mean()) - 1 / 3) < 0.05 and abs(float((distance >= 100).mean()) - 1 / 3) < 0.05
    assert bool(jnp.all(obs[:, :2].sum(-1) == 1))  # the cue shows at the first step, wherever it is
    _, plain = jax.vmap(env.reset, in_axes=(0, None))(keys, p.replace(near_start_prob=0.0))
    assert bool(jnp.all(states.goal == plain.goal)) and bool(jnp.all(plain.x == 0))
    # a near start is solved by walking the rest of the way and turning to the cue's side
    success, ret = mean_success(env, p.replace(near_start_prob=1.0), _remembering_policy, num_episodes=64, max_steps=1001)
    assert success == 1.0 and ret == pytest.approx(1.0)
    # the active form ignores it (its cue stands behind the start)
    active, q = mnemax.envs.make("TMaze-Active-v0", corridor_length=4, near_start_prob=1.0)
    _, states = jax.vmap(active.reset, in_axes=(0, None))(keys[:100], q)
    assert bool(jnp.all(states.x == 1))


@pytest.mark.parametrize("length", [10, 100, 2000])
def test_long_corridors(length):
    env, p = mnemax.envs.make("TMaze-Passive-v0", corridor_length=length)
    success, ret = mean_success(env, p, _remembering_policy, num_episodes=16, max_steps=length + 1)
    assert success == 1.0 and ret == pytest.approx(1.0)


def _remembering_policy(_, obs, memory):
    """Stores the cue when it is visible, walks right, turns to the remembered side."""
    memory = jnp.where(obs[0] + obs[1] > 0, memory.at[1].set(obs[1]), memory)
    action = jnp.where(obs[2] > 0, jnp.where(memory[1] > 0, DOWN, UP), RIGHT)
    return action, memory


def _active_remembering_policy(_, obs, memory):
    seen = memory[2] > 0
    memory = jnp.where(obs[0] + obs[1] > 0, memory.at[1].set(obs[1]).at[2].set(1.0), memory)
    action = jnp.where(obs[2] > 0, jnp.where(memory[1] > 0, DOWN, UP), jnp.where(seen | (obs[0] + obs[1] > 0), RIGHT, LEFT))
    return action, memory


@pytest.mark.parametrize("env_id,policy", [("TMaze-Passive-v0", _remembering_policy), ("TMaze-Active-v0", _active_remembering_policy)])
def test_memory_is_needed(env_id, policy):
    """A policy that remembers the cue always succeeds; the best memoryless policy is at chance."""
    env, p = mnemax.envs.make(env_id)
    horizon = int(env.horizon(p))
    success, _ = mean_success(env, p, policy, num_episodes=512, max_steps=horizon)
    assert success == 1.0
    observations = [np.array(o, np.float32) for o in ([1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1])]
    best, table = best_memoryless(env, p, observations, num_actions=4, num_episodes=512, max_steps=horizon)
    assert 0.4 < best < 0.6, f"best memoryless success {best} with table {table}"
