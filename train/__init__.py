"""Trainers: on-policy algorithms (PPO, DCPO) whose whole update runs under one ``jit``, the training
loop around them (seeds, devices, checkpoints, logs, videos) and the CLI.

    from mnemax.train import PPOConfig, train
    result = train(PPOConfig(env="mnemax/TMaze-Passive-v0", memory="gru", total_steps=200_000))

``mnemax.train.algorithms`` lists the algorithms by name; each has its configuration class
(:class:`PPOConfig`, :class:`DCPOConfig`), a :class:`~mnemax.train.config.TrainConfig`.
"""

from mnemax.train import algorithms
from mnemax.train.config import RunConfig, TrainConfig
from mnemax.train.dcpo import DCPO, DCPOConfig
from mnemax.train.loop import TrainResult, Trainer, train
from mnemax.train.ppo import PPO, PPOConfig

__all__ = [
    "DCPO",
    "DCPOConfig",
    "PPO",
    "PPOConfig",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "algorithms",
    "train",
]
