"""HCAM's chunk weights and the attention video tool (a tiny HCAM run on Ballet, trained for a few updates)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tyro

from mnemax import memory_modules
from mnemax.envs.tools.command_line import UserError
from mnemax.train import PPO, PPOConfig, train
from mnemax.train.attention_video import AttentionVideoArgs, attention_video, chunk_starts, hcam_layers

HCAM = {"num_layers": 1, "num_heads": 2, "chunk_size": 4, "memory_chunks": 6, "top_k": 2}


def test_sowing_chunk_weights_changes_neither_outputs_nor_carry():
    module = memory_modules.make("hcam", features=16, **(HCAM | {"num_layers": 2}))
    steps, batch = 19, 3
    inputs = jax.random.normal(jax.random.PRNGKey(0), (steps, batch, 8))
    resets = jnp.zeros((steps, batch), bool).at[0].set(True).at[11, 1].set(True)
    carry = module.initialize_carry(batch)
    params = module.init(jax.random.PRNGKey(1), carry, inputs, resets)
    plain = module.apply(params, carry, inputs, resets)
    sown, state = module.apply(params, carry, inputs, resets, mutable=["intermediates"])
    jax.tree_util.tree_map(np.testing.assert_array_equal, plain, sown)
    for layer in range(2):
        (weights,) = state["intermediates"][f"block_{layer}"]["hcam"]["chunk_weights"]
        slots = HCAM["memory_chunks"] + -(-steps // HCAM["chunk_size"])
        assert weights.shape == (batch, steps, HCAM["num_heads"], slots)
        totals = np.asarray(weights.sum(-1))
        assert np.all(np.isclose(totals, 1.0, atol=1e-5) | (totals == 0.0))
        # Every episode reads nothing before its first chunk is complete, and something after.
        assert np.all(totals[:, : HCAM["chunk_size"]] == 0.0) and np.all(totals[0, 8:] > 0.99)


def test_tool_writes_a_video_of_distributions_over_completed_chunks(tmp_path):
    config = PPOConfig(
        env="mnemax/Ballet-2-Delay16-Symbolic-v0", memory="hcam", memory_config=HCAM, hidden_size=16,
        num_envs=4, num_steps=16, num_minibatches=2, update_epochs=1, total_steps=4 * 16 * 2, num_logs=1,
        num_seeds=2, progress=False, video=False, eval_episodes=1, run_dir=str(tmp_path / "runs"), run_name="tiny-hcam",
    )  # fmt: skip
    train(config)
    argv = ["--run", str(tmp_path / "runs" / "tiny-hcam"), "--steps", "80", "--out", str(tmp_path / "videos")]
    video, trace = attention_video(tyro.cli(AttentionVideoArgs, args=argv + ["--seed-index", "1"]))
    assert video == tmp_path / "videos" / "tiny-hcam-attention.mp4" and video.stat().st_size > 1000

    size, capacity = HCAM["chunk_size"], HCAM["memory_chunks"]
    assert trace.frames.shape == (80, 88, 88, 3) and trace.weights.shape == (80, HCAM["num_heads"], capacity + 1)
    np.testing.assert_array_equal(trace.episode_step, trace.states.time)  # Ballet counts episode steps too
    starts = chunk_starts(trace.episode_step, capacity, size)
    np.testing.assert_array_equal(trace.visible, starts >= 0)  # the memory holds exactly the completed chunks
    assert np.all(trace.weights[:, :, capacity] == 0)  # nothing reads the chunk completed by the step itself
    weights = trace.weights[:, :, :capacity]
    assert np.all(weights >= 0) and np.all(weights[~np.broadcast_to(trace.visible[:, None], weights.shape)] == 0)
    totals = weights.sum(-1)
    reading = np.broadcast_to(trace.visible.any(-1)[:, None], totals.shape)
    np.testing.assert_allclose(totals[reading], 1.0, atol=1e-5)
    assert np.all(totals[~reading] == 0) and reading[:, 0].sum() > 40
    gif, _ = attention_video(tyro.cli(AttentionVideoArgs, args=argv + ["--video-format", "gif", "--steps", "8"]))
    assert gif == tmp_path / "videos" / "tiny-hcam-attention.gif" and gif.read_bytes()[:6] == b"GIF89a"


def test_tool_refuses_other_memories_and_layers():
    ppo = PPO(PPOConfig(env="mnemax/Ballet-2-Delay16-Symbolic-v0", memory="gru", hidden_size=8))
    with pytest.raises(UserError, match="HCAM"):
        hcam_layers(ppo)
    with pytest.raises(UserError, match="video-format must be one of mp4, gif"):
        attention_video(AttentionVideoArgs(run="runs/any", video_format="webm"))
