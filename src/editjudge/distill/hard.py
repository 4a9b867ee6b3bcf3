"""``--select-hard``: the train rows a judge gets wrong in at least M of its K samples. Imports no torch.

Predictions come from ``editjudge score --manifest data/train.parquet --samples K --out preds.jsonl``: one
JSON object a line with ``id`` and ``scores`` (K answers, ``null`` for an unparsable one; a single-sample run has
``pred`` only). They are matched to the train parquet's rows by ``extra_info.id``; the label is the parquet's. A
sample is wrong when it is unparsable or further than ``tolerance`` from the label. Every prediction line that cannot
be used gets one named reason; rows without a prediction are counted.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from editjudge.data.files import lines_of
from editjudge.data.sources import lone_surrogate

LINE_LIMIT_BYTES = 1 << 20  # a longer predictions line is counted as line_too_long (and skipped, never held)


@dataclass
class Predictions:
    """Sample answers by id, and why the other lines were set aside."""

    samples: dict[str, list[int | None]] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)


def _answers(obj: dict[str, Any]) -> list[int | None] | str:
    """The K answers of one prediction line, or why there are none."""
    if obj.get("error") and str(obj["error"]).startswith(("input_error", "backend_error")):
        return "prediction_failed"
    scores = obj.get("scores")
    if scores is None:
        scores = [obj.get("pred")]
    if not isinstance(scores, list) or not scores:
        return "bad_scores"
    answers: list[int | None] = []
    for value in scores:
        if value is None:
            answers.append(None)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            answers.append(int(value))
        else:
            return "bad_scores"
    return answers


def read_predictions(path: str | Path) -> Predictions:
    """Parse a predictions JSONL; ``ValueError`` only when the file itself is unusable."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--select-hard {p}: no such file (write it with `editjudge score --samples K --out preds.jsonl`)")
    if p.suffix.lower() != ".jsonl":
        raise ValueError(f"--select-hard {p}: expected the .jsonl predictions of `editjudge score --samples K`")
    out = Predictions()
    with p.open("rb") as handle:
        for number, raw in lines_of(handle, LINE_LIMIT_BYTES):
            line = "" if raw is None else raw.decode("utf-8", errors="replace")
            if raw is not None and not line.strip():
                continue
            reason, rid = None, None
            if raw is None:
                reason = "line_too_long"
            else:
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError):  # not JSON, too deep, an integer over Python's digit limit
                    obj, reason = None, "invalid_json"
                if reason is None and lone_surrogate(obj, line):  # JSON syntax, but not text
                    obj, reason = None, "invalid_json"
                if reason is None and not isinstance(obj, dict):
                    reason = "not_an_object"
                elif reason is None:
                    rid = obj.get("id")
                    if not isinstance(rid, str) or not rid:
                        reason = "missing_id"
                    elif rid in out.samples:
                        reason = "duplicate_id"
                    else:
                        answers = _answers(obj)
                        if isinstance(answers, str):
                            reason = answers
                        else:
                            out.samples[rid] = answers
            if reason is not None:
                out.problems.append({"line": number, "id": rid, "reason": reason})
    return out


def wrong_count(answers: list[int | None], label: int, tolerance: int) -> int:
    """How many samples miss the label by more than ``tolerance`` (an unparsable answer is wrong)."""
    return sum(1 for a in answers if a is None or abs(a - label) > tolerance)


def hard_summary(
    wrong_by_row: list[int], samples_by_row: list[int], selected: int, unmatched: int, problems: list[dict[str, Any]],
    rows: int, min_wrong: int, tolerance: int,
) -> dict[str, Any]:
    """The select-hard report."""
    return {
        "settings": {"min_wrong": min_wrong, "tolerance": tolerance},
        "train_rows": rows,
        "rows_with_prediction": len(wrong_by_row),
        "rows_without_prediction": rows - len(wrong_by_row),
        "selected": selected,
        "wrong_samples_histogram": {str(k): v for k, v in sorted(Counter(wrong_by_row).items())},
        "samples_per_row": {str(k): v for k, v in sorted(Counter(samples_by_row).items())},
        "predictions_not_in_train": unmatched,
        "prediction_problems": dict(sorted(Counter(p["reason"] for p in problems).items())),
    }
