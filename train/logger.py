"""Run logs: a CSV file, TensorBoard event files, progress on stdout and a learning-curve plot.

Progress is a bar on a terminal; when stdout is a file or a pipe (a batch job, ``| tee``) it is one plain
line per log interval, flushed at once::

    step 40,960/204,800  25,122 steps/s  return -0.863  success 0.00  elapsed 0:00:12
"""

from __future__ import annotations

import csv
import datetime
import math
import sys
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

METRICS_FILE = "metrics.csv"


class RunLogger:
    """Appends one row per (log interval, seed) to ``run_dir/metrics.csv`` and TensorBoard and, with
    ``progress``, shows steps/s, mean return and success: a bar on a terminal, lines otherwise."""

    def __init__(self, run_dir: Path, total_steps: int, start_steps: int = 0, progress: bool = True, enabled=True):
        from tensorboardX import SummaryWriter

        self.enabled = enabled  # False on every process but the first of a multi-host run
        self.run_dir = run_dir
        self.csv_path = run_dir / METRICS_FILE
        self.progress = None
        self.lines = progress and not sys.stdout.isatty()
        self.total_steps = total_steps
        self.started = time.monotonic()
        self.earlier_seconds = 0.0  # training time of the run before a resume
        self._fields = None
        if not enabled:
            return
        if self.csv_path.exists() and start_steps > 0:
            with self.csv_path.open() as f:
                rows = [row for row in csv.DictReader(f) if int(float(row["step"])) <= start_steps]
                self._fields = list(rows[0]) if rows else None
            _write_rows(self.csv_path, rows, self._fields)  # drop rows logged after the checkpoint
            if rows and rows[-1].get("seconds"):
                self.earlier_seconds = float(rows[-1]["seconds"])
        elif self.csv_path.exists():
            self.csv_path.unlink()
        self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"))
        if progress and not self.lines:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[sps]:>9} steps/s  return {task.fields[ret]:>7}  success {task.fields[success]:>5}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self.progress.start()
            self.task = self.progress.add_task(
                "training", total=total_steps, completed=start_steps, sps="-", ret="-", success="-"
            )

    def log(self, rows: list[dict[str, float]], steps_per_second: float) -> None:
        """``rows``: one dict of metrics per seed, each with a ``step`` entry. The CSV rows also get
        ``seconds``: wall-clock seconds of training so far (the update's compilation included, the set-up
        before the first interval not), summed over resumes: for curves against time."""
        if not self.enabled:
            return
        seconds = self.earlier_seconds + time.monotonic() - self.started
        if self._fields is None or "seconds" in self._fields:  # a run resumed from an older log has none
            rows = [{**row, "seconds": round(seconds, 3)} for row in rows]
        if self._fields is None:
            self._fields = list(rows[0])
            _write_rows(self.csv_path, [], self._fields)
        with self.csv_path.open("a", newline="") as f:
            csv.DictWriter(f, self._fields).writerows(rows)
        step = int(rows[0]["step"])
        for key in self._fields:
            values = [row[key] for row in rows if math.isfinite(row[key])]  # no episode ended: NaN
            if key not in ("step", "seed", "seconds") and values:
                self.tensorboard.add_scalar(key, sum(values) / len(values), step)
        self.tensorboard.add_scalar("steps_per_second", steps_per_second, step)
        mean = lambda key: sum(row[key] for row in rows) / len(rows)  # noqa: E731  NaN: no episode ended
        if self.progress is not None:
            self.progress.update(
                self.task,
                completed=step,
                sps=f"{steps_per_second:,.0f}",
                ret=f"{mean('return'):.3f}",
                success=f"{mean('success'):.2f}",
            )
        if self.lines:
            elapsed = datetime.timedelta(seconds=round(time.monotonic() - self.started))
            print(
                f"step {step:,}/{self.total_steps:,}  {steps_per_second:,.0f} steps/s  return {mean('return'):.3f}  "
                f"success {mean('success'):.2f}  elapsed {elapsed}",
                flush=True,
            )

    def close(self) -> None:
        if not self.enabled:
            return
        self.tensorboard.close()
        if self.progress is not None:
            self.progress.stop()


def _write_rows(path: Path, rows: list[dict], fields: list[str] | None) -> None:
    with path.open("w", newline="") as f:
        if fields:
            writer = csv.DictWriter(f, fields)
            writer.writeheader()
            writer.writerows(rows)


def plot_learning_curve(csv_path: Path, png_path: Path, title: str = "") -> Path:
    """Mean episode return and success against environment steps, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for seed in sorted({row["seed"] for row in rows}):
        mine = [row for row in rows if row["seed"] == seed]
        steps = [float(row["step"]) for row in mine]
        for ax, key in zip(axes, ("return", "success")):
            ax.plot(steps, [float(row[key]) for row in mine], label=f"seed {seed}")
    for ax, key in zip(axes, ("episode return", "success rate")):
        ax.set_xlabel("environment steps")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[1].set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
