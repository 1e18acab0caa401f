"""Hyperparameter presets per task family, shared by the CLI (``mnemax-train --preset NAME``) and the
learning benchmarks (``benchmarks/learning_curves.py``).

A preset is a set of configuration fields (the presets here set fields of PPO,
:class:`~mnemax.train.ppo.PPOConfig`), and the memory module's fields for the memories that need them;
flags given on the command line override both. ``TrainConfig.from_preset`` refuses a preset that sets
fields the algorithm does not have. Each preset below says where its values come from.
"""

from __future__ import annotations

from typing import Any

# Fields of the memory module per memory name (`memory_configs`): a preset names them for the memories
# that have them, and `preset(name, memory)` returns the one of the memory in use as `memory_config`.
LONG_TIMESCALES = {"gru": {"max_timescale": 1000}, "lstm": {"max_timescale": 1000}}

PRESETS: dict[str, dict[str, Any]] = {
    # T-Maze (Ni et al. 2023): one decision after a corridor of L steps with no slack, so one wrong step
    # loses the episode. Measured on passive L = 100 (benchmarks/results/learning_ppo_ablations_*):
    # * a fixed entropy bonus collapses the policy in the corridor before a turn at the junction is ever
    #   rewarded; the log barrier keeps every action possible, and per episode it costs the same at any L;
    # * the cue and the junction must share a BPTT window: rollouts of several whole episodes (all copies
    #   run in step, since every episode lasts L + 1 steps); 512 steps hold four to five at L = 100 (for
    #   longer corridors use a multiple of L + 1, at least twice it);
    # * recurrent memories need long time scales at init (`max_timescale`, GRU and LSTM): with the usual
    #   init a unit halves its memory every step and no gradient reaches the cue.
    # * active form: half the training episodes start on the oracle cell (`oracle_start_prob`, a start-state
    #   curriculum; evaluation plays the task itself). Without it, walking back to the cue is worth nothing
    #   until the memory knows what the cue means, and the memory learns that only from the ~1% of episodes
    #   that walk back by chance: at L = 10 (CPU, 6 M steps) 81% of those reached the junction and then
    #   turned at chance. With it, GRU walks back and turns right in every greedy episode of the real task
    #   at L = 10 (6 M steps, 3 seeds, CPU) and L = 30 (20 M steps, one seed); the passive task ignores it.
    # * LeCun-normal dense layers (memorax's init) instead of orthogonal ones: the same final success, sooner
    #   (training success past 0.6 at 16 M steps instead of 28 M on active L = 100, 33 M instead of 37 M on
    #   passive, GRU; FFM alike); at memorax's settings on L = 10 0.95 in 2.6-2.9 M steps instead of 4.7-5.2 M.
    #   Not the agents' default: with an entropy bonus as the only exploration (tests/test_learning.py's
    #   small run) LeCun solved 6 of 12 seeds, orthogonal 12 of 12; with this preset's barrier every seed
    #   measured was solved.
    # As shipped it solves passive and active L = 100 with GRU and passive with FFM on every seed within 1e8
    # steps (benchmarks/results/learning_tmaze_recipe_*).
    "tmaze": dict(
        num_envs=256, num_steps=512, num_minibatches=4, update_epochs=4, learning_rate=3e-4,
        ent_coef=0.0, barrier_coef=0.1, gamma=0.99, gae_lambda=0.95, memory_configs=LONG_TIMESCALES,
        train_env_params=dict(oracle_start_prob=0.5), weight_init="lecun",
    ),
    # POPGym-style diagnostics: a rewarded answer at every step, and no action changes what a task shows
    # next, so the best policy is the same for every discount and gamma = 0 gives each answer exactly its
    # own reward as advantage (no noise from the rewards of later answers). The rollout holds whole
    # episodes (RepeatFirst-Medium lasts 415 steps) so that gradients reach the first card, with few copies
    # so that 1.5e7 steps are ~460 updates. Measured on the CPU (GRU, one seed): RepeatFirst-Medium at
    # 32 envs x 832 steps went from -0.50 flat (gamma 0.99, entropy 0.01, lr 5e-4 annealed, clip 0.5) to
    # 1.00 by 1.7 M steps with gamma 0, no entropy bonus, lr 1e-3 and clip 10 (changed together). The rate
    # is annealed to 0 over the run: kept constant, CountRecall-Easy's return peaked near 0 at 8 M steps and
    # fell to -0.30 by 15 M with the policy's entropy (CPU, one seed); annealed, it ends at +0.15 / +0.11 /
    # +0.13 and RepeatFirst-Medium at 1.00 on three seeds each (H200, 15 M steps;
    # benchmarks/results/learning_ppo_ablations_h200 and learning_diagnostics_h200), but a second run of the
    # same settings ended one CountRecall seed at -0.17. With an entropy bonus of 0.01, CountRecall-Easy ends at
    # +0.14 / +0.21 / +0.12 and RepeatFirst-Medium at 1.00 on three seeds each (CPU, 15.6 M steps;
    # learning_ppo_ablations_cpu, runs *_annealed_entropy). With LeCun-normal dense layers as well,
    # CountRecall-Easy ends at +0.96 / +0.85 / +0.96 and RepeatFirst-Medium at 1.00 with GRU and FFM (H200,
    # learning_diagnostics_h200).
    "diagnostics": dict(
        num_envs=32, num_steps=1024, num_minibatches=4, update_epochs=4, learning_rate=1e-3,
        ent_coef=0.01, gamma=0.0, gae_lambda=0.95, max_grad_norm=10.0, memory_configs=LONG_TIMESCALES,
        weight_init="lecun",
    ),
    # Memory Gym (Pleines et al., JMLR 2024): the GRU recipe of MarcoMeter/recurrent-ppo-truncated-bptt
    # (configs/mortar_mayhem_grid.yaml), with a log barrier (0.1) for its entropy bonus (1e-4; below): 3
    # epochs x 8 minibatches, gamma 0.995, clip 0.1, gradient norm 0.25, GRU 512 with one 512 hidden layer
    # per head, whole episodes as sequences, lr 2.5e-4 decaying. Their 32 workers x 512 steps become 128
    # copies x 256 steps here (a Mortar Mayhem Grid episode lasts at most ~120 steps), twice their steps per update, so
    # 1.64e8 steps are 5,000 updates (theirs: 10,000). Their entropy bonus also decays (to 1e-6) and their
    # rate to 1e-5, not 0. TrXL: their 3 blocks and 118-step memory for Mortar Mayhem, at this preset's
    # width (512; theirs 384).
    # It replaces settings (1024-2048 copies x 128 steps, entropy 0.01, clip 0.2) under which neither
    # mnemax nor memorax got past a training return of ~0.2 in 85 M steps, an eighth of the updates this
    # recipe makes in the same steps. Measured first over 4e7 steps on symbolic Mortar Mayhem Grid
    # (orthogonal layers, 3 seeds): training return flat at 0.034 from 11 M steps, at 281 k steps/s on an
    # H200 (learning_ppo_ablations_h200, run mmg-memory_gym_preset); with LeCun-normal layers 0.049 / 0.095 /
    # 0.034 (run mmg-memory_gym_preset_lecun). The policy's entropy falls to 0.04-0.15 by 18 M steps in both,
    # the collapse of T-Maze. So, as in the `tmaze` preset, the log barrier replaces the entropy bonus, with
    # LeCun-normal layers: training return 0.261 / 0.036 / 0.158 at 40 M steps, entropy 0.72-0.93 (run
    # mmg-memory_gym_preset_barrier; memorax 1.0.1 at its own settings: 0.128 at 42 M steps). Over 1.64e8
    # steps it solves symbolic Mortar Mayhem Grid: greedy success 1.00 / 1.00 / 1.00 (3 seeds; training
    # success 0.51 / 0.48 / 0.19 at 66 M, 0.96 / 0.96 / 0.95 at 132 M; learning_memory_gym_symbolic_h200), and
    # on pixels, with bf16 compute, 0.996 / 1.00 / 0.996 (training success 0.90 / 0.80 / 0.84 at 125 M;
    # learning_memory_gym_h200); pixel Mystery Path Grid, bf16, 1.00 (seed 0; training success 0.89 at 46 M).
    # Symbolic Mystery Path Grid, bf16, 0.6 of the budget (98.3 M steps): GRU greedy 1.00 / 1.00 / 0.996, TrXL
    # 0.996 / 0.65 / 0.97 (learning_memory_gym_symbolic_h200).
    "memory_gym": dict(
        num_envs=128, num_steps=256, num_minibatches=8, update_epochs=3, learning_rate=2.5e-4,
        ent_coef=0.0, barrier_coef=0.1, clip_eps=0.1, gamma=0.995, gae_lambda=0.95, max_grad_norm=0.25,
        hidden_size=512, weight_init="lecun",
        # Initial states drawn 16 per environment at a time: Mystery Path's path search at every step took
        # half of a pixel GRU run's time (68 k env steps/s against Mortar Mayhem Grid's 129 k; with the pool,
        # redrawn only for the seeds that used up their spares, 125 k on an H200).
        reset_pool=16,
        # Time limits end episodes as failures, as in the reference PPO (Pleines et al.), which treats every
        # episode end as terminal. (Bootstrapping them once cost a second network call for every env at every
        # step, 39% of TrXL's acting on Mystery Path Grid; it now runs for the truncated envs alone, +2%.) The
        # pixel Mystery Path Grid GRU run of seed 0 above still bootstrapped its truncated episodes.
        bootstrap_truncated=False,
        memory_configs={"trxl": {"num_layers": 3, "num_heads": 4, "memory_length": 118}},
    ),
}  # fmt: skip


def names() -> list[str]:
    """The preset names, sorted."""
    return sorted(PRESETS)


def preset(name: str, memory: str) -> dict[str, Any]:
    """The configuration fields of preset ``name`` for the memory module ``memory``; ``ValueError`` for
    an unknown name."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(names())}")
    fields = dict(PRESETS[name])
    memory_configs = fields.pop("memory_configs", {})
    if memory in memory_configs:
        fields["memory_config"] = dict(memory_configs[memory])
    return fields
