#!/usr/bin/env bash
# Download the wheels listed in benchmarks/gpu_wheels.txt into .whl/ (git-ignored) for a Python 3.12
# x86-64 Linux machine without internet. There, install them with
#
#     python3 -m pip install --no-index --no-deps --find-links .whl -r benchmarks/gpu_wheels.txt
#     python3 -m pip install --no-deps --no-build-isolation -e .
#
# Wheels only (--only-binary): nothing is built on the target machine.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any \
    -d .whl -r benchmarks/gpu_wheels.txt
du -sh .whl
