"""Where a trained HCAM agent looks when it is asked about the past: its chunk weights on the marked events.

    python hcam_attention.py --run ../runs/gpu/<hcam run> [--steps 3000] [--layers 0 -1]

For each seed of the run and each HCAM layer asked for, plays ``--steps`` greedy steps (as
``python -m mnemax.train.attention_video`` does, episodes back to back) and, at every step where the
environment frames one of its marked intervals (Ballet: once the instruction is shown, the dance of the asked
dancer), sums the layer's chunk weights (mean over heads) on the chunks of the framed interval and on those
of each other interval; a chunk belongs to an interval that covers at least half of it. If the agent looks
back at the asked event, the framed interval's weight exceeds the others'. Writes
``results/hcam_attention_<label>.{json,md}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import numpy as np

from common import default_label, markdown_table, write_rows_report
from mnemax.train.attention_video import attention_rollout, chunk_starts, episode_marks, load_run


def interval_of_chunks(starts: np.ndarray, chunk_size: int, intervals: list[tuple]) -> np.ndarray:
    """``int [N]``: for chunks beginning at episode steps ``starts``, the index of the ``(start, end, ...)``
    interval that covers at least half of the chunk (or half of the interval, if it is shorter), else -1: a
    chunk that shares a step or two with an event is not that event's chunk."""
    bounds = [(start, end) for start, end, *_ in intervals]
    ends = starts + chunk_size
    overlap = np.stack([np.clip(np.minimum(ends, b) - np.maximum(starts, a), 0, None) for a, b in bounds])  # [I, N]
    covered = np.where(2 * overlap >= np.minimum(chunk_size, [b - a for a, b in bounds])[:, None], overlap, 0)
    return np.where(covered.max(0) > 0, covered.argmax(0), -1)


def weights_on_marks(trace, algorithm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(framed, others, beside)``: at each step with a framed interval, the chunk weight (mean over heads) on
    the framed interval's chunks ``[K]``, on each other interval's ``[K, intervals - 1]``, and on the intervals
    just before and just after the framed one ``[K, 2]`` (NaN where there is none)."""
    memory = algorithm.network.memory
    starts = chunk_starts(trace.episode_step, memory.memory_chunks, memory.chunk_size)
    weights = trace.weights[:, :, : memory.memory_chunks].mean(axis=1)  # [S, N]
    framed, others, beside = [], [], []
    for step in range(len(weights)):
        state = jax.tree_util.tree_map(lambda x: x[step], trace.states)
        marks = episode_marks(algorithm.env, algorithm.eval_env_params, state)
        if marks.framed is None:
            continue
        owner = interval_of_chunks(starts[step], memory.chunk_size, marks.intervals)
        owner = np.where(trace.visible[step], owner, -1)  # chunks of this episode only
        on = np.array([weights[step][owner == i].sum() for i in range(len(marks.intervals))])
        framed.append(on[marks.framed])
        others.append(np.delete(on, marks.framed))
        padded = np.concatenate([[np.nan], on, [np.nan]])  # the framed interval is at marks.framed + 1
        beside.append(padded[[marks.framed, marks.framed + 2]])
    return np.array(framed), np.array(others), np.array(beside)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="the directory of a trained HCAM run")
    parser.add_argument("--steps", type=int, default=3000, help="greedy steps per seed and layer")
    parser.add_argument("--layers", type=int, nargs="+", default=[0, -1], help="HCAM layers (negative: from the last)")
    parser.add_argument("--key", type=int, default=0, help="random key of the rollouts")
    parser.add_argument("--device-label", default="")
    args = parser.parse_args(argv)
    config, algorithm, params = load_run(args.run)
    rows = []
    for seed in range(config.num_seeds):
        seed_params = jax.tree_util.tree_map(lambda x: x[seed], params)
        for layer in args.layers:
            trace = attention_rollout(algorithm, seed_params, jax.random.key(args.key), args.steps, layer)
            framed, others, beside = weights_on_marks(trace, algorithm)
            before, after = np.nanmean(beside, axis=0) if len(beside) else (np.nan, np.nan)
            rows.append({
                "run": Path(args.run).name, "env": config.env, "seed": seed, "layer": layer, "steps": args.steps,
                "framed_steps": len(framed), "episodes": int((trace.episode_step == 0).sum()),
                "framed_weight": float(framed.mean()), "other_weight": float(others.mean()),
                "framed_above_all": float((framed[:, None] > others).all(-1).mean()),
                "before_weight": float(before), "after_weight": float(after),
            })  # fmt: skip
            print(rows[-1])
    table = markdown_table(
        ["run", "seed", "layer", "episodes", "steps asked", "weight on the asked event", "on each other event",
         "on the event before it", "on the event after it", "steps where the asked event has the most"],
        [[r["run"], r["seed"], r["layer"], r["episodes"], r["framed_steps"], f"{r['framed_weight']:.2f}",
          f"{r['other_weight']:.2f}", f"{r['before_weight']:.2f}", f"{r['after_weight']:.2f}",
          f"{r['framed_above_all']:.2f}"] for r in rows],
    )  # fmt: skip
    about = (
        "Greedy rollouts, episodes back to back; at every step where the environment frames the asked event "
        "(Ballet: from the instruction on), the HCAM layer's chunk weights (mean over heads) summed over the "
        "chunks of the asked dancer's dance and over those of each other dancer's (a chunk belongs to the "
        "dance that covers at least half of it; the chunks of the delays belong to none), averaged over those "
        "steps; before and after: the dances performed just before and just after the asked one, over the "
        "steps where there is one."
    )
    return write_rows_report("hcam_attention", args.device_label or default_label(), "Where HCAM looks", rows,
                             f"{about}\n\n{table}", {"key": args.key})  # fmt: skip


if __name__ == "__main__":
    main()
