"""The pieces of the PPO recipe for long memory tasks: the log-barrier exploration term, the separate
critic, advantage normalisation, memory time scales at init, weight initialisation, presets, and the
truncation bootstrap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnemax import envs, memory_modules
from mnemax.agents import distributions
from mnemax.agents.actor_critic import make_actor_critic, parameter_branches
from mnemax.envs.core import spaces
from mnemax.train import PPO, PPOConfig, train
from mnemax.train.on_policy import approx_kl
from mnemax.train.ppo import can_truncate, mean_episode_length

TINY = dict(num_envs=8, num_steps=16, num_minibatches=2, update_epochs=2, hidden_size=16, progress=False, video=False)


def test_the_barrier_pull_does_not_fade_as_a_policy_becomes_deterministic():
    """d/dz_b of the entropy vanishes with pi(b); d/dz_b of mean_a log pi(a) tends to 1/n."""
    entropy_pulls = []
    for gap in (5.0, 10.0, 20.0):
        logits = jnp.array([[gap, 0.0, 0.0, 0.0]])
        entropy_pulls.append(float(jax.grad(lambda z: distributions.entropy(z[None])[0])(logits)[0, 1]))
        barrier_pull = jax.grad(lambda z: distributions.mean_log_prob(z[None])[0])(logits)[0, 1]
        assert float(barrier_pull) == pytest.approx(0.25, abs=0.01)  # 1/n - pi(b)
    assert entropy_pulls[0] > entropy_pulls[1] > entropy_pulls[2] and entropy_pulls[2] < 1e-6, entropy_pulls


def test_barrier_terms_ignore_padded_choices():
    """MultiDiscrete(3, 2): the short component is padded; padding counts neither as a choice nor as the
    least likely one."""
    logits = jnp.array([[[1.0, 0.0, -1.0], [0.5, -0.5, distributions.PAD_LOGIT]]])
    logp = jax.nn.log_softmax(logits, axis=-1)
    expected = logp[0, 0].mean() + logp[0, 1, :2].mean()
    np.testing.assert_allclose(distributions.mean_log_prob(logits)[0], expected, rtol=1e-6)
    np.testing.assert_allclose(distributions.min_prob(logits)[0], jnp.exp(logp[0, 0, 2]), rtol=1e-6)


@pytest.mark.slow
def test_the_barrier_escapes_the_corridor_dead_end_where_the_entropy_bonus_collapses(tmp_path):
    """A memoryless agent in a T-Maze of 12 cells must turn at the junction (the last step, one rare
    action) to earn anything; walking on costs 1/L. Once walking is learned, a fixed entropy bonus lets
    the turn's probability go to zero on some seeds, and they walk on for good (return -1/L). The barrier
    keeps the turn possible, and every seed learns it (success 1/2: the side is a coin flip without memory)."""
    length = 12
    # 60k steps: the collapse and the escape both show by 53k (the test passes from seeds 1-3 and 4-6 alike). On
    # seeds 1-9, 100k steps end as 200k do: the entropy bonus leaves seeds 2, 3, 6, 7 and 8 walking on, the
    # barrier's greedy success is 0.46-0.55 on all.
    common = dict(
        env="mnemax/TMaze-Passive-v0", env_params={"corridor_length": length}, memory="none", num_envs=32,
        num_steps=4 * (length + 1), total_steps=60_000, seed=1, num_seeds=3, num_logs=4, eval_episodes=256,
        progress=False, video=False,
    )  # fmt: skip
    entropy = train(PPOConfig(**common, ent_coef=0.01, run_dir=str(tmp_path / "entropy")))
    barrier = train(PPOConfig(**common, ent_coef=0.0, barrier_coef=0.3, run_dir=str(tmp_path / "barrier")))
    assert min(entropy.episode_return) == pytest.approx(-1 / length, abs=1e-4), entropy.episode_return
    assert min(barrier.success) >= 0.4, barrier.success


def test_approx_kl_stays_finite_where_the_ratio_underflows():
    # An action made 150 nats less likely: exp underflows to 0 and log(0) would read as an infinite KL.
    old = jnp.array([-1.0, -1.0, -2.0])
    new = jnp.array([-151.0, -1.0, -1.5])
    kl = np.asarray(approx_kl(new, old))
    assert np.all(np.isfinite(kl))
    np.testing.assert_allclose(kl, [149.0, 0.0, np.expm1(0.5) - 0.5], rtol=1e-6)


def test_mean_episode_length_of_a_minibatch():
    from mnemax.train.on_policy import Transition

    done = jnp.array([[0, 0], [1, 0], [0, 1], [1, 0]], bool)
    length = jnp.array([[1, 5], [2, 6], [1, 7], [2, 1]])
    t = Transition(**{f: jnp.zeros((4, 2)) for f in Transition._fields})._replace(episode_done=done, episode_length=length)
    assert float(mean_episode_length(t)) == pytest.approx((2 + 7 + 2) / 3)
    none_ended = t._replace(episode_done=jnp.zeros_like(done))
    assert float(mean_episode_length(none_ended)) == 4.0  # no episode ended: the sequence length


def test_separate_critic_keeps_the_value_loss_out_of_the_policy(tmp_path):
    ppo = PPO(PPOConfig(**TINY, separate_critic=True, memory="gru", run_dir=str(tmp_path)))
    runner = jax.jit(ppo.init)(jax.random.key(0))  # jitted, as in training (op by op: hundreds of small compiles)
    params = runner.train_state.params
    assert set(runner.carry) == {"actor", "critic"}
    obs = jnp.zeros((3, 2, 3))
    resets = jnp.zeros((3, 2), bool)

    def value_sum(p):
        return ppo.network.apply(p, ppo.network.initialize_carry(2), obs + 1.0, resets)[2].sum()

    moved = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda g: bool(np.any(g != 0)), jax.jit(jax.grad(value_sum))(params)))
    branches = jax.tree_util.tree_leaves(parameter_branches(params))
    critic = [m for m, b in zip(moved, branches) if b == "critic"]
    actor = [m for m, b in zip(moved, branches) if b == "actor"]
    assert any(critic) and actor and not any(actor)


def test_separate_critic_clips_each_branch_on_its_own(tmp_path):
    config = PPOConfig(**TINY, separate_critic=True, max_grad_norm=1.0, learning_rate=1.0, anneal_lr=False, run_dir=str(tmp_path))
    ppo = PPO(config)
    # Jitted, as in training: run op by op, the initialisation and the update compiled hundreds of small programs.
    params = jax.jit(ppo.init)(jax.random.key(0)).train_state.params
    is_critic = jax.tree_util.tree_map(lambda b: b == "critic", parameter_branches(params))
    # Huge value gradients, small policy gradients: one global clip would scale the policy's to nothing.
    grads = jax.tree_util.tree_map(lambda p, c: jnp.full_like(p, 1e3 if c else 1e-3), params, is_critic)
    clipped, _ = jax.jit(lambda g, p: ppo.optimizer.update(g, ppo.optimizer.init(p), p))(grads, params)
    actor_leaves = [g for g, c in zip(jax.tree_util.tree_leaves(clipped), jax.tree_util.tree_leaves(is_critic)) if not c]
    # Adam normalises each parameter's step, so a policy gradient that survived the clip moves by ~lr.
    assert all(np.allclose(np.abs(g), 1.0, rtol=1e-2) for g in actor_leaves)


@pytest.mark.parametrize("norm", ["batch", "none"])  # "minibatch", the default, trains in every other test
def test_advantage_normalisations_train(tmp_path, norm):
    result = train(PPOConfig(**TINY, total_steps=8 * 16 * 2, num_logs=1, eval_episodes=8, advantage_norm=norm, run_dir=str(tmp_path)))
    assert np.isfinite(result.episode_return).all()


def test_unknown_advantage_normalisation_is_refused(tmp_path):
    with pytest.raises(ValueError, match="advantage_norm"):
        PPO(PPOConfig(**TINY, advantage_norm="global", run_dir=str(tmp_path)))


def test_dcpo_refuses_settings_it_would_ignore():
    from mnemax.train import DCPOConfig

    with pytest.raises(TypeError, match="barrier_coef"):  # DCPO's configuration has no such field
        DCPOConfig(barrier_coef=0.1).validate()


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_long_timescales_keep_a_pulse_over_a_hundred_steps(name):
    """The state's response to an input pulse at step 0, 100 steps later: with the usual init it has
    decayed by orders of magnitude more than with time scales up to 1000 steps."""
    steps, width = 101, 32
    pulse = jnp.zeros((steps, 1, 4)).at[0, 0, 0].set(1.0)
    resets = jnp.zeros((steps, 1), bool)
    response = {}
    for max_timescale in (None, 1000):
        module = memory_modules.make(name, features=width, max_timescale=max_timescale)
        params = module.init(jax.random.key(0), module.initialize_carry(1), pulse, resets)
        run = lambda x: module.apply(params, module.initialize_carry(1), x, resets)[1][-1]  # noqa: E731
        response[max_timescale] = float(jnp.abs(run(pulse) - run(jnp.zeros_like(pulse))).max())
    assert response[1000] > 100 * response[None], response


def test_timescale_bias_spans_the_time_scales():
    from mnemax.memory_modules.scan import timescale_bias

    bias = timescale_bias(8, 2.0, 1000.0)
    timescales = 1.0 / (1.0 - jax.nn.sigmoid(bias))
    np.testing.assert_allclose([timescales[0], timescales[-1]], [2.0, 1000.0], rtol=1e-4)
    assert np.all(np.diff(timescales) > 0)


def test_presets_set_fields_and_memory_fields_and_flags_override_them():
    from mnemax.train import presets
    from mnemax.train.cli import _preset_defaults
    import tyro

    config = PPOConfig.from_preset("tmaze", memory="lstm", num_envs=64)
    assert config.preset == "tmaze" and config.num_envs == 64 and config.barrier_coef > 0
    assert config.memory_config == {"max_timescale": 1000}
    assert PPOConfig.from_preset("tmaze", memory="ffm").memory_config == {}  # FFM has no such field
    argv = ["--preset", "tmaze", "--memory", "gru", "--barrier-coef", "0.5"]
    cli = tyro.cli(PPOConfig, args=argv, default=_preset_defaults(PPOConfig, argv))
    assert cli.barrier_coef == 0.5 and cli.memory_config == {"max_timescale": 1000} and cli.num_steps == 512
    with pytest.raises(ValueError, match="unknown preset"):
        presets.preset("tmazee", "gru")


def test_truncation_bootstrap_only_where_the_time_limit_can_be_reached():
    assert not can_truncate(envs.make("mnemax/TMaze-Passive-v0")[1])
    assert can_truncate(envs.make("mnemax/MysteryPath-Grid-v0")[1])
    assert not can_truncate(envs.make("mnemax/TMaze-Passive-v0", max_steps_in_episode=envs.NO_TIME_LIMIT)[1])


@pytest.mark.parametrize("obs_shape,dtype", [((84, 84, 3), jnp.uint8), ((64, 64, 3), jnp.uint8), ((5,), jnp.float32)])
def test_reconstruction_decodes_observations_of_their_shape(obs_shape, dtype):
    high = 255 if dtype == jnp.uint8 else 1.0
    agent = make_actor_critic(spaces.Box(0, high, obs_shape, dtype), spaces.Discrete(4), hidden_size=16, reconstruction=True)
    obs, resets = jnp.zeros((3, 2) + obs_shape, dtype), jnp.zeros((3, 2), bool)
    # Jitted: op by op, the convolutions' initialisation and passes compiled a hundred small programs or more.
    params = jax.jit(agent.init)(jax.random.key(0), agent.initialize_carry(2), obs, resets)
    assert any("decoder" in name for name in params["params"])
    apply = jax.jit(lambda params, carry, obs, resets: agent.apply(params, carry, obs, resets, mutable=["intermediates"]))
    (_, logits, _), sown = apply(params, agent.initialize_carry(2), obs, resets)
    assert sown["intermediates"]["reconstruction"][0].shape == (3, 2) + obs_shape and logits.shape[:2] == (3, 2)


def test_reconstruction_loss_is_trained_and_off_by_default(tmp_path):
    """The auxiliary loss appears in the update's statistics only when weighted, and training lowers it."""
    ppo = PPO(PPOConfig(**TINY, aux_reconstruction=1.0, learning_rate=3e-3, run_dir=str(tmp_path)))
    runner = jax.jit(ppo.init)(jax.random.key(0))  # op by op, the initialisation compiles hundreds of programs
    update = jax.jit(ppo.update)
    losses = []
    for _ in range(30):
        runner, stats = update(runner)
        losses.append(float(jnp.mean(stats["reconstruction_loss"])))
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    plain = PPO(PPOConfig(**TINY, run_dir=str(tmp_path)))
    plain_runner = jax.jit(plain.init)(jax.random.key(0))
    _, stats = jax.jit(plain.update)(plain_runner)
    assert "reconstruction_loss" not in stats
    assert not any("decoder" in name for name in plain_runner.train_state.params["params"])


def test_weight_init_lecun_starts_the_heads_at_lecun_scale():
    obs_space, action_space = spaces.Box(-1.0, 1.0, (5,), jnp.float32), spaces.Discrete(4)
    obs, resets = jnp.zeros((1, 1, 5)), jnp.zeros((1, 1), bool)

    def head_std(weight_init):
        agent = make_actor_critic(obs_space, action_space, hidden_size=256, memory="none", weight_init=weight_init)
        params = agent.init(jax.random.key(0), agent.initialize_carry(1), obs, resets)["params"]
        return float(jnp.std(params["actor_head"]["kernel"]))

    # Orthogonal of gain 0.01 against LeCun normal (std 1/sqrt(fan_in) = 1/16).
    assert head_std("orthogonal") < 0.002 and 0.04 < head_std("lecun") < 0.09


def test_weight_init_trains_and_unknown_names_are_refused(tmp_path):
    result = train(PPOConfig(**TINY, total_steps=8 * 16 * 2, num_logs=1, eval_episodes=8, weight_init="lecun", run_dir=str(tmp_path)))
    assert np.isfinite(result.episode_return).all()
    with pytest.raises(ValueError, match="weight_init"):
        PPO(PPOConfig(**TINY, weight_init="glorot", run_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="unknown init"):
        make_actor_critic(spaces.Box(0.0, 1.0, (3,), jnp.float32), spaces.Discrete(2), weight_init="glorot")


@pytest.mark.parametrize("skip", [True, False])
def test_skip_ignored_actions_leaves_the_watching_steps_out_of_the_loss(tmp_path, skip):
    from mnemax.train.on_policy import Transition

    ppo = PPO(PPOConfig(**TINY, env="mnemax/Ballet-2-Delay16-Symbolic-v0", skip_ignored_actions=skip, run_dir=str(tmp_path)))
    params = jax.jit(ppo.init)(jax.random.key(0)).train_state.params
    steps, n = 6, 2
    obs = jax.random.uniform(jax.random.key(1), (steps, n, *ppo.env.observation_space(ppo.env_params).shape))
    phase = jnp.array([[0, 0], [0, 1], [0, 1], [1, 1], [1, 0], [1, 1]], jnp.int32)
    fields = {f: jnp.zeros((steps, n)) for f in Transition._fields}
    t = Transition(**fields)._replace(
        obs=obs, action=jnp.zeros((steps, n, 1), jnp.int32), log_prob=jnp.full((steps, n), -2.0),
        reset=jnp.zeros((steps, n), bool), extras={"phase": phase},
    )  # fmt: skip
    adv = jnp.arange(steps * n, dtype=jnp.float32).reshape(steps, n)
    batch = (ppo.network.initialize_carry(n), t, (adv, jnp.ones((steps, n))))
    # Other actions, old log-probabilities and advantages where the task ignored the action (phase 0).
    watching = phase == 0
    changed = t._replace(
        action=jnp.where(watching[..., None], 3, t.action), log_prob=jnp.where(watching, -0.5, t.log_prob)
    )
    changed_batch = (batch[0], changed, (jnp.where(watching, -50.0, adv), batch[2][1]))
    loss = jax.jit(ppo.loss)
    (same, _), (other, _) = loss(params, batch), loss(params, changed_batch)
    assert (float(same) == pytest.approx(float(other), rel=1e-6)) == skip


def test_masked_advantage_normalisation():
    from mnemax.train.ppo import normalize

    x = jnp.array([1.0, 3.0, 100.0, -7.0])
    where = jnp.array([True, True, False, False])
    np.testing.assert_allclose(np.asarray(normalize(x, where))[:2], [-1.0, 1.0], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(normalize(x)), np.asarray((x - x.mean()) / x.std()), rtol=1e-5)
