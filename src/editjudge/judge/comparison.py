"""What a pairwise judge returns for one pair of candidate edits: the preference and p(A), p(B), p(tie).

A :class:`Comparison` is built from a backend's generations with the pairwise format's parser and its answer-token
probabilities (:meth:`editjudge.formats.pairwise.PairwiseFormat.read_slots`). Judged in both orders
(:func:`both_orders`), the second judgment is mirrored (its A is the first's B) and averaged with the first; the two
agreeing is the pair's *position consistency* (a judge that answers "A" whatever A is never agrees with itself).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from editjudge.formats.pairwise import CHOICES, PAIRWISE
from editjudge.judge.result import FAILURE_KINDS, Generation

MIRROR = {"A": "B", "B": "A", "tie": "tie"}


@dataclass(frozen=True)
class Comparison:
    """The judge's verdict on candidates A and B of one edit.

    ``preference`` is ``"A"``, ``"B"`` or ``"tie"`` (None when no answer parsed; with Avg@k the most frequent
    parsed answer, ties between answers broken by the mean probabilities); ``probabilities`` is p(A), p(B), p(tie)
    at the answer token (mean over the parsed samples; None without logprobs); ``error`` a parse reason or
    ``"<kind>: <message>"`` when the pair could not be judged. Judged in both orders, ``swapped`` holds the second
    judgment as the judge gave it (its A is this pair's B), ``consistent`` whether the two agree, and
    ``preference`` / ``probabilities`` are the combination (:func:`both_orders`).
    """

    preference: str | None = None
    probabilities: dict[str, float] | None = None
    reasoning: str | None = None
    raw: str = ""
    error: str | None = None
    preferences: tuple[str | None, ...] = field(default=())
    samples: tuple[str, ...] = field(default=())
    swapped: Comparison | None = None
    consistent: bool | None = None

    @property
    def ok(self) -> bool:
        """True when a preference was read."""
        return self.preference is not None

    @property
    def is_failure(self) -> bool:
        """True when the pair could not be judged at all (bad input, server error), not a bad answer."""
        return bool(self.error) and self.error.startswith(FAILURE_KINDS)

    @property
    def margin(self) -> float | None:
        """p(A) − p(B): how strongly A is preferred (None without probabilities)."""
        if self.probabilities is None:
            return None
        return self.probabilities["A"] - self.probabilities["B"]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "preference": self.preference, "probabilities": self.probabilities, "reasoning": self.reasoning,
            "raw": self.raw, "error": self.error,
        }
        if self.preferences:
            data |= {"preferences": list(self.preferences), "samples": list(self.samples)}
        if self.swapped is not None:
            data |= {"consistent": self.consistent, "swapped": self.swapped.to_dict()}
        return data


def failed_comparison(kind: str, message: str) -> Comparison:
    """A comparison of a pair that could not be judged (bad image, server error…)."""
    return Comparison(error=f"{kind}: {message}")


def _mean(dicts: Sequence[Mapping[str, float]]) -> dict[str, float] | None:
    if not dicts:
        return None
    return {c: sum(d[c] for d in dicts) / len(dicts) for c in CHOICES}


def _vote(preferences: Iterable[str], probabilities: Mapping[str, float] | None) -> str | None:
    """The most frequent answer; among equally frequent ones the most probable, then the order A, B, tie."""
    counts = Counter(preferences)
    if not counts:
        return None
    top = max(counts.values())
    tied = [c for c in CHOICES if counts.get(c) == top]
    if len(tied) > 1 and probabilities is not None:
        return max(tied, key=lambda c: probabilities[c])
    return tied[0]


def combine_comparison(generations: Sequence[Generation]) -> Comparison:
    """Parse every sample with the pairwise format and aggregate them (Avg@k when k > 1)."""
    if not generations:
        return failed_comparison("backend_error", "the backend returned no generation")
    parsed = [PAIRWISE.parse(g.text) for g in generations]
    probs = [p for g, v in zip(generations, parsed) if v.parsed and (p := PAIRWISE.read_slots(g.slots)) is not None]
    probabilities = _mean(probs)
    preference = _vote((v.preference for v in parsed if v.parsed), probabilities)
    first_ok = next((i for i, v in enumerate(parsed) if v.parsed), None)
    several = len(generations) > 1
    return Comparison(
        preference=preference,
        probabilities=probabilities,
        reasoning=parsed[first_ok].think if first_ok is not None else None,
        raw=generations[first_ok if first_ok is not None else 0].text,
        error=None if preference is not None else parsed[0].error,
        preferences=tuple(v.preference for v in parsed) if several else (),
        samples=tuple(g.text for g in generations) if several else (),
    )


def mirrored(comparison: Comparison) -> tuple[str | None, dict[str, float] | None]:
    """A judgment of (B, A) read in the terms of (A, B): its preference and probabilities with A and B swapped."""
    probs = comparison.probabilities
    flipped = None if probs is None else {"A": probs["B"], "B": probs["A"], "tie": probs["tie"]}
    return (None if comparison.preference is None else MIRROR[comparison.preference]), flipped


def both_orders(first: Comparison, second: Comparison) -> Comparison:
    """``first`` judged (A, B) and ``second`` judged (B, A), combined in the terms of (A, B).

    Probabilities: the mean of the first's and the mirrored second's. Preference: the answer both orders give when
    they agree (``consistent``); when they disagree, the argmax of the mean probabilities (or ``tie`` without
    probabilities: the judge's answer depended on the order, not on the edits); one order failing leaves the
    other's verdict, ``consistent`` None.
    """
    flipped_pref, flipped_probs = mirrored(second)
    if first.preference is None or flipped_pref is None:
        alone = first if first.preference is not None else None
        if alone is None and flipped_pref is not None:
            alone = replace(first, preference=flipped_pref, probabilities=flipped_probs, error=None,
                            raw=second.raw, reasoning=second.reasoning)
        return replace(alone or first, swapped=second, consistent=None)
    both = [p for p in (first.probabilities, flipped_probs) if p is not None]
    probabilities = _mean(both)
    if first.preference == flipped_pref:
        preference = first.preference
    elif probabilities is not None:
        preference = max(CHOICES, key=lambda c: probabilities[c])
    else:
        preference = "tie"
    return replace(first, preference=preference, probabilities=probabilities, swapped=second,
                   consistent=first.preference == flipped_pref)


def position_consistency(comparisons: Iterable[Comparison]) -> dict[str, Any]:
    """The share of pairs judged in both orders whose two verdicts agree (``rate``), over ``n`` such pairs
    (pairs where an order failed are left out and counted in ``n_undecided``)."""
    judged = [c.consistent for c in comparisons if c.swapped is not None]
    decided = [c for c in judged if c is not None]
    return {"rate": sum(decided) / len(decided) if decided else None, "n": len(decided),
            "n_undecided": len(judged) - len(decided)}


__all__ = ["Comparison", "MIRROR", "both_orders", "combine_comparison", "failed_comparison", "mirrored",
           "position_consistency"]
