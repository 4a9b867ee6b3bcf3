"""``editjudge score`` on a prepared parquet (``editjudge prepare``'s output) into .jsonl and .parquet predictions.

The ``--ray`` path is checked on the same input in tests/test_serve.py (it needs the module's Ray); both paths build
items, rows and records with the same functions of ``editjudge.judge.score_items`` (asserted below).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _prepared import write_prepared_with_bad_rows
from editjudge.cli import main


def _model_args(model: Path) -> list[str]:
    return ["--model", str(model), "--max-new-tokens", "12", "--device", "cpu"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_prepared_with_bad_rows(tmp_path_factory.mktemp("prepared"))


def test_usage_errors_exit_2_before_any_model_loads(prepared: Path, tmp_path: Path, capsys) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    model = tmp_path / "no-model"  # never loaded: every mistake is caught first
    base = ["score", *_model_args(model)]
    assert main([*base, "--manifest", str(prepared), "--out", str(tmp_path / "p.txt")]) == 2
    assert ".parquet" in capsys.readouterr().err  # the fix names the formats
    assert main([*base, "--manifest", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "p.parquet")]) == 2
    assert "no such file" in capsys.readouterr().err
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1]}), other)
    assert main([*base, "--manifest", str(other), "--out", str(tmp_path / "p.parquet")]) == 2
    assert "editjudge prepare" in capsys.readouterr().err
    (tmp_path / "garbage.parquet").write_bytes(b"not a parquet")
    assert main([*base, "--manifest", str(tmp_path / "garbage.parquet"), "--out", str(tmp_path / "p.jsonl")]) == 2
    assert "not a readable parquet" in capsys.readouterr().err
    assert not (tmp_path / "p.parquet").exists() and not (tmp_path / "p.jsonl").exists()


def test_image_bytes_cross_to_the_ray_actors_unchanged() -> None:
    """The chunks ``score --ray`` sends its actors carry a prepared row's image bytes exactly (the byte-identity of
    the two paths' outputs is checked end to end in tests/test_serve.py)."""
    from editjudge.judge.score_items import decode_rows, encode_rows

    row = {"i": 0, "id": "a", "source_image": b"\x00\xffbytes", "edited_image": "/x.png", "instruction": "i"}
    assert decode_rows(encode_rows([row])) == [row]


def test_the_judge_sees_the_stored_pixels(prepared: Path) -> None:
    """With prepare's settings, the judge's sizing of a row's stored bytes gives back exactly the stored pixels."""
    import io

    import numpy as np
    from PIL import Image

    from editjudge import prompts
    from editjudge.judge.request import ImageSizing
    from editjudge.judge.score_items import PreparedEdit, edit_of, judge_row, read_items

    items = [item for item in read_items(prepared) if isinstance(item, PreparedEdit)]
    assert len(items) == 4
    for i, item in enumerate(items):
        edit = edit_of(judge_row(i, item, 0.9, 0.1))
        sized = ImageSizing().size_pair(edit.source, edit.edited, prompts.build_messages(edit.instruction))
        for image, stored in zip(sized, (item.source, item.edited)):
            assert np.array_equal(np.asarray(image), np.asarray(Image.open(io.BytesIO(stored)).convert("RGB")))


@pytest.mark.slow
def test_parquet_in_jsonl_and_parquet_out(
    tiny_model_dir: Path, prepared: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys
) -> None:
    import pyarrow.parquet as pq

    from _judge_models import build_answering_model
    from editjudge.judge.output import PREDICTION_FIELDS

    # the same model test_judge_cli.py builds (reused when that ran first in the session)
    model = build_answering_model(tiny_model_dir, tmp_path_factory.getbasetemp() / "judge-answering-model")
    base = ["score", *_model_args(model), "--manifest", str(prepared), "--batch-size", "2"]
    jsonl, parquet = tmp_path / "preds.jsonl", tmp_path / "preds.parquet"
    assert main([*base, "--out", str(jsonl)]) == 0
    assert main([*base, "--out", str(parquet)]) == 0
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    table = pq.read_table(parquet)
    assert table.column_names == list(PREDICTION_FIELDS)
    assert table.to_pylist() == lines  # the same records, field for field

    truth = pq.read_table(prepared).to_pylist()
    assert [r["id"] for r in lines] == [r["extra_info"]["id"] for r in truth]
    bad_one, bad_truth = lines[1], lines[-1]
    assert bad_one["error"].startswith("input_error: malformed_row: row 1 must carry two images")
    assert bad_truth["error"].startswith("input_error: bad_label: ") and bad_truth["label"] is None
    assert bad_one["pred"] is None and bad_truth["pred"] is None
    good = [r for r in lines if r["id"] not in ("bad-one", "bad-truth")]
    assert len(good) == 4 and all(r["pred"] in (6, 7) and r["error"] is None for r in good)  # the stored images judged
    by_id = {r["extra_info"]["id"]: r for r in truth}
    assert all(r["label"] == int(by_id[r["id"]]["reward_model"]["ground_truth"]) for r in good)  # labels: the truth
    assert all(r["gt_score"] == by_id[r["id"]]["extra_info"]["score"] for r in good)

    first = parquet.read_bytes()
    assert main([*base, "--out", str(parquet)]) == 2  # an existing output needs --force
    assert main([*base, "--out", str(parquet), "--force"]) == 0
    assert parquet.read_bytes() == first  # a rerun writes the same bytes
    assert "2 could not be judged" in capsys.readouterr().err
