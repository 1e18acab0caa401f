"""Memory Gym (Pleines et al., ICLR 2023 / JMLR 2025) in pure JAX: Mortar Mayhem, Mystery Path and
Searing Spotlights, their endless forms, in grid and free movement, with 84 x 84 pixel or symbolic
observations. Importing this package registers the ids (``mnemax/MortarMayhem-Grid-v0``, ...)."""

from mnemax.envs.tasks.memory_gym.mortar_mayhem import MortarMayhem, MortarMayhemParams, MortarMayhemState
from mnemax.envs.tasks.memory_gym.mystery_path import MysteryPath, MysteryPathParams, MysteryPathState
from mnemax.envs.tasks.memory_gym.searing_spotlights import (
    SearingSpotlights,
    SearingSpotlightsParams,
    SearingSpotlightsState,
)

__all__ = [
    "MortarMayhem",
    "MortarMayhemParams",
    "MortarMayhemState",
    "MysteryPath",
    "MysteryPathParams",
    "MysteryPathState",
    "SearingSpotlights",
    "SearingSpotlightsParams",
    "SearingSpotlightsState",
]
