"""Learning curves of PPO memory agents on one device: a grid of (task, memory) runs, several seeds each.

    python benchmarks/learning_curves.py --preset tmaze --max-seconds 300
    python benchmarks/learning_curves.py --preset memory_gym --steps-scale 0.5
    python benchmarks/learning_curves.py --preset tmaze --quick          # tiny sizes, a CPU check

Every run trains all its seeds at once (``num_seeds``, vmapped) with :func:`mnemax.train.train` and records
the training curve (mean episode return and success per logging interval and seed) and the final greedy
success over 256 episodes per seed. Runs are started in order until the ``--max-seconds`` budget is spent;
the rest are recorded as skipped. Writes ``benchmarks/results/learning_<preset>_<device-label>.json``,
``.md`` (final success per run, mean and range over seeds, steps, wall time) and ``.png`` (curves).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import tempfile
import time
from pathlib import Path

from common import RESULTS, default_label, markdown_table, metadata, write_report
from mnemax.train import PPOConfig, train

# Hyperparameters shared by a preset's runs; each run overrides env, memory and its budget.
TMAZE_BASE = dict(num_envs=512, num_steps=128, num_minibatches=8, update_epochs=4, learning_rate=3e-4, ent_coef=0.05)
TRANSFORMER = {"num_layers": 2, "num_heads": 4}

PRESETS: dict[str, list[dict]] = {
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
    # Memory Gym grid tasks with pixel observations: GRU against TrXL (Pleines et al. report TrXL as the
    # more sample-efficient on these finite tasks).
    "memory_gym": [
        dict(
            name=f"{task}-{memory}",
            env=f"mnemax/{task}-v0",
            memory=memory,
            memory_config=TRANSFORMER | {"memory_length": 64} if memory == "trxl" else {},
            num_envs=256,
            num_steps=128,
            bptt_length=64,
            num_minibatches=8,
            learning_rate=2.5e-4,
            ent_coef=0.01,
            hidden_size=256,
            total_steps=20_000_000,
        )
        for task in ("MortarMayhem-Grid", "MysteryPath-Grid")
        for memory in ("gru", "trxl")
    ],
}


def run_one(spec: dict, seeds: int, steps_scale: float, run_dir: str, quick: bool) -> dict:
    spec = dict(spec)
    name = spec.pop("name")
    spec["total_steps"] = int(spec["total_steps"] * steps_scale)
    if quick:
        spec.update(num_envs=16, num_steps=16, bptt_length=8, num_minibatches=2, total_steps=16 * 16 * 4, hidden_size=32)
    config = PPOConfig(
        **spec, num_seeds=seeds, num_logs=25, run_name=name, run_dir=run_dir, video=False, progress=False, eval_episodes=256
    )
    start = time.perf_counter()
    result = train(config)
    seconds = time.perf_counter() - start
    with (result.run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    curve = [
        {"step": int(float(r["step"])), "seed": int(r["seed"]), "return": float(r["return"]), "success": float(r["success"])}
        for r in rows
    ]
    return {
        "name": name,
        "status": "ok",
        "config": dataclasses.asdict(config),
        "final_success": result.success,
        "final_return": result.episode_return,
        "steps": result.steps,
        "seconds": seconds,
        "train_steps_per_second": result.steps_per_second,
        "curve": curve,
    }


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in report["runs"] if r["status"] == "ok"]
    groups = sorted({r["name"].rsplit("-", 1)[0] for r in runs})
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.5), squeeze=False)
    for ax, group in zip(axes[0], groups):
        for run in (r for r in runs if r["name"].rsplit("-", 1)[0] == group):
            steps = sorted({p["step"] for p in run["curve"]})
            mean = [
                sum(p["success"] for p in run["curve"] if p["step"] == s) / max(1, sum(p["step"] == s for p in run["curve"]))
                for s in steps
            ]
            ax.plot(steps, mean, label=run["name"].rsplit("-", 1)[1])
        ax.set_title(group)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("training success (mean over seeds)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(report: dict, preset: str) -> str:
    meta = report["meta"]
    rows = []
    for run in report["runs"]:
        if run["status"] != "ok":
            rows.append([run["name"], run["status"], "", "", "", ""])
            continue
        success = run["final_success"]
        rows.append(
            [
                run["name"],
                f"{sum(success) / len(success):.2f}",
                f"{min(success):.2f} .. {max(success):.2f}",
                f"{run['steps']:,}",
                f"{run['seconds']:.0f}",
                f"{run['train_steps_per_second']:,.0f}",
            ]
        )
    table = markdown_table(
        ["run", "greedy success (mean)", "range over seeds", "env steps / seed", "wall s", "train steps/s"], rows
    )
    return (
        f"# Learning curves ({preset}): {meta['device']}\n\n{meta['seeds']} seeds per run, jax {meta['jax']}, {meta['date']}.\n\n"
        f"Command: `{meta['command']}`\n\nGreedy success: 256 greedy episodes per seed after training. "
        f"Wall time includes compilation.\n\n{table}\n![curves](learning_{preset}_{meta['label']}.png)\n"
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--runs", nargs="*", help="names of the preset's runs to do (default: all)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every run's step budget")
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--device-label", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    label = args.device_label or default_label()
    specs = [s for s in PRESETS[args.preset] if not args.runs or s["name"] in args.runs]
    deadline = time.perf_counter() + args.max_seconds
    runs = []
    with tempfile.TemporaryDirectory() as run_dir:
        for spec in specs:
            if time.perf_counter() > deadline:
                runs.append({"name": spec["name"], "status": "skipped (time budget)"})
                continue
            print(f"{spec['name']} ...", flush=True)
            runs.append(run_one(spec, args.seeds, args.steps_scale, run_dir, args.quick))
            print(f"  success {runs[-1]['final_success']} in {runs[-1]['seconds']:.0f}s", flush=True)
    report = {"meta": metadata(preset=args.preset, seeds=args.seeds, label=label), "runs": runs}
    write_report(f"learning_{args.preset}", label, report, markdown(report, args.preset))
    plot(report, RESULTS / f"learning_{args.preset}_{label}.png")
    return report


if __name__ == "__main__":
    main()
