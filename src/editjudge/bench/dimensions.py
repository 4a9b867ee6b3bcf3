"""A dimension judge on a benchmark whose pairs are judged under a named dimension (EditScore's EditReward-Bench:
``prompt_following``, ``consistency``, ``overall``): each pair is compared by the judge's answer for THAT dimension,
as EditScore's published table is, and ``overall`` by the judge's overall (its set's rule). A one-score judge, or a
judge without the benchmark's dimension, is compared by its one score (the overall) on every pair, and the report
says so. No torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

OVERALL = "overall"


def judge_dimensions(scores: Iterable[Any]) -> list[str]:
    """The dimensions a judge's scores carry (empty for a one-score judge), in first-seen order."""
    names: dict[str, None] = {}
    for score in scores:
        for name in getattr(score, "dimensions", None) or ():
            names.setdefault(name, None)
    return list(names)


def part_value(part: Mapping[str, Any] | None, variant: str) -> float | None:
    """One dimension's value for a metric variant: ``score`` (the Avg@K mean, else the digit) or ``expected_score``."""
    if not isinstance(part, Mapping):
        return None
    value = part.get("expected_score") if variant == "expected_score" else (
        part.get("mean_score") if part.get("mean_score") is not None else part.get("score", part.get("pred")))
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def by_dimension(items: Iterable[Any], keys: Mapping[str, tuple[str, ...]], scores: Mapping[str, Any],
                 variant: str, names: list[str]) -> tuple[dict[str, tuple[str, ...]], dict[str, float | None],
                                                          dict[str, str]]:
    """Candidate keys and values for comparing each item under its own dimension.

    Returns ``(keys, values, used)``: an item's candidate keys gain its dimension (``KEY#dimension``), whose value
    is the judge's answer there (its overall for ``overall`` and for a dimension it does not score); ``used`` maps
    each benchmark dimension to what was compared (``"judge dimension <name>"`` or ``"judge overall"``).
    """
    out_keys: dict[str, tuple[str, ...]] = {}
    values: dict[str, float | None] = {}
    used: dict[str, str] = {}
    for item in items:
        if item.id not in keys:
            continue
        dim = item.dimension
        own = dim if dim in names else None
        used.setdefault(str(dim), f"judge dimension {own}" if own else "judge overall")
        out_keys[item.id] = tuple(f"{k}#{dim}" for k in keys[item.id])
        for key in keys[item.id]:
            score = scores.get(key)
            if score is None:
                values[f"{key}#{dim}"] = None
            elif own is None:
                values[f"{key}#{dim}"] = getattr(score, variant)
            else:
                values[f"{key}#{dim}"] = part_value((score.dimensions or {}).get(own), variant)
    return out_keys, values, used


__all__ = ["OVERALL", "by_dimension", "judge_dimensions", "part_value"]
