"""Interface tests that every registered memory module must pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mnemax.memory_modules as mm

T, B, D, F = 12, 3, 5, 16


def _inputs(seed=0, t=T):
    k1, k2 = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(k1, (t, B, D))
    resets = jax.random.bernoulli(k2, 0.15, (t, B)).at[0].set(True)
    return x, resets


def _init(name, **config):
    module = mm.make(name, features=F, **config)
    x, resets = _inputs()
    params = module.init(jax.random.key(1), module.initialize_carry(B), x, resets)
    return module, params


@pytest.mark.parametrize("name", mm.names())
def test_shapes(name):
    module, params = _init(name)
    x, resets = _inputs()
    carry, y = module.apply(params, module.initialize_carry(B), x, resets)
    assert y.shape == (T, B, F)
    assert jax.tree_util.tree_structure(carry) == jax.tree_util.tree_structure(module.initialize_carry(B))


@pytest.mark.parametrize("name", mm.names())
def test_stepwise_equals_sequence(name):
    module, params = _init(name)
    x, resets = _inputs()
    apply = jax.jit(module.apply)
    _, y_seq = apply(params, module.initialize_carry(B), x, resets)
    carry, ys = module.initialize_carry(B), []
    for t in range(T):
        carry, y = apply(params, carry, x[t : t + 1], resets[t : t + 1])
        ys.append(y[0])
    np.testing.assert_allclose(np.stack(ys), y_seq, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("name", mm.names())
def test_reset_isolates_the_past(name):
    """After a reset at t, outputs from t on do not depend on inputs before t."""
    module, params = _init(name)
    x, _ = _inputs()
    resets = jnp.zeros((T, B), bool).at[0].set(True).at[6].set(True)
    x_other = x.at[:6].set(jax.random.normal(jax.random.key(9), (6, B, D)))
    _, y = module.apply(params, module.initialize_carry(B), x, resets)
    _, y_other = module.apply(params, module.initialize_carry(B), x_other, resets)
    np.testing.assert_allclose(y[6:], y_other[6:], rtol=1e-5, atol=1e-6)
    assert not np.allclose(y[:6], y_other[:6])


@pytest.mark.parametrize("name", mm.names())
def test_reset_isolates_batch_elements(name):
    """A reset in one batch element leaves the others untouched."""
    module, params = _init(name)
    x, _ = _inputs()
    no_resets = jnp.zeros((T, B), bool).at[0].set(True)
    one_reset = no_resets.at[5, 0].set(True)
    _, y = module.apply(params, module.initialize_carry(B), x, no_resets)
    _, y_reset = module.apply(params, module.initialize_carry(B), x, one_reset)
    np.testing.assert_allclose(y[:, 1:], y_reset[:, 1:], rtol=1e-6, atol=1e-6)
    assert not np.allclose(y[5:, 0], y_reset[5:, 0])


@pytest.mark.parametrize("name", mm.names())
def test_gradients_finite_over_long_sequences(name):
    module, params = _init(name)
    x, _ = _inputs(t=512)
    resets = jnp.zeros((512, B), bool).at[0].set(True)

    def loss(p):
        _, y = module.apply(p, module.initialize_carry(B), x, resets)
        return jnp.mean(y[-1] ** 2) + jnp.mean(y**2)

    grads = jax.jit(jax.grad(loss))(params)
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(float(jnp.abs(g).max()) > 0 for g in leaves)


@pytest.mark.parametrize("name", mm.names())
def test_vmap_over_a_leading_axis(name):
    """The module composes with vmap, e.g. over independent seeds."""
    module, params = _init(name)
    x, resets = _inputs()
    xs = jnp.stack([x, 2 * x])
    batched = jax.vmap(lambda xi: module.apply(params, module.initialize_carry(B), xi, resets)[1])(xs)
    _, y1 = module.apply(params, module.initialize_carry(B), 2 * x, resets)
    np.testing.assert_allclose(batched[1], y1, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", mm.names())
def test_bfloat16(name):
    module = mm.make(name, features=F, dtype=jnp.bfloat16)
    x, resets = _inputs()
    params = module.init(jax.random.key(1), module.initialize_carry(B), x, resets)
    _, y = module.apply(params, module.initialize_carry(B), x, resets)
    _, y32 = mm.make(name, features=F).apply(params, module.initialize_carry(B), x, resets)
    assert y.dtype == jnp.bfloat16
    assert bool(jnp.all(jnp.isfinite(y.astype(jnp.float32))))
    np.testing.assert_allclose(y.astype(jnp.float32), y32, atol=0.1)


def test_make_rejects_bad_input():
    with pytest.raises(ValueError, match="Did you mean gru"):
        mm.make("gur", features=8)
    with pytest.raises(ValueError, match="positive"):
        mm.make("gru", features=0)
    with pytest.raises(ValueError, match="no field"):
        mm.make("gru", features=8, heads=2)


def test_wrong_input_shapes_raise():
    module, params = _init("gru")
    x, resets = _inputs()
    with pytest.raises(ValueError, match=r"\[T, B, D\]"):
        module.apply(params, module.initialize_carry(B), x[0], resets)
    with pytest.raises(ValueError, match="resets"):
        module.apply(params, module.initialize_carry(B), x, resets[:, :1])
