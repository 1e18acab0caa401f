"""mnemax environments: pure-JAX memory tasks with a gymnax-style functional API and gymnasium ids.

    import mnemax.envs
    env, params = mnemax.envs.make("mnemax/TMaze-Passive-v0", corridor_length=100)
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

Importing this package registers every id with gymnasium (``gymnasium.make("mnemax/TMaze-Passive-v0")``).
"""

from mnemax.envs import spaces, wrappers
from mnemax.envs.environment import Environment, EnvParams, EnvState
from mnemax.envs.registration import NAMESPACE, make, register, registered_ids, spec
from mnemax.envs.tmaze import TMaze

for _length in (10, 100, 1000):
    _suffix = "" if _length == 10 else f"-L{_length}"
    register(f"TMaze-Passive{_suffix}-v0", TMaze, f"passive T-Maze, corridor {_length}", corridor_length=_length)
    register(
        f"TMaze-Active{_suffix}-v0", TMaze, f"active T-Maze, corridor {_length}", corridor_length=_length, active=True
    )

__all__ = [
    "NAMESPACE",
    "EnvParams",
    "EnvState",
    "Environment",
    "TMaze",
    "make",
    "register",
    "registered_ids",
    "spaces",
    "spec",
    "wrappers",
]
