"""Pixel PPO throughput against how the CNN computes its convolutions and the number of seeds vmapped.

    python benchmarks/cnn_convs.py                  # the cells below on the first device
    python benchmarks/cnn_convs.py --quick          # tiny sizes, a CPU check

The trainers run several seeds at once with vmap. Under vmap a convolution whose kernel differs per seed
becomes a grouped convolution (one group per seed), which GPUs run slowly in the backward pass; the CNN
encoder can instead compute each convolution as patches times a matrix (``agent_config conv patches``,
:class:`mnemax.agents.encoders.PatchConv`), which vmaps into batched matrix products. For each cell (the
`memory_gym` preset as it ships on pixel Mortar Mayhem Grid, GRU) and each of 1 and 3 seeds, this times
PPO updates through ``Trainer.train_interval`` with both ways; the parameters and outputs are the same
(``tests/test_encoders.py``), so only the speed differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from common import default_label, markdown_table, metadata, time_updates, write_report

from mnemax.agents.encoders import CONVS
from mnemax.train import PPOConfig

CELLS = [("memory_gym", "mnemax/MortarMayhem-Grid-v0", "gru")]
SEEDS = (1, 3)


def measure(preset: str, env: str, memory: str, seeds: int, conv: str, calls: int, quick: bool) -> dict:
    config = PPOConfig.from_preset(preset, env=env, memory=memory, num_seeds=seeds, progress=False, video=False)
    sizes = dict(num_envs=8, num_steps=16, hidden_size=32) if quick else {}
    config = dataclasses.replace(config, **sizes, agent_config=dict(config.agent_config, conv=conv))
    # One update per call: total_steps of 10^4 updates logged 10^4 times.
    config = dataclasses.replace(config, total_steps=10_000 * config.steps_per_update, num_logs=10_000)
    first, steps_per_second = time_updates(config, calls)
    return dict(
        preset=preset, env=env, memory=memory, seeds=seeds, conv=conv, num_envs=config.num_envs,
        num_steps=config.num_steps, first_call_seconds=first, steps_per_second=steps_per_second,
    )  # fmt: skip


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=5, help="timed updates per measurement")
    parser.add_argument("--max-seconds", type=float, default=400, help="no new measurement after this")
    parser.add_argument("--device-label", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    deadline = time.perf_counter() + args.max_seconds
    rows = []
    for preset, env, memory in CELLS:
        for seeds in SEEDS:
            for conv in CONVS:
                if time.perf_counter() > deadline:
                    break
                rows.append(measure(preset, env, memory, seeds, conv, args.calls, args.quick))
                print(rows[-1], flush=True)
    for row in rows:  # against the first way of the same cell and seeds
        base = next(r for r in rows if (r["env"], r["memory"], r["seeds"]) == (row["env"], row["memory"], row["seeds"]))
        row["speedup"] = row["steps_per_second"] / base["steps_per_second"]
    label = args.device_label or default_label()
    table = markdown_table(
        ["preset", "env", "memory", "envs x steps", "seeds", "conv", "steps/s (all seeds)", "speed-up", "first call (s)"],
        [[r["preset"], r["env"], r["memory"], f"{r['num_envs']} x {r['num_steps']}", r["seeds"], r["conv"],
          f"{r['steps_per_second']:,.0f}", f"{r['speedup']:.2f}x", f"{r['first_call_seconds']:.1f}"]
         for r in rows],
    )  # fmt: skip
    report = {"meta": metadata(label=label), "rows": rows}
    title = f"# Pixel PPO throughput against the CNN's convolutions ({report['meta']['device']})"
    write_report("cnn_convs", label, report, f"{title}\n\n`{report['meta']['command']}`\n\n{table}\n")
    return report


if __name__ == "__main__":
    main()
