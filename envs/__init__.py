"""mnemax environments: pure-JAX memory tasks with a gymnax-style functional API and gymnasium ids.

    import mnemax.envs
    env, params = mnemax.envs.make("mnemax/TMaze-Passive-v0", corridor_length=100)
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

Importing this package registers every id with gymnasium (``gymnasium.make("mnemax/TMaze-Passive-v0")``).

The package is grouped by role: :mod:`~mnemax.envs.core` (the environment base class, spaces, declared
parameters, the id registry, wrappers, rendering), :mod:`~mnemax.envs.tasks` (the task families),
:mod:`~mnemax.envs.interop` (gymnasium and gymnax adapters) and :mod:`~mnemax.envs.tools` (the keyboard
player, rollout videos, ``mnemax-envs``, the command-line plumbing).
"""

import importlib
import sys

from mnemax.envs.core import spaces, wrappers
from mnemax.envs.core.environment import NO_TIME_LIMIT, Environment, EnvParams, EnvState
from mnemax.envs.core.registration import NAMESPACE, make, register, registered_ids, spec
from mnemax.envs import tasks  # noqa: E402  isort: skip  (registers every id)

# Module paths from before the grouping by role (`mnemax.envs.tmaze`, `mnemax.envs.gymnax_adapter`, ...)
# keep working. Each names the very module of its new path, not a copy, so that nothing is imported, and
# no id registered, twice. The tools run with `python -m` keep small files of their own instead
# (`envs/play.py`, `envs/render_rollouts.py`): `-m` runs a file.
FORMER_PATHS = {
    "environment": "core.environment", "params": "core.params", "registration": "core.registration",
    "rendering": "core.rendering", "spaces": "core.spaces", "wrappers": "core.wrappers",
    "ballet": "tasks.ballet", "cards": "tasks.cards", "context_edit": "tasks.context_edit",
    "context_edit_curators": "tasks.context_edit_curators", "context_edit_stream": "tasks.context_edit_stream",
    "diagnostics": "tasks.diagnostics", "object_permanence": "tasks.object_permanence", "tmaze": "tasks.tmaze",
    "memory_gym": "tasks.memory_gym", "memory_gym.common": "tasks.memory_gym.common",
    "memory_gym.mortar_mayhem": "tasks.memory_gym.mortar_mayhem",
    "memory_gym.mystery_path": "tasks.memory_gym.mystery_path",
    "memory_gym.searing_spotlights": "tasks.memory_gym.searing_spotlights",
    "gymnasium_adapter": "interop.gymnasium_adapter", "gymnax_adapter": "interop.gymnax_adapter",
    "command_line": "tools.command_line", "human_render": "tools.human_render", "video": "tools.video",
}  # fmt: skip
for _former, _current in FORMER_PATHS.items():
    _module = importlib.import_module(f"{__name__}.{_current}")
    sys.modules.setdefault(f"{__name__}.{_former}", _module)
    if "." not in _former:
        globals().setdefault(_former, _module)
del _former, _current, _module

__all__ = [
    "NAMESPACE",
    "NO_TIME_LIMIT",
    "EnvParams",
    "EnvState",
    "Environment",
    "make",
    "register",
    "registered_ids",
    "spaces",
    "spec",
    "wrappers",
]
