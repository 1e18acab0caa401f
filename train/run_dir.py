"""A run directory belongs to one run: a lock keeps a second process out while a run lives, and a new
run does not start over the files of an earlier one unless asked to (``--resume`` or ``--overwrite``).

The lock is an ``flock`` on ``<run>/.lock``. The kernel drops it when the process ends however it ends
(``kill -9`` included), so a lock left behind by a dead process is free again; the file names the pid
and host of the run holding it, for the message a second run prints.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import sys
from pathlib import Path

from mnemax.envs.tools.command_line import UserError
from mnemax.train.checkpoint import saved_steps
from mnemax.train.logger import METRICS_FILE

LOCK_FILE = ".lock"
CHECKPOINT_DIR = "checkpoints"
# What a run writes besides its config: an earlier run's outputs, which a fresh run must not mix with.
RUN_OUTPUTS = (CHECKPOINT_DIR, METRICS_FILE, "tensorboard", "learning_curve.png")


class RunDirectory:
    """``path`` as the directory of one run; :meth:`lock` it first, :meth:`unlock` at the end (a ``with``
    block does both)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = None

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def has_checkpoint(self) -> bool:
        """Whether the run saved a checkpoint (one stopped while it compiled has none)."""
        return bool(saved_steps(self.checkpoints))

    def lock(self) -> None:
        """Take the run's lock, or raise :class:`UserError` naming the process that holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / LOCK_FILE, "a+")  # opened with O_CLOEXEC: subprocesses do not inherit it
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(
                f"{self.path} is in use by another run ({holder}); wait for it to end or pick another --run-name"
            ) from None
        except OSError as error:  # a file system without locks (some cluster mounts): run, but say so
            print(f"cannot lock {self.path} ({error}): a second run there would not be noticed", file=sys.stderr)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        """Release the lock (the file stays: removing it could let two later runs lock different files)."""
        if self._lock is not None:
            self._lock.truncate(0)
            self._lock.close()  # closing the file releases the lock
            self._lock = None

    def __enter__(self) -> RunDirectory:
        self.lock()
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()

    def earlier_outputs(self) -> list[str]:
        """The outputs of an earlier run that the directory holds (an empty checkpoint folder is none)."""
        present = []
        for name in RUN_OUTPUTS:
            path = self.path / name
            if path.is_file() or (path.is_dir() and any(path.iterdir())):
                present.append(name)
        return present

    def claim(self, resume: bool, overwrite: bool) -> None:
        """Make the directory ready for a fresh run (``resume`` False) or check it for a resumed one.

        A fresh run refuses a directory with an earlier run's outputs unless ``overwrite``, which removes
        them; ``resume`` and ``overwrite`` exclude each other.
        """
        if resume and overwrite:
            raise UserError("--resume continues the run in the directory and --overwrite replaces it: pick one")
        earlier = self.earlier_outputs()
        if resume or not earlier:
            return
        if not overwrite:
            raise UserError(
                f"{self.path} already holds a run ({', '.join(earlier)}): pass --resume to continue it "
                "or --overwrite to replace it"
            )
        for name in earlier:
            path = self.path / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
