"""memorax 1.0.1's PPO on a mnemax environment, built from a mnemax :class:`PPOConfig`.

The benchmarks that compare the two libraries (``ppo_throughput.py`` for speed, ``learning_vs_memorax.py``
for learning) build memorax's side here, so that both read the same hyperparameters off one mnemax
configuration and both list the same differences that remain:

* :func:`memorax_ppo` -- ``memorax.algorithms.PPO`` with separate actor and critic networks (an MLP
  encoder of two ReLU layers of ``hidden_size``, or on image observations memorax's ``CNN`` with the
  Nature-DQN layers of mnemax's ``CNNEncoder`` and one ReLU layer of ``hidden_size``, see
  :func:`memorax_encoder`; the counterpart of mnemax's memory from
  :func:`memorax_torso`, memorax's linear heads) and mnemax's optimizer for each (:func:`optimizer`), on
  the mnemax environment wrapped in ``GymnaxAdapter`` (memorax unpacks gymnax 0.0.x's five-tuple
  ``step``).
* :func:`mismatches` -- every way the two set-ups still differ for a given configuration.

Installing memorax 1.0.1 next to mnemax: it needs gymnax 0.0.x, distrax needs ``tfp-nightly`` with
current jax, and ``import memorax`` imports wandb and neptune-scale. ``benchmarks/gpu_wheels.txt`` pins a
working set (written for Python 3.12; the same versions install on Python 3.11 from PyPI). For a machine
without internet::

    bash benchmarks/fetch_gpu_wheels.sh          # where there is internet: fills .whl/
    # on the machine itself, in the repository root:
    python3 -m pip install --no-index --no-deps --find-links .whl -r benchmarks/gpu_wheels.txt
    python3 -m pip install --no-deps --no-build-isolation -e .
"""

from __future__ import annotations

import importlib.metadata

import flax.linen as nn
import jax.numpy as jnp
import optax

from mnemax import envs, memory_modules
from mnemax.agents.encoders import is_image
from mnemax.envs.interop.gymnax_adapter import GymnaxAdapter
from mnemax.envs.core.wrappers import EpisodeStatistics, Wrapper
from mnemax.train import PPOConfig

MEMORAX_VERSION = "1.0.1"


def import_memorax():
    """``(memorax, None)``, or ``(None, reason)`` when it cannot be imported."""
    try:
        import memorax  # noqa: F401
        import memorax.algorithms
        import memorax.networks
    except Exception as error:  # any failure of the import chain (gymnax, distrax/tfp, wandb, ...)
        return None, f"{type(error).__name__}: {error}"
    version = importlib.metadata.version("memorax")
    if version != MEMORAX_VERSION:
        print(f"note: memorax {version} is installed; this comparison was written for {MEMORAX_VERSION}", flush=True)
    return memorax, None


def package_versions() -> dict[str, str]:
    """Versions of mnemax, memorax and the packages either side's numbers depend on."""
    versions = {}
    for name in ("mnemax", "flax", "optax", "memorax", "gymnax", "distrax", "tfp-nightly", "flashbax"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


class WithoutFinalObs(Wrapper):
    """Drops ``info["final_obs"]``, which memorax never reads but would return for every step."""

    def step(self, key, state, action, params=None):
        obs, state, reward, done, info = self._env.step(key, state, action, params)
        return obs, state, reward, done, {k: v for k, v in info.items() if k != "final_obs"}


def memorax_torso(config: PPOConfig):
    """memorax's counterpart of the mnemax memory ``config.memory`` (its settings read off mnemax's module)."""
    import flax.linen as nn
    from memorax import networks as mx

    width = config.hidden_size
    ours = memory_modules.make(config.memory, features=width, **config.memory_config)
    if config.memory == "gru":
        return mx.RNN(cell=nn.GRUCell(features=width))
    if config.memory == "lstm":
        return mx.RNN(cell=nn.OptimizedLSTMCell(features=width))
    if config.memory == "trxl":
        blocks = []
        for _ in range(ours.num_layers):
            # memorax's SelfAttention needs context_length >= the training sequence, and its PPO trains
            # on whole rollouts.
            attention = mx.SelfAttention(
                features=width, num_heads=ours.num_heads, context_length=config.num_steps,
                dtype=jnp.float32, param_dtype=jnp.float32, kernel_init=nn.initializers.lecun_normal(),
                bias_init=nn.initializers.zeros_init(), positional_embedding=mx.RoPE(),
            )  # fmt: skip
            recurrent = mx.SegmentRecurrence(attention, memory_length=ours.memory_length, features=width)
            blocks.append(mx.Residual(mx.PreNorm(recurrent)))
            blocks.append(mx.Residual(mx.PreNorm(mx.FFN(features=width, expansion_factor=4))))
        return mx.Stack(blocks=tuple(blocks))
    raise NotImplementedError(f"no memorax counterpart of {config.memory!r} is configured in these benchmarks")


def optimizer(config: PPOConfig) -> optax.GradientTransformation:
    """mnemax's optimizer for ``config`` (without a separate critic): global-norm clipping at
    ``max_grad_norm``, then Adam (eps 1e-5) at ``learning_rate``, decaying linearly to 0 over the run's
    minibatch steps when ``anneal_lr``. memorax gets one of these for its actor and one for its critic."""
    steps = config.num_updates * config.update_epochs * config.num_minibatches
    lr = optax.linear_schedule(config.learning_rate, 0.0, steps) if config.anneal_lr else config.learning_rate
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(lr, eps=1e-5))


# mnemax settings that memorax's PPO has no counterpart for: building memorax's side from a config that
# sets one of them would silently compare different algorithms.
UNSUPPORTED = {
    "agent": "actor_critic", "algo": "ppo", "bptt_length": 0, "prev_action_reward": False, "barrier_coef": 0.0,
}  # fmt: skip


def scale_pixels(obs: jnp.ndarray) -> jnp.ndarray:
    """uint8 pixels as float32 in [0, 1], as mnemax's ``CNNEncoder`` reads them."""
    return obs.astype(jnp.float32) / 255.0


def memorax_encoder(config: PPOConfig, image: bool) -> nn.Module:
    """memorax's observation extractor for ``config``: on images (``image``) the layers of mnemax's
    ``CNNEncoder`` (pixels scaled to [0, 1], convolutions of 32, 64 and 64 features with kernels 8, 4, 3 and
    strides 4, 2, 1, ReLU after each, then one ReLU layer of ``hidden_size``) built from memorax's ``CNN`` and
    ``MLP``; otherwise an MLP of two ReLU layers of ``hidden_size``."""
    from memorax.networks import CNN, MLP

    width = config.hidden_size
    if not image:
        return MLP(features=(width, width))
    cnn = CNN(features=(32, 64, 64), kernel_sizes=((8, 8), (4, 4), (3, 3)), strides=(4, 2, 1))
    # A tuple and a module-level function: memorax's PPO is a static argument of its jitted functions, so
    # everything in it must hash.
    return nn.Sequential((scale_pixels, cnn, MLP(features=width)))


def memorax_ppo(config: PPOConfig, num_eval_envs: int | None = None, episode_statistics: bool = False):
    """memorax's ``PPO`` agent on ``config``'s environment with ``config``'s hyperparameters.

    ``episode_statistics`` wraps the environment in mnemax's ``EpisodeStatistics``, so that the ``info`` of
    memorax's transitions carries each finished episode's return, length and success (the learning
    benchmark reads them; the throughput benchmark leaves them out, as memorax would run without them).
    ``num_eval_envs`` sets the copies ``agent.evaluate`` plays (default ``config.num_envs``).
    """
    from memorax.algorithms import PPO
    from memorax.algorithms import PPOConfig as MemoraxPPOConfig
    from memorax.networks import FeatureExtractor, Network, heads

    unsupported = {k: getattr(config, k) for k, v in UNSUPPORTED.items() if getattr(config, k) != v}
    if unsupported:
        raise NotImplementedError(f"memorax's PPO has no counterpart of {unsupported}")
    env, env_params = envs.make(config.env, **config.env_params)
    space = env.observation_space(env_params)
    image = is_image(space.dtype, space.shape)
    if episode_statistics:
        env = EpisodeStatistics(env)
    env = WithoutFinalObs(GymnaxAdapter(env))
    cfg = MemoraxPPOConfig(
        name="ppo", num_envs=config.num_envs, num_eval_envs=num_eval_envs or config.num_envs,
        num_steps=config.num_steps, gamma=config.gamma, gae_lambda=config.gae_lambda,
        num_minibatches=config.num_minibatches, update_epochs=config.update_epochs, normalize_advantage=True,
        clip_coef=config.clip_eps, clip_vloss=True, ent_coef=config.ent_coef, vf_coef=config.vf_coef,
    )  # fmt: skip
    torso = memorax_torso(config)
    encoder = FeatureExtractor(observation_extractor=memorax_encoder(config, image))
    num_actions = env.action_space(env_params).n
    actor = Network(feature_extractor=encoder, torso=torso, head=heads.Categorical(action_dim=num_actions))
    critic = Network(feature_extractor=encoder, torso=torso, head=heads.VNetwork())
    tx = optimizer(config)
    return PPO(cfg, env, env_params, actor, critic, tx, tx)


def mismatches(config: PPOConfig) -> list[str]:
    """Every way mnemax trained with ``config`` and memorax built by :func:`memorax_ppo` from it differ."""
    out = []
    if config.separate_critic:
        out.append(
            "both have separate actor and critic networks; memorax takes two optimizer steps per minibatch (critic, "
            "then actor, each with its own Adam state), mnemax one step on the summed loss with the two branches' "
            "gradients clipped apart"
        )
    else:
        out.append(
            "memorax's PPO has separate actor and critic networks (own encoder and memory each, two optimizers, a "
            "critic step then an actor step per minibatch, both networks run while acting); mnemax shares encoder "
            "and memory between the heads and takes one step on the summed loss, under one gradient clip"
        )
    out.append(
        f"value loss: memorax's critic optimizes 0.5 x the clipped squared error on its own (no vf_coef); mnemax "
        f"adds vf_coef ({config.vf_coef:g}) x the same loss to the policy loss"
    )
    env, env_params = envs.make(config.env, **config.env_params)
    space = env.observation_space(env_params)
    image = is_image(space.dtype, space.shape)
    if image:
        out.append(
            "encoders: the same Nature-DQN layers and one ReLU layer of hidden_size on both sides; mnemax computes "
            f"the convolutions as {config.agent_config.get('conv', 'patches')} (CONVS), memorax with nn.Conv"
        )
    if not config.linear_heads:
        encoders = "" if image else " (both encoders: two ReLU layers of hidden_size)"
        out.append(
            "heads: mnemax's policy and value heads have one hidden ReLU layer of hidden_size; memorax's "
            "heads.Categorical / heads.VNetwork are single linear layers" + encoders
        )
    if config.weight_init != "lecun":
        out.append(
            "initialisers: mnemax's dense layers are orthogonal (sqrt 2; policy head 0.01, value head 1.0); "
            "memorax's MLP and heads use LeCun normal"
        )
    if config.memory in ("gru", "lstm"):
        memory_config = dict(config.memory_config)
        per_gate = memory_config.pop("hidden_init", "orthogonal") == "per_gate"  # flax's cells' recurrent init
        init = "" if per_gate else (
            "; mnemax's recurrent kernel starts as one orthogonal matrix over all gates (each gate's block "
            "weaker), flax's as an orthogonal block per gate (hidden_init='per_gate')"
        )
        unmatched = f"; mnemax's memory_config {memory_config} has no memorax counterpart" if memory_config else ""
        out.append(
            "GRU/LSTM: memorax uses flax's GRUCell (one Dense per gate) / OptimizedLSTMCell in nn.scan; mnemax "
            "projects the inputs of all steps in one product before the scan" + init + unmatched
        )
    if config.memory == "trxl":
        out.append(
            "Transformer-XL: memorax's SelfAttention needs context_length >= the training sequence (num_steps), so "
            "while acting a query attends to up to memory_length + num_steps keys (mnemax: memory_length + 1); "
            "memorax uses cuDNN bfloat16 attention on NVIDIA GPUs (mnemax float32); mnemax's trxl adds an input "
            "projection and a final LayerNorm"
        )
    if config.advantage_norm != "batch":
        out.append(f"advantages normalised over the whole batch in memorax, per {config.advantage_norm} in mnemax")
    if config.bootstrap_truncated:
        when = "(bootstrap_truncated; never on tasks without a time limit)"
    else:
        when = "only with bootstrap_truncated (off)"
    out.append(f"truncated episodes: mnemax bootstraps from the final observation's value {when}; memorax has none")
    return out
