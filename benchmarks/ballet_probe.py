"""Can a memory learn Ballet's binding at all, and from how many episodes? A supervised probe.

PPO on Ballet gets one reward per episode, for walking onto the right dancer. This probe asks the question
underneath without reinforcement learning: the agent's encoder and memory read an episode's observations
up to the step that shows the instruction, and a linear layer on the memory's last output is trained with
cross-entropy to name the spot of the dancer that performed the asked dance (the answer an agent would
walk to; ``--readout mlp`` puts one ReLU layer of the memory's width first, as the agents' policy head
has, so that the comparison of the instruction with what the memory holds can happen after the memory).
Every batch holds fresh episodes. If the probe's held-out accuracy reaches 1, the observations carry the answer and the memory can hold it; the number of episodes it needs is a floor on what PPO needs
(PPO learns the same binding from one bit per episode, and must learn to walk as well).

    python benchmarks/ballet_probe.py --envs Ballet-2-Delay16-Symbolic-v0 --memories gru none
    python benchmarks/ballet_probe.py --memories s5 --encoders mlp spots   # the room's encoding, two ways
    python benchmarks/ballet_probe.py --memories hcam hcam:local_length=64   # a memory's settings after a colon
    python benchmarks/ballet_probe.py --envs Ballet-2-Delay16-Symbolic-v0:show_dances=True --memories none
    python benchmarks/ballet_probe.py --memories trxl --encoders spots --objective reward  # one bit per episode
    python benchmarks/ballet_probe.py --memories trxl --objective reward --past 16 32 48  # and a target over the past
    python benchmarks/ballet_probe.py --memories trxl --encoders spots --objective reward --entropy 0.1 --batch 512
    python benchmarks/ballet_probe.py --quick     # tiny sizes, a CPU check

``none`` reads only the last observation (the instruction and the dancers standing still): chance is
``1 / num_dancers``. Writes ``benchmarks/results/ballet_probe_<device-label>.{json,md}``.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import mnemax.envs
from common import default_label, markdown_table, split_variant, write_rows_report
from mnemax.agents import distributions
from mnemax.agents.encoders import ItemsEncoder
from mnemax.envs.tasks.ballet import NUM_DANCES, SPOTS
from mnemax.memory_modules import make as make_memory

# "spot": Ballet's question (which dancer did the asked dance); "first-dance": recognising one dance (which
# of the 13 the first dancer performed), the half of the binding that needs no instruction.
QUESTIONS = ("spot", "first-dance")
# "labels": cross-entropy against the answer; "reward": the probe names one answer, drawn from its softmax, and
# is told only whether it was right (REINFORCE with the batch's other episodes' mean reward as the baseline),
# the one bit per episode PPO gets, without PPO's walk, ignored steps or value function; "expected-reward": the
# exact gradient of the expected reward, the probability of the right answer (what "reward" estimates from one
# drawn answer per episode): it tells the noise of drawing apart from the objective itself.
OBJECTIVES = ("labels", "reward", "expected-reward")
# "mlp": the agents' encoder for symbolic observations (two ReLU layers over the flattened room); "spots": one
# ReLU layer shared by the 8 spots, over each spot's 3 x 3 square (where its dancer dances), then a ReLU layer
# over those 8 codes and the instruction: a dance looks the same to it at every spot; "conv": the same idea
# without Ballet's layout, one 3 x 3 convolution shared by every cell of the room (32 features, same padding),
# then a ReLU layer over all cells' codes and the instruction.
# "squares": the 8 squares' every channel side by side through one ReLU layer of the memory's width, the instruction
# beside them: what "spots" reads, without the sharing (each square has weights of its own).
# "items": the agents' items encoder (`--item-encoder`): the spots encoder's shared layer over each spot's square,
# and the instruction and the rest of the room each through a layer of their own. (Before, it put the codes
# beside an MLP over the whole flattened room: the `-items` results dated before 2026-12-06 16:00 UTC.)
ENCODERS = ("mlp", "spots", "squares", "conv", "items")
TRANSFORMERS = {"trxl": {"num_layers": 2, "num_heads": 4}, "hcam": {"num_layers": 2, "num_heads": 4}}
GATED = ("gru", "lstm")
READOUTS = ("linear", "mlp")  # the memories with keep gates whose time scales --max-timescale spreads


def episodes(env, params, key: jax.Array, count: int, question: str = "spot") -> tuple[jax.Array, jax.Array]:
    """``count`` episodes watched up to the instruction: ``(observations [T, count, D], answers [count])``,
    ``T = answer_start + 1``. The answer (:data:`QUESTIONS`): the spot index (0..7) of the dancer that
    performed the asked dance, or the dance (0..12) that the first dancer performed."""
    steps = int(env.answer_start(params)) + 1

    def one(key):
        obs, state = env.reset(key, params)

        def body(state, _):  # the agent's actions are ignored while the dances play
            obs, state, *_ = env.step_env(key, state, jnp.int32(0), params)
            return state, obs

        _, later = jax.lax.scan(body, state, None, length=steps - 1)
        answer = state.spot[state.target] if question == "spot" else state.dance[0]
        return jnp.concatenate([obs[None], later]), answer

    observations, answers = jax.vmap(one)(jax.random.split(key, count))
    return observations.swapaxes(0, 1), answers


def probability_of(probs: jax.Array, answers: jax.Array) -> jax.Array:
    """``probs [B, K]``'s entry of each episode's answer (``answers [B]``): ``[B]``."""
    return jnp.take_along_axis(probs, answers[:, None], -1)[:, 0]


class Probe(nn.Module):
    """Encoder (:data:`ENCODERS`) -> memory -> a linear read-out over the possible answers."""

    memory: str
    width: int
    outputs: int  # the question's possible answers
    max_timescale: int = 0  # GRU / LSTM (GATED): keep gates spread over 2 .. this many steps at init (0: default)
    readout: str = "linear"  # READOUTS
    encoder: str = "mlp"  # ENCODERS
    # The room's split of a symbolic observation into (grid, instruction) (RecallRoom.split_symbolic), which
    # the "spots", "squares" and "conv" encoders need.
    split: Callable | None = None
    items: Any = None  # the task's observation_items (each spot's square), which "spots", "squares" and "items" read
    # Self-supervised: from the memory's output at every step, one linear layer per delay k predicts the
    # observation k steps back (sown as "past" intermediates: pairs of prediction and target)
    past: tuple[int, ...] = ()
    parts: Any = ()  # the task's observation_parts (the instruction), which "items" reads apart

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        if self.encoder == "mlp":
            x = nn.relu(nn.Dense(self.width)(observations))
            x = nn.relu(nn.Dense(self.width)(x))
        elif self.encoder == "items":
            items = tuple(map(tuple, self.items.tolist()))
            parts = tuple(tuple(part.tolist()) for part in self.parts)
            items_encoder = ItemsEncoder(self.width, items, parts, init="lecun")
            x = jax.vmap(items_encoder)(observations)  # over time, like the agents
        else:  # the room's squares (or cells) read first, then one layer over their codes and the instruction
            grid, instruction = self.split(observations)
            if self.encoder == "spots":
                codes = nn.relu(nn.Dense(32)(observations[:, :, self.items]))  # the squares [T, B, 8, 9 C]
            elif self.encoder == "squares":
                codes = observations[:, :, self.items]  # read by the layer below, each square by weights of its own
            else:  # "conv"
                codes = nn.relu(nn.Conv(32, (3, 3), padding="SAME")(grid.reshape((-1,) + grid.shape[2:])))
            codes = codes.reshape(observations.shape[:2] + (-1,))
            x = nn.relu(nn.Dense(self.width)(jnp.concatenate([codes, instruction], axis=-1)))
        name, overrides = split_variant(self.memory)
        if name == "none":
            last = x[-1]
        else:
            config = {"max_timescale": self.max_timescale} if self.max_timescale else TRANSFORMERS.get(name, {})
            module = make_memory(name, features=self.width, **{**config, **overrides})
            carry = module.initialize_carry(observations.shape[1])
            resets = jnp.zeros(observations.shape[:2], bool).at[0].set(True)
            outputs = module(carry, x, resets)[1]  # [T, B, width]
            for k in self.past:
                self.sow("intermediates", "past", (nn.Dense(observations.shape[-1])(outputs[k:]), observations[:-k]))
            last = outputs[-1]
        if self.readout == "mlp":
            last = nn.relu(nn.Dense(self.width)(last))
        return nn.Dense(self.outputs)(last)


def probe(
    env_id: str, memory: str, width: int, batch: int, updates: int, evals: int, seed: int, question: str = "spot",
    max_timescale: int = 0, readout: str = "linear", encoder: str = "mlp", objective: str = "labels",
    entropy: float = 0.0, lr: float = 1e-3, past: tuple[int, ...] = (), past_weight: float = 1.0,
    max_grad_norm: float = 0.0,
) -> dict:  # fmt: skip
    """Train one probe; returns its held-out accuracy curve and the episodes seen when it first reached 0.95."""
    name, settings = split_variant(env_id)
    env, params = mnemax.envs.make(name, **settings)
    max_timescale = max_timescale if split_variant(memory)[0] in GATED else 0
    outputs = len(SPOTS) if question == "spot" else NUM_DANCES
    items = env.observation_items(params) if encoder in ("spots", "squares", "items") else None
    parts = env.observation_parts(params) if encoder == "items" else ()
    model = Probe(
        memory, width, outputs, max_timescale, readout, encoder, env.split_symbolic, items, tuple(past), parts
    )
    key = jax.random.key(seed)
    test_obs, test_answers = episodes(env, params, jax.random.fold_in(key, 1), 1024, question)
    variables = model.init(jax.random.fold_in(key, 2), test_obs[:, :2])
    optimizer = optax.adam(lr)
    if max_grad_norm:  # as PPO clips: one global norm over all parameters, before Adam
        optimizer = optax.chain(optax.clip_by_global_norm(max_grad_norm), optimizer)
    state = (variables, optimizer.init(variables))

    @jax.jit
    def update(state, key):
        variables, opt_state = state
        obs, answers = episodes(env, params, key, batch, question)

        def loss(variables):
            logits, sown = model.apply(variables, obs, mutable=["intermediates"])
            pairs = sown.get("intermediates", {}).get("past", ())
            # each delay's squared error summed over an observation's features (a mean over them would weigh a
            # 2675-feature room's few changing cells at ~1e-3 of the answer's loss), then summed over the delays
            aux = past_weight * sum(jnp.sum((p - target) ** 2, -1).mean() for p, target in pairs)
            if objective == "labels":
                return optax.softmax_cross_entropy_with_integer_labels(logits, answers).mean() + aux
            if objective == "expected-reward":
                right = probability_of(jax.nn.softmax(logits), answers)
                return -jnp.mean(right + entropy * distributions.entropy(logits[:, None])) + aux
            named = jax.random.categorical(jax.random.fold_in(key, 1), logits)
            reward = (named == answers).astype(jnp.float32)
            baseline = (reward.sum() - reward) / (reward.shape[0] - 1)  # leave-one-out: no episode sees its own
            chosen = distributions.log_prob(logits[:, None], named[:, None])  # the answer as one action component
            bonus = distributions.entropy(logits[:, None])  # the softmax's entropy, against early commitment
            return -jnp.mean((reward - baseline) * chosen + entropy * bonus) + aux

        value, grads = jax.value_and_grad(loss)(variables)
        changes, opt_state = optimizer.update(grads, opt_state, variables)
        return (optax.apply_updates(variables, changes), opt_state), value

    predict = lambda variables: model.apply(variables, test_obs, mutable=["intermediates"])[0]  # noqa: E731

    @jax.jit
    def held_out(variables):  # accuracy, the mean probability of the right answer, and of the likeliest one
        probs = jax.nn.softmax(predict(variables))
        right = probability_of(probs, test_answers)
        return jnp.mean(jnp.argmax(probs, -1) == test_answers), right.mean(), probs.max(-1).mean()

    curve, solved_at, start = [], None, time.perf_counter()
    for i in range(1, updates + 1):
        state, loss = update(state, jax.random.fold_in(key, 100 + i))
        if i % max(updates // evals, 1) == 0 or i == updates:
            acc, right, likeliest = map(float, held_out(state[0]))
            curve.append({"episodes": i * batch, "accuracy": acc, "loss": float(loss), "p_right": right,
                          "p_likeliest": likeliest})  # fmt: skip
            print(f"  {i * batch:>9,} episodes: held-out accuracy {acc:.3f} (p right {right:.3f}, p likeliest "
                  f"{likeliest:.3f}), loss {float(loss):.3f}", flush=True)  # fmt: skip
            if solved_at is None and acc >= 0.95:
                solved_at = i * batch
    return {
        "env": env_id, "memory": memory, "width": width, "batch": batch, "updates": updates, "seed": seed,
        "final_accuracy": curve[-1]["accuracy"], "episodes_to_0.95": solved_at,
        "question": question, "max_timescale": max_timescale, "readout": readout, "encoder": encoder,
        "objective": objective, "entropy": entropy, "lr": lr, "past": list(past), "past_weight": past_weight,
        "max_grad_norm": max_grad_norm,
        "chance": 1.0 / (int(env.num_items(params)) if question == "spot" else NUM_DANCES),
        "seconds": time.perf_counter() - start, "curve": curve,
    }  # fmt: skip


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--envs", nargs="+", default=["Ballet-2-Delay16-Symbolic-v0"], help="ids, each optionally ID:PARAM=VALUE,..."
    )
    parser.add_argument(
        "--memories", nargs="+", default=["gru", "none"], help="registered names, each optionally NAME:KEY=VALUE,..."
    )
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64, help="fresh episodes per update")
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--evals", type=int, default=30, help="held-out evaluations over the run")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--question", choices=QUESTIONS, default="spot")
    parser.add_argument(
        "--max-timescale", type=int, default=0, help="GRU / LSTM keep-gate time scales up to this at init (0: default)"
    )
    parser.add_argument("--readout", choices=READOUTS, default="linear", help="on the memory's last output")
    parser.add_argument("--encoders", nargs="+", choices=ENCODERS, default=["mlp"], help="before the memory")
    parser.add_argument(
        "--objective", choices=OBJECTIVES, default="labels",
        help="learn from the answer, or only from being right (drawn, or in expectation)",
    )
    parser.add_argument("--entropy", type=float, default=0.0, help="entropy bonus of the reward objectives")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    parser.add_argument(
        "--max-grad-norm", type=float, default=0.0, help="clip the gradients' global norm to this (0: no clipping)"
    )
    parser.add_argument(
        "--past", type=int, nargs="*", default=[], help="delays k: also predict the observation k steps back"
    )
    parser.add_argument("--past-weight", type=float, default=1.0, help="weight of the --past loss")
    parser.add_argument("--device-label", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.entropy and args.objective == "labels":
        parser.error("--entropy is a bonus of the reward objectives")
    if args.past and (min(args.past) < 1 or any(split_variant(m)[0] == "none" for m in args.memories)):
        parser.error("--past takes delays of at least 1 step, and a memory (not none) whose outputs predict them")
    if args.quick:
        args.width, args.batch, args.updates, args.evals = 16, 8, 4, 2
    rows, report = [], {}
    for env_id in args.envs:
        for memory in args.memories:
            for encoder, seed in itertools.product(args.encoders, range(args.first_seed, args.first_seed + args.seeds)):
                row = probe(env_id, memory, args.width, args.batch, args.updates, args.evals, seed, args.question,
                            args.max_timescale, args.readout, encoder, args.objective, args.entropy, args.lr,
                            args.past, args.past_weight, args.max_grad_norm)  # fmt: skip
                print(f"{env_id} {memory} ({encoder} encoder) seed {seed}: accuracy {row['final_accuracy']:.3f} "
                      f"(0.95 after {row['episodes_to_0.95']} episodes) in {row['seconds']:.0f} s", flush=True)  # fmt: skip
                rows.append(row)
                report = write(args, rows)  # after every probe, so that a time limit keeps what was measured
    return report


def memory_label(row: dict) -> str:
    """The memory, with its time scales at init where they were set, a read-out other than linear and an
    encoder other than the MLP."""
    timescale, readout = row.get("max_timescale", 0), row.get("readout", "linear")
    label = f"{row['memory']} (time scales to {timescale})" if timescale else row["memory"]
    label = label if readout == "linear" else f"{label}, {readout} read-out"
    label = label if row.get("encoder", "mlp") == "mlp" else f"{label}, {row['encoder']} encoder"
    label = label if row.get("lr", 1e-3) == 1e-3 else f"{label}, learning rate {row['lr']:g}"
    if row.get("max_grad_norm"):
        label = f"{label}, gradients clipped to a global norm of {row['max_grad_norm']:g}"
    if row.get("past"):
        delays = ", ".join(map(str, row["past"]))
        label = f"{label}, predicting the observations {delays} steps back (weight {row['past_weight']:g})"
    if row.get("objective", "labels") == "labels":
        return label
    bonus = f" (entropy bonus {row['entropy']:g})" if row.get("entropy") else ""
    if row["objective"] == "expected-reward":
        return f"{label}, from the exact expected reward{bonus}"
    return f"{label}, from reward only{bonus}"


def write(args, rows: list[dict]) -> dict:
    """Writes (unless ``--quick``) and returns the report of ``rows``."""
    table = markdown_table(
        ["env", "question", "memory", "seed", "held-out accuracy", "p likeliest", "chance", "episodes to 0.95",
         "episodes seen", "seconds"],
        [
            [r["env"], r.get("question", "spot"), memory_label(r), r["seed"], f"{r['final_accuracy']:.3f}",
             f"{r['curve'][-1]['p_likeliest']:.3f}" if "p_likeliest" in r["curve"][-1] else "-", f"{r['chance']:.3f}",
             f"{r['episodes_to_0.95']:,}" if r["episodes_to_0.95"] else "not reached", f"{r['updates'] * r['batch']:,}",
             f"{r['seconds']:.0f}"]
            for r in rows
        ],
    )  # fmt: skip
    about = (
        f"Supervised: the memory's last output at the instruction step names the answer (the spot of the dancer "
        f"that did the asked dance, or the first dancer's dance; cross-entropy, Adam {args.lr:g}, {args.batch} fresh "
        f"episodes per update, width {args.width}); accuracy over 1024 held-out episodes. "
        f"\"From reward only\": the probe draws an answer from its softmax and learns only whether it was right "
        f"(REINFORCE, the batch's other episodes' mean reward as baseline); \"from the exact expected reward\": "
        f"the probability of the right answer, maximised as it is (no answer drawn). \"p likeliest\": the mean "
        f"probability of the likeliest answer at the end, how far the softmax has committed."
    )
    settings = dict(width=args.width, batch=args.batch, updates=args.updates)
    label = args.device_label or default_label()
    return write_rows_report("ballet_probe", label, "Ballet probe", rows, f"{about}\n\n{table}", settings,
                             save=not args.quick)  # fmt: skip


if __name__ == "__main__":
    main()
