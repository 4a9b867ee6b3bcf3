"""Paired comparison of judges that scored the same items: differences to a baseline with bootstrap intervals.

Every judge is restricted to the ids all judges share, and one resample of *groups* (taken from the baseline's
records) is applied to all judges at once, so the interval of a difference reflects the pairing. A difference whose
interval excludes 0 is flagged ``clear``.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from editjudge.evaluate.metrics import _f, _headline, json_safe, _prepare
from editjudge.evaluate.records import EvalRecord, as_records


def compare_judges(
    records_by_judge: Mapping[str, Sequence[EvalRecord | Mapping[str, Any]]],
    *,
    baseline: str | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    confidence_level: float = 0.95,
    pair_truth: str = "label",
) -> dict[str, Any]:
    """Headline metrics of each judge minus the baseline's (default: the first judge), on the shared items."""
    names = list(records_by_judge)
    if len(names) < 2:
        raise ValueError("a comparison needs at least two judges")
    baseline = names[0] if baseline is None else baseline
    if baseline not in records_by_judge:
        raise ValueError(f"baseline {baseline!r} is not one of the judges {names}")
    recs = {n: as_records(records_by_judge[n]) for n in names}
    by_id = {n: {r.id: r for r in recs[n]} for n in names}
    common = [r.id for r in recs[baseline] if all(r.id in by_id[n] for n in names)]
    out: dict[str, Any] = {"baseline": baseline, "n_common": len(common),
                           "n_by_judge": {n: len(recs[n]) for n in names}}
    if not common:
        return out | {"reason": "the judges share no item id: they did not score the same items", "differences": {}}
    group_of = {i: by_id[baseline][i].group for i in common}
    arrays = {
        n: _prepare([dataclasses.replace(by_id[n][i], group=group_of[i]) for i in common], pair_truth)[0]
        for n in names
    }
    n_groups = arrays[baseline].n_groups
    others = [n for n in names if n != baseline]
    ones = np.ones(n_groups)
    points = {n: _headline(arrays[n], ones) for n in names}
    keys = list(points[baseline])

    def diff(values: dict[str, dict[str, float | None]], n: str, k: str) -> float:
        a, b = values[n][k], values[baseline][k]
        return np.nan if a is None or b is None else a - b

    # One row per (judge, metric): the bootstrap's finite-ness and its interval bounds.
    bounds: list[tuple[float | None, float | None]] | None = None
    reason = None
    if bootstrap and n_groups >= 2:
        from scipy import stats

        def statistic(groups: np.ndarray) -> np.ndarray:
            gw = np.bincount(groups.astype(np.int64), minlength=n_groups).astype(float)
            values = {n: _headline(arrays[n], gw) for n in names}
            return np.array([diff(values, n, k) for n in others for k in keys])

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap((np.arange(n_groups),), statistic, vectorized=False, n_resamples=bootstrap,
                                  confidence_level=confidence_level, method="percentile",
                                  rng=np.random.default_rng(seed))
        dist = np.atleast_2d(res.bootstrap_distribution)
        low, high = np.atleast_1d(res.confidence_interval.low), np.atleast_1d(res.confidence_interval.high)
        bounds = [
            (_f(low[r]), _f(high[r])) if np.isfinite(dist[r]).all() else (None, None) for r in range(len(dist))
        ]
    elif bootstrap:
        reason = "a bootstrap over groups needs at least 2 groups"

    differences: dict[str, Any] = {}
    row = 0
    for n in others:
        table: dict[str, Any] = {}
        for k in keys:
            entry: dict[str, Any] = {"value": _f(diff(points, n, k))}
            if bounds is not None:
                lo, hi = bounds[row]
                entry |= {"low": lo, "high": hi, "clear": None if lo is None or hi is None else bool(lo > 0 or hi < 0)}
            elif reason:
                entry |= {"low": None, "high": None, "reason": reason}
            table[k] = entry
            row += 1
        differences[n] = table
    out |= {
        "n_groups": n_groups,
        "bootstrap": {"method": "percentile", "resample": "groups, paired across judges", "n_resamples": bootstrap,
                      "confidence_level": confidence_level, "seed": seed},
        "differences": differences,
    }
    return json_safe(out)
