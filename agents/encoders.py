"""Observation encoders: each maps a batch of observations ``[B, *obs_shape]`` to features ``[B, H]``; its
``init`` field names how its weights start (one of :data:`INITS`)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mnemax.envs.core import spaces


# How weights start: "orthogonal" with a gain per layer (the agents' default and the PPO convention of
# CleanRL and PureJaxRL: sqrt(2) for ReLU layers, 0.01 for the policy head, 1 for the value head), or
# "lecun" (LeCun normal everywhere, flax's default and memorax's). Biases start at zero either way.
# Neither wins everywhere: at memorax's settings (1024 envs) LeCun normal took T-Maze L = 10 to 0.95 in
# 2.6-2.9 M steps against 4.7-5.2 M (benchmarks/results/learning_vs_memorax_h200.md), but in the small
# CPU run of tests/test_learning.py (32 envs, 2e5 steps) it solved 6 of 12 seeds, orthogonal all 12.
INITS = ("orthogonal", "lecun")


def kernel_init(init: str = "orthogonal", scale: float = np.sqrt(2)) -> nn.initializers.Initializer:
    """The kernel initializer ``init`` (one of :data:`INITS`); ``scale`` is the orthogonal gain."""
    if init == "orthogonal":
        return nn.initializers.orthogonal(scale)
    if init == "lecun":
        return nn.initializers.lecun_normal()
    raise ValueError(f"unknown init {init!r}; known: {', '.join(INITS)}")


def dense(features: int, scale: float = np.sqrt(2), name: str | None = None, init: str = "orthogonal") -> nn.Dense:
    """A dense layer with zero bias and the kernel initializer ``init`` (orthogonal of gain ``scale``)."""
    return nn.Dense(features, kernel_init=kernel_init(init, scale), bias_init=nn.initializers.zeros_init(), name=name)


class MLPEncoder(nn.Module):
    """Two ReLU layers over a flattened float observation."""

    features: int
    init: str = "orthogonal"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.reshape(obs.shape[0], -1).astype(jnp.float32)
        x = nn.relu(dense(self.features, init=self.init)(x))
        return nn.relu(dense(self.features, init=self.init)(x))


class CNNEncoder(nn.Module):
    """The Nature-DQN convolution stack for ``uint8 [H, W, C]`` frames (84x84 and similar sizes)."""

    features: int
    init: str = "orthogonal"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.astype(jnp.float32) / 255.0
        init = kernel_init(self.init)
        x = nn.relu(nn.Conv(32, (8, 8), strides=(4, 4), padding="VALID", kernel_init=init)(x))
        x = nn.relu(nn.Conv(64, (4, 4), strides=(2, 2), padding="VALID", kernel_init=init)(x))
        x = nn.relu(nn.Conv(64, (3, 3), strides=(1, 1), padding="VALID", kernel_init=init)(x))
        return nn.relu(dense(self.features, init=self.init)(x.reshape(x.shape[0], -1)))


class TokenEncoder(nn.Module):
    """Integer token observations ``[B, *shape]``: embed every token, flatten, one ReLU layer."""

    features: int
    vocab_size: int
    embed_dim: int = 32
    init: str = "orthogonal"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = nn.Embed(self.vocab_size, self.embed_dim)(obs.astype(jnp.int32))
        return nn.relu(dense(self.features, init=self.init)(x.reshape(x.shape[0], -1)))


def encoder_for(space: spaces.Space, features: int, init: str = "orthogonal") -> nn.Module:
    """The encoder suited to an observation space: CNN for uint8 images ``[H, W, C]``, token embedding
    for other integer arrays, MLP for float vectors; its layers start as ``init`` (:data:`INITS`)."""
    kernel_init(init)  # an unknown name fails here, not at the first call
    if not isinstance(space, spaces.Box):
        raise TypeError(f"agents need a Box observation space, got {space}")
    if np.dtype(space.dtype) == np.uint8 and len(space.shape) == 3:
        return CNNEncoder(features, init=init)
    if np.issubdtype(np.dtype(space.dtype), np.integer):
        return TokenEncoder(features, vocab_size=int(np.max(space.high)) + 1, init=init)
    return MLPEncoder(features, init=init)
