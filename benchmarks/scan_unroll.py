"""Training throughput against the unrolling of the loops over time (``lax.scan``'s ``unroll``).

    python benchmarks/scan_unroll.py                 # the cells below on the first device
    python benchmarks/scan_unroll.py --quick         # tiny sizes, a CPU check
    python benchmarks/scan_unroll.py --cells diagnostics,mnemax/NParity-Medium-v0,linear_attention --unrolls 8,8

Two loops run one small step per iteration: the rollout (environment step and one step of the agent,
``rollout_unroll``) and a GRU's or LSTM's pass over each training sequence (``memory_config unroll``). For
each cell (a task family's preset as it ships, one task, one memory, 3 seeds vmapped) and each pair of
unroll factors, this times PPO updates through ``Trainer.train_interval``: the first call (compilation
and one update) on its own, then ``--calls`` more. The result is the same either way (the tests check
that); only the speed and the compile time change.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from common import add_measurement_arguments, default_label, markdown_table, time_updates, write_rows_report

from mnemax.train import PPOConfig

# (preset, env, memory): the latency-bound cells of the learning benchmarks, and pixel Memory Gym.
CELLS = [
    ("diagnostics", "mnemax/RepeatFirst-Medium-v0", "gru"),
    ("memory_gym", "mnemax/MortarMayhem-Grid-v0", "gru"),
    ("diagnostics", "mnemax/RepeatFirst-Medium-v0", "ffm"),
    ("tmaze", "mnemax/TMaze-Passive-L100-v0", "gru"),
]
# (memory unroll, rollout unroll): each loop alone and both for the first cell, both for the others;
# memories without a sequential scan only see the rollout's.
FIRST_UNROLLS = [(1, 1), (8, 1), (1, 8), (8, 8), (16, 16)]
UNROLLS = [(1, 1), (8, 8)]
SCANNED = ("gru", "lstm")  # the memories with a sequential scan (and an `unroll` field)


def measure(
    preset: str, env: str, memory: str, memory_unroll: int, rollout_unroll: int, calls: int, quick: bool
) -> dict:
    config = PPOConfig.from_preset(preset, env=env, memory=memory, num_seeds=3, progress=False, video=False)
    sizes = dict(num_envs=8, num_steps=32, hidden_size=32) if quick else {}
    memory_config = dict(config.memory_config, **({"unroll": memory_unroll} if memory in SCANNED else {}))
    # One update per call: total_steps of 10^4 updates logged 10^4 times.
    config = dataclasses.replace(config, **sizes, memory_config=memory_config, rollout_unroll=rollout_unroll)
    config = dataclasses.replace(config, total_steps=10_000 * config.steps_per_update, num_logs=10_000)
    first, steps_per_second = time_updates(config, calls)
    return dict(
        preset=preset, env=env, memory=memory, memory_unroll=memory_unroll, rollout_unroll=rollout_unroll,
        num_envs=config.num_envs, num_steps=config.num_steps, seeds=config.num_seeds,
        first_call_seconds=first, steps_per_second=steps_per_second,
    )  # fmt: skip


def triple(text: str) -> tuple[str, str, str]:
    preset, env, memory = text.split(",")
    return preset, env, memory


def pair(text: str) -> tuple[int, int]:
    memory_unroll, rollout_unroll = map(int, text.split(","))
    return memory_unroll, rollout_unroll


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=5, help="timed updates per measurement")
    parser.add_argument("--cells", nargs="+", type=triple, default=None, metavar="PRESET,ENV,MEMORY",
                        help="these cells instead of the default ones")
    parser.add_argument("--unrolls", nargs="+", type=pair, default=None, metavar="MEMORY,ROLLOUT",
                        help="these unroll factors for every cell instead of the default ones")
    add_measurement_arguments(parser)
    args = parser.parse_args(argv)
    deadline = time.perf_counter() + args.max_seconds
    cells = args.cells or (CELLS[:1] if args.quick else CELLS)
    rows = []
    for i, (preset, env, memory) in enumerate(cells):
        pairs = args.unrolls or (FIRST_UNROLLS if i == 0 else UNROLLS)
        pairs = pairs if memory in SCANNED else sorted({(1, r) for _, r in pairs})
        for memory_unroll, rollout_unroll in pairs[:2] if args.quick else pairs:
            if time.perf_counter() > deadline:
                break
            rows.append(measure(preset, env, memory, memory_unroll, rollout_unroll, args.calls, args.quick))
            print(rows[-1], flush=True)
    for row in rows:  # the speed-up over no unrolling of the same cell
        base = next(r for r in rows if r["env"] == row["env"] and r["memory"] == row["memory"])
        row["speedup"] = row["steps_per_second"] / base["steps_per_second"]
    label = args.device_label or default_label()
    table = markdown_table(
        ["preset", "env", "memory", "envs x steps", "memory unroll", "rollout unroll", "steps/s (3 seeds)",
         "speed-up", "first call (s)"],
        [[r["preset"], r["env"], r["memory"], f"{r['num_envs']} x {r['num_steps']}", r["memory_unroll"],
          r["rollout_unroll"], f"{r['steps_per_second']:,.0f}", f"{r['speedup']:.2f}x",
          f"{r['first_call_seconds']:.1f}"]
         for r in rows],
    )  # fmt: skip
    return write_rows_report("scan_unroll", label, "PPO throughput against scan unrolling", rows, table)


if __name__ == "__main__":
    main()
