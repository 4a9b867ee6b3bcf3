"""``editjudge score`` and ``editjudge best-of-n`` end to end on the tiny answering model."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

pytest.importorskip("transformers")
# The session fixture teaches the tiny model to answer (~5 s alone, more on a busy machine).
pytestmark = pytest.mark.slow

from _judge_models import build_answering_model  # noqa: E402
from editjudge.cli import main  # noqa: E402
from editjudge.judge.output import PREDICTION_FIELDS  # noqa: E402
from editjudge.judge.ranking import rank_key  # noqa: E402
from editjudge.judge.result import JudgeResult  # noqa: E402
from editjudge.synthetic import write_synthetic_edits  # noqa: E402

CONTRACT_FIELDS = {"id", "source", "edited", "instruction", "group", "pred", "expected_score", "reasoning", "raw",
                   "error", "gt_score", "label"}


@pytest.fixture(scope="session")
def answering_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_answering_model(tiny_model_dir, tmp_path_factory.getbasetemp() / "judge-answering-model")


@pytest.fixture(scope="module")
def edits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("edits")
    write_synthetic_edits(folder, n_sources=2, candidates_per_source=3, size=64)
    return folder


def _model_args(model: Path) -> list[str]:
    return ["--model", str(model), "--max-new-tokens", "12", "--device", "cpu"]


def test_score_one_pair(answering_model_dir: Path, edits: Path, tmp_path: Path, capsys) -> None:
    source, edited = sorted(edits.rglob("*_input.jpg"))[0], sorted(edits.rglob("*_output.jpg"))[0]
    out = tmp_path / "one.jsonl"
    code = main(["score", *_model_args(answering_model_dir), "--source", str(source), "--edited", str(edited),
                 "--instruction", "make the circle red", "--out", str(out)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["pred"] in (6, 7) and printed["error"] is None and isinstance(printed["expected_score"], float)
    assert json.loads(out.read_text()) == printed and CONTRACT_FIELDS <= set(printed)


def test_score_manifest_with_bad_rows(answering_model_dir: Path, edits: Path, tmp_path: Path, capsys) -> None:
    sources, outputs = sorted(edits.rglob("*_input.jpg")), sorted(edits.rglob("*_output.jpg"))
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated nonsense")
    rows = [
        {"id": "a", "source": str(sources[0]), "edited": str(outputs[0]), "instruction": "make it red", "score": 0.9},
        {"id": "b", "source": str(sources[1]), "edited": "corrupt.jpg", "instruction": "make it red", "score": 1.0},
        {"id": "c", "source": str(sources[1]), "edited": "missing.jpg", "instruction": "make it red"},
        {"id": "d", "source": str(sources[2]), "edited": str(outputs[2]), "instruction": "make it blue", "group": "g"},
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "preds.jsonl"
    argv = ["score", *_model_args(answering_model_dir), "--manifest", str(manifest), "--out", str(out)]
    assert main(argv) == 0
    assert "2 answered, 0 unparsable answers, 2 could not be judged" in capsys.readouterr().err
    preds = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["id"] for p in preds] == ["a", "b", "c", "d"] and all(CONTRACT_FIELDS <= set(p) for p in preds)
    a, b, c, d = preds
    assert a["pred"] in (6, 7) and a["error"] is None and a["gt_score"] == 0.9 and a["label"] == 4
    assert b["pred"] is None and b["error"].startswith("input_error: not_an_image: edited image")
    assert b["gt_score"] == 1.0 and b["label"] == 9 and b["edited"].endswith("corrupt.jpg")
    assert c["error"].startswith("input_error: missing_edited") and c["label"] is None
    assert c["instruction"] == "make it red" and c["edited"].endswith("missing.jpg")  # the row as it was given
    assert d["group"] == "g" and d["gt_score"] is None and d["pred"] in (6, 7)
    first = out.read_bytes()
    csv_out = tmp_path / "preds.csv"
    assert main([*argv[:-1], str(csv_out)]) == 0
    assert out.read_bytes() == first  # same inputs and seed -> the same bytes
    with csv_out.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert tuple(table[0]) == PREDICTION_FIELDS
    assert [r["pred"] for r in table] == ["" if p["pred"] is None else str(p["pred"]) for p in preds]
    assert not list(tmp_path.glob(".*.tmp"))  # temp files were moved into place


def test_score_takes_labels_and_settings_from_the_prepare_report(
    answering_model_dir: Path, edits: Path, tmp_path: Path, capsys
) -> None:
    prepared = tmp_path / "prepared"
    assert main(["prepare", str(edits), "-o", str(prepared), "--score-median", "0.8", "--score-mad", "0.2",
                 "--max-image-tokens", "4", "--workers", "1", "-q"]) == 0
    source, edited = sorted(edits.rglob("*_input.jpg"))[0], sorted(edits.rglob("*_output.jpg"))[0]
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"source,edited,instruction,score\n{source},{edited},make it red,0.9\n")
    out = tmp_path / "p.jsonl"
    argv = ["score", *_model_args(answering_model_dir), "--manifest", str(manifest), "--out", str(out),
            "--prepare-report", str(prepared / "prepare_report.json")]
    assert main(argv) == 0
    (pred,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert pred["label"] == 6 and pred["pred"] in (6, 7)  # int((0.9 - 0.8) / 0.2 * 4.5 + 4.5) = 6, not the seed's 4
    assert main([*argv, "--score-median", "0.9", "--score-mad", "0.1", "--force"]) == 0  # explicit flags win
    assert json.loads(out.read_text())["label"] == 4
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main([*argv[:-1], str(bad), "--force"]) == 2
    assert "not a prepare_report.json" in capsys.readouterr().err


def test_score_argument_errors(tmp_path: Path, capsys) -> None:
    assert main(["score", "--model", "m", "--manifest", str(tmp_path)]) == 2
    assert "--manifest needs --out" in capsys.readouterr().err
    assert main(["score", "--model", "m", "--source", "a.jpg"]) == 2
    assert "--source, --edited and --instruction" in capsys.readouterr().err
    assert main(["score", "--model", "m", "--manifest", str(tmp_path), "--out", "x.txt"]) == 2
    assert ".jsonl, .csv or .parquet" in capsys.readouterr().err
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    argv = ["--source", str(image), "--edited", str(image), "--instruction", "x"]
    assert main(["score", "--model", str(tmp_path / "no-such-model"), *argv]) == 2
    assert "cannot set up the judge" in capsys.readouterr().err


def test_best_of_n_ranks_each_source_of_a_seed_folder(answering_model_dir: Path, edits: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ranking.json"
    assert main(["best-of-n", *_model_args(answering_model_dir), "--folder", str(edits), "--out", str(out)]) == 0
    rankings = json.loads(out.read_text())
    assert len(rankings) == 2  # two sources, their three candidates grouped by the source image's content
    printed = capsys.readouterr().out.split("\n\n")
    for ranking, line in zip(rankings, printed):
        candidates = ranking["candidates"]
        assert len(candidates) == 3 and {Path(c["candidate"]).parent for c in candidates} == {Path(ranking["source"]).parent}
        assert all(c["id"].rsplit("_c", 1)[0] == candidates[0]["id"].rsplit("_c", 1)[0] for c in candidates)
        keys = [rank_key(JudgeResult(mean_score=c["mean_score"], expected_score=c["expected_score"]), c["index"])
                for c in candidates]
        assert keys == sorted(keys) and [c["rank"] for c in candidates] == [1, 2, 3]
        assert ranking["best"] == candidates[0]["candidate"] and f"best: {ranking['best']} (score" in line
        table = line.splitlines()[1:5]  # header + one line per candidate, best first
        assert table[0].split()[:3] == ["rank", "score", "expected"]
        assert [row.split()[0] for row in table[1:]] == ["1", "2", "3"]
        assert all(c["candidate"] in row for c, row in zip(candidates, table[1:]))


def test_best_of_n_one_source_with_candidate_files(answering_model_dir: Path, edits: Path, tmp_path: Path, capsys) -> None:
    source = sorted(edits.rglob("*_input.jpg"))[0]
    candidates = sorted(str(p) for p in source.parent.glob(source.name.split("_c")[0] + "_c*_output.jpg"))
    (tmp_path / "bad.png").write_bytes(b"nope")
    out = tmp_path / "r.jsonl"
    argv = ["best-of-n", *_model_args(answering_model_dir), "--source", str(source), "--instruction", "make it red",
            "--candidates", *candidates, str(tmp_path / "bad.png"), "--out", str(out)]
    assert main(argv) == 0
    (ranking,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert ranking["candidates"][-1]["candidate"].endswith("bad.png")  # failures rank last
    assert ranking["candidates"][-1]["error"].startswith("input_error")
    printed = capsys.readouterr().out
    assert ranking["best"] in candidates and f"best: {ranking['best']}" in printed
    # a single source prints the whole ranking as a table: rank, score, expected score, candidate, error
    assert re.search(r"rank +score +expected", printed) and all(c in printed for c in [*candidates, str(tmp_path / "bad.png")])
