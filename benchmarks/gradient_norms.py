"""Where PPO's gradient goes: the norm of each loss term's gradient, per group of parameters.

    python gradient_norms.py --preset ballet_lru --run-name ballet2-delay16-lru_items_parts_ent0.1_answers_2e8
    python gradient_norms.py --preset ballet_lru --run-name <name> --run ../runs/gpu/<name>   # a trained network

Builds the trainer of a `learning_curves.py` run with ``--envs`` environment copies (the network does not
depend on them), plays ``--rollouts`` rollouts with the network (freshly initialised, or seed ``--seed`` of the
trained run in ``--run``) and takes the gradient of PPO's loss on the first minibatch of the last rollout: of
the whole loss, and of each term alone (the clipped policy objective, the value loss times ``vf_coef``, the
entropy bonus times ``ent_coef``). The norms per group (a module and its first sub-module; a memory's
parameters one by one) show which term shapes which part of the network, and how far the clipping of the
global norm to ``max_grad_norm`` scales every step down. Writes ``results/gradient_norms_<label>.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses

import jax
import jax.numpy as jnp

from common import markdown_table, report_label, write_rows_report
from learning_curves import PRESETS, spec_config
from mnemax.train import algorithms
from mnemax.train.loop import restore_run, saved_config
from mnemax.train.on_policy import time_major

TERMS = ("all", "policy", "value", "entropy")


def group(path) -> str:
    """``params/memory/lru_0/theta_log`` -> ``memory/lru_0/theta_log``; other modules to two levels."""
    keys = [str(getattr(p, "key", p)) for p in path[1:]]
    return "/".join(keys[:3] if keys[0] == "memory" and len(keys) > 2 else keys[:2])


def group_norms(grads) -> dict[str, float]:
    """The norm of ``grads`` (a tree of the network's parameters) within each :func:`group`."""
    squares: dict[str, float] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(grads)[0]:
        squares[group(path)] = squares.get(group(path), 0.0) + float(jnp.sum(jnp.square(leaf.astype(jnp.float32))))
    return {name: value**0.5 for name, value in sorted(squares.items())}


def term_losses(config) -> dict:
    """Each of :data:`TERMS` as a function ``(params, batch) -> loss``: the policy objective is the loss with
    ``vf_coef`` and ``ent_coef`` at 0; the value and entropy terms are what setting their coefficient to 0 takes
    away from the loss."""
    loss = lambda **change: algorithms.make(dataclasses.replace(config, **change)).loss  # noqa: E731
    whole, no_entropy, bare = loss(), loss(ent_coef=0.0), loss(ent_coef=0.0, vf_coef=0.0)
    return {
        "all": lambda p, b: whole(p, b)[0],
        "policy": lambda p, b: bare(p, b)[0],
        "value": lambda p, b: no_entropy(p, b)[0] - bare(p, b)[0],
        "entropy": lambda p, b: whole(p, b)[0] - no_entropy(p, b)[0],
    }


def measure(config, rollouts: int, run: str | None, seed: int) -> dict:
    """The norms per group and term on the first minibatch of the last of ``rollouts`` rollouts, played by a
    fresh network of seed ``seed`` or, with ``run``, by that run's trained seed ``seed``."""
    algo = algorithms.make(config)
    runner = algo.init(jax.random.PRNGKey(seed))
    if run:
        trained = saved_config(run)
        _, saved = restore_run(run, dataclasses.replace(trained, num_envs=config.num_envs))
        params = jax.tree_util.tree_map(lambda x: x[seed - trained.seed], saved.train_state.params)
        runner = runner.replace(train_state=runner.train_state.replace(params=params))
    for _ in range(rollouts):
        runner, carries, transitions = algo.rollout(runner)
    params = runner.train_state.params
    _, _, last_value = algo.network.apply(params, runner.carry, time_major(runner.obs), runner.reset[None])
    adv, targets = algo.advantages(algo.flat(transitions), last_value[0])
    minibatches = algo.minibatches(jax.random.PRNGKey(seed), carries, transitions, algo.windowed((adv, targets)))
    batch = jax.tree_util.tree_map(lambda x: x[0], minibatches)
    norms = {term: group_norms(jax.grad(loss)(params, batch)) for term, loss in term_losses(config).items()}
    ended = float(transitions.episode_done.sum())
    total = {term: sum(v**2 for v in groups.values()) ** 0.5 for term, groups in norms.items()}
    return {
        "network": "trained" if run else "initial", "run": run, "seed": seed, "rollouts": rollouts,
        "success": float(transitions.episode_success.sum()) / max(ended, 1.0), "max_grad_norm": config.max_grad_norm,
        "total": total, "groups": norms,
    }  # fmt: skip


def table(row: dict) -> str:
    scale = min(1.0, row["max_grad_norm"] / row["total"]["all"])
    head = (
        f"{row['network'].capitalize()} network (seed {row['seed']}, success {row['success']:.2f} in the rollout): "
        f"global norm {row['total']['all']:.3f}, so clipping to {row['max_grad_norm']:g} scales the step by "
        f"{scale:.3f}.\n\n"
    )
    names = list(row["groups"]["all"])
    lines = [[name] + [f"{row['groups'][term][name]:.4f}" for term in TERMS] for name in names]
    lines.append(["(global)"] + [f"{row['total'][term]:.4f}" for term in TERMS])
    return head + markdown_table(["parameters"] + [f"{term} term" for term in TERMS], lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True, help="a preset of learning_curves.py")
    parser.add_argument("--run-name", required=True, help="one of the preset's runs")
    parser.add_argument("--run", default=None, help="a trained run's directory: its network instead of a fresh one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--envs", type=int, default=64, help="environment copies of the rollouts")
    parser.add_argument("--rollouts", type=int, default=2)
    parser.add_argument("--device-label", default=None)
    parser.add_argument("--quick", action="store_true", help="8 copies, one rollout of 16 steps: a check")
    args = parser.parse_args(argv)
    specs = {spec["name"]: spec for spec in PRESETS[args.preset]}
    if args.run_name not in specs:
        parser.error(f"{args.preset} has no run {args.run_name!r}; it has: {', '.join(specs)}")
    spec = {k: v for k, v in specs[args.run_name].items() if k != "name"}
    spec.update(num_envs=args.envs)
    if args.quick:
        spec.update(num_envs=8, num_steps=16, bptt_length=16, num_minibatches=2)
        args.rollouts = 1
    row = measure(spec_config(spec), args.rollouts, args.run, args.seed)
    print(table(row))
    return write_rows_report(
        "gradient_norms", report_label(args), f"Gradient norms of PPO's loss terms, {args.run_name}", [row],
        table(row), save=not args.quick,
    )


if __name__ == "__main__":
    main()
