"""Build agents by name: ``mnemax.agents.make("actor_critic", observation_space, action_space, memory="gru")``.

An agent is a flax module that acts and learns through one call,

    carry = agent.initialize_carry(batch_size)
    carry, logits, value = agent.apply(params, carry, obs, resets)
    # obs [T, B, *obs_shape], resets [T, B] (True where an episode starts),
    # logits [T, B, K, N] (see mnemax.agents.distributions), value [T, B]

built for a task's spaces by a factory ``(observation_space, action_space, *, hidden_size, memory,
memory_config, **fields)``. ``memory`` names a memory module (``mnemax.memory_modules.names()``, or
``"none"``) with ``memory_config`` its fields; an agent whose memory is something else (the context
editor's is its context) ignores both. The factory's other keyword arguments are the agent's own fields
(``agent_config`` of the trainers). Adding an agent is its module and one line in :data:`AGENTS`.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn

from mnemax.agents.actor_critic import make_actor_critic
from mnemax.agents.context_editor import make_context_editor
from mnemax.envs.core import spaces

AgentFactory = Callable[..., nn.Module]

AGENTS: dict[str, AgentFactory] = {
    "actor_critic": make_actor_critic,
    "context_editor": make_context_editor,
}

# What every factory takes; the rest of its keyword arguments are the agent's own fields.
_SPACES = ("observation_space", "action_space")
_SHARED = ("hidden_size", "memory", "memory_config")


def names() -> list[str]:
    """Names accepted by :func:`make`."""
    return sorted(AGENTS)


def fields(name: str) -> list[str]:
    """The fields of agent ``name`` that ``make`` takes besides the spaces and the shared settings."""
    parameters = inspect.signature(_factory(name)).parameters
    return [p for p in parameters if p not in _SPACES + _SHARED]


def make(
    name: str,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    *,
    hidden_size: int = 128,
    memory: str = "none",
    memory_config: Mapping[str, Any] | None = None,
    **agent_fields: Any,
) -> nn.Module:
    """The agent ``name`` for these spaces, of width ``hidden_size``, with ``memory`` (if it keeps one).

    Raises:
        ValueError: for an unknown name (listing close matches), a field the agent does not have, or
            spaces, a memory or sizes the agent cannot work with.
    """
    factory = _factory(name)
    unknown = sorted(set(agent_fields) - set(fields(name)))
    if unknown:
        known = ", ".join(fields(name)) or "none"
        raise ValueError(f"unknown {name.replace('_', ' ')} field(s) {unknown}; known: {known}")
    return factory(
        observation_space, action_space, hidden_size=hidden_size, memory=memory,
        memory_config=dict(memory_config or {}), **agent_fields,
    )  # fmt: skip


def _factory(name: str) -> AgentFactory:
    if name not in AGENTS:
        close = difflib.get_close_matches(name, names(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown agent {name!r}.{hint} Known: {', '.join(names())}")
    return AGENTS[name]
