"""The observation encoders: the CNN's two ways of computing its convolutions agree, also under vmap over
per-seed parameters (how the trainers run several seeds at once)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnemax.agents.encoders import CNNEncoder, PatchConv, check_conv, encoder_for
from mnemax.envs.core import spaces
from mnemax.train import PPO, PPOConfig


@pytest.mark.parametrize(
    "shape, kernel, strides",
    [((84, 84, 3), (8, 8), (4, 4)), ((20, 20, 32), (4, 4), (2, 2)), ((9, 9, 64), (3, 3), (1, 1)), ((13, 11, 2), (3, 2), (2, 3))],
)
@jax.default_matmul_precision("float32")  # no TF32 on GPUs, whose rounding would differ between the two ways
def test_patch_conv_matches_lax_conv_and_its_gradients(shape, kernel, strides):
    x = jax.random.normal(jax.random.key(0), (2,) + shape)
    conv = nn.Conv(5, kernel, strides, padding="VALID")
    params = conv.init(jax.random.key(1), x)
    params = jax.tree_util.tree_map(lambda p: p + 0.1, params)  # a nonzero bias too
    patch = PatchConv(5, kernel, strides)
    assert jax.tree_util.tree_map(jnp.shape, patch.init(jax.random.key(1), x)) == jax.tree_util.tree_map(jnp.shape, params)
    np.testing.assert_allclose(patch.apply(params, x), conv.apply(params, x), rtol=1e-4, atol=1e-4)

    def loss(module):
        return lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))

    for got, expected in zip(jax.grad(loss(patch), (0, 1))(params, x), jax.grad(loss(conv), (0, 1))(params, x)):
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3), got, expected)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        patch.apply(params, x[:, : kernel[0] - 1])


@jax.default_matmul_precision("float32")
def test_cnn_encoder_is_the_same_network_either_way_also_vmapped_over_seeds():
    frames = jax.random.randint(jax.random.key(0), (4, 36, 36, 3), 0, 256).astype(jnp.uint8)  # maps of 8, 3 and 1
    xla, patches = CNNEncoder(16, conv="xla"), CNNEncoder(16, conv="patches")
    init = nn.Module.init  # the encoders' field `init` (how weights start) hides the method
    seeds = jax.vmap(lambda key: init(xla, key, frames))(jax.random.split(jax.random.key(1), 3))
    one_seed = jax.tree_util.tree_map(lambda p: p[0], seeds)
    shapes = lambda tree: jax.tree_util.tree_map(jnp.shape, tree)  # noqa: E731
    assert shapes(init(patches, jax.random.key(1), frames)) == shapes(one_seed)
    by_seed = jax.vmap(lambda p: patches.apply(p, frames))(seeds)
    np.testing.assert_allclose(by_seed, jax.vmap(lambda p: xla.apply(p, frames))(seeds), rtol=1e-4, atol=1e-4)
    assert by_seed.shape == (3, 4, 16) and float(jnp.abs(by_seed[0] - by_seed[1]).max()) > 0  # seeds differ


def test_the_conv_reaches_the_encoder_and_unknown_ones_are_refused(tmp_path):
    config = PPOConfig(env="mnemax/MortarMayhem-Grid-v0", hidden_size=16, num_envs=2, num_steps=4, num_minibatches=1,
                       agent_config={"conv": "xla"}, progress=False, video=False, run_dir=str(tmp_path))  # fmt: skip
    assert PPO(config).network.encoder.conv == "xla"
    with pytest.raises(ValueError, match="unknown conv"):
        encoder_for(spaces.Box(0, 255, (84, 84, 3), np.uint8), 16, conv="fft")
    assert check_conv("xla") == "xla" and CNNEncoder(16).conv == "patches"


def test_bfloat16_compute_keeps_f32_parameters_and_outputs_close_to_f32():
    """``agent_config dtype bfloat16`` (mixed precision): the encoder and the memory compute in bf16, the
    parameters, carry, logits and value stay f32, the same parameters give nearly the f32 outputs, and a PPO
    update from them is finite; an unknown dtype is refused."""
    common = dict(env="mnemax/MortarMayhem-Grid-v0", hidden_size=16, num_envs=2, num_steps=4, num_minibatches=1,
                  progress=False, video=False)  # fmt: skip
    full = PPO(PPOConfig(**common))
    half = PPO(PPOConfig(**common, agent_config={"dtype": "bfloat16"}))
    assert half.network.encoder.dtype == jnp.bfloat16 and half.network.memory.dtype == jnp.bfloat16
    runner = jax.jit(half.init)(jax.random.key(0))  # jitted: eagerly, op by op, it takes 4x as long
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(runner.train_state.params))
    obs = jax.random.randint(jax.random.key(1), (3, 2, 84, 84, 3), 0, 256).astype(jnp.uint8)
    resets = jnp.zeros((3, 2), bool).at[0].set(True)
    carry = full.network.initialize_carry(2)
    outputs = [jax.jit(net.network.apply)(runner.train_state.params, carry, obs, resets) for net in (full, half)]
    for a, b in zip(jax.tree_util.tree_leaves(outputs[0]), jax.tree_util.tree_leaves(outputs[1])):
        assert b.dtype == jnp.float32
        np.testing.assert_allclose(b, a, rtol=0.05, atol=0.02)
    runner, metrics = jax.jit(half.update)(runner)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves((runner.train_state.params, metrics)))
    with pytest.raises(ValueError, match="unknown compute dtype"):
        encoder_for(spaces.Box(0, 255, (84, 84, 3), np.uint8), 16, dtype="float16")


def test_items_encoder_reads_every_item_with_one_shared_layer_and_each_part_apart():
    from mnemax.agents.encoders import ItemsEncoder

    space = spaces.Box(0.0, 1.0, (10,), jnp.float32)
    items, parts = np.array([[0, 1, 2], [5, 6, 7]]), (np.array([8, 9]),)
    encoder = encoder_for(space, 8, items=items, parts=parts)
    assert isinstance(encoder, ItemsEncoder)
    x = jax.random.uniform(jax.random.key(0), (4, 10))
    variables = nn.Module.init(encoder, jax.random.key(1), x)  # its field `init` hides the method
    params = variables["params"]
    assert params["item"]["kernel"].shape == (3, 32)  # one layer for both items
    assert params["part_0"]["kernel"].shape == (2, 8) and params["rest"]["kernel"].shape == (2, 8)  # entries 3, 4
    # Each item's code is the shared layer applied to that item's entries; then every part has its own map.
    code = nn.relu(x[:, items] @ params["item"]["kernel"] + params["item"]["bias"]).reshape(4, -1)
    affine = lambda name, v: v @ params[name]["kernel"] + params[name]["bias"]  # noqa: E731
    expected = nn.relu(affine("codes", code) + affine("part_0", x[:, 8:]) + affine("rest", x[:, 3:5]))
    np.testing.assert_allclose(encoder.apply(variables, x), expected, rtol=1e-5, atol=1e-6)
    assert "rest" not in nn.Module.init(encoder_for(space, 8, items=items, parts=(np.array([3, 4, 8, 9]),)),
                                        jax.random.key(1), x)["params"]  # nothing left for it  # fmt: skip
    with pytest.raises(ValueError, match="indices"):
        encoder_for(space, 8, items=np.array([[0, 10]]))
    with pytest.raises(ValueError, match="indices"):
        encoder_for(space, 8, items=items, parts=(np.array([10]),))
    with pytest.raises(ValueError, match="float vector"):
        encoder_for(spaces.Box(0, 5, (10,), jnp.int32), 8, items=items)


def test_item_encoder_in_training_and_refused_where_a_task_lists_no_items(tmp_path):
    tiny = dict(num_envs=4, num_steps=8, num_minibatches=2, update_epochs=1, hidden_size=8, progress=False, video=False)
    ppo = PPO(PPOConfig(**tiny, env="mnemax/Ballet-2-Delay16-Symbolic-v0", item_encoder=True, run_dir=str(tmp_path)))
    runner = jax.jit(ppo.init)(jax.random.key(0))
    assert {"item", "part_0"} <= set(runner.train_state.params["params"]["encoder"])  # the instruction apart
    runner, stats = jax.jit(ppo.update)(runner)
    assert np.isfinite(float(stats["policy_loss"]))
    with pytest.raises(ValueError, match="observation_items"):
        PPO(PPOConfig(**tiny, env="mnemax/TMaze-Passive-v0", item_encoder=True, run_dir=str(tmp_path)))
