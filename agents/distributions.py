"""Categorical distributions over one or several discrete action components.

Logits have shape ``[..., K, N]``: K independent components (K = 1 for a ``Discrete`` action space,
``len(nvec)`` for ``MultiDiscrete``), each with up to N choices. Components with fewer than N choices
are padded with :data:`PAD_LOGIT`, whose probability underflows to exactly zero. Actions have shape
``[..., K]``; log-probabilities and entropies sum over the components.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PAD_LOGIT = -1e9


def sample(key: jax.Array, logits: jax.Array) -> jax.Array:
    """Draw actions ``[..., K]`` (int32)."""
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def mode(logits: jax.Array) -> jax.Array:
    """The most likely actions ``[..., K]`` (the greedy policy)."""
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def component_log_probs(logits: jax.Array, actions: jax.Array) -> jax.Array:
    """``log pi_k(actions_k)`` ``[..., K]``, one per component."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logp, actions[..., None], axis=-1)[..., 0]


def log_prob(logits: jax.Array, actions: jax.Array) -> jax.Array:
    """``log pi(actions)`` ``[...]``, summed over components."""
    return component_log_probs(logits, actions).sum(-1)


def entropy(logits: jax.Array) -> jax.Array:
    """Entropy ``[...]``, summed over components."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -(jnp.exp(logp) * logp).sum(axis=(-2, -1))


def _real_log_probs(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(log pi, real)``, each ``[..., K, N]``: the log-probabilities with padded choices set to 0 (a value no
    real choice's log-probability exceeds), and the mask of the real choices."""
    real = logits > PAD_LOGIT / 2
    return jnp.where(real, jax.nn.log_softmax(logits, axis=-1), 0.0), real


def mean_log_prob(logits: jax.Array) -> jax.Array:
    """``mean_a log pi(a)`` over each component's real (unpadded) choices ``[...]``, summed over components.

    Its gradient with respect to the logit of choice ``b`` is ``1/n - pi(b)``: unlike the entropy's
    ``-pi(b) (log pi(b) + H)``, it does not vanish as ``pi(b) -> 0``. Maximising it is minimising
    ``KL(uniform || pi)``, a log barrier that keeps every action's probability away from zero.
    """
    logp, real = _real_log_probs(logits)
    return (logp.sum(-1) / real.sum(-1)).sum(-1)


def min_prob(logits: jax.Array) -> jax.Array:
    """The probability of the least likely real choice ``[...]``, the smallest over components."""
    logp, _ = _real_log_probs(logits)
    return jnp.exp(logp.min(axis=(-2, -1)))
