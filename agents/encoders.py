"""Observation encoders: each maps a batch of observations ``[B, *obs_shape]`` to features ``[B, H]``; its
``init`` field names how its weights start (one of :data:`INITS`)."""

from __future__ import annotations

from typing import Any

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


def dense(
    features: int, scale: float = np.sqrt(2), name: str | None = None, init: str = "orthogonal", dtype: Any = jnp.float32
) -> nn.Dense:
    """A dense layer with zero bias and the kernel initializer ``init`` (orthogonal of gain ``scale``), computed
    in ``dtype`` (its parameters stay f32)."""
    return nn.Dense(
        features, kernel_init=kernel_init(init, scale), bias_init=nn.initializers.zeros_init(), name=name, dtype=dtype
    )


# Compute dtypes of the encoders (and, through the agents, of their memories): "bfloat16" runs the matrix
# products and convolutions in bf16 (half the memory traffic, the GPUs' faster units) while parameters,
# carries, heads and losses stay f32 (mixed precision).
DTYPES = ("float32", "bfloat16")


def check_dtype(dtype: Any) -> jnp.dtype:
    """``dtype`` as a numpy dtype if it is one of :data:`DTYPES`, else ValueError."""
    if jnp.dtype(dtype).name not in DTYPES:
        raise ValueError(f"unknown compute dtype {dtype!r}; known: {', '.join(DTYPES)}")
    return jnp.dtype(dtype)


class MLPEncoder(nn.Module):
    """Two ReLU layers over a flattened float observation."""

    features: int
    init: str = "orthogonal"
    dtype: Any = jnp.float32  # of the products (DTYPES)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.reshape(obs.shape[0], -1).astype(jnp.float32)
        x = nn.relu(dense(self.features, init=self.init, dtype=self.dtype)(x))
        return nn.relu(dense(self.features, init=self.init, dtype=self.dtype)(x))


class ItemsEncoder(nn.Module):
    """A flat float observation read in parts, one ReLU layer over the sum of each part's linear map: the
    items the task lists in it (``items``: ``[n, d]`` indices into the flat observation, one row per item),
    each through one layer shared by all items (an item looks the same to it wherever it stands); each of
    ``parts`` (index tuples, e.g. an instruction); and whatever neither covers (e.g. the room around the
    items). Where items are read by what they show (Ballet: which dancer did the named dance), the shared
    layer learns one reading instead of one per place.

    Why each part gets its own map: a layer over all of them at once starts with weights scaled by its
    ~2,900 inputs, which likely leaves Ballet's 13-entry instruction, the one input that says which dancer
    is asked for, almost no say. With the codes beside an MLP over the whole flat room, a probe taught the
    binding from reward alone stayed at chance (benchmarks/results/ballet_probe_cpu-reward-trxl-items-
    entropy0.1-long.md); read in parts it learns it (``ballet_probe_cpu-reward-trxl-items-parts.md``)."""

    features: int
    items: tuple[tuple[int, ...], ...]
    parts: tuple[tuple[int, ...], ...] = ()
    item_features: int = 32
    init: str = "orthogonal"
    dtype: Any = jnp.float32  # of the products (DTYPES)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.reshape(obs.shape[0], -1).astype(jnp.float32)
        items = np.asarray(self.items)
        codes = nn.relu(dense(self.item_features, init=self.init, dtype=self.dtype, name="item")(x[:, items]))
        inputs = {"codes": codes.reshape(x.shape[0], -1)}
        inputs |= {f"part_{k}": x[:, np.asarray(part)] for k, part in enumerate(self.parts)}
        covered = np.concatenate([items.reshape(-1)] + [np.asarray(part, int) for part in self.parts])
        rest = np.setdiff1d(np.arange(x.shape[1]), covered)
        if rest.size:
            inputs["rest"] = x[:, rest]
        maps = [dense(self.features, init=self.init, dtype=self.dtype, name=name)(v) for name, v in inputs.items()]
        return nn.relu(sum(maps))


# How the CNN computes its convolutions: "patches" (each output position's input patch times the kernel as
# one matrix, :class:`PatchConv`) or "xla" (``lax.conv``; cuDNN on GPUs). Both have the same parameters and
# outputs. Why patches are the default: the trainers run several seeds at once with vmap, and under vmap a
# convolution whose kernel differs per seed becomes a grouped convolution (one group per seed), whose
# backward pass is slow on GPUs (jax-ml/jax#13800), while a product with a per-seed matrix becomes a batched
# matrix product. A pixel PPO update of the `memory_gym` preset on Mortar Mayhem Grid took 730 ms with
# patches against 2,778 ms with lax.conv for 3 seeds on an H200 (3.8x), and 349 against 322 ms for one seed
# (benchmarks/results/ppo_profile_h200.md); on the CPU patches were 10.8x (1 seed) and 11.3x (3 seeds)
# faster (ppo_profile_cpu-quick.md). Writing the patches out costs time too (their concatenations took ~81 ms
# of a 367 ms 3-seed update on an H200), but a sum of one product per shifted slice, which never forms them,
# was slower: 579 against 417 ms per bf16 update of 3 seeds on an H100 (ppo_profile_h100-pixels-shifts.md).
CONVS = ("patches", "xla")


def check_conv(conv: str) -> str:
    """``conv`` if it names a way of computing the CNN's convolutions (:data:`CONVS`), else ValueError."""
    if conv not in CONVS:
        raise ValueError(f"unknown conv {conv!r}; known: {', '.join(CONVS)}")
    return conv


class PatchConv(nn.Module):
    """A strided ``VALID`` 2-D convolution computed as patches times a matrix: ``[B, H, W, C_in] ->
    [B, H', W', features]`` with ``H' = (H - kh) // sh + 1`` (and ``W'`` alike), the parameters of
    ``nn.Conv`` (``kernel [kh, kw, C_in, features]``, ``bias [features]``) and its outputs up to rounding.

    The input is first cut into ``sh x sw`` blocks (space to depth: ``[B, H / sh, W / sw, sh * sw * C_in]``),
    and the patches are ``ceil(kh / sh) * ceil(kw / sw)`` shifted slices of the blocks stacked on the channel
    axis (4 for the Nature CNN's first two layers, against ``kh * kw`` = 64 and 16 strided slices of the
    input; 9 for its third, of stride 1); the kernel's rows are reordered to match (and padded with zeros
    where the stride does not divide the kernel). Each slice copies whole blocks, contiguous in memory,
    instead of a few channels of every pixel. The layer holds ``ceil(kh / sh) * ceil(kw / sw)`` times its
    input in memory (4x for the Nature CNN's first layer) in exchange for one matrix product.
    """

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int]
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    dtype: Any = jnp.float32  # of the product; the parameters stay f32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        (kh, kw), (sh, sw), channels = self.kernel_size, self.strides, x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (kh, kw, channels, self.features)).astype(self.dtype)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,)).astype(self.dtype)
        x = x.astype(self.dtype)
        height, width = x.shape[-3:-1]
        out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
        if out_h < 1 or out_w < 1:
            raise ValueError(f"PatchConv: input {height} x {width} is smaller than the kernel {kh} x {kw}")
        # Blocks per patch along each axis; the kernel grows to whole blocks with zero rows (and the input,
        # where that reaches past its edge, with zero pixels that only ever meet those rows).
        mh, mw = -(-kh // sh), -(-kw // sw)
        rows, cols = out_h - 1 + mh, out_w - 1 + mw  # blocks that the output's patches cover
        x = x[..., : rows * sh, : cols * sw, :]
        pad = [(0, 0)] * (x.ndim - 3) + [(0, rows * sh - x.shape[-3]), (0, cols * sw - x.shape[-2]), (0, 0)]
        x = jnp.pad(x, pad)
        lead = x.shape[:-3]
        blocks = x.reshape(*lead, rows, sh, cols, sw, channels)
        blocks = jnp.moveaxis(blocks, -4, -3).reshape(*lead, rows, cols, sh * sw * channels)
        patches = jnp.concatenate(
            [blocks[..., a : a + out_h, b : b + out_w, :] for a in range(mh) for b in range(mw)], axis=-1
        )
        kernel = jnp.pad(kernel, [(0, mh * sh - kh), (0, mw * sw - kw), (0, 0), (0, 0)])
        kernel = kernel.reshape(mh, sh, mw, sw, channels, self.features).transpose(0, 2, 1, 3, 4, 5)
        return patches @ kernel.reshape(mh * mw * sh * sw * channels, self.features) + bias


class CNNEncoder(nn.Module):
    """The Nature-DQN convolution stack for ``uint8 [H, W, C]`` frames (84x84 and similar sizes); ``conv``
    says how the convolutions are computed (:data:`CONVS`)."""

    features: int
    init: str = "orthogonal"
    conv: str = "patches"
    dtype: Any = jnp.float32  # of the convolutions and the dense layer (DTYPES)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.astype(self.dtype) / 255.0
        init = kernel_init(self.init)
        patches = check_conv(self.conv) == "patches"
        for i, (features, size, stride) in enumerate([(32, 8, 4), (64, 4, 2), (64, 3, 1)]):
            # Named as nn.Conv names itself, so that both ways have the same parameter tree.
            if patches:
                layer = PatchConv(features, (size, size), (stride, stride), init, self.dtype, name=f"Conv_{i}")
            else:
                layer = nn.Conv(
                    features, (size, size), (stride, stride), padding="VALID", kernel_init=init, dtype=self.dtype,
                    name=f"Conv_{i}",
                )  # fmt: skip
            x = nn.relu(layer(x))
        return nn.relu(dense(self.features, init=self.init, dtype=self.dtype)(x.reshape(x.shape[0], -1)))


class TokenEncoder(nn.Module):
    """Integer token observations ``[B, *shape]``: embed every token, flatten, one ReLU layer."""

    features: int
    vocab_size: int
    embed_dim: int = 32
    init: str = "orthogonal"
    dtype: Any = jnp.float32  # of the dense layer (DTYPES)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = nn.Embed(self.vocab_size, self.embed_dim)(obs.astype(jnp.int32))
        return nn.relu(dense(self.features, init=self.init, dtype=self.dtype)(x.reshape(x.shape[0], -1)))


def is_image(dtype, shape: tuple[int, ...]) -> bool:
    """Whether observations of ``dtype`` and ``shape`` (one observation, no batch axes) are the frames the
    CNN reads: ``uint8 [H, W, C]``."""
    return np.dtype(dtype) == np.uint8 and len(shape) == 3


def encoder_for(
    space: spaces.Space,
    features: int,
    init: str = "orthogonal",
    conv: str = "patches",
    dtype: Any = "float32",
    items: Any = None,
    parts: Any = (),
) -> nn.Module:
    """The encoder suited to an observation space: CNN for uint8 images ``[H, W, C]`` (its convolutions
    computed as ``conv``, :data:`CONVS`), token embedding for other integer arrays, MLP for float vectors,
    or, given ``items`` (``[n, d]`` indices of the items in a flat float vector) and optionally ``parts``
    (index arrays of other parts to read apart, e.g. an instruction), :class:`ItemsEncoder`;
    its layers start as ``init`` (:data:`INITS`) and compute in ``dtype`` (:data:`DTYPES`)."""
    kernel_init(init)  # unknown names fail here, not at the first call
    check_conv(conv)
    dtype = check_dtype(dtype)
    if not isinstance(space, spaces.Box):
        raise TypeError(f"agents need a Box observation space, got {space}")
    if items is not None:
        items = np.asarray(items)
        size = int(np.prod(space.shape))
        if not np.issubdtype(np.dtype(space.dtype), np.floating) or items.ndim != 2:
            raise ValueError(f"items need float vector observations and [n, d] indices, got {space} and {items.shape}")
        parts = tuple(tuple(int(i) for i in np.asarray(part).reshape(-1)) for part in parts)
        for indices in (items.reshape(-1), *parts):
            if len(indices) and not 0 <= min(indices) <= max(indices) < size:
                raise ValueError(f"item and part indices must lie in the observation's {size} entries")
        return ItemsEncoder(features, tuple(map(tuple, items.tolist())), parts, init=init, dtype=dtype)
    if is_image(space.dtype, space.shape):
        return CNNEncoder(features, init=init, conv=conv, dtype=dtype)
    if np.issubdtype(np.dtype(space.dtype), np.integer):
        return TokenEncoder(features, vocab_size=int(np.max(space.high)) + 1, init=init, dtype=dtype)
    return MLPEncoder(features, init=init, dtype=dtype)
