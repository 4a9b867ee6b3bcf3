"""``editjudge bench`` end to end: predictions worked by hand, usage errors, and the tiny model with its cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from editjudge.cli import main
from test_bench_suites import write_editscore, write_tiger

# Scores per (instruction, candidate) for the TIGER fixture (see write_tiger).
PREDS = {("make it blue", "c1"): 7, ("make it blue", "c2"): 3, ("make it blue", "c3"): 5, ("make it blue", "c4"): 4,
         ("make it red", "c3"): 5, ("make it red", "c4"): 5,
         ("add a hat", "c1"): 6, ("add a hat", "c2"): 8, ("add a hat", "c3"): 2, ("add a hat", "c4"): 4}


def _predictions(root: Path) -> Path:
    src = {"make it blue": "src", "make it red": "src2", "add a hat": "src2"}
    lines = [{"id": f"{i}", "source": str(root / "images" / f"{src[ins]}.png"), "edited": str(root / "images" / f"{c}.png"),
              "instruction": ins, "pred": p, "expected_score": None, "error": None}
             for i, ((ins, c), p) in enumerate(PREDS.items())]
    path = root / "preds.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _bench(*args: str) -> int:
    return main(["bench", *args])


def test_tiger_with_predictions_worked_by_hand(tmp_path: Path) -> None:
    root = write_tiger(tmp_path / "suite", malformed=True)
    out = tmp_path / "out"
    assert _bench("tiger", "--root", str(root), "--predictions", str(_predictions(root)), "--out", str(out),
                  "--bootstrap", "50") == 0
    report = json.loads((out / "bench.json").read_text())
    assert report["scoring"] == {"distinct_edits": 10, "comparisons": 11, "comparisons_per_edit": 1.1,
                                 "judged_now": 0, "from_cache": 0}
    assert report["items"]["n_read"] == 4 and report["items"]["n_failed"] == 4
    assert report["items"]["failure_reasons"] == {"malformed_item": 2, "missing_image": 1, "unknown_ranking": 1}
    n = report["results"]["score"]["numbers"]
    # 2-pair: A>B right, the human tie has |Δ| = 0 <= ε = 0, the failed item is wrong: 2/3.
    assert n["ranking/2pair"] == pytest.approx(2 / 3) and n["pairwise/2pair"] == pytest.approx(2 / 3)
    # 3-pair: human C>A>B, judge A(7) > B(5) > C(4): wrong order; 1 of 3 pairs right; two failed items.
    assert n["ranking/3pair"] == 0.0 and n["pairwise/3pair"] == pytest.approx(1 / 9)
    # 4-pair: B(8) > A(6) > D(4) > C(2) as humans say; the failed item counts 6 wrong pairs.
    assert n["ranking/4pair"] == pytest.approx(1 / 2) and n["pairwise/4pair"] == pytest.approx(6 / 12)
    assert n["ranking/overall"] == pytest.approx(3 / 8)
    assert n["pairwise/overall"] == pytest.approx(9 / 24) and n["epsilon/overall"] == 0.0
    assert report["results"]["score"]["value"] == n["ranking/overall"]
    assert "expected score" in report["results"]["expected_score"]["reason"]
    interval = report["results"]["score"]["intervals"]["ranking/overall"]
    assert interval["low"] <= 3 / 8 <= interval["high"]
    page = (out / "bench.md").read_text()
    assert "EditReward (MiMo-VL-7B)" in page and "0.384" in page and "unknown_ranking" in page
    assert "TIGER-AI-Lab/EditReward README.md" in page


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tiger(tmp_path / "suite")
    preds = str(_predictions(root))
    assert _bench("nosuch", "--root", str(root), "--predictions", preds, "--out", str(tmp_path / "o1")) == 2
    assert "expected one of: editscore, tiger" in capsys.readouterr().err
    assert _bench("editscore", "--root", str(root), "--predictions", preds, "--out", str(tmp_path / "o2")) == 2
    assert "no .parquet or .arrow files" in capsys.readouterr().err
    assert _bench("tiger", "--root", str(root), "--out", str(tmp_path / "o3")) == 2
    assert "exactly one of --model" in capsys.readouterr().err
    out = tmp_path / "o4"
    out.mkdir()
    (out / "something").write_text("x")
    assert _bench("tiger", "--root", str(root), "--predictions", preds, "--out", str(out)) == 2
    assert "--resume" in capsys.readouterr().err
    assert _bench("tiger", "--root", str(root), "--predictions", preds, "--dimension", "overall",
                  "--out", str(tmp_path / "o5")) == 2
    assert "editscore suite only" in capsys.readouterr().err
    assert _bench("tiger", "--root", str(root), "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "o6")) == 2
    assert "cannot set up the judge" in capsys.readouterr().err and not (tmp_path / "o6").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "EditReward_Bench_2pair.json").write_text("[]")
    assert _bench("tiger", "--root", str(empty), "--predictions", preds, "--out", str(tmp_path / "o7")) == 2
    assert "holds no items" in capsys.readouterr().err


def test_editscore_dimension_filter_with_predictions(tmp_path: Path) -> None:
    root = write_editscore(tmp_path / "suite")
    out = tmp_path / "out"
    preds = tmp_path / "none.jsonl"
    preds.write_text("")  # no prediction for anything: every pair wrong, every item counted, the report written
    assert _bench("editscore", "--root", str(root), "--predictions", str(preds), "--dimension", "overall",
                  "--bootstrap", "0", "--out", str(out)) == 1  # ... and the exit status says nothing was judged
    res = json.loads((out / "bench.json").read_text())["results"]["score"]
    assert set(k.split("/")[0] for k in res["numbers"]) == {"overall"} and res["value"] == 0.0
    assert res["n_pairs"] == 3 and res["judge_failure_reasons"] == {"no_prediction": 6}


def test_tiny_model_scores_each_distinct_edit_once_and_resumes(tiny_model_dir: Path, tmp_path: Path) -> None:
    root = write_editscore(tmp_path / "suite", malformed=True)
    out = tmp_path / "out"
    common = ["editscore", "--root", str(root), "--model", str(tiny_model_dir), "--device", "cpu",
              "--max-new-tokens", "8", "--bootstrap", "20", "--out", str(out)]
    assert _bench(*common) == 0
    first = json.loads((out / "bench.json").read_text())
    # 5 readable rows over 3 distinct pairs of images (dimensions share them): 6 edits judged, not 10.
    assert first["scoring"]["distinct_edits"] == 6 and first["scoring"]["comparisons"] == 5
    assert first["scoring"]["judged_now"] == 6
    assert len((out / "scores.jsonl").read_text().splitlines()) == 6
    res = first["results"]["score"]
    assert first["items"]["n_failed"] == 2 and res["n_pairs"] == 7
    if res["value"] is not None:  # a random tiny model rarely answers; whatever it says, the numbers are bounded
        assert 0.0 <= res["value"] <= 1.0
    assert _bench(*common, "--resume") == 0
    second = (out / "bench.json").read_bytes()
    again = json.loads(second)
    assert again["scoring"]["judged_now"] == 0 and again["scoring"]["from_cache"] == 6
    assert again["results"] == first["results"]
    assert _bench(*common, "--resume") == 0
    assert (out / "bench.json").read_bytes() == second  # reruns give identical bytes
