"""Agents: actor-critic networks (encoder -> memory module -> heads) and their action distributions."""

from mnemax.agents import distributions
from mnemax.agents.actor_critic import ActorCritic, action_sizes, make_actor_critic
from mnemax.agents.encoders import CNNEncoder, MLPEncoder, TokenEncoder, encoder_for

__all__ = [
    "ActorCritic",
    "CNNEncoder",
    "MLPEncoder",
    "TokenEncoder",
    "action_sizes",
    "distributions",
    "encoder_for",
    "make_actor_critic",
]
