"""Observation encoders: each maps a batch of observations ``[B, *obs_shape]`` to features ``[B, H]``."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mnemax.envs.core import spaces


def dense(features: int, scale: float = np.sqrt(2), name: str | None = None) -> nn.Dense:
    """A dense layer with orthogonal init (the PPO convention)."""
    init = nn.initializers.orthogonal(scale)
    return nn.Dense(features, kernel_init=init, bias_init=nn.initializers.zeros_init(), name=name)


class MLPEncoder(nn.Module):
    """Two ReLU layers over a flattened float observation."""

    features: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.reshape(obs.shape[0], -1).astype(jnp.float32)
        x = nn.relu(dense(self.features)(x))
        return nn.relu(dense(self.features)(x))


class CNNEncoder(nn.Module):
    """The Nature-DQN convolution stack for ``uint8 [H, W, C]`` frames (84x84 and similar sizes)."""

    features: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.astype(jnp.float32) / 255.0
        init = nn.initializers.orthogonal(np.sqrt(2))
        x = nn.relu(nn.Conv(32, (8, 8), strides=(4, 4), padding="VALID", kernel_init=init)(x))
        x = nn.relu(nn.Conv(64, (4, 4), strides=(2, 2), padding="VALID", kernel_init=init)(x))
        x = nn.relu(nn.Conv(64, (3, 3), strides=(1, 1), padding="VALID", kernel_init=init)(x))
        return nn.relu(dense(self.features)(x.reshape(x.shape[0], -1)))


class TokenEncoder(nn.Module):
    """Integer token observations ``[B, *shape]``: embed every token, flatten, one ReLU layer."""

    features: int
    vocab_size: int
    embed_dim: int = 32

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = nn.Embed(self.vocab_size, self.embed_dim)(obs.astype(jnp.int32))
        return nn.relu(dense(self.features)(x.reshape(x.shape[0], -1)))


def encoder_for(space: spaces.Space, features: int) -> nn.Module:
    """The encoder suited to an observation space: CNN for uint8 images ``[H, W, C]``, token embedding
    for other integer arrays, MLP for float vectors."""
    if not isinstance(space, spaces.Box):
        raise TypeError(f"agents need a Box observation space, got {space}")
    if np.dtype(space.dtype) == np.uint8 and len(space.shape) == 3:
        return CNNEncoder(features)
    if np.issubdtype(np.dtype(space.dtype), np.integer):
        return TokenEncoder(features, vocab_size=int(np.max(space.high)) + 1)
    return MLPEncoder(features)
