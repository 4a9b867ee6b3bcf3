"""Prediction records (contract 8) and their atomic JSONL / CSV / parquet writers. Imports no torch."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from editjudge.data.writer import AtomicTextFile, ParquetSink
from editjudge.judge.result import FAILURE_KINDS, JudgeResult

PREDICTION_FIELDS = (
    "id", "source", "edited", "instruction", "group", "pred", "expected_score", "reasoning", "raw", "error",
    "gt_score", "label", "mean_score", "scores",
)
OUTPUT_SUFFIXES = (".jsonl", ".csv", ".parquet")
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet reads a cell starting with these as a formula


def csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: None -> "", lists as JSON, and text that would start a formula
    (``=HYPERLINK(…)``, ``+``, ``-``, ``@``, tab, CR) prefixed with ``'`` (OWASP's advice; numbers are left alone)."""
    if value is None:
        return ""
    if isinstance(value, list):
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
) -> dict[str, Any]:
    """One line of ``preds.jsonl``: the edit, the judge's answer and, when known, the ground truth."""
    return {
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
    """Writes prediction records (JSONL or CSV by the file name) atomically: see :class:`AtomicTextFile`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if check_output_path(path).suffix.lower() == ".parquet":
            raise ValueError(f"{path}: a parquet output is written by PredictionParquetSink (see prediction_sink)")
        super().__init__(Path(path), newline="")
        self._csv = None
        if self.path.suffix.lower() == ".csv":
            self._csv = csv.DictWriter(self._handle, fieldnames=PREDICTION_FIELDS, extrasaction="ignore")
            self._csv.writeheader()
        self.rows = 0

    def add(self, record: dict[str, Any]) -> None:
        if self._csv is not None:
            row = {k: csv_cell(v) for k, v in record.items()}
            self._csv.writerow(row)
        else:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.rows += 1


def _prediction_schema() -> Any:
    import pyarrow as pa

    text, real, whole = pa.string(), pa.float64(), pa.int64()
    types = {"pred": whole, "expected_score": real, "gt_score": real, "label": whole, "mean_score": real,
             "scores": pa.list_(whole)}
    return pa.schema([(name, types.get(name, text)) for name in PREDICTION_FIELDS])


class PredictionParquetSink(ParquetSink):
    """Writes prediction records to parquet (the JSONL's fields, :data:`PREDICTION_FIELDS`, typed) through
    :class:`editjudge.data.writer.ParquetSink`: atomic, fixed writer settings, the same records give the same bytes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(check_output_path(path), row_group_rows=1024, schema=_prediction_schema())

    def add(self, record: dict[str, Any]) -> None:
        super().add({name: record.get(name) for name in PREDICTION_FIELDS})


def prediction_sink(path: str | os.PathLike[str]) -> PredictionSink | PredictionParquetSink:
    """The writer for ``--out`` by its suffix: ``.parquet`` -> :class:`PredictionParquetSink`, else
    :class:`PredictionSink` (``.jsonl`` / ``.csv``)."""
    if check_output_path(path).suffix.lower() == ".parquet":
        return PredictionParquetSink(path)
    return PredictionSink(path)
