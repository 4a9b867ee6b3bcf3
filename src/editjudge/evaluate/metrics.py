"""How good is a judge: format, accuracy, correlation, pairwise and best-of-N metrics with bootstrap intervals.

Every metric is defined in ``docs/evaluate.md``. In short:

* **parse / format rate** — share of records whose answer gave a 0–9 score / whose response is well-formed *with*
  a ``<think>`` block (read from ``raw`` with :func:`editjudge.answer.parse_response`).
* **accuracy** (exact, ±1, ±2) over labelled records; an unparsable answer counts as wrong. **MAE** over labelled
  records that have a score (the excluded count is reported).
* **correlations** (Spearman, Kendall τ-b, Pearson; scipy) of ``pred`` — and of ``expected_score`` when present —
  against ``label`` and ``gt_score``; unscored records are left out and counted; undefined → ``None`` + reason.
* **pairwise accuracy** within groups, on the *ranking score* (``expected_score`` when present, else the Avg@k
  ``mean_score``, else ``pred``):
  ``strict`` as EditScore reports it (pairs with a ground-truth preference; judge ties and unscored items count
  wrong) and ``with_ties`` as EditReward-Bench reports it (accuracy with ties + tie calibration, Deutsch et al.
  2023, "Ties Matter", arXiv:2305.14324); ``ranking`` is the same tie-calibrated accuracy over groups of ≥ 3
  records only, with the share of those groups ranked right in every pair. All three come from
  :mod:`editjudge.evaluate.pairwise`, which ``editjudge bench`` uses too.
* **best-of-N** per group: the true value of the judge's pick against the oracle best and a uniformly random
  pick, as exact expectations over tie-breaks and random picks.
* **bootstrap** percentile intervals, resampling *groups* (records without a group are their own group).

The output is plain JSON: no NaN or infinity anywhere; an undefined number is ``None`` next to a ``reason``.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from editjudge.answer import parse_response
from editjudge.evaluate import pairwise
from editjudge.evaluate.failures import top_reasons
from editjudge.evaluate.records import EvalRecord, as_records
from editjudge.prompts import SCORE_MAX, SCORE_MIN

LABELS = tuple(range(SCORE_MIN, SCORE_MAX + 1))
MIN_CORRELATION_N = 3
MAX_PAIRS = 20_000_000  # all pairs inside groups; beyond this pairwise metrics are skipped with a reason
PAIR_TRUTHS = ("label", "gt_score")


def _undefined(reason: str, **extra: Any) -> dict[str, Any]:
    return {"value": None, "reason": reason, **extra}


def _f(x: float | np.floating) -> float | None:
    """A JSON-safe float: NaN and infinities become None."""
    x = float(x)
    return x if math.isfinite(x) else None


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None


@dataclass
class _Arrays:
    """Records as numeric arrays (NaN = missing) plus the precomputed within-group pairs and best-of-N sets."""

    n: int
    label: np.ndarray
    pred: np.ndarray
    expected: np.ndarray
    gt: np.ndarray
    rank_score: np.ndarray
    group: np.ndarray  # group code per record, 0..n_groups-1
    n_groups: int
    # pairs (i < j inside one group, both with pair truth)
    pair_group: np.ndarray
    pair_h: np.ndarray  # sign of truth_i - truth_j
    pair_m: np.ndarray  # rank_score_i - rank_score_j, NaN when either is unscored
    pairs_skipped: str | None
    # best-of-N, one row per evaluated group
    bon_group: np.ndarray
    bon_stats: np.ndarray  # columns: pick, oracle, random, hit, win, unscored


def _group_codes(records: Sequence[EvalRecord]) -> tuple[np.ndarray, int]:
    codes: dict[tuple[str, str | int], int] = {}
    out = np.empty(len(records), dtype=np.int64)
    for i, rec in enumerate(records):
        key: tuple[str, str | int] = ("group", rec.group) if rec.group is not None else ("record", i)
        out[i] = codes.setdefault(key, len(codes))
    return out, len(codes)


def _best_of_n_group(value: np.ndarray, score: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """Exact expectations for one group: uniform tie-breaking among the judge's top scores, uniform random pick."""
    scored = np.isfinite(score)
    if scored.any():
        top = np.nanmax(score)
        picks = np.flatnonzero(scored & (score == top))
    else:
        picks = np.arange(len(value))  # nothing scored: the judge's pick is a random one
    oracle = float(value.max())
    pick_vals = value[picks]
    wins = (pick_vals[:, None] > value[None, :]) + 0.5 * (pick_vals[:, None] == value[None, :])
    return (
        float(pick_vals.mean()),
        oracle,
        float(value.mean()),
        float((pick_vals == oracle).mean()),
        float(wins.mean()),
        float(not scored.any()),
    )


def _prepare(records: Sequence[EvalRecord], pair_truth: str) -> tuple[_Arrays, dict[str, Any]]:
    def col(name: str) -> np.ndarray:
        return np.array([np.nan if getattr(r, name) is None else float(getattr(r, name)) for r in records])

    label, pred, expected, gt = col("label"), col("pred"), col("expected_score"), col("gt_score")
    mean = np.where(np.isfinite(pred), col("mean_score"), np.nan)  # an Avg@k mean only counts with an answer
    # Ranking score: the expected score, else the Avg@k mean, else the answer — finest first.
    sources = np.where(np.isfinite(expected), 0, np.where(np.isfinite(mean), 1, np.where(np.isfinite(pred), 2, 3)))
    rank_score = np.choose(sources, [expected, mean, pred, np.full(len(records), np.nan)])
    group, n_groups = _group_codes(records)
    info: dict[str, Any] = {}
    used = sorted(set(sources[sources < 3].tolist()))
    names = ("expected_score", "mean_score", "pred")
    info["ranking_score"] = (
        None if not used else names[used[0]] if len(used) == 1 else ", else ".join(names[u] for u in used)
    )

    # Pairs inside groups.
    truth = label if pair_truth == "label" else gt
    members: dict[int, list[int]] = {}
    for i in np.flatnonzero(np.isfinite(truth)):
        members.setdefault(int(group[i]), []).append(int(i))
    total_pairs = sum(len(m) * (len(m) - 1) // 2 for m in members.values())
    pairs_skipped = None
    pg, ph, pm = [], [], []
    if total_pairs > MAX_PAIRS:
        pairs_skipped = f"{total_pairs} pairs inside groups exceed the limit of {MAX_PAIRS}; check the grouping"
    else:
        for g, idx_list in members.items():
            if len(idx_list) < 2:
                continue
            idx = np.asarray(idx_list)
            iu, ju = np.triu_indices(len(idx), 1)
            a, b = idx[iu], idx[ju]
            pg.append(np.full(len(a), g, dtype=np.int64))
            ph.append(np.sign(truth[a] - truth[b]))
            pm.append(rank_score[a] - rank_score[b])
    cat = lambda parts, dtype: np.concatenate(parts) if parts else np.empty(0, dtype=dtype)  # noqa: E731

    # Best-of-N: value = gt_score when every record with a truth has one, else the label.
    has_truth = np.isfinite(label) | np.isfinite(gt)
    use_gt = bool(has_truth.any()) and bool(np.isfinite(gt)[has_truth].all())
    value = gt if use_gt else label
    info["best_of_n_value"] = "gt_score" if use_gt else "label"
    bon_members: dict[int, list[int]] = {}
    for i in np.flatnonzero(np.isfinite(value)):
        bon_members.setdefault(int(group[i]), []).append(int(i))
    bon_group, bon_rows = [], []
    for g, idx_list in bon_members.items():
        if len(idx_list) >= 2:
            idx = np.asarray(idx_list)
            bon_group.append(g)
            bon_rows.append(_best_of_n_group(value[idx], rank_score[idx]))

    arrays = _Arrays(
        n=len(records),
        label=label,
        pred=pred,
        expected=expected,
        gt=gt,
        rank_score=rank_score,
        group=group,
        n_groups=n_groups,
        pair_group=cat(pg, np.int64),
        pair_h=cat(ph, float),
        pair_m=cat(pm, float),
        pairs_skipped=pairs_skipped,
        bon_group=np.asarray(bon_group, dtype=np.int64),
        bon_stats=np.asarray(bon_rows, dtype=float).reshape(-1, 6),
    )
    return arrays, info


# ---------------------------------------------------------------------------------------------------------------
# Metric kernels. Each takes record weights ``rw`` (or group weights ``gw``): all ones for the point estimate, the
# multiplicity of each resampled group for a bootstrap replicate. The point estimate and the intervals therefore
# come from the same code.


def _accuracy(a: _Arrays, rw: np.ndarray) -> dict[str, Any]:
    labelled = np.isfinite(a.label)
    n = float(rw[labelled].sum())
    if n == 0:
        return {"n": 0, "reason": "no record has a label"} | {k: None for k in ("exact", "within_1", "within_2")}
    diff = np.abs(a.pred - a.label)  # NaN for unparsed → every comparison False → wrong
    out: dict[str, Any] = {"n": int(labelled.sum())}
    for key, tol in (("exact", 0), ("within_1", 1), ("within_2", 2)):
        hit = labelled & np.isfinite(diff) & (diff <= tol)
        out[key] = float(rw[hit].sum()) / n
    return out


def _mae(a: _Arrays, rw: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    labelled = np.isfinite(a.label)
    ok = labelled & np.isfinite(score)
    excluded = int((labelled & ~np.isfinite(score)).sum())
    if not ok.any():
        return _undefined("no labelled record has a score", n=0, n_excluded=excluded)
    w = rw[ok]
    return {
        "value": float((w * np.abs(score[ok] - a.label[ok])).sum() / w.sum()),
        "n": int(ok.sum()),
        "n_excluded": excluded,
    }


def _correlation(x: np.ndarray, y: np.ndarray, idx: np.ndarray | None = None) -> dict[str, Any]:
    """Spearman, Kendall τ-b and Pearson of x (judge) against y (truth) over records where both are present."""
    from scipy import stats

    ok = np.isfinite(x) & np.isfinite(y)
    n_truth = int(np.isfinite(y).sum())
    if idx is not None:
        x, y, ok = x[idx], y[idx], ok[idx]
    xs, ys = x[ok], y[ok]
    out: dict[str, Any] = {"n": int(ok.sum()), "n_excluded": n_truth - int(np.isfinite(x[np.isfinite(y)]).sum())}
    reason = None
    if len(xs) < MIN_CORRELATION_N:
        reason = f"needs at least {MIN_CORRELATION_N} records with both values, found {len(xs)}"
    elif np.ptp(xs) == 0:
        reason = "the judge's scores are constant"
    elif np.ptp(ys) == 0:
        reason = "the ground truth is constant"
    for name, fn in (("spearman", stats.spearmanr), ("kendall", stats.kendalltau), ("pearson", stats.pearsonr)):
        if reason is not None:
            out[name] = _undefined(reason, p_value=None)
            continue
        res = fn(xs, ys)
        value, p = _f(res.statistic), _f(res.pvalue)
        out[name] = {"value": value, "p_value": p} if value is not None else _undefined("scipy returned NaN")
    return out


def _pairwise_strict(a: _Arrays, gw: np.ndarray) -> dict[str, Any]:
    """EditScore's pairwise accuracy (:func:`editjudge.evaluate.pairwise.strict_accuracy`)."""
    if a.pairs_skipped:
        return _undefined(a.pairs_skipped, n_pairs=0)
    value = pairwise.strict_accuracy(a.pair_h, a.pair_m, gw[a.pair_group])
    if value is None:
        return _undefined("no pair inside a group has a ground-truth preference", n_pairs=0)
    pref = a.pair_h != 0
    m = a.pair_m[pref]
    return {
        "value": value,
        "n_pairs": int(pref.sum()),
        "n_judge_ties": int((np.isfinite(m) & (m == 0)).sum()),
        "n_unscored": int((~np.isfinite(m)).sum()),
    }


def _pairwise_with_ties(a: _Arrays, gw: np.ndarray) -> dict[str, Any]:
    """EditReward-Bench's accuracy with ties, tie-calibrated (:func:`editjudge.evaluate.pairwise.tie_calibrated_accuracy`).

    Over *all* pairs in groups (truth ties included); pairs with an unscored item count wrong at every ε.
    """
    if a.pairs_skipped:
        return _undefined(a.pairs_skipped, n_pairs=0)
    w = gw[a.pair_group]
    if float(w.sum()) == 0:
        return _undefined("no group has two or more labelled records", n_pairs=0)
    m, h = a.pair_m, a.pair_h
    base = {"n_pairs": int(len(m)), "n_truth_ties": int((h == 0).sum()), "n_unscored": int((~np.isfinite(m)).sum())}
    if not np.isfinite(m).any():  # every pair has an unscored item: all wrong, whatever ε
        return {"value": 0.0, "epsilon": None, "value_at_epsilon_0": 0.0} | base
    cal = pairwise.tie_calibrated_accuracy(h, m, w)
    return {"value": cal.value, "epsilon": cal.epsilon,
            "value_at_epsilon_0": pairwise.accuracy_with_ties_at(h, m, 0.0, w)} | base


def _ranking(a: _Arrays, gw: np.ndarray) -> dict[str, Any]:
    """Ranking accuracy over groups of >= 3 labelled records: the tie-calibrated accuracy of their pairs (as
    ``with_ties``, as EditReward-Bench scores its 3- and 4-way items) and the share of those groups with every pair
    right at that ε (:func:`editjudge.evaluate.pairwise.group_accuracy`)."""
    if a.pairs_skipped:
        return _undefined(a.pairs_skipped, n_groups=0)
    per_group = np.bincount(a.pair_group, minlength=a.n_groups)  # n(n-1)/2 pairs: >= 3 means >= 3 records
    big = per_group[a.pair_group] >= 3
    if not big.any():
        return _undefined("no group has three or more labelled records", n_groups=0)
    cal = pairwise.tie_calibrated_accuracy(a.pair_h[big], a.pair_m[big], gw[a.pair_group][big])
    return {
        "value": cal.value,
        "epsilon": cal.epsilon,
        "all_pairs_right": pairwise.group_accuracy(a.pair_group[big], a.pair_h[big], a.pair_m[big], cal.epsilon,
                                                   a.n_groups, gw),
        "n_groups": int((per_group >= 3).sum()),
        "n_pairs": int(big.sum()),
    }


def _best_of_n(a: _Arrays, gw: np.ndarray) -> dict[str, Any]:
    if len(a.bon_group) == 0:
        return _undefined("no group has two or more records with a ground truth", n_groups=0)
    w = gw[a.bon_group]
    if w.sum() == 0:
        return _undefined("no group drawn", n_groups=0)
    pick, oracle, rand, hit, win, _ = (w @ a.bon_stats) / w.sum()
    sizes = np.bincount(a.group)[a.bon_group]
    return {
        "n_groups": int(len(a.bon_group)),
        "mean_group_size": float(sizes.mean()),
        "pick": float(pick),
        "oracle": float(oracle),
        "random": float(rand),
        "regret": float(oracle - pick),
        "gain_over_random": float(pick - rand),
        "oracle_gain_captured": _ratio(pick - rand, oracle - rand) if oracle - rand > 1e-12 else None,
        "hit_rate": float(hit),
        "win_rate_vs_random": float(win),
        "n_groups_unscored": int(a.bon_stats[:, 5].sum()),
    }


# ---------------------------------------------------------------------------------------------------------------


def _parsed(rec: EvalRecord) -> Any:
    """The record's raw response read by its judgment format (pointwise unless ``format`` names another)."""
    if rec.format is None:
        return parse_response(rec.raw)
    from editjudge.formats import get_format

    return get_format(rec.format).parse(rec.raw)


def _error_kind(rec: EvalRecord) -> str:
    """Why a record has no score: the parse reason, or the failure kind before ``':'`` for unjudged items."""
    if rec.error and ": " in rec.error:
        return rec.error.split(": ", 1)[0]
    if rec.error:
        return rec.error
    if rec.raw is not None:
        return _parsed(rec).error or "no_answer"
    return "no_answer"


def _why(rec: EvalRecord) -> str:
    """The whole reason a record has no score: its error message, else the parse reason and the response."""
    if rec.error:
        return rec.error
    return f"{_error_kind(rec)}: {rec.raw!r}" if rec.raw is not None else "no_answer"


def _format(records: Sequence[EvalRecord]) -> dict[str, Any]:
    n = len(records)
    parsed = sum(r.pred is not None for r in records)
    with_raw = [r for r in records if r.raw is not None]
    out: dict[str, Any] = {
        "n": n,
        "n_parsed": parsed,
        "parse_rate": parsed / n,
        "errors": dict(sorted(Counter(_error_kind(r) for r in records if r.pred is None).items())),
        "reasons": top_reasons([r for r in records if r.pred is None], _why),  # with an example each
    }
    if with_raw:
        well = sum(_parsed(r).has_think for r in with_raw)
        out |= {"format_rate": well / len(with_raw), "n_with_raw": len(with_raw)}
    else:
        out |= {"format_rate": None, "n_with_raw": 0, "format_reason": "no record carries the raw response"}
    return out


def _per_label(a: _Arrays) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in LABELS:
        mask = a.label == k
        if not mask.any():
            continue
        p = a.pred[mask]
        diff = np.abs(p - k)
        ok = np.isfinite(p)
        out[str(k)] = {
            "n": int(mask.sum()),
            "exact": float((ok & (diff == 0)).mean()),
            "within_1": float((ok & (diff <= 1)).mean()),
            "within_2": float((ok & (diff <= 2)).mean()),
            "parse_rate": float(ok.mean()),
            "mean_pred": float(p[ok].mean()) if ok.any() else None,
            "mae": float(diff[ok].mean()) if ok.any() else None,
        }
    return out


def _confusion(a: _Arrays) -> dict[str, Any]:
    """Rows: true label 0–9; columns: predicted 0–9, then one column for unparsed answers."""
    matrix = np.zeros((len(LABELS), len(LABELS) + 1), dtype=np.int64)
    for t, p in zip(a.label, a.pred):
        if np.isfinite(t):
            matrix[int(t), int(p) if np.isfinite(p) else len(LABELS)] += 1
    return {"rows": "label", "columns": [str(k) for k in LABELS] + ["unparsed"], "matrix": matrix.tolist()}


# Headline numbers that get bootstrap intervals: name → function of (arrays, group weights).
def _headline(a: _Arrays, gw: np.ndarray) -> dict[str, float | None]:
    rw = gw[a.group]
    idx = np.repeat(np.arange(a.n), rw.astype(np.int64))
    acc = _accuracy(a, rw)
    corr = _correlation(a.pred, a.label, idx)
    bon = _best_of_n(a, gw)
    total = rw.sum()
    return {
        "parse_rate": float(rw[np.isfinite(a.pred)].sum() / total) if total else None,
        "accuracy.exact": acc["exact"],
        "accuracy.within_1": acc["within_1"],
        "accuracy.within_2": acc["within_2"],
        "mae.value": _mae(a, rw, a.pred)["value"],
        "correlation.pred_vs_label.spearman": corr["spearman"]["value"],
        "correlation.pred_vs_label.kendall": corr["kendall"]["value"],
        "correlation.pred_vs_label.pearson": corr["pearson"]["value"],
        "pairwise.strict": _pairwise_strict(a, gw)["value"],
        "pairwise.with_ties": _pairwise_with_ties(a, gw)["value"],
        "pairwise.ranking": _ranking(a, gw)["value"],
        "best_of_n.regret": bon.get("regret"),
        "best_of_n.win_rate_vs_random": bon.get("win_rate_vs_random"),
    }


def _bootstrap(
    a: _Arrays, point: dict[str, float | None], n_resamples: int, seed: int, level: float, progress: bool = False
) -> dict:
    from scipy import stats
    from tqdm.auto import tqdm

    names = list(point)
    summary = {
        "method": "percentile",
        "resample": "groups (records without a group are their own group)",
        "n_resamples": n_resamples,
        "n_groups": a.n_groups,
        "confidence_level": level,
        "seed": seed,
    }
    if a.n_groups < 2:
        reason = "a bootstrap over groups needs at least 2 groups"
        return summary | {"intervals": {k: {"low": None, "high": None, "reason": reason} for k in names}}

    bar = tqdm(total=n_resamples, desc="bootstrap", unit="resample", disable=not progress, leave=False)

    def statistic(groups: np.ndarray) -> np.ndarray:
        gw = np.bincount(groups.astype(np.int64), minlength=a.n_groups).astype(float)
        values = _headline(a, gw)
        bar.update(1)
        return np.array([np.nan if values[k] is None else values[k] for k in names])

    with warnings.catch_warnings(), bar:
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            (np.arange(a.n_groups),),
            statistic,
            vectorized=False,
            n_resamples=n_resamples,
            confidence_level=level,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    dist = np.atleast_2d(res.bootstrap_distribution)
    low, high = np.atleast_1d(res.confidence_interval.low), np.atleast_1d(res.confidence_interval.high)
    intervals: dict[str, Any] = {}
    for i, name in enumerate(names):
        undefined = int((~np.isfinite(dist[i])).sum())
        if point[name] is None:
            intervals[name] = {"low": None, "high": None, "reason": "the metric itself is undefined"}
        elif undefined:
            intervals[name] = {
                "low": None,
                "high": None,
                "reason": f"undefined in {undefined} of {n_resamples} resamples (too few groups)",
            }
        else:
            intervals[name] = {"low": _f(low[i]), "high": _f(high[i]), "std_error": _f(np.std(dist[i], ddof=1))}
    return summary | {"intervals": intervals}


def json_safe(obj: Any) -> Any:
    """Recursively turn numpy scalars into Python numbers and any non-finite float into None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _f(obj)
    return obj


def compute_metrics(
    records: Iterable[EvalRecord | dict[str, Any]],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    confidence_level: float = 0.95,
    pair_truth: str = "label",
    progress: bool = False,
) -> dict[str, Any]:
    """All metrics for one judge's records (see the module docstring and ``docs/evaluate.md``).

    ``records`` are :class:`EvalRecord` or mappings with the same keys (a predictions JSONL line works).
    ``bootstrap`` is the number of resamples for the confidence intervals (0 turns them off); ``pair_truth``
    orders pairs by ``label`` (default: the 0–9 scale the judge answers on) or by the raw ``gt_score``;
    ``progress`` shows a tqdm bar over the bootstrap resamples. Raises ``ValueError`` on empty input or bad records.
    """
    recs = as_records(records)
    if not recs:
        raise ValueError("no records to evaluate: the input is empty (check the predictions file / dump folder)")
    if pair_truth not in PAIR_TRUTHS:
        raise ValueError(f"pair_truth must be one of {PAIR_TRUTHS}, got {pair_truth!r}")
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0, got {bootstrap}")
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level}")
    a, info = _prepare(recs, pair_truth)
    ones = np.ones(a.n_groups)
    rw = ones[a.group]
    labelled = int(np.isfinite(a.label).sum())

    correlation: dict[str, Any] = {}
    for judge_name, judge in (("pred", a.pred), ("expected", a.expected)):
        if judge_name == "expected" and not np.isfinite(judge).any():
            continue
        for truth_name, truth in (("label", a.label), ("gt_score", a.gt)):
            if np.isfinite(truth).any():
                correlation[f"{judge_name}_vs_{truth_name}"] = _correlation(judge, truth)

    metrics: dict[str, Any] = {
        "n": a.n,
        "n_labelled": labelled,
        "n_with_gt_score": int(np.isfinite(a.gt).sum()),
        "n_groups": a.n_groups,
        "format": _format(recs),
        "accuracy": _accuracy(a, rw),
        "mae": _mae(a, rw, a.pred),
        "correlation": correlation,
        "pairwise": {
            "truth": pair_truth,
            "ranking_score": info["ranking_score"],
            "strict": _pairwise_strict(a, ones),
            "with_ties": _pairwise_with_ties(a, ones),
            "ranking": _ranking(a, ones),
        },
        "best_of_n": {"truth": info["best_of_n_value"], "ranking_score": info["ranking_score"]}
        | _best_of_n(a, ones),
        "per_label": _per_label(a),
        "confusion": _confusion(a),
    }
    # Items the judge could not judge at all (bad input, server error) keep their label and count as wrong answers
    # in accuracy; how many they were is reported beside it.
    failure_kinds = ("input_error", "backend_error")
    metrics["accuracy"]["n_failed"] = sum(
        1 for r in recs if r.label is not None and r.error is not None and r.error.startswith(failure_kinds)
    )
    if np.isfinite(a.expected).any():
        metrics["mae_expected"] = _mae(a, rw, a.expected)
    rewards = [r.reward for r in recs if r.reward is not None]
    if rewards:
        metrics["reward"] = {"mean": float(np.mean(rewards)), "n": len(rewards)}
    if bootstrap:
        metrics["bootstrap"] = _bootstrap(a, _headline(a, ones), bootstrap, seed, confidence_level, progress)
    if any(r.dimensions for r in recs):  # a dimension judge: every metric again for each dimension
        from editjudge.evaluate.dimensions import per_dimension

        metrics["dimensions"] = per_dimension(recs, lambda rs: compute_metrics(
            rs, bootstrap=bootstrap, seed=seed, confidence_level=confidence_level, pair_truth=pair_truth))
    return json_safe(metrics)


def rollout_group(rec: EvalRecord) -> str | None:
    """The GRPO group (one prompt's samples) of a verl dump record: the prompt uid of verl's v1 sample key
    ``{uid}_{rollout}_{output}`` when the record's id has that form, else the record's group (its prompt text)."""
    head, *tail = rec.id.rsplit("_", 2)
    if len(tail) == 2 and all(part.isdigit() for part in tail):
        return head
    return rec.group


def frac_reward_zero_std(records: Sequence[EvalRecord]) -> float | None:
    """The share of GRPO groups (:func:`rollout_group`, two samples or more) whose rewards are all equal — TRL's
    ``frac_reward_zero_std`` computed from verl's rollout dumps; None when no group has two rewarded samples."""
    from editjudge.reward import group_is_flat

    groups: dict[str, list[float]] = {}
    for rec in records:
        key = rollout_group(rec)
        if key is not None and rec.reward is not None:
            groups.setdefault(key, []).append(rec.reward)
    sized = [rewards for rewards in groups.values() if len(rewards) >= 2]
    return sum(group_is_flat(r) for r in sized) / len(sized) if sized else None


def per_step(records: Iterable[EvalRecord | dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per training step (records from verl dumps): mean reward, parse rate, accuracies and, for rollout
    dumps (``trainer.rollout_data_dir``), the share of groups with no reward variance (``frac_reward_zero_std``)."""
    steps: dict[int, list[EvalRecord]] = {}
    for rec in as_records(records):
        if rec.step is not None:
            steps.setdefault(rec.step, []).append(rec)
    rows = []
    for step, recs in sorted(steps.items()):
        m = compute_metrics(recs, bootstrap=0)
        row = {
            "step": step,
            "n": m["n"],
            "reward_mean": (m.get("reward") or {}).get("mean"),
            "parse_rate": m["format"]["parse_rate"],
            "format_rate": m["format"]["format_rate"],
            "exact": m["accuracy"]["exact"],
            "within_1": m["accuracy"]["within_1"],
            "within_2": m["accuracy"]["within_2"],
            "mae": m["mae"]["value"],
        }
        flat = frac_reward_zero_std(recs)
        if flat is not None:
            row["frac_reward_zero_std"] = flat
        rows.append(row)
    return rows
