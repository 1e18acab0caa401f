"""Build memory modules by name: ``mnemax.memory_modules.make("gru", features=128)``."""

from __future__ import annotations

import dataclasses
import difflib

from mnemax.memory_modules.base import MemoryModule
from mnemax.memory_modules.ffm import FFM
from mnemax.memory_modules.gru import GRU
from mnemax.memory_modules.hcam import HCAM
from mnemax.memory_modules.linear_attention import LinearAttention
from mnemax.memory_modules.lru import LRU
from mnemax.memory_modules.lstm import LSTM
from mnemax.memory_modules.mamba import Mamba
from mnemax.memory_modules.mamba2 import Mamba2
from mnemax.memory_modules.min_gru import MinGRU
from mnemax.memory_modules.rate import RATE
from mnemax.memory_modules.s5 import S5
from mnemax.memory_modules.transformer_xl import TransformerXL

MODULES: dict[str, type[MemoryModule]] = {
    "ffm": FFM,
    "gru": GRU,
    "hcam": HCAM,
    "linear_attention": LinearAttention,
    "lru": LRU,
    "lstm": LSTM,
    "mamba": Mamba,
    "mamba2": Mamba2,
    "min_gru": MinGRU,
    "rate": RATE,
    "s5": S5,
    "trxl": TransformerXL,
}


def names() -> list[str]:
    """Names accepted by :func:`make`."""
    return sorted(MODULES)


def make(name: str, **config) -> MemoryModule:
    """Instantiate the memory module ``name`` with ``config`` (its dataclass fields, e.g. ``features``).

    Raises:
        ValueError: for an unknown name (listing close matches), an unknown config field, or a size
            that is not a positive integer.
    """
    if name not in MODULES:
        close = difflib.get_close_matches(name, names(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown memory module {name!r}.{hint} Known: {', '.join(names())}")
    cls = MODULES[name]
    fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(f"memory module {name!r} has no field(s) {unknown}; fields: {sorted(fields)}")
    for key, value in config.items():
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        if value <= 0:
            raise ValueError(f"memory module {name!r}: {key} must be a positive integer, got {value}")
    return cls(**config)
