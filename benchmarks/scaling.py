"""Data-parallel PPO throughput against the number of devices, at a fixed batch per device.

    python benchmarks/scaling.py                                   # 1, 2, 4, ... all visible devices
    XLA_FLAGS=--xla_force_host_platform_device_count=4 python benchmarks/scaling.py --quick   # CPU check

For every device count ``d`` the trainer runs ``per_device_envs * d`` environments sharded over the
first ``d`` devices (one mesh axis over the environment batch, parameters replicated), and the
training steps per second are timed over whole logging intervals after a compiled warm-up. Scaling
efficiency is ``sps(d) / (d * sps(1))``. On one device the script also times the same update compiled
with a plain ``jax.jit`` (no mesh, no shardings), which shows what the sharded path costs.

With ``--same-parameters`` it also trains the batch of the largest device count for ``--updates`` updates
from the same seed on one device and on all of them, and reports how far the parameters differ (the
trainer draws minibatches so that they should agree up to float rounding; ``tests/test_sharding.py``
checks it on forced CPU devices).

Writes ``benchmarks/results/scaling_<device-label>.json``, ``.md`` and ``.png`` (speed-up against devices);
``--plot-with LABEL ...`` draws earlier reports (``scaling_<LABEL>.json``, other agents) into the same figure,
and ``--plot-only`` redraws it from the reports without measuring:

    python benchmarks/scaling.py --plot-only --device-label h200x2 \
        --plot-with h200x2-mmg-pixel-gru-encoder-fix h200x2-mmg-symbolic-trxl
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import jax
import numpy as np

from common import RESULTS, default_label, markdown_table, median_seconds, metadata, panels, save_figure, write_report
from mnemax.train import PPOConfig
from mnemax.train.loop import Trainer


def steps_per_second(train_fn, runner, steps_per_call: int, repeats: int):
    """Time ``train_fn`` (which donates its input) on a chain of states; returns (sps, final state)."""
    state = {"runner": train_fn(runner)[0]}  # warm-up: compilation and first run
    jax.block_until_ready(state["runner"])

    def call():
        state["runner"], metrics = train_fn(state["runner"])
        jax.block_until_ready(metrics)

    return steps_per_call / median_seconds(call, repeats), state["runner"]


def measure(config: PPOConfig, devices: int, repeats: int, plain: bool) -> dict:
    config = dataclasses.replace(config, num_envs=config.num_envs * devices, num_devices=devices)
    trainer = Trainer(config)
    steps = config.updates_per_log * config.steps_per_update * config.num_seeds
    sharded, _ = steps_per_second(trainer.train_interval, trainer.init(), steps, repeats)
    row = {"devices": devices, "num_envs": config.num_envs, "steps_per_second": sharded}
    if plain:
        plain_fn = jax.jit(trainer.interval, donate_argnums=0)
        unsharded = jax.tree_util.tree_map(lambda x: jax.device_put(x, jax.devices()[0]), trainer.init())
        row["plain_jit_steps_per_second"], _ = steps_per_second(plain_fn, unsharded, steps, repeats)
        row["sharded_over_plain"] = sharded / row["plain_jit_steps_per_second"]
    return row


def parameter_difference(config: PPOConfig, devices: int) -> dict:
    """Train ``config``'s first log interval on 1 and on ``devices`` devices from the same seed; the largest
    absolute difference between the two parameter sets, and the largest parameter magnitude beside it."""
    config = dataclasses.replace(config, num_envs=config.num_envs * devices, total_steps=config.total_steps * devices)
    params = []
    for count in (1, devices):
        trainer = Trainer(dataclasses.replace(config, num_devices=count))
        runner, _ = trainer.train_interval(trainer.init())
        params.append(jax.device_get(runner.train_state.params))
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(params[0])]
    differences = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a, b: np.abs(a - b).max(), *params))
    return {
        "devices": devices, "num_envs": config.num_envs, "updates": config.updates_per_log,
        "max_abs_difference": float(max(differences)), "max_abs_parameter": float(max(np.abs(x).max() for x in leaves)),
    }  # fmt: skip


def plot(reports: list[dict], path) -> None:
    """Speed-up ``sps(d) / sps(1)`` against the device count ``d``, one line per report (agent and env), beside
    the ideal ``d``."""
    fig, (ax,) = panels(1, 5.0, 3.8)
    most = max(row["devices"] for report in reports for row in report["rows"])
    ax.plot([1, most], [1, most], "k--", lw=1, label="ideal")
    for report in reports:
        meta, rows = report["meta"], report["rows"]
        env = meta["env"].removeprefix("mnemax/")
        speedup = [r["steps_per_second"] / rows[0]["steps_per_second"] for r in rows]
        label = f"{meta['memory'].upper()} on {env}, {meta['per_device_envs']} envs/device"
        ax.plot([r["devices"] for r in rows], speedup, "o-", label=label)
    ax.set_xlabel("devices")
    ax.set_ylabel("train steps/s over one device's")
    ax.set_title(f"PPO data parallel: {reports[0]['meta']['device']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="mnemax/TMaze-Passive-L100-v0")
    parser.add_argument("--memory", default="gru")
    parser.add_argument("--per-device-envs", type=int, default=2048)
    parser.add_argument("--num-steps", type=int, default=128)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--updates", type=int, default=4, help="PPO updates per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--devices", type=int, nargs="*", help="device counts (default: 1, 2, 4, ... all)")
    parser.add_argument("--device-label", default=None)
    parser.add_argument(
        "--same-parameters", action="store_true", help="also compare the parameters after --updates updates on 1 and on the most devices"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a CPU check")
    parser.add_argument("--plot-with", nargs="*", default=[], metavar="LABEL", help="other reports to draw in the figure")
    parser.add_argument("--plot-only", action="store_true", help="redraw --device-label's figure; no measuring")
    args = parser.parse_args(argv)
    label = args.device_label or default_label()
    earlier = [json.loads((RESULTS / f"scaling_{other}.json").read_text()) for other in args.plot_with]
    if args.plot_only:
        report = json.loads((RESULTS / f"scaling_{label}.json").read_text())
        plot([report, *earlier], RESULTS / f"scaling_{label}.png")
        return report
    if args.quick:
        args.per_device_envs, args.num_steps, args.hidden_size, args.updates, args.repeats = 16, 16, 32, 2, 2
    available = jax.device_count()
    counts = args.devices or [d for d in (1, 2, 4, 8, 16, 32, 64) if d <= available]
    config = PPOConfig(
        env=args.env, memory=args.memory, num_envs=args.per_device_envs, num_steps=args.num_steps,
        hidden_size=args.hidden_size, total_steps=args.per_device_envs * args.num_steps * args.updates,
        num_logs=1, progress=False, video=False,
    )  # fmt: skip
    rows = []
    for devices in counts:
        row = measure(config, devices, args.repeats, plain=devices == 1)
        if rows:
            row["efficiency"] = row["steps_per_second"] / (devices * rows[0]["steps_per_second"])
        rows.append(row)
        print(row, flush=True)
    report = {
        "meta": metadata(env=args.env, memory=args.memory, per_device_envs=args.per_device_envs, num_steps=args.num_steps),
        "rows": rows,
    }
    same = ""
    if args.same_parameters and max(counts) > 1:
        report["same_parameters"] = check = parameter_difference(config, max(counts))
        print(check, flush=True)
        same = (
            f"\n\nSame seed, {check['updates']} update(s) of {check['num_envs']} envs on 1 and on {check['devices']} devices: "
            f"largest parameter difference {check['max_abs_difference']:.2e} (largest parameter {check['max_abs_parameter']:.2f})."
        )
    table = markdown_table(
        ["devices", "envs", "train steps/s", "efficiency", "plain jit steps/s", "sharded / plain"],
        [
            [
                r["devices"], r["num_envs"], f"{r['steps_per_second']:,.0f}", f"{r.get('efficiency', 1.0):.3f}",
                f"{r['plain_jit_steps_per_second']:,.0f}" if "plain_jit_steps_per_second" in r else "",
                f"{r['sharded_over_plain']:.3f}" if "sharded_over_plain" in r else "",
            ]
            for r in rows
        ],
    )  # fmt: skip
    meta = report["meta"]
    text = (
        f"# PPO scaling over devices: {meta['device']} x {meta['device_count']}\n\n"
        f"{args.memory.upper()} PPO on `{args.env}`, {args.per_device_envs} envs per device, {args.num_steps}-step rollouts, "
        f"jax {meta['jax']}, {meta['date']}.\n\nCommand: `{meta['command']}`\n\n{table}{same}"
    )
    write_report("scaling", label, report, text)
    plot([report, *earlier], RESULTS / f"scaling_{label}.png")
    return report


if __name__ == "__main__":
    main()
