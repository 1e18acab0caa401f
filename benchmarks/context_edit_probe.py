"""Can the context editor learn to *read* its context, and from how many queries? A probe without curation.

On the context-editing tasks an agent must learn two things at once: what to keep (the edits) and how to
answer a query from what it kept (find the slot whose key matches the query's, copy its value). Until it
answers, keeping costs and never pays, so the edits have nothing to learn from. This probe takes the
edits away: a scripted curator (the perfect one by default, whose context holds every answer) plays the
episodes, and only the editor's answer head is trained, at the query steps, on fresh episodes:

* ``supervised``: cross-entropy against the right answer (the floor on what any learner needs);
* ``bandit``: the policy gradient an RL trainer gives the answer head with perfect credit assignment:
  sample an answer, reward 1 if right, advantage = reward minus the batch mean (REINFORCE), plus an
  entropy bonus. PPO's per-step advantages come close to this (its value function plays the baseline);
* ``trajectory``: DCPO's credit: every answer of an episode gets the episode's return normalised within
  its group of ``--group-size`` rollouts of the same stream (one answer's own reward is one of ~10 in
  that return). Without DCPO's per-segment weighting, which changes how steps are averaged, not their sign.

``--curator random`` edits at random, as an untrained editor does: its ceiling (the share of queries
whose answer the context holds) is how often answering can pay at the start of RL training.

``--task MultiHop`` asks the same of chains: with the perfect curator the context holds merged compounds
``a -> b -> v`` (one slot per chain), with ``perfect-no-merge`` the links apart, as an editor that never
merges keeps them.

Held-out accuracy (greedy answers over 256 episodes) against the queries seen says whether the editor
can read its context at all, and how many queries RL needs for it before the edits can start to pay.

    python benchmarks/context_edit_probe.py --modes supervised bandit trajectory
    python benchmarks/context_edit_probe.py --quick     # tiny sizes, a CPU check
    python benchmarks/context_edit_probe.py --task MultiHop --modes bandit --env-params context_size=2

Writes ``benchmarks/results/context_edit_probe_<device-label>.{json,md}``.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax

from common import default_label, markdown_table, parse_assignments, write_rows_report
from mnemax import envs
from mnemax.agents.context_editor import make_context_editor
from mnemax.envs.tasks import context_edit_curators as curators
from mnemax.train.dcpo import group_advantages, group_keys

TASKS = ("KVUpdate", "MultiHop", "Distractor")  # mnemax/ContextEdit-<task>-v0
MODES = ("supervised", "bandit", "trajectory")


def random_editor(obs: jax.Array, params, key: jax.Array) -> jax.Array:
    """The edits of an untrained editor (its op and pointer logits start near zero): op, slot and source
    uniformly at random; the answer the context gives, so that the probe's ceiling is the fraction of
    queries such a context can answer."""
    size = params.context_size
    op, slot, source = (jax.random.randint(k, (), 0, n) for k, n in zip(jax.random.split(key, 3), (4, size, size + 1)))
    return jnp.stack([op, slot, source, curators.answer_from_context(obs, params)]).astype(jnp.int32)


# Who edits the context: ``(obs, params, key) -> action``.
CURATORS = {
    "perfect": lambda obs, params, key: curators.perfect_curator(obs, params),
    "perfect-no-merge": lambda obs, params, key: curators.perfect_without_merges(obs, params),
    "keep-latest": lambda obs, params, key: curators.keep_latest_curator(obs, params),
    "random": random_editor,
}
ANSWER = 3  # the answer's index among the action components [op, slot, source, answer]


def episodes(env, params, curator, key: jax.Array, count: int, group: int = 1) -> dict[str, jax.Array]:
    """``count`` episodes played by ``curator``: per step (``[count, L]``) the observation acted on
    (``obs [count, L, C + 1, 5]``), the right answer ``target`` (-1 unless a query), ``is_query`` and
    ``answerable`` (a query whose right answer the context holds). ``group`` consecutive episodes share
    their stream (reset key) and differ in their step keys, as DCPO's groups do."""

    def one(reset_key, key):
        obs, state = env.reset_env(reset_key, params)

        def body(carry, step_key):
            obs, state = carry
            action = curator(obs, params, jax.random.fold_in(step_key, 1))
            next_obs, state, _, _, _, info = env.step_env(step_key, state, action, params)
            known, answer = curators.context_answer(obs, params)
            answerable = info["is_query"] & known & (answer == info["target"])
            return (next_obs, state), {"obs": obs, "target": info["target"], "is_query": info["is_query"],
                                       "answerable": answerable}  # fmt: skip

        keys = jax.random.split(jax.random.fold_in(key, 1), int(params.stream_length))
        return jax.lax.scan(body, (obs, state), keys)[1]

    return jax.vmap(one)(group_keys(key, count, group), jax.random.split(jax.random.fold_in(key, 2), count))


def env_id(args) -> str:
    return f"mnemax/ContextEdit-{args.task}-v0"


def probe(args, mode: str, seed: int) -> dict:
    """Train one answer head; returns its held-out accuracy curve and the queries seen when it first
    reached 0.9."""
    env, params = envs.make(env_id(args), **args.env_params)
    curator = CURATORS[args.curator]
    network = make_context_editor(
        env.observation_space(params), env.action_space(params), hidden_size=args.width, num_layers=args.layers
    )
    num_values = int(params.num_values)
    key = jax.random.key(seed)
    test = episodes(env, params, curator, jax.random.fold_in(key, 1), 256)
    variables = network.init(jax.random.fold_in(key, 2), (), test["obs"][:1, :1], jnp.zeros((1, 1), bool))
    optimizer = optax.adam(args.learning_rate)
    state = (variables, optimizer.init(variables))

    def answer_logits(variables, obs):
        _, logits, _ = network.apply(variables, (), obs, jnp.zeros(obs.shape[:2], bool))
        return logits[..., ANSWER, :num_values]

    @jax.jit
    def update(state, key):
        variables, opt_state = state
        batch = episodes(env, params, curator, key, args.batch, args.group_size if mode == "trajectory" else 1)
        mask = batch["is_query"].astype(jnp.float32)
        target = jnp.maximum(batch["target"], 0)

        def loss(variables):
            logits = answer_logits(variables, batch["obs"])
            if mode == "supervised":
                per_step = optax.softmax_cross_entropy_with_integer_labels(logits, target)
            else:
                answer = jax.random.categorical(jax.random.fold_in(key, 7), jax.lax.stop_gradient(logits))
                reward = (answer == target).astype(jnp.float32)
                if mode == "bandit":
                    advantage = reward - jnp.sum(reward * mask) / jnp.maximum(mask.sum(), 1.0)
                else:  # DCPO's: the episode's return, normalised within its group, for every answer in it
                    # (eps 1e-8, as the recorded probes ran; returns are counts, so it matters only at std 0)
                    returns = jnp.sum(reward * mask, -1)
                    advantage = group_advantages(returns, args.group_size, eps=1e-8)[:, None]
                log_probs = jax.nn.log_softmax(logits)
                chosen = jnp.take_along_axis(log_probs, answer[..., None], -1)[..., 0]
                entropy = -jnp.sum(jnp.exp(log_probs) * log_probs, -1)
                per_step = -advantage * chosen - args.ent_coef * entropy
            return jnp.sum(per_step * mask) / jnp.maximum(mask.sum(), 1.0)

        value, grads = jax.value_and_grad(loss)(variables)
        changes, opt_state = optimizer.update(grads, opt_state, variables)
        return (optax.apply_updates(variables, changes), opt_state), (value, mask.sum())

    @jax.jit
    def accuracy(variables):
        right = jnp.argmax(answer_logits(variables, test["obs"]), -1) == test["target"]
        return jnp.sum(right & test["is_query"]) / jnp.sum(test["is_query"])

    ceiling = float(jnp.sum(test["answerable"]) / jnp.sum(test["is_query"]))
    curve, queries, reached, start = [], 0, None, time.perf_counter()
    for i in range(1, args.updates + 1):
        state, (loss, seen) = update(state, jax.random.fold_in(key, 100 + i))
        queries += int(seen)
        if i % max(args.updates // args.evals, 1) == 0 or i == args.updates:
            acc = float(accuracy(state[0]))
            curve.append({"updates": i, "episodes": i * args.batch, "queries": queries, "accuracy": acc})
            print(f"  {mode} {i * args.batch:>9,} episodes ({queries:,} queries): held-out accuracy {acc:.3f}", flush=True)
            if reached is None and acc >= 0.9:
                reached = queries
    return {
        "mode": mode, "seed": seed, "final_accuracy": curve[-1]["accuracy"], "queries_to_0.9": reached,
        "queries": queries, "episodes": args.updates * args.batch, "chance": 1.0 / num_values,
        "ceiling": ceiling, "seconds": time.perf_counter() - start, "curve": curve,
    }  # fmt: skip


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--curator", choices=sorted(CURATORS), default="perfect", help="who edits the context")
    parser.add_argument("--task", choices=TASKS, default="KVUpdate", help="the variant mnemax/ContextEdit-<task>-v0")
    parser.add_argument(
        "--env-params", nargs="*", default=[], metavar="NAME=VALUE",
        help="ContextEdit parameters (default: the registered task, 8 slots, stream 64)",
    )  # fmt: skip
    parser.add_argument("--width", type=int, default=64, help="the editor's hidden_size")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64, help="fresh episodes per update")
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--ent-coef", type=float, default=0.01, help="the entropy bonus of the RL modes")
    parser.add_argument("--group-size", type=int, default=8, help="trajectory mode: rollouts per stream")
    parser.add_argument("--evals", type=int, default=20, help="held-out evaluations over the run")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--device-label", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    args.env_params = parse_assignments(args.env_params, "--env-params")
    if args.quick:
        args.env_params = dict(args.env_params, stream_length=8, context_size=2, max_open=1, num_keys=2,
                               num_values=2, min_query_delay=2, max_query_delay=4)  # fmt: skip
        args.width, args.batch, args.updates, args.evals, args.group_size = 16, 4, 3, 1, 2
    if "trajectory" in args.modes and args.batch % args.group_size:
        parser.error(f"--batch ({args.batch}) must be a multiple of --group-size ({args.group_size})")
    rows, report = [], {}
    for mode in args.modes:
        for seed in range(args.seeds):
            row = probe(args, mode, seed)
            print(f"{mode} seed {seed}: accuracy {row['final_accuracy']:.3f} (ceiling {row['ceiling']:.3f}, 0.9 after "
                  f"{row['queries_to_0.9']} queries) in {row['seconds']:.0f} s", flush=True)  # fmt: skip
            rows.append(row)
            report = write(args, rows)  # after every probe, so that a time limit keeps what was measured
    return report


def write(args, rows: list[dict]) -> dict:
    """Writes (unless ``--quick``) and returns the report of ``rows``."""
    table = markdown_table(
        ["mode", "seed", "held-out accuracy", "curator's context knows", "chance", "queries to 0.9", "queries seen",
         "episodes seen", "seconds"],
        [
            [r["mode"], r["seed"], f"{r['final_accuracy']:.3f}", f"{r['ceiling']:.3f}", f"{r['chance']:.4f}",
             f"{r['queries_to_0.9']:,}" if r["queries_to_0.9"] else "not reached", f"{r['queries']:,}",
             f"{r['episodes']:,}", f"{r['seconds']:.0f}"]
            for r in rows
        ],
    )  # fmt: skip
    task = ", ".join(f"{k}={v}" for k, v in args.env_params.items()) or "as registered"
    about = (
        f"`{env_id(args)}` ({task}); the `{args.curator}` curator edits the context and the context editor (width "
        f"{args.width}, {args.layers} layers) learns only to answer, at the query steps, {args.batch} fresh episodes "
        f"per update, Adam {args.learning_rate}. `supervised`: cross-entropy on the right answer; `bandit`: "
        f"REINFORCE on a sampled answer (reward 1 if right, batch-mean baseline, entropy {args.ent_coef}); "
        f"`trajectory`: the same with DCPO's credit (the episode's return normalised in its group of "
        f"{args.group_size} rollouts of one stream, for every answer of the episode). Greedy "
        f"accuracy over the queries of 256 held-out episodes."
    )
    settings = dict(env=env_id(args), env_params=args.env_params, curator=args.curator, width=args.width, layers=args.layers,
                    batch=args.batch, updates=args.updates, learning_rate=args.learning_rate, ent_coef=args.ent_coef,
                    group_size=args.group_size)  # fmt: skip
    label = args.device_label or default_label()
    return write_rows_report("context_edit_probe", label, "Context-edit reading probe", rows, f"{about}\n\n{table}",
                             settings, save=not args.quick)  # fmt: skip


if __name__ == "__main__":
    main()
