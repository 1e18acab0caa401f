"""Declared parameters, checked at make() for every registered id, and the one rule for actions."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from jax.experimental import checkify

import mnemax.envs
from mnemax.envs.core import spaces, wrappers
from mnemax.envs.core.environment import Environment, EnvParams
from mnemax.envs.core.params import check_params, declaration, describe_params, param

IDS = mnemax.envs.registered_ids()

# Values no field of a kind accepts.
BAD = {
    int: [float("nan"), float("inf"), "3", None, 2.5, True, 2**40, [1]],
    float: [float("nan"), float("inf"), -float("inf"), "0.5", None, True, 1e39, 10**400],
    bool: [2.5, 1, 0, "True", None, float("nan")],
    str: [2.5, None, "no-such-choice"],
    tuple: [float("nan"), "1", None, 2.5, (), (1, 2.5), [1], (True,)],
}


def _fields(env_id):
    env, params = mnemax.envs.make(env_id)
    return env, params, [(f, declaration(type(params), f.name)) for f in dataclasses.fields(params)]


@pytest.mark.parametrize("env_id", IDS)
def test_every_bad_value_of_every_parameter_is_refused_naming_the_field(env_id):
    env, params, fields = _fields(env_id)
    for field, spec in fields:
        huge = {int: 10**9, tuple: (10**9,)}.get(spec.kind)
        for value in BAD[spec.kind] + ([huge] if huge else []):
            try:
                mnemax.envs.make(env_id, **{field.name: value})
            except ValueError as error:
                assert re.search(rf"\b{field.name}\b", str(error)), f"{field.name}={value!r}: {error}"
                assert str(error).startswith(f"{env_id}: "), str(error)
            else:
                # Only a huge count that sizes no array (a traced field) may pass, where its bound allows.
                assert value is huge and field.metadata.get("pytree_node", True), (
                    f"{env_id} accepted {field.name}={value!r}"
                )


@pytest.mark.parametrize("env_id", IDS)
def test_fields_of_another_variant_must_keep_their_defaults(env_id):
    env, params, fields = _fields(env_id)
    other = {bool: lambda v: not v, int: lambda v: v + 1, float: lambda v: v / 2, tuple: lambda v: v + v}
    for field, spec in fields:
        if spec.only is None or spec.only in env.variant:
            continue
        with pytest.raises(ValueError, match=rf"{field.name} applies to {spec.only} variants only"):
            mnemax.envs.make(env_id, **{field.name: other[spec.kind](getattr(params, field.name))})


def test_every_variant_a_parameter_belongs_to_exists():
    """Fields declared ``only`` for a variant apply somewhere: some id of the same parameter class is it."""
    tags, variants = {}, {}
    for env_id in IDS:
        env, params, fields = _fields(env_id)
        tags.setdefault(type(params), set()).update(spec.only for _, spec in fields if spec.only)
        variants.setdefault(type(params), set()).update(env.variant)
    for params_class, wanted in tags.items():
        assert wanted <= variants[params_class], f"{params_class.__name__}: no id is {wanted - variants[params_class]}"


def test_messages_name_the_accepted_range_and_why():
    cases = [
        ("TMaze-Passive-v0", "step_penalty", float("nan"), "step_penalty must be a finite number >= 0, got nan"),
        ("TMaze-Passive-v0", "active", 2.5, "active must be True or False, got 2.5"),
        (
            "RepeatFirst-Easy-v0",
            "num_decks",
            10**9,
            "num_decks must be an integer in [1, 256] (a state keeps every card",
        ),
        ("Ballet-2-Delay16-v0", "observation", "rgb", "observation must be one of 'pixels', 'symbolic', got 'rgb'"),
        ("MortarMayhem-Grid-v0", "command_count", [3], "command_count must be an integer in [1, 256], or a non-empty"),
        ("MysteryPath-v0", "turn_controls", True, "turn_controls applies to grid variants only"),
    ]
    for env_id, name, value, text in cases:
        with pytest.raises(ValueError, match=re.escape(text)):
            mnemax.envs.make(env_id, **{name: value})


def test_defaults_and_numpy_scalars_pass():
    for env_id in IDS:
        env, params = mnemax.envs.make(env_id)
        env.validate_params(params)
    env, params = mnemax.envs.make("TMaze-Passive-v0", corridor_length=np.int64(5), step_penalty=np.float32(0.5))
    assert params.corridor_length == 5
    assert any("corridor_length = 5" in line for line in describe_params(params))


@struct.dataclass
class _Params(EnvParams):
    size: int = param(4, ge=1, le=8, static=True, why="a reason")
    rate: float = param(0.5, gt=0.0, lt=1.0)


@struct.dataclass
class _Child(_Params):
    size: int = 6  # a new default; the base declaration still applies


def test_declarations_are_inherited_and_defaults_checked():
    assert declaration(_Child, "size").le == 8
    with pytest.raises(ValueError, match=r"size must be an integer in \[1, 8\] \(a reason\), got 9"):
        check_params(_Child(size=9), _Child())
    with pytest.raises(ValueError, match=r"rate must be a finite number in \(0, 1\), got 1.0"):
        check_params(_Child(rate=1.0), _Child())
    with pytest.raises(ValueError, match="default"):
        param(0, ge=1)

    @struct.dataclass
    class Undeclared(EnvParams):
        loose: int = 3

    with pytest.raises(TypeError, match="Undeclared.loose is not declared"):
        check_params(Undeclared(), Undeclared())


# ------------------------------------------------------------------------------------------- actions
@pytest.mark.parametrize("env_id", IDS)
def test_every_task_steps_through_the_one_action_rule(env_id):
    """No task replaces the stepping of the base class, which clips actions into the space."""
    env, params = mnemax.envs.make(env_id)
    for method in ("step", "step_env", "_advance"):
        assert getattr(type(env), method) is getattr(Environment, method), f"{env_id} overrides {method}"
    space = env.action_space(params)
    high = np.asarray(space.nvec - 1 if isinstance(space, spaces.MultiDiscrete) else space.n - 1)
    too_big = np.asarray(high + 5)
    np.testing.assert_array_equal(space.clip(too_big), high)
    np.testing.assert_array_equal(space.clip(np.zeros(space.shape) - 3), np.zeros(space.shape))
    np.testing.assert_array_equal(space.clip(np.minimum(high, 1) + 0.7), np.minimum(high, 1))
    with pytest.raises(ValueError, match="shape"):
        space.clip(np.zeros(space.shape + (2,), np.int32))


@pytest.mark.parametrize("env_id", ["TMaze-Passive-v0", "RepeatFirst-Easy-v0", "ContextEdit-KVUpdate-v0"])
def test_out_of_range_and_float_actions_act_as_the_clipped_action(env_id):
    env, params = mnemax.envs.make(env_id)
    space = env.action_space(params)
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    step = jax.jit(env.step)
    high = jnp.asarray(space.nvec - 1 if isinstance(space, spaces.MultiDiscrete) else space.n - 1)
    for action, same_as in (
        (high + 7, high),
        (high * 0 - 2, high * 0),
        (jnp.minimum(high, 1) + 0.9, jnp.minimum(high, 1)),
    ):
        jax.tree_util.tree_map(
            np.testing.assert_array_equal, step(key, state, action, params), step(key, state, same_as, params)
        )
    with pytest.raises(ValueError, match="shape"):
        step(key, state, jnp.zeros(space.shape + (3,), jnp.int32), params)


def test_checked_actions_refuses_what_step_would_clip():
    env, params = mnemax.envs.make("ContextEdit-KVUpdate-v0")
    checked = wrappers.CheckedActions(env)
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    good = jnp.array([1, 0, 2, 3])
    jax.tree_util.tree_map(
        np.testing.assert_array_equal, checked.step(key, state, good, params), env.step(key, state, good, params)
    )
    with pytest.raises(ValueError, match=r"outside the action space MultiDiscrete"):
        checked.step(key, state, jnp.array([9, 0, 0, 0]), params)
    with pytest.raises(ValueError, match="shape"):
        checked.step(key, state, jnp.array([1, 0]), params)
    with pytest.raises(TypeError, match="integer"):
        checked.step(key, state, good.astype(jnp.float32), params)

    # Under jit and vmap, through checkify.
    batch = 4
    keys = jax.random.split(key, batch)
    states = jax.vmap(env.reset, in_axes=(0, None))(keys, params)[1]
    step = jax.jit(checkify.checkify(jax.vmap(checked.step, in_axes=(0, 0, 0, None))))
    actions = jnp.tile(good, (batch, 1))
    error, _ = step(keys, states, actions, params)
    error.throw()  # nothing wrong
    error, _ = step(keys, states, actions.at[2, 3].set(99), params)
    with pytest.raises(ValueError, match=r"outside the action space"):
        error.throw()


def test_checked_discrete_actions_eagerly():
    env, params = mnemax.envs.make("TMaze-Passive-v0")
    checked = wrappers.CheckedActions(env)
    key = jax.random.key(1)
    _, state = env.reset(key, params)
    checked.step_env(key, state, 3, params)
    for bad in (4, -1):
        with pytest.raises(ValueError, match=r"outside the action space Discrete\(4\)"):
            checked.step_env(key, state, bad, params)
    with pytest.raises(TypeError, match="integer"):
        checked.step(key, state, 1.0, params)
