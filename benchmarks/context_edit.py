"""Context editing (Memory as Action): answer accuracy against context used, learned and scripted.

    python benchmarks/context_edit.py --max-seconds 600                  # reduced sizes (CPU)
    python benchmarks/context_edit.py --scale medium --device-label h100-medium  # GPU, ~8 minutes
    python benchmarks/context_edit.py --scale full --max-seconds 3600    # full sizes (GPU)
    python benchmarks/context_edit.py --quick                            # tiny sizes, a smoke test
    python benchmarks/context_edit.py --scale full --budgets 4 --streams 64 --algos dcpo \
        --env-params slot_cost=0 --train-params num_envs=128 --device-label cpu-diagnosis-cost0  # one variant
    python benchmarks/context_edit.py --scale full --budgets 4 --streams 64 --algos ppo-dcpo --handoff 0.5
    python benchmarks/context_edit.py --scale full --algos ppo-dcpo ppo-ppo --stage-params ent_coef=0  # + control
    python benchmarks/context_edit.py --scale full --streams 128 --run-dir runs/ce --resume --time-limit 500  # sittings

On ``ContextEdit-<task>-v0`` (``--task``: KVUpdate, the default, MultiHop or Distractor), for every stream
length ``L`` and context budget ``C`` of the scale:

* **DCPO** and **PPO** train the same agent, the context editor (:mod:`mnemax.agents.context_editor`),
  with the same network, steps, learning rate and seeds (``num_seeds`` vmapped runs each), through
  :func:`mnemax.train.train`. Their greedy policies are then scored like curators. **ppo-dcpo** (only
  when asked for) splits the same updates: PPO first, whose per-step credit teaches the editor to read its
  context, then DCPO started from PPO's network (``init_from``), as DCPO in the paper starts from a
  language model that already answers from its context. Its row is followed by the score of PPO's network
  at the handoff. **ppo-ppo** is its control: the same PPO network at the handoff (trained once, shared by
  both) trained on by PPO instead, so the two differ only in the second stage's algorithm.
  ``--stage-params`` gives the second stage of both settings of its own (e.g. ``ent_coef=0``).
* **keep-latest-k**: the FIFO curator over the ``C`` slots (the last ``C`` items);
  **keep-all**: every item, with unlimited slots (``C = L``); **perfect**: keeps exactly the facts
  still needed (an oracle: the least context that answers everything); **perfect-no-merge**: the
  oracle's rules with writes in place of merges (MultiHop needs merges to fit its chains into few slots).

Every method plays the same evaluation streams (one reset key; the stream depends on it alone). The
task keeps at most ``max_open`` facts open, no more than the smallest budget, so every budget can hold
what is needed and larger budgets only give the FIFO more room. Reported per method: accuracy (right
answers / queries), mean occupied slots per step, and episode return (answers minus the slot cost).
Learned runs are started in order until ``--max-seconds`` is spent; the rest are recorded as skipped.
With ``--run-dir`` the runs keep their checkpoints there: a run stopped by SIGTERM or SIGINT (an outer time
limit, or ``--time-limit``, which stops training with a checkpoint before a log interval would overrun it) is
recorded as interrupted, and the same command with ``--resume`` continues it where it stopped (a finished run
is only scored again); wall time adds up over the sittings.
Writes ``benchmarks/results/context_edit_<label>.json`` (with every learned run's training curve), ``.md``,
``.png`` (accuracy against mean occupied slots, one panel per stream length) and ``-curves.png`` (the
training return of each learned run).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from common import (
    RESULTS, SittingClock, default_label, finish_fraction_panel, markdown_table, mean_over_seeds, metadata, panels,
    parse_assignments, read_curve, resume_settings, save_figure, write_report,
)  # fmt: skip
from mnemax import envs
from mnemax.agents import greedy_curator
from mnemax.envs.tasks import context_edit_curators as curators
from mnemax.train import algorithms, train
from mnemax.train.loop import TrainingInterrupted

TASKS = ("KVUpdate", "MultiHop", "Distractor")  # mnemax/ContextEdit-<task>-v0
EVAL_EPISODES = 512
EVAL_KEY = 20251014

# The task and training sizes of each scale. `task` holds ContextEdit parameters shared by all settings;
# a setting adds `context_size`, `stream_length` and a query delay of up to half the stream.
SCALES = {
    # What two busy CPU cores do in about ten minutes: a small vocabulary, one fact open at a time, short
    # streams, two budgets, two seeds and few updates.
    "cpu": dict(
        budgets=(2, 4),
        streams=(12, 24),
        task=dict(num_keys=4, num_values=4, max_open=1, update_rate=0.1, distractor_rate=0.3, min_query_delay=2),
        train=dict(num_envs=128, num_minibatches=2, update_epochs=4, hidden_size=32, learning_rate=3e-3),
        updates=150,
        seeds=2,
    ),
    # Between the two: half the registered vocabulary, two facts open at a time, streams of 32 and 64. At
    # `full` size both learners ended up keeping (almost) nothing after 200 updates; this scale asks where,
    # between `cpu` (where they learn) and `full`, that happens.
    "medium": dict(
        budgets=(2, 4),
        streams=(32, 64),
        task=dict(num_keys=8, num_values=8, max_open=2, min_query_delay=4),
        train=dict(num_envs=512, num_minibatches=8, update_epochs=4, hidden_size=64, learning_rate=1e-3),
        updates=300,
        seeds=2,
    ),
    # The registered task's vocabulary and update rate, longer streams, larger budgets and networks.
    "full": dict(
        budgets=(4, 8, 16),
        streams=(64, 128),
        task=dict(num_keys=16, num_values=16, max_open=4, min_query_delay=8),
        train=dict(num_envs=512, num_minibatches=8, update_epochs=4, hidden_size=64, learning_rate=1e-3),
        updates=1000,
        seeds=3,
    ),
    # A smoke test of the script itself.
    "quick": dict(
        budgets=(2,),
        streams=(8,),
        task=dict(num_keys=2, num_values=2, max_open=1, min_query_delay=2),
        train=dict(num_envs=16, num_minibatches=2, update_epochs=1, hidden_size=16, learning_rate=3e-3),
        updates=2,
        seeds=1,
    ),
}
SHARED_TRAIN = dict(ent_coef=0.01, anneal_lr=False)
ALGO_TRAIN = {"dcpo": dict(group_size=8), "ppo": dict(gamma=0.99, gae_lambda=0.95)}
ALGOS = ("dcpo", "ppo")
# Learners made of two stages: PPO (per-step credit, which teaches the editor to read its context) for the
# first `handoff` of the updates, then the second stage's algorithm started from PPO's network (`init_from`)
# for the rest: DCPO, or PPO again as ppo-dcpo's control.
TWO_STAGE = {"ppo-dcpo": "dcpo", "ppo-ppo": "ppo"}
METHODS = ALGOS + tuple(TWO_STAGE)
HEURISTICS = ("keep-latest-k", "keep-all", "perfect", "perfect-no-merge")


def task_params(scale: dict, budget: int, stream: int) -> dict:
    """The ContextEdit parameters of one setting: the scale's task, the budget and stream length, and
    queries at most ``L / 2`` steps after their fact unless the scale's task sets ``max_query_delay``."""
    delay = max(stream // 2, scale["task"]["min_query_delay"])
    return dict(dict(max_query_delay=delay), **scale["task"], context_size=budget, stream_length=stream)


def summary(metrics: dict) -> dict:
    """Means over evaluation episodes of ``run_curator``'s per-episode metrics."""
    return {k: float(np.mean(metrics[k])) for k in ("accuracy", "mean_occupied", "merges", "return", "queries")}


def heuristic_rows(env_id: str, env_params: dict, key: jax.Array) -> list[dict]:
    env, params = envs.make(env_id, **env_params)
    unlimited = curators.unlimited_context(params)
    cases = {
        "keep-latest-k": (params, curators.keep_latest()),
        "keep-all": (unlimited, curators.keep_everything),
        "perfect": (params, curators.perfect_curator),
        "perfect-no-merge": (params, curators.perfect_without_merges),
    }
    score = lambda p, curator: summary(curators.run_curator(env, p, curator, key, EVAL_EPISODES))  # noqa: E731
    return [{"method": name, "slots": int(p.context_size), **score(p, curator)} for name, (p, curator) in cases.items()]


def train_config(
    scale: dict, algo: str, env_params: dict, run_dir: str, updates: int, resume: bool = False, stage: bool = False,
    **extra,
):  # fmt: skip
    """The configuration of one learner of ``algo`` on the task ``env_params``, ``updates`` updates long;
    ``resume`` continues its run in ``run_dir`` if that has a checkpoint; ``stage``: the second stage of a
    two-stage learner, which takes ``--stage-params``."""
    stream = env_params["stream_length"]
    spec = {**scale["train"], **SHARED_TRAIN, **ALGO_TRAIN[algo]}
    config_class = algorithms.config_class(algo)
    fields = {f.name for f in dataclasses.fields(config_class)}
    # Overrides of an algorithm's own fields (`group_size`, `gae_lambda`) reach only that algorithm.
    spec |= {k: v for k, v in scale.get("train_overrides", {}).items() if k in fields}
    if stage:  # --stage-params, again only the fields of this stage's algorithm
        spec |= {k: v for k, v in scale.get("stage_overrides", {}).items() if k in fields}
    settings = dict(
        env=scale["env"], env_params=env_params, train_env_params=scale.get("train_task", {}), agent="context_editor",
        num_steps=stream, total_steps=updates * spec["num_envs"] * stream, num_seeds=scale["seeds"], num_logs=20,
        run_name=f"{algo}-L{stream}-C{env_params['context_size']}", run_dir=run_dir, video=False, progress=False,
        eval_episodes=16,
    )  # fmt: skip
    config = config_class(**{**settings, **spec, **extra})
    return dataclasses.replace(config, **resume_settings(Path(run_dir) / config.name, resume))


def train_one(
    scale: dict, method: str, env_params: dict, run_dir: str, key: jax.Array, resume: bool = False,
    stop_at: float | None = None, reader_trained: bool = False,
) -> dict:  # fmt: skip
    """Train and score one learner; ``resume`` continues its runs from their checkpoints in ``run_dir``;
    training stops with a checkpoint before a log interval would end past ``stop_at`` (``time.monotonic()``
    seconds; None: no limit). ``reader_trained``: another two-stage learner of this sitting has trained the
    first stage (PPO's network at the handoff) in ``run_dir``, which this one takes as it is.

    Raises :class:`TrainingInterrupted` (after recording the wall time so far) when a signal or ``stop_at``
    stopped it."""
    name = f"{method}-L{env_params['stream_length']}-C{env_params['context_size']}"

    def limit() -> dict:  # the trainer's time_limit counts from its own start: the time left now
        return {} if stop_at is None else {"time_limit": round(max(stop_at - time.monotonic(), 1.0), 1)}

    def timed_train(config, clock: SittingClock):  # the wall time is recorded also when a signal stops it
        try:
            return train(config)
        finally:
            clock.save()

    stages, parts, first_seconds = {}, (), 0.0
    if method in TWO_STAGE:  # the first stage: shared by both two-stage learners, and timed on its own
        first = round(scale["updates"] * scale["handoff"])
        reader_name = f"reader-L{env_params['stream_length']}-C{env_params['context_size']}"
        reader_config = train_config(
            scale, "ppo", env_params, run_dir, first, resume or reader_trained, run_name=reader_name, **limit()
        )
        reader_clock = SittingClock(Path(run_dir) / f"{reader_name}-wall_seconds.txt", resume or reader_trained)
        if reader_trained:  # taken over from the other learner: loading it is not training it
            reader, first_seconds = train(reader_config), reader_clock.earlier
        else:
            reader, first_seconds = timed_train(reader_config, reader_clock), reader_clock.seconds()
        parts = (reader,)
        stages = {
            "handoff": scale["handoff"], "reader_config": dataclasses.asdict(reader_config),
            "reader_curve": read_curve(Path(reader.run_dir) / "metrics.csv"),
        }  # fmt: skip
        config = train_config(scale, TWO_STAGE[method], env_params, run_dir, scale["updates"] - first, resume,
                              stage=True, run_name=f"{name}-curator", init_from=str(reader.run_dir),
                              curriculum_updates=0, train_env_params={}, kickstart_coef=0.0, kickstart_updates=0,
                              **limit())  # fmt: skip
    else:
        config = train_config(scale, method, env_params, run_dir, scale["updates"], resume, **limit())
    clock = SittingClock(Path(run_dir) / f"{name}-wall_seconds.txt", resume)
    parts += (timed_train(config, clock),)
    result = parts[-1]
    seconds = first_seconds + clock.seconds()
    steps = sum(part.steps for part in parts)  # per seed
    # Throughput over the parts trained in this sitting (steps_per_second counts all seeds, compilation left
    # out; a part resumed at its last checkpoint trained nothing now and has none).
    trained = [part for part in parts if np.isfinite(part.steps_per_second)]
    train_seconds = sum(part.steps * config.num_seeds / part.steps_per_second for part in trained)
    algorithm = algorithms.make(config)
    score = lambda params: curators.run_curator(  # noqa: E731
        algorithm.env, algorithm.eval_env_params, greedy_curator(algorithm.network, params), key, EVAL_EPISODES
    )

    def seed_summaries(params) -> list[dict]:  # all seeds in one compilation
        scores = jax.device_get(jax.vmap(score)(params))
        return [summary(jax.tree_util.tree_map(lambda x: x[s], scores)) for s in range(config.num_seeds)]

    per_seed = seed_summaries(result.runner.train_state.params)
    mean = {k: float(np.mean([m[k] for m in per_seed])) for k in per_seed[0]}
    if method in TWO_STAGE:  # what PPO's network scored at the handoff: what the second stage added
        handoff = seed_summaries(parts[0].runner.train_state.params)
        stages["handoff_accuracy_per_seed"] = [m["accuracy"] for m in handoff]
        stages["handoff_occupied_per_seed"] = [m["mean_occupied"] for m in handoff]
    return {
        "method": method,
        "slots": env_params["context_size"],
        **mean,
        "accuracy_per_seed": [m["accuracy"] for m in per_seed],
        "occupied_per_seed": [m["mean_occupied"] for m in per_seed],
        "status": "ok",
        "steps": steps,
        "seconds": seconds,
        "train_steps_per_second": (
            sum(part.steps for part in trained) * config.num_seeds / train_seconds if trained else None
        ),
        "config": dataclasses.asdict(config),
        "curve": read_curve(Path(result.run_dir) / "metrics.csv"),  # training episodes, every log of every seed
        **stages,
    }


def plot(report: dict, path: Path) -> None:
    streams = report["meta"]["streams"]
    styles = {"dcpo": ("tab:red", "o"), "ppo": ("tab:blue", "s"), "ppo-dcpo": ("tab:purple", "D"),
              "ppo-ppo": ("tab:cyan", "^"),
              "keep-latest-k": ("tab:gray", "v"), "keep-all": ("black", "x"), "perfect": ("tab:green", "*"),
              "perfect-no-merge": ("tab:olive", "P")}  # fmt: skip
    fig, axes = panels(len(streams), 5, 3.8)
    for ax, stream in zip(axes, streams):
        rows = [r for r in report["rows"] if r["stream"] == stream and r.get("status", "ok") == "ok"]
        for method, (color, marker) in styles.items():
            mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["budget"])
            if method in ("keep-all", "perfect"):  # they do not depend on the budget
                mine = mine[:1]
            if not mine:
                continue
            xs, ys = [r["mean_occupied"] for r in mine], [r["accuracy"] for r in mine]
            ax.plot(xs, ys, color=color, marker=marker, linestyle="-" if method in METHODS else ":", label=method)
            for r in mine if method not in ("keep-all", "perfect") else ():
                ax.annotate(f"C={r['budget']}", (r["mean_occupied"], r["accuracy"]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")  # fmt: skip
        ax.set_xscale("symlog", linthresh=0.1)
        finish_fraction_panel(ax, f"stream length {stream}", "mean occupied slots per step", "accuracy (greedy)", 7)
    save_figure(fig, path)


def plot_curves(report: dict, path: Path) -> None:
    """The mean training return over seeds against env steps per seed, one panel per learned row (setting
    and method); a two-stage learner's first stage is drawn dashed, its second stage after it."""
    learned = [r for r in report["rows"] if r.get("curve")]
    fig, axes = panels(len(learned), 4, 3)
    for ax, r in zip(axes, learned):
        offset = 0
        for curve, style in ((r.get("reader_curve"), "--"), (r["curve"], "-")):
            if not curve:
                continue
            steps, mean = mean_over_seeds(curve, "step"), mean_over_seeds(curve, "return")
            ax.plot([offset + step for step in steps], mean, style, marker=".", color="tab:purple")
            offset += steps[-1]
        ax.set_title(f"L={r['stream']} C={r['budget']} {r['method']}", fontsize=9)
        ax.set_xlabel("env steps per seed")
        ax.set_ylabel("training return (mean over seeds)")
        ax.grid(alpha=0.3)
    save_figure(fig, path)


def accuracy_cell(mean: float, per_seed: list[float] | None) -> str:
    """``mean (worst .. best seed)``; the mean alone for scripted curators, which have no seeds."""
    return f"{mean:.3f}" + (f" ({min(per_seed):.2f} .. {max(per_seed):.2f})" if per_seed else "")


def markdown(report: dict) -> str:
    meta = report["meta"]
    table_rows, handoffs_shown = [], set()
    for r in report["rows"]:
        if r.get("status", "ok") != "ok":
            table_rows.append([r["stream"], r["budget"], r["method"], r["status"], "", "", "", ""])
            continue
        accuracy = accuracy_cell(r["accuracy"], r.get("accuracy_per_seed"))
        wall = f"{r['seconds']:.0f}" if "seconds" in r else ""
        occupied, episode_return = f"{r['mean_occupied']:.2f}", f"{r['return']:.2f}"
        merges = f"{r['merges']:.2f}" if "merges" in r else ""  # reports before merges were counted lack them
        table_rows.append([r["stream"], r["budget"], r["method"], accuracy, occupied, merges, episode_return, wall])
        # Reports before the handoff was scored lack it; two-stage learners of one setting share their first
        # stage, so its row comes once.
        if "handoff_accuracy_per_seed" in r and (r["stream"], r["budget"]) not in handoffs_shown:
            handoffs_shown.add((r["stream"], r["budget"]))
            seeds = r["handoff_accuracy_per_seed"]
            accuracy = accuracy_cell(float(np.mean(seeds)), seeds)
            occupied = f"{np.mean(r['handoff_occupied_per_seed']):.2f}"
            table_rows.append([r["stream"], r["budget"], "(PPO at the handoff)", accuracy, occupied, "", "", ""])
    table = markdown_table(
        ["stream L", "budget C", "method", "accuracy (seed range)", "mean occupied slots", "merges / episode", "return",
         "train wall s"],  # fmt: skip
        table_rows,
    )
    scale, full = meta["scale_settings"], SCALES["full"]
    train = {**scale["train"], **scale.get("train_overrides", {})}
    overrides = f"; overridden for this run: {scale['train_overrides']}" if scale.get("train_overrides") else ""
    if scale.get("train_task"):
        overrides += f"; trained on the task with {scale['train_task']}, scored on the task above"
    if scale.get("stage_overrides"):
        overrides += f"; for the second stage of ppo-dcpo and ppo-ppo also {scale['stage_overrides']}"
    delay = "" if "max_query_delay" in scale["task"] else " and queries at most L/2 steps after their fact"
    curves_link = (
        "\nTraining curves (the first stage of ppo-dcpo and ppo-ppo dashed):\n\n"
        f"![training curves](context_edit_{meta['label']}-curves.png)\n"
    )
    return (
        f"# Context editing: accuracy against context used ({meta['device']})\n\n"
        f"Scale `{meta['scale']}`, jax {meta['jax']}, {meta['date']}. The `cpu` scale is a reduced setting that "
        "two CPU cores finish in about ten minutes; `full` has budgets "
        f"{list(full['budgets'])}, streams {list(full['streams'])}, {full['task']} and {full['updates']} updates "
        f"of {full['train']['num_envs']} episodes.\n\n"
        f"Command: `{meta['command']}`\n\n"
        f"Task: `{scale['env']}` with {scale['task']}{delay}; budgets {list(scale['budgets'])}, streams "
        f"{list(scale['streams'])}.\n\nTraining (DCPO and PPO alike): the context editor, {scale['updates']} updates "
        f"of {train['num_envs']} episodes each, {scale['seeds']} seeds, {scale['train']} and "
        f"{SHARED_TRAIN}, and {ALGO_TRAIN['dcpo']} for DCPO, {ALGO_TRAIN['ppo']} for PPO{overrides}.\n\n"
        f"Scoring: {EVAL_EPISODES} greedy episodes per seed on the same streams for every method; accuracy is "
        "right answers / queries, chance is 1 / num_values; mean occupied slots per step; return = right answers "
        "- slot cost x occupied slots. keep-latest-k keeps the last C items; keep-all keeps every item in L "
        "slots; perfect keeps exactly the facts still needed (an oracle); perfect-no-merge follows its rules "
        "with writes in place of merges (what the task asks of an editor that never merges). Train wall time includes "
        f"compilation.\n\n{table}\n![accuracy against context used](context_edit_{meta['label']}.png)\n"
        + (curves_link if any(r.get("curve") for r in report["rows"]) else "")
    )


def check_settings(settings: dict, algos: tuple[str, ...], refusal: str) -> None:
    """Exit with ``refusal`` and the names in ``settings`` that no configuration of ``algos`` has."""
    known = set().union(*({f.name for f in dataclasses.fields(algorithms.config_class(a))} for a in algos))
    if unknown := set(settings) - known:
        raise SystemExit(f"{refusal} {', '.join(sorted(unknown))}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=("cpu", "medium", "full"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs")
    parser.add_argument("--budgets", type=int, nargs="*", help="context budgets (default: the scale's)")
    parser.add_argument("--streams", type=int, nargs="*", help="stream lengths (default: the scale's)")
    parser.add_argument("--updates", type=int, help="training updates per run (default: the scale's)")
    parser.add_argument("--seeds", type=int, help="seeds per learned run (default: the scale's)")
    parser.add_argument(
        "--env-params", nargs="*", metavar="NAME=VALUE",
        help="task parameters that replace the scale's in every setting, e.g. slot_cost=0 max_query_delay=16",
    )  # fmt: skip
    parser.add_argument(
        "--train-env-params", nargs="*", metavar="NAME=VALUE",
        help="task parameters that replace the setting's while training only (scoring plays the setting's), "
        "e.g. slot_cost=0 or max_query_delay=8",
    )  # fmt: skip
    parser.add_argument(
        "--train-params", nargs="*", metavar="NAME=VALUE",
        help="training settings that replace the scale's and the shared ones, e.g. num_envs=128 "
        "num_minibatches=2; a field of one algorithm's configuration (group_size) reaches only that one",
    )  # fmt: skip
    parser.add_argument(
        "--algos", nargs="*", choices=METHODS,
        help="learners to train (default: dcpo and ppo); ppo-dcpo: PPO for the first --handoff of the updates "
        "(with --train-env-params, if given, as its curriculum), then DCPO from PPO's network on the task; "
        "ppo-ppo: the same with PPO in the second stage (the control; both share the first stage)",
    )  # fmt: skip
    parser.add_argument("--handoff", type=float, default=0.5, help="ppo-dcpo, ppo-ppo: the first stage's share")
    parser.add_argument(
        "--stage-params", nargs="*", metavar="NAME=VALUE",
        help="training settings of the second stage of ppo-dcpo and ppo-ppo, over --train-params, e.g. ent_coef=0",
    )  # fmt: skip
    parser.add_argument(
        "--task", choices=TASKS, default="KVUpdate",
        help="the registered variant mnemax/ContextEdit-<task>-v0; at full size the parameters it registers "
        "replace the scale's",
    )  # fmt: skip
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--run-dir", help="keep the learned runs' checkpoints here (default: a temporary folder)")
    parser.add_argument(
        "--time-limit", type=float, default=0.0,
        help="seconds this sitting may train, counted from its start: a learned run stops with a checkpoint "
        "before a log interval would overrun them (the trainer's time_limit; 0: none)",
    )  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="continue runs from their checkpoints in --run-dir")
    parser.add_argument("--device-label", default=None)
    args = parser.parse_args(argv)
    if args.resume and not args.run_dir:
        parser.error("--resume needs --run-dir: it names where the runs' checkpoints are")
    # SIGTERM between training loops (compiling, scoring) exits through Python, so that the wall time of
    # the sitting is recorded; inside a loop the trainer's own handler checkpoints first.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    name = "quick" if args.quick else args.scale
    scale = dict(SCALES[name], env=f"mnemax/ContextEdit-{args.task}-v0")
    # At full size another variant keeps what it registers over the scale's task (MultiHop's 24 keys,
    # Distractor's delays) and its registered stream length unless --streams sets one; the reduced scales
    # keep their own sizes.
    own = dict(envs.spec(scale["env"]).params) if name == "full" else {}
    if "stream_length" in own:
        scale["streams"] = (own.pop("stream_length"),)
    scale["task"] = {**scale["task"], **own}
    for field in ("budgets", "streams", "updates", "seeds"):
        if getattr(args, field):
            scale[field] = tuple(getattr(args, field)) if field in ("budgets", "streams") else getattr(args, field)
    scale["task"] = {**scale["task"], **parse_assignments(args.env_params, "--env-params")}
    if args.train_params:
        scale["train_overrides"] = parse_assignments(args.train_params, "--train-params")
        check_settings(scale["train_overrides"], ALGOS, "--train-params: no training setting named")
    if args.stage_params:
        scale["stage_overrides"] = parse_assignments(args.stage_params, "--stage-params")
        second = tuple(sorted({TWO_STAGE[m] for m in args.algos or () if m in TWO_STAGE}))
        if not second:
            parser.error("--stage-params sets the second stage of ppo-dcpo or ppo-ppo: name one in --algos")
        check_settings(scale["stage_overrides"], second, "--stage-params: no second-stage training setting named")
    if args.train_env_params:
        scale["train_task"] = parse_assignments(args.train_env_params, "--train-env-params")
    algos = tuple(args.algos) if args.algos else ALGOS
    scale["handoff"] = args.handoff
    label = (args.device_label or default_label()) + ("-quick" if args.quick else "")
    key = jax.random.PRNGKey(EVAL_KEY)
    deadline = time.perf_counter() + args.max_seconds
    stop_at = time.monotonic() + args.time_limit if args.time_limit > 0 else None
    meta = metadata(scale=name, label=label, streams=list(scale["streams"]), scale_settings=scale)
    rows = []
    with contextlib.nullcontext(args.run_dir) if args.run_dir else tempfile.TemporaryDirectory() as run_dir:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        for stream in scale["streams"]:
            for budget in scale["budgets"]:
                env_params = task_params(scale, budget, stream)
                setting = {"stream": stream, "budget": budget}
                rows += [dict(setting, **r) for r in heuristic_rows(scale["env"], env_params, key)]
                reader_trained = False  # the first stage that ppo-dcpo and ppo-ppo share, once trained
                for algo in algos:
                    if time.perf_counter() > deadline:
                        rows.append(dict(setting, method=algo, status="skipped (time budget)"))
                        continue
                    print(f"L={stream} C={budget} {algo} ...", flush=True)
                    try:
                        row = train_one(scale, algo, env_params, run_dir, key, args.resume, stop_at, reader_trained)
                        rows.append(dict(setting, **row))
                        reader_trained |= algo in TWO_STAGE
                    except (TrainingInterrupted, SystemExit) as error:  # recorded with how to go on, then out
                        trainer_stop = isinstance(error, TrainingInterrupted)
                        stop = str(error).split(";")[0] if trainer_stop else "stopped by a signal"
                        how = f" (--run-dir {args.run_dir} --resume continues it)" if args.run_dir else ""
                        rows.append(dict(setting, method=algo, status=f"interrupted: {stop}{how}"))
                        write(meta, rows)
                        raise SystemExit(error.exit_code if trainer_stop else error.code) from error
                    print(f"  accuracy {rows[-1]['accuracy_per_seed']} in {rows[-1]['seconds']:.0f}s", flush=True)
                    # Written after every learned run, so a run cut short by an outer time limit keeps them.
                    write(meta, rows)
    return write(meta, rows)


def write(meta: dict, rows: list[dict]) -> dict:
    """Writes the report, table and plot of ``rows``; returns the report."""
    report = {"meta": meta, "rows": rows}
    write_report("context_edit", meta["label"], report, markdown(report))
    plot(report, RESULTS / f"context_edit_{meta['label']}.png")
    if any(r.get("curve") for r in rows):  # reports before curves were kept have none
        plot_curves(report, RESULTS / f"context_edit_{meta['label']}-curves.png")
    return report


if __name__ == "__main__":
    main()
