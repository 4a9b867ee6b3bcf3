"""Best-of-N: order judged candidates by score, break ties with the expected score, keep input order last."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from editjudge.judge.result import JudgeResult


def rank_key(result: JudgeResult, index: int) -> tuple[int, float, float, int]:
    """Sort key, smallest first: judged before failed, higher (mean) score, higher expected score, earlier input."""
    if result.mean_score is None:
        return (1, 0.0, 0.0, index)
    expected = result.expected_score if result.expected_score is not None else -math.inf
    return (0, -result.mean_score, -expected, index)


def rank(results: Sequence[JudgeResult]) -> list[int]:
    """Indices of ``results`` from best to worst."""
    return sorted(range(len(results)), key=lambda i: rank_key(results[i], i))


@dataclass(frozen=True)
class RankedCandidate:
    """One candidate's place in a ranking (``rank`` 1 is the best)."""

    rank: int
    index: int
    candidate: str
    result: JudgeResult

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "index": self.index, "candidate": self.candidate, **self.result.to_dict()}


@dataclass(frozen=True)
class Ranking:
    """Candidates best first; ``best`` is None when no candidate could be judged."""

    instruction: str
    source: str
    candidates: tuple[RankedCandidate, ...]

    @property
    def best(self) -> RankedCandidate | None:
        top = self.candidates[0] if self.candidates else None
        return top if top is not None and top.result.ok else None

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "source": self.source,
            "instruction": self.instruction,
            "best": best.candidate if best else None,
            "candidates": [c.to_dict() for c in self.candidates],
        }


def build_ranking(source: str, instruction: str, names: Sequence[str], results: Sequence[JudgeResult],
                  rank_by: str | None = None) -> Ranking:
    """A :class:`Ranking` of ``results`` (one per candidate name, in input order); ``rank_by``: a dimension judge's
    dimension to order by (its score, then its expected score) instead of the overall."""
    order = rank([r.on(rank_by) for r in results])
    ranked = tuple(RankedCandidate(rank=r + 1, index=i, candidate=names[i], result=results[i]) for r, i in enumerate(order))
    return Ranking(instruction=instruction, source=source, candidates=ranked)
