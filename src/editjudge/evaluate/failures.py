"""Why records have no score, as a reader needs it: the top reasons, each with its count and one example.

``metrics["format"]["errors"]`` counts records by kind (``input_error: 64``), which says that something failed but
not what. :func:`top_reasons` groups the records by their reason with what differs from record to record (paths,
numbers, quoted values) masked, so 64 rows failing on the same missing file are one reason, and keeps the first
record of each as the example (its id and its full message).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

TOP = 5
EXAMPLE_CHARS = 300

# What varies between records failing for one reason: quoted values, paths, numbers.
_MASKS = (
    (re.compile(r"'[^']*'|\"[^\"]*\""), "'…'"),
    (re.compile(r"(?:[A-Za-z]:)?(?:[~.]{0,2}/)?(?:[\w.@+-]+/)+[\w.@+-]*"), "<path>"),
    (re.compile(r"\b\d+(?:\.\d+)?\b"), "<n>"),
)


def reason_of(message: str) -> str:
    """``message`` with its record-specific parts masked: the key several records failing alike share."""
    for pattern, mask in _MASKS:
        message = pattern.sub(mask, message)
    return message.strip()


def top_reasons(records: Sequence[Any], why: Callable[[Any], str], top: int = TOP) -> list[dict[str, Any]]:
    """The ``top`` most frequent reasons among ``records`` (``why(record)`` is its full message), most frequent
    first (ties: first seen), each ``{"reason", "count", "example": {"id", "message"}}``."""
    counts: Counter[str] = Counter()
    examples: dict[str, dict[str, Any]] = {}
    for record in records:
        message = why(record)
        key = reason_of(message)
        counts[key] += 1
        if key not in examples:
            examples[key] = {"id": getattr(record, "id", None), "message": message[:EXAMPLE_CHARS]}
    order = sorted(counts, key=lambda k: (-counts[k], list(examples).index(k)))
    return [{"reason": key, "count": counts[key], "example": examples[key]} for key in order[:top]]


def describe(reasons: Sequence[dict[str, Any]]) -> list[str]:
    """One line per reason: ``64 × input_error: …: no tokenizer.json — e.g. row-3: <the full message>``."""
    return [f"{r['count']} × {r['reason']} — e.g. {r['example']['id']}: {r['example']['message']}" for r in reasons]


__all__ = ["describe", "reason_of", "top_reasons"]
