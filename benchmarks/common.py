"""Pieces every benchmark script shares: the device label, run metadata, timing, result files."""

from __future__ import annotations

import ast
import csv
import datetime
import json
import platform
import re
import shlex
import statistics
import sys
import time
from pathlib import Path

import jax

from mnemax.train.loop import saved_config
from mnemax.train.run_dir import RunDirectory

RESULTS = Path(__file__).resolve().parent / "results"


def default_label() -> str:
    """``cpu``, or the accelerator's kind in lower case (``nvidia-h100-80gb-hbm3``)."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", str(device.device_kind).lower()).strip("-") or device.platform


def is_out_of_memory(error: BaseException) -> bool:
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower() or isinstance(error, MemoryError)


def parse_assignments(pairs, what: str) -> dict:
    """``["slot_cost=0", "num_envs=128"]`` -> ``{"slot_cost": 0, "num_envs": 128}``; values are Python
    literals (numbers, booleans, tuples), anything else stays a string. A pair that is not ``NAME=VALUE``
    ends the script with a message naming ``what`` (the option it came from)."""
    parsed = {}
    for pair in pairs or ():
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"{what} takes NAME=VALUE pairs, got {pair!r}")
        try:
            parsed[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parsed[name] = text
    return parsed


def split_variant(name: str) -> tuple[str, dict]:
    """``"hcam:read_block=1024,dense_read=False"`` -> ``("hcam", {"read_block": 1024, "dense_read": False})``:
    a memory module's name and the settings written after it (:func:`parse_assignments`)."""
    module, _, settings = name.partition(":")
    return module, parse_assignments(filter(None, settings.split(",")), f"module variant {name!r}")


def metadata(**extra) -> dict:
    """Where and when a result was measured, and with which command."""
    device = jax.devices()[0]
    return {
        "device": str(device.device_kind),
        "platform": device.platform,
        "device_count": jax.device_count(),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(["python"] + sys.argv),
        **extra,
    }


def median_seconds(fn, repeats: int = 3) -> float:
    """Median wall time of ``fn()`` (which must block until its work is done)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report_label(args) -> str:
    """The results' file label: ``--device-label``, else :func:`default_label` with ``-quick`` after it for a
    ``--quick`` check, so that a check never writes over a measured report."""
    return args.device_label or default_label() + ("-quick" if args.quick else "")


def add_measurement_arguments(parser, max_seconds: float = 400) -> None:
    """The options every timing script shares: ``--max-seconds`` (no new measurement after it),
    ``--device-label`` (the results' file name) and ``--quick`` (tiny sizes, a check that it runs)."""
    parser.add_argument("--max-seconds", type=float, default=max_seconds, help="no new measurement after this")
    parser.add_argument("--device-label", default=None)
    parser.add_argument("--quick", action="store_true")


def time_updates(config, calls: int) -> tuple[float, float]:
    """Times training with ``config`` (a ``mnemax.train.TrainConfig`` whose log interval is one update):
    the first call of ``Trainer.train_interval`` (compilation and one update) on its own, then ``calls``
    more. Returns ``(first call seconds, env steps per second over all seeds)``."""
    from mnemax.train.loop import Trainer

    trainer = Trainer(config)
    state = trainer.init()
    start = time.perf_counter()
    state, metrics = trainer.train_interval(state)
    jax.block_until_ready(metrics)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(calls):
        state, metrics = trainer.train_interval(state)
    jax.block_until_ready(metrics)
    return first, calls * config.steps_per_update * config.num_seeds / (time.perf_counter() - start)


def write_rows_report(
    name: str, label: str, title: str, rows: list[dict], table: str, settings: dict | None = None, save: bool = True
) -> dict:
    """Writes ``results/<name>_<label>.{json,md}``: ``rows`` with this run's metadata (and ``settings``),
    and a page of ``title`` (the device appended), the command and the markdown ``table`` (which may start
    with prose). Returns the report; ``save=False`` (a smoke test) only builds it."""
    report = {"meta": metadata(label=label, **(settings or {})), "rows": rows}
    meta = report["meta"]
    heading = f"# {title} ({meta['device']})\n\njax {meta['jax']}, {meta['date']}."
    if save:
        write_report(name, label, report, f"{heading}\n\n`{meta['command']}` (from `benchmarks/`)\n\n{table}\n")
    return report


def write_report(name: str, label: str, report: dict, markdown: str) -> tuple[Path, Path]:
    """Write ``results/<name>_<label>.json`` and ``.md``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path, md_path = RESULTS / f"{name}_{label}.json", RESULTS / f"{name}_{label}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown)
    return json_path, md_path


def merge_runs(earlier: list[dict], runs: list[dict], key) -> dict:
    """The runs of an earlier report and of this one by ``key(run)`` (for ``--update``): a run in both keeps
    the newer one, unless that one was not measured (its ``status`` is not ``"ok"``) and the earlier one was,
    or the newer one was not started at all (``"skipped ..."``: the earlier record, e.g. an interrupted run's
    curve so far, says more)."""
    by_key = {key(r): r for r in earlier}
    for run in runs:
        before = by_key.get(key(run), {"status": None})
        started = not run["status"].startswith("skipped")
        if run["status"] == "ok" or before["status"] is None or (before["status"] != "ok" and started):
            by_key[key(run)] = run
    return by_key


def resume_settings(run_path: Path, resume: bool) -> dict:
    """The trainer's ``resume`` and ``overwrite`` for a run in ``run_path`` of a benchmark asked to
    ``resume``: continue from the run's checkpoint if it has one; a run stopped before its first checkpoint
    (while it compiled) starts again over what it left. Without ``resume`` an existing run is refused."""
    saved = RunDirectory(run_path).has_checkpoint
    return dict(resume=resume and saved, overwrite=resume and not saved)


def run_progress(run_path: Path) -> tuple[int, int]:
    """``(trained, total)`` env steps per seed of the run saved in ``run_path``: the last step of its
    ``metrics.csv`` and the steps it trains (whole updates and log intervals within ``total_steps``)."""
    config = saved_config(run_path)
    trained = max((point["step"] for point in read_curve(Path(run_path) / "metrics.csv")), default=0)
    return trained, config.num_updates * config.steps_per_update


class SittingClock:
    """Wall-clock seconds of a run trained over several sittings (``--resume``), kept in ``path`` (a text
    file): ``seconds()`` is what the earlier sittings recorded plus this sitting's time so far, and
    ``save()`` records that for the next sitting."""

    def __init__(self, path: Path, resume: bool):
        self.path = path
        self.earlier = float(path.read_text()) if resume and path.exists() else 0.0
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return self.earlier + time.perf_counter() - self.start

    def save(self) -> float:
        seconds = self.seconds()
        self.path.write_text(str(seconds))
        return seconds


def read_curve(path: Path) -> list[dict]:
    """The points of a run's ``metrics.csv`` (every log of every seed, over all its resumed pieces)."""
    if not path.exists():
        return []
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return [
        {
            "step": int(float(r["step"])), "seed": int(r["seed"]), "return": float(r["return"]),
            "success": float(r["success"]), "entropy": float(r["entropy"]),
            **({"seconds": float(r["seconds"])} if r.get("seconds") else {}),
        }  # fmt: skip
        for r in rows
    ]


def mean_over_seeds(curve: list[dict], key: str) -> list[float]:
    """The mean of ``key`` over the seeds logged at each step of a :func:`read_curve` curve, steps ascending."""
    steps = sorted({point["step"] for point in curve})
    at = [[point[key] for point in curve if point["step"] == step] for step in steps]
    return [sum(values) / len(values) for values in at]


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def panels(count: int, width: float, height: float):
    """A figure with one row of ``count`` panels, each ``width`` x ``height`` inches, drawn without a
    display (Agg): ``(fig, [ax, ...])``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, count, figsize=(width * count, height), squeeze=False)
    return fig, list(axes[0])


def finish_fraction_panel(ax, title: str, xlabel: str, ylabel: str, legend_size: int) -> None:
    """Title, labels, grid and legend of a panel whose y axis is a fraction (success, accuracy)."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
