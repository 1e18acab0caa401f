"""Recurrent PPO in which a whole update -- rollout, GAE and every epoch of minibatch updates -- is one
jitted function (PureJaxRL style), and several updates run in one ``lax.scan`` between log points.

Memory agents are trained on whole sequences: the rollout of ``num_steps`` steps is cut into windows of
``bptt_length`` steps, the memory carry at the start of every window is stored during the rollout, and
the update re-runs the memory over each window from its stored carry (truncated back-propagation
through time; for transformer memories the carry is the cached window of past steps). Episode
boundaries inside a window are handled by the memory's reset mask.

Minibatches are drawn so that the result does not depend on how many devices share the batch: the
environments are cut into blocks of ``num_minibatches`` consecutive copies and every minibatch takes
one random copy of each block. With the batch sharded over devices in whole blocks, forming a
minibatch never moves data between devices.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training.train_state import TrainState

from mnemax import envs, memory_modules
from mnemax.agents import distributions, make_actor_critic, make_context_editor
from mnemax.agents.actor_critic import parameter_branches
from mnemax.envs.core import spaces, wrappers
from mnemax.train.config import PPOConfig


class Transition(NamedTuple):
    obs: Any
    action: jax.Array  # [..., K]
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array  # the episode ended after this step
    edited: jax.Array  # the agent's action changed its context (``info["edited"]``; False where a task has none)
    reset: jax.Array  # an episode started at this step (the memory's reset mask)
    episode_done: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    episode_success: jax.Array


@struct.dataclass
class RunnerState:
    """Everything that changes during training; saving it is enough to resume bit-for-bit."""

    train_state: TrainState
    env_state: Any  # [N, ...]
    obs: Any  # [N, ...]
    carry: Any  # [N, ...] memory carry before the next step
    reset: jax.Array  # [N] the next step starts an episode
    key: jax.Array
    update: jax.Array  # updates done so far


# Fields of RunnerState that hold one entry per environment copy (sharded over devices).
PER_ENV_FIELDS = ("env_state", "obs", "carry", "reset")


class PPO:
    """Builds the environment, the agent and the jitted update functions for one :class:`PPOConfig`.

    All functions here treat one seed; :mod:`mnemax.train.loop` vmaps them over seeds and shards
    them over devices.
    """

    def __init__(self, config: PPOConfig, num_devices: int = 1):
        config.validate(num_devices)
        self.config = config
        env, self.env_params = envs.make(config.env, **config.env_params)
        if config.prev_action_reward:
            env = wrappers.PreviousActionReward(env)
        self.env = env
        self.vec_env = wrappers.Vmap(wrappers.EpisodeStatistics(env), config.num_envs)
        self.observation_space = env.observation_space(self.env_params)
        self.action_space = env.action_space(self.env_params)
        self.network = make_network(config, self.observation_space, self.action_space)
        self._discrete = isinstance(self.action_space, spaces.Discrete)
        # Fold the value of a truncated episode's last observation into its last reward (see _env_step).
        # `truncated` is traced, so the extra network call would run at every step: skip it for tasks
        # whose time limit is out of reach (they end their episodes themselves).
        self.bootstrap_truncated = config.bootstrap_truncated and can_truncate(self.env_params)
        self.optimizer = self._make_optimizer()  # one instance: it is part of the state's tree structure

    # ------------------------------------------------------------------ set-up
    def _make_optimizer(self) -> optax.GradientTransformation:
        """Adam after global-norm clipping; with a separate critic the policy's and the value branch's
        gradients are clipped apart (as if each had an optimizer of its own)."""
        c = self.config
        steps = c.num_updates * c.update_epochs * c.num_minibatches
        lr = optax.linear_schedule(c.learning_rate, 0.0, steps) if c.anneal_lr else c.learning_rate
        adam = optax.adam(lr, eps=1e-5)
        if not c.separate_critic:
            return optax.chain(optax.clip_by_global_norm(c.max_grad_norm), adam)
        clip = {branch: optax.clip_by_global_norm(c.max_grad_norm) for branch in ("actor", "critic")}
        return optax.chain(optax.multi_transform(clip, parameter_branches), adam)

    def init(self, key: jax.Array) -> RunnerState:
        """A fresh run for one seed."""
        c = self.config
        key, net_key, env_key = jax.random.split(key, 3)
        obs, env_state = self.vec_env.reset(env_key, self.env_params)
        carry = self.network.initialize_carry(c.num_envs)
        reset = jnp.ones(c.num_envs, bool)
        params = self.network.init(net_key, carry, time_major(obs), reset[None])
        train_state = TrainState.create(apply_fn=self.network.apply, params=params, tx=self.optimizer)
        return RunnerState(train_state, env_state, obs, carry, reset, key, jnp.int32(0))

    def env_action(self, action: jax.Array) -> jax.Array:
        """Agent actions ``[..., K]`` in the environment's format."""
        return action[..., 0] if self._discrete else action

    # ------------------------------------------------------------------ rollout
    def _env_step(self, params, state, key):
        """One acting step of all environment copies."""
        env_state, obs, carry, reset = state
        act_key, step_key = jax.random.split(key)
        next_carry, logits, value = self.network.apply(params, carry, time_major(obs), reset[None])
        logits, value = logits[0], value[0]
        action = distributions.sample(act_key, logits)
        next_obs, env_state, reward, terminated, truncated, info = self.vec_env.step(
            step_key, env_state, self.env_action(action), self.env_params
        )
        if self.bootstrap_truncated:
            # Fold the value of the truncated episode's last observation into its reward, so GAE can
            # treat every episode end alike.
            _, _, final_value = self.network.apply(
                params, next_carry, time_major(info["final_obs"]), jnp.zeros_like(reset)[None]
            )
            reward = reward + self.config.gamma * final_value[0] * truncated
        done = terminated | truncated
        transition = Transition(
            obs=obs,
            action=action,
            log_prob=distributions.log_prob(logits, action),
            value=value,
            reward=reward,
            done=done,
            edited=info.get("edited", jnp.zeros_like(done)),
            reset=reset,
            episode_done=info["returned_episode"],
            episode_return=info["returned_episode_return"],
            episode_length=info["returned_episode_length"],
            episode_success=info["returned_episode_success"],
        )
        return (env_state, next_obs, next_carry, done), transition

    def rollout(self, runner: RunnerState):
        """``num_steps`` steps: transitions ``[C, L, N, ...]`` and the carries at window starts ``[C, N, ...]``
        (``C`` windows of ``L = bptt_length`` steps)."""
        c = self.config
        params = runner.train_state.params

        def window(state, key):
            carry_at_start = state[2]
            step = lambda s, k: self._env_step(params, s, k)  # noqa: E731
            state, transitions = jax.lax.scan(step, state, jax.random.split(key, c.sequence_length))
            return state, (carry_at_start, transitions)

        key, rollout_key = jax.random.split(runner.key)
        num_windows = c.num_steps // c.sequence_length
        state = (runner.env_state, runner.obs, runner.carry, runner.reset)
        state, (carries, transitions) = jax.lax.scan(window, state, jax.random.split(rollout_key, num_windows))
        env_state, obs, carry, reset = state
        runner = runner.replace(env_state=env_state, obs=obs, carry=carry, reset=reset, key=key)
        return runner, carries, transitions

    # ------------------------------------------------------------------ learning
    def advantages(self, transitions: Transition, last_value: jax.Array):
        """GAE over the flattened rollout ``[T, N]``."""
        c = self.config

        def body(carry, t):
            gae, next_value = carry
            not_done = 1.0 - t.done
            delta = t.reward + c.gamma * next_value * not_done - t.value
            gae = delta + c.gamma * c.gae_lambda * not_done * gae
            return (gae, t.value), gae

        _, adv = jax.lax.scan(body, (jnp.zeros_like(last_value), last_value), transitions, reverse=True)
        return adv, adv + transitions.value

    def loss(self, params, batch):
        c = self.config
        carries, t, adv, targets = batch
        _, logits, value = self.network.apply(params, carries, t.obs, t.reset)
        log_prob = distributions.log_prob(logits, t.action)
        if c.advantage_norm == "minibatch":
            adv = normalize(adv)
        objective, ratio = clipped_objective(log_prob, t.log_prob, adv, c.clip_eps)
        policy_loss = -objective.mean()
        value_clipped = t.value + jnp.clip(value - t.value, -c.clip_eps, c.clip_eps)
        value_loss = 0.5 * jnp.maximum((value - targets) ** 2, (value_clipped - targets) ** 2).mean()
        entropy = distributions.entropy(logits).mean()
        # The barrier is budgeted per episode: in a task where one wrong step loses the episode, the
        # exploration it buys must shrink with the episode's length (as epsilon = 1 / T in Ni et al. 2023).
        barrier = distributions.mean_log_prob(logits).mean() / mean_episode_length(t)
        total = policy_loss + c.vf_coef * value_loss - c.ent_coef * entropy - c.barrier_coef * barrier
        stats = {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "min_prob": distributions.min_prob(logits).mean(),
            "approx_kl": ((ratio - 1.0) - jnp.log(ratio)).mean(),
            "clip_fraction": (jnp.abs(ratio - 1.0) > self.config.clip_eps).mean(),
        }
        return total, stats

    def minibatches(self, key: jax.Array, carries, transitions, adv, targets):
        """Shuffle the sequences into ``num_minibatches`` groups; every leaf gets a leading minibatch axis.

        Sequences come as ``[C, L, N, ...]`` (carries ``[C, N, ...]``); a minibatch holds all ``C``
        windows of ``N / M`` environment copies, one from each block of ``M`` consecutive copies.
        """
        m = self.config.num_minibatches
        n = self.config.num_envs
        blocks = n // m
        perms = jax.vmap(lambda k: jax.random.permutation(k, m))(jax.random.split(key, blocks))  # [N/M, M]

        def pick(x, env_axis):  # [..., N, ...] -> [M, N/M, ...]: permute within blocks, split by rank
            x = jnp.moveaxis(x, env_axis, 0)
            x = x.reshape((blocks, m) + x.shape[1:])
            x = jax.vmap(lambda block, perm: block[perm])(x, perms)
            return jnp.swapaxes(x, 0, 1)

        def sequences(x):  # [C, L, N, ...] -> [M, L, N/M * C, ...]
            x = jnp.moveaxis(pick(x, 2), 3, 1)  # [M, L, N/M, C, ...]
            return x.reshape(x.shape[:2] + (blocks * x.shape[3],) + x.shape[4:])

        def starts(x):  # [C, N, ...] -> [M, N/M * C, ...]
            x = pick(x, 1)  # [M, N/M, C, ...]
            return x.reshape((m, blocks * x.shape[2]) + x.shape[3:])

        tree = jax.tree_util.tree_map
        return (tree(starts, carries), tree(sequences, transitions), sequences(adv), sequences(targets))

    def update(self, runner: RunnerState):
        """One PPO update for one seed: rollout, GAE, ``update_epochs`` passes over the minibatches."""
        c = self.config
        runner, carries, transitions = self.rollout(runner)
        _, _, last_value = self.network.apply(
            runner.train_state.params, runner.carry, time_major(runner.obs), runner.reset[None]
        )
        flat = jax.tree_util.tree_map(lambda x: x.reshape((c.num_steps,) + x.shape[2:]), transitions)
        adv, targets = self.advantages(flat, last_value[0])
        if c.advantage_norm == "batch":
            adv = normalize(adv)
        windowed = lambda x: x.reshape(transitions.reward.shape + x.shape[2:])  # noqa: E731
        runner, stats = self.optimize(runner, carries, transitions, windowed(adv), windowed(targets))
        return runner, {**stats, **episode_metrics(transitions)}

    def optimize(self, runner: RunnerState, carries, transitions, adv, targets):
        """``update_epochs`` passes of :meth:`loss` over the minibatches of the rollout: the updated runner
        and the loss statistics averaged over all minibatches."""

        def minibatch_step(train_state, batch):
            grads, stats = jax.grad(self.loss, has_aux=True)(train_state.params, batch)
            return train_state.apply_gradients(grads=grads), stats

        def epoch(train_state, key):
            batches = self.minibatches(key, carries, transitions, adv, targets)
            return jax.lax.scan(minibatch_step, train_state, batches)

        key, epoch_key = jax.random.split(runner.key)
        epoch_keys = jax.random.split(epoch_key, self.config.update_epochs)
        train_state, stats = jax.lax.scan(epoch, runner.train_state, epoch_keys)
        runner = runner.replace(train_state=train_state, key=key, update=runner.update + 1)
        return runner, jax.tree_util.tree_map(jnp.mean, stats)


def make_network(config: PPOConfig, observation_space: spaces.Space, action_space: spaces.Space):
    """The agent ``config.agent`` names: the actor-critic (encoder -> ``config.memory`` -> heads), or the
    context editor (no recurrent memory: the context in the observation is its memory)."""
    if config.agent == "context_editor":
        return make_context_editor(observation_space, action_space, config.hidden_size, **config.agent_config)
    if config.agent_config:
        raise ValueError(
            "agent_config sets fields of the context editor; the actor-critic's memory takes memory_config"
        )
    memory = None
    if config.memory != "none":
        memory = memory_modules.make(config.memory, **{"features": config.hidden_size, **config.memory_config})
    return make_actor_critic(
        observation_space, action_space, memory, config.hidden_size, config.separate_critic, config.linear_heads
    )


def can_truncate(env_params) -> bool:
    """Whether the environment's time limit can end an episode (``NO_TIME_LIMIT`` means it cannot)."""
    return int(env_params.max_steps_in_episode) < envs.NO_TIME_LIMIT


def normalize(x: jax.Array) -> jax.Array:
    """Zero mean and unit standard deviation over all entries."""
    return (x - x.mean()) / (x.std() + 1e-8)


def clipped_objective(log_prob, old_log_prob, adv, clip_eps: float) -> tuple[jax.Array, jax.Array]:
    """PPO's clipped surrogate per step, ``min(r A, clip(r, 1 - eps, 1 + eps) A)`` (to be maximised),
    and the probability ratio ``r = exp(log_prob - old_log_prob)``."""
    ratio = jnp.exp(log_prob - old_log_prob)
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return jnp.minimum(ratio * adv, clipped * adv), ratio


def mean_episode_length(t: Transition) -> jax.Array:
    """The mean length of the episodes that end in ``t`` (``[T, N]``), or ``T`` where none ends."""
    ended = t.episode_done.astype(jnp.float32)
    count = ended.sum()
    return jnp.where(count > 0, (t.episode_length * ended).sum() / jnp.maximum(count, 1.0), t.done.shape[0])


def episode_metrics(t: Transition) -> dict[str, jax.Array]:
    """Sums and counts of the episodes that ended in a rollout (averaged later, across updates)."""
    done = t.episode_done.astype(jnp.float32)
    return {
        "episodes": done.sum(),
        "return_sum": (t.episode_return * done).sum(),
        "length_sum": (t.episode_length * done).sum(),
        "success_sum": (t.episode_success * done).sum(),
    }


def time_major(obs):
    """Add a time axis of length one: ``[N, ...] -> [1, N, ...]``."""
    return jax.tree_util.tree_map(lambda x: x[None], obs)
