"""Readers: predictions JSONL (contract 8), verl generation dumps (written by verl's own writer), test parquet."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from editjudge import prompts
from editjudge.evaluate.metrics import compute_metrics, per_step
from editjudge.evaluate.readers import read_predictions, read_test_parquet, read_verl_dumps
from editjudge.evaluate.records import EvalRecord, write_records


def _verl_writer(relative: str):
    """verl 0.9.1's own ``_write_generations`` (a staticmethod), compiled from the installed source file.

    Importing the trainer modules pulls in GPU-serving extras (uvicorn, transfer_queue) that a CPU install lacks,
    so the function's unmodified source is taken from the file and run with the names it uses.
    """
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("verl is not installed")
    path = Path(spec.submodule_search_locations[0]) / relative
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "_write_generations":
            node.decorator_list = []
            module = ast.Module(body=[node], type_ignores=[])
            namespace = {"json": json, "os": os, "np": np}
            exec(compile(module, str(path), "exec"), namespace)  # noqa: S102 - verl's own code, unmodified
            return namespace["_write_generations"]
    raise AssertionError(f"_write_generations not found in {path}")


VERL_WRITERS = {
    "legacy trainer (ray_trainer.py)": "trainer/ppo/ray_trainer.py",
    "v1 trainer (trainer_base.py, the default)": "trainer/ppo/v1/trainer_base.py",
}


def _prompt_text(instruction: str) -> str:
    """What verl decodes as ``input``: the chat text without special tokens (images are dropped)."""
    msgs = prompts.build_messages(instruction)
    return f"system\n{msgs[0]['content']}\nuser\n{msgs[1]['content'].replace('<image>', '')}\nassistant\n"


@pytest.mark.parametrize("writer_file", VERL_WRITERS.values(), ids=VERL_WRITERS.keys())
def test_reads_dumps_written_by_verls_own_writer(tmp_path, writer_file) -> None:
    write = _verl_writer(writer_file)
    dump = tmp_path / "val"
    inputs = [_prompt_text("make the circle red")] * 2 + [_prompt_text("turn the square blue")] * 2
    step_outputs = {
        10: [prompts.format_answer(7, "ok"), "no idea", "<answer>3 or 4</answer>", prompts.format_answer(2, "x")],
        20: [prompts.format_answer(8, "ok"), "<answer>5</answer>", prompts.format_answer(4, "a"),
             prompts.format_answer(1, "b")],
    }
    gts = ["8", "5", "4", "1"]
    for step, outputs in step_outputs.items():
        scores = [2.0 if o.startswith("<think>") else 0.0 for o in outputs]
        extra = {"reward": scores, "acc": [1.0, 0.0, 0.0, 1.0], "np_scalar": [np.float32(0.5)] * 4}
        write(inputs, outputs, gts, scores, extra, str(dump), step)
    assert sorted(p.name for p in dump.iterdir()) == ["10.jsonl", "20.jsonl"]

    records = read_verl_dumps(dump)
    assert len(records) == 8
    first = records[:4]
    assert [r.step for r in records] == [10] * 4 + [20] * 4
    assert [r.label for r in first] == [8, 5, 4, 1]
    assert [r.pred for r in first] == [7, None, None, 2]
    assert [r.error for r in first] == [None, "no_answer", "non_numeric_answer", None]
    assert [r.reward for r in first] == [2.0, 0.0, 0.0, 2.0]
    assert first[0].raw == step_outputs[10][0]
    # grouped by prompt: the two instructions give two groups
    assert first[0].group == first[1].group != first[2].group == first[3].group

    rows = per_step(records)
    assert [r["step"] for r in rows] == [10, 20]
    assert rows[0]["parse_rate"] == 0.5 and rows[1]["parse_rate"] == 1.0
    assert rows[0]["exact"] == 0.0 and rows[1]["exact"] == 1.0
    assert rows[0]["within_1"] == 0.5 and rows[1]["reward_mean"] == pytest.approx(1.5)
    last = compute_metrics([r for r in records if r.step == 20], bootstrap=0)
    assert last["pairwise"]["strict"]["value"] == 1.0 and last["pairwise"]["strict"]["n_pairs"] == 2


def test_flat_groups_from_verl_rollout_dumps(tmp_path) -> None:
    """verl's v1 trainer dumps each rollout with its sample key ``{uid}_{rollout}_{output}`` (trainer.rollout_data_dir):
    per_step groups the samples by uid — not by prompt text, which many rows share — and reports the share of groups
    whose rewards are all equal, TRL's ``frac_reward_zero_std``, for the training plot."""
    write = _verl_writer(VERL_WRITERS["v1 trainer (trainer_base.py, the default)"])
    dump = tmp_path / "rollout"
    same_prompt = _prompt_text("make the square red")  # every row of the demo's task has this text
    hit, miss = prompts.format_answer(7, "ok"), prompts.format_answer(3, "ok")
    # three prompts x 4 samples: one group all wrong (flat, stuck), one all right (flat, solved), one mixed
    uids = [f"{u}_{k}_0" for u in ("a1b2", "c3d4", "e5f6") for k in range(4)]
    outputs = [miss] * 4 + [hit] * 4 + [hit, miss, miss, hit]
    scores = [2.0 if o == hit else 1.0 for o in outputs]
    write([same_prompt] * 12, outputs, ["7"] * 12, scores, {"uid": uids}, str(dump), 5)
    write([same_prompt] * 12, [hit] * 12, ["7"] * 12, [2.0] * 12, {"uid": uids}, str(dump), 6)

    rows = per_step(read_verl_dumps(dump))
    assert [r["step"] for r in rows] == [5, 6]
    assert rows[0]["frac_reward_zero_std"] == pytest.approx(2 / 3) and rows[1]["frac_reward_zero_std"] == 1.0
    # validation dumps (one sample per prompt, or no reward) have no groups: no figure rather than a wrong one
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "1.jsonl").write_text(json.dumps({"input": "p", "output": hit, "gts": "7", "score": 2.0}) + "\n")
    assert "frac_reward_zero_std" not in per_step(read_verl_dumps(tmp_path / "val"))[0]


def test_verl_dump_errors_name_the_file_and_line(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="verl dump folder not found"):
        read_verl_dumps(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="no <step>.jsonl files"):
        read_verl_dumps(tmp_path)
    good = '{"input": "p", "output": "<answer>1</answer>", "gts": "1", "score": 1}'
    (tmp_path / "3.jsonl").write_text(good + '\n{"input": "p"}\n')
    with pytest.raises(ValueError, match=r"3\.jsonl:2: not a verl generation dump line \(missing output, gts\)"):
        read_verl_dumps(tmp_path)
    (tmp_path / "3.jsonl").write_text('{"input": "p", "output": "x", "gts": "12", "score": 0}\n')
    with pytest.raises(ValueError, match=r"3\.jsonl:1: label must be an integer"):
        read_verl_dumps(tmp_path)


def test_predictions_round_trip_and_defaults(tmp_path) -> None:
    records = [
        EvalRecord(id="a", group="s1", label=7, gt_score=0.93, pred=6, expected_score=6.4, raw="<answer>6</answer>"),
        EvalRecord(id="b", group="s1", label=2, gt_score=0.71, pred=None, raw="??", error="no_answer"),
    ]
    path = tmp_path / "preds.jsonl"
    write_records(records, path)
    assert read_predictions(path) == records
    # contract 8 lines carry extra keys (source, edited, instruction, reasoning) and may omit the truth / id
    line = {"source": "s.png", "edited": "e.png", "instruction": "x", "group": None, "pred": 4,
            "expected_score": None, "reasoning": "r", "raw": "<think>r</think><answer>4</answer>", "error": None}
    path.write_text(json.dumps(line) + "\n\n")
    (rec,) = read_predictions(path)
    assert rec.id == "preds.jsonl:1" and rec.pred == 4 and rec.label is None
    assert rec.group.startswith("source:s.png|")  # no group, unreadable source: its path (+ the instruction)
    # readable sources are grouped by content, like `editjudge prepare`: copies of one image share a group
    (tmp_path / "a_input.png").write_bytes(_png("red"))
    (tmp_path / "b_input.png").write_bytes(_png("red"))
    (tmp_path / "c_input.png").write_bytes(_png("blue"))
    path.write_text("".join(json.dumps({**line, "source": f"{s}_input.png"}) + "\n" for s in "abc"))
    a, b, c = read_predictions(path)
    assert a.group == b.group != c.group and a.group.startswith("image:")
    from editjudge.data.labels import compare_key, group_keys, picture_hash

    # exactly the key prepare's split keeps whole (the picture), with the instruction for comparisons
    (key,) = group_keys([None], [picture_hash(_png("red"))])
    assert a.group == compare_key(key, "x")


def test_predictions_errors_are_clear(tmp_path, monkeypatch) -> None:
    path = tmp_path / "p.jsonl"
    with pytest.raises(FileNotFoundError, match="editjudge score"):
        read_predictions(path)
    path.write_text('{"id": "a", "pred": 3}\n{"id": "b", "pred": \n')
    with pytest.raises(ValueError, match=r"p\.jsonl:2: not valid JSON"):
        read_predictions(path)
    path.write_text('{"id": "a", "pred": 3}\n{"id": "a", "pred": 4}\n')
    with pytest.raises(ValueError, match="'a' appears more than once"):
        read_predictions(path)
    path.write_text('{"id": "a", "pred": "seven"}\n')
    with pytest.raises(ValueError, match=r"p\.jsonl:1: pred must be an integer 0..9"):
        read_predictions(path)
    hostile = {  # each names its file and line, never a bare decoder error
        b'{"id": "b", "raw": "\xff\xfe"}': r"p\.jsonl:2: not UTF-8",
        b'{"id": "b", "raw": "x \\ud800"}': r"p\.jsonl:2: .*lone surrogate",
        b'{"id": "b", "pred": ' + b"9" * 5000 + b"}": r"p\.jsonl:2: not valid JSON \(Exceeds",
        b"[" * 100_000: r"p\.jsonl:2: not valid JSON \(nested too deep\)",
    }
    for line, message in hostile.items():
        path.write_bytes(b'\xef\xbb\xbf{"id": "a", "pred": 3}\n' + line + b"\n")  # a BOM on line 1 is fine
        with pytest.raises(ValueError, match=message):
            read_predictions(path)
    import editjudge.evaluate.readers as readers

    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 1000)  # a line is never held whole past the limit
    path.write_bytes(b'{"id": "a", "pred": 3}\n{"id": "b", "raw": "' + b"x" * 5000 + b'"}\n')
    with pytest.raises(ValueError, match=r"p\.jsonl:2: a line longer than 1000 bytes"):
        read_predictions(path)


def _png(color: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (56, 56), color).save(buf, format="PNG")
    return buf.getvalue()


def write_test_parquet(path: Path, rows: list[dict]) -> Path:
    """A parquet in the contract-3 schema (what `editjudge prepare` writes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([
        {
            "data_source": prompts.DATA_SOURCE,
            "prompt": prompts.build_messages(r["instruction"]),
            "images": [{"bytes": _png("red")}, {"bytes": _png(r.get("color", "blue"))}],
            "ability": prompts.ABILITY,
            "reward_model": {"style": "rule", "ground_truth": str(r["label"])},
            "extra_info": {"split": "test", "index": i, "instruction": r["instruction"], "score": r["score"],
                           "label": r["label"], "group": r["group"]},
        }
        for i, r in enumerate(rows)
    ])
    pq.write_table(table, path)
    return path


def test_reads_a_prepared_test_parquet(tmp_path) -> None:
    path = write_test_parquet(tmp_path / "test.parquet", [
        {"instruction": "make it red", "label": 7, "score": 0.95, "group": "s1"},
        {"instruction": "make it blue", "label": 2, "score": 0.6, "group": "s1", "color": "green"},
    ])
    rows = read_test_parquet(path)
    assert [r["id"] for r in rows] == ["0", "1"]
    assert [r["label"] for r in rows] == ["7", "2"] and [r["gt_score"] for r in rows] == [0.95, 0.6]
    assert rows[1]["instruction"] == "make it blue" and rows[1]["source"] == _png("red")
    from editjudge.data.labels import compare_key

    assert rows[1]["edited"] == _png("green") and rows[0]["group"] == compare_key("s1", "make it red")
    assert len(read_test_parquet(path, limit=1)) == 1
    with pytest.raises(FileNotFoundError, match="editjudge prepare"):
        read_test_parquet(tmp_path / "none.parquet")
