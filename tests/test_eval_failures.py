"""`eval` names why rows have no score — the top reasons, each with an example — and names judges by more than a
generic folder (`adapter`)."""

from __future__ import annotations

import json
from pathlib import Path

from editjudge.cli import main
from editjudge.evaluate.failures import reason_of, top_reasons
from editjudge.evaluate.records import EvalRecord
from editjudge.judge.cli_common import judge_name


def test_records_failing_alike_are_one_reason_with_an_example() -> None:
    records = [EvalRecord(id=f"row-{i}", error=f"input_error: FileNotFoundError: /data/run{i}/tiny: no tokenizer.json")
               for i in range(64)]
    records += [EvalRecord(id="odd", error="backend_error: timed out after 120 s"),
                EvalRecord(id="text", raw="I think it is 7")]
    reasons = top_reasons(records, lambda r: r.error or f"no_answer: {r.raw!r}")
    assert [r["count"] for r in reasons] == [64, 1, 1]
    assert reasons[0]["reason"] == "input_error: FileNotFoundError: <path>: no tokenizer.json"
    assert reasons[0]["example"] == {"id": "row-0", "message": records[0].error}
    assert reason_of("timed out after 120 s") == "timed out after <n> s"


def _prediction(i: int, **fields) -> dict:
    return {"id": f"e{i}", "group": f"g{i // 2}", "label": 7 if i % 2 else 1, "gt_score": 0.9, "pred": None,
            "expected_score": None, "raw": None, "error": None, **fields}


def test_eval_prints_and_reports_the_top_reasons(tmp_path: Path, capsys) -> None:
    lines = [_prediction(i, error=f"input_error: missing_file: source image /edits/s{i}_input.jpg: no such file")
             for i in range(6)]
    lines += [_prediction(6, raw="<answer>7", error=None), _prediction(7, pred=7, raw="<think>x</think><answer>7</answer>")]
    predictions = tmp_path / "preds.jsonl"
    predictions.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["eval", "--predictions", str(predictions), "--out", str(tmp_path / "eval"), "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "6 × input_error: missing_file: source image <path>: no such file — e.g. e0: input_error: missing_file: " \
           "source image /edits/s0_input.jpg: no such file" in out
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    reasons = metrics["judges"]["preds"]["format"]["reasons"]
    assert [r["count"] for r in reasons] == [6, 1]
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "top reasons" in report and "e.g. e0: input_error: missing_file" in report


def test_judges_are_named_by_more_than_a_generic_folder(tmp_path: Path) -> None:
    adapter = tmp_path / "runs" / "trl" / "adapter"
    actor = tmp_path / "judge1" / "global_step_40" / "actor"
    adapter.mkdir(parents=True)
    actor.mkdir(parents=True)
    assert judge_name("base", adapter) == "trl-adapter"
    assert judge_name(actor) == "judge1-global_step_40-actor"
    assert judge_name(tmp_path / "judge1") == "judge1"
    assert judge_name("Qwen/Qwen2.5-VL-3B-Instruct") == "Qwen2.5-VL-3B-Instruct"  # a hub id / served name
