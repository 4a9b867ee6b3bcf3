"""Multi-dimension data in: manifest `scores` / score_<dim> columns, several keys in a seed `_score.json`, labels per
dimension with their own median / MAD, a missing dimension kept unlabelled or rejected, and single-score data
prepared byte for byte as before."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from editjudge.cli import main
from editjudge.data.dimension_scores import DimensionScoreError, checked_scores, row_scores, sidecar_scores
from editjudge.data.prepare import PrepareConfig, prepare
from editjudge.data.sources import load_sources
from editjudge.synthetic import write_synthetic_edits


def _edits(folder: Path, sources: int = 4, candidates: int = 2) -> list[tuple[str, str]]:
    """Synthetic (source, edited) image paths of a seed-layout folder."""
    write_synthetic_edits(folder, n_sources=sources, candidates_per_source=candidates, size=32)
    records, _ = load_sources(folder)
    return [(r.source_path, r.edited_path) for r in records]


def _manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_row_scores_read_a_scores_object_and_score_columns() -> None:
    assert row_scores({"scores": {"a": 0.5, "b": "0.25"}, "score_c": "", "score_d": 1}) == {
        "a": 0.5, "b": 0.25, "c": None, "d": 1.0}
    assert row_scores({"scores": '{"a": 1}'}) == {"a": 1.0}  # a CSV cell holding the JSON object
    assert row_scores({"score": 0.9}) == {}  # one score is the pointwise judge's
    assert sidecar_scores({"score": 0.9, "prompt_following": 0.8}) == {"prompt_following": 0.8}
    assert sidecar_scores({"scores": {"x": 0.1}, "score": 1}) == {"x": 0.1}
    for row, reason in [({"scores": {"a": float("nan")}}, "non_finite_score"),
                        ({"scores": {"a": "high"}}, "non_numeric_score"),
                        ({"scores": {"a": [1]}}, "non_numeric_score"),
                        ({"scores": [1, 2]}, "malformed_scores"),
                        ({"scores": "{nope"}, "malformed_scores"),
                        ({"scores": {"a": 1}, "score_a": 2}, "ambiguous_scores"),
                        ({"scores": {f"d{i}": 1 for i in range(10_000)}}, "too_many_dimensions")]:
        with pytest.raises(DimensionScoreError) as exc:
            row_scores(row)
        assert exc.value.reason == reason


def test_a_row_is_checked_against_the_set() -> None:
    names = ("following", "preservation")
    assert checked_scores({"following": 1.0}, names, "keep") == {"following": 1.0, "preservation": None}
    for scores, missing, reason in [({"following": 1.0}, "reject", "missing_dimension"),
                                    ({"follow": 1.0}, "keep", "unknown_dimension"),
                                    ({}, "keep", "no_dimension_scores"),
                                    (None, "keep", "no_dimension_scores")]:
        with pytest.raises(DimensionScoreError) as exc:
            checked_scores(scores, names, missing)
        assert exc.value.reason == reason


def test_prepare_labels_each_dimension_with_its_own_median_and_mad(tmp_path: Path) -> None:
    pairs = _edits(tmp_path / "img")
    rows = []
    for i, (source, edited) in enumerate(pairs):
        rows.append({"source": source, "edited": edited, "instruction": "make it red", "group": f"g{i // 2}",
                     "scores": {"following": i / 10} if i != 3 else {"following": 0.3},
                     "score_preservation": None if i == 3 else 10 * i})
    manifest = _manifest(tmp_path / "m.jsonl", rows)
    out = tmp_path / "p"
    code = main(["prepare", str(manifest), "-o", str(out), "--dimensions", "follow_preserve", "--workers", "1",
                 "--dimension-median", "following=0.4", "--dimension-mad", "following=0.2", "--train-split", "1",
                 "--score-median", "35", "--score-mad", "10", "-q"])
    assert code == 0
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["settings"]["format"] == "dimensions:follow_preserve"
    dims = report["labels"]["dimensions"]["dimensions"]
    assert (dims["following"]["median"], dims["following"]["mad"]) == (0.4, 0.2)  # given per dimension
    assert (dims["preservation"]["median"], dims["preservation"]["mad"]) == (35, 10)  # --score-* for the rest
    assert dims["preservation"]["unlabelled"]["train"] == 1 and dims["following"]["unlabelled"]["train"] == 0
    table = pq.read_table(out / "train.parquet").to_pylist()
    assert {r["data_source"] for r in table} == {"editjudge_dimensions"}
    by_id = {r["extra_info"]["id"]: r for r in table}
    row3 = by_id["m.jsonl:4"]
    assert json.loads(row3["reward_model"]["ground_truth"]) == {"following": 2, "preservation": None}
    assert row3["extra_info"]["scores"] == {"following": 0.3, "preservation": None}
    assert row3["extra_info"]["label"] is None  # no overall without every dimension
    row1 = by_id["m.jsonl:2"]
    # following 0.1: (0.1 - 0.4) / 0.2 * 4.5 + 4.5 -> 0; preservation 10: (10 - 35) / 10 * 4.5 + 4.5 -> 0
    assert json.loads(row1["reward_model"]["ground_truth"]) == {"following": 0, "preservation": 0}
    assert "- following: " in row1["prompt"][1]["content"]  # the prompt lists the set's dimensions


def test_estimated_per_dimension_and_a_constant_dimension_is_named(tmp_path: Path) -> None:
    pairs = _edits(tmp_path / "img", sources=4, candidates=2)
    rows = [{"source": s, "edited": e, "instruction": "make it red", "group": f"g{i}",
             "scores": {"following": i / 8, "preservation": 0.5}} for i, (s, e) in enumerate(pairs)]
    manifest = _manifest(tmp_path / "m.jsonl", rows)
    config = PrepareConfig(inputs=(str(manifest),), out_dir=str(tmp_path / "p"), train_split=1.0, workers=1,
                           progress=False, format="dimensions:follow_preserve")
    with pytest.raises(ValueError, match="dimension 'preservation'.*median absolute deviation of 0.*"
                                         "--dimension-median preservation=M --dimension-mad preservation=D"):
        prepare(config)
    ok = prepare(PrepareConfig(**{**config.__dict__, "dimension_median": ("preservation=0.5",),
                                  "dimension_mad": ("preservation=0.1",), "out_dir": str(tmp_path / "q")}))
    dims = ok.report["labels"]["dimensions"]["dimensions"]
    assert dims["following"]["estimated_on_train"] and not dims["preservation"]["estimated_on_train"]


def test_missing_dimension_keep_or_reject_and_the_report_counts_both(tmp_path: Path) -> None:
    pairs = _edits(tmp_path / "img", sources=4, candidates=2)
    rows = [{"source": s, "edited": e, "instruction": "make it red", "group": f"g{i}",
             "scores": {"following": i / 8, **({"preservation": i / 4} if i % 2 else {})}}
            for i, (s, e) in enumerate(pairs)]
    rows.append({"source": pairs[0][0], "edited": pairs[1][1], "instruction": "other", "score": 0.9})  # single-score
    rows.append({"source": pairs[0][0], "edited": pairs[2][1], "instruction": "third", "scores": {"quality": 1}})
    manifest = _manifest(tmp_path / "m.jsonl", rows)
    flags = ["--dimensions", "follow_preserve", "--workers", "1", "--train-split", "1", "-q",
             "--score-median", "0.5", "--score-mad", "0.25"]
    assert main(["prepare", str(manifest), "-o", str(tmp_path / "keep"), *flags]) == 0
    assert main(["prepare", str(manifest), "-o", str(tmp_path / "rej"), *flags, "--missing-dimension", "reject"]) == 0
    keep = json.loads((tmp_path / "keep" / "prepare_report.json").read_text())
    rej = json.loads((tmp_path / "rej" / "prepare_report.json").read_text())
    assert keep["counts"]["kept"] == 8 and keep["rejects_by_reason"] == {"no_dimension_scores": 1,
                                                                           "unknown_dimension": 1}
    assert keep["labels"]["dimensions"]["dimensions"]["preservation"]["unlabelled"]["train"] == 4
    assert rej["counts"]["kept"] == 4 and rej["rejects_by_reason"]["missing_dimension"] == 4
    reasons = [json.loads(line)["reason"] for line in (tmp_path / "rej" / "rejects.jsonl").read_text().splitlines()]
    assert reasons.count("missing_dimension") == 4
    assert "dimension(s) ['preservation']" in (tmp_path / "rej" / "rejects.jsonl").read_text()


def test_a_seed_folder_with_several_keys_per_score_file(tmp_path: Path) -> None:
    write_synthetic_edits(tmp_path / "edits", n_sources=4, candidates_per_source=4, size=32, task="red_square_dims")
    out = tmp_path / "p"
    assert main(["prepare", str(tmp_path / "edits"), "-o", str(out), "--dimensions", "follow_preserve",
                 "--score-median", "0.9", "--score-mad", "0.1", "--workers", "1", "-q"]) == 0
    rows = pq.read_table(out / "train.parquet").to_pylist() + pq.read_table(out / "test.parquet").to_pylist()
    pairs = {tuple(json.loads(r["reward_model"]["ground_truth"]).values()) for r in rows}
    assert pairs == {(1, 7), (7, 7), (7, 1), (1, 1)}  # the four kinds: unchanged, square red, all red, background red
    # ... and the same folder prepared for a one-score judge reads only 'score' (their mean): 4, 7, 4, 1
    assert main(["prepare", str(tmp_path / "edits"), "-o", str(tmp_path / "one"), "--score-median", "0.9",
                 "--score-mad", "0.1", "--workers", "1", "-q"]) == 0
    one = pq.read_table(tmp_path / "one" / "train.parquet").to_pylist()
    assert {r["reward_model"]["ground_truth"] for r in one} == {"1", "4", "7"}
    assert {r["data_source"] for r in one} == {"tts_edit_score"} and "scores" not in one[0]["extra_info"]


def test_single_score_data_is_prepared_byte_for_byte_as_the_pointwise_path(tmp_path: Path) -> None:
    """`--dimensions seed` IS the pointwise format, and sidecars with extra keys do not change one-score rows."""
    write_synthetic_edits(tmp_path / "edits", n_sources=4, candidates_per_source=2, size=32)
    common = ["--workers", "1", "-q", "--score-median", "0.9", "--score-mad", "0.1"]
    assert main(["prepare", str(tmp_path / "edits"), "-o", str(tmp_path / "a"), *common]) == 0
    assert main(["prepare", str(tmp_path / "edits"), "-o", str(tmp_path / "b"), "--dimensions", "seed", *common]) == 0
    for split in ("train", "test"):
        assert (tmp_path / "a" / f"{split}.parquet").read_bytes() == (tmp_path / "b" / f"{split}.parquet").read_bytes()
    # a sidecar key beside 'score' is ignored by the one-score path: rows are the same bytes
    for sidecar in (tmp_path / "edits").rglob("*_score.json"):
        data = json.loads(sidecar.read_text())
        sidecar.write_text(json.dumps({**data, "annotator_confidence": "high"}))
    assert main(["prepare", str(tmp_path / "edits"), "-o", str(tmp_path / "c"), *common]) == 0
    for split in ("train", "test"):
        assert (tmp_path / "a" / f"{split}.parquet").read_bytes() == (tmp_path / "c" / f"{split}.parquet").read_bytes()


def test_prepare_help_says_how_to_bring_dimensions() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "editjudge.cli", "prepare", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    for needle in ("--dimensions SET", "editscore", "follow_preserve", "score_<name>", "--missing-dimension",
                   "Default: keep", "--dimension-median NAME=VALUE"):
        assert needle in text, needle
