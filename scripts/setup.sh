#!/usr/bin/env bash
# Create .venv and install attention-nas with its test tools.
# torch is installed first, pinned, so that pip never resolves it on its own (an unpinned torch
# pulls several GB of CUDA wheels on a CPU machine). Set NAS_TORCH_SPEC to choose another build,
# e.g. NAS_TORCH_SPEC="torch" on a GPU machine that should get pip's default CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${NAS_TORCH_SPEC:-torch==2.13.0}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "$TORCH_SPEC"
.venv/bin/python -m pip install --quiet -e '.[dev]'
touch .venv/.installed
echo "environment ready: .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
