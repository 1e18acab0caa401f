"""How long each registered environment takes to compile: its vmapped ``step`` (and ``reset``) under ``jit``.

    python benchmarks/compile_time.py                        # every registered id, 1024 envs
    python benchmarks/compile_time.py --ids mnemax/EndlessSearingSpotlights-v0
    python benchmarks/compile_time.py --quick                # two ids, a CPU check

For each id a fresh ``jax.jit(jax.vmap(env.step))`` over ``--envs`` environments (auto-reset included, as
the trainers call it) is traced (``lower``) and compiled (``compile``) from abstract shapes, so nothing
runs; trace and compile seconds are timed apart, and ``reset`` alike. Every id gets new functions, so no
compiled program is reused between ids. A compilation still running after ``--timeout`` seconds is given
up on and reported as such (XLA cannot be interrupted: it goes on in the background and slows what is
measured after it, so the report names the ids measured after one). Writes
``benchmarks/results/compile_time_<device-label>.{json,md}``, slowest first.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import jax
from common import add_measurement_arguments, markdown_table, report_label, write_rows_report

import mnemax.envs

_STILL_COMPILING: list[threading.Thread] = []  # compilations given up on
QUICK_IDS = ["mnemax/TMaze-Passive-v0", "mnemax/RepeatFirst-Easy-v0"]
LIMIT_SECONDS = 30.0  # the goal for the vmapped step of every id on a GPU


def abstract(tree):
    """``jax.ShapeDtypeStruct`` leaves for the arrays of ``tree`` (keys keep their key dtype)."""
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def timed_compile(fn, args, timeout: float) -> tuple[float, float | None]:
    """``(trace seconds, compile seconds or None when it ran past timeout)`` of ``jax.jit(fn)`` at ``args``.
    The compilation runs on a thread of its own, so one given up on does not hold up the next."""
    start = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    traced = time.perf_counter() - start
    start = time.perf_counter()
    thread = threading.Thread(target=lowered.compile, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        _STILL_COMPILING.append(thread)
        return traced, None
    return traced, time.perf_counter() - start


def measure(env_id: str, num_envs: int, timeout: float) -> dict:
    env, params = mnemax.envs.make(env_id)
    keys = jax.random.split(jax.random.key(0), num_envs)
    _, state = jax.eval_shape(jax.vmap(env.reset, in_axes=(0, None)), keys, params)
    actions = jax.eval_shape(jax.vmap(lambda k: env.action_space(params).sample(k)), keys)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step_trace, step_compile = timed_compile(step, (abstract(keys), state, actions, params), timeout)
    reset_trace, reset_compile = timed_compile(reset, (abstract(keys), params), timeout)
    return dict(
        env=env_id, num_envs=num_envs, step_trace_seconds=step_trace, step_compile_seconds=step_compile,
        reset_trace_seconds=reset_trace, reset_compile_seconds=reset_compile,
    )  # fmt: skip


def step_total(row: dict) -> float:
    """Trace + compile seconds of the vmapped step (infinite when the compilation was given up on)."""
    compile_seconds = row["step_compile_seconds"]
    return float("inf") if compile_seconds is None else row["step_trace_seconds"] + compile_seconds


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ids", nargs="+", help="environment ids (default: every registered one)")
    parser.add_argument("--envs", type=int, default=1024, help="environments under vmap")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up on a compilation after this")
    add_measurement_arguments(parser, max_seconds=540)
    args = parser.parse_args(argv)
    ids = args.ids or (QUICK_IDS if args.quick else mnemax.envs.registered_ids())
    deadline = time.perf_counter() + args.max_seconds
    rows = []
    for env_id in ids:
        if time.perf_counter() > deadline:
            print(f"--max-seconds reached; not measured: {ids[len(rows):]}", flush=True)
            break
        row = measure(env_id, 8 if args.quick else args.envs, args.timeout)
        row["after_a_timeout"] = any(r["step_compile_seconds"] is None or r["reset_compile_seconds"] is None for r in rows)
        rows.append(row)
        print(row, flush=True)
    rows.sort(key=step_total, reverse=True)
    seconds = lambda value: f"> {args.timeout:g}" if value is None else f"{value:.1f}"  # noqa: E731
    over = [r["env"] for r in rows if step_total(r) > LIMIT_SECONDS]
    table = markdown_table(
        ["env", "step: trace s", "step: compile s", "step: total s", "reset: trace s", "reset: compile s"],
        [[r["env"], f"{r['step_trace_seconds']:.1f}", seconds(r["step_compile_seconds"]),
          seconds(step_total(r) if r["step_compile_seconds"] is not None else None),
          f"{r['reset_trace_seconds']:.1f}", seconds(r["reset_compile_seconds"])] for r in rows],
    )  # fmt: skip
    summary = f"{len(rows)} ids, {args.envs if not args.quick else 8} envs under vmap; over {LIMIT_SECONDS:g} s: " + (
        ", ".join(over) if over else "none"
    )
    slowed = [r["env"] for r in rows if r["after_a_timeout"]]
    if slowed:
        summary += f". Measured while a compilation given up on still ran: {', '.join(slowed)}"
    label = report_label(args)
    return write_rows_report("compile_time", label, "Compile time of the vmapped step", rows, f"{summary}\n\n{table}")


if __name__ == "__main__":
    main()
    if any(thread.is_alive() for thread in _STILL_COMPILING):
        # The interpreter cannot exit cleanly under a thread inside XLA; the results are written.
        sys.stdout.flush()
        os._exit(0)
