#!/usr/bin/env bash
# Set up a development environment in .venv: torch first, then editjudge with every extra.
#   PYTHON       interpreter to build the venv with (default: python3; editjudge supports 3.10-3.12)
#   TORCH_SPEC   torch/torchvision requirement (default: the CPU-capable pair checked for this project)
#   EXTRAS       editjudge extras to install (default: all,dev)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
EXTRAS=${EXTRAS:-all,dev}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q $TORCH_SPEC
.venv/bin/python -m pip install -q -e ".[$EXTRAS]"
echo "editjudge is set up in .venv ($(.venv/bin/editjudge --version)); activate it: source .venv/bin/activate"
