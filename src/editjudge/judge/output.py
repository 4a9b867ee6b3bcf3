"""Prediction records (contract 8) and their atomic JSONL / CSV / parquet writers. Imports no torch."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from editjudge.data.writer import AtomicTextFile, ParquetSink
from editjudge.judge.result import FAILURE_KINDS, JudgeResult

PREDICTION_FIELDS = (
    "id", "source", "edited", "instruction", "group", "pred", "expected_score", "reasoning", "raw", "error",
    "gt_score", "label", "mean_score", "scores",
)
DIMENSION_FIELDS = ("dimensions", "format")  # a dimension judge's records add these (see prediction())
OUTPUT_SUFFIXES = (".jsonl", ".csv", ".parquet")
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet reads a cell starting with these as a formula


def csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: None -> "", lists as JSON, and text that would start a formula
    (``=HYPERLINK(…)``, ``+``, ``-``, ``@``, tab, CR) prefixed with ``'`` (OWASP's advice; numbers are left alone)."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        value = json.dumps(value)
    if isinstance(value, str) and value.startswith(FORMULA_LEADS):
        return "'" + value
    return value


def prediction(
    *,
    id: str,
    source: str | None,
    edited: str | None,
    instruction: str | None,
    group: str | None,
    result: JudgeResult,
    gt_score: float | None = None,
    label: int | None = None,
    dimension_labels: Mapping[str, int | None] | None = None,
    format: str | None = None,  # noqa: A002 - the judgment format's spec, as the record names it
) -> dict[str, Any]:
    """One line of ``preds.jsonl``: the edit, the judge's answer and, when known, the ground truth.

    A dimension judge's line (``result.dimensions`` set) holds the OVERALL in ``pred`` / ``expected_score`` /
    ``label`` and adds ``dimensions`` (per dimension ``pred``, ``expected_score``, ``mean_score`` and the row's
    ``label`` there) and ``format`` (the judge's format spec, which reads ``raw``); a one-score line is unchanged.
    """
    record = {
        "id": id,
        "source": source,
        "edited": edited,
        "instruction": instruction,
        "group": group,
        "pred": result.score,
        "expected_score": result.expected_score,
        "reasoning": result.reasoning,
        "raw": result.raw,
        "error": result.error,
        "gt_score": gt_score,
        "label": label,
        "mean_score": result.mean_score,
        "scores": list(result.scores) or None,
    }
    if result.dimensions is not None:
        labels = dimension_labels or {}
        record["dimensions"] = {name: {"pred": part["score"], "expected_score": part["expected_score"],
                                       "mean_score": part["mean_score"], "label": labels.get(name)}
                                for name, part in result.dimensions.items()}
        record["format"] = format
    return record


def manifest_prediction(item: Any, median: float, mad: float, result: JudgeResult | None = None) -> dict[str, Any]:
    """The line of one manifest item (a ``data.sources`` EditRecord or Rejected): the edit as given, its result (for a
    rejected item, an ``input_error`` naming the reason) and, where the row gives a score, its label — so that `eval`
    counts a failure as a wrong answer instead of leaving it out."""
    from editjudge.data.labels import label_of

    if result is None:  # a rejected item: never judged
        result = JudgeResult(error=f"input_error: {item.reason}: {item.detail}")
    return prediction(
        id=item.id, source=item.source_path, edited=item.edited_path, instruction=item.instruction, group=item.group,
        result=result, gt_score=item.score, label=label_of(item.score, median, mad) if item.score is not None else None,
    )


def outcome(record: dict[str, Any]) -> str:
    """``parsed``, ``unparsed`` (the judge answered badly) or ``failed`` (it could not judge) for a prediction line."""
    if record["pred"] is not None:
        return "parsed"
    return "failed" if (record["error"] or "").startswith(FAILURE_KINDS) else "unparsed"


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """``path`` if it ends in ``.jsonl``, ``.csv`` or ``.parquet``; ``ValueError`` with the fix otherwise."""
    out = Path(path)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"--out {out}: use a .jsonl, .csv or .parquet file name")
    return out


class PredictionSink(AtomicTextFile):
    """Writes prediction records (JSONL or CSV by the file name) atomically: see :class:`AtomicTextFile`.
    ``dimensions``: a dimension judge's names (a CSV then has ``dimensions`` and ``format`` columns, JSON cells)."""

    def __init__(self, path: str | os.PathLike[str], dimensions: Sequence[str] | None = None) -> None:
        if check_output_path(path).suffix.lower() == ".parquet":
            raise ValueError(f"{path}: a parquet output is written by PredictionParquetSink (see prediction_sink)")
        super().__init__(Path(path), newline="")
        self._csv = None
        if self.path.suffix.lower() == ".csv":
            fields = PREDICTION_FIELDS + (DIMENSION_FIELDS if dimensions else ())
            self._csv = csv.DictWriter(self._handle, fieldnames=fields, extrasaction="ignore")
            self._csv.writeheader()
        self.rows = 0

    def add(self, record: dict[str, Any]) -> None:
        if self._csv is not None:
            row = {k: csv_cell(v) for k, v in record.items()}
            self._csv.writerow(row)
        else:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.rows += 1


def _prediction_schema(dimensions: Sequence[str] | None = None) -> Any:
    import pyarrow as pa

    text, real, whole = pa.string(), pa.float64(), pa.int64()
    types = {"pred": whole, "expected_score": real, "gt_score": real, "label": whole, "mean_score": real,
             "scores": pa.list_(whole)}
    fields = [(name, types.get(name, text)) for name in PREDICTION_FIELDS]
    if dimensions:  # a dimension judge: one typed struct per dimension, in the set's order
        part = pa.struct([("pred", whole), ("expected_score", real), ("mean_score", real), ("label", whole)])
        fields += [("dimensions", pa.struct([(name, part) for name in dimensions])), ("format", text)]
    return pa.schema(fields)


class PredictionParquetSink(ParquetSink):
    """Writes prediction records to parquet (the JSONL's fields, :data:`PREDICTION_FIELDS`, typed) through
    :class:`editjudge.data.writer.ParquetSink`: atomic, fixed writer settings, the same records give the same bytes.
    ``dimensions``: a dimension judge's names (adds the ``dimensions`` struct and ``format`` columns)."""

    def __init__(self, path: str | os.PathLike[str], dimensions: Sequence[str] | None = None) -> None:
        super().__init__(check_output_path(path), row_group_rows=1024, schema=_prediction_schema(dimensions))
        self._fields = PREDICTION_FIELDS + (DIMENSION_FIELDS if dimensions else ())

    def add(self, record: dict[str, Any]) -> None:
        super().add({name: record.get(name) for name in self._fields})


def prediction_sink(path: str | os.PathLike[str], dimensions: Sequence[str] | None = None) \
        -> PredictionSink | PredictionParquetSink:
    """The writer for ``--out`` by its suffix: ``.parquet`` -> :class:`PredictionParquetSink`, else
    :class:`PredictionSink` (``.jsonl`` / ``.csv``); ``dimensions``: a dimension judge's names."""
    if check_output_path(path).suffix.lower() == ".parquet":
        return PredictionParquetSink(path, dimensions)
    return PredictionSink(path, dimensions)
