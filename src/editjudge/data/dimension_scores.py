"""Several raw scores per edit, one per dimension: how an input row carries them and how they become labels.

Read only when ``prepare --dimensions SET`` (or a judge verb of a dimension judge) asks for them; the seed's single
``score`` path never calls this module, so its rows stay byte-identical. Imports no torch.

Where a row's dimension scores come from (``{name: raw float}``):

* a manifest's ``scores`` object (JSONL: ``{"scores": {"prompt_following": 0.8, "consistency": 0.4}}``; CSV: a cell
  holding that JSON object), and/or ``score_<name>`` columns (``score_consistency``);
* a seed-layout ``<stem>_score.json`` holding keys beside (or instead of) ``score``: every key but ``score`` is a
  dimension (``{"prompt_following": 0.8, "consistency": 0.4}``), or a ``scores`` object inside it.

Each dimension is labelled with the seed's formula and its own median / MAD (given, or estimated on the train split
over the rows that carry that dimension). A dimension the set has and the row lacks is left unlabelled (``null``:
no accuracy term for it) or the row is rejected (``missing_dimension``), as ``--missing-dimension`` says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from editjudge.data import labels as lbl

#: A row naming more dimensions than this is refused without looking at them one by one (a data bug, not a judge).
MAX_ROW_DIMENSIONS = 64
MISSING_POLICIES = ("keep", "reject")
DEFAULT_MISSING = "keep"
_COLUMN_PREFIX = "score_"

#: Reject codes this module adds to :data:`editjudge.data.sources.REASONS`.
REASONS = {
    "malformed_scores": "the 'scores' value is not a JSON object of dimension names to numbers",
    "too_many_dimensions": f"a row names more than {MAX_ROW_DIMENSIONS} dimension scores",
    "ambiguous_scores": "a dimension is given twice (in 'scores' and as a score_<name> column)",
    "unknown_dimension": "a dimension score whose name the dimension set does not have",
    "missing_dimension": "a dimension of the set has no score (with --missing-dimension reject)",
    "no_dimension_scores": "the row carries none of the dimension set's scores",
}


class DimensionScoreError(ValueError):
    """A row's dimension scores cannot be used: ``reason`` is one of :data:`REASONS` or a score code
    (``non_numeric_score``, ``non_finite_score``) of :data:`editjudge.data.sources.REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _number(name: str, value: Any) -> float | None:
    from editjudge.data.sources import ScoreError, parse_score

    try:
        return parse_score(value)
    except ScoreError as exc:
        raise DimensionScoreError(exc.reason, f"dimension {name!r}: {exc}") from None


def _checked_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise DimensionScoreError("malformed_scores", f"a dimension name must be a non-empty string, got {name!r:.60}")
    return name.strip()


def _bounded(count: int) -> None:
    if count > MAX_ROW_DIMENSIONS:
        raise DimensionScoreError(
            "too_many_dimensions", f"{count} dimension scores in one row; at most {MAX_ROW_DIMENSIONS} are read")


def _object(value: Any) -> Mapping[str, Any]:
    """A ``scores`` value as a mapping: a JSON object, or a JSON text of one (a CSV cell)."""
    if isinstance(value, str):
        from editjudge.data.sources import _loads

        if not value.strip():
            return {}
        try:
            value = _loads(value)
        except ValueError as exc:
            raise DimensionScoreError("malformed_scores", f"'scores' is not a JSON object ({exc})") from None
    if not isinstance(value, Mapping):
        raise DimensionScoreError("malformed_scores", f"'scores' must be an object of name: number, got {type(value).__name__}")
    return value


def row_scores(row: Mapping[str, Any]) -> dict[str, float | None]:
    """The dimension scores of a manifest row: its ``scores`` object and ``score_<name>`` columns (blank cells and
    nulls are absent scores). :class:`DimensionScoreError` naming the reason otherwise."""
    columns = [k for k in row if isinstance(k, str) and k.startswith(_COLUMN_PREFIX) and len(k) > len(_COLUMN_PREFIX)]
    nested = _object(row["scores"]) if row.get("scores") is not None else {}
    _bounded(len(columns) + len(nested))
    out: dict[str, float | None] = {}
    for key, value in nested.items():
        out[_checked_name(key)] = _number(str(key), value)
    for key in columns:
        name = _checked_name(key[len(_COLUMN_PREFIX):])
        if name in out:
            raise DimensionScoreError("ambiguous_scores", f"dimension {name!r} is in 'scores' and in column {key!r}")
        out[name] = _number(name, row[key])
    return out


def sidecar_scores(data: Mapping[str, Any]) -> dict[str, float | None]:
    """The dimension scores of a seed-layout ``_score.json``: a ``scores`` object, else every key but ``score``."""
    if "scores" in data:
        return row_scores({"scores": data["scores"]})
    _bounded(len(data) - ("score" in data))
    return {_checked_name(k): _number(str(k), v) for k, v in data.items() if k != "score"}


# ------------------------------------------------------------------------------------------ labels of a set


@dataclass(frozen=True)
class Scale:
    """The label formula's median and MAD of one dimension, and whether they were estimated on train."""

    median: float
    mad: float
    estimated: bool

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "mad": self.mad, "estimated_on_train": self.estimated}


def parse_assignments(values: Sequence[str] | None, flag: str) -> dict[str, float]:
    """``NAME=NUMBER`` flag values (``--dimension-median consistency=0.5``) as a mapping; ``ValueError`` naming the
    flag and the value otherwise."""
    out: dict[str, float] = {}
    for text in values or ():
        name, sep, number = str(text).partition("=")
        name = name.strip()
        try:
            value = float(number)
        except ValueError:
            value = math.nan
        if not sep or not name or not math.isfinite(value):
            raise ValueError(f"{flag} {text!r}: expected NAME=NUMBER, e.g. {flag} consistency=0.5")
        if name in out:
            raise ValueError(f"{flag}: dimension {name!r} is given twice")
        out[name] = value
    return out


def checked_scores(scores: Mapping[str, float | None] | None, names: Sequence[str], missing: str) \
        -> dict[str, float | None]:
    """A row's scores for the set's ``names`` (in order; absent: None); :class:`DimensionScoreError` for a name the
    set lacks, a row with none of them, or (``missing="reject"``) one it lacks."""
    given = dict(scores or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise DimensionScoreError(
            "unknown_dimension",
            f"dimension score(s) {unknown[:5]} are not in the set {list(names)}: rename them, drop them, or use a "
            "dimension set that has them")
    out = {name: given.get(name) for name in names}
    if all(v is None for v in out.values()):
        raise DimensionScoreError(
            "no_dimension_scores",
            f"no score for any of {list(names)} (a single 'score' is the pointwise judge's; give 'scores' or "
            "score_<name> columns)")
    absent = [n for n, v in out.items() if v is None]
    if absent and missing == "reject":
        raise DimensionScoreError("missing_dimension", f"no score for dimension(s) {absent} (--missing-dimension reject)")
    return out


def estimate_scales(train_scores: Sequence[Mapping[str, float | None]], names: Sequence[str],
                    medians: Mapping[str, float], mads: Mapping[str, float],
                    median: float | None = None, mad: float | None = None) -> dict[str, Scale]:
    """Each dimension's median / MAD: given per dimension, else the global ``median``/``mad`` when given, else
    estimated on the train rows that carry it. ``ValueError`` naming the dimension and the flag that fixes it."""
    unknown = sorted((set(medians) | set(mads)) - set(names))
    if unknown:
        raise ValueError(f"--dimension-median/--dimension-mad name {unknown}, not dimensions of {list(names)}")
    scales: dict[str, Scale] = {}
    for name in names:
        given_median = medians.get(name, median)
        given_mad = mads.get(name, mad)
        if (given_median is None) != (given_mad is None):
            raise ValueError(
                f"dimension {name!r}: give its median and MAD together (--dimension-median {name}=M "
                f"--dimension-mad {name}=D, or --score-median/--score-mad for every dimension), or neither")
        if given_mad is not None and given_median is not None:
            if not given_mad > 0:
                raise ValueError(f"dimension {name!r}: the MAD must be positive, got {given_mad}")
            scales[name] = Scale(float(given_median), float(given_mad), False)
            continue
        values = [row[name] for row in train_scores if row.get(name) is not None]
        fix = f"--dimension-median {name}=M --dimension-mad {name}=D"
        if not values:
            raise ValueError(f"dimension {name!r}: no train row has a score for it to estimate the median/MAD from; "
                             f"pass {fix}")
        try:
            m, d = lbl.estimate_median_mad(values)  # type: ignore[arg-type]
        except ValueError:
            raise ValueError(
                f"dimension {name!r}: its {len(values)} train scores have a median absolute deviation of 0 (at least "
                f"half of them equal), so its labels cannot spread over 0..9; pass {fix}") from None
        scales[name] = Scale(m, d, True)
    return scales


def dimension_labels(scores: Mapping[str, float | None], scales: Mapping[str, Scale]) -> dict[str, int | None]:
    """The 0..9 label of every dimension (None where the row has no score), by the seed's formula."""
    return {name: (None if scores.get(name) is None else lbl.label_of(float(scores[name]), s.median, s.mad))
            for name, s in scales.items()}


# ------------------------------------------------------------------------------------------ prepare's use


@dataclass
class DimensionLabeller:
    """What ``prepare --dimensions SET`` does with the rows' dimension scores: screens each record against the set
    (unknown names, none of the set's scores, a missing one under ``--missing-dimension reject``), fixes every
    dimension's median / MAD on the train split, labels each row, and counts what the report shows."""

    fmt: Any  # a DimensionsFormat
    missing: str = DEFAULT_MISSING
    medians: Mapping[str, float] | None = None
    mads: Mapping[str, float] | None = None
    scales: dict[str, Scale] | None = None

    def __post_init__(self) -> None:
        if self.missing not in MISSING_POLICIES:
            raise ValueError(f"--missing-dimension must be one of {list(MISSING_POLICIES)}, got {self.missing!r}")
        self._counts: dict[str, dict[str, Any]] = {
            n: {"labelled": {"train": 0, "test": 0}, "unlabelled": {"train": 0, "test": 0}, "histogram": {}}
            for n in self.names}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.fmt.names)

    def screen(self, record: Any) -> dict[str, float | None]:
        """The record's scores for the set (:func:`checked_scores`); :class:`DimensionScoreError` otherwise."""
        return checked_scores(record.scores, self.names, self.missing)

    def fit(self, train_scores: Sequence[Mapping[str, float | None]], median: float | None, mad: float | None) -> None:
        """Fix every dimension's scale (:func:`estimate_scales`)."""
        self.scales = estimate_scales(train_scores, self.names, self.medians or {}, self.mads or {}, median, mad)

    def label(self, scores: Mapping[str, float | None]) -> dict[str, int | None]:
        assert self.scales is not None, "fit() first"
        return dimension_labels(scores, self.scales)

    def overall(self, labels: Mapping[str, int | None]) -> int | None:
        """The overall label by the set's rule, rounded (None when a dimension is unlabelled): what ``--balanced``
        balances and ``extra_info.label`` holds."""
        value = self.fmt.dimension_set.combine(labels)
        return None if value is None else int(round(value))

    def count(self, split: str, labels: Mapping[str, int | None]) -> None:
        """Count a kept row's labelled and unlabelled dimensions (the report's ``labels.dimensions``)."""
        for name, value in labels.items():
            counts = self._counts[name]
            key = "unlabelled" if value is None else "labelled"
            counts[key][split] = counts[key].get(split, 0) + 1
            if value is not None:
                counts["histogram"].setdefault(split, []).append(value)

    def report(self) -> dict[str, Any]:
        """Per dimension: its scale, and labelled / unlabelled counts and label histograms per split."""
        out: dict[str, Any] = {}
        for name in self.names:
            counts = self._counts[name]
            scale = self.scales[name].to_dict() if self.scales else {}
            out[name] = {**scale, "labelled": counts["labelled"], "unlabelled": counts["unlabelled"],
                         "histogram": {k: lbl.histogram(v) for k, v in counts["histogram"].items()}}
        return {"set": self.fmt.dimension_set.name, "missing_dimension": self.missing, "dimensions": out}


def parquet_schema(names: Sequence[str], base: Any = None) -> Any:
    """The prepared parquet's schema for a dimension set: ``base`` (default the seed's,
    :data:`editjudge.data.writer.SCHEMA`) with ``extra_info.scores``, the raw score of each dimension (null where
    the row has none)."""
    import pyarrow as pa

    from editjudge.data.writer import SCHEMA

    schema = SCHEMA if base is None else base
    extra = schema.field("extra_info").type
    scores = pa.struct([(name, pa.float64()) for name in names])
    fields = [extra.field(i) for i in range(extra.num_fields)] + [pa.field("scores", scores)]
    return schema.set(schema.get_field_index("extra_info"), pa.field("extra_info", pa.struct(fields)))


__all__ = [
    "DEFAULT_MISSING", "MAX_ROW_DIMENSIONS", "MISSING_POLICIES", "REASONS", "DimensionLabeller",
    "DimensionScoreError", "Scale", "parquet_schema",
    "checked_scores", "dimension_labels", "estimate_scales", "parse_assignments", "row_scores", "sidecar_scores",
]
