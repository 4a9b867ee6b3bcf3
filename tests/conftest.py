"""Shared fixtures: isolated caches, and the tiny offline Qwen2.5-VL built once per session."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
import signal
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
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep Ray, HF datasets and W&B out of the user's home; never touch a model hub."""
    root = tmp_path_factory.mktemp("caches")
    for var, sub in (("HF_HOME", "hf"), ("WANDB_DIR", "wandb"), ("MPLCONFIGDIR", "mpl")):
        os.environ.setdefault(var, str(root / sub))
    # Ray's socket paths (<RAY_TMPDIR>/ray/session_<date>_<pid>/sockets/plasma_store) must stay under 108 bytes:
    # pytest's basetemp (/tmp/pytest-of-<user>/pytest-<N>/caches0/) leaves too little room, so Ray gets a short folder
    ray_tmp = None
    if "RAY_TMPDIR" not in os.environ:
        ray_tmp = tempfile.mkdtemp(prefix="ej-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
        os.environ["RAY_TMPDIR"] = ray_tmp
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    yield
    if ray_tmp is not None:
        shutil.rmtree(ray_tmp, ignore_errors=True)


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
