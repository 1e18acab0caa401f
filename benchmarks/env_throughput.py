"""Environment steps per second of every registered mnemax environment on one device.

    python benchmarks/env_throughput.py                                # every id, B = 1, 4, ..., 65536
    python benchmarks/env_throughput.py --envs "TMaze-*" "RepeatFirst-*" --batch-sizes 1 16 256 4096
    python benchmarks/env_throughput.py --quick                        # a few seconds, a smoke test

**Vectorized path** (the way trainers use the environments): ``B`` copies stepped by one jitted
function, a ``lax.scan`` of ``S`` steps over ``jax.vmap(env.step)`` (auto-reset included) with
uniformly random actions, repeated ``R`` times by a ``fori_loop`` whose count is a runtime argument,
so the repetitions need no new compilation. The observations, states and summed rewards ride in the
loop carry and are returned, so XLA cannot drop any part of the step as dead code. ``S`` is 1000 up to
``B = 256`` and shrinks at larger batches (``B * S <= 2**18``); ``R`` is calibrated from a one-repetition
call so that a call lasts about ``--call-seconds`` (shorter when the time budget is tight). Compilation
and warm-up are not timed; each figure is ``B * S * R`` over the median time of 3 calls, after
``jax.block_until_ready``. The functions of an environment's batch sizes are traced one after the
other while a thread pool compiles them.

**gymnasium path**: ``gymnasium.make(id)``, one environment, a Python loop of random actions from the
gymnasium action space with resets at episode ends, up to ``--gym-steps`` steps (fewer when the time
budget is tight).

**Time budget** (``--max-seconds``): tracing and compiling cost seconds per batch size on a GPU, so
when the time left cannot cover every batch size of every remaining environment, an environment
measures an evenly spread subset of the batch sizes (the smallest and the largest kept), then also
drops the gymnasium loop; a compilation running past ``--compile-timeout`` (or twice the environment's
share of the budget, at least 10 s) is given up on. What is not measured is recorded as ``"skipped"``
with the reason; a batch size that runs out of device memory as ``"oom"`` (larger ones are not tried);
any other failure as ``"error"``.

Writes ``benchmarks/results/env_throughput_<device-label>.json`` and ``.md``; ``--update`` merges into
existing files (what a run skips keeps an earlier measurement), so environments added later can be
measured alone.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import jax
import jax.numpy as jnp

import mnemax.envs
from common import RESULTS, is_out_of_memory, report_label  # benchmarks/ is on the path of its scripts

DEFAULT_BATCH_SIZES = [4**i for i in range(9)]  # 1 .. 65536
QUICK_ENVS = ["mnemax/TMaze-Passive-v0", "mnemax/RepeatFirst-Easy-v0"]
MAX_SCAN_STEPS = 1000
STEPS_PER_SCAN_BUDGET = 2**18  # B * S at most this, so one repetition stays short at large B
TIMED_CALLS = 3


# ------------------------------------------------------------------------------------------ choosing
def select_envs(patterns: list[str] | None) -> list[str]:
    """Registered ids matching ``patterns`` (ids with or without ``mnemax/``, or shell patterns)."""
    ids = mnemax.envs.registered_ids()
    if not patterns:
        return ids
    chosen = []
    for pattern in patterns:
        full = pattern if pattern.startswith(f"{mnemax.envs.NAMESPACE}/") else f"{mnemax.envs.NAMESPACE}/{pattern}"
        matches = [i for i in ids if fnmatch.fnmatchcase(i, full)]
        if not matches:
            raise SystemExit(f"--envs {pattern!r} matches no registered id; see mnemax.envs.registered_ids()")
        chosen += [i for i in matches if i not in chosen]
    return chosen


def scan_steps(batch: int, cap: int = MAX_SCAN_STEPS) -> int:
    """``S``, the steps of one scan: ``cap`` at small batches, ``2**18 / B`` (at least 4) at large ones."""
    return max(4, min(cap, STEPS_PER_SCAN_BUDGET // batch))


# --------------------------------------------------------------------------------- vectorized path
def rollout_fn(env, params, batch: int, steps: int):
    """``rollout(key, repetitions) -> carry``: reset ``batch`` copies, then ``repetitions`` scans of
    ``steps`` vmapped steps with random actions. The carry (key, observations, states, summed rewards)
    is returned so that nothing is dead code."""
    sample = jax.vmap(env.action_space(params).sample)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    reset = jax.vmap(env.reset, in_axes=(0, None))

    def one_step(carry, _):
        key, obs, state, total = carry
        key, action_key, step_key = jax.random.split(key, 3)
        actions = sample(jax.random.split(action_key, batch))
        obs, state, reward, _, _, _ = step(jax.random.split(step_key, batch), state, actions, params)
        return (key, obs, state, total + reward), None

    def repetition(_, carry):
        return jax.lax.scan(one_step, carry, None, length=steps)[0]

    def rollout(key, repetitions):
        key, reset_key = jax.random.split(key)
        obs, state = reset(jax.random.split(reset_key, batch), params)
        return jax.lax.fori_loop(0, repetitions, repetition, (key, obs, state, jnp.zeros(batch, jnp.float32)))

    return rollout


_STILL_COMPILING = []  # futures of compilations given up on; they block a normal interpreter exit


def compile_rollouts(env, params, batches: list[int], steps_cap: int, workers: int, timeout: float) -> dict:
    """``{batch: compiled rollout or exception}``. Tracing runs here, one batch size after the other;
    XLA compiles on ``workers`` threads, and a compilation still running after ``timeout`` seconds
    is given up on (recorded as a ``TimeoutError``): XLA cannot be interrupted, but the run goes on."""
    key = jax.random.key(0)
    results, futures = {}, {}
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    for batch in batches:
        try:
            lowered = jax.jit(rollout_fn(env, params, batch, scan_steps(batch, steps_cap))).lower(key, jnp.int32(1))
            futures[pool.submit(lowered.compile)] = batch
        except Exception as error:  # noqa: BLE001 - recorded per batch size
            results[batch] = error
    done, not_done = wait(futures, timeout=timeout)
    pool.shutdown(wait=False, cancel_futures=True)
    for future in done:
        error = future.exception()
        results[futures[future]] = error if error is not None else future.result()
    for future in not_done:
        results[futures[future]] = TimeoutError(f"compilation took longer than {timeout:g}s")
        _STILL_COMPILING.append(future)
    return results


def time_call(compiled, key, repetitions: int) -> float:
    start = time.perf_counter()
    jax.block_until_ready(compiled(key, jnp.int32(repetitions)))
    return time.perf_counter() - start


def measure_batch(compiled, batch: int, steps: int, call_seconds: float) -> dict:
    """Steps/s of one compiled rollout: calibrate the repetitions, then the median of 3 timed calls."""
    key = jax.random.key(1)
    single = time_call(compiled, key, 1)  # warm-up: first-call allocations
    if single < 2 * call_seconds:  # a slow first call is calibration enough
        single = time_call(compiled, key, 1)
    repetitions = max(1, min(1_000_000, round(call_seconds / max(single, 1e-6))))
    seconds = [time_call(compiled, jax.random.fold_in(key, i), repetitions) for i in range(TIMED_CALLS)]
    median = statistics.median(seconds)
    return {
        "status": "ok",
        "steps_per_second": batch * steps * repetitions / median,
        "scan_steps": steps,
        "repetitions": repetitions,
        "call_seconds": [round(s, 5) for s in seconds],
    }


# ---------------------------------------------------------------------------------- gymnasium path
def gymnasium_steps_per_second(env_id: str, max_steps: int, max_seconds: float) -> dict:
    """One ``gymnasium.make(env_id)`` environment stepped by a Python loop with random actions."""
    import gymnasium

    env = gymnasium.make(env_id)
    env.action_space.seed(0)
    env.reset(seed=0)
    for _ in range(5):  # compiles reset and step
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    steps, start = 0, time.perf_counter()
    while steps < max_steps and (steps % 100 or time.perf_counter() - start < max_seconds):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return {"status": "ok", "steps_per_second": steps / elapsed, "steps": steps}


# ---------------------------------------------------------------------------------------- the run
def spread(batches: list[int], count: int) -> list[int]:
    """``count`` of the (sorted) ``batches``, evenly spread, the smallest and the largest included."""
    if count >= len(batches):
        return list(batches)
    if count <= 1:
        return [batches[-1]]
    return [batches[i] for i in sorted({round(i * (len(batches) - 1) / (count - 1)) for i in range(count)})]


def choose(batches: list[int], count: int, measured=()) -> list[int]:
    """``count`` of ``batches``: those not ``measured`` yet first, each group evenly spread."""
    if count >= len(batches):
        return list(batches)
    todo = [b for b in batches if b not in measured]
    picked = spread(todo, count) if todo else []
    rest = [b for b in batches if b not in picked]
    return sorted(picked + (spread(rest, count - len(picked)) if count > len(picked) else []))


class Budget:
    """Shares the time budget among environments and learns what a measurement costs.

    Tracing and compiling dominate on accelerators (seconds per batch size), so when the time left
    cannot cover every batch size of every remaining environment, each environment measures an evenly
    spread subset of them (the smallest and largest always among them) instead of the last
    environments getting nothing.
    """

    def __init__(self, seconds: float, num_envs: int):
        self.deadline = time.perf_counter() + seconds
        self.envs_left = num_envs
        self.per_batch = None  # seconds per measured batch size (tracing, compiling, timing)
        self.per_gym = 0.0  # seconds of one gymnasium measurement, compilation included

    def left(self) -> float:
        return max(0.0, self.deadline - time.perf_counter())

    def share(self) -> float:
        return self.left() / max(1, self.envs_left)

    def plan(self, batches: list[int], gym: bool, measured=()) -> tuple[list[int], bool]:
        """The batch sizes to measure and whether to run the gymnasium loop, within one share: the
        gymnasium loop goes first when time is short, then batch sizes down to the largest alone.
        Batch sizes not in ``measured`` (by an earlier run) are chosen first."""
        if self.per_batch is None:
            return list(batches), gym
        share = self.share()
        if gym and share >= self.per_gym + 2 * self.per_batch:
            return choose(batches, int((share - self.per_gym) / self.per_batch), measured), True
        return choose(batches, max(1, int(share / self.per_batch)), measured), False

    def record(self, measured: int, vectorized_seconds: float, gym_seconds: float) -> None:
        self.envs_left -= 1
        if measured:
            cost = vectorized_seconds / measured
            self.per_batch = cost if self.per_batch is None else 0.5 * (self.per_batch + cost)
        self.per_gym = gym_seconds if not self.per_gym else 0.5 * (self.per_gym + gym_seconds)


def benchmark_env(env_id: str, batches: list[int], args, budget: Budget, measured=()) -> dict:
    """Every measurement of one environment, within its share of the time budget; batch sizes in
    ``measured`` (by an earlier run, with ``--update``) come last when not all fit."""
    start = time.perf_counter()
    share = budget.share()
    planned, gym = budget.plan(batches, args.gym_steps > 0, measured)
    result = {"vectorized": {}, "gymnasium": None}
    env, params = mnemax.envs.make(env_id)
    call_seconds = min(args.call_seconds, max(0.02, share / (6 * TIMED_CALLS * len(planned))))
    timeout = min(args.compile_timeout, max(10.0, 2 * share))
    compiled = compile_rollouts(env, params, planned, args.scan_steps, args.compile_workers, timeout)
    compile_seconds = time.perf_counter() - start
    out_of_memory_at = None
    for batch in batches:
        steps = scan_steps(batch, args.scan_steps)
        function = compiled.pop(batch, None)
        if function is None:
            entry = {"status": "skipped", "reason": "time budget (batch sizes thinned)"}
        elif out_of_memory_at is not None:
            entry = {"status": "skipped", "reason": f"out of memory at B={out_of_memory_at}"}
        elif budget.left() == 0:
            entry = {"status": "skipped", "reason": "time budget"}
        elif isinstance(function, TimeoutError):
            entry = {"status": "skipped", "reason": str(function)}
        elif isinstance(function, Exception):
            entry = {"status": "oom"} if is_out_of_memory(function) else {"status": "error", "error": repr(function)[:300]}
        else:
            try:
                entry = measure_batch(function, batch, steps, call_seconds)
            except Exception as error:  # noqa: BLE001 - one failing size must not end the run
                entry = {"status": "oom"} if is_out_of_memory(error) else {"status": "error", "error": repr(error)[:300]}
        if entry["status"] == "oom":
            out_of_memory_at = batch
        del function
        result["vectorized"][str(batch)] = entry
        print(f"  B={batch:<6d} {describe(entry):>12s}  {entry.get('reason', entry.get('error', ''))}", flush=True)
    gc.collect()
    vectorized_seconds = time.perf_counter() - start
    if gym and budget.left() > 0:
        try:
            result["gymnasium"] = gymnasium_steps_per_second(env_id, args.gym_steps, max(0.2, min(2.0, share / 6)))
        except Exception as error:  # noqa: BLE001
            result["gymnasium"] = {"status": "error", "error": repr(error)[:300]}
        print(f"  gymnasium {describe(result['gymnasium']):>10s}", flush=True)
    elif args.gym_steps > 0:
        result["gymnasium"] = {"status": "skipped", "reason": "time budget"}
    measured = sum(entry["status"] == "ok" for entry in result["vectorized"].values())
    budget.record(measured, vectorized_seconds, time.perf_counter() - start - vectorized_seconds)
    result["seconds"] = {"compile": round(compile_seconds, 2), "total": round(time.perf_counter() - start, 2)}
    print(f"  {len(planned)} batch size(s) traced and compiled in {compile_seconds:.1f}s, {result['seconds']['total']:.1f}s in all", flush=True)
    return result


def describe(entry: dict | None) -> str:
    """A table cell: ``1.23M`` steps/s, ``oom``, ``skipped`` or ``error``."""
    if entry is None:
        return ""
    if entry["status"] != "ok":
        return entry["status"]
    value = entry["steps_per_second"]
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= threshold:
            return f"{value / threshold:.3g}{suffix}"
    return f"{value:.3g}"


def run_metadata(args, label: str, envs: list[str], batches: list[int]) -> dict:
    import flax
    import gymnasium

    device = jax.devices()[0]
    return {
        "device_label": label,
        "device_kind": str(device.device_kind),
        "platform": device.platform,
        "device_count": jax.device_count(),
        "host_cpus": os.cpu_count(),
        "host": platform.processor() or platform.machine(),
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "jaxlib": _jaxlib_version(),
            "flax": flax.__version__,
            "gymnasium": gymnasium.__version__,
        },
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "batch_sizes": batches,
        "max_scan_steps": args.scan_steps,
        "steps_per_scan_budget": STEPS_PER_SCAN_BUDGET,
        "max_seconds": args.max_seconds,
        "gym_steps": args.gym_steps,
        "envs": envs,
        "load_average": {"start": _load_average()},  # other processes skew CPU figures
    }


def _load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _jaxlib_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("jaxlib")
    except Exception:  # noqa: BLE001
        return None


def merge(old: dict | None, new: dict) -> dict:
    """``new``, except that what it skipped keeps an earlier measurement (for ``--update``)."""
    if old is None:
        return new

    def keep(before, now):
        return before if before and now and now["status"] == "skipped" else now

    vectorized = {**old["vectorized"], **{b: keep(old["vectorized"].get(b), e) for b, e in new["vectorized"].items()}}
    return {**new, "vectorized": vectorized, "gymnasium": keep(old.get("gymnasium"), new["gymnasium"])}


def markdown(report: dict) -> str:
    """The results as a markdown table: one row per environment, one column per batch size."""
    runs = report["runs"]
    last = runs[-1]
    batches = sorted({int(b) for result in report["results"].values() for b in result["vectorized"]})
    lines = [
        "# Environment throughput",
        "",
        f"Environment steps per second on **{last['device_kind']}** ({last['platform']}, label `{last['device_label']}`; "
        f"host: {last['host_cpus']} CPUs), jax {last['versions']['jax']}.",
        "",
        "Columns `B=...`: B environments stepped by one jitted `lax.scan` over `jax.vmap(env.step)` (auto-reset, "
        "random actions, observations kept in the carry); compilation excluded, median of 3 calls. "
        "Column `gymnasium`: `gymnasium.make(id)`, one environment in a Python loop. "
        "`oom`: out of device memory; `skipped`: beyond the time budget or after an `oom`.",
        "",
        "| environment | " + " | ".join(f"B={b}" for b in batches) + " | gymnasium | peak |",
        "|---" + "|---:" * (len(batches) + 2) + "|",
    ]
    for env_id in sorted(report["results"]):
        result = report["results"][env_id]
        cells = [describe(result["vectorized"].get(str(b))) for b in batches]
        ok = {int(b): e["steps_per_second"] for b, e in result["vectorized"].items() if e["status"] == "ok"}
        peak = f"{describe({'status': 'ok', 'steps_per_second': max(ok.values())})} (B={max(ok, key=ok.get)})" if ok else ""
        lines.append(f"| {env_id.split('/')[-1]} | " + " | ".join(cells) + f" | {describe(result['gymnasium'])} | {peak} |")
    def peak_load(run):
        return max((v for v in (run.get("load_average") or {}).values() if v is not None), default=0.0)

    busy = [run for run in runs if peak_load(run) > run["host_cpus"]]
    if busy and last["platform"] == "cpu":
        lines += ["", f"The load average exceeded the {last['host_cpus']} CPUs during {len(busy)} of the runs below: other "
                  "processes shared the CPUs, so these CPU figures are low and noisy."]
    lines += ["", "Runs:", ""]
    for run in runs:
        load = run.get("load_average") or {}
        lines.append(
            f"- {run['date']}, jax {run['versions']['jax']}, {len(run['envs'])} environment(s) in {run.get('seconds', '?')}s, "
            f"1-minute load average {load.get('start')} at the start and {load.get('end')} at the end: `{run['command']}`"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=None, help="ids or shell patterns (default: every registered id)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=None, help="default: 1 4 16 ... 65536")
    parser.add_argument("--device-label", default=None, help="names the result files (default: cpu, or the GPU kind)")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="time budget of the whole run")
    parser.add_argument("--call-seconds", type=float, default=0.25, help="target duration of one timed call")
    parser.add_argument("--scan-steps", type=int, default=MAX_SCAN_STEPS, help="steps of one scan at small batches")
    parser.add_argument("--gym-steps", type=int, default=2000, help="gymnasium loop steps (0: skip that path)")
    parser.add_argument("--compile-timeout", type=float, default=90.0, help="seconds before a compilation is given up on")
    parser.add_argument("--compile-workers", type=int, default=min(16, os.cpu_count() or 1), help="threads compiling batch sizes")
    parser.add_argument("--out-dir", type=Path, default=None, help=f"default: {RESULTS} ({tempfile.gettempdir()} with --quick)")
    parser.add_argument("--update", action="store_true", help="merge into existing result files instead of replacing them")
    parser.add_argument("--quick", action="store_true", help="a tiny check: 2 envs, B = 1 and 16, short calls")
    args = parser.parse_args(argv)
    if args.quick:
        args.envs = args.envs or QUICK_ENVS
        args.batch_sizes = args.batch_sizes or [1, 16]
        args.scan_steps, args.call_seconds, args.gym_steps = min(args.scan_steps, 50), 0.02, min(args.gym_steps, 100)
        args.max_seconds = min(args.max_seconds, 120.0)
    if any(b < 1 for b in args.batch_sizes or []):
        parser.error("batch sizes must be >= 1")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    envs = select_envs(args.envs)
    batches = sorted(set(args.batch_sizes or DEFAULT_BATCH_SIZES))
    label = report_label(args)
    out_dir = args.out_dir or (Path(tempfile.gettempdir()) / "mnemax-benchmarks" if args.quick else RESULTS)
    meta = run_metadata(args, label, envs, batches)
    print(f"{len(envs)} environment(s) on {meta['device_kind']} ({meta['platform']}), B = {batches}, budget {args.max_seconds:.0f}s", flush=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"env_throughput_{label}.json"
    report = json.loads(path.read_text()) if args.update and path.exists() else {"runs": [], "results": {}}

    start = time.perf_counter()
    budget = Budget(args.max_seconds, len(envs))
    results = {}
    for env_id in envs:
        print(f"{env_id}", flush=True)
        if budget.left() == 0:
            skipped = {"status": "skipped", "reason": "time budget"}
            results[env_id] = {"vectorized": {str(b): skipped for b in batches}, "gymnasium": skipped}
            budget.record(0, 0.0, 0.0)
            print("  skipped: time budget", flush=True)
            continue
        try:
            earlier = report["results"].get(env_id, {}).get("vectorized", {})
            measured = {int(b) for b, entry in earlier.items() if entry["status"] == "ok"}
            results[env_id] = benchmark_env(env_id, batches, args, budget, measured)
        except Exception as error:  # noqa: BLE001 - e.g. an environment that cannot be built
            print(f"  failed: {error!r}", flush=True)
            results[env_id] = {"vectorized": {str(b): {"status": "error", "error": repr(error)[:300]} for b in batches}, "gymnasium": None}
            budget.record(0, 0.0, 0.0)
        jax.clear_caches()
    print(f"done in {time.perf_counter() - start:.0f}s", flush=True)
    meta["load_average"]["end"] = _load_average()
    meta["seconds"] = round(time.perf_counter() - start, 1)

    report["runs"].append(meta)
    for env_id, result in results.items():
        report["results"][env_id] = merge(report["results"].get(env_id), result)
    path.write_text(json.dumps(report, indent=1) + "\n")
    path.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {path} and {path.with_suffix('.md')}")
    return report


if __name__ == "__main__":
    main()
    if any(not future.done() for future in _STILL_COMPILING):
        # Threads stuck in XLA compilations that were given up on would hold the exit; results are written.
        sys.stdout.flush()
        os._exit(0)
