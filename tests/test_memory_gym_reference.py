"""Step-by-step agreement with the pygame ``memory-gym`` package (skipped when it is not installed).

Each test resets memory-gym, copies its episode (commands, path, spotlights, coins...) into our state,
then steps both with the same actions and compares rewards, episode ends and the agent's position.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
memory_gym = pytest.importorskip("memory_gym", reason="memory-gym (pygame) is not installed")

from mnemax.envs.tasks.memory_gym import mortar_mayhem, mystery_path, searing_spotlights  # noqa: E402


@pytest.mark.parametrize("movement", ["grid", "free"])
def test_mortar_mayhem_agrees_with_memory_gym(movement):
    from memory_gym.mortar_mayhem import MortarMayhemEnv
    from memory_gym.mortar_mayhem_grid import GridMortarMayhemEnv
    from memory_gym.pygame_assets import Command

    ours = mortar_mayhem.MortarMayhem(movement)
    params = ours.default_params.replace(turn_controls=movement == "grid")
    ends = []
    for seed in range(3):
        reference = (GridMortarMayhemEnv if movement == "grid" else MortarMayhemEnv)()
        reference.reset(seed=seed)
        names = list(Command.COMMANDS)
        commands = jnp.array([names.index(c) for c in reference._commands], jnp.int32)
        start = jnp.array(reference.normalized_agent_position, jnp.int32)
        state = ours.initial_state(jax.random.key(seed), params)
        position = start.astype(jnp.float32) if movement == "grid" else jnp.array(reference.agent.rect.center, jnp.float32)
        state = state.replace(
            position=position, commands=commands, target=start + jnp.asarray(mortar_mayhem.COMMAND_MOVES)[commands[0]]
        )
        rng = np.random.default_rng(seed)
        expert = jax.jit(ours.expert_action)
        # Actions are chosen on our state as it goes (mostly the expert's, so episodes get far, sometimes
        # random ones, so they also fail); both environments receive the same ones.
        step = jax.jit(ours.step_env)
        for t in range(400):
            action = np.asarray(expert(state, params)) if rng.random() < (0.9 if movement == "grid" else 0.6) else ours.action_space(params).sample(jax.random.key(t + 1000 * seed))
            action = np.asarray(action)
            _, ref_reward, ref_done, _, _ = reference.step(action.tolist() if action.ndim else int(action))
            _, state, reward, terminated, _, _ = step(jax.random.key(t), state, jnp.asarray(action), params)
            assert float(reward) == pytest.approx(ref_reward, abs=1e-6), f"seed {seed}, step {t}"
            ref_tile = np.asarray(reference.normalized_agent_position, int)
            assert np.asarray(ours.tile_of(state.position, params)).tolist() == ref_tile.tolist(), f"seed {seed}, step {t}"
            assert bool(terminated) == bool(ref_done), f"seed {seed}, step {t}"
            if ref_done:
                ends.append(t + 1)
                break
        reference.close()
    assert len(ends) == 3 and len(set(ends)) > 1


@pytest.mark.parametrize("movement", ["grid", "free"])
def test_mystery_path_agrees_with_memory_gym(movement):
    from memory_gym.mystery_path import MysteryPathEnv
    from memory_gym.mystery_path_grid import GridMysteryPathEnv

    ours = mystery_path.MysteryPath(movement)
    params = ours.default_params.replace(turn_controls=movement == "grid")
    step = jax.jit(ours.step_env)
    expert = jax.jit(ours.expert_action)
    falls = 0
    for seed in range(3):
        reference = (GridMysteryPathEnv if movement == "grid" else MysteryPathEnv)()
        reference.reset(seed=seed)
        on_path = np.zeros((7, 7), bool)
        for node in reference.mystery_path.path:
            on_path[node.x, node.y] = True
        state = ours.initial_state(jax.random.key(seed), params)
        origin = jnp.array(reference.start, jnp.int32)
        state = state.replace(
            on_path=jnp.asarray(on_path), origin=origin, goal=jnp.array(reference.end, jnp.int32), position=ours.place_on(origin, params)
        )
        rng = np.random.default_rng(seed)
        for t in range(params.max_steps_in_episode):
            action = expert(state, params) if rng.random() < (0.8 if movement == "grid" else 0.4) else ours.action_space(params).sample(jax.random.key(t + 1000 * seed))
            action = np.asarray(action)
            _, ref_reward, ref_done, _, info = reference.step(action.tolist() if action.ndim else int(action))
            _, state, reward, terminated, truncated, _ = step(jax.random.key(t), state, jnp.asarray(action), params)
            assert float(reward) == pytest.approx(ref_reward, abs=1e-6), f"seed {seed}, step {t}"
            assert np.asarray(ours.tile_of(state.position, params)).tolist() == list(np.asarray(reference.normalized_agent_position, int))
            assert bool(terminated | truncated) == bool(ref_done), f"seed {seed}, step {t}"
            if ref_done:
                falls += int(info["num_fails"])
                assert int(state.num_fails) == info["num_fails"]
                break
        reference.close()
    assert falls > 0


def test_searing_spotlights_agrees_with_memory_gym():
    from memory_gym.searing_spotlights import SearingSpotlightsEnv

    ours = searing_spotlights.SearingSpotlights()
    params = ours.default_params.replace(num_spawns=0)
    step = jax.jit(ours.step_env)
    lengths = []
    for seed in range(3):
        reference = SearingSpotlightsEnv()
        reference.reset(seed=seed, options={"num_spawns": 0})
        state = ours.initial_state(jax.random.key(seed), params)
        spots = reference.spotlights
        slots = params.max_spotlights
        pad = slots - len(spots)
        path = np.array([[tuple(s.spawn_location), tuple(s.target_location), tuple(s.offset_location)] for s in spots], np.float32)
        state = state.replace(
            position=jnp.array(reference.agent.rect.center, jnp.float32),
            spot_active=jnp.arange(slots) < len(spots),
            spot_t=jnp.zeros(slots),
            spot_speed=jnp.asarray(np.pad([s.speed for s in spots], (0, pad)), jnp.float32),
            spot_radius=jnp.asarray(np.pad([s.radius for s in spots], (0, pad)), jnp.float32),
            spot_path=jnp.asarray(np.pad(path, ((0, pad), (0, 0), (0, 0)))),
            coins=jnp.array([c.location for c in reference.coins], jnp.float32),
            exit=jnp.array(reference.exit.location, jnp.float32),
        )
        rng = np.random.default_rng(seed)
        expert = jax.jit(ours.expert_action)
        for t in range(params.max_steps_in_episode):
            action = expert(state, params) if rng.random() < 0.5 else ours.action_space(params).sample(jax.random.key(t + 1000 * seed))
            action = np.asarray(action)
            _, ref_reward, ref_done, _, info = reference.step(action.tolist())
            _, state, reward, terminated, truncated, _ = step(jax.random.key(t), state, jnp.asarray(action), params)
            assert float(reward) == pytest.approx(ref_reward, abs=1e-6), f"seed {seed}, step {t}"
            assert np.asarray(state.position).tolist() == list(reference.agent.rect.center), f"seed {seed}, step {t}"
            assert float(state.health) == reference.current_agent_health, f"seed {seed}, step {t}"
            assert bool(terminated | truncated) == bool(ref_done), f"seed {seed}, step {t}"
            if ref_done:
                lengths.append(t + 1)
                break
        reference.close()
    assert len(lengths) == 3
