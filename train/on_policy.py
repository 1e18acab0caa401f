"""What the on-policy algorithms share: the environment and the agent of a configuration, the optimizer,
the rollout, the minibatches and the epochs of a loss. An algorithm (:mod:`mnemax.train.ppo`,
:mod:`mnemax.train.dcpo`) subclasses :class:`OnPolicy` with its configuration class, its ``loss`` and
its ``update``; :mod:`mnemax.train.algorithms` lists them and :mod:`mnemax.train.loop` runs any of them.

A whole update -- rollout, advantages and every epoch of minibatch updates -- is one jitted function
(PureJaxRL style), and several updates run in one ``lax.scan`` between log points.

Memory agents are trained on whole sequences: the rollout of ``num_steps`` steps is cut into windows of
``bptt_length`` steps, the memory carry at the start of every window is stored during the rollout, and
the update re-runs the memory over each window from its stored carry (truncated back-propagation
through time; for transformer memories the carry is the cached window of past steps). Episode
boundaries inside a window are handled by the memory's reset mask.

Minibatches are drawn so that the result does not depend on how many devices share the batch: the
environments are cut into blocks of ``num_minibatches`` consecutive copies and every minibatch takes
one random copy of each block. With the batch sharded over devices in whole blocks, forming a
minibatch never moves data between devices.

Shapes: ``N`` environment copies, rollouts of ``T = num_steps`` steps in ``C`` windows of
``L = sequence_length`` steps; leaves of a windowed rollout are ``[C, L, N, ...]``, of a flat one
``[T, N, ...]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training.train_state import TrainState

from mnemax import agents, envs
from mnemax.agents import distributions
from mnemax.envs.core import spaces, wrappers
from mnemax.memory_modules.base import without_projections
from mnemax.memory_modules.scan import time_unroll
from mnemax.train.config import TrainConfig


class Transition(NamedTuple):
    obs: Any
    action: jax.Array  # [..., K]
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array  # the episode ended after this step
    reset: jax.Array  # an episode started at this step (the memory's reset mask)
    episode_done: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    episode_success: jax.Array
    # What a task reports beyond the common info: the values of the keys in `OnPolicy.info_extras`.
    extras: dict[str, jax.Array]


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


class OnPolicy:
    """The environment, the agent and the jitted update functions of one configuration.

    All functions here treat one seed; :mod:`mnemax.train.loop` vmaps them over seeds and shards them
    over devices. A subclass sets ``Config`` and implements :meth:`loss` and :meth:`update`; it may ask
    for ``info`` keys of the tasks (``info_extras``), which then travel in ``Transition.extras``.
    """

    Config: ClassVar[type[TrainConfig]] = TrainConfig
    # info keys the algorithm reads from the tasks, each with the value it takes where a task has none.
    info_extras: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, config: TrainConfig, num_devices: int = 1):
        if not isinstance(config, self.Config):
            raise ValueError(f"{type(self).__name__} needs a {self.Config.__name__}, got {type(config).__name__}")
        config.validate(num_devices)
        self.config = config
        env, self.eval_env_params = envs.make(config.env, **config.env_params)
        self.env_params = self.eval_env_params  # what training plays
        if config.train_env_params:
            _, self.env_params = envs.make(config.env, **{**config.env_params, **config.train_env_params})
            _check_same_spaces(env, self.env_params, self.eval_env_params)
            if config.curriculum_updates:
                _check_switchable(self.env_params, self.eval_env_params)
        if config.kickstart_coef:
            _check_teacher(env, config)
        if config.prev_action_reward:
            env = wrappers.PreviousActionReward(env)
        self.env = env
        self.vec_env = wrappers.Vmap(wrappers.EpisodeStatistics(env), config.num_envs, reset_pool=config.reset_pool)
        self.observation_space = env.observation_space(self.env_params)
        self.action_space = env.action_space(self.env_params)
        agent_fields = config.agent_fields()
        if config.item_encoder:
            if not hasattr(env.unwrapped, "observation_items"):
                raise ValueError(f"item_encoder: {config.env} lists no items in its observation (observation_items)")
            agent_fields["items"] = env.unwrapped.observation_items(self.env_params)
            if hasattr(env.unwrapped, "observation_parts"):
                agent_fields["parts"] = env.unwrapped.observation_parts(self.env_params)
        self.network = agents.make(
            config.agent, self.observation_space, self.action_space, hidden_size=config.hidden_size,
            memory=config.memory, memory_config=config.memory_config, **agent_fields,
        )  # fmt: skip
        self._discrete = isinstance(self.action_space, spaces.Discrete)
        self.projected_fields = getattr(getattr(self.network, "memory", None), "projected_fields", ())
        if config.kickstart_coef and hasattr(self.network, "env_action") and not hasattr(self.network, "agent_action"):
            raise ValueError(
                "kickstart_coef: the teacher acts in the task's action format, and this agent's actions are its "
                "own without a way back (`agent_action`)"
            )
        self.optimizer = self.make_optimizer()  # one instance: it is part of the state's tree structure

    # ------------------------------------------------------------------ to implement
    def loss(self, params, batch) -> tuple[jax.Array, dict[str, jax.Array]]:
        """``(loss to minimise, statistics)`` of one minibatch ``(carries, transitions, per_step)`` (see
        :meth:`optimize`)."""
        raise NotImplementedError

    def update(self, runner: RunnerState) -> tuple[RunnerState, dict[str, jax.Array]]:
        """One update for one seed: the new runner and scalar metrics, among them the episode sums of
        :func:`episode_metrics`."""
        raise NotImplementedError

    # ------------------------------------------------------------------ set-up
    def make_optimizer(self) -> optax.GradientTransformation:
        """Adam (learning rate annealed to zero over training when ``anneal_lr``) after
        :meth:`gradient_clipping`."""
        c = self.config
        steps = c.num_updates * c.update_epochs * c.num_minibatches
        lr = optax.linear_schedule(c.learning_rate, 0.0, steps) if c.anneal_lr else c.learning_rate
        return optax.chain(self.gradient_clipping(), optax.adam(lr, eps=1e-5))

    def gradient_clipping(self) -> optax.GradientTransformation:
        """Clipping of the gradients' global norm to ``max_grad_norm``."""
        return optax.clip_by_global_norm(self.config.max_grad_norm)

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

    def training_env_params(self, update: jax.Array):
        """The task that update ``update`` plays: ``train_env_params`` for the first ``curriculum_updates``
        updates (all of them when it is 0), the task itself after them."""
        c = self.config
        if not c.curriculum_updates:
            return self.env_params
        first_stage = update < c.curriculum_updates
        return jax.tree_util.tree_map(
            lambda a, b: jnp.where(first_stage, a, b), self.env_params, self.eval_env_params
        )

    def env_action(self, action: jax.Array) -> jax.Array:
        """Agent actions ``[..., K]`` in the environment's format (a network with actions of its own
        defines ``env_action``, as the context editor's joint edit head does)."""
        if hasattr(self.network, "env_action"):
            return self.network.env_action(action)
        return action[..., 0] if self._discrete else action

    # ------------------------------------------------------------------ rollout
    def stored_reward(self, params, next_carry, reward, truncated, info) -> jax.Array:
        """The reward a transition stores for learning: the environment's (PPO folds in a value)."""
        return reward

    def _env_step(self, params, env_params, state, key):
        """One acting step of all environment copies in the task ``env_params``."""
        env_state, obs, carry, reset = state
        act_key, step_key = jax.random.split(key)
        next_carry, logits, value = self.network.apply(params, carry, time_major(obs), reset[None])
        logits, value = logits[0], value[0]
        action = distributions.sample(act_key, logits)
        next_obs, env_state, reward, terminated, truncated, info = self.vec_env.step(
            step_key, env_state, self.env_action(action), env_params
        )
        done = terminated | truncated
        transition = Transition(
            obs=obs,
            action=action,
            log_prob=distributions.log_prob(logits, action),
            value=value,
            reward=self.stored_reward(params, next_carry, reward, truncated, info),
            done=done,
            reset=reset,
            episode_done=info["returned_episode"],
            episode_return=info["returned_episode_return"],
            episode_length=info["returned_episode_length"],
            episode_success=info["returned_episode_success"],
            extras={key: info.get(key, jnp.full(done.shape, absent)) for key, absent in self.info_extras.items()},
        )
        return (env_state, next_obs, next_carry, done), transition

    def checkpoint_carry(self, carry):
        """``carry`` (the runner's, any leading axes) as a checkpoint keeps it: the memory's projections zeroed.
        Every rollout makes them again before acting, so a run resumed from it goes on exactly as one that was
        not stopped."""
        return without_projections(self.projected_fields, carry)

    def rollout(self, runner: RunnerState):
        """``num_steps`` steps: transitions ``[C, L, N, ...]`` and the carries at window starts ``[C, N, ...]``."""
        c = self.config
        params = runner.train_state.params
        env_params = self.training_env_params(runner.update)

        def window(state, key):
            carry_at_start = state[2]
            step = lambda s, k: self._env_step(params, env_params, s, k)  # noqa: E731
            keys = jax.random.split(key, c.sequence_length)
            state, transitions = jax.lax.scan(step, state, keys, unroll=time_unroll(c.rollout_unroll or None))
            return state, (carry_at_start, transitions)

        key, rollout_key = jax.random.split(runner.key)
        num_windows = c.num_steps // c.sequence_length
        carry = runner.carry
        if self.projected_fields:
            # The carry holds projections made by the parameters before the last update (Transformer-XL's
            # cached keys and values): a call over zero steps makes them again with these.
            no_steps = jax.tree_util.tree_map(lambda x: x[None][:0], runner.obs)  # [0, N, ...]
            carry = self.network.apply(params, carry, no_steps, runner.reset[None][:0])[0]
        state = (runner.env_state, runner.obs, carry, runner.reset)
        state, (carries, transitions) = jax.lax.scan(window, state, jax.random.split(rollout_key, num_windows))
        env_state, obs, carry, reset = state
        if c.kickstart_coef:
            transitions = self.demonstrate(transitions, env_params, runner.update)
        runner = runner.replace(env_state=env_state, obs=obs, carry=carry, reset=reset, key=key)
        return runner, carries, transitions

    def demonstrate(self, transitions: Transition, env_params, update: jax.Array) -> Transition:
        """Label every visited state with the teacher's action (the task's ``demonstration``), in
        ``extras["demo_action"]`` ``[..., K]``, and ``extras["demo_weight"]`` ``[..., K]``: the teacher's
        weight at this update on the components that matter, 0 on the rest."""
        c = self.config
        weight = jnp.float32(c.kickstart_coef)
        if c.kickstart_updates:
            weight = weight * jnp.maximum(0.0, 1.0 - update / c.kickstart_updates)
        demo = lambda obs: self.env.demonstration(obs, env_params)  # noqa: E731
        batch_shape = transitions.action.shape[:-1]
        obs = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[len(batch_shape) :]), transitions.obs)
        action, relevant = jax.vmap(demo)(obs)
        if hasattr(self.network, "agent_action"):  # an agent whose actions are not the task's
            action, relevant = self.network.agent_action(action, relevant)
        extras = {
            "demo_action": action.reshape(transitions.action.shape),
            "demo_weight": weight * relevant.reshape(transitions.action.shape).astype(jnp.float32),
        }
        return transitions._replace(extras={**transitions.extras, **extras})

    def kickstart_loss(self, logits: jax.Array, t: Transition) -> jax.Array:
        """The teacher's term (0 without one): the mean over steps of ``-sum_k w_k log pi_k(teacher's
        action_k)``, ``w`` the weights :meth:`demonstrate` stored (``[..., K]``, with ``logits [..., K, N]``)."""
        if not self.config.kickstart_coef:
            return jnp.float32(0.0)
        chosen = distributions.component_log_probs(logits, t.extras["demo_action"])
        return -(chosen * t.extras["demo_weight"]).sum(-1).mean()

    def flat(self, windowed):
        """Leaves ``[C, L, N, ...] -> [T, N, ...]``: the rollout in time order."""
        return jax.tree_util.tree_map(lambda x: x.reshape((self.config.num_steps,) + x.shape[2:]), windowed)

    def windowed(self, flat):
        """Leaves ``[T, N, ...] -> [C, L, N, ...]``, the inverse of :meth:`flat`."""
        length = self.config.sequence_length
        return jax.tree_util.tree_map(lambda x: x.reshape((-1, length) + x.shape[1:]), flat)

    # ------------------------------------------------------------------ learning
    def minibatches(self, key: jax.Array, carries, transitions, per_step):
        """Shuffle the sequences into ``num_minibatches`` groups; every leaf gets a leading minibatch axis.

        Sequences come as ``[C, L, N, ...]`` (``transitions`` and the leaves of ``per_step``), carries as
        ``[C, N, ...]``; a minibatch holds all ``C`` windows of ``N / M`` environment copies, one from each
        block of ``M`` consecutive copies. Returns ``(carries, transitions, per_step)`` so split.
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
        return tree(starts, carries), tree(sequences, transitions), tree(sequences, per_step)

    def optimize(self, runner: RunnerState, carries, transitions, per_step):
        """``update_epochs`` passes of :meth:`loss` over the minibatches of the rollout: the updated runner
        and the loss statistics averaged over all minibatches.

        ``per_step`` holds what the loss needs per step besides the transitions, each ``[C, L, N]`` like
        them (PPO: advantages and value targets; DCPO: advantages and segment weights); every
        minibatch gets its share of it.
        """

        def minibatch_step(train_state, batch):
            grads, stats = jax.grad(self.loss, has_aux=True)(train_state.params, batch)
            return train_state.apply_gradients(grads=grads), stats

        def epoch(train_state, key):
            batches = self.minibatches(key, carries, transitions, per_step)
            return jax.lax.scan(minibatch_step, train_state, batches)

        key, epoch_key = jax.random.split(runner.key)
        epoch_keys = jax.random.split(epoch_key, self.config.update_epochs)
        train_state, stats = jax.lax.scan(epoch, runner.train_state, epoch_keys)
        runner = runner.replace(train_state=train_state, key=key, update=runner.update + 1)
        return runner, jax.tree_util.tree_map(jnp.mean, stats)


def clipped_objective(log_prob, old_log_prob, adv, clip_eps: float) -> tuple[jax.Array, jax.Array]:
    """PPO's clipped surrogate per step, ``min(r A, clip(r, 1 - eps, 1 + eps) A)`` (to be maximised),
    and the probability ratio ``r = exp(log_prob - old_log_prob)``."""
    ratio = jnp.exp(log_prob - old_log_prob)
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return jnp.minimum(ratio * adv, clipped * adv), ratio


def _check_teacher(env, config: TrainConfig) -> None:
    """Kickstarting needs a task with a ``demonstration`` that sees what the agent sees."""
    if not hasattr(env, "demonstration"):
        raise ValueError(f"kickstart_coef: {config.env} has no scripted demonstration to learn from")
    if config.prev_action_reward:
        raise ValueError("kickstart_coef: the teacher reads the task's own observations, not prev_action_reward's")


def _check_switchable(train_params, eval_params) -> None:
    """A curriculum that switches tasks inside the compiled update may change traced parameters only:
    a static one (a size, a shape) would need another program."""
    if jax.tree_util.tree_structure(train_params) != jax.tree_util.tree_structure(eval_params):
        raise ValueError(
            "curriculum_updates: train_env_params change a static parameter of the task (a size or shape), "
            "which cannot switch during a run; only the task's traced parameters can"
        )


def _check_same_spaces(env, train_params, eval_params) -> None:
    """A curriculum may change how episodes go, not what the agent sees or does."""
    for space in ("observation_space", "action_space"):
        trained, evaluated = getattr(env, space)(train_params), getattr(env, space)(eval_params)
        if trained.to_gymnasium() != evaluated.to_gymnasium():
            what = space.replace("_", " ")
            raise ValueError(f"train_env_params change the {what}: {trained} while training, {evaluated} in evaluation")


def approx_kl(log_prob, old_log_prob) -> jax.Array:
    """Per step, the estimate ``(r - 1) - log r`` of KL(old || new) (Schulman's k3), from the log ratio:
    computed from ``r`` itself, a ratio that underflows to 0 (an action the update made a hundred nats
    less likely; harmless to the clipped objective) would read as an infinite divergence."""
    log_ratio = log_prob - old_log_prob
    return jnp.expm1(log_ratio) - log_ratio


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
