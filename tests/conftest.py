"""Shared fixtures: isolated caches, and the tiny offline Qwen2.5-VL built once per session."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

# One OpenMP thread: the tiny model's ops are too small to gain from more, and forking worker processes (prepare,
# datasets) after an OpenMP pool has started can hang. Set before any test module imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")


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


@pytest.fixture
def time_limit(request: pytest.FixtureRequest):
    """Fail (instead of hanging CI) when a test runs longer than its module's ``CASE_SECONDS`` (default 20); SIGALRM
    also breaks a blocking open. Catches hangs only: never a measure of speed."""
    seconds = int(getattr(request.module, "CASE_SECONDS", 20))

    def expire(signum, frame):  # noqa: ARG001
        raise TimeoutError(f"the case ran longer than {seconds} s (a hang)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
