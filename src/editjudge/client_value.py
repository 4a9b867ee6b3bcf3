"""Which number of a judge's result becomes a reward: ``edit_reward_fn(value=…)``. No torch, no HTTP.

* ``"expected_score"`` (the default; Σ k·p(k), smooth; the parsed score when the backend gave no probabilities) and
  ``"score"`` (the parsed 0–9 answer): a one-score judge's number, a dimension judge's OVERALL (its set's rule);
* ``"overall"``: the same as ``"expected_score"``, said for a dimension judge;
* a dimension's name (``"consistency"``): that dimension's expected score, else its parsed digit;
* weights ``{"prompt_following": 0.5, "consistency": 0.5}``: the weighted sum of those dimensions' values (each
  as above; a result missing one of them gets no value, which the failure policy handles).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from editjudge.client_checks import finite_number as _finite

PLAIN = ("expected_score", "score", "overall")


def _smooth(part: Mapping[str, Any]) -> float | None:
    """The expected score, else the parsed score, of a result or of one dimension's entry."""
    value = part.get("expected_score")
    value = value if value is not None else part.get("score")
    return float(value) if _finite(value) else None


def _dimension(result: Mapping[str, Any], name: str) -> float | None:
    dims = result.get("dimensions")
    part = dims.get(name) if isinstance(dims, Mapping) else None
    return _smooth(part) if isinstance(part, Mapping) else None


def value_picker(value: str | Mapping[str, float]) -> Callable[[Mapping[str, Any]], float | None]:
    """The function that reads ``value`` off one result dict (None: no value); ``ValueError`` for a bad ``value``."""
    if isinstance(value, Mapping):
        weights = dict(value)
        if not weights or not all(isinstance(k, str) and k for k in weights) or not all(
                _finite(w) for w in weights.values()):
            raise ValueError(f"value weights must map dimension names to finite numbers, got {value!r:.120}")

        def weighted(result: Mapping[str, Any]) -> float | None:
            parts = [_dimension(result, name) for name in weights]
            if any(p is None for p in parts):
                return None
            return sum(w * p for w, p in zip(weights.values(), parts))  # type: ignore[operator]

        return weighted
    if not isinstance(value, str) or not value:
        raise ValueError(f"value must be 'expected_score', 'score', 'overall', a dimension's name or "
                         f"{{dimension: weight}}, got {value!r:.80}")
    if value == "score":
        return lambda r: float(r["score"]) if _finite(r.get("score")) else None
    if value in PLAIN:
        return _smooth
    return lambda r: _dimension(r, value)


__all__ = ["PLAIN", "value_picker"]
