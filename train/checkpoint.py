"""Checkpoints of the whole training state with orbax (sharded arrays restore onto their devices).

Saving is atomic: orbax writes a checkpoint into a temporary folder and renames it to its step number
once complete, so a process killed mid-write leaves the earlier checkpoints as they were and the
unfinished one is never listed. Restoring verifies: a checkpoint whose metadata files are not valid
JSON, that cannot be read back, or that holds non-finite numbers is reported in one line, moved aside to
``<run>/corrupt-checkpoints/<step>`` and the next older one is tried. One whose state has another structure,
other shapes or other dtypes than the run's (another version of mnemax or another configuration wrote it),
read from its metadata before any array, stops the restore with an error that names a differing leaf, and
stays where it is.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from mnemax.envs.tools.command_line import UserError

CORRUPT_DIR = "corrupt-checkpoints"


def saved_steps(directory: str | Path) -> list[int]:
    """The steps of the checkpoints under ``directory``, oldest first (orbax names a finished checkpoint's
    folder after its step), read without opening a manager, which would create the directory."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(path.name) for path in directory.iterdir() if path.name.isdigit())


class Checkpointer:
    """Keeps the last ``max_to_keep`` checkpoints of a run under ``directory``, indexed by log interval."""

    def __init__(self, directory: str | Path, max_to_keep: int = 2):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        # The handler named, so that a checkpoint's metadata (its leaves' names, shapes and dtypes) can be read
        # before it is restored.
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=ocp.StandardCheckpointHandler()
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state) -> None:
        self.manager.save(step, args=ocp.args.StandardSave(state))

    def restore(self, step: int, target):
        """Restore into the structure, dtypes and shardings of ``target`` (arrays or ShapeDtypeStructs)."""
        abstract = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)), target
        )
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def restore_latest(self, target, set_aside: bool = True) -> tuple[int, Any]:
        """``(step, state)`` of the newest checkpoint that restores into ``target`` with finite values.

        Each newer one that does not is reported in one line on stderr and, with ``set_aside`` (a run
        that goes on from here: a later save of the same step would collide with it), moved to
        ``<run>/corrupt-checkpoints/<step>``.

        Raises:
            UserError: when there is no checkpoint, or none is intact.
        """
        self.manager.wait_until_finished()
        steps = sorted(self.manager.all_steps(), reverse=True)
        for step in steps:
            try:
                _require_json_metadata(self.directory / str(step))
            except ValueError as error:
                self._report_corrupt(step, error, set_aside)
                continue
            difference = self._difference(step, target)
            if difference:  # intact, but of another version or configuration: not for this run, and not corrupt
                raise UserError(
                    f"checkpoint {self.directory / str(step)} holds a state of {difference}; it is left in place: "
                    "resume it with the version and configuration that wrote it, or start a new run"
                )
            try:
                state = self.restore(step, target)
                _require_finite(state)
                return step, state
            except Exception as error:  # noqa: BLE001  whatever keeps it from being read back makes it unusable
                self._report_corrupt(step, error, set_aside)
        raise UserError(f"no {'intact ' if steps else ''}checkpoint in {self.directory}")

    def _difference(self, step: int, target) -> str:
        """How the state saved at ``step`` differs from ``target`` in its leaves' names, shapes or dtypes
        (read from the checkpoint's metadata, not its arrays), or "" when it does not."""
        try:
            metadata = self.manager.item_metadata(step).tree
        except Exception:  # noqa: BLE001  unreadable metadata: the restore itself finds out what is wrong
            return ""
        saved = {_path(keys): leaf for keys, leaf in jax.tree_util.tree_flatten_with_path(metadata)[0]}
        wanted = {_path(keys): leaf for keys, leaf in jax.tree_util.tree_flatten_with_path(target)[0]}
        missing, unexpected = sorted(wanted.keys() - saved.keys()), sorted(saved.keys() - wanted.keys())
        if missing or unexpected:
            parts = [f"without {_some(missing)}"] if missing else []
            parts += [f"with {_some(unexpected)}"] if unexpected else []
            return (
                f"another structure than this run's ({' and '.join(parts)}: written by another version of mnemax "
                "or with another memory configuration)"
            )
        for path, leaf in wanted.items():
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):  # saved as its raw uint32 data
                continue
            here, there = _layout(leaf), _layout(saved[path])
            if here != there:
                return (
                    f"other shapes or dtypes than this run's ({'.'.join(path)} is {there} there, {here} here: "
                    "another configuration)"
                )
        return ""

    def _report_corrupt(self, step: int, error: Exception, set_aside: bool) -> None:
        path = self.directory / str(step)
        lines = str(error).strip().splitlines()
        reason = f"{type(error).__name__}: {lines[0] if lines else ''}"[:200]
        moved = ""
        if set_aside:
            destination = self.directory.parent / CORRUPT_DIR / str(step)
            if jax.process_index() == 0:
                destination.parent.mkdir(exist_ok=True)
                shutil.rmtree(destination, ignore_errors=True)
                shutil.move(path, destination)
            self.manager.reload()
            moved = f"; moved to {destination}"
        print(f"checkpoint {path} is corrupt ({reason}){moved}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


# orbax's metadata files, all JSON; checked first, so that a damaged one is named (orbax would log it
# and fail later with a bare JSONDecodeError)
_METADATA_FILES = ("_CHECKPOINT_METADATA", "_METADATA", "_sharding", "process_*")


def _require_json_metadata(path: Path) -> None:
    for pattern in _METADATA_FILES:
        for file in filter(Path.is_file, path.rglob(pattern)):
            try:
                json.loads(file.read_text())
            except (ValueError, UnicodeDecodeError) as error:
                raise ValueError(f"{file.relative_to(path)} is not valid JSON ({error})") from None


def _path(keys) -> tuple[str, ...]:
    """A leaf's key path as the keys of a checkpoint's metadata tree (``("train_state", "opt_state", "1", "0",
    "mu")``): attribute names, dict keys and sequence indices alike, kept apart (a key may hold a dot)."""
    return tuple(str(getattr(key, attr)) for key in keys for attr in ("key", "name", "idx") if hasattr(key, attr))


def _some(paths: list[tuple[str, ...]]) -> str:
    names = [".".join(path) for path in paths[:3]]
    return ", ".join(names) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def _layout(leaf) -> str:
    """The shape and dtype of an array, an abstract array or a checkpoint's metadata of one, as text."""
    return f"{tuple(leaf.shape)} {np.dtype(leaf.dtype)}"


def _require_finite(state) -> None:
    for leaf in jax.tree_util.tree_leaves(state):
        if jnp.issubdtype(leaf.dtype, jnp.inexact) and not bool(jnp.isfinite(leaf).all()):
            raise ValueError("non-finite values")
