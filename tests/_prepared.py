"""A prepared parquet (``editjudge prepare`` on synthetic edits) with two malformed rows, for score's tests."""

from __future__ import annotations

from pathlib import Path

from editjudge.cli import main
from editjudge.synthetic import write_synthetic_edits


def write_prepared_with_bad_rows(folder: Path) -> Path:
    """``prepare`` a few synthetic edits, then append a row with one image and a row whose ground truth is "x"."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from editjudge.data.writer import SCHEMA

    edits = folder / "edits"
    write_synthetic_edits(edits, n_sources=2, candidates_per_source=2, size=48)
    assert main(["prepare", str(edits), "-o", str(folder / "data"), "--train-split", "1.0"]) == 0
    path = folder / "data" / "train.parquet"
    rows = pq.read_table(path).to_pylist()
    one_image = {**rows[0], "images": rows[0]["images"][:1], "extra_info": {**rows[0]["extra_info"], "id": "bad-one"}}
    bad_truth = {**rows[1], "reward_model": {"style": "rule", "ground_truth": "x"},
                 "extra_info": {**rows[1]["extra_info"], "id": "bad-truth"}}
    rows = [rows[0], one_image, *rows[1:], bad_truth]
    out = folder / "prepared.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), out)
    return out
