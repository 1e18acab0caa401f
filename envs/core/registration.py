"""The table of environment ids, ``make`` and the gymnasium registration.

Ids are written ``"<Task>-<Variant>-v<k>"`` and live in the gymnasium namespace ``mnemax``: both
``make("TMaze-Passive-v0")`` and ``make("mnemax/TMaze-Passive-v0")`` work here, and after
``import mnemax.envs`` so does ``gymnasium.make("mnemax/TMaze-Passive-v0")``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium

from mnemax.envs.core.environment import Environment, EnvParams

NAMESPACE = "mnemax"


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """How to build one registered id: the task class and its parameters over the class defaults."""

    id: str
    env_class: Callable[[], Environment]
    params: Mapping[str, Any]
    description: str = ""


_SPECS: dict[str, EnvSpec] = {}


def register(id: str, env_class: Callable[[], Environment], description: str = "", **params) -> None:
    """Register ``id`` (without namespace) for ``make`` and for ``gymnasium.make("mnemax/<id>")``."""
    if id in _SPECS:
        raise ValueError(f"environment id {id!r} is registered twice")
    _SPECS[id] = EnvSpec(id, env_class, dict(params), description)
    gym_id = f"{NAMESPACE}/{id}"
    if gym_id not in gymnasium.registry:
        gymnasium.register(
            id=gym_id,
            entry_point="mnemax.envs.interop.gymnasium_adapter:GymnasiumEnv",
            vector_entry_point="mnemax.envs.interop.gymnasium_adapter:GymnasiumVectorEnv",
            kwargs={"env_id": id},
        )


def registered_ids() -> list[str]:
    """Every registered id, with its namespace (``"mnemax/..."``), sorted."""
    return sorted(f"{NAMESPACE}/{id}" for id in _SPECS)


def spec(id: str) -> EnvSpec:
    """The spec of ``id`` (with or without the ``mnemax/`` namespace).

    Raises:
        ValueError: for an unknown id, naming the closest registered ids.
    """
    short = id.split(":")[-1].removeprefix(f"{NAMESPACE}/")
    if short not in _SPECS:
        close = difflib.get_close_matches(short, list(_SPECS), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(f'{NAMESPACE}/{c}' for c in close)}?" if close else ""
        raise ValueError(f"unknown environment id {id!r}.{hint} `mnemax-envs` lists all {len(_SPECS)} ids.")
    return _SPECS[short]


def make(id: str, **overrides) -> tuple[Environment, EnvParams]:
    """Build the environment ``id`` and its parameters, gymnax style: ``env, params = make(id)``.

    ``overrides`` replace fields of the parameters (e.g. ``corridor_length=200``); the result is
    checked by the task's ``validate_params`` here, before anything is traced or compiled: every field
    against its declaration (kind, range, variant; see :mod:`mnemax.envs.core.params`), then the relations
    between fields.

    Raises:
        ValueError: for an unknown id, an unknown parameter name, or invalid parameter values; the
            message starts with the id and names the parameter and what it accepts.
    """
    env_spec = spec(id)
    env = env_spec.env_class()
    params = with_overrides(env.default_params, {**env_spec.params, **overrides}, env_spec.id)
    try:
        env.validate_params(params)
    except ValueError as error:
        raise ValueError(f"{NAMESPACE}/{env_spec.id}: {error}") from None
    return env, params


def with_overrides(params: EnvParams, overrides: Mapping[str, Any], id: str = "") -> EnvParams:
    """``params`` with some fields replaced; unknown field names raise ``ValueError``."""
    fields = {f.name: f for f in dataclasses.fields(params)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"{id or type(params).__name__} has no parameter(s) {unknown}; parameters: {sorted(fields)}")
    return params.replace(**overrides)
