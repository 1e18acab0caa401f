"""Memory modules behind one interface: ``initialize_carry(batch)`` and ``(carry, inputs, resets) -> (carry, outputs)``."""

from mnemax.memory_modules.base import MemoryModule, reset_carry
from mnemax.memory_modules.gru import GRU
from mnemax.memory_modules.registry import make, names

__all__ = ["GRU", "MemoryModule", "make", "names", "reset_carry"]
