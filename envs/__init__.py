"""mnemax environments: pure-JAX memory tasks with a gymnax-style functional API and gymnasium ids.

    import mnemax.envs
    env, params = mnemax.envs.make("mnemax/TMaze-Passive-v0", corridor_length=100)
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

Importing this package registers every id with gymnasium (``gymnasium.make("mnemax/TMaze-Passive-v0")``).
"""

from mnemax.envs import spaces, wrappers
from mnemax.envs.environment import NO_TIME_LIMIT, Environment, EnvParams, EnvState
from mnemax.envs.registration import NAMESPACE, make, register, registered_ids, spec

# Each task family registers its ids when imported.
from mnemax.envs import tmaze  # noqa: E402  isort: skip
from mnemax.envs import memory_gym  # noqa: E402  isort: skip
from mnemax.envs import ballet, object_permanence  # noqa: E402  isort: skip
from mnemax.envs import context_edit  # noqa: E402  isort: skip
from mnemax.envs import diagnostics  # noqa: E402  isort: skip

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
