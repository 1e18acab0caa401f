"""Hyperparameter presets per task family, shared by the CLI (``mnemax-train --preset NAME``) and the
learning benchmarks (``benchmarks/learning_curves.py``).

A preset is a set of :class:`~mnemax.train.config.PPOConfig` fields; flags given on the command line
override it. Each preset below says where its values come from.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {}


def names() -> list[str]:
    """The preset names, sorted."""
    return sorted(PRESETS)


def preset(name: str) -> dict[str, Any]:
    """The fields of preset ``name`` (a copy); ``ValueError`` for an unknown name."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(names())}")
    return dict(PRESETS[name])
