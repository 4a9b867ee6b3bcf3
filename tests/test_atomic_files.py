"""Atomic text outputs: rejects.jsonl (prepare) and predictions (score) share one writer."""

from __future__ import annotations

import json
import os
import stat

import pytest

from editjudge.data.writer import JsonlSink
from editjudge.judge.output import PredictionSink


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("sink_type, name", [(JsonlSink, "rejects.jsonl"), (PredictionSink, "preds.jsonl"),
                                             (PredictionSink, "preds.csv")])
def test_outputs_get_the_umask_permissions_not_mkstemps_0600(tmp_path, sink_type, name) -> None:
    mask = os.umask(0o022)
    try:
        with sink_type(tmp_path / name) as sink:
            sink.add({"id": "a", "pred": 3})
    finally:
        os.umask(mask)
    assert _mode(tmp_path / name) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_a_failed_write_leaves_the_previous_file_untouched(tmp_path) -> None:
    target = tmp_path / "preds.jsonl"
    with PredictionSink(target) as sink:
        sink.add({"id": "old"})
    with pytest.raises(RuntimeError), PredictionSink(target) as sink:
        sink.add({"id": "new"})
        raise RuntimeError("interrupted")
    assert [json.loads(line)["id"] for line in target.read_text().splitlines()] == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["preds.jsonl"]


def test_lines_of_skips_a_line_over_the_limit_in_bounded_reads() -> None:
    import io

    from editjudge.data.files import lines_of

    data = b"ab\n" + b"x" * 10_000 + b"\n" + b"12345\n" + b"y" * 50
    assert list(lines_of(io.BytesIO(data), max_line_bytes=5)) == [(1, b"ab\n"), (2, None), (3, b"12345\n"), (4, None)]
    assert list(lines_of(io.BytesIO(b"a\nb"), max_line_bytes=5)) == [(1, b"a\n"), (2, b"b")]
