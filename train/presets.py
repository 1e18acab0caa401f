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
    # As shipped it solves passive L = 100 with GRU and FFM on every seed within 1e8 steps
    # (benchmarks/results/learning_tmaze_recipe_*).
    "tmaze": dict(
        num_envs=256, num_steps=512, num_minibatches=4, update_epochs=4, learning_rate=3e-4,
        ent_coef=0.0, barrier_coef=0.1, gamma=0.99, gae_lambda=0.95, memory_configs=LONG_TIMESCALES,
        train_env_params=dict(oracle_start_prob=0.5),
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
    # benchmarks/results/learning_ppo_ablations_h200 and learning_diagnostics_h200).
    "diagnostics": dict(
        num_envs=32, num_steps=1024, num_minibatches=4, update_epochs=4, learning_rate=1e-3,
        ent_coef=0.0, gamma=0.0, gae_lambda=0.95, max_grad_norm=10.0, memory_configs=LONG_TIMESCALES,
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
