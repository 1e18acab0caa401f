"""End-to-end PPO training throughput: mnemax against memorax 1.0.1, same task, same device, same run.

    python benchmarks/ppo_throughput.py                    # the grid on a GPU, within --max-seconds 360
    python benchmarks/ppo_throughput.py --quick            # tiny sizes, a CPU check of both libraries

For every cell of the grid (environment x memory x number of environments) both libraries train
recurrent PPO on the same mnemax environment with the same rollout length, epochs, minibatches and
widths, in one process, on the first device:

* mnemax: ``mnemax.train.loop.Trainer(config).train_interval`` (rollout, GAE and every epoch of
  ``--updates`` PPO updates in one jitted call).
* memorax 1.0.1: ``memorax.algorithms.PPO`` as its README uses it, ``agent.init(key)`` and
  ``agent.train(key, state, num_steps)`` (one jitted ``lax.scan`` over whole PPO updates), on the mnemax
  environment wrapped in ``mnemax.envs.interop.gymnax_adapter.GymnaxAdapter`` (memorax needs gymnax 0.0.x's
  five-tuple ``step``).

Each library's first call (tracing, compilation and one run) is timed on its own; then the median of
``--repeats`` calls gives the training steps per second (``updates x num_envs x num_steps`` environment
steps per call). ``compile_seconds`` is the first call less one timed call. ``--max-seconds`` bounds the
whole run: the grid runs the smallest and the largest batch of every (env, memory) first, then the
others, and a measurement that would not fit (judged by the last one of its library) is skipped and
listed in the report. When memorax cannot be imported the report says why and mnemax is measured alone.

Memories: any name of ``mnemax.memory_modules.names()`` runs for mnemax (``transformer_xl`` is taken as
``trxl``). memorax runs the counterparts built in ``memorax_torso``: ``gru`` (``RNN(GRUCell)``), ``lstm``
(``RNN(OptimizedLSTMCell)``) and ``trxl`` (a stack of self-attention with segment recurrence and
feed-forward blocks); other memories are measured for mnemax only.

memorax's side is built by ``memorax_setup.memorax_ppo`` from the same mnemax configuration as mnemax's;
the report lists every difference that remains (``memorax_setup.mismatches``: separate actor and critic
networks, heads, cells, attention, advantage normalisation, ...) and these two of this benchmark:

* Outputs: memorax's ``train`` returns every transition of every update (actions, rewards, log-probs,
  values and the environment's ``info``) stacked; mnemax returns per-update statistics. The ``final_obs``
  entry of mnemax's ``info`` is dropped before memorax sees it (memorax never reads it, and returning it
  for every step would only add memory traffic to memorax's side).
* mnemax donates its training state to the jitted call; memorax's ``train`` does not.

On NVIDIA GPUs memorax picks cuDNN attention in bfloat16 by itself; if that fails, memorax is measured
again with XLA attention in float32 and the report notes it. Installing memorax next to mnemax, also on
a machine without internet: see ``memorax_setup.py``.

Writes ``benchmarks/results/ppo_throughput_<device-label>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import time

import jax
import jax.numpy as jnp

from common import default_label, is_out_of_memory, markdown_table, median_seconds, metadata, write_report
from memorax_setup import import_memorax, memorax_ppo, mismatches, package_versions
from mnemax import envs, memory_modules
from mnemax.train import PPOConfig
from mnemax.train.loop import Trainer

DEFAULT_ENVS = ("mnemax/TMaze-Passive-L100-v0", "mnemax/MortarMayhem-Grid-Symbolic-v0")
DEFAULT_MEMORIES = ("gru", "trxl")
DEFAULT_NUM_ENVS = (1024, 2048, 4096, 8192)
ALIASES = {"transformer_xl": "trxl"}
LIBRARIES = ("mnemax", "memorax")

# Differences of this benchmark's set-up beyond those of memorax_setup.mismatches (all go into the report).
THROUGHPUT_MISMATCHES = [
    "memorax's train returns every transition (and the env info) of every update; mnemax returns per-update "
    "statistics; mnemax's info['final_obs'] is dropped before memorax sees it",
    "mnemax donates its training state to the jitted call; memorax does not",
]

# ------------------------------------------------------------------------------------------ helpers
def resolve_memory(name: str) -> str | None:
    """The registered mnemax name for ``name`` (``transformer_xl`` -> ``trxl``), or None."""
    registered = memory_modules.names()
    if name in registered:
        return name
    alias = ALIASES.get(name)
    return alias if alias in registered else None


def time_calls(call, steps_per_call: int, repeats: int) -> dict:
    """Time ``call()`` (which blocks until its work is done): the first call apart, then the median."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    seconds = median_seconds(call, repeats)
    return {
        "steps_per_second": steps_per_call / seconds,
        "seconds_per_call": seconds,
        "first_call_seconds": first,
        "compile_seconds": max(first - seconds, 0.0),
        "steps_per_call": steps_per_call,
    }


def coverage_order(values: list[int]) -> list[int]:
    """The smallest and the largest first, then the rest: what a cut by the time budget leaves out matters least."""
    ordered = sorted(set(values))
    return ordered[:1] + ordered[-1:] + ordered[1:-1] if len(ordered) > 1 else ordered


def reset_pool_mismatch(pool: int) -> list[str]:
    """The report's line for ``--reset-pool`` (none when it is 0)."""
    if not pool:
        return []
    return [
        f"mnemax draws each environment's initial states {pool} at a time ahead of use (reset_pool, from the same "
        "distribution, so the task is unchanged); memorax steps the environment with its own auto-reset, which "
        "computes a fresh initial state at every step and keeps it only where an episode ended"
    ]


# ------------------------------------------------------------------------------------------- mnemax
def memory_config(args, memory: str) -> dict:
    return {"memory_length": args.trxl_memory} if memory == "trxl" and args.trxl_memory else {}


def mnemax_config(args, env_id: str, memory: str, num_envs: int) -> PPOConfig:
    return PPOConfig(
        env=env_id, memory=memory, memory_config=memory_config(args, memory), hidden_size=args.hidden_size,
        num_envs=num_envs, num_steps=args.num_steps, update_epochs=args.update_epochs,
        num_minibatches=args.num_minibatches, total_steps=num_envs * args.num_steps * args.updates,
        bootstrap_truncated=args.bootstrap_truncated, reset_pool=args.reset_pool, num_logs=1, num_devices=1,
        progress=False, video=False,
    )  # fmt: skip


def measure_mnemax(args, env_id: str, memory: str, num_envs: int) -> dict:
    config = mnemax_config(args, env_id, memory, num_envs)
    trainer = Trainer(config)
    state = {"runner": trainer.init()}

    def call():
        state["runner"], metrics = trainer.train_interval(state["runner"])
        jax.block_until_ready((state["runner"], metrics))

    steps = config.updates_per_log * config.steps_per_update * config.num_seeds
    return time_calls(call, steps, args.repeats)


# ------------------------------------------------------------------------------------------ memorax
def attention_mode() -> str:
    """How memorax's SelfAttention computes attention here (it picks cuDNN in bfloat16 on NVIDIA GPUs)."""
    from memorax.networks.sequence_models import self_attention

    implementation, dtype = self_attention.get_attention_implementation()
    return f"{implementation} {jnp.dtype(dtype).name}"


def use_xla_attention() -> bool:
    """Make memorax's SelfAttention use XLA in float32 from now on; False if it already did."""
    from memorax.networks.sequence_models import self_attention

    if self_attention.get_attention_implementation()[0] == "xla":
        return False
    self_attention.get_attention_implementation = lambda: ("xla", jnp.float32)
    return True


def measure_memorax(args, env_id: str, memory: str, num_envs: int) -> dict:
    """Time memorax; if its cuDNN attention fails here, time it again with XLA attention (and say so)."""
    try:
        result = time_memorax(args, env_id, memory, num_envs)
    except Exception as error:
        if memory != "trxl" or is_out_of_memory(error) or not use_xla_attention():
            raise
        result = time_memorax(args, env_id, memory, num_envs)
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        result["note"] = f"cuDNN attention failed ({reason}); measured with XLA attention"
    if memory == "trxl":
        result["attention"] = attention_mode()
    return result


def time_memorax(args, env_id: str, memory: str, num_envs: int) -> dict:
    agent = memorax_ppo(mnemax_config(args, env_id, memory, num_envs))
    key, train_state = agent.init(jax.random.key(0))
    steps = args.updates * num_envs * args.num_steps
    state = {"key": key, "state": train_state}

    def call():
        state["key"], state["state"], transitions = agent.train(state["key"], state["state"], steps)
        jax.block_until_ready((state["state"], transitions))

    return time_calls(call, steps, args.repeats)


# --------------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS))
    parser.add_argument("--memories", nargs="+", default=list(DEFAULT_MEMORIES))
    parser.add_argument("--num-envs", nargs="+", type=int, default=list(DEFAULT_NUM_ENVS))
    parser.add_argument("--num-steps", type=int, default=128, help="rollout length")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--update-epochs", type=int, default=4)
    parser.add_argument("--num-minibatches", type=int, default=4)
    parser.add_argument("--trxl-memory", type=int, default=0, help="memory_length of trxl (0: mnemax's default)")
    parser.add_argument("--bootstrap-truncated", action="store_true", help="mnemax bootstraps truncated episodes")
    parser.add_argument(
        "--reset-pool", type=int, default=0,
        help="mnemax draws each environment's initial states this many at a time, ahead of use (PPOConfig.reset_pool; "
        "the memory_gym preset's 16); 0: a fresh reset computed at every step, as memorax runs the env",
    )  # fmt: skip
    parser.add_argument("--updates", type=int, default=2, help="PPO updates per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (median)")
    parser.add_argument("--max-seconds", type=float, default=None, help="time budget of the whole run (360; --quick 1800)")
    parser.add_argument("--libraries", nargs="+", choices=LIBRARIES, default=list(LIBRARIES))
    parser.add_argument("--device-label", default=None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a CPU check")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_envs, args.num_steps, args.hidden_size = [16], 16, 32
        args.trxl_memory, args.updates, args.repeats = 8, 1, 2
    if args.max_seconds is None:
        args.max_seconds = 1800.0 if args.quick else 360.0
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    memorax, memorax_error = import_memorax() if "memorax" in args.libraries else (None, "not requested (--libraries)")
    if memorax_error:
        print(f"memorax unavailable: {memorax_error}", flush=True)
    rows, skipped = [], []
    pairs = []  # (env, memory) that can run
    for env_id in args.envs:
        if env_id not in envs.registered_ids():
            skipped.append({"env": env_id, "reason": "environment not registered"})
            print(f"skip {env_id}: not registered", flush=True)
            continue
        for requested in args.memories:
            memory = resolve_memory(requested)
            if memory is None:
                skipped.append({"env": env_id, "memory": requested, "reason": "memory module not registered"})
                print(f"skip {requested}: not registered (have {', '.join(memory_modules.names())})", flush=True)
            else:
                pairs.append((env_id, memory))
    last_seconds = {lib: 0.0 for lib in LIBRARIES}  # duration of each library's last measurement
    out_of_memory = {}  # (env, memory, library) -> the smallest batch that ran out of memory
    for num_envs in coverage_order(args.num_envs):
        for env_id, memory in pairs:
            row = {"env": env_id, "memory": memory, "num_envs": num_envs}
            for lib in args.libraries:
                if lib == "memorax" and memorax is None:
                    row["memorax_error"] = f"memorax unavailable: {memorax_error}"
                    continue
                if num_envs >= out_of_memory.get((env_id, memory, lib), float("inf")):
                    row[f"{lib}_error"] = "skipped: out of memory at a smaller batch"
                    continue
                if time.perf_counter() - started + last_seconds[lib] > args.max_seconds:
                    reason = f"skipped: over the time budget (--max-seconds {args.max_seconds:g})"
                    row[f"{lib}_error"] = reason
                    skipped.append({"env": env_id, "memory": memory, "num_envs": num_envs, "library": lib, "reason": reason})
                    continue
                t0 = time.perf_counter()
                try:
                    measure = measure_mnemax if lib == "mnemax" else measure_memorax
                    row[lib] = measure(args, env_id, memory, num_envs)
                except NotImplementedError as error:
                    row[f"{lib}_error"] = str(error)
                except Exception as error:  # one failing cell must not lose the others
                    if is_out_of_memory(error):
                        out_of_memory[env_id, memory, lib] = min(num_envs, out_of_memory.get((env_id, memory, lib), num_envs))
                        row[f"{lib}_error"] = "out of memory"
                    else:
                        row[f"{lib}_error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                last_seconds[lib] = time.perf_counter() - t0
                gc.collect()
            if "mnemax" in row and "memorax" in row:
                row["ratio"] = row["mnemax"]["steps_per_second"] / row["memorax"]["steps_per_second"]
            rows.append(row)
            print(summary_line(row), flush=True)
            # Written after every cell, so a run cut short by an outer time limit keeps what it measured.
            write_progress(args, started, memorax_error, pairs, rows, skipped)
    report, (json_path, md_path) = write_progress(args, started, memorax_error, pairs, rows, skipped)
    print(f"wrote {json_path} and {md_path}", flush=True)
    return report


def write_progress(args, started: float, memorax_error, pairs, rows, skipped) -> tuple[dict, tuple]:
    """Writes the report of the cells measured so far; returns it and the paths of its two files."""
    order = {pair: i for i, pair in enumerate(pairs)}
    configs = [mnemax_config(args, env_id, memory, args.num_envs[0]) for env_id, memory in pairs]
    report = {
        "meta": metadata(versions=package_versions(), wall_seconds=time.perf_counter() - started),
        "settings": {
            "envs": args.envs, "memories": args.memories, "num_envs": args.num_envs, "num_steps": args.num_steps,
            "hidden_size": args.hidden_size, "update_epochs": args.update_epochs,
            "num_minibatches": args.num_minibatches, "trxl_memory": args.trxl_memory or None,
            "bootstrap_truncated": args.bootstrap_truncated, "reset_pool": args.reset_pool,
            "updates_per_call": args.updates,
            "repeats": args.repeats, "max_seconds": args.max_seconds, "quick": args.quick,
        },  # fmt: skip
        "memorax": f"memorax unavailable: {memorax_error}" if memorax_error else f"memorax {importlib.metadata.version('memorax')}",
        "mismatches": list(dict.fromkeys(m for config in configs for m in mismatches(config)))
        + THROUGHPUT_MISMATCHES + reset_pool_mismatch(args.reset_pool),
        "rows": sorted(rows, key=lambda r: (order[r["env"], r["memory"]], r["num_envs"])),
        "skipped": skipped,
    }
    return report, write_report("ppo_throughput", args.device_label or default_label(), report, render_markdown(report))


def summary_line(row: dict) -> str:
    parts = [f"{row['env']} {row['memory']} {row['num_envs']} envs:"]
    for lib in LIBRARIES:
        if lib in row:
            parts.append(f"{lib} {row[lib]['steps_per_second']:,.0f} steps/s (compile {row[lib]['compile_seconds']:.1f} s)")
        elif f"{lib}_error" in row:
            parts.append(f"{lib}: {row[f'{lib}_error']}")
    if "ratio" in row:
        parts.append(f"ratio {row['ratio']:.2f}")
    return " ".join(parts)


def render_markdown(report: dict) -> str:
    meta, settings = report["meta"], report["settings"]
    table_rows = []
    for row in report["rows"]:
        cells = [f"`{row['env'].split('/')[-1]}`", row["memory"], row["num_envs"]]
        for lib in LIBRARIES:
            if lib in row:
                cells += [f"{row[lib]['steps_per_second']:,.0f}", f"{row[lib]['compile_seconds']:.1f}"]
            else:
                cells += [row.get(f"{lib}_error", ""), ""]
        cells.append(f"{row['ratio']:.2f}" if "ratio" in row else "")
        memorax = row.get("memorax", {})
        notes = [f"memorax attention: {memorax['attention']}"] if "attention" in memorax else []
        cells.append("; ".join(notes + ([memorax["note"]] if "note" in memorax else [])))
        table_rows.append(cells)
    table = markdown_table(
        ["env", "memory", "envs", "mnemax steps/s", "mnemax compile s", "memorax steps/s", "memorax compile s",
         "mnemax / memorax", "notes"],
        table_rows,
    )  # fmt: skip
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    lines = [
        f"# PPO training throughput, mnemax vs memorax: {meta['device']}",
        "",
        f"Recurrent PPO on the same mnemax environments, {settings['num_steps']}-step rollouts, hidden size "
        f"{settings['hidden_size']}, {settings['update_epochs']} epochs x {settings['num_minibatches']} minibatches, "
        f"{settings['updates_per_call']} PPO updates per timed call, median of {settings['repeats']} calls after a "
        f"compiled warm-up (compile = first call less one timed call). One device ({meta['platform']}), one process.",
        "",
        f"jax {meta['jax']}, Python {meta['python']}, {versions}; {meta['date']}.",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"memorax: {report['memorax']}",
        "",
        table,
    ]
    if report["skipped"]:
        lines += ["Skipped:", ""]
        for s in report["skipped"]:
            what = " ".join(str(s[k]) for k in ("env", "memory", "num_envs", "library") if k in s)
            lines.append(f"- {what}: {s['reason']}")
        lines.append("")
    lines += ["Differences between the two set-ups:", ""] + [f"- {m}" for m in report["mismatches"]] + [""]
    if settings["quick"]:
        lines += ["`--quick` sizes: a check that both libraries run, not a measurement.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
