"""The verbs with a dimension judge, end to end on the tiny model: score (a prepared parquet and a manifest with
scores, jsonl and parquet) -> eval (one per-dimension table), eval --data, best-of-n --rank-by, and the usage errors
that are caught before a model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from editjudge.cli import main
from editjudge.synthetic import write_synthetic_edits

pytest.importorskip("transformers")
FORMAT = "dimensions:follow_preserve"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("dims")
    write_synthetic_edits(folder / "edits", n_sources=3, candidates_per_source=4, size=48, task="red_square_dims")
    assert main(["prepare", str(folder / "edits"), "-o", str(folder / "data"), "--dimensions", "follow_preserve",
                 "--dimension-median", "following=0.9", "--dimension-mad", "following=0.1",
                 "--score-median", "0.9", "--score-mad", "0.1", "--train-split", "0.67", "--workers", "1", "-q",
                 "--processor", str(tiny_model_dir), "--template", "demo"]) == 0
    return folder


def _judge(tiny_model_dir: Path, data: Path) -> list[str]:
    return ["--model", str(tiny_model_dir), "--device", "cpu", "--max-new-tokens", "6", "--prepare-report",
            str(data / "data" / "prepare_report.json")]


def test_score_eval_on_a_dimension_parquet(data: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    test = data / "data" / "test.parquet"
    assert main(["score", "--manifest", str(test), "--out", str(tmp_path / "p.jsonl"), *_judge(tiny_model_dir, data)]) == 0
    assert main(["score", "--manifest", str(test), "--out", str(tmp_path / "p.parquet"),
                 *_judge(tiny_model_dir, data)]) == 0
    lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert lines and all(x["format"] == FORMAT and set(x["dimensions"]) == {"following", "preservation"}
                         for x in lines)
    labels = {(x["dimensions"]["following"]["label"], x["dimensions"]["preservation"]["label"]) for x in lines}
    assert labels <= {(1, 7), (7, 7), (7, 1), (1, 1)} and len(labels) == 4  # the rows' own ground truth
    assert pq.read_table(tmp_path / "p.parquet").to_pylist() == lines  # the same records, typed
    assert main(["eval", "--predictions", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "ev"),
                 "--bootstrap", "0"]) == 0
    page = (tmp_path / "ev" / "report.md").read_text()
    assert "## Per dimension" in page and "| metric | overall | following | preservation |" in page
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())["judges"]["p"]
    assert metrics["dimensions"]["following"]["n_labelled"] == len(lines)
    # eval --data judges the parquet itself; a one-score judge on it is refused before anything is judged
    assert main(["eval", "--data", str(test), "--out", str(tmp_path / "ev2"), "--bootstrap", "0",
                 *_judge(tiny_model_dir, data)]) == 0
    assert "dimensions" in json.loads((tmp_path / "ev2" / "metrics.json").read_text())["judges"][
        next(iter(json.loads((tmp_path / "ev2" / "metrics.json").read_text())["judges"]))]
    assert main(["eval", "--data", str(test), "--out", str(tmp_path / "ev3"), "--model", str(tiny_model_dir),
                 "--device", "cpu", "--max-new-tokens", "6"]) == 2


def test_score_a_manifest_with_scores_labels_each_dimension(data: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    from editjudge.data.sources import EditRecord, read_sources

    records = [r for r in read_sources(data / "edits", dimensions=True) if isinstance(r, EditRecord)]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"source": r.source_path, "edited": r.edited_path,
                                            "instruction": r.instruction, "scores": r.scores}) + "\n"
                                for r in records[:4]))
    assert main(["score", "--manifest", str(manifest), "--out", str(tmp_path / "p.csv"),
                 *_judge(tiny_model_dir, data)]) == 0
    assert main(["score", "--manifest", str(manifest), "--out", str(tmp_path / "p.jsonl"),
                 *_judge(tiny_model_dir, data)]) == 0
    lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    for line, record in zip(lines, records):
        want = {n: 7 if v > 0.9 else 1 for n, v in record.scores.items()}  # the report's per-dimension median/MAD
        assert {n: d["label"] for n, d in line["dimensions"].items()} == want
    assert "dimensions" in (tmp_path / "p.csv").read_text().splitlines()[0]


def test_best_of_n_rank_by_and_its_usage_errors(data: Path, tiny_model_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert main(["best-of-n", "--folder", str(data / "edits"), "--out", str(out), "--rank-by", "preservation",
                 *_judge(tiny_model_dir, data)]) in (0, 1)  # a random model may answer nothing parsable
    rankings = json.loads(out.read_text())
    assert rankings and all(r["rank_by"] == "preservation" for r in rankings)
    assert all("dimensions" in c for r in rankings for c in r["candidates"])
    assert main(["best-of-n", "--folder", str(data / "edits"), "--rank-by", "quality",
                 *_judge(tiny_model_dir, data)]) == 2
    assert "cannot rank by 'quality'" in capsys.readouterr().err
    assert main(["best-of-n", "--folder", str(data / "edits"), "--rank-by", "following", "--model",
                 str(tiny_model_dir)]) == 2  # a one-score judge has no dimensions
