"""Data-parallel training on several devices equals training on one (CPU devices forced by XLA_FLAGS)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnemax.train import sharding


def test_four_devices_match_one_and_resume(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    script = Path(__file__).with_name("sharded_training.py")
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "sharded training matches" in out.stdout


def test_mesh_rejects_more_devices_than_visible():
    with pytest.raises(ValueError, match="num_devices"):
        sharding.make_mesh(10_000)
