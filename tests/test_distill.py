"""`editjudge distill` against a scripted teacher on loopback (the chat server of test_judge_openai), user traces
from a manifest, and `--select-hard` on hand-made predictions."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

pytest.importorskip("openai")

from test_judge_openai import ChatServer, server  # noqa: E402,F401 - the shared loopback server and its fixture

from editjudge import prompts  # noqa: E402
from editjudge.cli import main  # noqa: E402
from editjudge.data.writer import SCHEMA, ParquetSink  # noqa: E402
from editjudge.distill.rules import judge_response  # noqa: E402

RIGHT = "<think>the square is red now</think><answer>{}</answer>"  # 5 words


def _png(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (56, 56), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _row(i: int, instruction: str, label: int) -> dict:
    return {
        "data_source": prompts.DATA_SOURCE,
        "prompt": prompts.build_messages(instruction),
        "images": [{"bytes": _png("blue")}, {"bytes": _png(["red", "green", "white"][i % 3])}],
        "ability": prompts.ABILITY,
        "reward_model": {"style": "rule", "ground_truth": str(label)},
        "extra_info": {"split": "train", "index": i, "id": f"e{i}", "instruction": instruction, "score": None,
                       "label": label, "group": f"g{i}", "source_path": None, "edited_path": None,
                       "prompt_tokens": 0, "image_tokens": [4, 4], "image_hw": [[56, 56], [56, 56]]},
    }


def _parquet(path: Path, rows: list[tuple[str, int]]) -> Path:
    sink = ParquetSink(path)
    for i, (instruction, label) in enumerate(rows):
        sink.add(_row(i, instruction, label))
    return sink.commit()


# behaviour (the row's instruction) -> label; the teacher's script answers by behaviour
ROWS = [("right", 7), ("mixed", 3), ("wrong", 5), ("flaky", 2), ("broken", 1), ("slow", 0), ("malformed", 9)]
MIXED = [RIGHT.format(3), RIGHT.format(6), "no tags", RIGHT.format(4), "<answer>3</answer>"]


def _script(behaviour: str, n: int, body: dict) -> list[str]:
    if behaviour == "mixed":
        return (MIXED * n)[:n]
    answer = {"right": 7, "wrong": 8, "flaky": 2}.get(behaviour, 0)
    return [RIGHT.format(answer)] * n


def _distill(tmp_path: Path, server: ChatServer, *extra: str) -> int:
    server.script = _script
    return main([
        "distill", "--data", str(tmp_path / "train.parquet"), "--teacher", "teacher", "--base-url", server.url,
        "--api-key-env", "NO_SUCH_KEY_VAR", "--samples", "5", "--timeout", "0.5", "--retries", "1", *extra,
    ])


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_teacher_rejection_sampling_report_and_failures(tmp_path: Path, server: ChatServer) -> None:
    _parquet(tmp_path / "train.parquet", ROWS)
    out = tmp_path / "d"
    assert _distill(tmp_path, server, "--out", str(out)) == 0
    assert server.requests[0]["n"] == 5 and server.calls["flaky"] == 2  # K samples per request; a 500 retried

    sft = pq.read_table(out / "sft.parquet").to_pylist()
    assert [(r["extra_info"]["id"], r["distill"]["answer"], r["distill"]["sample"]) for r in sft] == [
        ("e0", 7, 0), ("e1", 3, 0), ("e3", 2, 0)]  # --keep 1: the first accepted sample per row
    row = sft[1]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["messages"][:2] == prompts.build_messages("mixed")
    assert row["messages"][2]["content"] == RIGHT.format(3) and len(row["images"]) == 2

    missed = {r["id"]: r for r in _jsonl(out / "no_accepted.jsonl")}
    assert sorted(missed) == ["e2", "e4", "e5", "e6"]
    assert missed["e2"]["answers"] == [8] * 5 and missed["e2"]["reasons"] == ["wrong_answer"] * 5
    assert missed["e4"]["reasons"][0].startswith("backend_error: HTTP 500")
    assert missed["e5"]["reasons"][0].startswith("backend_error: timed out")
    assert missed["e6"]["reasons"][0].startswith("backend_error: malformed response")
    reasons = [r["reason"] for r in _jsonl(out / "responses.jsonl") if r["id"] == "e1"]
    assert reasons == [None, "wrong_answer", "no_answer", "wrong_answer", "no_reasoning"]

    report = json.loads((out / "distill_report.json").read_text())
    assert (report["rows"], report["rows_failed"], report["responses"], report["accepted"], report["kept"]) == (7, 3, 20, 11, 3)
    assert report["rejections"] == {"backend_error": 3, "no_answer": 1, "no_reasoning": 1, "wrong_answer": 7}
    assert {k: v["acceptance_rate"] for k, v in report["per_label"].items()} == {
        "0": None, "1": None, "2": 1.0, "3": 0.2, "5": 0.0, "7": 1.0, "9": None}
    assert report["answer_confusion"]["3"] == {"3": 2, "4": 1, "6": 1, "none": 1}
    assert report["tokens"]["completion"] == 4 * 5 * 5 - 4 - 1 - 2 and report["cost"]["requests"] == 7
    assert report["tokens"]["per_response"] == pytest.approx(93 / 20, abs=1e-3)


def test_tolerance_and_keep(tmp_path: Path, server: ChatServer) -> None:
    _parquet(tmp_path / "train.parquet", [("mixed", 3), ("right", 7)])
    out = tmp_path / "d"
    assert _distill(tmp_path, server, "--out", str(out), "--tolerance", "1", "--keep", "2", "--price-in", "1",
                    "--price-out", "2") == 0
    sft = pq.read_table(out / "sft.parquet").to_pylist()
    assert [(r["extra_info"]["id"], r["distill"]["answer"]) for r in sft] == [("e0", 3), ("e0", 4), ("e1", 7), ("e1", 7)]
    over = [r for r in _jsonl(out / "responses.jsonl") if r["reason"] == "over_keep"]
    assert len(over) == 3  # right's samples 3..5 were accepted but not kept
    report = json.loads((out / "distill_report.json").read_text())
    assert report["cost"]["usd"] == pytest.approx((2 * 100 * 1 + report["tokens"]["completion"] * 2) / 1e6)


def test_a_dead_teacher_stops_early_and_writes_nothing(tmp_path: Path, server: ChatServer) -> None:
    _parquet(tmp_path / "train.parquet", [("broken", 1)] * 40)
    out = tmp_path / "d"
    assert _distill(tmp_path, server, "--out", str(out), "--retries", "0", "--concurrency", "2") == 1
    assert server.calls["broken"] == 8 and not list(out.iterdir())  # one batch (4 x concurrency) asked, then stop


def test_usage_mistakes_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _parquet(tmp_path / "train.parquet", [("right", 7)])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    base = ["distill", "--data", str(data), "--teacher", "t"]
    cases = {
        "--force": base + ["--out", str(tmp_path / "full")],
        "--temperature": base + ["--out", str(tmp_path / "o"), "--temperature", "0"],
        "no such file": ["distill", "--data", str(tmp_path / "nope.parquet"), "--teacher", "t", "--out", str(tmp_path / "o")],
        "not a parquet": ["distill", "--data", str(tmp_path / "full" / "x"), "--teacher", "t", "--out", str(tmp_path / "o")],
    }
    for needle, argv in cases.items():
        assert main(argv) == 2
        assert needle in capsys.readouterr().err


def test_acceptance_rule_on_its_own() -> None:
    assert judge_response(RIGHT.format(4), 4).accepted
    assert judge_response(RIGHT.format(5), 4).reason == "wrong_answer"
    assert judge_response(RIGHT.format(5), 4, tolerance=1).accepted
    assert judge_response("<think> </think><answer>4</answer>", 4).reason == "no_reasoning"
    assert judge_response("<answer>4</answer><think>x</think>", 4).reason == "answer_before_think"


def test_user_traces_from_a_manifest_through_the_same_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _parquet(tmp_path / "train.parquet", [("a", 7), ("b", 3), ("c", 5), ("d", 2), ("e", 1)])
    manifest = tmp_path / "m.jsonl"
    lines = [
        json.dumps({"id": "e0", "source": "s.png", "edited": "e.png", "reasoning": "the edit follows the instruction"}),
        json.dumps({"id": "e1", "reasoning": RIGHT.format(6)}),  # a whole response, wrong answer
        json.dumps({"id": "e2", "reasoning": "fine <answer>5</answer> trailing"}),  # malformed
        "{not json",
        json.dumps({"id": "e3"}),  # no reasoning
        json.dumps({"id": "zz", "reasoning": "unknown row"}),
    ]
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "t"
    argv = ["distill", "--data", str(data), "--traces", str(manifest), "--out", str(out)]
    assert main(argv) == 0
    sft = pq.read_table(out / "sft.parquet").to_pylist()
    assert [r["messages"][2]["content"] for r in sft] == ["<think>the edit follows the instruction</think><answer>7</answer>"]
    assert sft[0]["distill"]["origin"] == "manifest"
    missed = {r["id"]: r["reasons"] for r in _jsonl(out / "no_accepted.jsonl")}
    assert missed == {"e1": ["wrong_answer"], "e2": ["text_outside_tags"],
                      "e3": ["no_trace: the manifest line has no 'reasoning'"],
                      "e4": ["no_trace: the manifest has no line with this id"]}
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(argv) == 2 and "--force" in capsys.readouterr().err
    assert main(argv + ["--force"]) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first  # reruns give identical bytes


def test_select_hard_on_hand_made_predictions(tmp_path: Path) -> None:
    data = _parquet(tmp_path / "train.parquet", [("a", 7), ("b", 3), ("c", 5), ("d", 2), ("e", 1)])
    preds = tmp_path / "preds.jsonl"
    lines = [
        {"id": "e0", "scores": [7, 7, 6, 7]},  # 1 wrong of 4
        {"id": "e1", "scores": [3, None, 1, 9]},  # 3 wrong (unparsable counts)
        {"id": "e2", "scores": [5, 5, 5, 5]},
        {"id": "e3", "pred": 9, "scores": None},  # a single-sample run: 1 wrong of 1
        {"id": "e4", "scores": None, "pred": None, "error": "input_error: truncated_image: x"},
        {"id": "e1", "scores": [0, 0, 0, 0]},
        {"id": "nope", "scores": [1]},
        {"scores": [1]},
        {"id": "e2", "scores": ["x"]},
    ]
    preds.write_text("\n".join(json.dumps(x) for x in lines) + "\n[1]\n{broken\n"
                     + '{"id": "e9", "pred": ' + "9" * 5000 + "}\n" + json.dumps({"id": "e\udcff", "pred": 1}) + "\n"
                     + '{"id": "e8", "raw": "' + "x" * (1 << 20) + '"}\n')
    out = tmp_path / "h"
    assert main(["distill", "--data", str(data), "--select-hard", str(preds), "--min-wrong", "2", "--out", str(out)]) == 0
    hard = pq.read_table(out / "hard.parquet")
    assert hard.schema.equals(SCHEMA) and [r["id"] for r in hard.column("extra_info").to_pylist()] == ["e1"]
    report = json.loads((out / "hard_report.json").read_text())
    assert report["wrong_samples_histogram"] == {"0": 1, "1": 2, "3": 1}
    assert report["prediction_problems"] == {"duplicate_id": 2, "invalid_json": 3, "line_too_long": 1,
                                             "missing_id": 1, "not_an_object": 1, "prediction_failed": 1}
    assert (report["rows_without_prediction"], report["predictions_not_in_train"]) == (1, 1)
    out1 = tmp_path / "h1"
    assert main(["distill", "--data", str(data), "--select-hard", str(preds), "--out", str(out1)]) == 0
    assert pq.read_table(out1 / "hard.parquet").num_rows == 3  # --min-wrong 1: e0, e1, e3
