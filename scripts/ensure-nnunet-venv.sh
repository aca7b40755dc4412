#!/usr/bin/env bash
# The nnU-Net export's slow test trains the exported trainer inside nnU-Net v2 itself. nnunetv2 needs
# dynamic-network-architectures -> timm -> torchvision, and PyPI's torchvision does not import beside
# the project's torch 2.13.0 CPU build, so nnU-Net gets a virtual environment of its own with a
# torch/torchvision pair that imports together (attention-nas itself never needs torchvision).
# The environment is cached in the user's cache folder, outside any clone (6 GB: every clone, CI's
# fresh one included, reuses it), one folder per set of pins, built under a lock; the project's code
# reaches it through PYTHONPATH, so only its third-party imports are installed here.
# Prints the environment's folder on stdout. Usage: VENV="$(bash scripts/ensure-nnunet-venv.sh)"
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
NNUNET_SPEC="nnunetv2==2.8.*"
case "$(uname -m)" in
    x86_64) TORCH_PAIR="torch==2.14.1 torchvision==0.29.1" ;;  # on disk here for Python 3.11 (a CUDA build)
    *) TORCH_PAIR="torch==2.9.1 torchvision==0.24.1" ;;  # aarch64: a CPU build
esac
# What search_spaces imports besides torch, at the main environment's versions when it has them.
MONAI_SPEC="monai==$(.venv/bin/python -c 'from importlib.metadata import version; print(version("monai"))' 2>/dev/null || echo 1.6.1)"
PINS="$TORCH_PAIR $NNUNET_SPEC $MONAI_SPEC einops"
if [ -n "${NAS_NNUNET_VENV:-}" ]; then
    VENV="$NAS_NNUNET_VENV"
else
    # One folder per set of pins: clones that pin differently never rebuild each other's.
    CACHE="${XDG_CACHE_HOME:-${HOME:?ensure-nnunet-venv: set HOME, XDG_CACHE_HOME or NAS_NNUNET_VENV}/.cache}"
    VENV="$CACHE/attention-nas/nnunet-venv-$(printf '%s' "$PINS" | sha256sum | cut -c1-12)"
fi
STAMP="$VENV/.nas-pins"  # written last: a folder without it is a build that did not finish
ready() { [ -x "$VENV/bin/nnUNetv2_train" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$PINS" ]; }
if ready; then
    echo "$VENV"
    exit 0
fi
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9  # another clone or CI run building the same environment: wait for it, then use it
if ready; then
    echo "$VENV"
    exit 0
fi
echo "ensure-nnunet-venv: creating $VENV ($PINS); several GB, a few minutes the first time" >&2
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
# torch first and pinned: nnunetv2's unpinned torch would otherwise resolve to the newest CUDA build.
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install --quiet $TORCH_PAIR >&2
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install --quiet $TORCH_PAIR "$NNUNET_SPEC" "$MONAI_SPEC" einops >&2
"$VENV/bin/python" -c "import torch, torchvision, nnunetv2, monai" >&2
echo "$PINS" >"$STAMP"
echo "$VENV"
