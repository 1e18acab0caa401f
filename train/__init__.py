"""Trainers: recurrent PPO with the whole update under one ``jit``, plus the CLI around it.

    from mnemax.train import PPOConfig, train
    result = train(PPOConfig(env="mnemax/TMaze-Passive-v0", memory="gru", total_steps=200_000))
"""

from mnemax.train.config import PPOConfig
from mnemax.train.loop import TrainResult, Trainer, train
from mnemax.train.ppo import PPO

__all__ = ["PPO", "PPOConfig", "TrainResult", "Trainer", "train"]
