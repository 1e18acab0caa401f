"""Training configuration: one typed dataclass; every field is a command-line flag."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Annotated, Any

import tyro

from mnemax.envs.core.params import Declaration


# Step counts read naturally in scientific notation on the command line: `--total-steps 2e6`.
StepCount = Annotated[
    int,
    tyro.constructors.PrimitiveConstructorSpec(
        nargs=1,
        metavar="INT",
        instance_from_str=lambda args: int(float(args[0])),
        is_instance=lambda value: isinstance(value, int),
        str_from_instance=lambda value: [str(value)],
    ),
]


AGENTS = ("actor_critic", "context_editor")
ALGORITHMS = ("ppo", "dcpo")
ADVANTAGE_NORMS = ("minibatch", "batch", "none")
# What every float option accepts (checked by `PPOConfig.validate`, with the messages of env parameters).
FLOAT_OPTIONS = {
    "learning_rate": Declaration(float, gt=0.0, le=1.0),
    "gamma": Declaration(float, ge=0.0, le=1.0),
    "gae_lambda": Declaration(float, ge=0.0, le=1.0),
    "clip_eps": Declaration(float, gt=0.0, le=1.0),
    "ent_coef": Declaration(float, ge=0.0),
    "barrier_coef": Declaration(float, ge=0.0),
    "vf_coef": Declaration(float, ge=0.0),
    "max_grad_norm": Declaration(float, gt=0.0),
    "checkpoint_minutes": Declaration(float, ge=0.0),
}


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO (or DCPO, ``algo="dcpo"``) for memory agents. The whole update (rollout, advantages, all
    epochs) is one jitted function."""

    preset: str = ""
    """hyperparameters of a task family (`mnemax.train.presets`, e.g. `tmaze`, `memory_gym`); other flags
    override them"""
    env: str = "mnemax/TMaze-Passive-v0"
    """environment id (`mnemax-envs` lists them, `mnemax-envs ID` shows the parameters of one)"""
    env_params: dict[str, int | float | bool | str] = dataclasses.field(default_factory=dict)
    """overrides of the environment's parameters, e.g. `--env-params corridor_length 100`"""
    agent: str = "actor_critic"
    """`actor_critic` (encoder -> memory -> heads) or `context_editor` (a transformer over the slots of a
    context-editing task, `mnemax/ContextEdit-*`; its memory is the context, so `memory` is ignored)"""
    agent_config: dict[str, int | float | bool | str] = dataclasses.field(default_factory=dict)
    """extra fields of the context editor, e.g. `--agent-config num_layers 3 num_heads 4`"""
    memory: str = "gru"
    """memory module (listed at the top of --help), or `none` for a memoryless agent"""
    memory_config: dict[str, int | float | bool | str] = dataclasses.field(default_factory=dict)
    """extra fields of the memory module, e.g. `--memory-config num_layers 2 memory_length 64`"""
    hidden_size: int = 128
    """width of the encoder, the memory and the heads"""
    prev_action_reward: bool = False
    """append the previous action (one-hot) and reward to vector observations"""

    total_steps: StepCount = 1_000_000
    """environment steps to train for (per seed), e.g. `2e6`; rounded up to whole logging intervals"""
    num_envs: int = 64
    """parallel environments (the global batch over all devices)"""
    num_steps: int = 128
    """rollout length per update (DCPO: one episode per environment, so make it the episode length)"""
    bptt_length: int = 0
    """truncated-BPTT window: sequences of this many steps with stored initial carries (0: whole rollout)"""
    update_epochs: int = 4
    num_minibatches: int = 4
    learning_rate: float = 3e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.05
    """entropy bonus; memory tasks with one late decision (T-Maze) need more exploration than 0.01 gives"""
    barrier_coef: float = 0.0
    """log-barrier exploration, per episode: adds `barrier_coef / T * mean_a log pi(a|s)` (= -KL(uniform ||
    pi) / T + const) to the objective, T the mean episode length. Unlike the entropy bonus, its pull on an
    action does not fade as the action's probability goes to zero, so no action's probability collapses;
    dividing by T keeps the exploration per episode the same for short and long episodes"""
    advantage_norm: str = "minibatch"
    """normalise advantages per `minibatch`, over the whole `batch` of a rollout, or `none`"""
    separate_critic: bool = False
    """give the value head an encoder and memory of its own (no shared trunk) and clip the gradients of
    the policy and the value branch separately, so that the value loss cannot use up the clip budget"""
    linear_heads: bool = False
    """policy and value heads are single linear layers on the memory output; otherwise each has one hidden
    ReLU layer"""
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    bootstrap_truncated: bool = True
    """bootstrap from the value of the final observation when an episode is truncated (not terminated)"""

    algo: str = "ppo"
    """`ppo`, or `dcpo`: Dynamic Context Policy Optimization (`mnemax.train.dcpo`): every update plays one
    episode in each environment, `group_size` of them on the same task instance, and trains the clipped
    surrogate on group-normalised episode returns, segment by segment (no value function and no GAE, so
    `gamma`, `gae_lambda`, `vf_coef`, `bootstrap_truncated`, `advantage_norm`, `barrier_coef` and
    `separate_critic` do not apply)"""
    group_size: int = 8
    """DCPO: episodes per group (same reset key); `num_envs` must be a multiple of it"""

    seed: int = 0
    num_seeds: int = 1
    """independent runs trained at once with vmap (seeds `seed .. seed + num_seeds - 1`)"""
    num_devices: int = 0
    """devices to shard the environment batch over (0: all visible devices of all processes)"""
    distributed: bool = False
    """several hosts: call `jax.distributed.initialize()` first (it reads the cluster from the environment:
    SLURM, TPU pods, or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID)"""

    run_name: str = ""
    """name of the run directory under `run_dir` and of its videos; empty: env-memory-seed"""
    run_dir: str = "runs"
    num_logs: int = 50
    """how many times to log (and update the progress bar) over the run"""
    checkpoint_every: int = 10
    """save a checkpoint every this many logs (and always at the end)"""
    checkpoint_minutes: float = 10.0
    """also save one at the first log this many minutes after the last (0: by log count only); Ctrl-C and
    SIGTERM save one too"""
    resume: bool = False
    """continue the run in `run_dir/run_name` from its last intact checkpoint"""
    overwrite: bool = False
    """replace an earlier run in `run_dir/run_name` (a new run refuses to start over one otherwise)"""
    video: bool = True
    """write a greedy-policy rollout video to `video_dir/<run_name>.mp4` at the end"""
    video_dir: str = "videos"
    video_steps: int = 200
    """frames in the video (whole episodes are shown until the budget is used)"""
    eval_episodes: int = 256
    """greedy episodes evaluated at the end to report the final success rate"""
    progress: bool = True
    """show progress: a bar on a terminal, one line per log otherwise"""
    debug: bool = False
    """show the traceback of an error, not just its message"""

    @property
    def name(self) -> str:
        if self.run_name:
            return self.run_name
        env = self.env.split("/")[-1]
        algo = "" if self.algo == "ppo" else f"-{self.algo}"
        return f"{env}-{self.agent_name}{algo}-s{self.seed}"

    @property
    def agent_name(self) -> str:
        """The memory module of the actor-critic, or the other agent's name."""
        return self.memory if self.agent == "actor_critic" else self.agent

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def updates_per_log(self) -> int:
        updates = math.ceil(self.total_steps / self.steps_per_update)
        return max(1, math.ceil(updates / self.num_logs))

    @property
    def num_log_intervals(self) -> int:
        updates = math.ceil(self.total_steps / self.steps_per_update)
        return math.ceil(updates / self.updates_per_log)

    @property
    def num_updates(self) -> int:
        return self.num_log_intervals * self.updates_per_log

    @property
    def sequence_length(self) -> int:
        return self.bptt_length or self.num_steps

    def validate(self, num_devices: int = 1) -> None:
        """Raise ``ValueError`` for values the trainer cannot run with (before anything compiles)."""
        positive = [
            "total_steps", "num_envs", "num_steps", "update_epochs", "num_minibatches", "hidden_size",
            "num_seeds", "num_logs", "checkpoint_every", "video_steps", "eval_episodes",
        ]  # fmt: skip
        for field in positive:
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1, got {getattr(self, field)}")
        for field, accepted in FLOAT_OPTIONS.items():
            if not accepted.accepts(getattr(self, field)):
                raise ValueError(f"{field} must be {accepted.accepted()}, got {getattr(self, field)}")
        if self.bptt_length < 0 or self.num_steps % self.sequence_length:
            raise ValueError(f"bptt_length ({self.bptt_length}) must divide num_steps ({self.num_steps})")
        for field, known in (("agent", AGENTS), ("algo", ALGORITHMS), ("advantage_norm", ADVANTAGE_NORMS)):
            if getattr(self, field) not in known:
                raise ValueError(f"{field} must be one of {', '.join(known)}, got {getattr(self, field)!r}")
        if self.algo == "dcpo":
            for field in ("barrier_coef", "separate_critic", "linear_heads"):
                if getattr(self, field):
                    raise ValueError(f"{field} is a setting of PPO's actor-critic; DCPO does not use it")
            if self.group_size < 2:
                raise ValueError(f"group_size must be >= 2 (DCPO compares episodes of a group), got {self.group_size}")
            if self.num_envs % self.group_size:
                raise ValueError(f"num_envs ({self.num_envs}) must be a multiple of group_size ({self.group_size})")
        if self.num_envs % (self.num_minibatches * num_devices):
            raise ValueError(
                f"num_envs ({self.num_envs}) must be divisible by num_minibatches ({self.num_minibatches}) "
                f"x devices ({num_devices}) = {self.num_minibatches * num_devices}"
            )

    @classmethod
    def from_preset(cls, name: str, **overrides) -> PPOConfig:
        """The preset's fields (:mod:`mnemax.train.presets`) with ``overrides`` on top."""
        from mnemax.train.presets import preset

        memory = overrides.get("memory", cls.memory)
        return cls(**{**preset(name, memory), "preset": name, **overrides})

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PPOConfig:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# Fields that may differ between a run and its resumption: they do not change what is computed (`run_dir`:
# a run directory may be moved).
RESUMABLE_FIELDS = frozenset({
    "resume", "overwrite", "debug", "distributed", "progress", "video", "video_dir", "video_steps", "eval_episodes",
    "checkpoint_every", "checkpoint_minutes", "run_dir",
})  # fmt: skip


def config_differences(saved: PPOConfig, current: PPOConfig) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ in a way that makes a checkpoint of ``saved`` unusable for ``current``."""
    diffs = {}
    for field in dataclasses.fields(PPOConfig):
        a, b = getattr(saved, field.name), getattr(current, field.name)
        if a != b and field.name not in RESUMABLE_FIELDS:
            diffs[field.name] = (a, b)
    return diffs
