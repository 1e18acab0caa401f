"""Agents: actor-critic networks (encoder -> memory module -> heads), the context editor of the
context-editing tasks, and their action distributions. ``make(name, observation_space, action_space,
...)`` builds one by name (``names()`` lists them)."""

from mnemax.agents import distributions
from mnemax.agents.actor_critic import ActorCritic, action_sizes, make_actor_critic
from mnemax.agents.context_editor import ContextEditor, greedy_curator, make_context_editor
from mnemax.agents.encoders import CNNEncoder, MLPEncoder, TokenEncoder, encoder_for
from mnemax.agents.registry import make, names

__all__ = [
    "ActorCritic",
    "CNNEncoder",
    "ContextEditor",
    "MLPEncoder",
    "TokenEncoder",
    "action_sizes",
    "distributions",
    "encoder_for",
    "greedy_curator",
    "make",
    "make_actor_critic",
    "make_context_editor",
    "names",
]
