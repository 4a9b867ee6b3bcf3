"""The one record type evaluation works on: a judge's verdict on one edit next to the ground truth."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from editjudge.prompts import SCORE_MAX, SCORE_MIN

FIELDS = ("id", "group", "label", "gt_score", "pred", "expected_score", "mean_score", "raw", "error", "step", "reward",
          "dimensions", "format")
#: The keys of one dimension's entry in a record's ``dimensions``.
DIMENSION_KEYS = ("label", "pred", "expected_score", "mean_score")
MAX_DIMENSIONS = 64


def _label(value: Any, name: str) -> int | None:
    """An integer 0..9 (ints, integral floats and digit strings accepted) or None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer {SCORE_MIN}..{SCORE_MAX} or null, got {value!r}")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer {SCORE_MIN}..{SCORE_MAX} or null, got {value!r}") from None
    if not number.is_integer() or not SCORE_MIN <= number <= SCORE_MAX:
        raise ValueError(f"{name} must be an integer {SCORE_MIN}..{SCORE_MAX} or null, got {value!r}")
    return int(number)


def _real(value: Any, name: str) -> float | None:
    """A finite float or None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a finite number or null, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number or null, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number or null, got {value!r}")
    return number


def _dimensions(value: Any) -> dict[str, dict[str, Any]]:
    """A record's per-dimension entries, checked: ``{name: {label, pred, expected_score, mean_score}}``."""
    if not isinstance(value, Mapping) or not value:
        raise ValueError("dimensions must be a non-empty object of name: {label, pred, expected_score, mean_score}")
    if len(value) > MAX_DIMENSIONS:
        raise ValueError(f"dimensions holds {len(value)} entries; at most {MAX_DIMENSIONS}")
    out: dict[str, dict[str, Any]] = {}
    for name, part in value.items():
        if not isinstance(name, str) or not name or name == "overall":
            raise ValueError(f"a dimension needs a name other than 'overall', got {name!r:.40}")
        if not isinstance(part, Mapping):
            raise ValueError(f"dimensions[{name!r}] must be an object, got {type(part).__name__}")
        out[name] = {
            "label": _label(part.get("label"), f"dimensions[{name!r}].label"),
            "pred": _label(part.get("pred"), f"dimensions[{name!r}].pred"),
            "expected_score": _real(part.get("expected_score"), f"dimensions[{name!r}].expected_score"),
            "mean_score": _real(part.get("mean_score"), f"dimensions[{name!r}].mean_score"),
        }
    return out


@dataclass(frozen=True)
class EvalRecord:
    """One judged edit.

    ``label`` is the 0–9 ground truth the judge was trained on, ``gt_score`` the raw human/metric score it came from
    (finer; used to order pairs when present), ``pred`` the judge's parsed 0–9 answer (None when it did not parse),
    ``expected_score`` the judge's probability-weighted score (tie-free, optional), ``mean_score`` the mean of the
    parsed answers under Avg@k (optional), ``raw`` the judge's response text,
    ``error`` the parse reason or ``"<kind>: <message>"`` for an item that could not be judged, ``group`` the source
    the edit belongs to (pairwise and best-of-N compare edits within a group), ``step`` the training step of a verl
    dump and ``reward`` the reward verl gave the response.

    A dimension judge's record (:mod:`editjudge.evaluate.dimensions`) also carries ``dimensions``, per dimension
    ``{label, pred, expected_score, mean_score}``, with the top-level fields holding the OVERALL by the set's rule;
    ``format`` is the judgment format's spec that reads ``raw`` (None: pointwise).
    """

    id: str
    group: str | None = None
    label: int | None = None
    gt_score: float | None = None
    pred: int | None = None
    expected_score: float | None = None
    mean_score: float | None = None
    raw: str | None = None
    error: str | None = None
    step: int | None = None
    reward: float | None = None
    dimensions: Mapping[str, Mapping[str, Any]] | None = None
    format: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "id", str(self.id))
        set_(self, "group", None if self.group is None else str(self.group))
        set_(self, "label", _label(self.label, "label"))
        set_(self, "pred", _label(self.pred, "pred"))
        set_(self, "gt_score", _real(self.gt_score, "gt_score"))
        set_(self, "expected_score", _real(self.expected_score, "expected_score"))
        set_(self, "mean_score", _real(self.mean_score, "mean_score"))
        set_(self, "reward", _real(self.reward, "reward"))
        if self.raw is not None and not isinstance(self.raw, str):
            raise ValueError(f"raw must be a string or null, got {type(self.raw).__name__}")
        if self.error is not None:
            set_(self, "error", str(self.error))
        if self.step is not None:
            step = _real(self.step, "step")
            if step is None or not step.is_integer():
                raise ValueError(f"step must be an integer or null, got {self.step!r}")
            set_(self, "step", int(step))
        if self.dimensions is not None:
            set_(self, "dimensions", _dimensions(self.dimensions))
        if self.format is not None and not isinstance(self.format, str):
            raise ValueError(f"format must be a format spec string or null, got {type(self.format).__name__}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, default_id: str | None = None) -> EvalRecord:
        """Build a record from a dict with (a subset of) :data:`FIELDS`; other keys are ignored."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a record must be a JSON object / mapping, got {type(data).__name__}")
        values = {f.name: data.get(f.name) for f in fields(cls)}
        if values["id"] is None:
            if default_id is None:
                raise ValueError("record has no 'id'")
            values["id"] = default_id
        return cls(**values)

    @classmethod
    def from_judge_result(
        cls,
        result: Any,
        *,
        id: str,
        group: str | None = None,
        label: int | None = None,
        gt_score: float | None = None,
    ) -> EvalRecord:
        """A record from an :class:`editjudge.judge.JudgeResult` (``score`` becomes ``pred``) plus the truth."""
        return cls(
            id=id,
            group=group,
            label=label,
            gt_score=gt_score,
            pred=result.score,
            expected_score=result.expected_score,
            mean_score=getattr(result, "mean_score", None),
            raw=result.raw,
            error=result.error,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("dimensions", "format"):  # a one-score record is written as it always was
            if data[key] is None:
                del data[key]
        return data


def as_records(items: Any) -> list[EvalRecord]:
    """Accept records or mappings (e.g. lines of a predictions JSONL); ids default to the position."""
    out: list[EvalRecord] = []
    for i, item in enumerate(items):
        if isinstance(item, EvalRecord):
            out.append(item)
        else:
            try:
                out.append(EvalRecord.from_mapping(item, default_id=str(i)))
            except ValueError as exc:
                raise ValueError(f"record {i}: {exc}") from None
    return out


def write_records(records: Any, path: Any) -> None:
    """Write records as a predictions-style JSONL, atomically (temp file + ``os.replace``)."""
    import json

    from editjudge.data.writer import atomic_write_bytes

    lines = [json.dumps(r.to_dict(), ensure_ascii=False, allow_nan=False) + "\n" for r in as_records(records)]
    atomic_write_bytes(path, "".join(lines).encode("utf-8"))
