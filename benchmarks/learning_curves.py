"""Learning curves of PPO memory agents on one device: a grid of (task, memory) runs, several seeds each.

    python benchmarks/learning_curves.py --preset tmaze --max-seconds 300
    python benchmarks/learning_curves.py --preset memory_gym --steps-scale 0.5
    python benchmarks/learning_curves.py --preset memory_gym_symbolic --update --device-label h100  # merge
    python benchmarks/learning_curves.py --preset tmaze --quick          # tiny sizes, a CPU check
    python benchmarks/learning_curves.py --preset ballet --max-seconds 480  # HCAM vs TrXL vs GRU, hardest first
    python benchmarks/learning_curves.py --preset ballet --runs ballet8-delay48-{hcam,trxl,gru}  # the paper's claim
    timeout 540 python benchmarks/learning_curves.py --preset tmaze_recipe --runs passive100-trxl --run-dir runs/lc
    python benchmarks/learning_curves.py --preset tmaze_recipe --runs passive100-trxl --run-dir runs/lc --resume

Every run trains all its seeds at once (``num_seeds``, vmapped) with :func:`mnemax.train.train` and records
the training curve (mean episode return and success per logging interval and seed) and the final greedy
success over 256 episodes per seed. Runs are started in order until the ``--max-seconds`` budget is spent;
the rest are recorded as skipped. Writes ``benchmarks/results/learning_<preset>_<device-label>.json``,
``.md`` (final success per run, mean and range over seeds, steps, wall time) and ``.png`` (curves).

Runs longer than one sitting: with ``--run-dir`` the runs' directories (checkpoints, ``metrics.csv``) stay
there. A run stopped by SIGTERM or SIGINT (e.g. an outer ``timeout``) saves a checkpoint at the end of its
current log interval, is recorded as interrupted (with its curve so far, which the plot draws) and ends the
script; the same command with ``--resume`` continues it from that checkpoint, and its curve and wall time
(``wall_seconds.txt`` in its directory) add up over the sittings. Without ``--run-dir`` the runs live in a
temporary directory.

Seeds in separate sittings: ``--first-seed K --seeds n`` trains seeds ``K .. K + n - 1`` (the same seeds as
in a run of all of them at once, whose seed ``i`` is ``i``), in the directory ``<name>-from-seed-K``. With
``--update``, a run whose seeds do not overlap the recorded ones of its name, at the same settings, joins
them in one row (per-seed results in seed order, curves together, wall time summed over the sittings): a
long run whose checkpoint for all seeds at once would be too large to keep can be trained a few seeds at a
time.

    python benchmarks/learning_curves.py --preset tmaze_recipe --runs passive100-gru --seeds 2 --update
    python benchmarks/learning_curves.py --preset tmaze_recipe --runs passive100-gru --seeds 1 --first-seed 2 --update

A grid in parallel: ``--shard K N`` keeps every N-th of the runs named (all the preset's by default), from
the K-th, and ``--pending`` (with ``--update``) leaves out those the report already holds measured; N
processes with K = 0 .. N - 1 split the grid between them, each run always in the same shard (the report is
written under a lock, so they can share it):

    for k in 0 1 2 3; do python benchmarks/learning_curves.py --preset diagnostics --update --device-label h200 \
        --pending --shard $k 4 & done; wait

A curriculum (runs that each start from the one before, ``init_from``) in one command: with ``--pending`` the
levels the report holds measured are passed over, the first unfinished one goes on (``--resume``), and one
that ends leaves what is left of ``--time-limit`` (counted for the whole sitting) to the next, unless
``--max-seconds`` has passed; the same command goes on with the chain:

    python benchmarks/learning_curves.py --preset object_permanence --run-dir runs/lc --resume --update --pending \
        --runs objperm4-delay16-hcam_items_parts_ent0.1_answers_curriculum \
        objperm8-delay48-hcam_items_parts_ent0.1_answers_curriculum --device-label h100 --time-limit 510 \
        --max-seconds 330

Reports written apart (each command updated its own copy of the report, e.g. on another machine):
``--merge-from A.json B.json`` merges their runs into the report of ``--device-label`` in that order, as
``--update`` does, and trains nothing:

    python benchmarks/learning_curves.py --preset ballet_curriculum --device-label h100 --merge-from a.json b.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import functools
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from common import (
    RESULTS, SittingClock, finish_fraction_panel, markdown_table, mean_over_seeds, merge_runs,
    metadata, panels, read_curve, report_label, resume_settings, run_progress, save_figure, write_report,
)  # fmt: skip
import mnemax.envs
from mnemax.train import PPOConfig, algorithms, train
from mnemax.train.loop import TrainingDiverged, TrainingInterrupted

# Hyperparameters shared by a preset's runs; each run overrides env, memory and its budget.
TMAZE_BASE = dict(num_envs=512, num_steps=128, num_minibatches=8, update_epochs=4, learning_rate=3e-4, ent_coef=0.05)
TRANSFORMER = {"num_layers": 2, "num_heads": 4}

# Ballet (Lampinen et al. 2021): HCAM against Transformer-XL and GRU on every level, hardest first, so that
# a short budget still covers the paper's claim (8 dancers, delay 48: the asked dance ended 48..512 steps
# before the instruction). Symbolic observations: pixels put a CNN in front of every memory, which costs
# compile and step time the budget does not have, and the task stays the same. (The paper's agent read
# pixels and a language instruction with a 4-layer memory and trained far longer.)
# Measured on one H100 (8-48, 3 seeds of 512 envs): HCAM ~210k env steps/s over the seeds and ~70 s per run
# of compiling and evaluating, Transformer-XL ~410k/s and ~30 s, GRU ~1M/s and ~18 s; 12 GB of GPU memory at
# most. HCAM's carry (2 x 2 layers x 36 chunks x 16 steps x 128 floats, ~1.3 MB per env) is stored at every
# window start: with bptt_length = num_steps that is one copy of ~2 GB for the 3 x 512 envs per update.
# Compiling the 18 runs alone takes ~12 minutes, so the grid cannot finish in 8. Budgets per seed: 8-48 7M
# steps (110 updates, ~14k episodes), 8-16 4M, every other level 3M (46 updates; steps in proportion to the
# episode length would leave 2-16 with 13 updates). The grid takes ~21 minutes, the claim alone ~5, and
# `--max-seconds 480` completes the two 8-dancer levels in ~8.5 minutes and skips the rest (each level ends
# with its longest run, HCAM, which starts there ~100 s before the deadline and ends ~30 s after it).
BALLET_BASE = dict(
    num_envs=512, num_steps=128, bptt_length=128, num_minibatches=8, update_epochs=4,
    ent_coef=0.01, hidden_size=128,
    bootstrap_truncated=False,  # Ballet episodes always terminate; skips a second network call per step
)  # fmt: skip
# From a short sweep on Ballet-2-Delay16 with small models (1M-2M steps, 2 seeds): GRU learns faster at 1e-3
# than at 3e-4, HCAM better at 3e-4 than at 1e-3; both attention memories get the same rate.
# LRU: the rate with which it learned the binding in the supervised probe (ballet_probe_cpu-labels-lru-*.md).
BALLET_LEARNING_RATE = {"gru": 1e-3, "trxl": 3e-4, "hcam": 3e-4, "s5": 3e-4, "lru": 1e-3}
# LRU started otherwise than the paper's long-range setting (phases up to 2 pi, radii on [0.9, 0.999]): the
# phases within pi / 10 (the paper's choice for its longest tasks), the radii on [0, 0.999]
LRU_SLOW_PHASES = {"max_phase": math.pi / 10}
LRU_RADII_FROM_0 = {"r_min": 0.0}
# (dancers, delay, env steps per seed)
BALLET_LEVELS = (
    (8, 48, 7_000_000), (8, 16, 4_000_000), (4, 48, 3_000_000), (4, 16, 3_000_000), (2, 48, 3_000_000), (2, 16, 3_000_000)
)  # fmt: skip


RECONSTRUCTION = {"aux_reconstruction": 0.1}  # the observation-reconstruction loss's weight in the `_recon` runs


# The recall-room tasks, each with the prefix of its runs' names.
RECALL_TASKS = {"Ballet": "ballet", "ObjectPermanence": "objperm"}


def recall_env(task: str, items: int, delay: int) -> str:
    """The symbolic id of a level of a recall-room task (:data:`RECALL_TASKS`): ``items`` dancers of Ballet,
    or boxes and objects of ObjectPermanence."""
    if task not in RECALL_TASKS:
        raise ValueError(f"unknown recall-room task {task!r}; one of {sorted(RECALL_TASKS)}")
    return f"mnemax/{task}-{items}-Delay{delay}-Symbolic-v0"


@functools.cache  # the presets ask for each level's length several times as the module loads
def recall_episode(task: str, items: int, delay: int) -> int:
    """The most steps of an episode of that level, as its environment counts them (Ballet-2-Delay16: two
    dances of 16 steps, each followed by 16 quiet ones, then 64 answer steps, 128 in all)."""
    env, params = mnemax.envs.make(recall_env(task, items, delay))
    return int(env.episode_length(params))


BALLET2_EPISODE = recall_episode("Ballet", 2, 16)
BALLET_TIMESCALES = {"gru": {"max_timescale": BALLET2_EPISODE}}
BALLET_DIAGNOSTIC = dict(
    env="mnemax/Ballet-2-Delay16-Symbolic-v0", num_envs=64, num_steps=128, bptt_length=128, num_minibatches=4,
    update_epochs=4, ent_coef=0.01, hidden_size=128, learning_rate=1e-3, bootstrap_truncated=False,
    total_steps=1_500_000,
)  # fmt: skip


def ballet_shown_run(memory: str, suffix: str = "", **settings) -> dict:
    """Ballet-2-Delay16 with the dances shown (nothing to recall) at the Ballet diagnostics' settings, with the
    items encoder, no policy loss on ignored actions, the entropy bonus 0.1 and the memory's Ballet learning
    rate, 6 M steps (``settings`` add to these and may replace the rate and the steps): does PPO train ``memory``
    to act on what it sees?"""
    return dict(BALLET_DIAGNOSTIC, name=f"ballet2-{memory}_items_parts_dances_shown_skip_ignored_ent0.1{suffix}",
                memory=memory, env_params={"show_dances": True}, skip_ignored_actions=True, ent_coef=0.1,
                item_encoder=True,
                **({"learning_rate": BALLET_LEARNING_RATE[memory], "total_steps": 6_000_000} | settings))  # fmt: skip


def ballet_recipe_run(memory: str, suffix: str = "", **settings) -> dict:
    """Ballet-2-Delay16 with the `memory_gym` preset (1e8 steps); the GRU with time scales over the episode."""
    spec = dict(preset="memory_gym", name=f"ballet2-delay16-{memory}_recipe{suffix}",
                env="mnemax/Ballet-2-Delay16-Symbolic-v0", memory=memory, bootstrap_truncated=False,
                total_steps=100_000_000, **settings)  # fmt: skip
    if memory in BALLET_TIMESCALES:
        spec["memory_config"] = BALLET_TIMESCALES[memory]
    return spec


def ballet_items_run(
    memory: str, suffix: str = "", memory_length: int | None = None, dancers: int = 2, delay: int = 16,
    task: str = "Ballet", **settings,
) -> dict:  # fmt: skip
    """Ballet (or another recall-room ``task``, :func:`recall_env`) with the items encoder, 1e8 steps, rollouts
    of the smallest multiple of 256 steps that holds one and a half of the longest episodes (256 on
    2-Delay16: two or three whole episodes in one back-propagation window). HCAM with a local window of 64
    steps; ``memory_length`` replaces Transformer-XL's window (:func:`ballet_memory`), and a ``memory_config``
    among the settings adds to the memory's."""
    episode = recall_episode(task, dancers, delay)
    window = {"local_length": 64} if memory == "hcam" else {}
    if memory_length is not None:
        window = {"memory_length": memory_length}
    steps = -(-3 * episode // 512) * 256
    memory_config = ballet_memory(memory, episode) | window | settings.pop("memory_config", {})
    return dict(BALLET_BASE, name=f"{RECALL_TASKS[task]}{dancers}-delay{delay}-{memory}_items{suffix}",
                env=recall_env(task, dancers, delay), memory=memory, item_encoder=True,
                memory_config=memory_config, num_envs=256, num_steps=steps, bptt_length=steps,
                **({"learning_rate": BALLET_LEARNING_RATE[memory], "total_steps": 100_000_000} | settings))  # fmt: skip


def ballet_level_run(
    memory: str, dancers: int, delay: int, total_steps: int, suffix: str, task: str = "Ballet", **settings
) -> dict:  # fmt: skip
    """A run of the recipe that learned 2-Delay16 (`ballet_hcam`) on a level of Ballet (or ``task``): entropy
    bonus 0.1, no policy loss on ignored actions, Transformer-XL with a window over the whole episode (the
    memory span HCAM's chunks keep), checkpoints of the training state alone; ``settings`` add to the recipe or
    replace its values."""
    window = recall_episode(task, dancers, delay) if memory == "trxl" else None
    recipe = dict(ent_coef=0.1, skip_ignored_actions=True, total_steps=total_steps, checkpoint_rollout=False)
    return ballet_items_run(memory, suffix, window, dancers, delay, task, **(recipe | settings))


def recall_curriculum(
    memory: str, levels: tuple[tuple[int, int, int], ...], start: str | None = None, task: str = "Ballet"
) -> list[dict]:  # fmt: skip
    """Runs of ``memory`` on ``levels`` (``(items, delay, steps)``) in turn, each started from the one before,
    the first from run ``start`` (or from scratch)."""
    runs = []
    for items, delay, steps in levels:
        run = ballet_level_run(memory, items, delay, steps, "_parts_ent0.1_answers_curriculum", task)
        runs.append(run | ({"init_from": start} if start else {}))
        start = run["name"]
    return runs


def ballet_curriculum(memory: str, start: str | None = None) -> list[dict]:
    """The `ballet_curriculum` runs of ``memory``: from run ``start`` of 2-Delay16, else from a 2-Delay16 run of
    2e8 steps trained here first."""
    levels = ((4, 16, 200_000_000), (4, 48, 100_000_000), (8, 16, 200_000_000), (8, 48, 100_000_000))
    if start is None:
        levels = ((2, 16, 200_000_000),) + levels
    return recall_curriculum(memory, levels, start)


TMAZE_SMALL = dict(env="mnemax/TMaze-Passive-v0", memory="gru", num_envs=32, num_steps=32, ent_coef=0.05, total_steps=200_000)


def ballet_memory(memory: str, episode: int) -> dict:
    """Same width and depth for both attention memories. HCAM keeps enough 16-step chunks for the whole
    episode (at most ``episode`` steps) and reads 4 of them in detail: about 36 + 4 * 16 + 16 keys per
    query on the longest level. Transformer-XL gets a dense window of 256 steps: twice that attention,
    a fifth of HCAM's carry, the whole episode on the shorter levels and half the dances of 8-48."""
    if memory == "hcam":
        return TRANSFORMER | {"chunk_size": 16, "top_k": 4, "memory_chunks": -(-episode // 16)}
    if memory == "trxl":
        return TRANSFORMER | {"memory_length": 256}
    return {}


# Transformer-XL with the items encoder in the Ballet diagnostics (6 M steps)
BALLET_TRXL_ITEMS = dict(
    BALLET_DIAGNOSTIC, memory="trxl", item_encoder=True, memory_config=ballet_memory("trxl", BALLET2_EPISODE),
    learning_rate=BALLET_LEARNING_RATE["trxl"], total_steps=6_000_000,
)  # fmt: skip


def memory_gym_runs(observation: str) -> list[dict]:
    """GRU and TrXL on Mortar Mayhem Grid and Mystery Path Grid with the `memory_gym` preset, at the
    reference's budget (1.64e8 steps); ``observation`` is "" or "-Symbolic". Then the same four with the
    encoder and memory in bfloat16 (mixed precision, ``<name>_bf16``; it solved pixel Mortar Mayhem Grid
    with the GRU on three seeds), and the memories trained by a parallel scan (S5, minGRU, FFM) on Mortar
    Mayhem Grid: their training passes are not a loop of 256 sequential steps, which is what bounds the
    GRU's update time. Last, GRU and TrXL in bf16 on the other tasks at their reference budgets (Pleines et
    al. 2024): Searing Spotlights (328 M) and free-movement Mortar Mayhem (492 M) with the observation
    reconstruction loss (``_recon``, weight 0.1 as CleanRL's ``ppo_trxl`` runs Mortar Mayhem; the paper
    reports it decisive on both), free-movement Mystery Path (410 M) and the three endless tasks (819 M;
    Endless Searing Spotlights, whose reference used the loss, with it)."""
    def run(task: str, memory: str, steps: int = 164_000_000) -> dict:
        return dict(preset="memory_gym", name=f"{task}{observation}-{memory}", env=f"mnemax/{task}{observation}-v0",
                    memory=memory, total_steps=steps)  # fmt: skip

    def bf16(spec: dict) -> dict:
        return dict(spec, name=f"{spec['name']}_bf16", agent_config={"dtype": "bfloat16"})

    def recon(spec: dict) -> dict:
        return dict(spec, name=f"{spec['name']}_recon", **RECONSTRUCTION)

    runs = [run(task, memory) for task in ("MortarMayhem-Grid", "MysteryPath-Grid") for memory in ("gru", "trxl")]
    scans = [run("MortarMayhem-Grid", memory) for memory in ("s5", "min_gru", "ffm")]
    budgets = {"SearingSpotlights": 328_000_000, "MortarMayhem": 492_000_000, "MysteryPath": 410_000_000}
    budgets |= {f"Endless{task}": 819_000_000 for task in ("MortarMayhem", "MysteryPath", "SearingSpotlights")}
    with_recon = {"SearingSpotlights", "MortarMayhem", "EndlessSearingSpotlights"}
    others = []
    for task, steps in budgets.items():
        for memory in ("gru", "trxl"):
            spec = bf16(run(task, memory, steps))
            others.append(recon(spec) if task in with_recon else spec)
    # Pixel Mystery Path Grid's GRU seed 0 was trained before the preset stopped bootstrapping the value of
    # episodes cut by the time limit (train/presets.py); its record keeps that setting under its own name.
    grid_gru = bf16(run("MysteryPath-Grid", "gru"))
    bootstrap = dict(grid_gru, name=f"{grid_gru['name']}_bootstrap", bootstrap_truncated=True)
    return runs + [bf16(spec) for spec in runs] + ([bootstrap] if observation == "" else []) + scans + others


# PPO ablations behind the recipes (the PPO issue): one change at a time on passive T-Maze L = 100 with a
# GRU, and on symbolic Mortar Mayhem Grid at the settings of the side-by-side run with memorax 1.0.1 (GRU 256,
# 2048 envs x 128 steps, 4 epochs, 4 minibatches, lr 3e-4, entropy 0.01, gamma 0.99, lambda 0.95).
ABLATION_TMAZE = dict(
    env="mnemax/TMaze-Passive-L100-v0", memory="gru", num_envs=256, num_steps=128, num_minibatches=4,
    update_epochs=4, learning_rate=3e-4, ent_coef=0.05, total_steps=20_000_000,
)  # fmt: skip
ABLATION_MMG = dict(
    env="mnemax/MortarMayhem-Grid-Symbolic-v0", memory="gru", hidden_size=256, num_envs=2048, num_steps=128,
    num_minibatches=4, update_epochs=4, learning_rate=3e-4, ent_coef=0.01, gamma=0.99, gae_lambda=0.95,
    total_steps=40_000_000,
)  # fmt: skip
MEMORAX_LIKE = dict(separate_critic=True, advantage_norm="batch", max_grad_norm=1.0, anneal_lr=False)
WHOLE_EPISODES = dict(num_steps=505)  # five T-Maze L = 100 episodes (101 steps, all copies in step)
# Per episode (T-Maze L = 100 episodes are 101 steps): 0.01 and 0.003 per step.
BARRIER = dict(barrier_coef=1.01, ent_coef=0.0)
SMALL_BARRIER = dict(barrier_coef=0.303, ent_coef=0.0)
TIMESCALES = dict(memory_config={"max_timescale": 1000})
# One GPU unless a run says otherwise (num_devices 0 would take every GPU of the host).
RECIPE_TMAZE = dict(preset="tmaze", total_steps=100_000_000, num_devices=1)
PASSIVE100 = dict(RECIPE_TMAZE, env="mnemax/TMaze-Passive-L100-v0")
# Active: 1e8 steps, as for passive (at L = 30 on the CPU a 9 M-step run had learned the cue from the
# curriculum's episodes by 5 M steps but not yet the step back when its learning rate ran out; with 20 M steps
# the step back took over from ~6 M).
ACTIVE100 = dict(RECIPE_TMAZE, env="mnemax/TMaze-Active-L100-v0", num_steps=510, total_steps=100_000_000)
# L = 1000: the rollout holds two whole episodes (1001 steps each), the budget of 5e8 steps.
PASSIVE1000 = dict(RECIPE_TMAZE, env="mnemax/TMaze-Passive-L1000-v0", num_steps=2002, total_steps=500_000_000)
# Half the training episodes start nearer the junction (log-uniform distances; the evaluation plays the task).
NEAR_STARTS = dict(oracle_start_prob=0.5, near_start_prob=0.5)


def diagnostics_runs() -> list[dict]:
    """Every -Easy and -Medium diagnostic with the `diagnostics` preset, each memory of the PPO issue and the
    memoryless agent, then the state-space and memory-token modules, 15M steps (POPGym's budget). The cells
    the issue names come first, so that a short --max-seconds covers them; --runs picks others.
    Transformer-XL's window holds the longest of these episodes (RepeatFirst-Medium, 415 steps)."""
    named = [(task, memory) for task in ("RepeatFirst-Medium", "CountRecall-Easy") for memory in ("gru", "none")]
    kinds = ("RepeatFirst", "RepeatPrevious", "CountRecall", "Autoencode", "NParity", "DelayedMatch")
    tasks = [f"{kind}-{level}" for kind in kinds for level in ("Easy", "Medium")]
    memories = ("gru", "lstm", "ffm", "trxl", "linear_attention", "none")
    cells = named + [(task, memory) for task in tasks for memory in memories if (task, memory) not in named]
    # The state-space and memory-token modules, on the two tasks with targets first, then on the rest.
    newer = ("min_gru", "s5", "mamba", "mamba2", "rate", "lru")
    cells += [(task, memory) for task in ("RepeatFirst-Medium", "CountRecall-Easy") for memory in newer]
    cells += [(task, memory) for task in tasks for memory in newer if (task, memory) not in cells]
    return [
        dict(
            preset="diagnostics", name=f"{task}-{memory}", env=f"mnemax/{task}-v0", memory=memory,
            memory_config=TRANSFORMER | {"memory_length": 512} if memory == "trxl" else {}, total_steps=15_000_000,
        )  # fmt: skip
        for task, memory in cells
    ]


PRESETS: dict[str, list[dict]] = {
    "diagnostics": diagnostics_runs(),
    "ppo_ablations": [  # the informative runs first, so that a cut by the time budget loses the least
        dict(ABLATION_TMAZE, **BARRIER, **WHOLE_EPISODES, name="tmaze100-barrier_episodes"),
        dict(ABLATION_MMG, name="mmg-defaults"),
        dict(ABLATION_MMG, **MEMORAX_LIKE, name="mmg-memorax_like"),
        dict(ABLATION_TMAZE, **BARRIER, **WHOLE_EPISODES, memory="none", name="tmaze100-barrier_episodes_nomemory"),
        dict(ABLATION_TMAZE, **BARRIER, name="tmaze100-barrier"),
        dict(ABLATION_MMG, separate_critic=True, name="mmg-critic"),
        dict(ABLATION_TMAZE, **BARRIER, **WHOLE_EPISODES, separate_critic=True, name="tmaze100-barrier_episodes_critic"),
        dict(ABLATION_TMAZE, name="tmaze100-entropy"),
        # Second round: a barrier scaled to the horizon (a wrong step ends any chance of reaching the
        # junction in time, so per-step exploration must be ~1/L) and memory time scales at init.
        dict(ABLATION_TMAZE, **SMALL_BARRIER, **WHOLE_EPISODES, total_steps=30_000_000, name="tmaze100-small_barrier_episodes"),
        dict(ABLATION_TMAZE, **SMALL_BARRIER, **WHOLE_EPISODES, **TIMESCALES, total_steps=30_000_000, name="tmaze100-small_barrier_episodes_timescales"),
        dict(ABLATION_TMAZE, **SMALL_BARRIER, **WHOLE_EPISODES, **TIMESCALES, total_steps=30_000_000, memory="lstm", name="tmaze100-lstm_small_barrier_episodes_timescales"),
        dict(ABLATION_TMAZE, **SMALL_BARRIER, **WHOLE_EPISODES, total_steps=30_000_000, memory="ffm", name="tmaze100-ffm_small_barrier_episodes"),
        dict(ABLATION_MMG, **TIMESCALES, name="mmg-timescales"),
        dict(ABLATION_MMG, linear_heads=True, name="mmg-linear_heads"),
        # Third round: a smaller barrier for the GRU (fewer wasted episodes), and the active task.
        dict(ABLATION_TMAZE, barrier_coef=0.1, ent_coef=0.0, **WHOLE_EPISODES, **TIMESCALES, total_steps=50_000_000,
             name="tmaze100-gru_barrier0.1_episodes_timescales"),
        dict(ABLATION_TMAZE, **SMALL_BARRIER, num_steps=510, **TIMESCALES, total_steps=30_000_000, memory="lstm",
             env="mnemax/TMaze-Active-L100-v0", name="tmaze100-active_lstm_small_barrier_episodes_timescales"),
        # Fourth round: the changes that helped on Mortar Mayhem, together (time scales, linear heads, and the
        # issue's one-seed finding: gradient clip 1.0 and a constant learning rate).
        dict(ABLATION_MMG, **TIMESCALES, linear_heads=True, max_grad_norm=1.0, anneal_lr=False, name="mmg-combined"),
        # Fifth round: the `diagnostics` preset then kept its learning rate constant; on CountRecall-Easy its training
        # return peaked near 0 at 8 M steps and fell after, with the policy's entropy. Annealed instead:
        dict(preset="diagnostics", env="mnemax/CountRecall-Easy-v0", memory="gru", anneal_lr=True, total_steps=15_000_000,
             name="countrecall-easy-diagnostics_annealed"),
        dict(preset="diagnostics", env="mnemax/RepeatFirst-Medium-v0", memory="gru", anneal_lr=True, total_steps=15_000_000,
             name="repeatfirst-medium-diagnostics_annealed"),
        # Sixth round: annealed, CountRecall-Easy's training return rose to -0.02 by 15 M steps with the policy's
        # entropy at 0.15 nats: confident and wrong on half the answers. What limits it: the memory's width, the
        # data per update, the updates per batch, the gradient clip, the learning rate, a separate critic, an
        # entropy bonus?
        *[
            dict(preset="diagnostics", env="mnemax/CountRecall-Easy-v0", memory="gru", anneal_lr=True,
                 total_steps=15_000_000, name=f"countrecall-easy-annealed_{name}", **change)
            for name, change in {
                "hidden256": dict(hidden_size=256), "epochs8": dict(update_epochs=8), "clip1": dict(max_grad_norm=1.0),
                "lr3e-4": dict(learning_rate=3e-4), "envs64": dict(num_envs=64), "critic": dict(separate_critic=True),
                "entropy": dict(ent_coef=0.01), "lr3e-3": dict(learning_rate=3e-3),
            }.items()
        ],
        # Seventh round, CPU-sized: active T-Maze with the `tmaze` preset's start-state curriculum (half the
        # training episodes start on the oracle cell; the greedy evaluation plays the task itself).
        dict(preset="tmaze", env="mnemax/TMaze-Active-v0", memory="gru", num_steps=120, total_steps=6_000_000,
             name="tmaze10-active_curriculum"),
        dict(preset="tmaze", env="mnemax/TMaze-Active-v0", memory="none", num_steps=120, total_steps=3_000_000,
             name="tmaze10-active_curriculum_nomemory"),
        dict(preset="tmaze", env="mnemax/TMaze-Active-v0", env_params={"corridor_length": 30}, memory="gru",
             num_steps=160, total_steps=9_000_000, name="tmaze30-active_curriculum"),
        dict(preset="tmaze", env="mnemax/TMaze-Active-v0", env_params={"corridor_length": 30}, memory="gru",
             num_steps=160, total_steps=20_000_000, name="tmaze30-active_curriculum_20M"),
        # Eighth round: the entropy bonus that lifted CountRecall-Easy (one seed) on the task the preset already
        # solves, before it goes into the preset (run `countrecall-easy-annealed_entropy` with 3 seeds beside it).
        dict(preset="diagnostics", env="mnemax/RepeatFirst-Medium-v0", memory="gru", ent_coef=0.01,
             total_steps=15_000_000, name="repeatfirst-medium-annealed_entropy"),
        # Ninth round: symbolic Mortar Mayhem Grid with the `memory_gym` preset (the Memory Gym paper's GRU
        # recipe: 8x the updates per env step of the runs above, entropy 1e-4, clip 0.1, gamma 0.995), beside
        # `mmg-defaults` at the same budget.
        dict(preset="memory_gym", env="mnemax/MortarMayhem-Grid-Symbolic-v0", memory="gru", total_steps=40_000_000,
             name="mmg-memory_gym_preset"),
        # Tenth round: memorax's LeCun-normal dense layers in place of orthogonal ones (T-Maze L = 10 at
        # memorax's settings reached 0.95 in 2.6-2.9 M steps with them, 4.7-5.2 M without).
        dict(preset="memory_gym", env="mnemax/MortarMayhem-Grid-Symbolic-v0", memory="gru", total_steps=40_000_000,
             weight_init="lecun", name="mmg-memory_gym_preset_lecun"),
        # Eleventh round: with either init the preset's policy entropy fell to 0.04-0.15 by 18 M steps while
        # the return stayed near 0.035 (the collapse of T-Maze); the log barrier in place of its entropy bonus.
        dict(preset="memory_gym", env="mnemax/MortarMayhem-Grid-Symbolic-v0", memory="gru", total_steps=40_000_000,
             weight_init="lecun", barrier_coef=0.1, ent_coef=0.0, name="mmg-memory_gym_preset_barrier"),
    ],
    # The `tmaze` preset of train/presets.py as it ships, at the PPO issue's budgets (1e8 steps per seed at
    # L = 100), with the memoryless agent as the check that memory does the work. Active T-Maze episodes
    # last L + 2 steps, so its rollout holds five of them (510 steps).
    "tmaze_recipe": [
        dict(PASSIVE100, name="passive100-gru", memory="gru"),
        dict(PASSIVE100, name="passive100-none", memory="none"),
        dict(ACTIVE100, name="active100-gru", memory="gru"),
        dict(PASSIVE100, name="passive100-ffm", memory="ffm"),
        dict(ACTIVE100, name="active100-none", memory="none"),
        dict(PASSIVE100, name="passive100-lstm", memory="lstm", total_steps=50_000_000),
        # Transformer-XL's window holds one whole episode (101 steps) and the step before it.
        dict(PASSIVE100, name="passive100-trxl", memory="trxl", memory_config=TRANSFORMER | {"memory_length": 128}),
        dict(ACTIVE100, name="active100-lstm", memory="lstm"),
        # The fast memory first where the budget is long: FFM trains ~5x faster than a GRU here.
        dict(PASSIVE1000, name="passive1000-ffm", memory="ffm"),
        dict(PASSIVE1000, name="passive1000-none", memory="none", total_steps=100_000_000),
        dict(ACTIVE100, name="active100-ffm", memory="ffm", total_steps=300_000_000),
        # The newer memories (minGRU, S5, Mamba, RATE, Mamba-2, LRU) with the same recipe.
        *(dict(PASSIVE100, name=f"passive100-{memory}", memory=memory) for memory in ("min_gru", "s5", "mamba", "rate", "mamba2", "lru")),
        # L = 1000 with half the training episodes starting nearer the junction (log-uniform distances): the
        # runs above settled on walking on at the junction, a state seen once in 1001 steps, before a turn
        # was ever rewarded.
        *(
            dict(PASSIVE1000, name=f"passive1000-{memory}_near_start", memory=memory, total_steps=steps,
                 train_env_params=NEAR_STARTS)
            for memory, steps in (("ffm", 500_000_000), ("s5", 500_000_000), ("none", 100_000_000))
        ),
        # The same run as `active100-gru` on two GPUs of one host (the environments split between them): the
        # plot puts both against wall-clock seconds.
        dict(ACTIVE100, name="active100-gru_2gpus", memory="gru", num_devices=2),
        # A run whose batch fills a GPU (768 copies x 2002 steps per update, FFM's parallel scan over time):
        # `passive1000-ffm_near_start` on two GPUs.
        dict(PASSIVE1000, name="passive1000-ffm_near_start_2gpus", memory="ffm", num_devices=2,
             train_env_params=NEAR_STARTS),
    ],
    # Passive T-Maze: the cue must be carried over the whole corridor (Ni et al. 2023).
    "tmaze": [
        dict(
            TMAZE_BASE,
            name=f"tmaze{length}-{memory}",
            env="mnemax/TMaze-Passive-v0",
            env_params={"corridor_length": length},
            memory=memory,
            memory_config=TRANSFORMER | {"memory_length": length + 8} if memory == "trxl" else {},
            bptt_length=128,
            total_steps=steps,
        )
        for length, steps in ((100, 10_000_000), (500, 20_000_000), (1000, 30_000_000))
        for memory in ("gru", "lstm", "trxl", "ffm")
    ],
    # Memory Gym grid tasks: GRU against TrXL (Pleines et al. report TrXL as the more sample-efficient on
    # these finite tasks). Pixels as in the paper; the symbolic variant (same rules, the grid as a vector)
    # drops the CNN and trains over ten times faster (GRU on one H100: ~510 k env steps/s against ~26 k with
    # pixels), which affords step budgets that begin to show learning.
    "memory_gym": memory_gym_runs(""),
    "memory_gym_symbolic": memory_gym_runs("-Symbolic"),
    "ballet": [
        dict(
            BALLET_BASE,
            name=f"ballet{dancers}-delay{delay}-{memory}",
            env=recall_env("Ballet", dancers, delay),
            memory=memory,
            memory_config=ballet_memory(memory, recall_episode("Ballet", dancers, delay)),
            learning_rate=BALLET_LEARNING_RATE[memory],
            total_steps=steps,
        )
        for dancers, delay, steps in BALLET_LEVELS
        for memory in ("gru", "trxl", "hcam")
    ],
    # Ballet with 2 dancers at a budget that begins to count (1e8 steps per seed; the levels above stop at
    # 3-7 M). The supervised probe (ballet_probe.py) recognised the first dance with S5 and Transformer-XL from
    # 12,800 episodes, and with the GRU only once its keep gates started spread over time scales of up to
    # 100 steps (at the default init it stayed at 0.5): the GRU gets time scales up to the episode's length.
    # S5 takes the attention memories' learning rate (not swept).
    "ballet_long": [
        dict(BALLET_BASE, name=f"ballet2-delay16-{memory}", env="mnemax/Ballet-2-Delay16-Symbolic-v0", memory=memory,
             memory_config=ballet_memory(memory, BALLET2_EPISODE) | BALLET_TIMESCALES.get(memory, {}),
             learning_rate=BALLET_LEARNING_RATE[memory], total_steps=100_000_000)
        for memory in ("s5", "trxl", "hcam", "gru")
    ],  # fmt: skip
    # At 1e8 steps (~1.35 M episodes per seed) every memory stayed at chance, while the supervised probe
    # taught S5 the binding from ~435,000 labelled episodes (ballet_probe_h200-768k-s5): S5 at the budget
    # the Ballet targets allow, 1e9 steps per seed (~13.5 M episodes; ~1,000 s for 3 seeds on an H200), with
    # rollouts of 512 steps and BPTT over all of them: an episode (~75-100 steps) then lies whole in one
    # back-propagation window unless it crosses the rollout's end (about 1 in 5), where with 128-step
    # rollouts about 3 in 4 were cut between the dances and the answer.
    "ballet_1e9": [
        dict(BALLET_BASE, name="ballet2-delay16-s5_1e9", env="mnemax/Ballet-2-Delay16-Symbolic-v0", memory="s5",
             memory_config=ballet_memory("s5", BALLET2_EPISODE), learning_rate=BALLET_LEARNING_RATE["s5"],
             num_envs=256, num_steps=512, bptt_length=512, total_steps=1_000_000_000),
    ],
    # Every Ballet run above kept the early settings (entropy bonus 0.01, orthogonal layers, width 128); the
    # recipe that solved T-Maze and Mortar Mayhem Grid (the `memory_gym` preset: log barrier, LeCun-normal
    # layers, 3 epochs x 8 minibatches, clip 0.1, gamma 0.995, width 512, rollouts of 256 steps that hold
    # two to three whole episodes) was never tried on it: S5 and the GRU with time scales over the episode.
    # `_recon`: with the observation-reconstruction loss (weight 0.1), which the agents of Lampinen et al. were
    # trained with (their Fig. 1d: the memory's output decoded for self-supervised losses beside the RL ones)
    # and Ballet's runs here never were; with the paper's memories (TrXL as the preset sets it for Memory Gym).
    "ballet_recipe": [ballet_recipe_run(memory) for memory in ("s5", "gru")]
    + [ballet_recipe_run(memory, "_recon", **RECONSTRUCTION) for memory in ("gru", "trxl", "hcam")],
    # Why nothing learns Ballet (the HCAM issue), small enough for a CPU: can an agent walk to the only
    # dancer of a room (no memory needed), and does a GRU do better on two dancers when its rollouts hold
    # several whole episodes (dances and answer in one back-propagation window) than with 128-step ones?
    "ballet_diagnostics": [
        dict(BALLET_DIAGNOSTIC, name="ballet1-none", env_params={"num_dancers": 1}, memory="none",
             total_steps=1_000_000),
        dict(BALLET_DIAGNOSTIC, name="ballet2-gru_rollout128", memory="gru"),
        dict(BALLET_DIAGNOSTIC, name="ballet2-gru_rollout512", memory="gru", num_envs=16, num_steps=512,
             bptt_length=512),
        # S5 recognised the dances in the supervised probe where the GRU did not: the same run with S5.
        dict(BALLET_DIAGNOSTIC, name="ballet2-s5_rollout128", memory="s5"),
        # ... and the GRU with the keep-gate time scales with which it recognised them there.
        dict(BALLET_DIAGNOSTIC, name="ballet2-gru_timescales_rollout128", memory="gru",
             memory_config=BALLET_TIMESCALES["gru"]),
        # Memory taken out: the answer phase shows which dance each spot's dancer performed (`show_dances`).
        # How long does PPO take to learn the answer phase's policy alone (walk to the spot whose dance is
        # named), against the memoryless agent on the task itself (half right at best)?
        dict(BALLET_DIAGNOSTIC, name="ballet2-none_dances_shown", memory="none", env_params={"show_dances": True},
             total_steps=15_000_000),
        dict(BALLET_DIAGNOSTIC, name="ballet2-none", memory="none", total_steps=6_000_000),
        # ... and the same with 4x the width (512, as the memory_gym preset), for its first 6 M steps
        dict(BALLET_DIAGNOSTIC, name="ballet2-none_dances_shown_width512", memory="none",
             env_params={"show_dances": True}, hidden_size=512, total_steps=6_000_000),
        # ... and with the observation-reconstruction loss of Lampinen et al.'s agents: does it shape the
        # encoder so that the answer policy comes sooner?
        dict(BALLET_DIAGNOSTIC, name="ballet2-none_dances_shown_width512_recon", memory="none",
             env_params={"show_dances": True}, hidden_size=512, total_steps=6_000_000, **RECONSTRUCTION),
        # ... and with the `memory_gym` preset (log barrier, LeCun-normal layers, clip 0.1, gamma 0.995, 128
        # envs x 256 steps, 3 epochs x 8 minibatches), which solved T-Maze and Mortar Mayhem Grid and was never
        # run on Ballet: at its width (512) and at the Ballet presets' (128)
        dict(preset="memory_gym", name="ballet2-none_dances_shown_memory_gym", env=BALLET_DIAGNOSTIC["env"],
             memory="none", env_params={"show_dances": True}, total_steps=6_000_000),
        dict(preset="memory_gym", name="ballet2-none_dances_shown_memory_gym_width128", env=BALLET_DIAGNOSTIC["env"],
             memory="none", env_params={"show_dances": True}, hidden_size=128, total_steps=6_000_000),
        # ... and the Ballet diagnostics' settings without the entropy bonus: does the bonus (entropy 1.3-1.7 of
        # ln 8 all along in `ballet2-none_dances_shown`) keep the answer policy from committing to a dancer?
        dict(BALLET_DIAGNOSTIC, name="ballet2-none_dances_shown_no_entropy", memory="none",
             env_params={"show_dances": True}, ent_coef=0.0, total_steps=6_000_000),
        # ... and with the dance steps (whose actions the task ignores: 64 of the ~67 steps of an episode) left
        # out of the policy loss and the advantages' normalisation: is their noise what slows the answer down?
        dict(BALLET_DIAGNOSTIC, name="ballet2-none_dances_shown_skip_ignored", memory="none",
             env_params={"show_dances": True}, skip_ignored_actions=True, total_steps=6_000_000),
        # ... and with the entropy bonus 0.1 on those answer steps (ballet2-delay16-trxl_items_ent0.1_answers of
        # the ballet_entropy preset: at chance, its answer moves' entropy 1.91 of ln 8): does so large a bonus
        # keep even the memoryless walk to a shown dancer from being learned? No: 0.745 at 5.9 M steps, against 0.536.
        dict(BALLET_DIAGNOSTIC, name="ballet2-none_dances_shown_skip_ignored_ent0.1", memory="none",
             env_params={"show_dances": True}, skip_ignored_actions=True, ent_coef=0.1, total_steps=6_000_000),
        # ... and with the items encoder (each spot's square read by one layer shared by the 8 spots), with
        # which the supervised probe read the shown dances 3x sooner than with the MLP alone
        # (ballet_probe_cpu-dances-shown{,-spots}); then on the task itself, with Transformer-XL, which learned
        # the binding from 51,200 labelled episodes with the shared layer (ballet_probe_h200-encoders)
        dict(BALLET_DIAGNOSTIC, name="ballet2-none_dances_shown_items", memory="none",
             env_params={"show_dances": True}, item_encoder=True, total_steps=6_000_000),
        dict(BALLET_TRXL_ITEMS, name="ballet2-trxl_items"),
        # ... and with the dance steps left out of the policy loss: with a memory, their actions' noise (64 of
        # the ~67 steps of an episode) reaches the memory's parameters too, which it could not in the memoryless
        # `_skip_ignored` run above (ballet2-delay16-trxl_items of the ballet_items preset, without the option:
        # at chance after 1e8 steps)
        dict(BALLET_TRXL_ITEMS, name="ballet2-trxl_items_skip_ignored", skip_ignored_actions=True),
        # (The `_items` runs above used the items encoder's first form, the codes beside an MLP over the whole
        # flattened room.) Its present form reads the instruction and the rest of the room each through a layer
        # of its own, with which the probe taught from reward learns the binding (ballet_probe_cpu-reward-trxl-
        # items-parts): the memoryless walk to a shown dancer with it, as `_skip_ignored_ent0.1` above
        dict(BALLET_DIAGNOSTIC, name="ballet2-none_dances_shown_skip_ignored_ent0.1_parts", memory="none",
             env_params={"show_dances": True}, skip_ignored_actions=True, ent_coef=0.1, item_encoder=True,
             total_steps=6_000_000),
        # ... and Transformer-XL with it on the task itself, the same options
        dict(BALLET_TRXL_ITEMS, name="ballet2-trxl_items_parts_skip_ignored_ent0.1", skip_ignored_actions=True,
             ent_coef=0.1),
        # ... and with the dances shown: does PPO with Transformer-XL learn the walk to a named dancer as the
        # memoryless agent does when nothing has to be recalled? (If not, the trouble is in the memory's
        # training under PPO, not in recall.)
        ballet_shown_run("trxl", memory_config=ballet_memory("trxl", BALLET2_EPISODE), total_steps=3_000_000),
        # ... and LRU so, which learns the binding in the probe, from the reward alone too, and stays at chance
        # under PPO on the task itself, whatever single setting changes (ballet_lru, ballet_lru_ablations): does
        # PPO train it to act on what it sees, as the memoryless agent with these options (0.92 at 5.9 M)? Then
        # with the gradients' global norm clipped at 100 instead of 0.5 (LRU's phases, theta_log, hold nearly
        # all of it), with the phases started within pi / 10 (the LRU paper's choice for its longest tasks)
        # instead of 2 pi
        ballet_shown_run("lru"),
        ballet_shown_run("lru", "_clip100", max_grad_norm=100.0),
        ballet_shown_run("lru", "_phase0.1pi", memory_config=LRU_SLOW_PHASES),
        # ... and with that, the clipping at 100 too, or the radii started on [0, 0.999] instead of [0.9, 0.999]
        # (shorter horizons blur the step's own input less), and those radii alone
        ballet_shown_run("lru", "_phase0.1pi_clip100", memory_config=LRU_SLOW_PHASES, max_grad_norm=100.0),
        ballet_shown_run("lru", "_phase0.1pi_rmin0", memory_config=LRU_SLOW_PHASES | LRU_RADII_FROM_0),
        ballet_shown_run("lru", "_rmin0", memory_config=LRU_RADII_FROM_0),
        # ... and the GRU so
        ballet_shown_run("gru"),
        # ... and S5, the other diagonal complex recurrence (at chance on the task itself: ballet_long)
        ballet_shown_run("s5"),
    ],
    # Ballet-2-Delay16 with the items encoder at a budget that counts (1e8 steps per seed): with it the
    # supervised probe taught Transformer-XL the binding (ballet_probe_cpu-items-trxl), where with the MLP
    # alone the probe stayed under 0.9 after 768,000 episodes and PPO at chance after 1e8 steps
    # (learning_ballet_long_h200). Rollouts of 256 steps hold two or three whole episodes in one
    # back-propagation window. HCAM with a local window of 64 steps, with which the probe taught it the
    # binding from 32,000 episodes (0.57 after 768,000 with the default 16: ballet_probe_cpu-hcam-local64,
    # ballet_probe_h200-encoders). Transformer-XL stayed at chance (one seed, learning_ballet_items_h100).
    "ballet_items": [ballet_items_run(memory) for memory in ("trxl", "hcam")],
    # The same with a larger entropy bonus (0.03, 0.1; the runs above: 0.01). The probe taught from reward alone
    # (ballet_probe.py --objective reward) commits its softmax to one dancer within 15 updates and stays at
    # chance, even with the exact expected reward in place of the drawn answer; with an entropy bonus of 0.1
    # and 512 episodes per update it learns the binding (0.96 and 0.93 after 153,600 episodes, labels 0.95 at
    # 107,520: ballet_probe_cpu-{expected-reward,reward}-trxl-batch512-entropy0.1), and at 64 per update on two
    # seeds and with HCAM (0.855, 0.922; 0.876: ballet_probe_cpu-reward-*-entropy0.1*). PPO normalises its
    # advantages to unit scale (the probe's are +-0.5) and spreads the answer over the walk's steps, so the
    # bonus that matches is not known: two of them, and 0.1 on the answer phase's steps alone (the bonus on the
    # 64 watching steps, whose actions are ignored, only pads the mean entropy; skip_ignored_actions). All three
    # at chance at 68 M steps (learning_ballet_entropy_h100).
    "ballet_entropy": [ballet_items_run("trxl", ent_coef=coef, suffix=f"_ent{coef:g}") for coef in (0.03, 0.1)]
    + [ballet_items_run("trxl", ent_coef=0.1, skip_ignored_actions=True, suffix="_ent0.1_answers")],
    # (Those runs used the items encoder's first form, the codes beside an MLP over the whole flattened room.)
    # The last of them with the encoder's present form, which reads the instruction and the rest of the room
    # each through a layer of its own and with which the probe taught from reward learns the binding
    # (ballet_probe_cpu-reward-trxl-items-parts, at 1e-3 and 3e-4), for Transformer-XL and HCAM; and Transformer-XL
    # at 1e-3 too (the presets' 3e-4 came from a sweep in which nothing learned the binding)
    "ballet_parts": [
        ballet_items_run(memory, ent_coef=0.1, skip_ignored_actions=True, suffix="_parts_ent0.1_answers")
        for memory in ("trxl", "hcam")
    ]
    + [ballet_items_run("trxl", ent_coef=0.1, skip_ignored_actions=True, learning_rate=1e-3,
                        suffix="_parts_ent0.1_answers_lr1e-3")]
    # Transformer-XL with HCAM's local window (64 steps) instead of 256: HCAM learned and Transformer-XL did
    # not, and in the probes HCAM bound the dances only with a local window that holds them, so is it the
    # window's length rather than HCAM's chunk read that made the difference?
    + [ballet_items_run("trxl", ent_coef=0.1, skip_ignored_actions=True, memory_length=64,
                        suffix="_parts_ent0.1_answers_window64")],  # fmt: skip
    # HCAM learned there (greedy 0.72 at 1e8 steps, rising until the learning rate had decayed; Transformer-XL at
    # chance): three seeds at twice the budget. Its checkpoints keep no carries (checkpoint_rollout=False), which
    # for three seeds of 256 copies hold whole episodes of every layer's inputs, so that the run can go on
    # elsewhere from a checkpoint of the training state alone.
    "ballet_hcam": [ballet_level_run("hcam", 2, 16, 200_000_000, "_parts_ent0.1_answers_2e8")],
    # The same recipe with LRU, the recurrence that learned Ballet's binding fastest in the supervised probe
    # (from labels, 0.95 of held-out episodes by 128 thousand episodes on two seeds with the items encoder, where
    # the GRU stayed at chance after 1.2 M and S5 needed ~435 thousand with the flat encoder;
    # ballet_probe_cpu-labels-lru-items-parts*.md): can a recurrent memory learn 2-Delay16 from the reward
    # alone, as HCAM did?
    "ballet_lru": [ballet_level_run("lru", 2, 16, 200_000_000, "_parts_ent0.1_answers_2e8")],
    # It did not (greedy 0.52 / 0.46 / 0.48 at 2e8 steps, learning_ballet_lru_h100.md), though the probe learns
    # the binding from the reward alone too (0.70 of held-out episodes at 128 thousand episodes, where PPO saw
    # ~2.5 M per seed). What in PPO keeps it from that, at half the budget: the clipping of the gradients' global
    # norm to 0.5 (for the trained seed 0 a norm of 5.3, 5.2 of it on LRU's phases, theta_log, so every step is
    # scaled by 0.09, gradient_norms_cpu-ballet2-lru-trained.md; the probe so clipped learned from labels, more
    # slowly, and from the reward ~70 thousand episodes later than unclipped, to the same level), the value loss
    # reaching the memory (a critic of its own), the entropy bonus (0.01), the learning rate (3e-4), the width
    # (256)? None of them alone: all five at chance at 1e8 (greedy 0.46-0.56; with the bonus at 0.01 the policy
    # commits, entropy 0.50-0.57, to the wrong dancer half the time; learning_ballet_lru_ablations_h100.md).
    # With the dances shown (ballet_diagnostics, CPU) PPO trains the GRU to walk to the shown dancer (0.96 at
    # 5.9 M steps) but not LRU as it ships (0.43; the memoryless agent 0.92); with its phases started within
    # pi / 10 instead of 2 pi (the LRU paper's choice for its longest tasks) 0.64, and with its radii on
    # [0, 0.999] too 0.83: the sixth and seventh runs, at chance on the task itself all the same (greedy 0.45-0.48
    # and 0.46-0.59; learning_ballet_lru_ablations_h100-phase.md).
    "ballet_lru_ablations": [
        ballet_level_run("lru", 2, 16, 100_000_000, f"_parts_answers_1e8{suffix}", **change)
        for suffix, change in (("_clip100", {"max_grad_norm": 100.0}), ("_critic", {"separate_critic": True}),
                               ("_ent0.01", {"ent_coef": 0.01}), ("_lr3e-4", {"learning_rate": 3e-4}),
                               ("_width256", {"hidden_size": 256}),
                               ("_phase0.1pi", {"memory_config": LRU_SLOW_PHASES}),
                               ("_phase0.1pi_rmin0", {"memory_config": LRU_SLOW_PHASES | LRU_RADII_FROM_0}))
    ],  # fmt: skip
    # The harder levels with the recipe that learned 2-Delay16 (ballet_hcam's three seeds: training success 0.85 /
    # 0.88 / 0.84 at 96 M of 2e8 steps): HCAM against Transformer-XL with a window over the whole episode (the
    # same memory span), 5e8 steps, checkpoints of the training state alone. The HCAM issue's targets: on
    # 4-Delay48 HCAM >= 0.9; on 8-Delay48 HCAM >= 0.8 and ahead of Transformer-XL by >= 0.2.
    "ballet_levels": [
        ballet_level_run(memory, dancers, 48, 500_000_000, "_parts_ent0.1_answers_5e8")
        for dancers in (4, 8) for memory in ("hcam", "trxl")
    ],  # fmt: skip
    # A curriculum over the levels: the network's parameters do not depend on the level (the observation, the
    # actions and the layers are the same; only HCAM's number of chunks and Transformer-XL's window differ), so
    # each run starts from the one before (its seed i starts seed i; the optimizer and schedule start fresh).
    # Played untrained on the other levels, the 2-Delay16 HCAM agents keep 0.91-0.97 on 2-Delay48 but are
    # near chance with 4 or 8 dancers (results/ballet_transfer_cpu.md): the delay carries over, the number of
    # dancers does not. So each dancer count is learned on the short delay, whose episodes are shorter
    # (4-Delay16: 192 steps at most against 320), then carried to delay 48. Steps count on top of the runs each
    # starts from: 2e8 on 2-Delay16 (HCAM: ballet_hcam's run), then 2e8 + 1e8 on 4-Delay16 / 4-Delay48, then
    # 2e8 + 1e8 on 8-Delay16 / 8-Delay48: 8e8 in all, within the HCAM issue's 1e9 per run. Transformer-XL goes
    # the same way with a window over the whole episode (the memory span HCAM's chunks keep). Each run needs the
    # one before it in --run-dir.
    "ballet_curriculum": ballet_curriculum("hcam", "ballet2-delay16-hcam_items_parts_ent0.1_answers_2e8")
    + ballet_curriculum("trxl"),
    # Object permanence (the HCAM issue asks for HCAM and Transformer-XL on ObjectPermanence-8-Delay48) with the
    # same recipe and the same order as Ballet's curriculum: 4 boxes with the short delay first (144 steps at
    # most), then 8 boxes with delay 48 (480) from it, 2e8 steps each. The observation differs from Ballet's
    # (the tiles' channels), so the chain starts from scratch rather than from a Ballet agent.
    "object_permanence": [
        run for memory in ("hcam", "trxl")
        for run in recall_curriculum(memory, ((4, 16, 200_000_000), (8, 48, 200_000_000)), task="ObjectPermanence")
    ],  # fmt: skip
    # The dense layers' initialisation in the small T-Maze run of tests/test_learning.py (32 envs, 2e5 steps,
    # entropy bonus 0.05): run with --seeds 12.
    "init_small": [
        dict(TMAZE_SMALL, name=f"tmaze10-{weight_init}", weight_init=weight_init)
        for weight_init in ("orthogonal", "lecun")
    ],
}


def spec_config(spec: dict, **settings) -> PPOConfig:
    """The trainer's config of a run ``spec`` of :data:`PRESETS` (without its ``name``), ``settings`` on top."""
    spec = dict(spec)
    preset = spec.pop("preset", "")
    return PPOConfig.from_preset(preset, **spec, **settings) if preset else PPOConfig(**spec, **settings)


def run_one(
    spec: dict, seeds: int, steps_scale: float, run_dir: str, quick: bool, resume: bool = False, first_seed: int = 0,
    time_limit: float = 0.0,
) -> dict:  # fmt: skip
    """Train one run of a preset, seeds ``first_seed .. first_seed + seeds - 1``; ``resume`` continues it from
    a checkpoint in ``run_dir`` if it has one; ``time_limit`` is the trainer's (seconds of training, 0: none).

    Raises :class:`RunInterrupted` (after writing ``wall_seconds.txt``) when a signal stopped it."""
    spec = dict(spec)
    name = spec.pop("name")
    spec["total_steps"] = int(spec["total_steps"] * steps_scale)
    if quick:
        spec.update(num_envs=16, num_steps=16, bptt_length=8, num_minibatches=2, total_steps=16 * 16 * 4, hidden_size=32)
    directory = f"{name}-from-seed-{first_seed}" if first_seed else name
    path = Path(run_dir) / directory  # the trainer's directory for the run
    settings = dict(seed=first_seed, num_seeds=seeds, num_logs=25, run_name=directory, run_dir=run_dir, video=False,
                    progress=False, eval_episodes=256, time_limit=time_limit, **resume_settings(path, resume))  # fmt: skip
    if spec.get("init_from"):  # the name of another run in run_dir, whose parameters start this one
        spec["init_from"] = str(Path(run_dir) / spec["init_from"])
        trained, total = (0, 0) if settings["resume"] else run_progress(Path(spec["init_from"]))
        if trained < total:  # a curriculum's next level would start from a half-trained network, unreported
            raise SystemExit(
                f"learning_curves.py: {name} starts from {spec['init_from']}, which has trained {trained:,} of its "
                f"{total:,} steps per seed; finish that run first (--resume)"
            )
    config = spec_config(spec, **settings)
    # the requested resume, not config.resume: a sitting stopped before the first checkpoint (compiling) took
    # time too, although its run starts again (as context_edit.py counts it)
    clock = SittingClock(path / "wall_seconds.txt", resume)
    try:
        result = train(config)
    except TrainingDiverged as error:  # recorded, so that the grid goes on and the table says what happened
        status = str(error).split(";")[0]
        return {"name": name, "status": status, "config": dataclasses.asdict(config), "seconds": clock.seconds()}
    except TrainingInterrupted as error:
        seconds = clock.save()
        curve = read_curve(path / "metrics.csv")
        status = f"interrupted: {str(error).split(';')[0]} (--run-dir {run_dir} --resume continues it)"
        record = {"name": name, "status": status, "config": dataclasses.asdict(config), "seconds": seconds}
        if curve:  # the report shows how far it got
            record.update(steps=max(point["step"] for point in curve), curve=curve)
        raise RunInterrupted(record, error.exit_code) from error
    seconds = clock.save()
    curve = read_curve(path / "metrics.csv")
    steps_per_second = result.steps_per_second
    if math.isnan(steps_per_second) and curve:  # resumed at its last checkpoint: nothing trained in this sitting
        # over the training time the log kept for all sittings (compilation of each sitting included)
        last = max(curve, key=lambda point: point["step"])
        steps_per_second = last["step"] * seeds / last["seconds"] if last.get("seconds") else steps_per_second
    return {
        "name": name,
        "status": "ok",
        "config": dataclasses.asdict(config),
        "final_success": result.success,
        "final_return": result.episode_return,
        "steps": result.steps,
        "seconds": seconds,
        "train_steps_per_second": steps_per_second,
        "curve": curve,
        "stopped_by": result.stopped_by,
    }


class RunInterrupted(Exception):
    """A signal or the time limit stopped a run; ``record`` is its entry for the report (status, config, the
    curve so far), ``exit_code`` the trainer's (124 for the time limit, 128 + the signal otherwise)."""

    def __init__(self, record: dict, exit_code: int):
        super().__init__(record["status"])
        self.record = record
        self.exit_code = exit_code


# The curve each grid plots: training success, or the mean episode return where success comes late.
PLOT_METRIC = {"ppo_ablations": "return", "memory_gym": "return"}


def plot(report: dict, path: Path) -> None:
    """One panel per group of runs (the name before its last ``-``) against environment steps; groups with
    a run on several devices get a second panel against wall-clock seconds."""
    metric = PLOT_METRIC.get(report["meta"]["preset"], "success")
    runs = [r for r in report["runs"] if r.get("curve")]  # measured, or interrupted with the curve so far
    if not runs:  # nothing measured yet: no curves to draw
        return
    group_of = lambda run: run["name"].rsplit("-", 1)[0]  # noqa: E731
    groups = sorted({group_of(r) for r in runs})
    timed = [g for g in groups if any(group_of(r) == g and r["config"].get("num_devices", 1) > 1 for r in runs)]
    panels_to_draw = [(g, "step") for g in groups] + [(g, "seconds") for g in timed]
    fig, axes = panels(len(panels_to_draw), 4.5, 3.5)
    for ax, (group, x) in zip(axes, panels_to_draw):
        for run in (r for r in runs if group_of(r) == group and all(x in p for p in r["curve"])):
            xs, ys = mean_over_seeds(run["curve"], x), mean_over_seeds(run["curve"], metric)
            ax.plot(xs, ys, label=run["name"].rsplit("-", 1)[1])
        xlabel = "environment steps" if x == "step" else "wall-clock seconds (compilation included)"
        finish_fraction_panel(ax, group, xlabel, f"training {metric} (mean over seeds)", 8)
    save_figure(fig, path)


def markdown(report: dict, preset: str) -> str:
    meta = report["meta"]
    commands = list(dict.fromkeys(command for run in report["runs"] for command in run_commands(run)))
    rows = []
    for run in report["runs"]:
        command = ", ".join(f"[{commands.index(c) + 1}]" for c in run_commands(run))
        if run["status"] != "ok":  # an interrupted run shows its steps and wall time so far
            so_far = [f"{run['steps']:,}", f"{run['seconds']:.0f}"] if "steps" in run else ["", ""]
            rows.append([run["name"], run["status"], "", "", "", *so_far, "", command])
            continue
        success, returns = run["final_success"], run["final_return"]
        rows.append(
            [
                run["name"],
                f"{sum(success) / len(success):.2f}",
                f"{min(success):.2f} .. {max(success):.2f}",
                f"{sum(returns) / len(returns):.2f}",
                len(success),
                f"{run['steps']:,}",
                f"{run['seconds']:.0f}",
                f"{run['train_steps_per_second']:,.0f}",
                command,
            ]
        )
    header = ["run", "greedy success (mean)", "range over seeds", "greedy return (mean)", "seeds", "env steps / seed"]
    header += ["wall s", "train steps/s (all seeds)"]
    header.append("command")
    listed = "\n".join(f"{i + 1}. `{c}` ({dates(report, c)})" for i, c in enumerate(commands))
    return (
        f"# Learning curves ({preset}): {meta['device']}\n\njax {meta['jax']}, written {meta['date']}.\n\n"
        f"Commands (run from `benchmarks/`):\n\n{listed}\n\nGreedy success: 256 greedy episodes per seed after training. "
        f"Wall time includes compilation.\n\n{markdown_table(header, rows)}\n{grid_table(report)}![curves](learning_{preset}_{meta['label']}.png)\n"
    )


def grid_table(report: dict) -> str:
    """Greedy return as a memory x task table (mean over seeds, the worst seed in brackets), where the
    measured runs are one per (task, memory); '' where they are not, or where there is no grid (one task
    or one memory)."""
    runs = [r for r in report["runs"] if r["status"] == "ok"]
    cells = {(r["config"]["env"], r["config"]["memory"]): r["final_return"] for r in runs}
    tasks = list(dict.fromkeys(r["config"]["env"] for r in runs))
    memories = list(dict.fromkeys(r["config"]["memory"] for r in runs))
    if len(cells) < len(runs) or len(tasks) < 2 or len(memories) < 2:
        return ""
    label = lambda env: env.removeprefix("mnemax/").removesuffix("-v0")  # noqa: E731
    cell = lambda returns: f"{sum(returns) / len(returns):+.2f} ({min(returns):+.2f})" if returns else ""  # noqa: E731
    rows = [[memory] + [cell(cells.get((task, memory))) for task in tasks] for memory in memories]
    return (
        "Greedy return by memory and task: mean over seeds (worst seed); empty where not run yet.\n\n"
        f"{markdown_table(['memory'] + [label(t) for t in tasks], rows)}\n"
    )


def run_commands(run: dict) -> list[str]:
    """The commands that trained ``run``: one, or one per sitting of a run whose seeds were trained apart."""
    return list(dict.fromkeys(sitting["command"] for sitting in run.get("sittings", [run])))


def dates(report: dict, command: str) -> str:
    """The dates of the sittings of ``command`` in the report."""
    found = {s["date"] for run in report["runs"] for s in run.get("sittings", [run]) if s["command"] == command}
    return ", ".join(sorted(found))


def save_report(args, label: str, runs: list[dict]) -> dict:
    """Writes the runs so far (merged into the report of ``label`` with ``--update``); returns the report.

    The report is read again and written under an exclusive lock, so that runs of one report on several
    GPUs of a host (e.g. one seed per GPU) do not overwrite each other's records."""
    with report_lock(args.preset, label):
        return write_progress(args, label, runs, earlier_runs(args, label) if args.update else [])


@contextlib.contextmanager
def report_lock(preset: str, label: str):
    """An exclusive lock on the report of ``preset`` and ``label`` while it is read and written again."""
    lock = Path(tempfile.gettempdir()) / f"mnemax-learning_{preset}_{label}.lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def write_progress(args, label: str, runs: list[dict], earlier: list[dict]) -> dict:
    """Writes the report, table and plot of the runs so far merged into ``earlier``; returns the report."""
    report = {"meta": metadata(preset=args.preset, label=label), "runs": merged(args.preset, earlier, runs)}
    write_files(report, args.preset, label)
    return report


def write_files(report: dict, preset: str, label: str) -> None:
    """The report's ``.json``, table (``.md``) and plot (``.png``) of ``preset`` under ``label``."""
    json_path, _ = write_report(f"learning_{preset}", label, report, markdown(report, preset))
    plot(report, json_path.with_suffix(".png"))


def report_path(preset: str, label: str) -> Path:
    """The JSON report of ``preset`` under ``label``."""
    return RESULTS / f"learning_{preset}_{label}.json"


def merged(preset: str, earlier: list[dict], runs: list[dict]) -> list[dict]:
    """The runs of ``earlier`` and ``runs`` in preset order; a name in both keeps the newer run unless that
    one was skipped and the earlier one measured, or the two hold different seeds of one run
    (:func:`joined_seeds`), which then share one record."""
    by_name = {run["name"]: run for run in earlier}
    runs = [joined_seeds(by_name[run["name"]], run) if run["name"] in by_name else run for run in runs]
    by_name = merge_runs(earlier, runs, key=lambda run: run["name"])
    return [by_name[spec["name"]] for spec in PRESETS[preset] if spec["name"] in by_name]


# What may differ between the records of one run's seeds trained in separate sittings.
SEED_SETTINGS = ("seed", "num_seeds", "run_name", "run_dir", "resume")


def seed_range(record: dict) -> range:
    config = record["config"]
    return range(config.get("seed", 0), config.get("seed", 0) + config["num_seeds"])


def sittings(record: dict) -> list[dict]:
    """The sittings that trained ``record``'s seeds: its own ``sittings`` once joined, else itself as one."""
    keys = ("command", "date", "seconds")
    return record.get("sittings") or [{"seeds": list(seed_range(record)), **{k: record.get(k) for k in keys}}]


def joined_seeds(earlier: dict, run: dict) -> dict:
    """One record of ``earlier`` and ``run`` if both are measured runs of the same settings on seeds that do
    not overlap (``--first-seed``); else ``run`` unchanged. Per-seed results and the curve are put in seed
    order; ``seconds`` is the sum over the sittings, ``train_steps_per_second`` the env steps of all seeds
    over their summed training time; ``sittings`` keeps each part's seeds, command, date and seconds."""

    def settings(record):  # compared as JSON, as the earlier record was read back from it (tuples: lists)
        # Read as the trainer reads an earlier version's config file: a field added since takes its default
        # (the behaviour before it existed), so adding an option does not split a run's seeds in two.
        config = dataclasses.asdict(algorithms.config_from_json(json.dumps(record["config"])))
        return json.dumps({k: v for k, v in config.items() if k not in SEED_SETTINGS}, sort_keys=True)

    if earlier["status"] != "ok" or run["status"] != "ok" or settings(earlier) != settings(run):
        return run
    (this,) = sittings(run)
    if any(all(part[k] == this[k] for k in ("seeds", "command", "date")) for part in sittings(earlier)):
        return earlier  # already joined (the report is written after every run, and again at the end)
    if set(seed_range(earlier)) & set(seed_range(run)):
        return run
    parts = sorted([earlier, run], key=lambda record: seed_range(record).start)
    seeds = [len(seed_range(part)) for part in parts]
    train_seconds = sum(part["steps"] * n / part["train_steps_per_second"] for part, n in zip(parts, seeds))
    return {
        **run,
        "config": {**run["config"], "seed": seed_range(parts[0]).start, "num_seeds": sum(seeds)},
        "final_success": [x for part in parts for x in part["final_success"]],
        "final_return": [x for part in parts for x in part["final_return"]],
        "steps": min(part["steps"] for part in parts),
        "seconds": sum(part["seconds"] for part in parts),
        "train_steps_per_second": sum(part["steps"] * n for part, n in zip(parts, seeds)) / train_seconds,
        "curve": sorted((p for part in parts for p in part["curve"]), key=lambda p: (p["step"], p["seed"])),
        "seeds": sum(seeds),
        "sittings": [sitting for part in parts for sitting in sittings(part)],
    }


def earlier_runs(args, label: str) -> list[dict]:
    """The runs of this preset's earlier report under ``label`` (for ``--update``)."""
    path = report_path(args.preset, label)
    return report_runs(json.loads(path.read_text())) if path.exists() else []


def report_runs(report: dict) -> list[dict]:
    """The runs of a report; runs that predate per-run commands get the report's command."""
    meta = report["meta"]
    return [{"command": meta["command"], "date": meta["date"], "seeds": meta.get("seeds"), **r} for r in report["runs"]]


def merge_reports(args, label: str, paths: list[str]) -> dict:
    """``--merge-from``: the runs of the reports in ``paths`` (this preset's, on the device of ``label``'s
    report, e.g. each written by another command that updated a copy of it) merged into ``label``'s report in
    the order given, as ``--update`` merges a run just done: a run measured in any of them is kept over a later
    one that was not. The report keeps the metadata of the newest of them. Trains nothing."""
    reports = [json.loads(Path(path).read_text()) for path in paths]
    target = report_path(args.preset, label)
    metas = [json.loads(target.read_text())["meta"]] if target.exists() else []
    for path, report in zip(paths, reports):
        meta = report["meta"]
        if meta.get("preset") != args.preset or (metas and meta["device"] != metas[0]["device"]):
            raise SystemExit(
                f"learning_curves.py: {path} is a report of preset {meta.get('preset')} on {meta['device']}; "
                f"--merge-from takes reports of preset {args.preset}"
                + (f" on {metas[0]['device']} (the device of {target.name})" if metas else "")
            )  # fmt: skip
        metas.append(meta)
    with report_lock(args.preset, label):
        runs = earlier_runs(args, label)
        for report in reports:
            runs = merged(args.preset, runs, report_runs(report))
        report = {"meta": max(metas, key=lambda meta: meta["date"]), "runs": runs}
        write_files(report, args.preset, label)
    return report


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--runs", nargs="*", help="names of the preset's runs to do (default: all)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="train seeds FIRST_SEED .. FIRST_SEED + SEEDS - 1")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every run's step budget")
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--device-label", default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--update", action="store_true", help="merge into the existing report of --device-label")
    parser.add_argument("--run-dir", help="keep the runs' checkpoints here (default: a temporary directory)")
    parser.add_argument("--resume", action="store_true", help="continue runs from their checkpoints in --run-dir")
    parser.add_argument(
        "--time-limit", type=float, default=0.0,
        help="seconds this sitting may train: a run stops with a checkpoint before a log interval would overrun "
        "them, counted from the sitting's start, so a run after another gets what is left (0: no limit)",
    )  # fmt: skip
    parser.add_argument("--pending", action="store_true", help="leave out runs the report already holds measured")
    parser.add_argument("--shard", nargs=2, type=int, metavar=("K", "N"), help="keep every N-th run, from the K-th")
    parser.add_argument(
        "--merge-from", nargs="+", metavar="REPORT",
        help="merge the runs of these reports (JSON, of this preset) into the report of --device-label; trains nothing",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.resume and not args.run_dir:
        parser.error("--resume needs --run-dir: it names where the runs' checkpoints are")
    if (args.update or args.merge_from) and not args.device_label:
        parser.error("--update and --merge-from need --device-label: it names the report to merge into")
    if args.pending and not args.update:
        parser.error("--pending needs --update: it reads which runs the report of --device-label holds")
    if args.shard and not 0 <= args.shard[0] < args.shard[1]:
        parser.error(f"--shard K N needs 0 <= K < N, got {args.shard[0]} {args.shard[1]}")
    label = report_label(args)
    if args.merge_from:
        return merge_reports(args, label, args.merge_from)
    unknown = sorted(set(args.runs or ()) - {spec["name"] for spec in PRESETS[args.preset]})
    if unknown:
        names = [spec["name"] for spec in PRESETS[args.preset]]
        parser.error(f"preset {args.preset} has no runs {unknown}; it has {names}")
    specs = [s for s in PRESETS[args.preset] if not args.runs or s["name"] in args.runs]
    if args.shard:  # before --pending, so that a run's shard does not depend on when the report was read
        specs = specs[args.shard[0] :: args.shard[1]]
    if args.pending:
        measured = {run["name"] for run in earlier_runs(args, label) if run["status"] == "ok"}
        specs = [s for s in specs if s["name"] not in measured]
    started = time.perf_counter()
    deadline = started + args.max_seconds
    now = metadata()
    provenance = {"command": now["command"], "date": now["date"], "seeds": args.seeds}
    runs = []
    directory = contextlib.nullcontext(args.run_dir) if args.run_dir else tempfile.TemporaryDirectory()
    with directory as run_dir:
        for spec in specs:
            if time.perf_counter() > deadline:
                runs.append({"name": spec["name"], "status": "skipped (time budget)", **provenance})
                continue
            print(f"{spec['name']} ...", flush=True)
            # what is left of the sitting's --time-limit: a run started after another one gets the rest
            time_limit = max(args.time_limit - (time.perf_counter() - started), 1.0) if args.time_limit else 0.0
            try:
                run = run_one(
                    spec, args.seeds, args.steps_scale, run_dir, args.quick, args.resume, args.first_seed, time_limit
                )
                stopped_by = run.pop("stopped_by", None)
                runs.append({**run, **provenance})
            except RunInterrupted as stop:  # recorded (an earlier measured run of the name is kept), then out
                runs.append({**stop.record, **provenance})
                save_report(args, label, runs)
                raise
            outcome = f"success {runs[-1]['final_success']}" if runs[-1]["status"] == "ok" else runs[-1]["status"]
            print(f"  {outcome} in {runs[-1]['seconds']:.0f}s", flush=True)
            # Written after every run, so a run cut short by an outer time limit keeps what it measured; the
            # report is read again first, since other processes may have added runs to it meanwhile.
            save_report(args, label, runs)
            if stopped_by:  # the signal came as the run ended: it finished and is recorded; start no other
                raise SystemExit(f"learning_curves.py: {stopped_by} as {spec['name']} ended; no later run started")
    report = save_report(args, label, runs)
    return report


if __name__ == "__main__":
    try:
        main()
    except RunInterrupted as error:  # the report already says which run stopped and how to go on
        print(f"learning_curves.py: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
