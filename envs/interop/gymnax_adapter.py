"""Run mnemax environments in libraries written for gymnax.

mnemax's ``reset(key, params)`` and ``step(key, state, action, params)`` have gymnax's signatures, and
its spaces carry gymnax's attributes (``n``, ``shape``, ``dtype``, ``low``, ``high``, ``sample``,
``contains``). Code written for gymnax 1.x (``step`` returns ``terminated`` and ``truncated``) takes a
mnemax environment as it is. Code written for gymnax 0.0.x, whose ``step`` returns one ``done`` flag,
takes it through :class:`GymnaxAdapter`::

    env, params = mnemax.envs.make("mnemax/TMaze-Passive-v0")
    env = GymnaxAdapter(env)                    # step -> (obs, state, reward, done, info)
    obs, state = env.reset(key, params)
    obs, state, reward, done, info = env.step(key, state, action, params)
"""

from __future__ import annotations

from mnemax.envs.core.wrappers import Wrapper


class GymnaxAdapter(Wrapper):
    """gymnax 0.0.x's five-tuple ``step``; ``info`` keeps ``terminated`` and ``truncated`` apart."""

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = dict(info, terminated=terminated, truncated=truncated)
        return obs, state, reward, terminated | truncated, info

    @property
    def num_actions(self) -> int:
        return self._env.action_space(self._env.default_params).n
