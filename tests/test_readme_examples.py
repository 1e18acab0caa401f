"""The "Extending mnemax" section of the README, run as written: every new file it shows is loaded as the
module its path names, every registry edit (a diff) is applied to that registry file as it is now, and
the four new components are then used by name, and trained together from the command line it gives."""

from __future__ import annotations

import dataclasses
import re
import shlex
import sys
import types
from pathlib import Path

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnemax import agents, envs, memory_modules
from mnemax.envs.core import registration
from mnemax.train import algorithms, train
from mnemax.train.cli import parse_train_args

ROOT = Path(__file__).resolve().parents[1]
# The table each registry file's diff extends (the task list registers by importing).
REGISTRIES = {
    "memory_modules/registry.py": (memory_modules.registry, "MODULES"),
    "envs/tasks/__init__.py": (None, None),
    "agents/registry.py": (agents.registry, "AGENTS"),
    "train/algorithms.py": (algorithms, "ALGORITHMS"),
}


def readme_blocks() -> list[tuple[str | None, str, str]]:
    """``(file, language, code)`` of each code block of the section; ``file`` is the last ``.py`` path
    named in the prose before the block (None for the command)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Extending mnemax") :]
    section = section[: section.index("\n## ", 1)]
    blocks, start = [], 0
    for block in re.finditer(r"```(\w+)\n(.*?)```", section, re.S):
        paths = re.findall(r"`([\w/]+\.py)`", section[start : block.start()])
        blocks.append((paths[-1] if paths else None, block.group(1), block.group(2)))
        start = block.end()
    return blocks


def patched(source: str, diff: str) -> str:
    """``source`` with the ``+``/``-`` lines of ``diff`` applied; context lines (a leading space) must be
    found in order, and ``@@`` skips ahead to the next one."""
    lines, cursor = source.splitlines(), 0
    for line in diff.splitlines():
        if line.startswith("@@"):
            continue
        if line.startswith("+"):
            lines.insert(cursor, line[1:])
            cursor += 1
            continue
        found = lines.index(line[1:], cursor)  # ValueError: the README no longer matches the file
        if line.startswith("-"):
            del lines[found]
            cursor = found
        else:
            cursor = found + 1
    return "\n".join(lines) + "\n"


def module_name(path: str) -> str:
    return "mnemax." + path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


@pytest.fixture
def extended(monkeypatch):
    """The README's new modules loaded and its registry edits in force (undone afterwards)."""
    monkeypatch.setattr(registration, "_SPECS", dict(registration._SPECS))  # the new id goes away again
    new_files = []
    try:
        for path, language, code in readme_blocks():
            if language == "python":
                assert not (ROOT / path).exists(), f"{path} is an example of a new file"
                module = types.ModuleType(module_name(path))
                module.__file__ = str(ROOT / path)
                monkeypatch.setitem(sys.modules, module.__name__, module)
                exec(compile(code, module.__file__, "exec"), module.__dict__)
                new_files.append(path)
            elif language == "diff":
                registry, table = REGISTRIES[path]
                namespace = {"__name__": f"{module_name(path)}_extended"}
                exec(compile(patched((ROOT / path).read_text(), code), path, "exec"), namespace)
                if registry is not None:
                    monkeypatch.setattr(registry, table, namespace[table])
        yield new_files
    finally:
        gymnasium.registry.pop("mnemax/BitRecall-v0", None)


def test_each_example_is_one_new_file_and_lines_in_one_other(extended):
    blocks = readme_blocks()
    new_files = ["memory_modules/ema.py", "envs/tasks/bit_recall.py", "agents/linear_probe.py", "train/reinforce.py"]
    assert extended == new_files
    edited = [path for path, language, _ in blocks if language == "diff"]
    assert edited == list(REGISTRIES)  # each example: its new file, and lines in one registry file


def test_the_new_memory_module_keeps_the_interface(extended):
    module = memory_modules.make("ema", features=8)
    inputs = jax.random.normal(jax.random.key(0), (6, 3, 5))
    resets = jnp.zeros((6, 3), bool).at[3, 1].set(True)
    params = module.init(jax.random.key(1), module.initialize_carry(3), inputs, resets)
    carry, whole = module.apply(params, module.initialize_carry(3), inputs, resets)
    steps, step_carry = [], module.initialize_carry(3)
    for t in range(6):  # one step at a time gives the outputs of one call
        step_carry, out = module.apply(params, step_carry, inputs[t : t + 1], resets[t : t + 1])
        steps.append(out[0])
    np.testing.assert_allclose(np.stack(steps), whole, atol=1e-6)
    np.testing.assert_allclose(step_carry, carry, atol=1e-6)


def test_the_new_task_needs_its_memory(extended):
    env, params = envs.make("mnemax/BitRecall-v0", delay=3)
    obs, state = env.reset(jax.random.key(0), params)
    remembered = int(obs[0])  # the bit, as shown at the first step
    for t in range(3):
        obs, state, reward, terminated, _, info = env.step(jax.random.key(t), state, 0, params)
        assert not bool(terminated) and not obs[:2].any()  # the bit is gone
    obs, state, reward, terminated, _, info = env.step(jax.random.key(9), state, remembered, params)
    assert bool(terminated) and bool(info["success"]) and float(reward) == 1.0
    assert gymnasium.make("mnemax/BitRecall-v0").reset(seed=0)[0].shape == (3,)


def test_the_new_agent_algorithm_memory_and_task_train_together_from_the_command_line(extended, tmp_path):
    (command,) = [code for path, language, code in readme_blocks() if language == "bash"]
    config = parse_train_args(shlex.split(command)[1:])
    assert (config.algo, config.agent, config.memory) == ("reinforce", "linear_probe", "ema")
    tiny = dict(num_envs=8, num_steps=16, num_minibatches=2, total_steps=8 * 16 * 2, num_logs=2, hidden_size=16)
    result = train(dataclasses.replace(
        config, **tiny, eval_episodes=16, progress=False, video=False, run_dir=str(tmp_path / "runs")
    ))  # fmt: skip
    assert type(result.config).__name__ == "ReinforceConfig" and np.isfinite(result.episode_return).all()
    assert result.run_dir.name == "BitRecall-v0-linear_probe-reinforce-s0"
    assert algorithms.config_from_json((result.run_dir / "config.json").read_text()) == result.config
