"""The actor-critic network: encoder -> memory module -> policy and value heads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mnemax import memory_modules
from mnemax.agents.distributions import PAD_LOGIT
from mnemax.agents.encoders import check_dtype, dense, encoder_for, is_image, kernel_init
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
        reconstruction: also decode the observation from the memory output (the auxiliary loss of Pleines
            et al. 2024): the decoded logits ``[T, B, *obs_shape]`` are sown into the ``intermediates``
            collection as ``reconstruction`` (``apply(..., mutable=["intermediates"])`` returns them;
            otherwise the decoder's work is dropped by XLA). See :func:`decode_observation`.
        weight_init: how the heads' and the decoder's weights start (:data:`~mnemax.agents.encoders.INITS`;
            the encoder has its own field). The memory modules keep their own initialisation.
    """

    encoder: nn.Module
    memory: MemoryModule | None
    action_sizes: tuple[int, ...]
    hidden_size: int = 128
    separate_critic: bool = False
    linear_heads: bool = False
    reconstruction: bool = False
    weight_init: str = "orthogonal"

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
        if self.reconstruction and resets.shape[0]:
            self.sow("intermediates", "reconstruction", decode_observation(x, obs, self.weight_init))
        if not self.linear_heads:
            x = nn.relu(dense(self.hidden_size, name="actor_hidden", init=self.weight_init)(x))
            x_value = nn.relu(dense(self.hidden_size, name="critic_hidden", init=self.weight_init)(x_value))
        logits = dense(sum(self.action_sizes), scale=0.01, name="actor_head", init=self.weight_init)(x)
        value = dense(1, scale=1.0, name="critic_head", init=self.weight_init)(x_value)[..., 0]
        return carry, _pad_components(logits, self.action_sizes), value

    @staticmethod
    def _tower(encoder, memory, carry, obs, resets):
        """Encoder then memory over ``[T, B, ...]`` observations: ``(carry, features [T, B, H])``."""
        steps, batch = resets.shape
        if steps == 0:  # a call over no steps updates the carry (MemoryModule.projected_fields); nothing to encode
            x = jnp.zeros((0, batch, encoder.features), jnp.float32)
        else:
            x = over_steps(encoder, obs)
        if memory is not None:
            carry, x = memory(carry, x, resets)
            x = x.astype(jnp.float32)
        return carry, x


def over_steps(fn, tree) -> jax.Array:
    """``fn`` of a batch ``[N, ...] -> [N, ...]`` applied to every step of ``[T, B, ...]`` leaves at once.

    The steps are merged batch-major (``[B * T]``): with the environment axis sharded over devices, a
    ``[T * B]`` merge splits it below the time axis, which XLA cannot partition; it gathered every device's
    observations and ran the whole update's encoder on each device (pixel PPO scaled 0.58 to two GPUs).
    """
    t, b = jax.tree_util.tree_leaves(tree)[0].shape[:2]
    flat = jax.tree_util.tree_map(lambda x: jnp.swapaxes(x, 0, 1).reshape((b * t,) + x.shape[2:]), tree)
    y = fn(flat)
    return jnp.swapaxes(y.reshape((b, t) + y.shape[1:]), 0, 1)


def decode_observation(features: jax.Array, obs: jax.Array, init: str = "orthogonal") -> jax.Array:
    """Logits of the observation decoded from ``features [T, B, H]``, shaped like ``obs [T, B, *shape]``.

    Images (``uint8 [H, W, C]``): the encoder's convolutions mirrored (as CleanRL's ``ppo_trxl``): a dense
    layer to ``64 x 7 x 7``, transposed convolutions of kernels 3, 4 and 8 with strides 1, 2 and 4 (exactly
    84 x 84 back; other sizes are resized), one logit per pixel channel. Float vectors: one linear layer.
    Weights start as ``init`` (:data:`~mnemax.agents.encoders.INITS`).
    """
    shape = obs.shape[2:]
    if is_image(obs.dtype, shape):
        height, width, channels = shape
        side = ((height - 8) // 4 + 1 - 4) // 2 + 1 - 2  # the encoder's last feature map (7 for 84)
        conv_init = kernel_init(init)
        layers = [
            dense(64 * side * side, name="decoder_dense", init=init),
            nn.ConvTranspose(64, (3, 3), (1, 1), padding="VALID", kernel_init=conv_init, name="decoder_0"),
            nn.ConvTranspose(32, (4, 4), (2, 2), padding="VALID", kernel_init=conv_init, name="decoder_1"),
            nn.ConvTranspose(channels, (8, 8), (4, 4), padding="VALID", kernel_init=conv_init, name="decoder_2"),
        ]

        def decode(x):  # [N, H] -> [N, height, width, channels]
            x = nn.relu(layers[0](x)).reshape(x.shape[0], side, side, 64)
            x = layers[3](nn.relu(layers[2](nn.relu(layers[1](x)))))
            if x.shape[1:3] != (height, width):
                x = jax.image.resize(x, (x.shape[0], height, width, channels), "linear")
            return x

        return over_steps(decode, features)
    if jnp.issubdtype(obs.dtype, jnp.floating):
        return dense(int(np.prod(shape)), scale=1.0, name="decoder", init=init)(features).reshape(obs.shape)
    raise ValueError(f"observation reconstruction decodes uint8 [H, W, C] images and float vectors, not {obs.dtype} {shape}")


def reconstruction_loss(logits: jax.Array, obs: jax.Array) -> jax.Array:
    """Mean loss of decoded ``logits`` against ``obs`` (both ``[T, B, *shape]``): binary cross-entropy
    against the pixels in ``[0, 1]`` for images, squared error for float vectors."""
    if obs.dtype == jnp.uint8:
        return optax.sigmoid_binary_cross_entropy(logits, obs.astype(jnp.float32) / 255.0).mean()
    return jnp.square(logits - obs).mean()


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
    reconstruction: bool = False,
    weight_init: str = "orthogonal",
    conv: str = "patches",
    dtype: str = "float32",
    items: Any = None,
    parts: Any = (),
) -> ActorCritic:
    """An :class:`ActorCritic` with the encoder suited to ``observation_space`` and the memory module
    ``memory`` (``"none"``: memoryless) of width ``hidden_size`` with the fields ``memory_config``; the
    encoder's, heads' and decoder's weights start as ``weight_init`` (:data:`~mnemax.agents.encoders.INITS`),
    and a CNN encoder computes its convolutions as ``conv`` (:data:`~mnemax.agents.encoders.CONVS`).

    ``dtype`` (:data:`~mnemax.agents.encoders.DTYPES`) is the compute dtype of the encoder and the memory
    (unless ``memory_config`` sets the memory's own): with ``"bfloat16"`` their matrix products and
    convolutions run in bf16 while the parameters, the carry, the heads and the loss stay f32.

    ``items`` (``[n, d]`` indices into a flat float observation, e.g. a task's ``observation_items``) reads
    each item with one layer shared by the items, and each of ``parts`` (index arrays, e.g. a task's
    ``observation_parts``) and the rest apart (:class:`~mnemax.agents.encoders.ItemsEncoder`)."""
    dtype = check_dtype(dtype)
    module = None
    if memory != "none":
        fields = {"features": hidden_size, **({"dtype": dtype} if dtype != jnp.float32 else {}), **(memory_config or {})}
        module = memory_modules.make(memory, **fields)
    return ActorCritic(
        encoder=encoder_for(observation_space, hidden_size, weight_init, conv, dtype, items, parts),
        memory=module,
        action_sizes=action_sizes(action_space),
        hidden_size=hidden_size,
        separate_critic=separate_critic,
        linear_heads=linear_heads,
        reconstruction=reconstruction,
        weight_init=weight_init,
    )
