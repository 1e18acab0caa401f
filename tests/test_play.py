"""The keyboard player runs headless (SDL's dummy video driver) for a few frames."""

import numpy as np
import pytest

from mnemax.envs.tools import play


@pytest.mark.parametrize("env_id", ["mnemax/MortarMayhem-Grid-v0", "mnemax/SearingSpotlights-v0"])
def test_play_runs_a_few_frames_headless(env_id, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    summary = play.play(env_id, scale=2, seed=0, fps=1000, max_frames=5)
    assert summary["frames"] == 5
    # Real-time tasks step every frame; turn-based ones wait for key presses.
    assert summary["steps"] == (0 if "Grid" in env_id else 5)


def test_keys_map_to_actions():
    import mnemax.envs

    env, params = mnemax.envs.make("MortarMayhem-Grid-v0")
    assert env.keys_to_action(frozenset(), params) is None
    assert [env.keys_to_action(frozenset({k}), params) for k in ("space", "up", "right", "down", "left")] == [0, 1, 2, 3, 4]
    env, params = mnemax.envs.make("MysteryPath-v0")
    np.testing.assert_array_equal(env.keys_to_action(frozenset({"up", "left"}), params), [1, 1])
    np.testing.assert_array_equal(env.keys_to_action(frozenset(), params), [0, 0])


def test_play_command_line(monkeypatch, capsys):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    play.main(["mnemax/MortarMayhem-Grid-v0", "--max-frames", "3", "--fps", "1000", "--scale", "1", "--seed", "2"])
    assert "3 frames, 0 steps" in capsys.readouterr().out
