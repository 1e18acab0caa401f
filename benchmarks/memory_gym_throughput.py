"""Steps per second of the JAX Memory Gym environments against the pygame ``memory-gym`` package.

    python benchmarks/memory_gym_throughput.py [--device-label cpu] [--max-seconds 240] [--quick] [--reset-pool 16]

Ours: ``B`` environments stepped by one jitted ``lax.scan`` over ``jax.vmap(env.step)`` (auto-reset
included) with uniformly random actions, for pixel (84x84x3 uint8) and symbolic observations, at
batch sizes 1, 4, 16, ... (powers of 4). ``--reset-pool K`` steps them as the trainers' presets do, with
the initial states of the next episodes drawn ahead, K per environment at a time
(``wrappers.Vmap(env, B, reset_pool=K)``) instead of one at every step. The observation rides in the
scan's carry, so every frame is rendered in full and written to device memory, as a rollout buffer would
need it.

Reference: memory-gym (pygame, default reset parameters) on one CPU core, stepping one environment
with random actions and resetting at episode ends; skipped with a message when the package is not
installed (it pins old gymnasium/pygame versions: ``pip install memory-gym --no-deps``).

Writes ``benchmarks/results/memory_gym_throughput_<device-label>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

TASKS = {  # our id -> memory-gym's environment class
    "MortarMayhem-Grid-v0": "memory_gym.mortar_mayhem_grid:GridMortarMayhemEnv",
    "MortarMayhem-v0": "memory_gym.mortar_mayhem:MortarMayhemEnv",
    "MysteryPath-Grid-v0": "memory_gym.mystery_path_grid:GridMysteryPathEnv",
    "MysteryPath-v0": "memory_gym.mystery_path:MysteryPathEnv",
    "SearingSpotlights-v0": "memory_gym.searing_spotlights:SearingSpotlightsEnv",
    "EndlessMortarMayhem-v0": "memory_gym.endless_mortar_mayhem:EndlessMortarMayhemEnv",
    "EndlessMysteryPath-v0": "memory_gym.endless_mystery_path:EndlessMysteryPathEnv",
    "EndlessSearingSpotlights-v0": "memory_gym.endless_searing_spotlights:EndlessSearingSpotlightsEnv",
}
QUICK_TASKS = ("MortarMayhem-Grid-v0", "SearingSpotlights-v0")
RESULTS = Path(__file__).resolve().parent / "results"


# ----------------------------------------------------------------------------------------- reference
def reference_steps_per_second(entry_point: str, steps: int, seed: int = 0) -> float:
    """memory-gym's steps/s on this process's single core (random actions, resets included)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    import importlib

    module, name = entry_point.split(":")
    env = getattr(importlib.import_module(module), name)()
    env.action_space.seed(seed)
    env.reset(seed=seed)
    for _ in range(50):  # warm-up
        if env.step(env.action_space.sample())[2]:
            env.reset()
    start = time.perf_counter()
    for _ in range(steps):
        _, _, done, truncated, _ = env.step(env.action_space.sample())
        if done or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def run_reference(entry_point: str, steps: int) -> float | None:
    """Measure the reference in a fresh process pinned to one core (None if it cannot run)."""
    code = (
        "import os, sys; sys.path.insert(0, %r);"
        "hasattr(os, 'sched_setaffinity') and os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]});"
        "import memory_gym_throughput as b; print(b.reference_steps_per_second(%r, %d))"
    ) % (str(Path(__file__).resolve().parent), entry_point, steps)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"  reference {entry_point} failed: {out.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return float(out.stdout.strip().splitlines()[-1])


def reference_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("memory-gym")
    except Exception:
        return None


# ----------------------------------------------------------------------------------------------- ours
def make_runner(env_id: str, batch: int, steps: int, reset_pool: int = 0):
    import jax

    import mnemax.envs
    from mnemax.envs.core import wrappers

    env, params = mnemax.envs.make(env_id)
    space = env.action_space(params)
    vec_env = wrappers.Vmap(env, batch, reset_pool=reset_pool)  # without a pool: vmap(env.step)

    @jax.jit
    def run(key, obs, state):
        def body(carry, key):
            obs, state = carry
            act_key, step_key = jax.random.split(key)
            actions = jax.vmap(space.sample)(jax.random.split(act_key, batch))
            obs, state, reward, *_ = vec_env.step(step_key, state, actions, params)
            return (obs, state), reward

        (obs, state), rewards = jax.lax.scan(body, (obs, state), jax.random.split(key, steps))
        return obs, state, rewards.sum()

    obs, state = jax.jit(vec_env.reset)(jax.random.key(0), params)
    return run, obs, state


def ours_steps_per_second(env_id: str, batch: int, steps: int, min_time: float, reset_pool: int = 0) -> dict:
    import jax

    start = time.perf_counter()
    run, obs, state = make_runner(env_id, batch, steps, reset_pool)
    key = jax.random.key(1)
    obs, state, total = run(key, obs, state)
    jax.block_until_ready(total)
    compile_s = time.perf_counter() - start
    calls, elapsed = 0, 0.0
    while elapsed < min_time or calls < 2:
        key, sub = jax.random.split(key)
        t0 = time.perf_counter()
        obs, state, total = run(sub, obs, state)
        jax.block_until_ready((obs, total))
        elapsed += time.perf_counter() - t0
        calls += 1
    return {"batch": batch, "steps_per_second": batch * steps * calls / elapsed, "compile_seconds": compile_s}


# ------------------------------------------------------------------------------------------------ main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device-label", default=None, help="names the result files (default: the JAX platform)")
    parser.add_argument("--max-seconds", type=float, default=240.0, help="time budget for our measurements")
    parser.add_argument("--quick", action="store_true", help="two tasks, small batches, short scans")
    parser.add_argument("--tasks", nargs="+", default=None, choices=sorted(TASKS))
    parser.add_argument("--max-batch", type=int, default=None, help="default: 16384 on accelerators, 1024 on CPU")
    parser.add_argument("--scan-steps", type=int, default=None, help="steps per jitted call (default 64, quick 16)")
    parser.add_argument("--reference-steps", type=int, default=3000)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--reset-pool", type=int, default=0, help="initial states drawn ahead per env (0: none)")
    args = parser.parse_args(argv)

    import jax

    device = jax.devices()[0]
    label = args.device_label or device.platform
    tasks = args.tasks or list(QUICK_TASKS if args.quick else TASKS)
    max_batch = args.max_batch or (256 if args.quick else 1024 if device.platform == "cpu" else 16384)
    batches = [4**i for i in range(16) if 4**i <= max_batch]
    scan_steps = args.scan_steps or (16 if args.quick else 64)
    min_time = 0.2 if args.quick else 0.5
    ids = [f"{task.removesuffix('-v0')}{mode}-v0" for task in tasks for mode in ("", "-Symbolic")]

    results = {"ours": {}, "reference": {}}
    # Each environment gets an equal share of the budget. The smallest and the largest batch are
    # always measured (the largest is the headline); the others while the share lasts.
    share = args.max_seconds / len(ids)
    order = [batches[-1], *batches[:-1]] if len(batches) > 1 else batches
    for env_id in ids:
        start = time.perf_counter()
        rows = []
        for batch in order:
            spent = time.perf_counter() - start
            cost = (rows[-1]["compile_seconds"] if rows else 0.0) + min_time * 3  # the next one costs about as much
            if batch not in (batches[0], batches[-1]) and spent + cost > share:
                print(f"{env_id}: over its time share, batch {batch} skipped", flush=True)
                continue
            row = ours_steps_per_second(env_id, batch, scan_steps, min_time, args.reset_pool)
            rows.append(row)
            print(f"{env_id:32s} batch {batch:6d}: {row['steps_per_second']:14,.0f} steps/s (compile {row['compile_seconds']:.1f}s)", flush=True)
        results["ours"][env_id] = sorted(rows, key=lambda row: row["batch"])

    version = reference_version()
    if args.no_reference:
        print("reference skipped (--no-reference)")
    elif version is None:
        print("memory-gym is not installed: reference skipped (pip install memory-gym --no-deps)")
    else:
        for task in tasks:
            sps = run_reference(TASKS[task], args.reference_steps // (4 if args.quick else 1))
            if sps is not None:
                results["reference"][task] = sps
                print(f"memory-gym {task:22s}: {sps:10,.0f} steps/s (1 CPU core)", flush=True)

    import flax

    meta = {
        "device": str(device.device_kind),
        "platform": device.platform,
        "device_count": jax.device_count(),
        "label": label,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "versions": {"python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__, "memory-gym": version},
        "host": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "scan_steps": scan_steps,
        "reset_pool": args.reset_pool,
        "reference_steps": args.reference_steps,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"memory_gym_throughput_{label}"
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, **results}, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(meta, results, tasks))
    print(f"wrote {out}.json and .md")


def markdown(meta: dict, results: dict, tasks) -> str:
    lines = [
        "# Memory Gym throughput",
        "",
        f"- device: {meta['device']} ({meta['platform']}, {meta['device_count']} device(s)); host CPUs: {meta['cpu_count']}",
        f"- date: {meta['date']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- command: `{meta['command']}`",
        f"- ours: one jitted `lax.scan` of {meta['scan_steps']} steps over `vmap(step)` (auto-reset"
        + (f"; initial states drawn ahead, {meta['reset_pool']} per environment" if meta.get("reset_pool") else "")
        + "), random actions, "
        "observations kept in the scan carry; reference: memory-gym (pygame) on one CPU core, random actions, "
        f"{meta['reference_steps']} steps.",
        "",
        "Environment steps per second:",
        "",
    ]
    batches = sorted({row["batch"] for rows in results["ours"].values() for row in rows})
    lines.append("| environment | " + " | ".join(f"B={b}" for b in batches) + " | memory-gym (1 core) | best / memory-gym |")
    lines.append("|---" * (len(batches) + 3) + "|")
    for env_id, rows in results["ours"].items():
        by_batch = {row["batch"]: row["steps_per_second"] for row in rows}
        task = env_id.replace("-Symbolic", "")
        reference = results["reference"].get(task) if "-Symbolic" not in env_id else None
        best = max(by_batch.values()) if by_batch else None
        ratio = f"{best / reference:,.0f}x" if reference and best else ""
        ref = f"{reference:,.0f}" if reference else ""
        cells = [f"{by_batch[b]:,.0f}" if b in by_batch else "" for b in batches]
        lines.append(f"| {env_id} | " + " | ".join(cells) + f" | {ref} | {ratio} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
