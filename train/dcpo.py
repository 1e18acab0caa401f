"""Dynamic Context Policy Optimization (DCPO), the trainer of "Memory as Action" (Zhang et al. 2025).

An agent that edits its own context breaks the trajectory into pieces: after an edit it sees a context
that is not the previous one plus what came since. DCPO splits each trajectory at these memory-action
points into *segments*, gives every action of a trajectory one trajectory-level advantage (its return
normalised within a group of rollouts of the same task instance, as in GRPO), and trains the clipped
PPO surrogate over the actions of all segments, each evaluated on the context its segment saw.

How this trainer does it (``DCPOConfig(group_size=G)``, ``mnemax-train dcpo``; one seed, like PPO):

* **Groups.** ``num_envs`` environments form ``num_envs / G`` groups of ``G`` consecutive copies. Every
  update resets copy ``i`` with the key of group ``i // G``, so a group plays one task instance (for the
  context-editing tasks: one item stream; step keys still differ, so a stochastic task may diverge).
* **One episode per copy and update.** The rollout is ``num_steps`` long; the steps after a copy's
  first episode ended (it auto-resets into an episode outside its group) are masked out. Set
  ``num_steps`` to the episode length (``stream_length`` for the context-editing tasks); an episode
  still running when the rollout ends is scored by the rewards it collected so far.
* **Advantage.** ``A_i = (R_i - mean_group R) / (std_group R + eps)`` for every step of trajectory ``i``,
  ``R_i`` its undiscounted return. No value function and no GAE (the agent's value head goes untrained).
* **Segments.** A step whose ``info["edited"]`` is True (the action changed the context) ends its
  segment; step ``t`` belongs to segment number "edits strictly before ``t``" of its trajectory, so the
  step that makes an edit belongs to the segment whose context it was chosen on. ``edited`` is the one
  key of ``info`` DCPO asks the tasks for (it arrives in ``Transition.extras``); tasks without it give
  one segment per trajectory.
* **Loss.** Per step, the clipped surrogate ``min(r A, clip(r, 1 - eps, 1 + eps) A)`` with ``r`` the ratio
  to the behaviour policy's stored log-probability, plus ``ent_coef`` times the entropy. Aggregation is
  per segment: a step weighs ``1 / len(its segment)`` and the minibatch loss is divided by its number of
  segments, so every segment counts once whatever its length. ``update_epochs`` passes over
  ``num_minibatches`` minibatches of whole trajectories (PPO's minibatching).

What the segmentation changes here, and what it does not. With a language model the context is a token
prefix, and a single forward pass over an edited trajectory would score later tokens on a prefix the
model never saw; DCPO therefore re-encodes each segment on its own context. In mnemax the context is part
of every observation, and the policy is re-evaluated step by step on the stored observations (the
context editor has no state besides them; a recurrent agent replays from its stored carries), so the
per-step log-probabilities are already those of the context actually seen: running each segment through
the network separately would produce the same numbers. What segmentation does change is the weighting.
Plain per-step averaging lets long stretches without edits dominate the gradient; segment-level
averaging gives every context the agent produced one vote. With a single segment per trajectory (and
equal lengths) the loss is exactly PPO's clipped surrogate with the group-normalised advantages.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from mnemax.agents import distributions
from mnemax.envs.core import wrappers
from mnemax.train.config import TrainConfig, option
from mnemax.train.on_policy import (
    OnPolicy, RunnerState, Transition, approx_kl, clipped_objective, episode_metrics,
)  # fmt: skip


@dataclasses.dataclass(frozen=True, kw_only=True)
class DCPOConfig(TrainConfig):
    """Train with Dynamic Context Policy Optimization (DCPO): every update plays one episode in each
    environment, `group_size` of them on the same task instance, and trains the clipped surrogate on
    group-normalised episode returns, segment by segment (no value function and no GAE). Make
    `num_steps` the episode length."""

    algo: ClassVar[str] = "dcpo"

    group_size: int = option(8, ge=2)
    """episodes per group (same reset key); `num_envs` must be a multiple of it (at least 2: DCPO compares
    the episodes of a group)"""

    def validate(self, num_devices: int = 1) -> None:
        super().validate(num_devices)
        if self.num_envs % self.group_size:
            raise ValueError(f"num_envs ({self.num_envs}) must be a multiple of group_size ({self.group_size})")
        if self.reset_pool:
            raise ValueError(
                "reset_pool must be 0 for dcpo: every update starts each group's episodes from one shared "
                "reset key, and only those first episodes are trained on"
            )


class Segments(NamedTuple):
    """The segment structure of a rollout ``[T, N]`` (time, environment copies)."""

    valid: jax.Array  # bool: the step belongs to the copy's first (grouped) episode
    segment: jax.Array  # int32: the step's segment within its trajectory (0, 1, ...), -1 where not valid
    weight: jax.Array  # float32: 1 / length of the step's segment, 0 where not valid


def first_episode(done: jax.Array) -> jax.Array:
    """``bool[T, N]``: the steps up to and including each copy's first episode end."""
    ended_before = jnp.cumsum(done, axis=0) - done
    return ended_before == 0


def segments(edited: jax.Array, valid: jax.Array) -> Segments:
    """Split every trajectory (a column of ``[T, N]``) into segments that end at the edited steps."""
    steps, copies = edited.shape
    edited = edited & valid
    segment = jnp.where(valid, jnp.cumsum(edited, axis=0) - edited, -1).astype(jnp.int32)
    flat_id = (jnp.maximum(segment, 0) + steps * jnp.arange(copies)).ravel()  # unique per (copy, segment)
    lengths = jax.ops.segment_sum(valid.ravel().astype(jnp.float32), flat_id, num_segments=steps * copies)
    weight = jnp.where(valid, 1.0 / jnp.maximum(lengths[flat_id].reshape(steps, copies), 1.0), 0.0)
    return Segments(valid, segment, weight)


def group_advantages(returns: jax.Array, group_size: int, eps: float = 1e-4) -> jax.Array:
    """``(R - mean_group R) / (std_group R + eps)`` for returns ``[N]`` in groups of ``group_size``
    consecutive entries.

    ``eps`` keeps float rounding from passing for a difference: returns of the same outcome summed over
    steps in another order (an occupied slot paid for earlier or later) differ by ~1e-7 (a std of 3e-7
    for groups of 8 over 160 steps, simulated in float32), which ``eps = 1e-6`` turned into advantages of
    ~0.25; at ``1e-4`` (as TRL's GRPO) they are ~0.003, while one slot-step of cost (0.005) still counts
    fully."""
    grouped = returns.reshape(-1, group_size)
    mean = grouped.mean(axis=1, keepdims=True)
    std = grouped.std(axis=1, keepdims=True)
    return ((grouped - mean) / (std + eps)).reshape(returns.shape)


def group_keys(key: jax.Array, num_envs: int, group_size: int) -> jax.Array:
    """Reset keys ``[num_envs, ...]``: one key per group, repeated for its ``group_size`` copies."""
    return jnp.repeat(jax.random.split(key, num_envs // group_size), group_size, axis=0)


class DCPO(OnPolicy):
    """The environment, agent and jitted update of DCPO for one :class:`DCPOConfig` (one seed).

    It shares the set-up (environment, agent, optimizer, ``init``), the rollout and the minibatching of
    every on-policy algorithm, and brings its own grouped resets, advantages and loss.
    """

    Config = DCPOConfig
    info_extras = {"edited": False}  # where a task reports no edits, every trajectory is one segment

    def __init__(self, config: DCPOConfig, num_devices: int = 1):
        super().__init__(config, num_devices)
        self.episode_env = wrappers.EpisodeStatistics(self.env)

    def group_rollout(self, runner: RunnerState):
        """Reset every copy with its group's key, then roll out ``num_steps`` steps (see
        :meth:`OnPolicy.rollout` for what comes back)."""
        c = self.config
        key, reset_key = jax.random.split(runner.key)
        keys = group_keys(reset_key, c.num_envs, c.group_size)
        env_params = self.training_env_params(runner.update)
        obs, env_state = jax.vmap(self.episode_env.reset, in_axes=(0, None))(keys, env_params)
        carry = self.network.initialize_carry(c.num_envs)
        reset = jnp.ones(c.num_envs, bool)
        return self.rollout(runner.replace(env_state=env_state, obs=obs, carry=carry, reset=reset, key=key))

    def loss(self, params, batch):
        """The segment-level clipped surrogate (to be minimised) of a minibatch ``(carries, transitions,
        (advantages, segment weights))``, the last two per step (see :class:`Segments`)."""
        carries, t, (adv, weight) = batch
        _, logits, _ = self.network.apply(params, carries, t.obs, t.reset)
        log_prob = distributions.log_prob(logits, t.action)
        objective, ratio = clipped_objective(log_prob, t.log_prob, adv, self.config.clip_eps)
        count = jnp.maximum(weight.sum(), 1e-8)  # the segments in the minibatch
        mean = lambda x: (x * weight).sum() / count  # noqa: E731
        policy_loss = -mean(objective)
        entropy = mean(distributions.entropy(logits))
        stats = {
            "policy_loss": policy_loss,
            "entropy": entropy,
            "approx_kl": mean(approx_kl(log_prob, t.log_prob)),
            "clip_fraction": mean(jnp.abs(ratio - 1.0) > self.config.clip_eps),
        }
        kickstart = self.kickstart_loss(logits, t)
        if self.config.kickstart_coef:
            stats["kickstart_loss"] = kickstart
        return policy_loss - self.config.ent_coef * entropy + kickstart, stats

    def prepare(self, transitions: Transition) -> tuple[Segments, jax.Array, jax.Array]:
        """Segments, per-trajectory returns ``[N]`` and per-step advantages ``[T, N]`` of a flat rollout."""
        valid = first_episode(transitions.done)
        seg = segments(transitions.extras["edited"], valid)
        returns = jnp.sum(transitions.reward * valid, axis=0)
        adv = group_advantages(returns, self.config.group_size)[None, :] * valid
        return seg, returns, adv

    def update(self, runner: RunnerState):
        """One DCPO update for one seed: grouped rollout, segments and advantages, ``update_epochs``
        passes over the minibatches."""
        c = self.config
        runner, carries, transitions = self.group_rollout(runner)
        seg, returns, adv = self.prepare(self.flat(transitions))
        runner, stats = self.optimize(runner, carries, transitions, self.windowed((adv, seg.weight)))
        first = transitions._replace(episode_done=transitions.episode_done & self.windowed(seg.valid))
        num_segments = seg.weight.sum()
        stats |= {
            "segments_per_episode": num_segments / c.num_envs,
            "steps_per_segment": seg.valid.sum() / num_segments,
            "group_return_std": returns.reshape(-1, c.group_size).std(axis=1).mean(),
            "unfinished_episodes": 1.0 - first.episode_done.sum() / c.num_envs,
        }
        return runner, {**stats, **episode_metrics(first)}
