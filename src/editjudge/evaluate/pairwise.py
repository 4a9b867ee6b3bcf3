"""Pairwise, ranking and tie-calibration metrics: the one implementation ``eval`` and ``bench`` share.

A comparison is a pair ``(h, m)``: ``h`` is the human verdict (+1 the first candidate is better, -1 the second,
0 a tie) and ``m`` the judge's score difference (first minus second; NaN when either candidate has no score).
Every function takes optional pair weights ``w`` (all ones for the point estimate, group multiplicities for a
bootstrap replicate), so point estimates and intervals come from the same code. Definitions (docs/bench.md):

* :func:`strict_accuracy` — over pairs with a preference, right only when the preferred candidate scores strictly
  higher: EditScore's ``calculate_statistics.py`` (``score[0] > score[1]``) and TIGER's
  ``calc_accuracy_without_ties`` ``C / (C + D + Tm)`` (a judge tie counts wrong).
* :func:`tie_calibrated_accuracy` — accuracy with ties, ``(C + Thm) / (C + D + Th + Tm + Thm)``, maximised over
  the tie threshold ε ∈ {0} ∪ {|m|} (TIGER's ``calc_accuracy_with_ties_for_edit_reward_bench``; Deutsch et al.
  2023, arXiv:2305.14324). The smallest best ε is kept.
* :func:`tie_calibrated_sweep` — TIGER's ``calc_accuracy_with_ties``, used for GenAI-Bench / AURORA: pairs are
  visited in stable order of |m| and the accuracy is taken after each pair, so among pairs with equal |m| only a
  prefix may be counted as tied; the all-untied state is never a candidate.
* :func:`parse_ranking` — ranking strings ("A>B", "B>A", "A<B", "A=B=Good", "C>A>B", "A>B=C>D") into tiers.

Unscored pairs (NaN ``m``) stay in every denominator and are never right.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

__all__ = [
    "TieCounts",
    "Calibrated",
    "RankingError",
    "as_arrays",
    "suff_stats",
    "strict_accuracy",
    "accuracy_with_ties_at",
    "tie_calibrated_accuracy",
    "tie_calibrated_sweep",
    "parse_ranking",
    "truth_pairs",
    "group_accuracy",
    "tiger_ranking_correct",
    "macro_average",
    "bootstrap_intervals",
]


@dataclass(frozen=True)
class TieCounts:
    """Deutsch et al.'s sufficient statistics (weighted counts) at one threshold ε."""

    C: float  # consistent: both prefer the same candidate
    D: float  # discordant (and unscored pairs with a human preference)
    Th: float  # human tie, judge not (and unscored human ties)
    Tm: float  # judge tie (|m| ≤ ε), human not
    Thm: float  # both tie

    @property
    def total(self) -> float:
        return self.C + self.D + self.Th + self.Tm + self.Thm


@dataclass(frozen=True)
class Calibrated:
    """A tie-calibrated accuracy, the ε it was reached at and the number of pairs."""

    value: float | None
    epsilon: float | None
    n_pairs: int


def as_arrays(h: Sequence[float], m: Sequence[float], w: Sequence[float] | None = None) -> tuple[np.ndarray, ...]:
    """``h``, ``m`` and ``w`` as float arrays of one length (``w`` defaults to ones)."""
    h_arr = np.sign(np.asarray(h, dtype=float))
    m_arr = np.asarray(m, dtype=float)
    w_arr = np.ones(len(h_arr)) if w is None else np.asarray(w, dtype=float)
    if not (len(h_arr) == len(m_arr) == len(w_arr)):
        raise ValueError(f"h, m and w differ in length: {len(h_arr)}, {len(m_arr)}, {len(w_arr)}")
    return h_arr, m_arr, w_arr


def suff_stats(h: Sequence[float], m: Sequence[float], epsilon: float, w: Sequence[float] | None = None) -> TieCounts:
    """C, D, Th, Tm, Thm with the judge calling a tie when ``|m| <= epsilon`` (``epsilon < 0``: never)."""
    h_arr, m_arr, w_arr = as_arrays(h, m, w)
    scored = np.isfinite(m_arr)
    tie_m = scored & (np.abs(np.where(scored, m_arr, 0.0)) <= epsilon)
    tie_h = h_arr == 0
    agree = scored & ~tie_m & (h_arr * np.where(scored, m_arr, 0.0) > 0)
    return TieCounts(
        C=float(w_arr[~tie_h & agree].sum()),
        D=float(w_arr[~tie_h & ~tie_m & ~agree].sum()),
        Th=float(w_arr[tie_h & ~tie_m].sum()),
        Tm=float(w_arr[~tie_h & tie_m].sum()),
        Thm=float(w_arr[tie_h & tie_m].sum()),
    )


def accuracy_with_ties_at(h: Sequence[float], m: Sequence[float], epsilon: float, w: Sequence[float] | None = None) -> float | None:
    """``(C + Thm) / (C + D + Th + Tm + Thm)`` at one ε (None when there is no pair)."""
    c = suff_stats(h, m, epsilon, w)
    return (c.C + c.Thm) / c.total if c.total > 0 else None


def strict_accuracy(h: Sequence[float], m: Sequence[float], w: Sequence[float] | None = None) -> float | None:
    """Share of pairs *with a human preference* where the preferred candidate scores strictly higher.

    Judge ties and unscored pairs count wrong; human ties are left out. Equals TIGER's ``C / (C + D + Tm)`` at
    ε < 0 and EditScore's ``score[0] > score[1]`` count. None when no pair has a preference.
    """
    h_arr, m_arr, w_arr = as_arrays(h, m, w)
    pref = h_arr != 0
    den = float(w_arr[pref].sum())
    if den == 0:
        return None
    right = pref & np.isfinite(m_arr) & (h_arr * np.nan_to_num(m_arr, nan=0.0) > 0)
    return float(w_arr[right].sum()) / den


def _sorted_parts(h: np.ndarray, m: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    scored = np.isfinite(m)
    absm = np.abs(m[scored])
    order = np.argsort(absm, kind="stable")
    hs, ms, ws = h[scored][order], m[scored][order], w[scored][order]
    consistent = ws * ((hs != 0) & (hs * ms > 0))
    truth_tie = ws * (hs == 0)
    return absm[order], consistent, truth_tie


def tie_calibrated_accuracy(h: Sequence[float], m: Sequence[float], w: Sequence[float] | None = None) -> Calibrated:
    """Accuracy with ties at the best threshold ε ∈ {0} ∪ {|m|}; the smallest best ε is reported.

    With ε, a pair is right when both sides prefer the same candidate or both call it a tie. This is TIGER's
    ``calc_accuracy_with_ties_for_edit_reward_bench`` (EditReward-Bench, per file and overall), in O(n log n).
    """
    h_arr, m_arr, w_arr = as_arrays(h, m, w)
    total = float(w_arr.sum())
    if len(h_arr) == 0 or total == 0:
        return Calibrated(None, None, len(h_arr))
    absm, consistent, truth_tie = _sorted_parts(h_arr, m_arr, w_arr)
    if len(absm) == 0:  # nothing scored: every pair is wrong at every ε
        return Calibrated(0.0, 0.0, len(h_arr))
    ends = np.flatnonzero(np.r_[absm[1:] != absm[:-1], True])  # the last pair of each run of equal |m|
    acc = (consistent.sum() - np.cumsum(consistent)[ends] + np.cumsum(truth_tie)[ends]) / total
    eps = absm[ends]
    if eps[0] > 0:  # ε = 0 with no zero gap: no judge tie at all
        acc, eps = np.r_[consistent.sum() / total, acc], np.r_[0.0, eps]
    best = int(np.argmax(acc))  # first maximum = smallest ε, as TIGER's strict '>' keeps the first
    return Calibrated(float(acc[best]), float(eps[best]), len(h_arr))


def tie_calibrated_sweep(h: Sequence[float], m: Sequence[float], w: Sequence[float] | None = None) -> Calibrated:
    """TIGER's ``calc_accuracy_with_ties`` (its GenAI-Bench / AURORA "paper metric"), reproduced exactly.

    Pairs are sorted by |m| (stable: input order among equal |m|); after the k-th pair the first k pairs count as
    judge ties and the rest do not, and the best of these n states is kept (first maximum). Unlike
    :func:`tie_calibrated_accuracy`, a state may tie only part of a run of equal |m| (so it depends on input
    order when scores are coarse, e.g. integers), and the state with no tie at all is never a candidate.
    """
    h_arr, m_arr, w_arr = as_arrays(h, m, w)
    total = float(w_arr.sum())
    if len(h_arr) == 0 or total == 0:
        return Calibrated(None, None, len(h_arr))
    absm, consistent, truth_tie = _sorted_parts(h_arr, m_arr, w_arr)
    if len(absm) == 0:
        return Calibrated(0.0, None, len(h_arr))
    acc = (consistent.sum() - np.cumsum(consistent) + np.cumsum(truth_tie)) / total
    best = int(np.argmax(acc))
    return Calibrated(float(acc[best]), float(absm[best]), len(h_arr))


# ---------------------------------------------------------------------------------------------------------------
# Rankings


class RankingError(ValueError):
    """A ranking string that cannot be read for K candidates."""


_TWO_WAY = {"A>B": (0, 1), "B>A": (1, 0), "A<B": (1, 0), "B<A": (0, 1), "A=B": (0, 0), "A=B=Good": (0, 0), "A=B=Bad": (0, 0)}
_TIERED = re.compile(r"^[A-Z](?:[>=][A-Z])*$")


def parse_ranking(text: Any, k: int) -> tuple[int, ...]:
    """Tier of each of ``k`` candidates (0 = best; equal tiers = tie) from a ranking string.

    Two candidates: "A>B", "B>A", "A<B" (B better, as TIGER reads it), "A=B", "A=B=Good", "A=B=Bad". Any K: letters
    joined by '>' (better first) or '=' (tie), each of the first K letters exactly once, e.g. "C>A>B", "A>B=C>D".
    """
    if not isinstance(text, str):
        raise RankingError(f"the ranking must be a string, got {type(text).__name__}")
    s = re.sub(r"\s+", "", text)
    if k < 2:
        raise RankingError(f"a ranking needs at least 2 candidates, got {k}")
    if k == 2 and s in _TWO_WAY:
        return _TWO_WAY[s]
    if not _TIERED.match(s):
        raise RankingError(f"unknown ranking {text!r} (expected letters joined by '>' or '=', e.g. 'C>A>B')")
    letters = s[::2]
    expected = [chr(ord("A") + i) for i in range(k)]
    if sorted(letters) != expected:
        raise RankingError(f"ranking {text!r} must name each of {''.join(expected)} exactly once")
    tiers = [0] * k
    tier = 0
    for i, letter in enumerate(letters):
        if i > 0 and s[2 * i - 1] == ">":
            tier += 1
        tiers[ord(letter) - ord("A")] = tier
    return tuple(tiers)


def truth_pairs(truth: Sequence[float]) -> list[tuple[int, int, int]]:
    """``(i, j, h)`` for every i < j, with ``h = sign(truth_i − truth_j)`` (truth: higher is better)."""
    return [(i, j, int(np.sign(truth[i] - truth[j]))) for i, j in combinations(range(len(truth)), 2)]


def group_accuracy(
    pair_item: np.ndarray, h: np.ndarray, m: np.ndarray, epsilon: float | None, n_items: int, w: np.ndarray | None = None
) -> float | None:
    """Share of items whose every pair is right: human ties need ``|m| <= ε``, preferences a strictly right sign
    (``epsilon=None``: no judge tie allowed). Items are weighted by ``w`` (per item)."""
    if n_items == 0:
        return None
    eps = -1.0 if epsilon is None else epsilon
    scored = np.isfinite(m)
    mm = np.where(scored, m, 0.0)
    right = scored & np.where(h == 0, np.abs(mm) <= eps, (h * mm > 0) & (np.abs(mm) > eps))
    wrong_items = np.zeros(n_items, dtype=bool)
    np.logical_or.at(wrong_items, pair_item[~right], True)
    has_pair = np.zeros(n_items, dtype=bool)
    has_pair[pair_item] = True
    wi = np.ones(n_items) if w is None else np.asarray(w, dtype=float)
    den = float(wi[has_pair].sum())
    return float(wi[has_pair & ~wrong_items].sum()) / den if den > 0 else None


def tiger_ranking_correct(tiers: Sequence[int], scores: Sequence[float], epsilon: float | None) -> bool:
    """TIGER's "strict ranking accuracy" for one item (``evaluate_edit_reward_bench``, stage 2), exactly.

    A two-way human tie is right when ``|Δ| <= ε`` (ε from the 2-pair file's tie calibration); otherwise the
    judge's order — ``argsort(scores)`` reversed, so among equal scores the later candidate ranks first — must
    equal the human order. A K ≥ 3 ranking with a tie is unreadable to TIGER and never right; so is any unscored
    candidate here.
    """
    s = np.asarray(scores, dtype=float)
    if len(s) != len(tiers) or not np.all(np.isfinite(s)):
        return False
    if len(s) == 2 and tiers[0] == tiers[1]:
        return epsilon is not None and abs(s[0] - s[1]) <= epsilon
    if len(set(tiers)) != len(tiers):
        return False
    human = tuple(sorted(range(len(tiers)), key=lambda i: tiers[i]))
    judge = tuple(int(i) for i in np.argsort(s, kind="stable")[::-1])
    return human == judge


def macro_average(values: dict[str, float | None]) -> float | None:
    """Unweighted mean over the defined values (EditScore averages per-task-type accuracies this way)."""
    defined = [v for v in values.values() if v is not None]
    return sum(defined) / len(defined) if defined else None


def bootstrap_intervals(
    statistic: Callable[[np.ndarray], dict[str, float | None]],
    n_groups: int,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """Percentile intervals of every number ``statistic(group_weights)`` returns, resampling groups with
    replacement (weights = how often each group was drawn). A number undefined in some resample gets no interval."""
    point = statistic(np.ones(n_groups))
    if n_resamples <= 0:
        return {k: {"low": None, "high": None, "reason": "bootstrap off"} for k in point}
    if n_groups < 2:
        return {k: {"low": None, "high": None, "reason": "a bootstrap over groups needs at least 2 groups"} for k in point}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in point}
    undefined = dict.fromkeys(point, 0)
    for _ in range(n_resamples):
        gw = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups).astype(float)
        values = statistic(gw)
        for k in draws:
            v = values.get(k)  # a number missing from a replicate (no group of its subset drawn) is undefined there
            if v is None or not math.isfinite(v):
                undefined[k] += 1
            else:
                draws[k].append(v)
    alpha = (1 - level) / 2
    out: dict[str, dict[str, Any]] = {}
    for k in point:
        if point[k] is None:
            out[k] = {"low": None, "high": None, "reason": "the metric itself is undefined"}
        elif undefined[k]:
            out[k] = {"low": None, "high": None, "reason": f"undefined in {undefined[k]} of {n_resamples} resamples"}
        else:
            low, high = np.quantile(draws[k], [alpha, 1 - alpha])
            out[k] = {"low": float(low), "high": float(high)}
    return out
