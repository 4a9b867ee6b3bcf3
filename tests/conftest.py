"""Shared fixtures: isolated caches, and the tiny offline Qwen2.5-VL built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One OpenMP thread: the tiny model's ops are too small to gain from more, and forking worker processes (prepare,
# datasets) after an OpenMP pool has started can hang. Set before any test module imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``vllm`` need vLLM's own environment (tests/lane_vllm, ``.ci/run``'s vLLM lane): they run only when
    ``-m`` names the marker (``-m vllm``); every other run deselects them, whatever else its ``-m`` says."""
    if "vllm" in (config.getoption("markexpr") or ""):
        return
    kept = [item for item in items if item.get_closest_marker("vllm") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("vllm") is not None])
        items[:] = kept


@pytest.fixture(scope="session", autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep Ray, HF datasets and W&B out of the user's home; never touch a model hub."""
    root = tmp_path_factory.mktemp("caches")
    for var, sub in (("HF_HOME", "hf"), ("RAY_TMPDIR", "ray"), ("WANDB_DIR", "wandb"), ("MPLCONFIGDIR", "mpl")):
        os.environ.setdefault(var, str(root / sub))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2.5-VL checkpoint (real processor, real model class), built offline."""
    pytest.importorskip("transformers")
    from editjudge.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen2_5-vl")
