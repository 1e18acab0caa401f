"""Learning side by side with memorax 1.0.1: the same mnemax task, the same hyperparameters, several seeds.

    python benchmarks/learning_vs_memorax.py                        # T-Maze L = 10 at the GPU sizes below
    python benchmarks/learning_vs_memorax.py --tasks mnemax/TMaze-Passive-L100-v0 mnemax/RepeatPrevious-Easy-v0
    python benchmarks/learning_vs_memorax.py --num-envs 64 --total-steps 3e6 --device-label cpu   # the CPU run
    python benchmarks/learning_vs_memorax.py --quick    # tiny sizes: both libraries run (1-2 min on a CPU)
    python benchmarks/learning_vs_memorax.py ... --rows mnemax --update   # redo one row of that report

Runs per task (``--rows``), each training ``--seeds`` seeds for the same number of environment steps:

* ``mnemax``: ``mnemax.train.Trainer`` on a ``PPOConfig`` with the shared settings below (every other field
  at mnemax's default).
* ``memorax``: ``memorax.algorithms.PPO`` built from that same ``PPOConfig`` (``memorax_setup.memorax_ppo``:
  separate actor and critic networks, each with the optimizer mnemax would use) on the same task through
  ``mnemax.envs.interop.gymnax_adapter.GymnaxAdapter``, the seeds vmapped as mnemax's are.
* ``mnemax-recipe``: mnemax's own recipe for the task family, ``PPOConfig.from_preset(preset, ...)``
  (``mnemax.train.presets``: ``tmaze`` for T-Maze, ``diagnostics`` for the POPGym-style tasks), with the
  shared memory, width, budget and seeds; tasks without a preset (Memory Gym) have no such row.
* ``mnemax-matched`` (not run by default): the shared settings plus memorax's structure where mnemax has
  a switch for it (``separate_critic``, ``advantage_norm="batch"``, ``linear_heads``), for finding which
  difference matters.
* ``mnemax-lecun`` (not run by default): the shared settings with memorax's initialisation of the dense
  layers (``weight_init="lecun"``: LeCun normal for the encoder and heads instead of orthogonal).
* ``mnemax-flax-init`` (not run by default): memorax's initialisation of the whole network, nothing else
  changed: ``weight_init="lecun"`` and the GRU's (or LSTM's) recurrent kernel orthogonal per gate
  (``hidden_init="per_gate"``, as flax's cells, which memorax uses) instead of one orthogonal matrix over
  all gates.
* ``mnemax-flax-matched`` (not run by default): ``mnemax-matched`` and ``mnemax-flax-init`` together, the
  nearest mnemax gets to memorax's agent with its own switches.

Shared settings (the PPO issue's): GRU of ``--hidden-size`` (128; 256 on Mortar Mayhem), ``--num-envs``
(1024) x ``--num-steps`` (128), 4 epochs, 4 minibatches, learning rate 3e-4, entropy 0.01, gamma 0.99,
lambda 0.95, clip 0.2, and mnemax's optimizer defaults for both (global-norm clip 0.5, Adam eps 1e-5,
learning rate decaying linearly to 0; ``--max-grad-norm`` and ``--constant-lr`` change them for both).

Every run is timed from the start of its set-up (building the environment and the networks, so
compilation counts) and logged ``--num-logs`` times: at each log point the mean return and success of the
training episodes that ended since the last one, per seed, and the wall-clock seconds so far. mnemax's
jitted interval returns per-update sums; memorax's ``agent.train`` returns every transition, so a jitted
wrapper calls it for one log interval of updates and reduces the transitions on the device to episode
counts and sums of return and success (mnemax's ``EpisodeStatistics`` wrapper supplies them in the
``info``). Reported per seed: the environment steps and seconds at the first log point whose training
success reaches ``--target`` (0.95), or the final training success when none does, and the greedy success
of the trained policy: the first episode of each of ``--eval-episodes`` (256) copies (mnemax's
``Trainer.evaluate``; memorax's ``agent.evaluate(..., deterministic=True)`` for as many steps as the
task's longest episode, an episode that has not ended by then counting as a failure, as in mnemax's).

Every remaining difference between the two set-ups is written into the report
(``memorax_setup.mismatches`` plus the measurement's own). Needs memorax 1.0.1 and its dependencies
(``memorax_setup.py`` says how to install them); without memorax the mnemax rows run alone.

``--quick`` shrinks everything (16 envs x 16 steps, width 32, 2 seeds, a few thousand steps; the recipe
at 16 envs x 32 steps) to check on a CPU that every row runs and the report is written; its numbers say
nothing about learning. Writes ``benchmarks/results/learning_vs_memorax_<device-label>.json``, ``.md``
and ``.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp

from common import RESULTS, default_label, finish_fraction_panel, markdown_table, metadata, panels, save_figure
from common import merge_runs, write_report
from memorax_setup import import_memorax, memorax_ppo, mismatches, package_versions
from mnemax import envs
from mnemax.envs import NO_TIME_LIMIT
from mnemax.train import PPOConfig
from mnemax.train.loop import Trainer

# Per task: mnemax's preset for its family (None: no recipe row), the default step budget per seed (the
# PPO issue's: T-Maze L = 10 solved by both libraries within 1e7 at 1024 envs, L = 100 unsolved by both at
# 6e7, Mortar Mayhem 84 M, POPGym's 1.5e7 for the diagnostics) and the width the issue used.
TASKS = {
    "mnemax/TMaze-Passive-v0": dict(preset="tmaze", total_steps=10_000_000, hidden_size=128),
    "mnemax/TMaze-Passive-L100-v0": dict(preset="tmaze", total_steps=60_000_000, hidden_size=128),
    "mnemax/MortarMayhem-Grid-Symbolic-v0": dict(preset=None, total_steps=84_000_000, hidden_size=256),
    "mnemax/RepeatPrevious-Easy-v0": dict(preset="diagnostics", total_steps=15_000_000, hidden_size=128),
}
ROWS = (
    "mnemax", "memorax", "mnemax-recipe", "mnemax-matched", "mnemax-lecun", "mnemax-flax-init", "mnemax-flax-matched",
)  # fmt: skip
# memorax's structure, where mnemax has a switch for it (the `mnemax-matched` row).
MEMORAX_STRUCTURE = dict(separate_critic=True, advantage_norm="batch", linear_heads=True)
# memorax's initialisation: LeCun-normal dense layers and flax's recurrent kernel, orthogonal per gate (the
# `mnemax-flax-init` row).
MEMORAX_INIT = dict(weight_init="lecun", memory_config={"hidden_init": "per_gate"})
# Differences of this benchmark's measurement (beyond memorax_setup.mismatches).
MEASUREMENT_MISMATCHES = [
    "mnemax's jitted interval returns per-update episode sums; memorax's train returns every transition of the "
    "interval, which a jitted wrapper reduces to the same sums on the device (inside the timed call)",
    "mnemax donates its training state to the jitted call; memorax does not",
    "greedy evaluation: mnemax plays each copy until its first episode ends; memorax's evaluate plays a fixed "
    "number of steps (the task's longest episode) and the first episode of each copy is counted",
]
# Per-interval sums that become per-episode means in the curve.
SUMS = ("episodes", "return_sum", "success_sum")


# ------------------------------------------------------------------------------------------ configs
def shared_config(args, env_id: str) -> PPOConfig:
    """mnemax's configuration with the shared settings; memorax's agent is built from it too."""
    return PPOConfig(
        env=env_id, memory=args.memory, hidden_size=args.hidden_size or TASKS[env_id]["hidden_size"],
        num_envs=args.num_envs, num_steps=args.num_steps, update_epochs=args.update_epochs,
        num_minibatches=args.num_minibatches, learning_rate=args.learning_rate, anneal_lr=not args.constant_lr,
        gamma=args.gamma, gae_lambda=args.gae_lambda, clip_eps=args.clip_eps, ent_coef=args.ent_coef,
        max_grad_norm=args.max_grad_norm, total_steps=args.total_steps or TASKS[env_id]["total_steps"],
        seed=0, num_seeds=args.seeds, num_logs=args.num_logs, num_devices=1, eval_episodes=args.eval_episodes,
        progress=False, video=False,
    )  # fmt: skip


def row_config(args, row: str, env_id: str) -> PPOConfig | None:
    """The mnemax configuration of ``row`` on ``env_id`` (for memorax: the one its agent is built from);
    None where the row does not apply (no preset for the task)."""
    shared = shared_config(args, env_id)
    if row == "mnemax-matched":
        return dataclasses.replace(shared, **MEMORAX_STRUCTURE)
    if row == "mnemax-lecun":  # memorax's initialisation of the dense layers, nothing else changed
        return dataclasses.replace(shared, weight_init="lecun")
    if row == "mnemax-flax-init":
        return dataclasses.replace(shared, **MEMORAX_INIT)
    if row == "mnemax-flax-matched":  # memorax's initialisation and structure
        return dataclasses.replace(shared, **MEMORAX_INIT, **MEMORAX_STRUCTURE)
    if row != "mnemax-recipe":
        return shared
    preset = TASKS[env_id]["preset"]
    if preset is None:
        return None
    keep = ("env", "memory", "hidden_size", "total_steps", "seed", "num_seeds", "num_logs", "num_devices")
    keep += ("eval_episodes", "progress", "video")
    overrides = {name: getattr(shared, name) for name in keep}
    if args.quick:  # the recipe's own batch (e.g. 256 envs x 512 steps) is no check-sized run
        overrides.update(num_envs=16, num_steps=32)
    return PPOConfig.from_preset(preset, **overrides)


def differences(base: PPOConfig, other: PPOConfig) -> dict:
    """The fields in which ``other`` departs from ``base`` (``field: value in other``)."""
    return {
        f.name: getattr(other, f.name)
        for f in dataclasses.fields(PPOConfig)
        if getattr(other, f.name) != getattr(base, f.name) and f.name != "preset"
    }


def episode_bound(env_id: str, config: PPOConfig) -> int:
    """The longest an episode of the task can last (memorax's greedy evaluation plays this many steps)."""
    env, params = envs.make(env_id, **config.env_params)
    for name in ("horizon", "episode_length", "episode_horizon"):  # T-Maze, card tasks, Memory Gym
        if hasattr(env, name):
            return int(getattr(env, name)(params))
    if int(params.max_steps_in_episode) < NO_TIME_LIMIT:
        return int(params.max_steps_in_episode)
    raise NotImplementedError(f"no bound on the episode length of {env_id} is known here")


# -------------------------------------------------------------------------------------------- curves
def curve_rows(sums: dict, step: int, seconds: float) -> list[dict]:
    """One curve point per seed from per-seed sums of one log interval: mean return and success of the
    training episodes that ended in it (NaN where none did), the policy entropy and the seconds so far."""
    rows = []
    for seed in range(len(sums["episodes"])):
        episodes = float(sums["episodes"][seed])
        mean = lambda key: float(sums[key][seed]) / episodes if episodes else float("nan")  # noqa: E731
        rows.append(
            {
                "step": step, "seed": seed, "seconds": seconds, "episodes": episodes, "return": mean("return_sum"),
                "success": mean("success_sum"), "entropy": float(sums["entropy"][seed]),
            }  # fmt: skip
        )
    return rows


def reach(curve: list[dict], seed: int, target: float) -> dict:
    """Environment steps and seconds at the first log point where ``seed``'s training success reaches
    ``target`` (None each when it never does), and its last training success."""
    points = [p for p in curve if p["seed"] == seed]
    first = next((p for p in points if p["success"] >= target), None)
    return {
        "steps_to_target": first["step"] if first else None,
        "seconds_to_target": first["seconds"] if first else None,
        "final_train_success": points[-1]["success"] if points else float("nan"),
    }


def train_logged(start: float, config: PPOConfig, interval, state):
    """Run ``config.num_log_intervals`` calls of ``interval(state) -> (state, per-seed sums)``, each a
    log point. Returns the final state, the curve, the seconds at the end of the first call (set-up and
    compilation included) and at the end of the last."""
    curve, first = [], None
    steps_per_interval = config.updates_per_log * config.steps_per_update
    for i in range(config.num_log_intervals):
        state, sums = interval(state)
        sums = jax.device_get(sums)  # waits for the call: the time stamp follows the work
        seconds = time.perf_counter() - start
        first = seconds if first is None else first
        curve += curve_rows(sums, (i + 1) * steps_per_interval, seconds)
    return state, curve, first, seconds


# ------------------------------------------------------------------------------------------- mnemax
def run_mnemax(config: PPOConfig) -> dict:
    start = time.perf_counter()
    trainer = Trainer(config)

    def interval(runner):
        runner, metrics = trainer.train_interval(runner)  # metrics [seeds, updates]
        sums = {key: metrics[key].sum(axis=1) for key in SUMS}
        return runner, sums | {"entropy": metrics["entropy"].mean(axis=1)}

    runner, curve, first, trained = train_logged(start, config, interval, trainer.init())
    # The same evaluation keys as mnemax.train.train.
    eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(trainer.keys)
    success, episode_return = jax.device_get(trainer.evaluate(runner.train_state.params, eval_keys))
    finished = [config.eval_episodes] * config.num_seeds  # mnemax plays every first episode to its end
    return result(config, curve, first, trained, time.perf_counter() - start, success, episode_return, finished)


# ------------------------------------------------------------------------------------------ memorax
def run_memorax(config: PPOConfig, eval_steps: int) -> dict:
    start = time.perf_counter()
    agent = memorax_ppo(config, num_eval_envs=config.eval_episodes, episode_statistics=True)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(config.seed, config.seed + config.num_seeds))
    # One seed after the other, as mnemax's Trainer does: batched QR decompositions of orthogonal
    # initialisers (flax's GRUCell uses one) have been seen to hang XLA's CPU runtime.
    init = jax.jit(lambda: jax.lax.map(agent.init, keys))
    steps_per_interval = config.updates_per_log * config.steps_per_update

    def one_seed(key, state):
        key, state, transitions = agent.train(key, state, steps_per_interval)
        info = transitions.info
        ended = info["returned_episode"]
        sums = {
            "episodes": ended.sum(),
            "return_sum": jnp.where(ended, info["returned_episode_return"], 0.0).sum(),
            "success_sum": (ended & info["returned_episode_success"]).sum(),
            "entropy": info["losses/entropy"].mean(),
        }
        return key, state, sums

    train_seeds = jax.jit(jax.vmap(one_seed))

    def interval(carry):
        key, state, sums = train_seeds(*carry)
        return (key, state), sums

    (_, state), curve, first, trained = train_logged(start, config, interval, init())

    def greedy(key, state):
        _, transitions = agent.evaluate(key, state, eval_steps, deterministic=True)  # leaves [steps, copies]
        done = transitions.done
        before_end = jnp.cumsum(done, axis=0) - done == 0  # the steps of each copy's first episode
        first_end = before_end & done
        success = (first_end & transitions.info["success"]).sum(axis=0)
        episode_return = jnp.where(before_end, transitions.reward, 0.0).sum(axis=0)
        return success.mean(), episode_return.mean(), first_end.sum()

    eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    success, episode_return, finished = jax.device_get(jax.jit(jax.vmap(greedy))(eval_keys, state))
    return result(config, curve, first, trained, time.perf_counter() - start, success, episode_return, finished)


def result(config, curve, first, trained, seconds, success, episode_return, finished) -> dict:
    """A run's record: the curve, per-seed greedy results and the timing."""
    steps = config.num_log_intervals * config.updates_per_log * config.steps_per_update
    later_steps = (config.num_log_intervals - 1) * config.updates_per_log * config.steps_per_update
    return {
        "status": "ok",
        "config": dataclasses.asdict(config),
        "final_success": [float(s) for s in success],
        "final_return": [float(r) for r in episode_return],
        "eval_episodes_finished": [int(n) for n in finished],
        "steps": steps,
        "seconds": seconds,
        "train_seconds": trained,
        "first_interval_seconds": first,
        # Over all seeds, after the first interval (which includes compilation).
        "train_steps_per_second": later_steps * config.num_seeds / (trained - first) if trained > first else None,
        "curve": curve,
    }


# --------------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["mnemax/TMaze-Passive-v0"], choices=list(TASKS))
    parser.add_argument("--rows", nargs="+", default=list(ROWS[:3]), choices=ROWS)
    parser.add_argument("--memory", default="gru", choices=["gru", "lstm"])
    parser.add_argument("--hidden-size", type=int, default=0, help="0: the task's (128; Mortar Mayhem 256)")
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--num-steps", type=int, default=128, help="rollout length")
    parser.add_argument("--update-epochs", type=int, default=4)
    parser.add_argument("--num-minibatches", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--constant-lr", action="store_true", help="no linear decay of the learning rate")
    parser.add_argument("--max-grad-norm", type=float, default=0.5)
    parser.add_argument("--ent-coef", type=float, default=0.01)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--gae-lambda", type=float, default=0.95)
    parser.add_argument("--clip-eps", type=float, default=0.2)
    parser.add_argument("--total-steps", type=lambda s: int(float(s)), default=0, help="per seed (0: the task's)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--num-logs", type=int, default=50, help="log points per run")
    parser.add_argument("--target", type=float, default=0.95, help="training success to reach")
    parser.add_argument("--eval-episodes", type=int, default=256)
    parser.add_argument("--max-seconds", type=float, default=float("inf"), help="start no run after this")
    parser.add_argument("--device-label", default=None)
    parser.add_argument("--update", action="store_true", help="replace these rows in the report of --device-label")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a check that every row runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_envs, args.num_steps, args.hidden_size, args.num_minibatches = 16, 16, 32, 2
        args.total_steps, args.seeds, args.num_logs, args.eval_episodes = 16 * 16 * 12, 2, 4, 32
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    label = args.device_label or default_label()
    if args.update:
        earlier_runs(args, label)  # refuse other settings before spending any time
    started = time.perf_counter()
    memorax, memorax_error = import_memorax() if "memorax" in args.rows else (None, None)
    if memorax_error:
        print(f"memorax unavailable: {memorax_error}", flush=True)
    now = metadata()
    runs = []
    for env_id in args.tasks:
        for row in args.rows:
            run = {"task": env_id, "name": row, "command": now["command"], "date": now["date"]}
            config = row_config(args, row, env_id)
            if config is None:
                runs.append(run | {"status": "no preset for this task family"})
            elif row == "memorax" and memorax is None:
                runs.append(run | {"status": f"memorax unavailable: {memorax_error}"})
            elif time.perf_counter() - started > args.max_seconds:
                runs.append(run | {"status": f"skipped (--max-seconds {args.max_seconds:g})"})
            else:
                print(f"{env_id} {row} ...", flush=True)
                # The machine's load (1-minute average) before and after: wall-clock numbers measured on a
                # shared machine are only comparable at comparable loads.
                load = [os.getloadavg()[0]]
                if row == "memorax":
                    measured = run_memorax(config, episode_bound(env_id, config))
                else:
                    measured = run_mnemax(config)
                measured["load_average"] = load + [os.getloadavg()[0]]
                measured["per_seed"] = [reach(measured["curve"], s, args.target) for s in range(config.num_seeds)]
                runs.append(run | measured)
                print(summary_line(runs[-1], args.target), flush=True)
            # Written after every run, so a run cut short by an outer time limit keeps what it measured.
            # The report is read again before each write: other processes may have added rows to it meanwhile
            # (e.g. memorax's row measured on a second GPU at the same time).
            report = write_progress(args, label, merged(earlier_runs(args, label) if args.update else [], runs))
    print(f"wrote {RESULTS}/learning_vs_memorax_{label}.{{json,md,png}}", flush=True)
    return report


# Settings that a report's runs must share (--update refuses to merge runs made with others).
SHARED_SETTINGS = (
    "memory", "hidden_size", "num_envs", "num_steps", "update_epochs", "num_minibatches", "learning_rate",
    "constant_lr", "max_grad_norm", "ent_coef", "gamma", "gae_lambda", "clip_eps", "total_steps", "seeds",
    "num_logs", "target", "eval_episodes", "quick",
)  # fmt: skip


def earlier_runs(args, label: str) -> list[dict]:
    """The runs of the report under ``label`` (for ``--update``), which must have the same settings."""
    path = RESULTS / f"learning_vs_memorax_{label}.json"
    if not path.exists():
        return []
    report = json.loads(path.read_text())
    differ = [k for k in SHARED_SETTINGS if report["settings"].get(k) != getattr(args, k)]
    if differ:
        raise SystemExit(f"--update: {path.name} was made with other settings ({', '.join(differ)})")
    meta = report["meta"]
    return [{"command": meta["command"], "date": meta["date"], **run} for run in report["runs"]]


def merged(earlier: list[dict], runs: list[dict]) -> list[dict]:
    """``earlier`` with each (task, row) that ``runs`` measured replaced, in task and row order."""
    by_key = merge_runs(earlier, runs, key=lambda run: (run["task"], run["name"]))
    order = {task: i for i, task in enumerate(TASKS)}
    return sorted(by_key.values(), key=lambda r: (order[r["task"]], ROWS.index(r["name"])))


def summary_line(run: dict, target: float) -> str:
    steps = ", ".join(f"{r['steps_to_target']:,}" if r["steps_to_target"] else "-" for r in run["per_seed"])
    greedy = ", ".join(f"{s:.2f}" for s in run["final_success"])
    return f"  steps to {target:g} per seed: {steps}; greedy success {greedy}; {run['seconds']:.0f} s"


def recorded_config(run: dict) -> PPOConfig:
    """The configuration a run recorded, without the fields that earlier versions of PPOConfig had."""
    fields = {f.name for f in dataclasses.fields(PPOConfig)}
    return PPOConfig(**{name: value for name, value in run["config"].items() if name in fields})


def write_progress(args, label: str, runs: list[dict]) -> dict:
    """Writes the report, table and plot of ``runs``; returns the report."""
    configs = {(r["task"], r["name"]): recorded_config(r) for r in runs if r["status"] == "ok"}
    # How each mnemax row that ran beside memorax differs from memorax's set-up.
    by_row = {}
    for task, row in configs:
        if row.startswith("mnemax") and row != "mnemax-recipe" and (task, "memorax") in configs:
            by_row.setdefault(row, {}).update(dict.fromkeys(mismatches(configs[task, row])))
    report = {
        "meta": metadata(label=label, versions=package_versions(), cpus=os.cpu_count()),
        "settings": {k: v for k, v in vars(args).items() if k not in ("device_label", "update")},
        "mismatches": {row: list(found) + MEASUREMENT_MISMATCHES for row, found in by_row.items()},
        "recipe_differences": {
            task: differences(configs[task, "mnemax"], configs[task, row])
            for task, row in configs
            if row == "mnemax-recipe" and (task, "mnemax") in configs
        },
        "runs": runs,
    }
    write_report("learning_vs_memorax", label, report, render_markdown(report))
    plot(report, RESULTS / f"learning_vs_memorax_{label}.png")
    return report


def mean_curve(run: dict, key: str) -> tuple[list[int], list[float]]:
    """``key`` of the curve averaged over the seeds that had an episode end, per log point."""
    steps = sorted({p["step"] for p in run["curve"]})
    means = []
    for step in steps:
        values = [p[key] for p in run["curve"] if p["step"] == step and p[key] == p[key]]  # NaN: no episode
        means.append(sum(values) / len(values) if values else float("nan"))
    return steps, means


def plot(report: dict, path) -> None:
    """Two panels per task, training success and return against environment steps: the mean over seeds
    (thick) and every seed (thin)."""
    tasks = list(dict.fromkeys(run["task"] for run in report["runs"]))
    fig, axes = panels(2 * len(tasks), 4.5, 3.5)
    for t, task in enumerate(tasks):
        for run in (r for r in report["runs"] if r["task"] == task and r["status"] == "ok"):
            for ax, key in zip(axes[2 * t : 2 * t + 2], ("success", "return")):
                line = ax.plot(*mean_curve(run, key), lw=2, label=run["name"])[0]
                for seed in range(len(run["final_success"])):
                    points = [p for p in run["curve"] if p["seed"] == seed]
                    ax.plot([p["step"] for p in points], [p[key] for p in points], lw=0.6, alpha=0.5,
                            color=line.get_color())  # fmt: skip
        name = task.split("/")[-1]
        finish_fraction_panel(axes[2 * t], name, "environment steps", "training success", 8)
        axes[2 * t + 1].set(title=name, xlabel="environment steps", ylabel="training episode return")
        axes[2 * t + 1].grid(alpha=0.3)
    save_figure(fig, path)


def unfinished(run: dict, seed: int) -> str:
    """A note where some greedy episodes had not ended when the evaluation stopped (they count as failures)."""
    ended, episodes = run["eval_episodes_finished"][seed], run["config"]["eval_episodes"]
    return f" ({ended} of {episodes} episodes ended)" if ended < episodes else ""


def render_markdown(report: dict) -> str:
    meta, settings = report["meta"], report["settings"]
    target = settings["target"]
    seed_rows, curve_rows_md, run_rows = [], {"success": [], "return": []}, []
    commands = list(dict.fromkeys(run.get("command", meta["command"]) for run in report["runs"]))
    for run in report["runs"]:
        task = f"`{run['task'].split('/')[-1]}`"
        command = f"[{commands.index(run.get('command', meta['command'])) + 1}]"
        if run["status"] != "ok":
            run_rows.append([task, run["name"], run["status"]] + [""] * 7 + [command])
            continue
        config, load = run["config"], run.get("load_average")
        run_rows.append(
            [
                task, run["name"], config["hidden_size"], f"{config['num_envs']} x {config['num_steps']}",
                f"{run['steps']:,}", run["steps"] // (config["num_envs"] * config["num_steps"]),
                f"{run['seconds']:.0f}", f"{run['first_interval_seconds']:.0f}",
                f"{run['train_steps_per_second']:,.0f}" if run["train_steps_per_second"] else "",
                f"{load[0]:.1f} / {load[1]:.1f}" if load else "", command,
            ]
        )  # fmt: skip
        for seed, reached in enumerate(run["per_seed"]):
            hit = reached["steps_to_target"] is not None
            seed_rows.append(
                [
                    task, run["name"], seed,
                    f"{reached['steps_to_target']:,}" if hit else f"not reached ({reached['final_train_success']:.2f})",
                    f"{reached['seconds_to_target']:.0f}" if hit else "",
                    f"{reached['final_train_success']:.3f}",
                    f"{run['final_success'][seed]:.3f}" + unfinished(run, seed), f"{run['final_return'][seed]:.3f}",
                ]
            )  # fmt: skip
        # The log points at 1/32, 1/16, ..., 1/2 and all of the budget: early learning shows. Return as well as
        # success: on tasks with partial credit (Mortar Mayhem) the return moves long before the success does.
        for key, digits in (("success", 2), ("return", 3)):
            steps, means = mean_curve(run, key)
            picks = sorted({next(i for i, step in enumerate(steps) if step >= steps[-1] / 2**k) for k in range(6)})
            curve_rows_md[key].append([task, run["name"]] + [f"{steps[i]:,}: {means[i]:.{digits}f}" for i in picks])
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    schedule = "constant" if settings["constant_lr"] else "linear decay to 0"
    width = max((len(r) for r in curve_rows_md["success"]), default=2)  # runs with fewer log points: empty cells
    lines = [
        f"# Learning, mnemax vs memorax: {meta['device']}",
        "",
        f"jax {meta['jax']}, Python {meta['python']}, {versions}; {meta['date']}.",
        "",
        "Commands (run from `benchmarks/`):",
        "",
        *(f"{i + 1}. `{c}`" for i, c in enumerate(commands)),
        "",
        f"Shared settings: {settings['memory']} (width in the runs table), {settings['num_envs']} envs x "
        f"{settings['num_steps']} steps, {settings['update_epochs']} epochs x {settings['num_minibatches']} "
        f"minibatches, lr {settings['learning_rate']:g} ({schedule}), "
        f"gradient clip {settings['max_grad_norm']:g}, entropy {settings['ent_coef']:g}, gamma {settings['gamma']:g}, "
        f"lambda {settings['gae_lambda']:g}, clip {settings['clip_eps']:g}; {settings['seeds']} seeds per run (vmapped "
        f"in both libraries), {settings['num_logs']} log points.",
        "",
        f"Per seed: environment steps and wall-clock seconds (from the start of the run's set-up, compilation "
        f"included) to the first log point whose training success (episodes that ended since the previous log "
        f"point) is >= {target:g}, or the last training success when none is; the greedy success and return of "
        f"the first episode of {settings['eval_episodes']} copies after training.",
        "",
        markdown_table(
            ["task", "run", "seed", f"env steps to {target:g}", f"seconds to {target:g}", "final training success",
             "greedy success", "greedy return"],
            seed_rows,
        ),  # fmt: skip
        "Runs (wall s: set-up, compilation, training and greedy evaluation; first interval: seconds to the end of "
        "the first log interval; train steps/s: over all seeds, after the first interval; load: the machine's "
        f"1-minute load average before and after the run; it has {meta.get('cpus')} CPU cores):",
        "",
        markdown_table(["task", "run", "width", "envs x steps", "env steps / seed", "PPO updates", "wall s",
                        "first interval s", "train steps/s", "load", "command"], run_rows),  # fmt: skip
        *(
            line
            for key in ("success", "return")
            for line in (
                f"Training {key}, mean over seeds (env steps: {key}):",
                "",
                markdown_table(["task", "run"] + [""] * (width - 2), [r + [""] * (width - len(r)) for r in curve_rows_md[key]]),
            )
        ),
        f"![curves](learning_vs_memorax_{meta['label']}.png)",
        "",
    ]
    for task, diffs in report["recipe_differences"].items():
        listed = ", ".join(f"`{k}` {v}" for k, v in diffs.items())
        lines += [f"`mnemax-recipe` on `{task.split('/')[-1]}` departs from the shared settings in: {listed}.", ""]
    for row, found in report["mismatches"].items():
        lines += [f"Differences between `{row}` and `memorax`:", ""] + [f"- {m}" for m in found] + [""]
    if settings["quick"]:
        lines += ["`--quick` sizes: a check that every row runs, not a measurement of learning.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
