"""Data parallelism with ``jax.sharding``: one mesh axis over the environment batch.

Parameters and optimizer state are replicated; every per-environment array (environment states,
observations, memory carries) is split along its environment axis. The update is written for the
global batch, so XLA inserts the gradient all-reduce itself; the same code runs on one CPU, one GPU,
all GPUs of a host, or all hosts after ``jax.distributed.initialize``.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "data"


def make_mesh(num_devices: int = 0) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (0: all devices of all processes)."""
    devices = jax.devices()
    if num_devices < 0 or num_devices > len(devices):
        raise ValueError(f"num_devices must be in [0, {len(devices)}] (visible devices), got {num_devices}")
    return Mesh(np.asarray(devices[: num_devices or len(devices)]), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh, batch_axis: int) -> NamedSharding:
    """Arrays split along ``batch_axis`` over the mesh."""
    return NamedSharding(mesh, PartitionSpec(*([None] * batch_axis), AXIS))


def shardings_for(tree, mesh: Mesh, per_env_fields: tuple[str, ...], batch_axis: int):
    """A sharding for every leaf of a dataclass pytree: fields in ``per_env_fields`` are split along
    ``batch_axis``, everything else is replicated."""
    split, whole = batch_sharded(mesh, batch_axis), replicated(mesh)
    return tree.replace(
        **{
            name: jax.tree_util.tree_map(lambda _: split if name in per_env_fields else whole, getattr(tree, name))
            for name in tree.__dataclass_fields__
        }
    )
