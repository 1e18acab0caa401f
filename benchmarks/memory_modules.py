"""Training cost of the memory modules: forward + backward time and peak device memory vs sequence length.

Every module gets the same width and batch; the attention models get ``--layers`` layers. Transformer-XL
runs with ``memory_length = T`` (dense attention over the whole sequence), HCAM with chunks of 64
steps, ``top_k = 4`` and room for the whole sequence, RATE with segments of 64 steps and 8 memory
tokens; the scan-based memories (FFM, minGRU, S5, Mamba, Mamba-2) run one layer. Each (module, length) runs
in its own process, so the peak memory of one configuration is not mixed with another's and an out-of-memory
failure only ends that configuration (it is recorded as ``"oom"``, and longer sequences of that module
are skipped).

    python benchmarks/memory_modules.py                      # GPU run: T = 128 .. 16384
    python benchmarks/memory_modules.py --quick              # tiny sizes on the CPU, to check the script
    python benchmarks/memory_modules.py --modules gru hcam --lengths 1024 4096 --device-label h100

A module may carry settings of its own after a colon, ``NAME:KEY=VALUE,...`` (values as Python literals);
each such variant is a row of its own, e.g. how HCAM's chunk read or Mamba-2's chunks change the cost:

    python benchmarks/memory_modules.py --modules hcam hcam:read_block=4096 mamba2:chunk_size=32 --lengths 1024

Writes ``benchmarks/results/memory_modules_<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODULES = ["gru", "lstm", "ffm", "min_gru", "s5", "lru", "mamba", "mamba2", "linear_attention", "trxl", "hcam", "rate"]
ATTENTION_MODELS = {"linear_attention", "trxl", "hcam", "rate"}
HCAM_CHUNK, HCAM_TOP_K = 64, 4
RATE_SEGMENT, RATE_TOKENS = 64, 8
# One layer each, sizes written out so the report does not depend on the modules' defaults.
SCAN_MODELS = {
    "min_gru": {"num_layers": 1},
    "s5": {"num_layers": 1, "state_size": 64, "blocks": 4},
    "lru": {"num_layers": 1, "state_size": 64},
    "mamba": {"num_layers": 1, "state_size": 16, "expand": 1, "conv_size": 4},
    "mamba2": {"num_layers": 1, "state_size": 16, "head_dim": 64, "expand": 1, "conv_size": 4, "chunk_size": 64},
}
RESULTS = Path(__file__).resolve().parent / "results"


def module_config(name: str, length: int, args) -> dict:
    """The ``mnemax.memory_modules.make`` config of ``name`` (a module or ``module:KEY=VALUE,...``) for
    sequences of ``length`` steps."""
    from common import split_variant  # here, not at the top: it imports JAX, after --quick picked the CPU

    name, overrides = split_variant(name)
    config = {"features": args.features, "dtype": args.dtype}
    if name in ATTENTION_MODELS:
        config.update(num_layers=args.layers, num_heads=args.heads)
    if name == "linear_attention":
        config.update(chunk_size=64)
    if name == "trxl":
        config.update(memory_length=length, gated=True)
    if name == "hcam":
        config.update(
            chunk_size=HCAM_CHUNK,
            top_k=HCAM_TOP_K,
            memory_chunks=max(HCAM_TOP_K, -(-length // HCAM_CHUNK)),
            local_length=HCAM_CHUNK,
        )
    if name == "rate":
        config.update(segment_length=RATE_SEGMENT, memory_tokens=RATE_TOKENS)
    config.update(SCAN_MODELS.get(name, {}))
    config.update(overrides)
    return config


def is_out_of_memory(error: BaseException) -> bool:
    text = f"{type(error).__name__}: {error}".lower()
    return any(s in text for s in ("resource_exhausted", "out of memory", "oom", "failed to allocate"))


def measure(name: str, length: int, args) -> dict:
    """Compile and time one configuration in this process; returns a result record."""
    import jax
    import jax.numpy as jnp

    import mnemax.memory_modules as mm
    from common import split_variant

    device = jax.devices()[0]
    config = module_config(name, length, args)
    record = {
        "module": name,
        "length": length,
        "config": {**config, "dtype": args.dtype},
        "device_kind": device.device_kind,
        "platform": device.platform,
    }
    config["dtype"] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[args.dtype]
    try:
        module = mm.make(split_variant(name)[0], **config)
        kx, kp = jax.random.split(jax.random.key(0))
        inputs = jax.random.normal(kx, (length, args.batch, args.features), jnp.float32)
        resets = jnp.zeros((length, args.batch), bool).at[0].set(True)
        carry = module.initialize_carry(args.batch)
        params = jax.jit(module.init)(kp, carry, inputs[:1], resets[:1])

        def loss(params, carry, inputs, resets):
            _, outputs = module.apply(params, carry, inputs, resets)
            return jnp.mean(jnp.square(outputs.astype(jnp.float32)))

        start = time.perf_counter()
        step = jax.jit(jax.value_and_grad(loss)).lower(params, carry, inputs, resets).compile()
        record["compile_s"] = time.perf_counter() - start
        try:  # XLA's own estimate of the scratch memory, where the backend reports it
            record["xla_temp_bytes"] = int(step.memory_analysis().temp_size_in_bytes)
        except Exception:  # noqa: BLE001
            pass
        for _ in range(args.warmup):
            jax.block_until_ready(step(params, carry, inputs, resets))
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            jax.block_until_ready(step(params, carry, inputs, resets))
            times.append(time.perf_counter() - start)
        record["times_ms"] = [1e3 * t for t in times]
        record["time_ms"] = 1e3 * statistics.median(times)
        record["steps_per_s"] = length * args.batch / statistics.median(times)
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        record["peak_bytes"] = int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else "n/a"
        record["status"] = "ok"
    except Exception as error:  # noqa: BLE001 -- any failure is recorded, the sweep goes on
        record["status"] = "oom" if is_out_of_memory(error) else "error"
        record["error"] = f"{type(error).__name__}: {str(error)[:500]}"
    return record


def measure_in_subprocess(name: str, length: int, args) -> dict:
    command = [sys.executable, __file__, "--single", name, str(length)] + forwarded_flags(args)
    env = dict(os.environ)
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # grow on demand: peak = what the run needs
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"module": name, "length": length, "status": "timeout", "config": module_config(name, length, args)}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (done.stderr or done.stdout)[-800:]
    status = "oom" if any(s in tail.lower() for s in ("resource_exhausted", "out of memory")) else "error"
    return {
        "module": name,
        "length": length,
        "status": status,
        "config": module_config(name, length, args),
        "error": f"exit {done.returncode}: {tail}",
    }


def forwarded_flags(args) -> list[str]:
    return [
        f"--features={args.features}",
        f"--batch={args.batch}",
        f"--layers={args.layers}",
        f"--heads={args.heads}",
        f"--dtype={args.dtype}",
        f"--warmup={args.warmup}",
        f"--repeats={args.repeats}",
    ]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def cell_time(record: dict) -> str:
    return f"{record['time_ms']:.1f}" if record["status"] == "ok" else record["status"]


def cell_memory(record: dict) -> str:
    if record["status"] != "ok":
        return record["status"]
    peak = record.get("peak_bytes", "n/a")
    if peak == "n/a" and "xla_temp_bytes" in record:  # the CPU reports no peak: XLA's scratch estimate
        return f"{record['xla_temp_bytes'] / 2**20:.0f}*"
    return "n/a" if peak == "n/a" else f"{peak / 2**20:.0f}"


def markdown(report: dict) -> str:
    lengths = report["lengths"]
    by_key = {(r["module"], r["length"]): r for r in report["results"]}
    modules = [m for m in report["modules"] if any((m, t) in by_key for t in lengths)]
    c = report["config"]
    lines = [
        f"# Memory modules: forward + backward cost on {report['device']}",
        "",
        f"- device: {report['device']} ({report['platform']}); jax {report['jax']}, flax {report['flax']}; "
        f"{report['date']}",
        f"- width {c['features']}, batch {c['batch']}, {c['layers']} layers / {c['heads']} heads for the attention "
        f"models, dtype {c['dtype']}; median of {c['repeats']} runs after {c['warmup']} warm-up",
        f"- trxl: GTrXL with memory_length = T (dense); hcam: chunk_size {HCAM_CHUNK}, top_k {HCAM_TOP_K}, "
        f"memory for the whole sequence, local window {HCAM_CHUNK}; linear_attention: chunk_size 64; "
        f"rate: segment_length {RATE_SEGMENT}, {RATE_TOKENS} memory tokens",
        "- one layer: ffm; "
        + "; ".join(f"{m}: " + ", ".join(f"{k} {v}" for k, v in c.items()) for m, c in SCAN_MODELS.items()),
        "- `oom`: out of device memory; `skipped`: a shorter sequence already ran out of memory; `*`: XLA's "
        "estimate of the scratch memory, where the device reports no peak",
        "",
    ]
    tables = (("Time per forward + backward pass (ms)", cell_time), ("Peak device memory (MiB)", cell_memory))
    for title, cell in tables:
        lines += [f"## {title}", "", "| module | " + " | ".join(f"T={t}" for t in lengths) + " |"]
        lines.append("|---|" + "---:|" * len(lengths))
        for m in modules:
            cells = [cell(by_key[(m, t)]) if (m, t) in by_key else "" for t in lengths]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--modules", nargs="+", default=MODULES, help="registered module names, each optionally NAME:KEY=VALUE,..."
    )
    parser.add_argument("--lengths", nargs="+", type=int, help="sequence lengths (default: powers of two)")
    parser.add_argument("--min-length", type=int, default=128)
    parser.add_argument("--max-length", type=int, default=16384)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--layers", type=int, default=4, help="layers of the attention models")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per configuration")
    parser.add_argument("--device-label", help="name used in the output files (default: the device kind)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--update", action="store_true", help="merge into the existing report of this device label")
    parser.add_argument("--in-process", action="store_true", help="no subprocesses (peak memory accumulates)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes on the CPU, to check the script works")
    parser.add_argument("--single", nargs=2, metavar=("MODULE", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        os.environ["JAX_PLATFORMS"] = "cpu"
        args.features, args.batch, args.layers, args.heads = 32, 2, 2, 2
        args.warmup, args.repeats = 1, 2
        args.lengths = args.lengths or [32, 128]
        args.device_label = args.device_label or "cpu-quick"
    if args.update and not args.device_label:
        parser.error("--update needs --device-label: it names the report to merge into")
    if not args.lengths:
        args.lengths = [2**k for k in range(20) if args.min_length <= 2**k <= args.max_length]
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.single:
        print(json.dumps(measure(args.single[0], int(args.single[1]), args)))
        return
    import flax
    import jax

    results = []
    previous = previous_results(args) if args.update else []
    for name in args.modules:
        out_of_memory = False
        for length in sorted(args.lengths):
            if out_of_memory:
                results.append({"module": name, "length": length, "status": "skipped"})
                continue
            run = measure if args.in_process else measure_in_subprocess
            record = run(name, length, args)
            results.append(record)
            out_of_memory = record["status"] == "oom"
            shown = f"{record['time_ms']:.2f} ms, peak {cell_memory(record)} MiB" if record["status"] == "ok" else ""
            print(f"{name:>18} T={length:<6} {record['status']:>7} {shown}", flush=True)
            if record["status"] == "error":
                print("    " + record.get("error", "")[-400:], flush=True)
            # Written after every configuration, so a run cut short by a time limit keeps what it measured.
            write_report(merged(previous, results), args, jax.__version__, flax.__version__)
    stem = write_report(merged(previous, results), args, jax.__version__, flax.__version__)
    print(f"wrote {stem}.json and {stem}.md")


def report_stem(args, device: str) -> Path:
    return args.out_dir / f"memory_modules_{slug(args.device_label or device)}"


def previous_results(args) -> list[dict]:
    """The records of an earlier report with this ``--device-label`` (for ``--update``)."""
    path = report_stem(args, "unknown").with_suffix(".json")
    return json.loads(path.read_text())["results"] if path.exists() else []


def merged(previous: list[dict], new: list[dict]) -> list[dict]:
    """``previous`` with every (module, length) that ``new`` measured replaced by the new record."""
    fresh = {(r["module"], r["length"]): r for r in new}
    kept = [r for r in previous if (r["module"], r["length"]) not in fresh]
    return kept + new


def write_report(results: list[dict], args, jax_version: str, flax_version: str) -> Path:
    """Writes the JSON and markdown report of ``results``; returns the path stem of both files."""
    measured = [r for r in results if "device_kind" in r]
    device = measured[0]["device_kind"] if measured else "unknown"
    report = {
        "device": device,
        "platform": measured[0]["platform"] if measured else "unknown",
        "jax": jax_version,
        "flax": flax_version,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "config": {k: getattr(args, k) for k in ("features", "batch", "layers", "heads", "dtype", "warmup", "repeats")},
        "modules": list(dict.fromkeys(r["module"] for r in results)),
        "lengths": sorted({r["length"] for r in results}),
        "results": results,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = report_stem(args, device)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(report) + "\n")
    return stem


if __name__ == "__main__":
    main()
