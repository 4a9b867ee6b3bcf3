"""Test-time scaling with a pairwise judge: rank N candidate edits by comparing them two at a time.

* **knockout** — single elimination: N − 1 comparisons. Candidates meet in input order (1 v 2, 3 v 4, …; an odd
  one out gets a bye); the winner advances; the ranking is the winner, then the losers by the round they reached.
* **round-robin** — every pair once: N (N − 1) / 2 comparisons, aggregated by **Bradley–Terry** strengths
  (``choix.ilsr_pairwise``, the maximum-likelihood fit by iterative Luce spectral ranking, with a small L2 prior so
  a candidate that wins everything still gets a finite strength) or by **wins** (a tie counts half).

Each comparison's order (which candidate is A) is drawn from ``seed``, so neither position is favoured across a
tournament; ``both_orders`` judges every pair in both orders (twice the cost) and combines them
(:func:`editjudge.judge.comparison.both_orders`). A decisive answer picks the winner; a tie goes to the larger of
p(A), p(B), then to the earlier candidate. ``comparisons`` counts the prompts sent to the judge (its cost).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from editjudge.judge.comparison import Comparison, position_consistency

MODES = ("knockout", "round-robin")
AGGREGATES = ("bt", "wins")
BT_ALPHA = 0.01  # choix's L2 regularisation: finite strengths when one candidate wins every comparison


def comparisons_needed(n: int, mode: str, both_orders: bool = False) -> int:
    """Prompts a tournament of ``n`` candidates sends to the judge."""
    pairs = max(0, n - 1) if mode == "knockout" else n * (n - 1) // 2
    return pairs * (2 if both_orders else 1)


@dataclass(frozen=True)
class Match:
    """One comparison of a tournament: candidates ``first`` and ``second`` (indices), shown as A = ``shown[0]``."""

    first: int
    second: int
    shown: tuple[int, int]
    comparison: Comparison
    winner: int | None  # None: a tie (round-robin) or no verdict
    round: int = 0

    def to_dict(self, names: Sequence[str]) -> dict[str, Any]:
        return {"round": self.round, "A": names[self.shown[0]], "B": names[self.shown[1]],
                "winner": None if self.winner is None else names[self.winner], **self.comparison.to_dict()}


@dataclass(frozen=True)
class Tournament:
    """A ranking by comparisons: ``order`` is the candidates' indices best first, ``points`` each candidate's
    strength (Bradley–Terry log-strength, wins, or the knockout round reached)."""

    source: str
    instruction: str
    candidates: tuple[str, ...]
    mode: str
    aggregate: str | None
    order: tuple[int, ...]
    points: tuple[float | None, ...]
    matches: tuple[Match, ...]
    both_orders: bool
    errors: tuple[str | None, ...] = ()  # per candidate: why it could not enter (ranked last), else None

    @property
    def comparisons(self) -> int:
        """Prompts sent to the judge."""
        return len(self.matches) * (2 if self.both_orders else 1)

    @property
    def best(self) -> str | None:
        """The winning candidate, or None when no comparison gave a verdict."""
        if not self.order or not any(m.comparison.ok for m in self.matches):
            return self.candidates[0] if len(self.candidates) == 1 else None
        return self.candidates[self.order[0]]

    def to_dict(self) -> dict[str, Any]:
        names = self.candidates
        consistency = position_consistency(m.comparison for m in self.matches)
        return {
            "source": self.source,
            "instruction": self.instruction,
            "best": self.best,
            "mode": self.mode,
            "aggregate": self.aggregate,
            "comparisons": self.comparisons,
            "both_orders": self.both_orders,
            "position_consistency": consistency["rate"] if self.both_orders else None,
            "candidates": [{"rank": r + 1, "index": i, "candidate": names[i], "points": self.points[i],
                            "error": self.errors[i] if self.errors else None} for r, i in enumerate(self.order)],
            "matches": [m.to_dict(names) for m in self.matches],
        }


def _winner(first: int, second: int, shown: tuple[int, int], comparison: Comparison, allow_tie: bool) -> int | None:
    """The index the comparison prefers (a tie: None when ``allow_tie``, else the larger probability, then the
    earlier candidate; no verdict: None, or the earlier candidate when a winner is needed)."""
    a, b = shown
    if comparison.preference == "A":
        return a
    if comparison.preference == "B":
        return b
    if allow_tie:
        return None
    margin = comparison.margin
    if margin is not None and margin != 0:
        return a if margin > 0 else b
    return min(first, second)


def _orders(pairs: Sequence[tuple[int, int]], seed: int) -> list[tuple[int, int]]:
    """Which candidate of each pair is shown as A: a seeded coin per pair (position-balanced on average)."""
    rng = random.Random(seed)
    return [(i, j) if rng.random() < 0.5 else (j, i) for i, j in pairs]


def knockout(compare: Any, n: int, *, seed: int = 0, both_orders: bool = False) -> tuple[list[Match], list[int],
                                                                                          list[float]]:
    """Single elimination over candidates ``0..n-1`` with ``compare(pairs) -> comparisons`` (one batch per round).
    Returns the matches, the order (best first) and each candidate's round reached."""
    alive = list(range(n))
    reached = [0.0] * n
    matches: list[Match] = []
    round_ = 0
    while len(alive) > 1:
        round_ += 1
        pairs = [(alive[k], alive[k + 1]) for k in range(0, len(alive) - 1, 2)]
        shown = _orders(pairs, seed * 1_000_003 + round_)
        results = compare(shown)
        winners = []
        for (i, j), order, comparison in zip(pairs, shown, results):
            winner = _winner(i, j, order, comparison, allow_tie=False)
            matches.append(Match(i, j, order, comparison, winner, round_))
            winners.append(winner)
        if len(alive) % 2:
            winners.append(alive[-1])  # a bye
        for index in winners:
            reached[index] = float(round_)
        alive = winners  # type: ignore[assignment]
    if alive:
        reached[alive[0]] = float(round_ + 1)
    order = sorted(range(n), key=lambda i: (-reached[i], i))
    return matches, order, reached


def round_robin(compare: Any, n: int, *, aggregate: str = "bt", seed: int = 0) -> tuple[list[Match], list[int],
                                                                                          list[float]]:
    """Every pair once, in one batch; candidates ordered by Bradley–Terry strength or by wins (ties: half)."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregate {aggregate!r}: use one of {AGGREGATES}")
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    shown = _orders(pairs, seed)
    results = compare(shown) if pairs else []
    matches = [Match(i, j, order, c, _winner(i, j, order, c, allow_tie=True))
               for (i, j), order, c in zip(pairs, shown, results)]
    points = bradley_terry(n, matches) if aggregate == "bt" else wins(n, matches)
    order = sorted(range(n), key=lambda i: (-points[i], i))
    return matches, order, points


def wins(n: int, matches: Sequence[Match]) -> list[float]:
    """Wins per candidate: 1 per win, 1/2 per tie, 0 for a comparison without a verdict."""
    points = [0.0] * n
    for m in matches:
        if m.winner is not None:
            points[m.winner] += 1.0
        elif m.comparison.ok:
            points[m.first] += 0.5
            points[m.second] += 0.5
    return points


def bradley_terry(n: int, matches: Sequence[Match]) -> list[float]:
    """Bradley–Terry log-strengths by ``choix.ilsr_pairwise`` (a tie is half a win each way: every decisive
    outcome enters twice, a tie once in each direction); all zeros when no comparison decided anything."""
    import choix

    data: list[tuple[int, int]] = []
    for m in matches:
        if m.winner is not None:
            loser = m.second if m.winner == m.first else m.first
            data += [(m.winner, loser), (m.winner, loser)]
        elif m.comparison.ok:
            data += [(m.first, m.second), (m.second, m.first)]
    if n < 2 or not data:
        return [0.0] * n
    return [round(float(v), 9) for v in choix.ilsr_pairwise(n, data, alpha=BT_ALPHA)]


def run_tournament(compare: Any, source: str, instruction: str, names: Sequence[str], errors: Sequence[str | None],
                   *, mode: str = "knockout", aggregate: str = "bt", both_orders: bool = False,
                   seed: int = 0) -> Tournament:
    """A :class:`Tournament` of the candidates whose ``errors`` entry is None (the others are ranked last with
    their reason); ``compare(shown)`` judges ``(A index, B index)`` pairs of candidates (indices into ``names``)."""
    if mode not in MODES:
        raise ValueError(f"unknown tournament {mode!r}: use one of {MODES}")
    entrants = [i for i, error in enumerate(errors) if error is None]

    def local(shown: Sequence[tuple[int, int]]) -> list[Comparison]:
        return compare([(entrants[a], entrants[b]) for a, b in shown])

    if mode == "knockout":
        matches, order, points = knockout(local, len(entrants), seed=seed, both_orders=both_orders)
    else:
        matches, order, points = round_robin(local, len(entrants), aggregate=aggregate, seed=seed)
    glob = [Match(entrants[m.first], entrants[m.second], (entrants[m.shown[0]], entrants[m.shown[1]]),
                  m.comparison, None if m.winner is None else entrants[m.winner], m.round) for m in matches]
    all_points: list[float | None] = [None] * len(names)
    for k, i in enumerate(entrants):
        all_points[i] = points[k]
    ranked = [entrants[k] for k in order] + [i for i, error in enumerate(errors) if error is not None]
    return Tournament(source, instruction, tuple(names), mode, aggregate if mode == "round-robin" else None,
                      tuple(ranked), tuple(all_points), tuple(glob), both_orders, tuple(errors))


__all__ = ["AGGREGATES", "MODES", "Match", "Tournament", "bradley_terry", "comparisons_needed", "knockout",
           "round_robin", "run_tournament", "wins"]
