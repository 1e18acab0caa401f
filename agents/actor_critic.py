"""The actor-critic network: encoder -> memory module -> policy and value heads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mnemax import memory_modules
from mnemax.agents.distributions import PAD_LOGIT
from mnemax.agents.encoders import dense, encoder_for
from mnemax.envs.core import spaces
from mnemax.memory_modules import MemoryModule


class ActorCritic(nn.Module):
    """Maps observation sequences to action logits and values, carrying memory across calls.

    ``apply(params, carry, obs, resets) -> (carry, logits, value)`` with ``obs [T, B, *obs_shape]``,
    ``resets [T, B]`` (True where an episode starts), ``logits [T, B, K, N]`` (see
    :mod:`mnemax.agents.distributions`) and ``value [T, B]``. With ``memory=None`` the agent is
    memoryless: it sees only the current observation (the baseline that memory tasks must defeat).

    With ``separate_critic`` the value head reads a tower of its own (a second encoder and memory with
    the same architecture, parameters under ``critic_encoder`` / ``critic_memory``), so the value loss
    cannot reshape the features the policy reads; the carry is then ``{"actor": ..., "critic": ...}``.
    Parameters of the value branch have ``critic`` in their name (see :func:`parameter_branches`).

    Attributes:
        encoder: maps ``[B, *obs_shape]`` to ``[B, hidden_size]`` features.
        memory: a :class:`~mnemax.memory_modules.MemoryModule`, or ``None``.
        action_sizes: the number of choices of each action component (``(n,)`` for ``Discrete(n)``).
        hidden_size: width of the heads.
        separate_critic: give the value head its own encoder and memory.
        linear_heads: read logits and value straight off the memory output (no hidden ReLU layer).
    """

    encoder: nn.Module
    memory: MemoryModule | None
    action_sizes: tuple[int, ...]
    hidden_size: int = 128
    separate_critic: bool = False
    linear_heads: bool = False

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> Any:
        carry = () if self.memory is None else self.memory.initialize_carry(batch_size)
        return {"actor": carry, "critic": carry} if self.separate_critic else carry

    @nn.compact
    def __call__(self, carry, obs, resets):
        if self.separate_critic:
            actor_carry, x = self._tower(self.encoder, self.memory, carry["actor"], obs, resets)
            critic_encoder = self.encoder.clone(parent=self, name="critic_encoder")
            critic_memory = None if self.memory is None else self.memory.clone(parent=self, name="critic_memory")
            critic_carry, x_value = self._tower(critic_encoder, critic_memory, carry["critic"], obs, resets)
            carry = {"actor": actor_carry, "critic": critic_carry}
        else:
            carry, x = self._tower(self.encoder, self.memory, carry, obs, resets)
            x_value = x
        if not self.linear_heads:
            x = nn.relu(dense(self.hidden_size, name="actor_hidden")(x))
            x_value = nn.relu(dense(self.hidden_size, name="critic_hidden")(x_value))
        logits = dense(sum(self.action_sizes), scale=0.01, name="actor_head")(x)
        value = dense(1, scale=1.0, name="critic_head")(x_value)[..., 0]
        return carry, _pad_components(logits, self.action_sizes), value

    @staticmethod
    def _tower(encoder, memory, carry, obs, resets):
        """Encoder then memory over ``[T, B, ...]`` observations: ``(carry, features [T, B, H])``."""
        t, b = resets.shape
        # Encoded batch-major ([B * T]): with the environment axis sharded over devices, a [T * B] merge would
        # split it below the time axis, which XLA cannot partition; it gathered every device's observations
        # and ran the whole update's encoder on each device (pixel PPO then scaled 0.58 to two GPUs).
        flat = jax.tree_util.tree_map(lambda x: jnp.swapaxes(x, 0, 1).reshape((b * t,) + x.shape[2:]), obs)
        x = jnp.swapaxes(encoder(flat).reshape(b, t, -1), 0, 1)
        if memory is not None:
            carry, x = memory(carry, x, resets)
            x = x.astype(jnp.float32)
        return carry, x


def parameter_branches(params: Any) -> Any:
    """``"critic"`` for every parameter of the value branch (its name holds ``critic``), ``"actor"`` for
    the rest, in the tree structure of ``params``."""

    def branch(path, _):
        names = (str(getattr(key, "key", key)) for key in path)
        return "critic" if any("critic" in name for name in names) else "actor"

    return jax.tree_util.tree_map_with_path(branch, params)


def _pad_components(logits: jax.Array, sizes: tuple[int, ...]) -> jax.Array:
    """Split ``[..., sum(sizes)]`` into ``[..., K, max(sizes)]``, padding short components."""
    width = max(sizes)
    parts = jnp.split(logits, np.cumsum(sizes)[:-1], axis=-1)
    padded = [jnp.pad(p, [(0, 0)] * (p.ndim - 1) + [(0, width - p.shape[-1])], constant_values=PAD_LOGIT) for p in parts]
    return jnp.stack(padded, axis=-2)


def action_sizes(space: spaces.Space) -> tuple[int, ...]:
    """The per-component sizes of a ``Discrete`` or ``MultiDiscrete`` action space."""
    if isinstance(space, spaces.Discrete):
        return (space.n,)
    if isinstance(space, spaces.MultiDiscrete):
        return tuple(int(n) for n in space.nvec)
    raise TypeError(f"the actor-critic agents need a Discrete or MultiDiscrete action space, got {space}")


def make_actor_critic(
    observation_space: spaces.Space,
    action_space: spaces.Space,
    *,
    hidden_size: int = 128,
    memory: str = "gru",
    memory_config: Mapping[str, Any] | None = None,
    separate_critic: bool = False,
    linear_heads: bool = False,
) -> ActorCritic:
    """An :class:`ActorCritic` with the encoder suited to ``observation_space`` and the memory module
    ``memory`` (``"none"``: memoryless) of width ``hidden_size`` with the fields ``memory_config``."""
    module = None
    if memory != "none":
        module = memory_modules.make(memory, **{"features": hidden_size, **(memory_config or {})})
    return ActorCritic(
        encoder=encoder_for(observation_space, hidden_size),
        memory=module,
        action_sizes=action_sizes(action_space),
        hidden_size=hidden_size,
        separate_critic=separate_critic,
        linear_heads=linear_heads,
    )
