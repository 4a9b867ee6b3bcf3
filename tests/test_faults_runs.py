"""The fault suite, runs: one bad item never takes a whole run down (distill, score, bench, the SFT pre-flight).

Each case mixes hostile items with good ones and checks that the run completes, the good items get their results,
each bad item is named with its reason, and every read stays bounded.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from editjudge import prompts
from editjudge.cli import main

pytest.importorskip("openai")

from test_judge_openai import ChatServer, server  # noqa: E402,F401 - the loopback chat server and its fixture

RIGHT = "<think>the square is red now</think><answer>{}</answer>"


def _png(colour: str, size: int = 56) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _row(i: int, label: int = 7, instruction: str = "right") -> dict[str, Any]:
    return {
        "data_source": prompts.DATA_SOURCE, "prompt": prompts.build_messages(instruction),
        "images": [{"bytes": _png("blue")}, {"bytes": _png("red")}], "ability": prompts.ABILITY,
        "reward_model": {"style": "rule", "ground_truth": str(label)},
        "extra_info": {"split": "train", "index": i, "id": f"e{i}", "instruction": instruction, "score": 0.9,
                       "label": label, "group": f"g{i}", "source_path": None, "edited_path": None,
                       "prompt_tokens": 0, "image_tokens": [4, 4], "image_hw": [[56, 56], [56, 56]]},
    }


# hostile rows of a prepared parquet (position -> what is wrong); rows 0 and 6 are good
def _hostile_rows() -> list[dict[str, Any]]:
    rows = [_row(i) for i in range(7)]
    rows[1]["extra_info"] = None  # the row of the issue: a null extra_info
    rows[2]["reward_model"] = None  # fine: its label is also in extra_info.label (prepare writes both)
    rows[3]["reward_model"] = {"style": "rule", "ground_truth": "9" * 5000}
    rows[4]["prompt"] = None
    rows[5]["images"] = [{"bytes": _png("blue")}]
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("how", ["teacher", "traces"])
def test_distill_names_malformed_rows_and_distils_the_rest(tmp_path: Path, server: ChatServer, how: str) -> None:
    data = _write(tmp_path / "train.parquet", _hostile_rows())
    out = tmp_path / "d"
    if how == "teacher":
        server.script = lambda behaviour, n, body: [RIGHT.format(7)] * n
        extra = ["--teacher", "t", "--base-url", server.url, "--api-key-env", "NO_SUCH_KEY_VAR", "--samples", "2"]
    else:
        traces = tmp_path / "traces.jsonl"
        traces.write_text("".join(json.dumps({"id": f"e{i}", "reasoning": "the square is red"}) + "\n" for i in range(7)))
        extra = ["--traces", str(traces)]
    assert main(["distill", "--data", str(data), "--out", str(out), *extra]) == 0
    sft = pq.read_table(out / "sft.parquet").to_pylist()
    assert sorted({r["extra_info"]["id"] for r in sft}) == ["e0", "e2", "e6"]  # the good rows
    missed = {r["id"]: r["reasons"][0] for r in _jsonl(out / "no_accepted.jsonl")}
    assert sorted(missed) == ["1", "e3", "e4", "e5"], missed  # a null extra_info: named by its position
    assert all(reason.startswith("input_error: malformed_row: row ") for reason in missed.values())
    assert "extra_info.instruction" in missed["1"] and "prompt" in missed["e4"] and "two images" in missed["e5"]
    if how == "teacher":
        assert len(server.requests) == 3  # malformed rows are never sent to the teacher
    report = json.loads((out / "distill_report.json").read_text())
    assert report["rows"] == 7 and report["rows_failed"] == 4 and report["kept"] == 3


def test_select_hard_counts_malformed_rows(tmp_path: Path) -> None:
    data = _write(tmp_path / "train.parquet", _hostile_rows())
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": f"e{i}", "scores": [1, 2]}) + "\n" for i in range(7)))
    assert main(["distill", "--data", str(data), "--select-hard", str(preds), "--out", str(tmp_path / "h")]) == 0
    report = json.loads((tmp_path / "h" / "hard_report.json").read_text())
    assert report["malformed_rows"] == 4 and report["selected"] == 3
    assert [r["extra_info"]["id"] for r in pq.read_table(tmp_path / "h" / "hard.parquet").to_pylist()] == ["e0", "e2", "e6"]


def test_score_reads_the_same_rows_the_same_way(tmp_path: Path) -> None:
    """score and distill share prepare's row reader: the same rows are malformed, with the same ids."""
    from editjudge.judge.score_items import PreparedReject, read_prepared_items

    items = read_prepared_items(_write(tmp_path / "t.parquet", _hostile_rows()))
    assert [i.id for i in items if isinstance(i, PreparedReject)] == ["1", "e3", "e5"]
    assert [i.id for i in items if not isinstance(i, PreparedReject)] == ["e0", "e2", "e4", "e6"]  # e4: score builds
    # its own prompt; distill reuses the stored one, so there a row without it is malformed


# ----------------------------------------------------------------------------------------------------- bench


def _genai(root: Path, scores: list[tuple[Any, Any]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, colour in (("s.png", "white"), ("a.png", "red"), ("b.png", "blue")):
        (root / name).write_bytes(_png(colour, 16))
    items = [{"prompt": f"edit {i}", "path_src": "s.png", "path1": "a.png", "path2": "b.png",
              "model1_dim1_score": a, "model2_dim1_score": b} for i, (a, b) in enumerate(scores)]
    text = json.dumps(items).replace('"INF"', "Infinity").replace('"-INF"', "-Infinity").replace('"NAN"', "NaN")
    (root / "valid_set2_full.json").write_text(text)
    return root


def test_bench_refuses_non_finite_human_scores_per_item(tmp_path: Path, capsys) -> None:
    from editjudge.bench.suites import read_genai

    root = _genai(tmp_path / "genai", [(1, 0), ("INF", 0), (0, "-INF"), ("NAN", 1), (True, 0), (0, 1), (1e308, 0)])
    suite = read_genai(root)
    assert [i.id for i in suite.items] == ["0", "5", "6"]
    assert {f.id: f.reason for f in suite.failed} == {"1": "non_finite_score", "2": "non_finite_score",
                                                      "3": "non_finite_score", "4": "malformed_item"}
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"source": str(root / "s.png"), "edited": str(root / n), "instruction": f"edit {i}",
                                         "score": s}) + "\n"
                             for i in range(7) for n, s in (("a.png", 7), ("b.png", 3))))
    assert main(["bench", "genai", "--root", str(root), "--predictions", str(preds), "--out", str(tmp_path / "b"),
                 "--bootstrap", "10"]) == 0
    bench = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert bench["items"]["n_failed"] == 4 and bench["items"]["n_read"] == 3


def test_bench_predictions_with_nan_are_no_score(tmp_path: Path) -> None:
    from editjudge.bench.scoring import Score

    assert Score.from_line({"score": float("nan"), "expected_score": float("inf")}) == Score(None, None, None)
    assert Score.from_line({"mean_score": float("nan"), "score": 4}).score == 4.0
    assert Score.from_line({"score": True}).score is None


def _tiger_row(rid: str, kind: str, c1: str, c2: str, ranking: str, source: str = "white",
               instruction: str = "edit") -> dict[str, Any]:
    def cell(colour: str) -> dict[str, Any]:
        return {"bytes": _png(colour, 16), "path": None}

    return {"id": rid, "instruction": instruction, "source_image": cell(source), "candidate_1": cell(c1),
            "candidate_2": cell(c2), "ranking": ranking, "comparison_type": kind, "dataset": "3pair"}


def _triple(rid: list[str], source: str, order: tuple[str, str, str] = ("A>B", "A>C", "B>C")) -> list[dict[str, Any]]:
    return [_tiger_row(rid[0], "AvsB", "red", "blue", order[0], source),
            _tiger_row(rid[1], "AvsC", "red", "green", order[1], source),
            _tiger_row(rid[2], "BvsC", "blue", "green", order[2], source)]


def test_tiger_ids_sharing_a_prefix_or_repeating_stay_apart(tmp_path: Path) -> None:
    """TIGER's grouping rule (the id before '_', else its first 10 characters) would merge these items and then
    drop all of them; the reader keeps them apart by source and instruction, and counts a repeated row once."""
    from editjudge.bench.suites import read_tiger, tiger_group_id

    assert tiger_group_id("abc_AvsB") == "abc" and tiger_group_id("0123456789xyz") == "0123456789"
    rows = _triple(["sampleid01a", "sampleid01b", "sampleid01c"], "white")  # no '_', one 10-character prefix
    rows += _triple(["sampleid01d", "sampleid01e", "sampleid01f"], "black", ("B>A", "C>A", "C>B"))
    rows += _triple(["rep_0", "rep_1", "rep_2"], "gray") + _triple(["rep_0", "rep_1", "rep_2"], "gray")  # repeated
    rows += _triple(["bad_0", "bad_1", "bad_2"], "yellow") + [_tiger_row("bad_0", "AvsB", "red", "blue", "B>A", "yellow")]
    rows += _triple(["ok_0", "ok_1", "ok_2"], "purple")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test.parquet")
    suite = read_tiger(tmp_path)
    got = {i.id: i.extra["ranking"] for i in suite.items}
    assert got == {"3pair:sampleid01": "A>B>C", "3pair:sampleid01#2": "C>B>A", "3pair:rep": "A>B>C",
                   "3pair:ok": "A>B>C"}
    assert {(f.id, f.reason) for f in suite.failed} == {("3pair:bad", "conflicting_votes")}


def test_every_bench_read_is_bounded(tmp_path: Path) -> None:
    """A 3 GiB image is refused before it is read (it was hashed whole: 3.25 GB of memory); a large one within the
    limit is hashed a block at a time; a FIFO is never opened for reading; a huge JSON list is refused."""
    from editjudge.bench.suites import BenchItem, SuiteError, read_tiger
    from editjudge.bench.scoring import plan
    from editjudge.data.files import hash_file
    from editjudge.data.labels import content_hash

    huge = tmp_path / "huge.png"
    with open(huge, "wb") as handle:
        handle.truncate(3 * 2**30)  # sparse: no disk used
    os.mkfifo(tmp_path / "fifo.png")
    small = tmp_path / "s.png"
    small.write_bytes(_png("red", 16))
    items = [BenchItem(name, "edit", str(small), (str(p), str(small)), (1.0, 0.0), "all", name)
             for name, p in (("huge", huge), ("fifo", tmp_path / "fifo.png"), ("ok", small))]
    work = plan(items)
    assert sorted(work.unreadable) == ["fifo", "huge"] and "file_too_large" in work.unreadable["huge"]
    assert "not_a_regular_file" in work.unreadable["fifo"] and list(work.keys) == ["ok"]
    assert hash_file(small) == content_hash(small.read_bytes())
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        handle.truncate(160 * 2**20)
    code = ("import sys; from editjudge.data.files import hash_file; hash_file(sys.argv[1]); "  # VmHWM: the peak
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))")  # since exec
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    peak_kb = int(subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True, env=env,
                                 check=True, timeout=120).stdout)
    assert peak_kb < 120 * 1024  # a 160 MiB file hashed in far less memory than its size
    (tmp_path / "t").mkdir()
    with open(tmp_path / "t" / "EditReward_Bench_2pair.json", "wb") as handle:
        handle.truncate(300 * 2**20)
    with pytest.raises(SuiteError, match="over the limit"):
        read_tiger(tmp_path / "t")


# ------------------------------------------------------------------------------------------------ SFT dry run


@pytest.mark.parametrize("engine", ["verl", "trl"])
def test_sft_dry_run_on_a_parquet_of_zero_rows_fails_naming_why(tiny_model_dir: Path, tmp_path: Path, engine: str,
                                                              capsys) -> None:
    pytest.importorskip("verl" if engine == "verl" else "trl")
    from editjudge.distill.rules import SFT_SCHEMA

    empty = tmp_path / "sft.parquet"
    pq.write_table(pa.Table.from_pylist([], schema=SFT_SCHEMA), empty)
    argv = ["train", "--stage", "sft", "--engine", engine, "--model", str(tiny_model_dir), "--train-files", str(empty),
            "--output-dir", str(tmp_path / "run"), "--dry-run"]
    if engine == "verl":
        argv += ["--gpus", "1"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "no rows" in text and "responses.jsonl" in text and "pre-flight passed" not in text
