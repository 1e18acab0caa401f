"""Where the time of one PPO update goes: the environment, acting (the network's steps in the rollout) and
learning (advantages, epochs of minibatch gradient steps).

    python benchmarks/ppo_profile.py                 # the cells below on the first device
    python benchmarks/ppo_profile.py --quick         # tiny sizes, a CPU check
    python benchmarks/ppo_profile.py --runs ballet_curriculum:ballet4-delay16-hcam_items_parts_ent0.1_answers_curriculum
                                                     # a run of learning_curves.py instead of the cells

For each cell (a preset as it ships on one task, ``--seeds`` seeds vmapped as the trainer runs them, and
each of ``--variants``, :data:`VARIANTS`) this times three jitted calls, each the
median of ``--repeats`` after a warm-up: ``num_steps`` steps of the vectorised environment with random
actions (**env**), the rollout (``OnPolicy.rollout``: env and network), and a whole update
(``update``: rollout and learning). Acting is rollout minus env, learning is update minus rollout.
With ``--trace`` it also records one rollout and one update under ``jax.profiler`` and lists the kernels that
took the most device time, each with the JAX operations it computes (module path and primitive).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import glob
import gzip
import re
import tempfile
import time
from typing import NamedTuple

import jax
import learning_curves
from common import add_measurement_arguments, default_label, markdown_table, median_seconds, write_rows_report

from mnemax.train import PPOConfig, algorithms

# (preset, env, memory): pixel Memory Gym (the learning issue's preset) and its symbolic twin, and RATE.
CELLS = [
    ("memory_gym", "mnemax/MortarMayhem-Grid-v0", "gru"),
    ("memory_gym", "mnemax/MortarMayhem-Grid-Symbolic-v0", "gru"),
    ("memory_gym", "mnemax/MortarMayhem-Grid-Symbolic-v0", "trxl"),
    ("memory_gym", "mnemax/MortarMayhem-Grid-v0", "trxl"),
    ("memory_gym", "mnemax/MysteryPath-Grid-v0", "gru"),
    ("memory_gym", "mnemax/MysteryPath-Grid-Symbolic-v0", "gru"),
    # RATE, the slowest memory to train, on a diagnostics task (32 envs x 1024 steps)
    ("diagnostics", "mnemax/RepeatFirst-Medium-v0", "rate"),
]
PIXELS = ("mnemax/MortarMayhem-Grid-v0", "mnemax/MysteryPath-Grid-v0")
class Variant(NamedTuple):
    """A way of computing the same update: ``agent_config`` and ``memory_config`` on top of the preset's,
    other config ``fields``, and the cells it concerns (``scope`` None: all; else (pixels only, memories))."""

    agent_config: dict
    memory_config: dict
    scope: tuple | None
    fields: dict = {}


# "patches" is the trainer as it ships; "xla" computes the CNN's convolutions with lax.conv; "bf16" runs the
# encoder and memory in bfloat16 (mixed precision), "bf16-xla" with lax.conv; "gru-autodiff" differentiates
# the GRU's scan with JAX instead of its hand-written backward pass; "no-pool" and "bf16-no-pool" compute a
# fresh initial state at every step (no `reset_pool`), as the preset did before it drew them ahead;
# "bf16-window32" shortens Transformer-XL's window; "bf16-bptt128" cuts the 256-step sequences into 128-step
# ones (truncated BPTT from stored carries), half the steps the learning pass's loop over time runs one after
# another, on twice as many sequences.
VARIANTS = {
    "patches": Variant({}, {}, None),
    "xla": Variant({"conv": "xla"}, {}, (True, None)),
    "bf16": Variant({"dtype": "bfloat16"}, {}, None),
    "bf16-xla": Variant({"dtype": "bfloat16", "conv": "xla"}, {}, (True, None)),
    "bf16-bptt128": Variant({"dtype": "bfloat16"}, {}, None, {"bptt_length": 128}),
    "gru-autodiff": Variant({}, {"backward": "autodiff"}, (False, ("gru", "lstm"))),
    "bf16-no-pool": Variant({"dtype": "bfloat16"}, {}, None, {"reset_pool": 0}),
    "no-pool": Variant({}, {}, None, {"reset_pool": 0}),
    # with the value of a truncated episode's last observation, as the memory_gym preset had it before it
    # counted time limits as episode ends: a second network call at every step of the tasks with a time
    # limit (Mystery Path Grid's 128 steps; Mortar Mayhem Grid has none, so nothing changes there)
    "bf16-bootstrap": Variant({"dtype": "bfloat16"}, {}, None, {"bootstrap_truncated": True}),
    "bootstrap": Variant({}, {}, None, {"bootstrap_truncated": True}),
    # Transformer-XL's window cut from the preset's 118 steps to 32: what of acting grows with the window
    "bf16-window32": Variant({"dtype": "bfloat16"}, {"memory_length": 32}, (False, ("trxl",))),
}


def concerns(variant: str, env: str, memory: str) -> bool:
    """Whether ``variant`` changes anything in the cell of ``env`` and ``memory``."""
    scope = VARIANTS[variant].scope
    if scope is None:
        return True
    pixels_only, memories = scope
    return (env in PIXELS or not pixels_only) and (memories is None or memory in memories)


def kernel_operations(hlo_text: str) -> dict[str, str]:
    """Kernel name -> the JAX operation (module path and primitive) it computes, from the optimised HLO
    (``compiled.as_text()``). XLA compiles identical fusions once (``deduplicated_name``), so one kernel may
    serve several operations: their names are joined, the parts that differ in braces
    (``block_{0,1,2}``). Kernel names are instruction names with every character outside ``[A-Za-z0-9_$]``
    replaced by ``_``."""
    sanitize = lambda name: re.sub(r"[^\w$]", "_", name)  # noqa: E731
    # A fusion without a name of its own is named after the last named instruction of the computation it
    # calls (its root, or what feeds it).
    computations = {}
    for block in hlo_text.split("\n\n"):
        header = re.match(r"\s*(?:ENTRY )?%?([\w.-]+) ", block)
        named = re.findall(r'op_name="([^"]*)"', block)
        if header and named:
            computations[header.group(1)] = named[-1]
    groups, group_of = collections.defaultdict(list), {}
    for match in re.finditer(r"^\s*(?:ROOT )?%([\w.-]+) = (.*)$", hlo_text, re.MULTILINE):
        instruction, body = match.groups()
        found = re.search(r'op_name="([^"]*)"', body)
        called = re.search(r"calls=%([\w.-]+)", body)
        name = found.group(1) if found else computations.get(called.group(1), "") if called else ""
        kernel = re.search(r'deduplicated_name="([^"]*)"', body)
        group = sanitize(kernel.group(1) if kernel else instruction)
        group_of.setdefault(sanitize(instruction), group)
        if name and name.split("/eval_jaxpr/")[-1] not in groups[group]:
            groups[group].append(name.split("/eval_jaxpr/")[-1])
    return {kernel: _joined(groups[group]) for kernel, group in group_of.items()}


def _joined(names: list[str]) -> str:
    """One label for several operation names: ``a/b_0/c`` and ``a/b_1/c`` give ``a/{b_0,b_1}/c``."""
    parts = [name.split("/") for name in names]
    if len(parts) <= 1 or len({len(p) for p in parts}) > 1:
        return " + ".join(names)
    return "/".join(p[0] if len(set(p)) == 1 else "{" + ",".join(dict.fromkeys(p)) + "}" for p in zip(*parts))


def kernel_times(xplanes: list[str], hlo_text: str | None = None, top: int | None = 20) -> list[tuple]:
    """The ``top`` kernels (None: all) of ``jax.profiler`` trace files (``*.xplane.pb``) by device time:
    ``(kernel, operation, milliseconds, launches)``, ``operation`` from :func:`kernel_operations` of
    ``hlo_text`` or "" (kernels inside CUDA graphs carry no operation of their own in the trace). ``[]``
    for traces with no device (the CPU)."""
    operations = kernel_operations(hlo_text or "")
    totals, counts = collections.Counter(), collections.Counter()
    for xplane in xplanes:
        for plane in jax.profiler.ProfileData.from_file(xplane).planes:
            if plane.name.startswith("/device:"):
                for line in plane.lines:
                    for event in line.events:
                        totals[event.name] += event.duration_ns / 1e6
                        counts[event.name] += 1
    return [(name, operations.get(name, ""), round(ms, 3), counts[name]) for name, ms in totals.most_common(top)]


def device_time_by_kernel(compiled, args, top: int = 20) -> list[tuple]:
    """Run the compiled executable ``compiled(args)`` (after a warm-up) once under ``jax.profiler``: its
    :func:`kernel_times`, named from that executable's HLO."""
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            jax.block_until_ready(compiled(args))
        return kernel_times(glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True), compiled.as_text(), top)


def cell_config(preset: str, env: str, memory: str, seeds: int) -> PPOConfig:
    """A cell of :data:`CELLS`: ``preset`` as it ships on ``env`` with ``memory``."""
    return PPOConfig.from_preset(preset, env=env, memory=memory, num_seeds=seeds, progress=False, video=False)


def run_config(run: str, seeds: int) -> PPOConfig:
    """A run of ``learning_curves.py``, ``run`` = "PRESET:NAME" (e.g. a Ballet run, whose settings are its
    own rather than a preset's), without the run it starts from (``init_from``): the cost is the same."""
    preset, _, name = run.partition(":")
    specs = {spec["name"]: spec for spec in learning_curves.PRESETS.get(preset, [])}
    if name not in specs:
        raise SystemExit(f"--runs: no run {name!r} in learning_curves.py's preset {preset!r}")
    spec = {key: value for key, value in specs[name].items() if key not in ("name", "init_from")}
    return learning_curves.spec_config(spec, num_seeds=seeds, progress=False, video=False)


def profile(
    config: PPOConfig, preset: str, variant: str, repeats: int, quick: bool, trace: bool = False
) -> dict:  # fmt: skip
    """The times of one cell (``config``, labelled ``preset`` in the report) with ``variant`` on top."""
    seeds, env, memory = config.num_seeds, config.env, config.memory
    agent_config, memory_config, _, fields = VARIANTS[variant]
    config = dataclasses.replace(
        config, agent_config={**config.agent_config, **agent_config},
        memory_config={**config.memory_config, **memory_config}, **fields,
    )  # fmt: skip
    if quick:  # a variant's shorter BPTT sequences stay shorter than the rollout
        bptt_length = config.bptt_length and 8
        config = dataclasses.replace(config, num_envs=8, num_steps=16, hidden_size=32, bptt_length=bptt_length)
    algorithm = algorithms.make(config)
    keys = jax.random.split(jax.random.key(0), seeds)
    runners = jax.jit(jax.vmap(algorithm.init))(keys)

    def random_steps(runner):  # num_steps steps of the vectorised env, random actions
        def step(state, key):
            action_key, step_key = jax.random.split(key)
            actions = jax.vmap(lambda k: algorithm.action_space.sample(k))(jax.random.split(action_key, config.num_envs))
            obs, state, reward, *_ = algorithm.vec_env.step(step_key, state, actions, algorithm.env_params)
            return state, (obs, reward)

        return jax.lax.scan(step, runner.env_state, jax.random.split(runner.key, config.num_steps))

    calls = {
        "env": jax.jit(jax.vmap(random_steps)),
        "rollout": jax.jit(jax.vmap(algorithm.rollout)),
        "update": jax.jit(jax.vmap(algorithm.update)),
    }
    seconds, compiled = {}, {}
    for name, fn in calls.items():
        start = time.perf_counter()  # the first call: compiling and one run
        compiled[name] = fn.lower(runners).compile()
        jax.block_until_ready(compiled[name](runners))
        seconds[f"{name}_first_call"] = time.perf_counter() - start
        seconds[name] = median_seconds(lambda fn=compiled[name]: jax.block_until_ready(fn(runners)), repeats)
    steps = config.num_envs * config.num_steps * seeds
    calls_traced = ("rollout", "update") if trace else ()
    traced = {f"{name}_kernels": device_time_by_kernel(compiled[name], runners) for name in calls_traced}
    return dict(
        preset=preset, env=env, memory=memory, seeds=seeds, variant=variant, num_envs=config.num_envs,
        num_steps=config.num_steps, env_seconds=seconds["env"],
        acting_seconds=seconds["rollout"] - seconds["env"], learning_seconds=seconds["update"] - seconds["rollout"],
        update_seconds=seconds["update"], steps_per_second=steps / seconds["update"],
        first_call_seconds={name: seconds[f"{name}_first_call"] for name in calls}, **traced,
    )  # fmt: skip


def kernel_table(kernels: list) -> str:
    return markdown_table(["kernel", "operation", "ms", "launches"], [list(k) for k in kernels])


def read_traces(traces: list[list[str]], label: str, device: str) -> dict:
    """The report of :func:`kernel_times` for traces recorded elsewhere: ``[name, xplane, hlo]`` each (the
    HLO text as ``compiled.as_text()`` wrote it, gzipped or not; ``-``: none, kernels go unnamed)."""
    rows, table = [], ""
    for name, xplane, hlo in traces:
        hlo_text = None
        if hlo != "-":
            with (gzip.open if hlo.endswith(".gz") else open)(hlo, "rt") as f:
                hlo_text = f.read()
        kernels = kernel_times([xplane], hlo_text, top=None)
        busy, launches = sum(k[2] for k in kernels), sum(k[3] for k in kernels)
        rows.append({"trace": name, "busy_ms": round(busy, 3), "launches": launches, "kernels": kernels[:20]})
        table += f"\n{name}: {busy:.1f} ms of kernels, {launches} launches\n\n" + kernel_table(kernels[:20])
    title = "Where the device time of a call goes, by kernel"
    settings = {"device": device, "jax": "as recorded", "python": "as recorded"}
    return write_rows_report("ppo_trace", label, title, rows, table, settings=settings)


def variant_of(row: dict) -> str:
    """A row's variant (rows written before variants existed name only the pixel CNN's convolutions)."""
    return row.get("variant") or {"xla": "xla"}.get(row.get("conv"), "patches")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["patches", "xla"])
    parser.add_argument("--envs", nargs="+", help="only the cells of these env ids (default: all)")
    parser.add_argument("--memories", nargs="+", help="only the cells of these memories (default: all)")
    parser.add_argument("--runs", nargs="+", metavar="PRESET:NAME",
                        help="instead of the cells, these runs of learning_curves.py's presets")  # fmt: skip
    parser.add_argument("--trace", action="store_true", help="also list the kernels that take the device's time")
    parser.add_argument("--read-trace", nargs=3, action="append", metavar=("NAME", "XPLANE", "HLO"),
                        help="only list the kernels of a trace recorded elsewhere (repeatable); with --trace-device")
    parser.add_argument("--trace-device", default="", help="the device a --read-trace trace was recorded on")
    add_measurement_arguments(parser)
    args = parser.parse_args(argv)
    if args.read_trace:
        return read_traces(args.read_trace, args.device_label or "trace", args.trace_device)
    deadline = time.perf_counter() + args.max_seconds
    if args.runs:
        cells = [(run, functools.partial(run_config, run)) for run in args.runs]
    else:
        cells = [
            (preset, functools.partial(cell_config, preset, env, memory))
            for preset, env, memory in CELLS
            if not (args.envs and env not in args.envs) and not (args.memories and memory not in args.memories)
        ]  # fmt: skip
    rows = []
    for label, config_for in cells:
        for seeds in args.seeds:
            config = config_for(seeds)
            for variant in args.variants:
                if not concerns(variant, config.env, config.memory) or time.perf_counter() > deadline:
                    continue
                rows.append(profile(config, label, variant, args.repeats, args.quick, args.trace))
                print(rows[-1], flush=True)
    label = args.device_label or default_label()
    share = lambda row, part: f"{1e3 * row[part]:.1f} ({row[part] / row['update_seconds']:.0%})"  # noqa: E731
    table = markdown_table(
        ["preset", "env", "memory", "envs x steps", "seeds", "variant", "env ms", "acting ms", "learning ms",
         "update ms", "steps/s (all seeds)"],
        [[r["preset"], r["env"], r["memory"], f"{r['num_envs']} x {r['num_steps']}", r["seeds"], variant_of(r),
          share(r, "env_seconds"), share(r, "acting_seconds"), share(r, "learning_seconds"),
          f"{1e3 * r['update_seconds']:.1f}", f"{r['steps_per_second']:,.0f}"]
         for r in rows],
    )  # fmt: skip
    for r in rows:
        for call in ("rollout", "update"):
            kernels = r.get(f"{call}_kernels")
            if kernels:
                title = f"{r['env']}, {r['memory']}, {r['seeds']} seeds, {variant_of(r)}: device time of one {call}"
                table += f"\n\n{title}\n\n" + kernel_table(kernels)
    return write_rows_report("ppo_profile", label, "Where the time of a PPO update goes", rows, table)


if __name__ == "__main__":
    main()
