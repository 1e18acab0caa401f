"""Tests of the memory modules: the interface every registered module must pass, then module-specific checks."""

import functools

import flax.linen as nn
import jax
import jax.ad_checkpoint
import jax.numpy as jnp
import numpy as np
import pytest

import mnemax.memory_modules as mm
from mnemax.memory_modules import attention
from mnemax.memory_modules.attention import Residual, episode_segments, window_attention
from mnemax.memory_modules.base import without_projections
from mnemax.memory_modules.hcam import chunk_layout, hierarchical_read, write_chunks
from mnemax.memory_modules.linear_attention import chunked_linear_attention
from mnemax.memory_modules.scan import CPU_CHUNK, WHOLE_SEQUENCE, chunked_recurrence, linear_recurrence, recurrence_chunk

T, B, D, F = 12, 3, 5, 16

# Small per-module configurations. They keep the file fast and make the T = 12 sequences reach the paths
# that matter: HCAM completes and evicts chunks, Transformer-XL runs several blocks of its window, linear
# attention crosses chunk boundaries. Stacks of layers are checked by test_multi_step_calls_continue_each_other.
TEST_CONFIG = {
    "hcam": dict(num_layers=1, chunk_size=3, memory_chunks=2, top_k=2, local_length=2),
    "trxl": dict(num_layers=1, memory_length=4, gated=True),  # the gated form runs a superset of the code
    "linear_attention": dict(num_layers=1, chunk_size=5),
    "rate": dict(num_layers=1, segment_length=4, memory_tokens=2),  # three segments in T = 12 steps
    "mamba": dict(chunk_size=5),  # two whole pieces of its scan and a shorter one in T = 12 steps
    "mamba2": dict(chunk_size=5, head_dim=8, state_size=4),  # four heads; two whole chunks and a padded one
}


@pytest.fixture(autouse=True, scope="module")
def _quick_compiles():
    """The sizes here are tiny and compiling dominates the run time, so most XLA optimisations are off
    while this file runs (they change nothing that the tests check)."""
    previous = jax.config.values.get("jax_disable_most_optimizations", False)
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


def _make(name, **config):
    return mm.make(name, features=F, **{**TEST_CONFIG.get(name, {}), **config})


def _inputs(seed=0, t=T):
    k1, k2 = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(k1, (t, B, D))
    resets = jax.random.bernoulli(k2, 0.15, (t, B)).at[0].set(True)
    return x, resets


def _init(name, **config):
    module = _make(name, **config)
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


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_unrolled_scan_gives_the_same_outputs(name):
    """``unroll`` changes how many steps one loop iteration runs, not what they compute (T = 12 is not a
    multiple of 5, so the remainder steps are covered too)."""
    module, params = _init(name)
    x, resets = _inputs()
    carry = module.initialize_carry(B)
    expected = module.apply(params, carry, x, resets)
    unrolled = _make(name, unroll=5).apply(params, carry, x, resets)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), unrolled, expected)
    with pytest.raises(ValueError, match="unroll must be >= 1"):
        getattr(mm, name.upper())(features=F, unroll=0).apply(params, carry, x, resets)


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
def test_gradients_reach_every_parameter(name):
    """Every parameter changes the outputs of a short sequence that crosses an episode boundary (for RATE,
    segments complete, so the write path is used too)."""
    module, params = _init(name)
    x, resets = _inputs()
    weights = jax.random.normal(jax.random.key(4), (T, B, F))

    def loss(p):
        _, y = module.apply(p, module.initialize_carry(B), x, resets)
        return jnp.sum(y * weights)

    grads = jax.jit(jax.grad(loss))(params)
    flat = jax.tree_util.tree_flatten_with_path(grads)[0]
    unreached = [jax.tree_util.keystr(path) for path, g in flat if not float(jnp.abs(g).max()) > 0]
    assert not unreached


@pytest.mark.parametrize(
    "name, steps",
    [("min_gru", 16384), ("s5", 16384), ("lru", 16384), ("mamba", 16384), ("mamba2", 16384), ("rate", 4096)],
)
def test_no_nan_over_very_long_sequences(name, steps):
    """Forward and backward over one long episode stay finite (the scans multiply thousands of decays)."""
    module = _make(name, **({"segment_length": 16} if name == "rate" else {}))
    x = jax.random.normal(jax.random.key(5), (steps, 2, D))
    resets = jnp.zeros((steps, 2), bool).at[0].set(True)
    params = module.init(jax.random.key(1), module.initialize_carry(2), x[:4], resets[:4])

    def loss(p):
        carry, y = module.apply(p, module.initialize_carry(2), x, resets)
        return jnp.mean(y**2) + jnp.mean(y[-1] ** 2), (carry, y)

    grads, (carry, y) = jax.jit(jax.grad(loss, has_aux=True))(params)
    for leaf in jax.tree_util.tree_leaves((grads, carry, y)):
        assert bool(jnp.all(jnp.isfinite(leaf)))
    assert float(jnp.std(y[-100:])) > 0.1  # the last outputs still respond to their inputs


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
    module = _make(name, dtype=jnp.bfloat16)
    x, resets = _inputs()
    params = module.init(jax.random.key(1), module.initialize_carry(B), x, resets)
    _, y = module.apply(params, module.initialize_carry(B), x, resets)
    _, y32 = _make(name).apply(params, module.initialize_carry(B), x, resets)
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


# ---------------------------------------------------------------------------------------------------------
# Module-specific tests.


def _dependence(module, resets, seed):
    """|d output[t, b] / d input[s, b']| summed over features: ``[t, b, s, b']``, for random inputs."""
    x, _ = _inputs(seed=seed, t=resets.shape[0])
    resets = jnp.asarray(resets)
    params = module.init(jax.random.key(2), module.initialize_carry(B), x, resets)
    outputs = lambda x: module.apply(params, module.initialize_carry(B), x, resets)[1]  # noqa: E731
    return np.abs(np.asarray(jax.jit(jax.jacfwd(outputs))(x))).sum(axis=(2, 5))


def _check_dependence(module, allowed, seed, steps=14):
    """Episodes start at step 0 and, in batch element 1, at step 9: output t of an element depends on its
    input s exactly when ``allowed(t, s, start of t's episode)``, and never on the other elements."""
    resets = np.zeros((steps, B), bool)
    resets[0] = True
    resets[9, 1] = True
    jac = _dependence(module, resets, seed)
    start = _episode_starts(resets)
    for b in range(B):
        assert not jac[:, b, :, np.arange(B) != b].any()
        for t in range(steps):
            for s in range(steps):
                assert (jac[t, b, s, b] > 0) == allowed(t, s, start[t, b]), (b, t, s)


def _episode_starts(resets):
    """For [T, B] resets: start[t, b] = first step of the episode that contains step t (0 if none)."""
    resets = np.asarray(resets)
    start = np.zeros(resets.shape, int)
    for b in range(resets.shape[1]):
        current = 0
        for t in range(resets.shape[0]):
            current = t if resets[t, b] else current
            start[t, b] = current
    return start


@pytest.mark.parametrize(
    "name", ["ffm", "hcam", "linear_attention", "lru", "mamba", "mamba2", "min_gru", "rate", "s5", "trxl"]
)
def test_multi_step_calls_continue_each_other(name):
    """Cutting a sequence into several multi-step calls (cuts inside chunks, windows and segments) changes
    nothing."""
    module, params = _init(name, **({} if name == "ffm" else {"num_layers": 2}))
    x, resets = _inputs(seed=3, t=2 * T)
    apply = jax.jit(module.apply)
    _, y_all = apply(params, module.initialize_carry(B), x, resets)
    carry, ys, start = module.initialize_carry(B), [], 0
    for length in (8, 3, 13):  # RATE (segments of 4): a call shorter than a segment, then longer ones
        carry, y = apply(params, carry, x[start : start + length], resets[start : start + length])
        ys.append(y)
        start += length
    np.testing.assert_allclose(np.concatenate(ys), y_all, rtol=2e-4, atol=2e-5)


def test_linear_recurrence_matches_a_loop():
    rng = np.random.default_rng(0)
    steps, batch = 37, 2
    decay = (0.9 * np.exp(1j * rng.normal(size=(steps, batch, 4)))).astype(np.complex64)
    update = (rng.normal(size=(steps, batch, 4)) + 1j * rng.normal(size=(steps, batch, 4))).astype(np.complex64)
    initial = np.ones((batch, 4), np.complex64)
    resets = rng.random((steps, batch)) < 0.1
    states = linear_recurrence(decay, update, initial, resets)
    h, expected = initial, []
    for t in range(steps):
        h = np.where(resets[t][:, None], 0, decay[t] * h) + update[t]
        expected.append(h)
    np.testing.assert_allclose(states, np.stack(expected), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 4, 23, 100, None])
def test_chunked_recurrence_matches_one_associative_scan(chunk_size):
    """Whole pieces, a shorter last one, one piece of the whole sequence and the backend's default (64 steps
    on the CPU, more than these 23) all give the states of one scan over the sequence."""
    steps, batch = 23, 3
    rng = np.random.default_rng(2)
    decay = rng.uniform(0.5, 1.0, size=(steps, batch, 4)).astype(np.float32)
    update = rng.normal(size=(steps, batch, 4)).astype(np.float32)
    initial = rng.normal(size=(batch, 4)).astype(np.float32)
    resets = rng.random((steps, batch)) < 0.1
    coefficients = lambda xs: xs  # noqa: E731  (the inputs are the decays and updates themselves)
    readout = lambda states, xs: 2.0 * states  # noqa: E731
    out, final = chunked_recurrence(coefficients, readout, initial, (decay, update), resets, chunk_size)
    states = linear_recurrence(decay, update, initial, resets)
    np.testing.assert_allclose(out, 2.0 * states, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(final, states[-1], rtol=1e-5, atol=1e-5)


def test_recurrence_chunk_by_backend_and_refuses_empty_pieces():
    assert recurrence_chunk(None) == (CPU_CHUNK if jax.default_backend() == "cpu" else WHOLE_SEQUENCE)
    assert recurrence_chunk(8) == 8
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        recurrence_chunk(0)


@pytest.mark.parametrize("chunk_size", [7, 64])
def test_chunked_linear_attention_matches_the_recurrence(chunk_size):
    steps, batch, heads, dk, dv = 23, 2, 3, 4, 5
    rng = np.random.default_rng(1)
    normal = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    q, keys, v = normal(steps, batch, heads, dk), normal(steps, batch, heads, dk), normal(steps, batch, heads, dv)
    log_decay = -np.log1p(np.exp(-normal(steps, batch, heads) - 2.0))  # log sigmoid(z + 2)
    resets = rng.random((steps, batch)) < 0.15
    resets[8, 0] = True
    state = normal(batch, heads, dk, dv)
    out, final = chunked_linear_attention(q, keys, v, log_decay, resets, state, chunk_size)
    s, expected = state, []
    for t in range(steps):
        g = np.where(resets[t][:, None], 0.0, np.exp(log_decay[t]))
        s = g[..., None, None] * s + np.einsum("bhd,bhe->bhde", keys[t], v[t])
        expected.append(np.einsum("bhd,bhde->bhe", q[t], s))
    np.testing.assert_allclose(out, np.stack(expected), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(final, s, rtol=1e-4, atol=1e-4)


def test_ffm_matches_its_sequential_definition():
    """FFM's associative scan against the step-by-step formulation written out with numpy."""
    module, params = _init("ffm")
    x, resets = _inputs(seed=4, t=20)
    _, y = module.apply(params, module.initialize_carry(B), x, resets)
    p = jax.tree_util.tree_map(np.asarray, params["params"])
    m, c = module.memory_size, module.context_size
    sigmoid = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    pre = np.asarray(x) @ p["pre"]["kernel"] + p["pre"]["bias"]
    value, skip, gates = pre[..., :m], pre[..., m : m + F], sigmoid(pre[..., m + F :])
    gamma = np.exp(-np.exp(p["log_neg_alpha"])[:, None] + 1j * p["omega"][None, :])
    state, expected = np.zeros((B, m, c), complex), []
    for t in range(x.shape[0]):
        state = np.where(np.asarray(resets[t])[:, None, None], 0, gamma * state)
        state = state + (value[t] * gates[t, :, :m])[..., None]
        z = np.concatenate([state.real, state.imag], -1).reshape(B, -1) @ p["mix"]["kernel"] + p["mix"]["bias"]
        z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-6)
        out_gate = gates[t, :, m:]
        expected.append(z * out_gate + skip[t] * (1 - out_gate))
    np.testing.assert_allclose(y, np.stack(expected), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("gated", [False, True])
def test_transformer_xl_sees_only_its_window_and_episode(gated):
    """With one layer, output t depends on input s exactly when t - M <= s <= t in the same episode."""
    memory = 3
    module = mm.make("trxl", features=F, num_layers=1, memory_length=memory, gated=gated)
    _check_dependence(module, lambda t, s, start: max(t - memory, start) <= s <= t, seed=5)


@pytest.mark.parametrize("name", ["trxl", "rate"])
def test_cached_keys_follow_the_parameters_once_the_carry_is_refreshed(name):
    """A one-step call reads the cached keys and values as the carry's last call made them; after a
    parameter change a call over zero steps makes them again (the other carry fields untouched), and
    from then on one-step calls match a call over the whole sequence with the new parameters."""
    module, params = _init(name, num_layers=2)
    x, resets = _inputs(seed=21)
    resets = resets.at[5:].set(False)  # one episode over the switch, so the cache matters
    apply = jax.jit(module.apply)
    carry, _ = apply(params, module.initialize_carry(B), x[:6], resets[:6])
    new = jax.tree_util.tree_map(lambda p: p * 1.1, params)
    _, expected = apply(new, carry, x[6:], resets[6:])

    assert module.projected_fields and not mm.make("gru", features=F).projected_fields
    fresh = apply(new, carry, x[:0], resets[:0])[0]
    for field in set(carry._fields) - {"keys", "values"}:
        np.testing.assert_array_equal(getattr(fresh, field), getattr(carry, field))
    assert not np.allclose(fresh.keys, carry.keys, atol=1e-3)
    # Checkpoints keep the projected fields as zeros: the call over zero steps never reads them.
    assert without_projections(mm.make("gru", features=F).projected_fields, carry) is carry
    stripped = without_projections(module.projected_fields, {"actor": carry, "critic": carry})
    assert all(not np.any(c.keys) and not np.any(c.values) for c in stripped.values())
    jax.tree_util.tree_map(np.testing.assert_array_equal, apply(new, stripped["actor"], x[:0], resets[:0])[0], fresh)
    outputs = []
    for t in range(6, T):
        fresh, y = apply(new, fresh, x[t : t + 1], resets[t : t + 1])
        outputs.append(y)
    np.testing.assert_allclose(np.concatenate(outputs), expected, rtol=2e-4, atol=2e-5)
    _, y_stale = apply(new, carry, x[6:7], resets[6:7])
    assert not np.allclose(y_stale, expected[:1], atol=1e-3)  # without the refresh, the old keys and values


def test_transformer_xl_ring_steps_and_window_calls_mix():
    """Single steps write the carry's ring slot by slot (wrapping around it several times); calls over
    several steps read it oldest first and hand it back so. Any mix of the two gives the outputs of one call,
    across resets, and the positions count the steps of each episode."""
    module, params = _init("trxl", num_layers=2)  # memory_length 4
    x, resets = _inputs(seed=23, t=3 * T)
    apply = jax.jit(module.apply)
    _, y_all = apply(params, module.initialize_carry(B), x, resets)
    carry, ys, start, cursor = module.initialize_carry(B), [], 0, 0
    for length in (1, 1, 1, 1, 1, 1, 5, 1, 1, 1, 7, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 5):
        carry, y = apply(params, carry, x[start : start + length], resets[start : start + length])
        ys.append(y)
        start += length
        cursor = (cursor + 1) % 4 if length == 1 else 0
        np.testing.assert_array_equal(carry.cursor, np.full(B, cursor))
    assert start == 3 * T
    np.testing.assert_allclose(np.concatenate(ys), y_all, rtol=2e-4, atol=2e-5)
    since_reset = np.zeros(B, int)
    for t in range(3 * T):
        since_reset = np.where(np.asarray(resets[t]), 0, since_reset) + 1
    np.testing.assert_array_equal(carry.position, since_reset)
    # resets given as 0/1 numbers act as the booleans
    stepped, y_bool = apply(params, carry, x[:1], resets[:1])
    stepped_int, y_int = apply(params, carry, x[:1], resets[:1].astype(jnp.int32))
    np.testing.assert_array_equal(y_int, y_bool)
    assert stepped_int.valid.dtype == bool


def _simulate_chunk_memory(resets, chunk_size, capacity):
    """Step-by-step HCAM bookkeeping: for each (t, b), the chunks (as step ranges) query t may read."""
    resets = np.asarray(resets)
    visible = {}
    for b in range(resets.shape[1]):
        memory, current = [], []
        for t in range(resets.shape[0]):
            if resets[t, b]:
                memory, current = [], []
            visible[t, b] = list(memory[-capacity:])
            current.append(t)
            if len(current) == chunk_size:
                memory.append(tuple(current))
                current = []
    return visible


def test_chunk_layout_matches_a_step_by_step_memory():
    size, capacity, steps = 3, 2, 20
    resets = np.zeros((steps, B), bool)
    resets[0] = True
    resets[[7, 8], 1] = True  # a reset right after another one
    resets[13, 2] = True
    layout = chunk_layout(
        jnp.asarray(resets.T), jnp.zeros((B,), jnp.int32), jnp.zeros((B, capacity), bool), size, capacity
    )
    slots = -(-steps // size)
    # Writing step numbers shows which steps each new slot holds.
    step_numbers = np.broadcast_to(np.arange(-size, steps, dtype=np.float32), (B, size + steps))  # -C..-1: carry
    held = np.asarray(write_chunks(jnp.asarray(step_numbers)[..., None], layout.write_index, slots, size))[..., 0]
    expected = _simulate_chunk_memory(resets, size, capacity)
    for b in range(B):
        for t in range(steps):
            visible_slots = np.flatnonzero(np.asarray(layout.visible)[b, t, capacity:])
            assert [tuple(held[b, s].astype(int)) for s in visible_slots] == expected[t, b], (b, t)
    assert not np.asarray(layout.visible)[:, :, :capacity].any()  # an empty carry has nothing to show


def _dense_chunk_reference(q, summaries, keys, values, visible, top_k):
    """Per query and head: softmax over the top-k visible chunk scores, softmax inside each chunk."""
    q, summaries, keys, values, visible = map(np.asarray, (q, summaries, keys, values, visible))
    batch, steps, heads, dh = q.shape
    out = np.zeros(q.shape)
    for b in range(batch):
        for t in range(steps):
            for h in range(heads):
                chunks = np.flatnonzero(visible[b, t])
                if not len(chunks):
                    continue
                scores = summaries[b, chunks, h] @ q[b, t, h] / np.sqrt(dh)
                keep = chunks[np.argsort(-scores)[:top_k]]
                scores = np.sort(scores)[::-1][:top_k]
                weights = np.exp(scores - scores.max())
                weights /= weights.sum()
                for w, n in zip(weights, keep):
                    logits = keys[b, n, :, h] @ q[b, t, h] / np.sqrt(dh)
                    p = np.exp(logits - logits.max())
                    out[b, t, h] += w * (p / p.sum()) @ values[b, n, :, h]
    return out


@pytest.mark.parametrize("top_k", [5, 2])
def test_hierarchical_read_matches_dense_chunk_attention(top_k):
    """top_k == all chunks: the HCAM read equals dense attention with per-chunk softmax mixing."""
    batch, steps, chunks, size, heads, dh = 2, 9, 5, 4, 2, 3
    rng = np.random.default_rng(3)
    q = rng.normal(size=(batch, steps, heads, dh)).astype(np.float32)
    keys = rng.normal(size=(batch, chunks, size, heads, dh)).astype(np.float32)
    values = rng.normal(size=(batch, chunks, size, heads, dh)).astype(np.float32)
    summaries = keys.mean(axis=2)
    visible = rng.random((batch, steps, chunks)) < 0.7
    visible[0, 0] = False  # a query with nothing to read
    expected = _dense_chunk_reference(q, summaries, keys, values, visible, top_k)
    for block in (128, 4):  # one block, and query blocks with padding
        for dense in (False, True):  # chunks gathered per query, or every entry scored and the rest masked
            out = hierarchical_read(q, summaries, keys, values, visible, top_k, block, dense)
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # The two ways, and 3 blocks read two at a time, also agree in their gradients.
    grads = [
        jax.grad(
            lambda *a: jnp.sum(jnp.sin(hierarchical_read(*a, visible, top_k, 4, dense, group=group))),
            argnums=(0, 1, 2, 3),
        )(q, summaries, keys, values)
        for dense, group in ((False, 1), (True, 1), (True, 2))
    ]
    for gathered, *others in zip(*grads):
        for other in others:
            np.testing.assert_allclose(gathered, other, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("block", [4, 7])
def test_hcam_read_window_holds_every_visible_chunk(block):
    """HCAM's layout keeps its promise to the dense read (``window``): the chunks a block of queries may read
    lie in ``memory_chunks + ceil((block - 1) / C)`` consecutive chunks, across resets and a carried memory, so
    scoring only those gives the read over all chunks."""
    from mnemax.memory_modules.hcam import window_starts

    size, capacity, steps, heads, dh = 3, 2, 26, 2, 3
    rng = np.random.default_rng(5)
    resets = rng.random((B, steps)) < 0.08
    carried = jnp.asarray(rng.random((B, capacity)) < 0.7)
    layout = chunk_layout(jnp.asarray(resets), jnp.asarray([0, 1, 2]), carried, size, capacity)
    visible = np.asarray(layout.visible)
    total, width = visible.shape[-1], capacity + -(-(block - 1) // size)
    starts = np.asarray(window_starts(layout.visible, block, width))
    for b in range(B):
        for t in range(steps):
            chunks = np.flatnonzero(visible[b, t])
            start = starts[b, t // block]
            assert all(start <= c < start + width for c in chunks), (b, t, chunks, start)
    q = rng.normal(size=(B, steps, heads, dh)).astype(np.float32)
    keys, values = (rng.normal(size=(B, total, size, heads, dh)).astype(np.float32) for _ in range(2))
    read = functools.partial(hierarchical_read, q, keys.mean(axis=2), keys, values, layout.visible, 2, block, True)
    np.testing.assert_allclose(read(width), read(None), rtol=1e-5, atol=1e-6)


def test_hcam_read_settings_change_speed_not_outputs():
    """``read_block``, ``dense_read`` and ``read_group`` reach the chunk read: blocks of 4 queries, both ways
    of reading the selected chunks, and blocks read two at a time give the outputs of the default (one block,
    dense) on the same parameters."""
    config = dict(features=F, num_layers=1, chunk_size=3, memory_chunks=4, top_k=2, local_length=2)
    steps = 20
    inputs = jax.random.normal(jax.random.key(3), (steps, B, D))
    resets = jnp.zeros((steps, B), bool).at[0].set(True).at[11, 1].set(True)
    default = mm.make("hcam", **config)
    carry = default.initialize_carry(B)
    params = default.init(jax.random.key(4), carry, inputs, resets)
    _, expected = default.apply(params, carry, inputs, resets)
    for settings in (
        dict(read_block=4, dense_read=False),
        dict(read_block=4, dense_read=True),
        dict(read_block=4, read_group=2),  # 5 blocks: two groups of 2 and one block left over
    ):
        _, outputs = mm.make("hcam", **config, **settings).apply(params, carry, inputs, resets)
        np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5, err_msg=str(settings))


def test_hcam_reads_only_completed_chunks():
    """With one layer and a one-step local window, output t depends on input s only through s == t, the
    previous step, or a chunk completed strictly before t that the memory still holds."""
    size, capacity, steps = 3, 2, 16
    module = mm.make(
        "hcam", features=F, num_layers=1, chunk_size=size, memory_chunks=capacity, top_k=capacity, local_length=1
    )
    resets = np.zeros((steps, B), bool)
    resets[0] = True
    resets[7, 1] = True
    jac = _dependence(module, resets, seed=6)
    visible = _simulate_chunk_memory(resets, size, capacity)
    start = _episode_starts(resets)
    for b in range(B):
        for t in range(steps):
            allowed = {t} | ({t - 1} if t - 1 >= start[t, b] else set())
            allowed |= {s for chunk in visible[t, b] for s in chunk}
            assert set(np.flatnonzero(jac[t, b, :, b] > 0)) == allowed, (b, t)


@pytest.mark.parametrize("positions", [True, False])
def test_hcam_chunk_positions_tell_the_order_inside_a_chunk(positions):
    """Swapping two steps of a chunk that has left the local window changes what a later step reads only
    with ``chunk_positions``: without them a chunk is a set (mean summary, attention over its entries)."""
    module = mm.make("hcam", features=F, num_layers=1, chunk_size=3, memory_chunks=2, top_k=2, local_length=1,
                     chunk_positions=positions)  # fmt: skip
    x, _ = _inputs(seed=3, t=8)
    resets = jnp.zeros((8, B), bool).at[0].set(True)
    params = module.init(jax.random.key(1), module.initialize_carry(B), x, resets)
    swapped = x.at[0].set(x[1]).at[1].set(x[0])
    _, out = module.apply(params, module.initialize_carry(B), x, resets)
    _, out_swapped = module.apply(params, module.initialize_carry(B), swapped, resets)
    # Step 5 reads chunk [0, 3) from memory; its local window (steps 4, 5) holds neither swapped step.
    changed = float(jnp.max(jnp.abs(out[5] - out_swapped[5])))
    assert (changed > 1e-4) if positions else (changed < 1e-5), changed


@pytest.mark.parametrize(
    "name, config, message",
    [
        ("trxl", dict(features=10, num_heads=4), "divisible by num_heads"),
        ("hcam", dict(features=12, num_heads=4), "even"),
        ("hcam", dict(features=16, top_k=5, memory_chunks=4), "top_k"),
        ("hcam", dict(features=16, chunk_size=0), "positive"),
        ("hcam", dict(features=16, read_block=0), "read_block must be a positive integer"),
        ("linear_attention", dict(features=10, num_heads=3), "divisible"),
        ("ffm", dict(features=8, min_period=10, max_period=5), "min_period"),
        ("rate", dict(features=10, num_heads=4), "divisible by num_heads"),
        ("rate", dict(features=16, segment_length=0), "positive"),
        ("s5", dict(features=16, min_step=0.1, max_step=0.01), "min_step"),
        ("s5", dict(features=16, state_size=10, blocks=4), "divisible by blocks"),
        ("lru", dict(features=16, r_min=0.9, r_max=1.0), "r_max < 1"),
        ("lru", dict(features=16, r_min=0.5, r_max=0.4), "r_min <= r_max"),
        ("lru", dict(features=16, max_phase=0.0), "max_phase"),
        ("mamba", dict(features=16, min_step=0.0), "min_step"),
        ("mamba2", dict(features=16, min_step=0.1, max_step=0.01), "min_step"),
        ("mamba2", dict(features=16, head_dim=12), "divisible by head_dim"),
        ("mamba2", dict(features=16, dense_chunks=-1), "dense_chunks"),
        ("mamba2", dict(features=10, expand=3, head_dim=4), "divisible by head_dim"),
        ("min_gru", dict(features=16, min_timescale=1.0), "min_timescale"),
        ("gru", dict(features=16, hidden_init="uniform"), "GRU: hidden_init must be one of"),
        ("lstm", dict(features=16, hidden_init="uniform"), "LSTM: hidden_init must be one of"),
    ],
)
def test_bad_configurations_raise(name, config, message):
    with pytest.raises(ValueError, match=message):
        mm.make(name, **config)


def test_bad_configurations_raise_without_the_registry():
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        mm.HCAM(features=16, chunk_size=0)
    with pytest.raises(ValueError, match="Mamba2: chunk_size must be >= 1"):
        mm.Mamba2(features=16, head_dim=8, chunk_size=0)


@pytest.mark.parametrize("name, gates", [("gru", 3), ("lstm", 4)])
def test_per_gate_hidden_init_makes_every_gate_block_orthogonal(name, gates):
    """With ``per_gate`` each gate's recurrent block keeps the hidden state's norm (flax's cells); one
    orthogonal matrix over all gates leaves each block weaker (singular values spread below 1)."""

    def gate_singular_values(hidden_init):
        _, params = _init(name, hidden_init=hidden_init)
        kernel = np.asarray(params["params"]["hidden_kernel"])
        return np.stack([np.linalg.svd(block, compute_uv=False) for block in np.split(kernel, gates, axis=1)])

    np.testing.assert_allclose(gate_singular_values("per_gate"), 1.0, atol=1e-5)
    assert gate_singular_values("orthogonal").mean() < 0.8


def test_gtrxl_blocks_start_close_to_the_identity():
    """The gate bias of 2 makes each block pass most of its input through at initialisation."""
    gate = Residual(gated=True)
    x, y = np.random.default_rng(0).normal(size=(2, 64, F)).astype(np.float32)
    params = gate.init(jax.random.key(1), x, y)
    out = gate.apply(params, x, y)
    assert float(jnp.mean((out - x) ** 2)) < 0.25 * float(jnp.mean(y**2))


# ---------------------------------------------------------------------------------------------------------
# The scan-based memories against their step-by-step definitions, and RATE's segments.


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _softplus(a):
    return np.log1p(np.exp(a))


def test_min_gru_matches_its_sequential_definition():
    module, params = _init("min_gru", num_layers=2)
    x, resets = _inputs(seed=4, t=20)
    carry = jax.random.normal(jax.random.key(3), (B, 2, F))
    final, y = module.apply(params, carry, x, resets)
    p = jax.tree_util.tree_map(np.asarray, params["params"])
    dense = lambda a, name: a @ p[name]["kernel"] + p[name]["bias"]  # noqa: E731
    inputs, expected, states = np.asarray(x), [], np.array(carry)
    for t in range(x.shape[0]):
        layer_input = inputs[t]
        for layer in range(2):
            keep = _sigmoid(dense(layer_input, f"keep_{layer}"))
            h = np.where(np.asarray(resets[t])[:, None], 0, states[:, layer])
            states[:, layer] = keep * h + (1 - keep) * dense(layer_input, f"candidate_{layer}")
            layer_input = states[:, layer].copy()
        expected.append(layer_input)
    np.testing.assert_allclose(y, np.stack(expected), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(final, states, rtol=1e-4, atol=1e-5)


def test_min_gru_state_stays_within_the_candidates():
    """h_t is a convex combination of candidates, so it never exceeds the largest one, however long."""
    module, params = _init("min_gru")
    steps = 4096
    x = 3.0 * jax.random.normal(jax.random.key(6), (steps, B, D))
    _, y = module.apply(params, module.initialize_carry(B), x, jnp.zeros((steps, B), bool))
    p = params["params"]
    candidates = x @ p["candidate_0"]["kernel"] + p["candidate_0"]["bias"]
    assert float(jnp.max(jnp.abs(y))) <= float(jnp.max(jnp.abs(candidates))) * (1 + 1e-5)


def test_hippo_frequencies_are_the_eigenvalues_of_the_normal_hippo_matrix():
    """Written from the definition: A_nk = -sqrt(2n+1) sqrt(2k+1) (n > k), -(n+1) (n = k); plus P P^T,
    P_n = sqrt(n + 1/2). Its eigenvalues are -1/2 +- i w."""
    from mnemax.memory_modules.s5 import hippo_n_frequencies

    order = 12
    a = np.zeros((order, order))
    for n in range(order):
        for k in range(order):
            a[n, k] = -np.sqrt((2 * n + 1) * (2 * k + 1)) if n > k else (-(n + 1) if n == k else 0)
    p = np.sqrt(np.arange(order) + 0.5)
    eigenvalues = np.linalg.eigvals(a + np.outer(p, p))
    np.testing.assert_allclose(eigenvalues.real, -0.5, atol=1e-6)
    positive = np.sort(eigenvalues.imag[eigenvalues.imag > 0])
    np.testing.assert_allclose(hippo_n_frequencies(order // 2), positive, rtol=1e-6)


def _run_state_space_layer(layer, seed: int, steps: int = 17):
    """A layer of 6 complex states (S5Layer, LRULayer) initialised and run over ``steps`` steps from a random
    state: ``(u, resets, state, y, final, params)``, the parameters as NumPy arrays."""
    u, resets = _inputs(seed=seed, t=steps)
    rng = np.random.default_rng(seed)
    state = (rng.normal(size=(B, 6)) + 1j * rng.normal(size=(B, 6))).astype(np.complex64)
    params = layer.init(jax.random.key(seed + 1), u, state, resets)
    y, final = layer.apply(params, u, state, resets)
    return u, resets, state, y, final, jax.tree_util.tree_map(np.asarray, params["params"])


def test_lru_layer_matches_its_recurrence():
    """Written from the paper's definition, with the initial eigenvalues on their ring and gamma at
    sqrt(1 - |lambda|^2)."""
    from mnemax.memory_modules.lru import LRULayer

    layer = LRULayer(state_size=6, r_min=0.5, r_max=0.99, max_phase=0.5)
    u, resets, state, y, final, p = _run_state_space_layer(layer, seed=9)
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), p)
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    assert np.all((np.abs(lam) >= 0.5 - 1e-6) & (np.abs(lam) <= 0.99 + 1e-6))
    assert np.all((np.angle(lam) > 0) & (np.angle(lam) <= 0.5 + 1e-6))
    np.testing.assert_allclose(np.exp(p["gamma_log"]), np.sqrt(1 - np.abs(lam) ** 2), rtol=1e-5)
    b = np.exp(p["gamma_log"]) * (p["b_real"] + 1j * p["b_imag"])  # [H, P]
    c = p["c_real"] + 1j * p["c_imag"]  # [P, H]
    h, expected, u = state.astype(complex), [], np.asarray(u)
    for t in range(len(u)):
        h = np.where(np.asarray(resets[t])[:, None], 0, lam * h) + u[t] @ b
        out = np.asarray(jax.nn.gelu((h @ c).real + p["d"] * u[t]))
        expected.append(out * _sigmoid(out @ p["gate"]["kernel"] + p["gate"]["bias"]))
    np.testing.assert_allclose(y, np.stack(expected), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(final, h, rtol=1e-4, atol=1e-4)


def test_s5_layer_matches_its_recurrence():
    from mnemax.memory_modules.s5 import S5Layer, hippo_n_frequencies

    layer = S5Layer(state_size=6, blocks=2, min_step=1e-3, max_step=1e-1)
    u, resets, state, y, final, p = _run_state_space_layer(layer, seed=7)
    np.testing.assert_allclose(p["frequency"], np.tile(hippo_n_frequencies(3), 2), rtol=1e-6)
    lam = -np.exp(p["log_neg_real"]) + 1j * p["frequency"]
    a_bar = np.exp(lam * np.exp(p["log_step"]))
    b_bar = (a_bar - 1) / lam * (p["b_real"] + 1j * p["b_imag"])  # [H, P]
    c = p["c_real"] + 1j * p["c_imag"]  # [P, H]
    h, expected, u = state.astype(complex), [], np.asarray(u)
    for t in range(len(u)):
        h = np.where(np.asarray(resets[t])[:, None], 0, a_bar * h) + u[t] @ b_bar
        out = np.asarray(jax.nn.gelu(2 * (h @ c).real + p["d"] * u[t]))
        expected.append(out * _sigmoid(out @ p["gate"]["kernel"] + p["gate"]["bias"]))
    np.testing.assert_allclose(y, np.stack(expected), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(final, h, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("scan", ["associative", "blocks"])
def test_selective_ssm_layer_matches_its_recurrence(scan):
    """Mamba's block, with the convolution's history and the SSM state carried in and cleared by resets."""
    from mnemax.memory_modules.mamba import MambaCarry, SelectiveSSMLayer

    n, expand, size, steps = 3, 2, 3, 15
    # Pieces (blocks) of 4 steps: three whole ones and a shorter (padded) last one.
    layer = SelectiveSSMLayer(
        state_size=n, expand=expand, conv_size=size, min_step=1e-3, max_step=1e-1, chunk_size=4, scan=scan
    )
    channels = expand * D
    u, resets = _inputs(seed=9, t=steps)
    resets = resets.at[0].set(False)  # start inside an episode, from the carried history
    rng = np.random.default_rng(9)
    state = MambaCarry(
        conv=rng.normal(size=(B, size - 1, channels)).astype(np.float32),
        ssm=rng.normal(size=(B, channels, n)).astype(np.float32),
    )
    params = layer.init(jax.random.key(10), u, state, resets)
    y, final = layer.apply(params, u, state, resets)
    p = jax.tree_util.tree_map(np.asarray, params["params"])
    silu = lambda a: a * _sigmoid(a)  # noqa: E731
    rank = -(-D // 16)
    history, h, expected = [list(state.conv[b]) for b in range(B)], state.ssm.copy(), []
    for t in range(steps):
        out = np.zeros((B, D))
        for b in range(B):
            if resets[t, b]:
                history[b] = [np.zeros(channels)] * (size - 1)
                h[b] = 0
            x, z = np.split(np.asarray(u[t, b]) @ p["in"]["kernel"], 2)
            window = history[b] + [x]
            conv = sum(p["conv_kernel"][j] * window[-1 - j] for j in range(size))
            history[b] = window[1:]
            x = silu(conv + p["conv_bias"])
            projected = x @ p["select"]["kernel"]
            step_low, b_t, c_t = projected[:rank], projected[rank : rank + n], projected[rank + n :]
            step = _softplus(step_low @ p["step"]["kernel"] + p["step"]["bias"])
            h[b] = np.exp(step[:, None] * -np.exp(p["a_log"])) * h[b] + (step * x)[:, None] * b_t[None, :]
            out[b] = ((h[b] @ c_t + p["d"] * x) * silu(z)) @ p["out"]["kernel"]
        expected.append(out)
    np.testing.assert_allclose(y, np.stack(expected), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(final.ssm, h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(final.conv, np.stack([np.stack(history[b]) for b in range(B)]), rtol=1e-5, atol=1e-6)


def _ssd_reference(x, log_decay, b, c, resets, state):
    """The recurrence that :func:`~mnemax.memory_modules.mamba2.ssd` computes, one step at a time (in the
    dtype of its inputs): ``h_t = exp(log_decay_t) h_{t-1} + x_t b_t^T`` per head, dropping ``h_{t-1}`` at
    a reset, ``y_t = h_t c_t``."""
    h, ys = state, []
    for t in range(x.shape[0]):
        keep = jnp.where(resets[t][:, None], 0.0, jnp.exp(log_decay[t]))  # [B, H]
        h = keep[..., None, None] * h + jnp.einsum("bhp,bn->bhpn", x[t], b[t])
        ys.append(jnp.einsum("bhpn,bn->bhp", h, c[t]))
    return jnp.stack(ys), h


@pytest.mark.parametrize("chunk_size, dense_chunks", [(1, 0), (4, 0), (64, 0), (4, 8)])
def test_ssd_matches_the_recurrence(chunk_size, dense_chunks):
    """Chunked SSD equals the step-by-step recurrence (computed in float64): across chunk boundaries, in a
    last chunk that T = 23 does not fill, in one chunk longer than the sequence, with resets at chunk starts
    (steps 4, 8, 20 for chunks of 4), inside chunks, at step 0 (cutting the carried state) and twice in a
    row, and with decays that underflow to zero; the chunks' states by the scan and (``dense_chunks`` 8)
    by the matrix product. Gradients agree as well, and are finite."""
    from mnemax.memory_modules.mamba2 import ssd

    steps, batch, heads, p, n = 23, 3, 2, 3, 4
    rng = np.random.default_rng(15)
    normal = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    x, b, c = normal(steps, batch, heads, p), normal(steps, batch, n), normal(steps, batch, n)
    state = normal(batch, heads, p, n)
    log_decay = -rng.uniform(0.0, 1.5, size=(steps, batch, heads)).astype(np.float32)
    log_decay[13:16, 2] = -80.0  # exp underflows: the state is all but wiped without a reset
    resets = np.zeros((steps, batch), bool)
    resets[[4, 8, 20], 0] = True
    resets[[6, 7, 18], 1] = True
    resets[0, 2] = True

    y, final = ssd(x, log_decay, b, c, resets, state, chunk_size, dense_chunks=dense_chunks)
    with jax.enable_x64(True):
        y64, final64 = _ssd_reference(*(np.float64(a) for a in (x, log_decay, b, c)), resets, np.float64(state))
        y64, final64 = np.asarray(y64), np.asarray(final64)
    np.testing.assert_allclose(y, y64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(final, final64, rtol=1e-4, atol=1e-4)

    def loss(fn, *inputs):
        y, h = fn(*inputs)
        return jnp.sum(jnp.sin(y)) + jnp.sum(h**2)

    chunked = lambda *a: ssd(*a, chunk_size, dense_chunks=dense_chunks)  # noqa: E731
    grads = jax.jit(jax.grad(lambda *a: loss(chunked, *a[:4], resets, a[4]), argnums=(0, 1, 2, 3, 4)))
    reference = jax.jit(jax.grad(lambda *a: loss(_ssd_reference, *a[:4], resets, a[4]), argnums=(0, 1, 2, 3, 4)))
    for got, expected in zip(grads(x, log_decay, b, c, state), reference(x, log_decay, b, c, state), strict=True):
        assert bool(jnp.all(jnp.isfinite(got)))
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)


def test_chunk_states_dense_equals_scan():
    """The states at the chunks' ends are the same by the pairwise-decay product and by the associative
    scan: with resets in the first chunk, mid-sequence and twice in a row, a carried state, and decays that
    underflow; gradients too."""
    from mnemax.memory_modules import mamba2

    chunks, batch, heads, p, n = 9, 3, 2, 3, 4
    rng = np.random.default_rng(3)
    log_decay = -rng.uniform(0.0, 3.0, size=(chunks, batch, heads)).astype(np.float32)
    log_decay[4:6, 1] = -90.0
    writes = rng.normal(size=(chunks, batch, heads, p, n)).astype(np.float32)
    state = rng.normal(size=(batch, heads, p, n)).astype(np.float32)
    resets = np.zeros((chunks, batch), bool)
    resets[[0, 5, 6], 0] = True
    resets[3, 2] = True

    def states_and_grads(dense_chunks):
        states = lambda *a: mamba2.chunk_states(*a, resets, dense_chunks)  # noqa: E731
        grads = jax.grad(lambda *a: jnp.sum(jnp.sin(states(*a))), (0, 1, 2))(log_decay, writes, state)
        return states(log_decay, writes, state), grads

    dense, scanned = states_and_grads(chunks), states_and_grads(0)
    for got, expected in zip(jax.tree.leaves(dense), jax.tree.leaves(scanned), strict=True):
        assert bool(jnp.all(jnp.isfinite(got)))
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_mamba_scans_give_the_same_gradients():
    """The blocked scan is a faster way to the same function: its gradients match the associative scan's,
    with resets inside blocks, on block edges and a padded last block."""
    from mnemax.memory_modules.mamba import selective_scan_blocks

    steps, channels, n = 22, 6, 4
    rng = np.random.default_rng(3)
    step = jnp.asarray(_softplus(rng.normal(size=(steps, B, channels)) - 2), jnp.float32)
    x = jnp.asarray(rng.normal(size=(steps, B, channels)), jnp.float32)
    initial = jnp.asarray(rng.normal(size=(B, channels, n)), jnp.float32)
    b, c = (jnp.asarray(rng.normal(size=(steps, B, n)), jnp.float32) for _ in range(2))
    a = -jnp.broadcast_to(jnp.arange(1.0, n + 1), (channels, n))
    resets = np.zeros((steps, B), bool)
    resets[[3, 8, 17], [0, 1, 2]] = True  # inside the first block, on the start of the third, inside the last

    def associative(step, x, b, c, initial):
        decay, update = jnp.exp(step[..., None] * a), (step * x)[..., None] * b[..., None, :]
        states = linear_recurrence(decay, update, initial, resets)
        return jnp.einsum("tben,tbn->tbe", states, c), states[-1]

    def loss(scan, *args):
        y, final = scan(*args)
        return jnp.sum(jnp.sin(y)) + jnp.sum(final**2)

    args = (step, x, b, c, initial)
    blocks = lambda *args: selective_scan_blocks(*args[:4], a, args[4], jnp.asarray(resets), 8)  # noqa: E731
    expected = jax.grad(functools.partial(loss, associative), argnums=range(5))(*args)
    got = jax.grad(functools.partial(loss, blocks), argnums=range(5))(*args)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def test_mamba2_sees_exactly_its_episode():
    """Output t depends on input s exactly when s is in t's episode and s <= t: chunks of 4 steps, a reset
    inside the third chunk (step 9) in one batch element."""
    module = mm.make("mamba2", features=F, chunk_size=4, head_dim=8, state_size=4)
    _check_dependence(module, lambda t, s, start: start <= s <= t, seed=16)


def test_mamba2_layer_matches_its_recurrence():
    """Mamba-2's block, with the convolution's history and the SSM state carried in and cleared by resets."""
    from mnemax.memory_modules.mamba2 import Mamba2Carry, Mamba2Layer

    n, p, expand, size, steps = 3, 2, 2, 3, 15
    channels, heads = expand * D, expand * D // p
    # Chunks of 4 steps: three whole ones and a shorter last one.
    layer = Mamba2Layer(
        state_size=n, head_dim=p, expand=expand, conv_size=size, chunk_size=4, min_step=1e-3, max_step=1e-1
    )
    u, resets = _inputs(seed=17, t=steps)
    resets = resets.at[0].set(False)  # start inside an episode, from the carried history
    rng = np.random.default_rng(17)
    state = Mamba2Carry(
        conv=rng.normal(size=(B, size - 1, channels + 2 * n)).astype(np.float32),
        ssm=rng.normal(size=(B, heads, p, n)).astype(np.float32),
    )
    params = layer.init(jax.random.key(18), u, state, resets)
    y, final = layer.apply(params, u, state, resets)
    w = jax.tree_util.tree_map(np.asarray, params["params"])
    assert 1.0 <= np.exp(w["a_log"]).min() and np.exp(w["a_log"]).max() <= 16.0  # Mamba-2's initial A
    silu = lambda a: a * _sigmoid(a)  # noqa: E731
    history, h, expected = [list(state.conv[b]) for b in range(B)], state.ssm.copy(), []
    for t in range(steps):
        out = np.zeros((B, D))
        for b in range(B):
            if resets[t, b]:
                history[b] = [np.zeros(channels + 2 * n)] * (size - 1)
                h[b] = 0
            projected = np.asarray(u[t, b]) @ w["in"]["kernel"]
            z, xbc, step = np.split(projected, [channels, 2 * channels + 2 * n])
            window = history[b] + [xbc]
            conv = sum(w["conv_kernel"][j] * window[-1 - j] for j in range(size))
            history[b] = window[1:]
            x, b_t, c_t = np.split(silu(conv + w["conv_bias"]), [channels, channels + n])
            step = _softplus(step + w["step_bias"])  # [heads]
            x = x.reshape(heads, p)
            decay = np.exp(step * -np.exp(w["a_log"]))
            h[b] = decay[:, None, None] * h[b] + (step[:, None] * x)[..., None] * b_t
            gated = (h[b] @ c_t + w["d"][:, None] * x).reshape(channels) * silu(z)
            normed = gated / np.sqrt(np.mean(gated**2) + 1e-6) * w["norm"]["scale"]
            out[b] = normed @ w["out"]["kernel"]
        expected.append(out)
    np.testing.assert_allclose(y, np.stack(expected), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(final.ssm, h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(final.conv, np.stack([np.stack(history[b]) for b in range(B)]), rtol=1e-5, atol=1e-6)


def _rate_reference(module, params, x, resets):
    """RATE written out episode by episode and segment by segment: every segment is one causal transformer
    pass over [memory + read embedding | its steps + position embeddings | memory + write embedding], and a
    complete segment's layer-normalised write outputs are the next segment's memory; episodes start from
    zero memory."""
    from mnemax.memory_modules.rate import SegmentTransformer

    p = params["params"]
    size, tokens = module.segment_length, module.memory_tokens
    transformer = SegmentTransformer(module.num_layers, module.num_heads)

    @jax.jit
    def run(tokens):  # one causal pass
        causal = jnp.tril(jnp.ones((1, tokens.shape[1], tokens.shape[1]), bool))
        return transformer.apply({"params": p["blocks"]["transformer"]}, tokens, causal)[0]

    norm = jax.jit(lambda name, a: nn.LayerNorm().apply({"params": name}, a))
    embedded = np.asarray(x @ p["input"]["kernel"] + p["input"]["bias"])
    resets = np.asarray(resets)
    out = np.zeros(embedded.shape[:2] + (module.features,), np.float32)
    for b in range(x.shape[1]):
        starts = [t for t in range(x.shape[0]) if resets[t, b]] + [x.shape[0]]
        for begin, end in zip(starts[:-1], starts[1:]):
            memory = jnp.zeros((1, tokens, module.features))
            for first in range(begin, end, size):
                last = min(first + size, end)
                steps = embedded[first:last, b] + p["position_embed"][: last - first]
                h = run(
                    jnp.concatenate(
                        [memory + p["blocks"]["read_embed"], steps[None], memory + p["blocks"]["write_embed"]], 1
                    )
                )
                out[first:last, b] = h[0, tokens : tokens + last - first]
                if last - first == size:
                    memory = norm(p["blocks"]["memory_norm"], h[:, -tokens:])
    return norm(p["out_norm"], out)


@pytest.mark.parametrize("segment_length", [1, 3, 4])
def test_rate_matches_its_segment_by_segment_definition(segment_length):
    module = mm.make("rate", features=F, num_layers=2, segment_length=segment_length, memory_tokens=2)
    steps = 23
    x, resets = _inputs(seed=11, t=steps)
    resets = resets.at[8, 0].set(True).at[12, 0].set(True).at[13, 1].set(True).at[14, 1].set(True)
    params = module.init(jax.random.key(12), module.initialize_carry(B), x, resets)
    _, y = jax.jit(module.apply)(params, module.initialize_carry(B), x, resets)
    np.testing.assert_allclose(y, _rate_reference(module, params, x, resets), rtol=2e-4, atol=2e-5)


def test_rate_steps_and_calls_leave_the_same_cache():
    """Single steps read cached keys and values; a multi-step call recomputes them at its end. Both give
    the same carry, and steps after a multi-step call continue it exactly."""
    module = mm.make("rate", features=F, num_layers=2, segment_length=3, memory_tokens=2)
    x, resets = _inputs(seed=15, t=17)
    resets = resets.at[7, 0].set(True)
    params = module.init(jax.random.key(16), module.initialize_carry(B), x, resets)
    apply = jax.jit(module.apply)
    carry_all, y_all = apply(params, module.initialize_carry(B), x, resets)
    carry = module.initialize_carry(B)
    for t in range(x.shape[0]):
        carry, _ = apply(params, carry, x[t : t + 1], resets[t : t + 1])
    for stepped, called in zip(carry, carry_all):
        np.testing.assert_allclose(stepped, called, rtol=1e-4, atol=1e-5)
    assert np.abs(carry.keys).max() > 0  # a segment is under way: the cache is not empty

    carry, y_first = apply(params, module.initialize_carry(B), x[:8], resets[:8])  # ends inside a segment
    ys = [y_first]
    for t in range(8, x.shape[0]):
        carry, y = apply(params, carry, x[t : t + 1], resets[t : t + 1])
        ys.append(y)
    np.testing.assert_allclose(np.concatenate(ys), y_all, rtol=2e-4, atol=2e-5)


def test_rate_steps_of_many_copies_under_a_vmap_over_seeds():
    """A step computes the read and write tokens only for the copies whose segment starts or completes
    (`rarely`); with 16 copies at staggered offsets, some steps have a few such copies and some many, and
    under a vmap over two seeds' parameters (as the trainer runs) the steps still equal one call."""
    copies, steps = 16, 14
    module = mm.make("rate", features=F, num_layers=2, segment_length=4, memory_tokens=2)
    keys = jax.random.split(jax.random.key(21), 3)
    x = jax.random.normal(keys[0], (2, steps, copies, D))
    # Episodes start at staggered steps (copy c at step c % 4), so the copies' segments complete at different
    # steps; the first eight copies also start together at step 9.
    starts = (jnp.arange(steps)[:, None] == (jnp.arange(copies) % 4)[None]) | (jnp.arange(steps)[:, None] == 0)
    resets = starts.at[9, :8].set(True)
    init = lambda key: module.init(key, module.initialize_carry(copies), x[0], resets)  # noqa: E731
    params = jax.vmap(init)(jax.random.split(keys[1], 2))

    def stepped(params, x):
        def one(carry, inputs):
            carry, y = module.apply(params, carry, inputs[0][None], inputs[1][None])
            return carry, y[0]

        return jax.lax.scan(one, module.initialize_carry(copies), (x, resets))[1]

    called = jax.vmap(lambda p, x: module.apply(p, module.initialize_carry(copies), x, resets)[1])(params, x)
    np.testing.assert_allclose(jax.jit(jax.vmap(stepped))(params, x), called, rtol=2e-4, atol=2e-5)


def test_rate_single_steps_give_the_gradients_of_one_call():
    """The read and write tokens of single steps run through `rarely`; differentiated, the steps give the
    parameters the same gradients as one call over the same steps."""
    module = mm.make("rate", features=F, num_layers=1, segment_length=3, memory_tokens=2, num_heads=2)
    x, resets = _inputs(seed=22, t=7)
    params = module.init(jax.random.key(23), module.initialize_carry(B), x, resets)
    weights = jax.random.normal(jax.random.key(24), (x.shape[0], B, F))  # a linear loss, well conditioned

    def stepped(params):  # a scan over the steps: one step to compile, not seven
        def step(carry, inputs):
            return module.apply(params, carry, inputs[0][None], inputs[1][None])

        _, ys = jax.lax.scan(step, module.initialize_carry(B), (x, resets))
        return jnp.sum(ys[:, 0] * weights)

    def called(params):
        return jnp.sum(module.apply(params, module.initialize_carry(B), x, resets)[1] * weights)

    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
        jax.jit(jax.grad(stepped))(params), jax.jit(jax.grad(called))(params),
    )  # fmt: skip


def test_rate_memory_tokens_carry_the_past_across_segments():
    """Segments of 4 steps: outputs depend on every earlier step of the episode, including steps of earlier
    segments, which reach them only through the memory tokens; the tokens change only when a segment
    completes, and a reset clears them."""
    size = 4
    module = mm.make("rate", features=F, num_layers=1, segment_length=size, memory_tokens=2)
    _check_dependence(module, lambda t, s, start: start <= s <= t, seed=13)

    # Step by step: the carried memory changes exactly when a segment completes, and it is what links
    # segments: with it zeroed after the first segment, the second segment's outputs change.
    module, params = _init("rate")
    x, _ = _inputs(seed=14)
    resets = jnp.zeros((T, B), bool).at[0].set(True).at[6, 0].set(True)
    apply = jax.jit(module.apply)
    carry, memories = module.initialize_carry(B), []
    for t in range(T):
        carry, _ = apply(params, carry, x[t : t + 1], resets[t : t + 1])
        memories.append(np.asarray(carry.memory))
        expected_fill = np.array([(t - 6 + 1) % size if t >= 6 else (t + 1) % size] + [(t + 1) % size] * (B - 1))
        np.testing.assert_array_equal(carry.fill, expected_fill)
    changed = [not np.allclose(memories[t], memories[t - 1]) for t in range(1, T)]
    assert changed[1 - 1 : 4] == [False, False, True, False]  # steps 1..4: written at the end of step 3
    assert not memories[6][0].any() and memories[6][1].any()  # the reset at step 6 cleared element 0
    assert not memories[8][0].any() and memories[9][0].any()  # ... until its next segment completed (step 9)

    carry, _ = apply(params, module.initialize_carry(B), x[:size], resets[:size])
    _, y = apply(params, carry, x[size : 2 * size], resets[size : 2 * size])
    _, y_forgot = apply(
        params, carry._replace(memory=jnp.zeros_like(carry.memory)), x[size : 2 * size], resets[size : 2 * size]
    )
    assert not np.allclose(y, y_forgot, atol=1e-3)


@pytest.mark.parametrize("name", ["gru", "lstm"])
@pytest.mark.parametrize("dtype, tolerance", [(jnp.float32, 1e-4), (jnp.bfloat16, 2e-2)])
def test_gated_cells_backward_pass_matches_autodiff(name, dtype, tolerance):
    """The hand-written gradient of the gated cells (``backward="custom"``, ``scan.gated_scan``) equals
    JAX's differentiation of the scan for the parameters, the carry and the inputs, across resets (relative
    to the largest gradient; bf16 rounds the products of both differently)."""
    x, resets = _inputs()
    custom, autodiff = _make(name, dtype=dtype, max_timescale=20), _make(name, dtype=dtype, max_timescale=20, backward="autodiff")
    keys = iter(jax.random.split(jax.random.key(3), 4))
    carry = jax.tree_util.tree_map(lambda c: jax.random.normal(next(keys), c.shape), custom.initialize_carry(B))
    params = custom.init(jax.random.key(1), carry, x, resets)

    def loss(module):
        def value(params, carry, x):  # weights every output and every part of the final carry differently
            final, y = module.apply(params, carry, x, resets)
            parts = jax.tree_util.tree_leaves(final)
            return jnp.sum(jnp.sin(y.astype(jnp.float32))) + sum(jnp.sum(p * jnp.arange(F) * (i + 1)) for i, p in enumerate(parts))

        return jax.jit(jax.grad(value, argnums=(0, 1, 2)))

    ours, reference = loss(custom)(params, carry, x), loss(autodiff)(params, carry, x)
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(reference)):
        assert float(jnp.abs(a - b).max()) <= tolerance * float(jnp.abs(b).max()), (a.shape, a, b)
    with pytest.raises(ValueError, match="backward must be one of"):
        _make(name, backward="cudnn")


def test_mlp_keeps_only_the_gelus_input_for_its_backward_pass(capsys):
    """Of the MLP's ``[..., 4 D]`` activations the backward pass keeps only the GELU's input (its output and
    tanh are recomputed), with the parameters and gradients of ``Dense(gelu(Dense(x)))``."""
    mlp = attention.FeedForward()
    x = jax.random.normal(jax.random.key(1), (3, 5, 8))
    params = mlp.init(jax.random.key(0), x)
    w = params["params"]
    plain = lambda p, x: nn.gelu(x @ p["hidden"]["kernel"] + p["hidden"]["bias"]) @ p["out"]["kernel"] + p["out"]["bias"]  # noqa: E731
    np.testing.assert_allclose(mlp.apply(params, x), plain(w, x), rtol=1e-6)
    ours = jax.grad(lambda p: jnp.sum(jnp.sin(mlp.apply(p, x))))(params)["params"]
    reference = jax.grad(lambda p: jnp.sum(jnp.sin(plain(p, x))))(w)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), ours, reference)
    jax.ad_checkpoint.print_saved_residuals(lambda p: jnp.sum(mlp.apply(p, x)), params)
    assert capsys.readouterr().out.count("f32[3,5,32]") == 1


def assert_window_attention_is_dense_masked_attention(q, k, v, q_segments, k_segments, window):
    """``window_attention``'s outputs and gradients equal those of one dense masked attention of every query
    to itself and the ``window`` keys before it in its episode; returns the loss through ``window_attention``
    (a sum of sines of its outputs)."""
    steps = q.shape[1]
    t, j = jnp.arange(steps)[:, None], jnp.arange(window + steps)[None, :]
    mask = (j >= t) & (j <= t + window) & (q_segments[:, :, None] == k_segments[:, None, :])

    def ours(q, k, v):
        return jnp.sum(jnp.sin(window_attention(q, k, v, q_segments, k_segments, window)))

    def dense(q, k, v):
        return jnp.sum(jnp.sin(attention.masked_attention(q, k, v, mask[:, None])))

    np.testing.assert_allclose(ours(q, k, v), dense(q, k, v), rtol=1e-5)
    for a, b in zip(jax.grad(ours, (0, 1, 2))(q, k, v), jax.grad(dense, (0, 1, 2))(q, k, v)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    return ours


def test_short_window_over_a_long_sequence_is_recomputed_and_the_same_attention():
    """From ``REMAT_BAND_STEPS`` queries on, a short window's attention is recomputed in the backward pass
    (a rematerialisation in the trace, none below); outputs and gradients equal one dense masked attention
    over the whole sequence, across an episode reset."""
    batch, heads, head_dim, window = 1, 1, 4, 16
    steps = attention.REMAT_BAND_STEPS

    def inputs(steps):
        keys = jax.random.split(jax.random.key(0), 3)
        q = jax.random.normal(keys[0], (batch, steps, heads, head_dim))
        k, v = (jax.random.normal(key, (batch, window + steps, heads, head_dim)) for key in keys[1:])
        resets = jnp.zeros((batch, steps), bool).at[:, 0].set(True).at[:, steps // 3].set(True)
        return (q, k, v), episode_segments(resets, jnp.ones((batch, window), bool))

    (q, k, v), (q_segments, k_segments) = inputs(steps)
    ours = assert_window_attention_is_dense_masked_attention(q, k, v, q_segments, k_segments, window)
    recomputes = lambda loss, *args: any(f"{p}[" in str(jax.make_jaxpr(jax.grad(loss))(*args)) for p in ("remat2", "checkpoint"))  # noqa: E731
    assert recomputes(ours, q, k, v)
    short, short_segments = inputs(steps // 2)
    short_loss = lambda q, k, v: jnp.sum(window_attention(q, k, v, *short_segments, window))  # noqa: E731
    assert not recomputes(short_loss, *short)


@pytest.mark.parametrize("steps, window, block", [(50, 16, 17), (40, 16, 20), (48, 16, 16), (17, 16, 17)])
def test_window_attention_in_blocks_is_one_dense_masked_attention(steps, window, block):
    """Queries cut into blocks of at least ``window`` steps (3 of 17 with one padded step, 2 of 20, 3 of
    16, and one dense block of 17 steps), each seeing the ``window`` keys before it and its own: the outputs
    and gradients of one dense masked attention over the whole sequence, across episode resets."""
    assert attention.query_block(steps, window) == block
    batch, heads, head_dim = 2, 2, 4
    keys = jax.random.split(jax.random.key(3), 3)
    q = jax.random.normal(keys[0], (batch, steps, heads, head_dim))
    k, v = (jax.random.normal(key, (batch, window + steps, heads, head_dim)) for key in keys[1:])
    resets = jnp.zeros((batch, steps), bool).at[:, 0].set(True).at[1, steps // 2].set(True)
    q_segments, k_segments = episode_segments(resets, jnp.ones((batch, window), bool).at[0, :3].set(False))
    assert_window_attention_is_dense_masked_attention(q, k, v, q_segments, k_segments, window)


@pytest.mark.parametrize("steps, window", [(300, 260), (280, 130)])
def test_window_attention_in_query_chunks_is_the_same_attention(steps, window):
    """A long query block attended ``query_chunk`` queries at a time (a dense window of thousands of steps)
    gives the outputs and gradients of the whole block at once, across an episode reset: one block of 300
    steps with a window of 260, and 2 blocks of 140 with a window of 130, in chunks of 64 that leave a
    shorter last chunk."""
    batch, heads, head_dim = 2, 2, 8
    keys = jax.random.split(jax.random.key(0), 3)
    q = jax.random.normal(keys[0], (batch, steps, heads, head_dim))
    k, v = (jax.random.normal(key, (batch, window + steps, heads, head_dim)) for key in keys[1:])
    resets = jnp.zeros((batch, steps), bool).at[:, 0].set(True).at[1, 120].set(True)
    q_segments, k_segments = episode_segments(resets, jnp.ones((batch, window), bool))

    def loss(query_chunk):
        return lambda q, k, v: jnp.sum(jnp.sin(window_attention(q, k, v, q_segments, k_segments, window, query_chunk)))

    whole, chunked = loss(steps), loss(64)
    np.testing.assert_allclose(chunked(q, k, v), whole(q, k, v), rtol=1e-5)
    for a, b in zip(jax.grad(chunked, (0, 1, 2))(q, k, v), jax.grad(whole, (0, 1, 2))(q, k, v)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
