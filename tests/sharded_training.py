"""Run by tests/test_sharding.py in a fresh process with 4 forced CPU devices (XLA_FLAGS must be set
before JAX starts): training on 4 devices equals training on 1 device, resumes from a sharded
checkpoint, and each device works on its own environments only."""

import dataclasses
import re
import shutil
import sys

import jax
import numpy as np

from mnemax.train import PPOConfig, train
from mnemax.train.loop import Trainer


def assert_only_gradient_traffic(config: PPOConfig) -> None:
    """The compiled update moves no per-environment data between devices: its collectives are all-reduces
    (gradients, statistics). An all-gather means some step runs the whole batch on every device."""
    trainer = Trainer(config)
    hlo = trainer.train_interval.lower(jax.eval_shape(trainer.init)).compile().as_text()
    collectives = re.findall(r"\b(all-gather|all-to-all|collective-permute|reduce-scatter|all-reduce)(?:-start)?\(", hlo)
    assert collectives and set(collectives) == {"all-reduce"}, sorted(set(collectives))


def main(run_dir: str) -> None:
    assert jax.device_count() == 4, jax.devices()
    config = PPOConfig(
        env="mnemax/TMaze-Passive-v0", memory="gru", num_envs=16, num_steps=16, bptt_length=8, num_minibatches=2,
        update_epochs=2, hidden_size=32, total_steps=16 * 16 * 3, num_logs=3, checkpoint_every=1, num_seeds=2,
        progress=False, video=False, eval_episodes=8, run_dir=run_dir,
    )  # fmt: skip
    assert_only_gradient_traffic(dataclasses.replace(config, num_devices=4))
    assert_only_gradient_traffic(dataclasses.replace(config, num_devices=4, reset_pool=2))  # spares stay local
    # `rarely` compacts copies in groups of 64 contiguous ones: with 64 envs per device none moves between them
    endless = dataclasses.replace(config, env="mnemax/EndlessMysteryPath-Symbolic-v0", num_envs=256, num_devices=4)
    assert_only_gradient_traffic(endless)
    one = train(dataclasses.replace(config, num_devices=1, run_name="one"))
    four = train(dataclasses.replace(config, num_devices=4, run_name="four"))
    assert len(four.runner.obs.sharding.device_set) == 4
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5),
        one.runner.train_state.params,
        four.runner.train_state.params,
    )
    # Kill-and-resume on 4 devices: drop the last checkpoint, resume, get the same parameters.
    shutil.rmtree(four.run_dir / "checkpoints" / str(config.num_log_intervals))
    resumed = train(dataclasses.replace(config, num_devices=4, run_name="four", resume=True))
    jax.tree_util.tree_map(
        np.testing.assert_array_equal, four.runner.train_state.params, resumed.runner.train_state.params
    )
    print("sharded training matches")


if __name__ == "__main__":
    main(sys.argv[1])
