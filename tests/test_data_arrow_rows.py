"""Rows laid out from buffers (editjudge.data.arrow_rows) against pyarrow's own conversion: the same table, the same
parquet bytes, the same errors, and no pandas import on the way."""

from __future__ import annotations

import io
import math
import random
import subprocess
import sys
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from editjudge.data.arrow_rows import column, rows_table
from editjudge.data.dimension_scores import parquet_schema
from editjudge.data.writer import _WRITER_OPTIONS, MULTI_SOURCE_SCHEMA, PAIR_SCHEMA, SCHEMA

SCHEMAS = {
    "seed": SCHEMA,
    "multi_source": MULTI_SOURCE_SCHEMA,
    "pairs": PAIR_SCHEMA,
    "dimensions": parquet_schema(["instruction", "preservation", "quality"], MULTI_SOURCE_SCHEMA),
}
TEXTS = ["", "a", "make the sky red", "ünïcødé ✓ 空", "x" * 300, "\x00nul", "line\nbreak"]
FLOATS = [0.0, -0.0, 1.5, -3.25, 1e300, math.inf, -math.inf, math.nan, 5e-324]


def _value(dtype: pa.DataType, rng: random.Random, depth: int = 0) -> Any:
    """A random plain value of ``dtype``, null one time in five."""
    if rng.random() < 0.2:
        return None
    if pa.types.is_string(dtype):
        return rng.choice(TEXTS)
    if pa.types.is_binary(dtype):
        return bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 7, 100])))
    if pa.types.is_int64(dtype):
        return rng.choice([0, 1, -1, 2**63 - 1, -(2**63), rng.randrange(-10**6, 10**6)])
    if pa.types.is_float64(dtype):
        return rng.choice(FLOATS + [rng.uniform(-5, 5)])
    if pa.types.is_boolean(dtype):
        return rng.random() < 0.5
    if pa.types.is_list(dtype):
        return [_value(dtype.value_type, rng, depth + 1) for _ in range(rng.choice([0, 1, 2, 3]))]
    if pa.types.is_struct(dtype):
        return {f.name: _value(f.type, rng, depth + 1) for f in dtype if rng.random() < 0.95}  # a key may be missing
    raise AssertionError(dtype)


def _rows(schema: pa.Schema, n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{f.name: _value(f.type, rng) for f in schema} for _ in range(n)]


def _nan_free(value: Any) -> Any:
    """``value`` with every NaN replaced by a marker, so that == compares NaN as equal (Arrow's equals does not)."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, list):
        return [_nan_free(v) for v in value]
    if isinstance(value, dict):
        return {k: _nan_free(v) for k, v in value.items()}
    return value


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **_WRITER_OPTIONS)
    return sink.getvalue()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@pytest.mark.parametrize("seed", [0, 1, 2, 7, 123])
def test_rows_make_pyarrows_table_and_parquet_bytes(name: str, seed: int) -> None:
    schema = SCHEMAS[name]
    for n in (0, 1, 64):
        rows = _rows(schema, n, seed)
        ours, theirs = rows_table(rows, schema), pa.Table.from_pylist(rows, schema=schema)
        assert ours.schema == theirs.schema
        assert _nan_free(ours.to_pylist()) == _nan_free(theirs.to_pylist()), (name, seed, n)
        assert _parquet(ours) == _parquet(theirs), (name, seed, n)


@pytest.mark.parametrize("values, dtype", [
    ([np.int64(3), 4], pa.int64()),            # a numpy scalar
    ([1, 2.0], pa.float64()),                  # an int where a float is due (pyarrow converts it)
    ([True, 1], pa.int64()),                   # a bool in an int column
    ([bytearray(b"ab"), b"c"], pa.binary()),   # a bytearray
    ([np.array([1, 2])], pa.list_(pa.int64())),  # an array for a list
    ([(1, 2), [3]], pa.list_(pa.int64())),     # tuples are plain
    (["a", None], pa.int32()),                 # a type this module does not lay out
    ([1.5, 2.0], pa.int64()),                  # a float for an int (pyarrow decides)
])
def test_values_that_are_not_plain_go_through_pyarrow_and_come_out_the_same(values: list[Any],
                                                                             dtype: pa.DataType) -> None:
    try:
        expected = pa.array(values, type=dtype)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            column(values, dtype)
        return
    assert column(values, dtype).to_pylist() == expected.to_pylist()


@pytest.mark.parametrize("values, dtype", [
    (["ok", "\ud800"], pa.string()),   # a lone surrogate
    ([2**63], pa.int64()),             # beyond int64
    (["1"], pa.int64()),               # a str for an int
    ([{"role": 1}], pa.struct([("role", pa.string())])),
])
def test_bad_values_raise_pyarrows_own_error(values: list[Any], dtype: pa.DataType) -> None:
    with pytest.raises(Exception) as theirs:
        pa.array(values, type=dtype)
    with pytest.raises(type(theirs.value)):
        column(values, dtype)


def test_rows_that_are_not_dicts_go_through_pyarrow() -> None:
    class Row(dict):
        pass

    rows = [Row(data_source="x")]
    assert rows_table(rows, SCHEMA).equals(pa.Table.from_pylist(rows, schema=SCHEMA))


def test_writing_rows_does_not_import_pandas(tmp_path) -> None:
    pytest.importorskip("pandas")  # without pandas installed there is nothing to avoid
    code = (
        "import sys\n"
        "from editjudge.data.writer import ParquetSink, SCHEMA\n"
        "sink = ParquetSink(sys.argv[1], row_group_rows=2)\n"
        "for i in range(5):\n"
        "    sink.add({'data_source': 'd', 'prompt': [{'role': 'user', 'content': 'c'}],\n"
        "              'images': [{'bytes': b'\\xff\\xd8'}], 'ability': 'a',\n"
        "              'reward_model': {'style': 'rule', 'ground_truth': '3'},\n"
        "              'extra_info': {'index': i, 'score': 0.5, 'image_hw': [[28, 28]]}})\n"
        "sink.commit()\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.parquet")], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "False"
    assert pq.read_table(tmp_path / "t.parquet").num_rows == 5
