"""Training configurations. Every field is a command-line flag and declares, where it is defined, what
it accepts and whether a resumed run may change it (:func:`option`).

* :class:`RunConfig`: how a run goes: seeds, devices, the run directory, logging, checkpoints, the video
  and the final evaluation;
* :class:`TrainConfig`: a run, and what every algorithm trains: the task, the agent, the step budget, the
  rollout and the optimizer;
* one subclass per algorithm, in the algorithm's own module, with the algorithm's fields and its name
  (``algo``): :class:`~mnemax.train.ppo.PPOConfig`, :class:`~mnemax.train.dcpo.DCPOConfig`
  (:mod:`mnemax.train.algorithms` lists them).

The configurations are flat: an algorithm's config *is* a run config (a subclass, not a nested field),
so every flag stays at the top level (``--seed``, not ``--run.seed``), a run's ``config.json`` stays one
flat object, and ``PPOConfig(env=..., seed=...)`` stays one call.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any, ClassVar

import tyro

from mnemax import agents
from mnemax.envs.core.params import Declaration
from mnemax.train.presets import preset

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

# What `mnemax-train` trains without a subcommand; its run names carry no algorithm.
DEFAULT_ALGORITHM = "ppo"
# The agent whose runs are named by their memory module.
DEFAULT_AGENT = "actor_critic"
ADVANTAGE_NORMS = ("minibatch", "batch", "none")

_OPTION = "mnemax_option"


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """What a configuration field declares besides its type and default.

    Attributes:
        resumable: a resumed run may change it (it changes nothing that is computed: what is logged,
            when checkpoints are saved, where outputs go).
        values: floats and strings: the accepted values (the vocabulary of environment parameters,
            :class:`~mnemax.envs.core.params.Declaration`); every float is at least finite.
        minimum: integers: the least accepted value (no upper bound: step counts pass int32).
    """

    resumable: bool = False
    values: Declaration | None = None
    minimum: int | None = None


def option(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    choices: tuple[str, ...] = (),
    resumable: bool = False,
) -> Any:
    """A configuration field. A float accepts finite values within ``ge``/``gt``/``le``, a string one of
    ``choices`` (when given), an integer values ``>= ge``; ``resumable`` lets a resumed run change it."""
    values = minimum = None
    if isinstance(default, float):
        values = Declaration(float, ge=ge, gt=gt, le=le)
    elif isinstance(default, str) and choices:
        values = Declaration(str, choices=tuple(choices))
    elif isinstance(default, int) and not isinstance(default, bool) and ge is not None:
        minimum = int(ge)
    spec = OptionSpec(resumable, values, minimum)
    return dataclasses.field(default=default, default_factory=default_factory, metadata={_OPTION: spec})


def option_spec(field: dataclasses.Field) -> OptionSpec:
    """The declaration of a configuration field (a plain field declares nothing)."""
    return field.metadata.get(_OPTION, OptionSpec())


def check_options(config: Any) -> None:
    """Raise ``ValueError`` naming the first field whose value its declaration refuses."""
    for field in dataclasses.fields(config):
        spec, value = option_spec(field), getattr(config, field.name)
        if spec.values is not None and not spec.values.accepts(value):
            raise ValueError(f"{field.name} must be {spec.values.accepted()}, got {value!r}")
        if spec.minimum is not None and value < spec.minimum:
            raise ValueError(f"{field.name} must be >= {spec.minimum}, got {value}")


def float_options(config_class: type) -> dict[str, Declaration]:
    """The accepted values of every float field of ``config_class``, by name."""
    specs = {field.name: option_spec(field).values for field in dataclasses.fields(config_class)}
    return {name: values for name, values in specs.items() if values is not None and values.kind is float}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig:
    """How a run goes: seeds, devices, the run directory, logging, checkpoints, the video and the final
    evaluation."""

    seed: int = 0
    num_seeds: int = option(1, ge=1)
    """independent runs trained at once with vmap (seeds `seed .. seed + num_seeds - 1`)"""
    num_devices: int = 0
    """devices to shard the environment batch over (0: all visible devices of all processes)"""
    distributed: bool = option(False, resumable=True)
    """several hosts: call `jax.distributed.initialize()` first (it reads the cluster from the environment:
    SLURM, TPU pods, or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID)"""

    run_name: str = ""
    """name of the run directory under `run_dir` and of its videos; empty: env-memory-seed"""
    run_dir: str = option("runs", resumable=True)
    """where run directories are made (a run may be moved to another between stops)"""
    num_logs: int = option(50, ge=1)
    """how many times to log (and update the progress bar) over the run; up to twice as many when the budget
    holds few updates (each log interval is a whole number of updates)"""
    checkpoint_every: int = option(10, ge=1, resumable=True)
    """save a checkpoint every this many logs (and always at the end)"""
    checkpoint_minutes: float = option(10.0, ge=0.0, resumable=True)
    """also save one at the first log this many minutes after the last (0: by log count only); Ctrl-C and
    SIGTERM save one too"""
    checkpoint_rollout: bool = True
    """checkpoints keep the environments' states and the memory's carries, so that `--resume` goes on
    exactly where the run stopped; off, they keep the training state alone (parameters, optimiser, key,
    update count) and a resumed run starts every environment on a fresh episode: checkpoints a fraction of
    the size where the carries are large (attention memories over whole episodes, many copies)"""
    time_limit: float = option(0.0, ge=0.0, resumable=True)
    """seconds this process may train (0: no limit): at the last log after which one more log interval would
    end past it, the run saves a checkpoint and stops (exit code 124, as `timeout`'s); `--resume` continues.
    For jobs with a wall-clock limit: leave room for start-up before training and for the final evaluation"""
    resume: bool = option(False, resumable=True)
    """continue the run in `run_dir/run_name` from its last intact checkpoint"""
    overwrite: bool = option(False, resumable=True)
    """replace an earlier run in `run_dir/run_name` (a new run refuses to start over one otherwise)"""
    init_from: str = option("", resumable=True)
    """a run directory whose latest checkpoint's network parameters start this run (fine-tuning: the
    optimizer, environments and counters start fresh); its network must have the same structure and
    shapes, seeds included (its seed `i` starts this run's seed `i`). Ignored when resuming"""
    video: bool = option(True, resumable=True)
    """write a greedy-policy rollout video to `video_dir/<run_name>.mp4` at the end"""
    video_dir: str = option("videos", resumable=True)
    video_steps: int = option(200, ge=1, resumable=True)
    """frames in the video (whole episodes are shown until the budget is used)"""
    eval_episodes: int = option(256, ge=1, resumable=True)
    """greedy episodes evaluated at the end to report the final success rate"""
    progress: bool = option(True, resumable=True)
    """show progress: a bar on a terminal, one line per log otherwise"""
    debug: bool = option(False, resumable=True)
    """show the traceback of an error, not just its message"""


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(RunConfig):
    """A run, and what every algorithm trains: the task, the agent, the step budget, the rollout and the
    optimizer. Each algorithm subclasses it (in its own module) with its fields and its name, ``algo``."""

    algo: ClassVar[str]

    preset: str = ""
    """hyperparameters of a task family (`mnemax.train.presets`, e.g. `tmaze`, `diagnostics`); other flags
    override them"""
    env: str = "mnemax/TMaze-Passive-v0"
    """environment id (`mnemax-envs` lists them, `mnemax-envs ID` shows the parameters of one)"""
    env_params: dict[str, int | float | bool | str] = dataclasses.field(default_factory=dict)
    """overrides of the environment's parameters, e.g. `--env-params corridor_length 100`"""
    train_env_params: dict[str, int | float | bool | str] = dataclasses.field(default_factory=dict)
    """overrides on top of `env_params` while training only (a curriculum, e.g. active T-Maze's
    `oracle_start_prob`); the final greedy evaluation and the video play the task `env_params` define"""
    curriculum_updates: int = option(0, ge=0)
    """with `train_env_params`: the updates that play them, after which training plays the task itself
    (a two-stage curriculum); 0 plays them for the whole run"""
    agent: str = DEFAULT_AGENT
    """`actor_critic` (encoder -> memory -> heads) or `context_editor` (a transformer over the slots of a
    context-editing task, `mnemax/ContextEdit-*`; its memory is the context, so `memory` is ignored)"""
    agent_config: dict[str, int | float | bool | str] = dataclasses.field(default_factory=dict)
    """extra fields of the agent, e.g. `--agent-config num_layers 3 num_heads 4` (context editor)"""
    memory: str = "gru"
    """memory module (listed at the top of --help), or `none` for a memoryless agent"""
    memory_config: dict[str, int | float | bool | str] = dataclasses.field(default_factory=dict)
    """extra fields of the memory module, e.g. `--memory-config num_layers 2 memory_length 64`"""
    hidden_size: int = option(128, ge=1)
    """width of the encoder, the memory and the heads"""
    prev_action_reward: bool = False
    """append the previous action (one-hot) and reward to vector observations"""
    item_encoder: bool = False
    """encode the items a task lists in its vector observation (`observation_items`: the spots of Ballet
    and Object Permanence) with one layer shared by all of them, and the task's other parts
    (`observation_parts`: their instruction) and the rest each with a layer of its own"""

    total_steps: StepCount = option(1_000_000, ge=1)
    """environment steps to train for (per seed), e.g. `2e6`; rounded down to whole logging intervals (at
    least one update)"""
    num_envs: int = option(64, ge=1)
    """parallel environments (the global batch over all devices)"""
    num_steps: int = option(128, ge=1)
    """rollout length per update"""
    bptt_length: int = 0
    """truncated-BPTT window: sequences of this many steps with stored initial carries (0: whole rollout)"""
    reset_pool: int = option(0, ge=0)
    """draw the initial states of each environment's next episodes ahead, this many at a time (0: a fresh
    one at every step, kept where an episode ends); a speed-up where resets are costly (Mystery Path's
    path search), a slow-down where they are cheap and the state is large (a context-editing stream).
    Changes which random numbers start episodes, not what they are; with `curriculum_updates`, up to this
    many episodes per environment after the switch start from the first stage's task"""
    rollout_unroll: int = option(0, ge=0, resumable=True)
    """environment steps per iteration of the rollout loop (0: 1 on the CPU, 8 on accelerators); speed only"""
    update_epochs: int = option(4, ge=1)
    num_minibatches: int = option(4, ge=1)
    learning_rate: float = option(3e-4, gt=0.0, le=1.0)
    anneal_lr: bool = True
    clip_eps: float = option(0.2, gt=0.0, le=1.0)
    ent_coef: float = option(0.05, ge=0.0)
    """entropy bonus; memory tasks with one late decision (T-Maze) need more exploration than 0.01 gives"""
    max_grad_norm: float = option(0.5, gt=0.0)
    kickstart_coef: float = option(0.0, ge=0.0)
    """weight of a teacher's cross-entropy on the states the agent visits (kickstarting, Schmitt et al.
    2018): the task's scripted demonstration (an environment's `demonstration`, e.g. the context-editing
    oracle) is added to the loss as `-kickstart_coef * log pi(teacher's action)`, over the action
    components the teacher says matter; its weight falls linearly to 0 over `kickstart_updates`"""
    kickstart_updates: int = option(0, ge=0)
    """updates over which the teacher's weight falls from `kickstart_coef` to 0 (0: constant for the run)"""

    @property
    def name(self) -> str:
        if self.run_name:
            return self.run_name
        env = self.env.split("/")[-1]
        algo = "" if self.algo == DEFAULT_ALGORITHM else f"-{self.algo}"
        return f"{env}-{self.agent_name}{algo}-s{self.seed}"

    @property
    def agent_name(self) -> str:
        """The memory module of the default agent, or the other agent's name."""
        return self.memory if self.agent == DEFAULT_AGENT else self.agent

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def updates_per_log(self) -> int:
        # Whole updates and whole log intervals within `total_steps` (PureJaxRL's and CleanRL's floor), so a
        # run never trains past its budget; at least one update.
        return max(1, self._budget_updates // self.num_logs)

    @property
    def num_log_intervals(self) -> int:
        """``num_logs`` to twice as many (never fewer, unless the budget holds fewer updates)."""
        return max(1, self._budget_updates // self.updates_per_log)

    @property
    def _budget_updates(self) -> int:
        return max(1, self.total_steps // self.steps_per_update)

    @property
    def num_updates(self) -> int:
        return self.num_log_intervals * self.updates_per_log

    @property
    def sequence_length(self) -> int:
        return self.bptt_length or self.num_steps

    def agent_fields(self) -> dict[str, Any]:
        """The fields of the agent (``mnemax.agents.make``) besides the width and the memory."""
        return dict(self.agent_config)

    def validate(self, num_devices: int = 1) -> None:
        """Raise ``ValueError`` for values the trainer cannot run with (before anything compiles).
        Subclasses add the relations between their own fields."""
        check_options(self)
        if self.agent not in agents.names():  # the registry at the time of the call: it may have grown
            raise ValueError(f"agent must be one of {', '.join(agents.names())}, got {self.agent!r}")
        if self.bptt_length < 0 or self.num_steps % self.sequence_length:
            raise ValueError(f"bptt_length ({self.bptt_length}) must divide num_steps ({self.num_steps})")
        if self.curriculum_updates and not self.train_env_params:
            raise ValueError("curriculum_updates needs train_env_params: the task its first updates play")
        if self.kickstart_updates and not self.kickstart_coef:
            raise ValueError("kickstart_updates needs kickstart_coef: the teacher's weight to anneal")
        if self.num_envs % (self.num_minibatches * num_devices):
            raise ValueError(
                f"num_envs ({self.num_envs}) must be divisible by num_minibatches ({self.num_minibatches}) "
                f"x devices ({num_devices}) = {self.num_minibatches * num_devices}"
            )

    @classmethod
    def from_preset(cls, name: str, **overrides):
        """The preset's fields (:mod:`mnemax.train.presets`) with ``overrides`` on top."""
        fields = preset(name, overrides.get("memory", cls.memory))
        unknown = sorted(set(fields) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"preset {name!r} sets {', '.join(unknown)}, which {cls.algo} does not have")
        return cls(**{**fields, "preset": name, **overrides})

    def to_json(self) -> str:
        """The configuration as one JSON object, with the algorithm under ``algo``
        (:func:`mnemax.train.algorithms.config_from_json` reads it back)."""
        return json.dumps({"algo": self.algo, **dataclasses.asdict(self)}, indent=2, sort_keys=True)


def config_differences(saved: TrainConfig, current: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ in a way that makes a checkpoint of ``saved`` unusable for ``current``
    (``algo`` when the algorithms differ; resumable fields never count)."""
    diffs = {} if saved.algo == current.algo else {"algo": (saved.algo, current.algo)}
    shared = {field.name: field for field in dataclasses.fields(saved)}
    for field in dataclasses.fields(current):
        if field.name not in shared or option_spec(field).resumable:
            continue
        a, b = getattr(saved, field.name), getattr(current, field.name)
        if a != b:
            diffs[field.name] = (a, b)
    return diffs
