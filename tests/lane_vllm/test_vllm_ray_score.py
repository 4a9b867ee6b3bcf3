"""``editjudge score --ray --backend vllm``: a Ray Data actor pool whose actors each hold a vLLM engine (one here:
2 cores), the CLI in a subprocess; its predictions equal the transformers backend's (float32 engine)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from _lane import MAX_NEW_TOKENS

pytestmark = pytest.mark.vllm


def test_score_ray_with_vllm_actors_equals_transformers(demo_model: Path, demo_adapter: Path, tmp_path: Path,
                                                       eval_edits: list[dict[str, Any]], reference: list[Any]) -> None:
    rows = []
    for e in eval_edits:
        (tmp_path / f"{e['id']}_s.png").write_bytes(e["source"])
        (tmp_path / f"{e['id']}_e.png").write_bytes(e["edited"])
        rows.append({"id": e["id"], "source": str(tmp_path / f"{e['id']}_s.png"),
                     "edited": str(tmp_path / f"{e['id']}_e.png"), "instruction": e["instruction"]})
    manifest = tmp_path / "edits.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "preds.jsonl"
    ray_tmp = tempfile.mkdtemp(prefix="ejray-")  # short: Ray's socket paths must fit AF_UNIX's 107 bytes
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    done = subprocess.run(
        [sys.executable, "-m", "editjudge.cli", "score", "--ray", "--backend", "vllm", "--actors", "1",
         "--model", str(demo_model), "--adapter", str(demo_adapter), "--manifest", str(manifest), "--out", str(out),
         "--max-new-tokens", str(MAX_NEW_TOKENS), "--batch-size", "8", "--engine-arg", "dtype=float32",
         "--engine-arg", "max_model_len=2048"],
        capture_output=True, text=True, timeout=900, env=env)
    shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-4000:]
    records = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    for e, want in zip(eval_edits, reference):
        got = records[e["id"]]
        assert got["error"] is None and got["pred"] == want.score
        assert abs(got["expected_score"] - want.expected_score) <= 5e-4  # see test_vllm_backend.py
