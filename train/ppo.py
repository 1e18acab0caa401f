"""Recurrent PPO: generalized advantage estimates from a value head, the clipped surrogate, a clipped
value loss, and the exploration terms of the recipe for long memory tasks (an entropy bonus and a
per-episode log barrier). The rollout, minibatching and epochs are :class:`~mnemax.train.on_policy.OnPolicy`'s.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import optax

from mnemax import envs
from mnemax.agents import distributions
from mnemax.agents.actor_critic import parameter_branches, reconstruction_loss
from mnemax.agents.encoders import INITS
from mnemax.envs.core.rarely import rarely_rows
from mnemax.train.config import ADVANTAGE_NORMS, DEFAULT_ALGORITHM, TrainConfig, option
from mnemax.train.on_policy import (
    OnPolicy, RunnerState, Transition, approx_kl, clipped_objective, episode_metrics, time_major,
)  # fmt: skip


@dataclasses.dataclass(frozen=True, kw_only=True)
class PPOConfig(TrainConfig):
    """Train with PPO (the default algorithm): generalized advantage estimates from a value head and the
    clipped surrogate; the whole update (rollout, advantages, all epochs) is one jitted function."""

    algo: ClassVar[str] = DEFAULT_ALGORITHM

    gamma: float = option(0.99, ge=0.0, le=1.0)
    gae_lambda: float = option(0.95, ge=0.0, le=1.0)
    barrier_coef: float = option(0.0, ge=0.0)
    """log-barrier exploration, per episode: adds `barrier_coef / T * mean_a log pi(a|s)` (= -KL(uniform ||
    pi) / T + const) to the objective, T the mean episode length. Unlike the entropy bonus, its pull on an
    action does not fade as the action's probability goes to zero, so no action's probability collapses;
    dividing by T keeps the exploration per episode the same for short and long episodes"""
    advantage_norm: str = option("minibatch", choices=ADVANTAGE_NORMS)
    """normalise advantages per `minibatch`, over the whole `batch` of a rollout, or `none`"""
    separate_critic: bool = False
    """give the value head an encoder and memory of its own (no shared trunk) and clip the gradients of
    the policy and the value branch separately, so that the value loss cannot use up the clip budget"""
    linear_heads: bool = False
    """policy and value heads are single linear layers on the memory output; otherwise each has one hidden
    ReLU layer"""
    weight_init: str = option("orthogonal", choices=INITS)
    """how the encoder's and heads' weights start: `orthogonal` (gain sqrt(2), 0.01 for the policy head, 1
    for the value head: CleanRL's convention) or `lecun` (LeCun normal, flax's default and memorax's; the
    `tmaze` and `diagnostics` presets use it); the memory modules keep their own initialisation"""
    vf_coef: float = option(0.5, ge=0.0)
    aux_reconstruction: float = option(0.0, ge=0.0)
    """weight of an observation-reconstruction loss (Pleines et al. 2024): a decoder from the memory output
    back to the observation (transposed convolutions for images, binary cross-entropy; a linear layer for
    vectors, squared error), which pushes the memory to keep what the observations showed"""
    skip_ignored_actions: bool = False
    """leave the steps whose action the task ignores (`info["phase"] == 0`: Ballet's and Object
    Permanence's watching phase) out of the policy loss, the advantage normalisation and the exploration
    terms: their actions change nothing, so their gradients are noise"""
    bootstrap_truncated: bool = True
    """bootstrap from the value of the final observation when an episode is truncated (not terminated)"""

    def agent_fields(self) -> dict[str, Any]:
        """``agent_config``, and the actor-critic's switches that PPO offers as flags where they are on (an
        agent without them then refuses them instead of ignoring them)."""
        switches = {
            "separate_critic": self.separate_critic,
            "linear_heads": self.linear_heads,
            "reconstruction": self.aux_reconstruction > 0,
        }
        fields = {name: True for name, on in switches.items() if on}
        if self.weight_init != "orthogonal":
            fields["weight_init"] = self.weight_init
        return {**super().agent_fields(), **fields}


class PPO(OnPolicy):
    """The environment, agent and jitted update of PPO for one :class:`PPOConfig` (one seed)."""

    Config = PPOConfig
    info_extras = {"phase": 1}  # tasks without a watching phase: every action counts

    def __init__(self, config: PPOConfig, num_devices: int = 1):
        super().__init__(config, num_devices)
        # Fold the value of a truncated episode's last observation into its last reward (see
        # stored_reward); tasks whose time limit is out of reach (they end their episodes themselves) skip
        # even the per-step check of which envs were truncated.
        trained = (self.env_params, self.eval_env_params) if config.curriculum_updates else (self.env_params,)
        self.bootstrap_truncated = config.bootstrap_truncated and any(map(can_truncate, trained))

    def gradient_clipping(self) -> optax.GradientTransformation:
        """With a separate critic, the policy's and the value branch's gradients are clipped apart (as if
        each had an optimizer of its own)."""
        if not self.config.separate_critic:
            return super().gradient_clipping()
        clip = {branch: optax.clip_by_global_norm(self.config.max_grad_norm) for branch in ("actor", "critic")}
        return optax.multi_transform(clip, parameter_branches)

    def stored_reward(self, params, next_carry, reward, truncated, info) -> jax.Array:
        """The reward plus, for a truncated episode, the discounted value of its last observation, so that
        GAE can treat every episode end alike."""
        if not self.bootstrap_truncated:
            return reward
        network = self.network

        def final_values(params, carry, obs):  # [n] for a batch of n envs, one step
            resets = jnp.zeros((1, jax.tree_util.tree_leaves(obs)[0].shape[0]), bool)
            return network.apply(params, carry, time_major(obs), resets)[2][0]

        # Only the envs cut by the time limit at this step need the value, and few are (`rarely_rows`): a
        # network call for every env at every step took 39% of TrXL's acting on symbolic Mystery Path Grid.
        no_value = jnp.zeros(truncated.shape, jnp.float32)
        value = rarely_rows(truncated, final_values, no_value, next_carry, info["final_obs"], shared=params)
        return reward + self.config.gamma * value * truncated

    def advantages(self, transitions: Transition, last_value: jax.Array):
        """GAE over the flat rollout ``[T, N]``: ``(advantages, value targets)``, each ``[T, N]``."""
        c = self.config

        def body(carry, t):
            gae, next_value = carry
            not_done = 1.0 - t.done
            delta = t.reward + c.gamma * next_value * not_done - t.value
            gae = delta + c.gamma * c.gae_lambda * not_done * gae
            return (gae, t.value), gae

        _, adv = jax.lax.scan(body, (jnp.zeros_like(last_value), last_value), transitions, reverse=True)
        return adv, adv + transitions.value

    def acted_steps(self, t: Transition) -> jax.Array | None:
        """With ``skip_ignored_actions``, where the task used the action (``[T, N]`` bool); else None (every
        step counts)."""
        return (t.extras["phase"] > 0) if self.config.skip_ignored_actions else None

    def loss(self, params, batch):
        """The PPO loss of a minibatch ``(carries, transitions, (advantages, value targets))``."""
        c = self.config
        carries, t, (adv, targets) = batch
        if c.aux_reconstruction > 0:
            (_, logits, value), sown = self.network.apply(params, carries, t.obs, t.reset, mutable=["intermediates"])
            reconstruction = reconstruction_loss(sown["intermediates"]["reconstruction"][0], t.obs)
        else:
            _, logits, value = self.network.apply(params, carries, t.obs, t.reset)
        log_prob = distributions.log_prob(logits, t.action)
        acted = self.acted_steps(t)
        if c.advantage_norm == "minibatch":
            adv = normalize(adv, acted)
        objective, ratio = clipped_objective(log_prob, t.log_prob, adv, c.clip_eps)
        policy_loss = -masked_mean(objective, acted)
        value_clipped = t.value + jnp.clip(value - t.value, -c.clip_eps, c.clip_eps)
        value_loss = 0.5 * jnp.maximum((value - targets) ** 2, (value_clipped - targets) ** 2).mean()
        entropy = masked_mean(distributions.entropy(logits), acted)
        # The barrier is budgeted per episode: in a task where one wrong step loses the episode, the
        # exploration it buys must shrink with the episode's length (as epsilon = 1 / T in Ni et al. 2023).
        barrier = masked_mean(distributions.mean_log_prob(logits), acted) / mean_episode_length(t)
        kickstart = self.kickstart_loss(logits, t)
        total = policy_loss + c.vf_coef * value_loss - c.ent_coef * entropy - c.barrier_coef * barrier + kickstart
        stats = {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "min_prob": distributions.min_prob(logits).mean(),
            "approx_kl": approx_kl(log_prob, t.log_prob).mean(),
            "clip_fraction": (jnp.abs(ratio - 1.0) > c.clip_eps).mean(),
        }
        if c.kickstart_coef:
            stats["kickstart_loss"] = kickstart
        if c.aux_reconstruction > 0:
            total = total + c.aux_reconstruction * reconstruction
            stats["reconstruction_loss"] = reconstruction
        return total, stats

    def update(self, runner: RunnerState):
        """One PPO update for one seed: rollout, GAE, ``update_epochs`` passes over the minibatches."""
        runner, carries, transitions = self.rollout(runner)
        _, _, last_value = self.network.apply(
            runner.train_state.params, runner.carry, time_major(runner.obs), runner.reset[None]
        )
        flat = self.flat(transitions)
        adv, targets = self.advantages(flat, last_value[0])
        if self.config.advantage_norm == "batch":
            adv = normalize(adv, self.acted_steps(flat))
        runner, stats = self.optimize(runner, carries, transitions, self.windowed((adv, targets)))
        return runner, {**stats, **episode_metrics(transitions)}


def can_truncate(env_params) -> bool:
    """Whether the environment's time limit can end an episode (``NO_TIME_LIMIT`` means it cannot)."""
    return int(env_params.max_steps_in_episode) < envs.NO_TIME_LIMIT


def normalize(x: jax.Array, where: jax.Array | None = None) -> jax.Array:
    """Zero mean and unit standard deviation over all entries (over those ``where`` is True, if given)."""
    if where is None:
        return (x - x.mean()) / (x.std() + 1e-8)
    mean = masked_mean(x, where)
    return (x - mean) / (jnp.sqrt(masked_mean((x - mean) ** 2, where)) + 1e-8)


def masked_mean(x: jax.Array, where: jax.Array | None) -> jax.Array:
    """The mean of ``x`` over the entries ``where`` is True (all of them if ``where`` is None); 0 where there
    are none."""
    if where is None:
        return x.mean()
    return (x * where).sum() / jnp.maximum(where.sum(), 1)


def mean_episode_length(t: Transition) -> jax.Array:
    """The mean length of the episodes that end in ``t`` (``[T, N]``), or ``T`` where none ends."""
    ended = t.episode_done.astype(jnp.float32)
    count = ended.sum()
    return jnp.where(count > 0, (t.episode_length * ended).sum() / jnp.maximum(count, 1.0), t.done.shape[0])
