"""Reading the seed's folder layout and JSONL/CSV manifests into records and rejects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from editjudge.data.sources import EditRecord, Rejected, load_sources, parse_score, read_sources


def _sample(folder: Path, stem: str, *, meta: str | None = '{"instruction": "make it red"}', score: str | None = '{"score": 0.9}', output: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}_input.jpg").write_bytes(b"src")
    if output:
        (folder / f"{stem}_output.png").write_bytes(b"edt")
    if meta is not None:
        (folder / f"{stem}_meta.json").write_text(meta)
    if score is not None:
        (folder / f"{stem}_score.json").write_text(score)


def test_folder_layout_is_found_recursively_in_a_stable_order(tmp_path):
    _sample(tmp_path / "b" / "deep", "x")
    _sample(tmp_path / "a", "y", meta='{"instruction": "  turn it blue ", "group": "g1"}')
    _sample(tmp_path, "z")
    records, rejects = load_sources(tmp_path)
    assert rejects == []
    assert [r.id for r in records] == ["a/y", "b/deep/x", "z"]
    y = records[0]
    assert y.instruction == "turn it blue" and y.score == 0.9 and y.group == "g1"
    assert y.source_path.endswith("a/y_input.jpg") and y.edited_path.endswith("a/y_output.png")


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"output": False}, "missing_edited"),
        ({"meta": None}, "missing_meta"),
        ({"meta": '{"instruction": '}, "malformed_meta"),
        ({"meta": '["not", "an", "object"]'}, "malformed_meta"),
        ({"meta": '{"instruction": "   "}'}, "empty_instruction"),
        ({"score": None}, "missing_score_file"),
        ({"score": "{}"}, "missing_score"),
        ({"score": '{"score": NaN}'}, "non_finite_score"),
        ({"score": '{"score": -Infinity}'}, "non_finite_score"),
        ({"score": '{"score": "good"}'}, "non_numeric_score"),
        ({"score": '{"score": true}'}, "non_numeric_score"),
        ({"score": "{bad json"}, "malformed_score_file"),
    ],
)
def test_each_folder_fault_becomes_one_reject_with_its_reason(tmp_path, kwargs, reason):
    _sample(tmp_path, "ok")
    _sample(tmp_path, "bad", **kwargs)
    items = list(read_sources(tmp_path))
    assert len(items) == 2  # found = kept + rejected
    bad = next(i for i in items if i.id == "bad")
    assert isinstance(bad, Rejected) and bad.reason == reason and bad.detail


def test_missing_input_and_ambiguous_files_are_rejected(tmp_path):
    (tmp_path / "lonely_output.jpg").write_bytes(b"x")
    _sample(tmp_path, "dup")
    (tmp_path / "dup_input.png").write_bytes(b"y")
    reasons = {i.id: i.reason for i in read_sources(tmp_path)}
    assert reasons == {"dup": "ambiguous_files", "lonely": "missing_source"}


def test_score_may_be_absent_for_inference(tmp_path):
    _sample(tmp_path, "a", score=None)
    (record,), rejects = load_sources(tmp_path, require_score=False)
    assert rejects == [] and record.score is None


def test_jsonl_manifest_resolves_relative_paths_and_reports_bad_lines(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "s.jpg").write_bytes(b"s")
    (tmp_path / "img" / "e.jpg").write_bytes(b"e")
    lines = [
        {"source": "img/s.jpg", "edited": "img/e.jpg", "instruction": "add a hat", "score": 0.7, "group": "g"},
        {"id": "custom", "source": "img/s.jpg", "edited": "img/e.jpg", "instruction": "add a red hat", "score": "0.8"},
        {"source": "img/missing.jpg", "edited": "img/e.jpg", "instruction": "x", "score": 1},
        {"source": "img/s.jpg", "edited": "img/e.jpg", "instruction": "x", "score": "NaN"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(l) for l in lines) + "\nnot json\n\n")
    items = list(read_sources(manifest))
    assert [i.id for i in items] == ["m.jsonl:1", "custom", "m.jsonl:3", "m.jsonl:4", "m.jsonl:5"]
    first, second = items[0], items[1]
    assert isinstance(first, EditRecord) and Path(first.source_path) == tmp_path / "img" / "s.jpg"
    assert first.group == "g" and first.score == 0.7 and second.score == 0.8 and second.group is None
    assert [i.reason for i in items[2:]] == ["missing_source", "non_finite_score", "malformed_manifest_row"]
    missing = items[2]  # a reject keeps what could be read, each in its own field
    assert Path(missing.source_path) == tmp_path / "img" / "missing.jpg"
    assert Path(missing.edited_path) == tmp_path / "img" / "e.jpg" and missing.instruction == "x"
    assert items[4].source_path is None and items[4].instruction is None


def test_folder_rejects_keep_what_could_be_read(tmp_path):
    _sample(tmp_path, "noedit", output=False)
    _sample(tmp_path, "badscore", score='{"score": "high"}')
    items = {i.id: i for i in read_sources(tmp_path)}
    assert items["noedit"].reason == "missing_edited" and items["noedit"].edited_path is None
    assert items["noedit"].source_path == str(tmp_path / "noedit_input.jpg")
    assert items["badscore"].reason == "non_numeric_score" and items["badscore"].instruction == "make it red"
    assert items["badscore"].edited_path == str(tmp_path / "badscore_output.png")


def test_csv_manifest_and_a_clear_error_for_a_bad_header(tmp_path):
    for name in ("s.jpg", "e.jpg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "m.csv").write_text("source,edited,instruction,score,group\ns.jpg,e.jpg,make it red,0.95,\ns.jpg,e.jpg,,0.5,\n")
    items = list(read_sources(tmp_path / "m.csv"))
    assert isinstance(items[0], EditRecord) and items[0].score == 0.95 and items[0].group is None
    assert items[1].reason == "empty_instruction"
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="lacks column"):
        list(read_sources(tmp_path / "bad.csv"))


def test_several_inputs_get_prefixed_unique_ids_and_bad_paths_fail_clearly(tmp_path):
    _sample(tmp_path / "one", "a")
    _sample(tmp_path / "two", "a")
    assert [i.id for i in read_sources([tmp_path / "one", tmp_path / "two"])] == ["0/a", "1/a"]
    with pytest.raises(FileNotFoundError):
        list(read_sources(tmp_path / "nope"))
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ValueError, match="manifest"):
        list(read_sources(tmp_path / "x.txt"))


def test_parse_score():
    assert parse_score(1) == 1.0 and parse_score(" 0.5 ") == 0.5 and parse_score("") is None and parse_score(None) is None
    for bad in ("nan", float("inf"), "x", [1], True):
        with pytest.raises(ValueError):
            parse_score(bad)
