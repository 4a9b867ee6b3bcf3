"""docs/training.md's cold start, step 4 as written: `score` on the prepared train parquet, then
`distill --select-hard` on its predictions — every row matched by id (no manifest prepare never writes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _judge_models import build_answering_model
from editjudge.cli import main
from editjudge.synthetic import write_synthetic_edits


@pytest.mark.slow  # judges 8 rows twice with the tiny model
def test_select_hard_reads_score_on_the_train_parquet(tiny_model_dir: Path, tmp_path: Path) -> None:
    edits = write_synthetic_edits(tmp_path / "edits", n_sources=4, candidates_per_source=2, size=48).out_dir
    assert main(["prepare", str(edits), "-o", str(tmp_path / "data"), "--train-split", "1.0", "--workers", "1"]) == 0
    model = build_answering_model(tiny_model_dir, tmp_path / "answering")
    data = tmp_path / "data"
    assert main(["score", "--manifest", str(data / "train.parquet"), "--model", str(model), "--prepare-report",
                 str(data / "prepare_report.json"), "--samples", "2", "--max-new-tokens", "12", "--device", "cpu",
                 "--out", str(tmp_path / "preds_train.jsonl")]) == 0
    assert main(["distill", "--data", str(data / "train.parquet"), "--select-hard", str(tmp_path / "preds_train.jsonl"),
                 "--min-wrong", "1", "--out", str(tmp_path / "hard")]) == 0
    report = json.loads((tmp_path / "hard" / "hard_report.json").read_text())
    assert report["rows_without_prediction"] == 0 and not report["problems"]
