"""Memory modules behind one interface: ``initialize_carry(batch)`` and ``(carry, inputs, resets) -> (carry, outputs)``."""

from mnemax.memory_modules.base import MemoryModule, reset_carry
from mnemax.memory_modules.ffm import FFM
from mnemax.memory_modules.gru import GRU
from mnemax.memory_modules.hcam import HCAM, HCAMAttention, HCAMBlock, HCAMCarry, WindowCarry
from mnemax.memory_modules.linear_attention import LinearAttention
from mnemax.memory_modules.lru import LRU
from mnemax.memory_modules.lstm import LSTM
from mnemax.memory_modules.mamba import Mamba, MambaCarry
from mnemax.memory_modules.mamba2 import Mamba2, Mamba2Carry
from mnemax.memory_modules.min_gru import MinGRU
from mnemax.memory_modules.rate import RATE, RATECarry
from mnemax.memory_modules.registry import make, names
from mnemax.memory_modules.s5 import S5
from mnemax.memory_modules.transformer_xl import TransformerXL, TransformerXLCarry

__all__ = [
    "FFM",
    "GRU",
    "HCAM",
    "HCAMAttention",
    "HCAMBlock",
    "HCAMCarry",
    "LRU",
    "LSTM",
    "LinearAttention",
    "Mamba",
    "Mamba2",
    "Mamba2Carry",
    "MambaCarry",
    "MemoryModule",
    "MinGRU",
    "RATE",
    "RATECarry",
    "S5",
    "TransformerXL",
    "TransformerXLCarry",
    "WindowCarry",
    "make",
    "names",
    "reset_carry",
]
