"""The vLLM lane (``-m vllm``, run in ``.venv-vllm`` by ``.ci/run``): shared, session-scoped inputs.

Every test module here is marked ``vllm`` (tests/conftest.py leaves such tests out of any run whose ``-m`` does not
name the marker)
and needs vLLM: a missing vLLM is an error, never a skip. vLLM's CPU engine settings for a small machine: the
engine in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``: half the start-up time and memory) and a 1 GiB KV
cache. Each test module starts at most one engine (36-98 s on 2 busy cores), module-scoped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

from _lane import MAX_NEW_TOKENS, build_demo_like_adapter, edits  # noqa: E402

EVAL_EDITS = 24  # none of them seen in the adapter's training


@pytest.fixture(scope="session", autouse=True)
def vllm_installed() -> Any:
    """Fail, loudly, when the lane runs without vLLM (``bash scripts/setup_vllm.sh`` builds it)."""
    import vllm  # noqa: F401 - an ImportError here is the lane's error

    return vllm


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's tiny Qwen2.5-VL (hidden 256: vLLM's CPU attention has no kernel for the tests' head size 16)."""
    from editjudge import demo
    from editjudge.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.getbasetemp() / "vllm-demo-tiny", hidden_size=demo.HIDDEN_SIZE,
                            qk_scale=demo.QK_SCALE)


@pytest.fixture(scope="session")
def demo_adapter(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA shaped like the demo's (tiny_cpu: LM + vision merger) whose answers depend on the merger."""
    return build_demo_like_adapter(demo_model, tmp_path_factory.getbasetemp() / "vllm-demo-adapter")


@pytest.fixture(scope="session")
def eval_edits() -> list[dict[str, Any]]:
    return edits(EVAL_EDITS)


@pytest.fixture(scope="session")
def reference(demo_model: Path, demo_adapter: Path, eval_edits: list[dict[str, Any]]) -> list[Any]:
    """The transformers backend's greedy results on the eval edits (float32, the CPU default)."""
    from editjudge.judge import EditItem, Judge

    judge = Judge(demo_model, adapter=demo_adapter, backend="transformers", device="cpu", batch_size=8,
                  max_new_tokens=MAX_NEW_TOKENS)
    return judge.score_many([EditItem(e["source"], e["edited"], e["instruction"]) for e in eval_edits])
