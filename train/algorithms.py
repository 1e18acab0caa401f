"""The training algorithms by name, like the memory modules and the agents: ``make(config)`` builds the
one a configuration belongs to, ``names()`` lists them, and ``mnemax-train NAME`` trains with one.

An algorithm is an :class:`~mnemax.train.on_policy.OnPolicy` subclass whose ``Config`` (a
:class:`~mnemax.train.config.TrainConfig` subclass) names it in ``algo``. Adding one is its module and
one entry in :data:`ALGORITHMS`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json

from mnemax.train.config import DEFAULT_ALGORITHM, TrainConfig
from mnemax.train.dcpo import DCPO
from mnemax.train.on_policy import OnPolicy
from mnemax.train.ppo import PPO

ALGORITHMS: dict[str, type[OnPolicy]] = {algorithm.Config.algo: algorithm for algorithm in (PPO, DCPO)}


def names() -> list[str]:
    """Names accepted by :func:`config_class`, the default first."""
    return sorted(ALGORITHMS, key=lambda name: (name != DEFAULT_ALGORITHM, name))


def config_class(name: str) -> type[TrainConfig]:
    """The configuration class of algorithm ``name``; ``ValueError`` for an unknown one."""
    if name not in ALGORITHMS:
        close = difflib.get_close_matches(name, names(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown algorithm {name!r}.{hint} Known: {', '.join(names())}")
    return ALGORITHMS[name].Config


def make(config: TrainConfig, num_devices: int = 1) -> OnPolicy:
    """The algorithm of ``config``, built for it (which validates it first)."""
    return ALGORITHMS[config.algo](config, num_devices=num_devices)


def config_from_json(text: str) -> TrainConfig:
    """The configuration that :meth:`TrainConfig.to_json` wrote. Keys the algorithm's configuration does
    not have are dropped, so that the files of earlier versions load (those of PPO runs, for one, held
    DCPO's ``group_size``); a file without ``algo`` is PPO's."""
    data = json.loads(text)
    cls = config_class(data.pop("algo", DEFAULT_ALGORITHM))
    known = {field.name for field in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in data.items() if key in known})
