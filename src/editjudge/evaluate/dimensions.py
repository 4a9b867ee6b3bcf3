"""A dimension judge's evaluation: its records per dimension, so every metric is computed for each dimension and for
the overall (the set's rule), and one table shows them side by side. Imports no torch.

A dimension record (:class:`~editjudge.evaluate.records.EvalRecord` with ``dimensions``) holds the overall in its
top-level fields (``pred`` = the overall of the answer's digits, rounded; ``label`` = the overall of the labels when
every dimension is labelled; ``expected_score`` = the overall of the dimensions' Σ k·p(k)); :func:`project` turns it
into the record of one dimension, which every metric of :mod:`editjudge.evaluate.metrics` reads as it reads a
one-score judge's. A dimension a row leaves unlabelled has no label there, so accuracy and correlations count only
the rows that label it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from editjudge.evaluate.records import EvalRecord

OVERALL = "overall"


def dimension_names(records: Sequence[EvalRecord]) -> list[str]:
    """The dimensions the records carry, in first-seen order."""
    names: dict[str, None] = {}
    for record in records:
        for name in record.dimensions or ():
            names.setdefault(name, None)
    return list(names)


def project(records: Sequence[EvalRecord], name: str) -> list[EvalRecord]:
    """Each record seen through dimension ``name``: its label, answer, expected and mean score there."""
    out = []
    for r in records:
        part = (r.dimensions or {}).get(name) or {}
        out.append(EvalRecord(id=r.id, group=r.group, label=part.get("label"), pred=part.get("pred"),
                              expected_score=part.get("expected_score"), mean_score=part.get("mean_score"),
                              raw=r.raw, error=r.error, step=r.step, format=r.format))
    return out


def per_dimension(records: Sequence[EvalRecord], metrics: Callable[[list[EvalRecord]], dict[str, Any]]) \
        -> dict[str, dict[str, Any]]:
    """``metrics`` (e.g. :func:`~editjudge.evaluate.metrics.compute_metrics`) of each dimension's records."""
    return {name: metrics(project(records, name)) for name in dimension_names(records)}


def overall_label(fmt: Any, labels: Mapping[str, int | None]) -> int | None:
    """The overall label of per-dimension labels by the set's rule, rounded; None when one is unlabelled."""
    value = fmt.dimension_set.combine(labels)
    return None if value is None else int(round(value))


def record_of(result: Any, fmt: Any, *, id: str, group: str | None = None, label: Any = None,  # noqa: A002
              gt_score: float | None = None) -> EvalRecord:
    """The record of a :class:`~editjudge.judge.JudgeResult` of a judge in format ``fmt``, beside the truth:
    a one-score judge's as :meth:`EvalRecord.from_judge_result` builds it; a dimension judge's with ``label`` the
    stored ground truth (canonical JSON or a mapping; ``ValueError`` when it is not one of ``fmt``'s labels)."""
    from editjudge.formats import DimensionsFormat

    if not isinstance(fmt, DimensionsFormat):
        return EvalRecord.from_judge_result(result, id=id, group=group, label=label, gt_score=gt_score)
    labels = fmt.parse_label(label) if label is not None else {n: None for n in fmt.names}
    answered = getattr(result, "dimensions", None) or {}
    dims = {n: {"label": labels.get(n), "pred": (answered.get(n) or {}).get("score"),
                "expected_score": (answered.get(n) or {}).get("expected_score"),
                "mean_score": (answered.get(n) or {}).get("mean_score")} for n in fmt.names}
    return EvalRecord(id=id, group=group, label=overall_label(fmt, labels), gt_score=gt_score, pred=result.score,
                      expected_score=result.expected_score, mean_score=result.mean_score, raw=result.raw,
                      error=result.error, dimensions=dims, format=fmt.spec)


def check_judge_fits(rows: Sequence[Mapping[str, Any]], fmt: Any) -> None:
    """``ValueError`` naming the fix when a prepared parquet's rows are a dimension judge's (their labels name
    dimensions) and ``fmt`` is a one-score format, or the other way round (checked on the first labelled row)."""
    from editjudge.formats import DimensionsFormat

    first = next((r["label"] for r in rows if r.get("label") is not None), None)
    dimension_rows = isinstance(first, str) and first.lstrip().startswith("{")
    if dimension_rows and not isinstance(fmt, DimensionsFormat):
        raise ValueError(f"the rows are a dimension judge's (labels {first[:80]}): give the judge's --format "
                         "dimensions:SET (or --prepare-report of the data, which records it)")
    if isinstance(fmt, DimensionsFormat) and first is not None and not dimension_rows:
        raise ValueError(f"the rows carry one score each (label {first!r}), not the dimensions of {fmt.spec}: "
                         "evaluate them with the judge's own --format")


def columns(metrics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A dimension judge's metrics as table columns: the overall, then each dimension."""
    return {OVERALL: metrics, **dict(metrics.get("dimensions") or {})}


__all__ = ["OVERALL", "check_judge_fits", "columns", "dimension_names", "overall_label", "per_dimension", "project", "record_of"]
