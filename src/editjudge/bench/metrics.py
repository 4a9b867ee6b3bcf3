"""Each suite's own aggregation, on the shared pairwise kernels of :mod:`editjudge.evaluate.pairwise`.

Every suite function maps (pair table, candidate values, group weights) to a flat ``{name: number}``: the point
estimate uses weights of one, bootstrap replicates the multiplicity of each resampled group, so intervals cover
exactly what the table shows. Items that failed (unreadable, not judged, unparsed) carry NaN values: they stay in
every denominator and are never right (ImagenHub's correlations leave them out and count them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from editjudge.bench.suites import BenchItem, FailedItem
from editjudge.evaluate import pairwise as pw

# EditScore's calculate_statistics.py: the 13 task types and their 4 groups.
EDITSCORE_GROUPS = {
    "object": ("subject-add", "subject-remove", "subject-replace"),
    "appearance": ("color_alter", "material_alter", "style_change", "tone_transfer"),
    "scene": ("background_change", "extract"),
    "advanced": ("ps_human", "text_change", "motion_change", "compose"),
}
UNKNOWN = "unknown"


@dataclass
class Table:
    """Items (read and failed) and their within-item pairs as arrays."""

    ids: list[str]
    subset: np.ndarray  # per item
    dimension: np.ndarray  # per item
    truth: list[tuple[float, ...]]
    keys: list[tuple[str, ...] | None]  # None: the item failed before scoring
    item_group: np.ndarray
    n_groups: int
    pair_item: np.ndarray
    pair_i: np.ndarray
    pair_j: np.ndarray
    pair_h: np.ndarray
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.ids)


def _size_for(n_pairs: int) -> int:
    n = 1
    while n * (n - 1) // 2 < n_pairs:
        n += 1
    return n


def build_table(items: Sequence[BenchItem], failed: Sequence[FailedItem], keys: dict[str, tuple[str, ...]]) -> Table:
    """The pair table; an item without keys (its images could not be read) joins the failed ones."""
    ids, subset, dimension, truth, item_keys, groups = [], [], [], [], [], []
    for item in items:
        ids.append(item.id)
        subset.append(item.subset)
        dimension.append(item.dimension)
        truth.append(item.truth)
        item_keys.append(keys.get(item.id))
        groups.append(item.group)
    for bad in failed:
        n = _size_for(bad.n_pairs)
        ids.append(bad.id)
        subset.append(bad.subset or UNKNOWN)
        dimension.append(bad.dimension)
        truth.append(tuple(float(n - i) for i in range(n)))
        item_keys.append(None)
        groups.append(f"failed:{bad.id}")
    codes: dict[str, int] = {}
    item_group = np.array([codes.setdefault(g, len(codes)) for g in groups], dtype=np.int64)
    pi, pa, pb, ph = [], [], [], []
    for idx, t in enumerate(truth):
        for a, b, h in pw.truth_pairs(t):
            pi.append(idx), pa.append(a), pb.append(b), ph.append(h)
    return Table(ids, np.array(subset, dtype=object), np.array(dimension, dtype=object), truth, item_keys,
                 item_group, len(codes), np.array(pi, dtype=np.int64), np.array(pa, dtype=np.int64),
                 np.array(pb, dtype=np.int64), np.array(ph, dtype=float))


def candidate_values(table: Table, values: dict[str, float | None]) -> list[np.ndarray]:
    """Per item, each candidate's value (NaN when the item failed or the key has no value)."""
    out = []
    for t, keys in zip(table.truth, table.keys):
        if keys is None:
            out.append(np.full(len(t), np.nan))
        else:
            out.append(np.array([np.nan if values.get(k) is None else float(values[k]) for k in keys]))
    return out


def pair_diffs(table: Table, vals: list[np.ndarray]) -> np.ndarray:
    return np.array([vals[i][a] - vals[i][b] for i, a, b in zip(table.pair_item, table.pair_i, table.pair_j)], dtype=float)


Suite = Callable[[Table, list[np.ndarray], np.ndarray, np.ndarray], dict[str, float | None]]


def editscore(table: Table, vals: list[np.ndarray], m: np.ndarray, gw: np.ndarray) -> dict[str, float | None]:
    """Strict accuracy per dimension × task type; macro over task types, the 4 groups, and micro."""
    w = gw[table.item_group[table.pair_item]]
    psub, pdim = table.subset[table.pair_item], table.dimension[table.pair_item]
    out: dict[str, float | None] = {}
    for dim in sorted({d for d in table.dimension if d is not None}):
        in_dim = pdim == dim
        per_task = {}
        for task in sorted({s for s in psub[in_dim]}):
            mask = in_dim & (psub == task)
            per_task[task] = pw.strict_accuracy(table.pair_h[mask], m[mask], w[mask])
            out[f"{dim}/task/{task}"] = per_task[task]
        out[f"{dim}/macro"] = pw.macro_average({k: v for k, v in per_task.items() if k != UNKNOWN})
        for group, tasks in EDITSCORE_GROUPS.items():
            present = {t: per_task[t] for t in tasks if t in per_task}
            if present:
                out[f"{dim}/group/{group}"] = pw.macro_average(present)
        out[f"{dim}/micro"] = pw.strict_accuracy(table.pair_h[in_dim], m[in_dim], w[in_dim])
    undimensioned = np.array([d is None for d in pdim], dtype=bool)
    if undimensioned.any():  # failed rows whose dimension could not be read: only the count shows them
        out["unknown_dimension/micro"] = pw.strict_accuracy(table.pair_h[undimensioned], m[undimensioned], w[undimensioned])
    return out


def tiger(table: Table, vals: list[np.ndarray], m: np.ndarray, gw: np.ndarray) -> dict[str, float | None]:
    """TIGER's EditReward-Bench: strict ranking accuracy per K and over all items (the published table), pairwise
    accuracy with ties (2-pair, overall; tie-calibrated) and without ties (3-, 4-pair)."""
    w = gw[table.item_group[table.pair_item]]
    wi = gw[table.item_group]
    psub = table.subset[table.pair_item]
    out: dict[str, float | None] = {}
    eps2: float | None = None
    for subset in ("2pair", "3pair", "4pair"):
        mask = psub == subset
        if not mask.any():
            continue
        if subset == "2pair":
            cal = pw.tie_calibrated_accuracy(table.pair_h[mask], m[mask], w[mask])
            out["pairwise/2pair"], eps2 = cal.value, cal.epsilon
            out["epsilon/2pair"] = cal.epsilon
        else:
            out[f"pairwise/{subset}"] = pw.strict_accuracy(table.pair_h[mask], m[mask], w[mask])
    fixed, tie_diff = _tiger_parts(table, vals)
    correct = np.where(np.isnan(tie_diff), fixed, (tie_diff <= (eps2 if eps2 is not None else -1.0)))
    for subset in ("2pair", "3pair", "4pair", UNKNOWN):
        mask = table.subset == subset
        if mask.any() and wi[mask].sum() > 0:
            out[f"ranking/{subset}"] = float((wi * correct)[mask].sum() / wi[mask].sum())
    out["ranking/overall"] = float((wi * correct).sum() / wi.sum()) if wi.sum() > 0 else None
    overall = pw.tie_calibrated_accuracy(table.pair_h, m, w)
    out["pairwise/overall"], out["epsilon/overall"] = overall.value, overall.epsilon
    return out


def _tiger_parts(table: Table, vals: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per item: whether TIGER's ranking check passes where it does not depend on ε, and |Δ| for the 2-pair
    human ties (NaN elsewhere), computed once per set of values."""
    key = id(vals)
    if table.memo.get("tiger_key") != key:
        fixed = np.array([
            pw.tiger_ranking_correct(tuple(int(-t) for t in truth), v, None)
            for truth, v in zip(table.truth, vals)
        ], dtype=float)
        tie_diff = np.array([
            abs(v[0] - v[1]) if s == "2pair" and len(t) == 2 and t[0] == t[1] and np.isfinite(v).all() else
            (np.inf if s == "2pair" and len(t) == 2 and t[0] == t[1] else np.nan)
            for t, v, s in zip(table.truth, vals, table.subset)
        ], dtype=float)
        table.memo.update(tiger_key=key, tiger=(fixed, tie_diff))
    return table.memo["tiger"]


def genai(table: Table, vals: list[np.ndarray], m: np.ndarray, gw: np.ndarray) -> dict[str, float | None]:
    """GenAI-Bench (edit): TIGER's calc_accuracy_with_ties (sweep), plus the threshold search and without ties."""
    w = gw[table.item_group[table.pair_item]]
    sweep = pw.tie_calibrated_sweep(table.pair_h, m, w)
    thr = pw.tie_calibrated_accuracy(table.pair_h, m, w)
    return {
        "pairwise/with_ties": sweep.value,
        "epsilon/with_ties": sweep.epsilon,
        "pairwise/with_ties_threshold": thr.value,
        "epsilon/with_ties_threshold": thr.epsilon,
        "pairwise/without_ties": pw.strict_accuracy(table.pair_h, m, w),
    }


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    r = float(spearmanr(x, y).statistic)
    return r if math.isfinite(r) else None


def imagenhub(table: Table, vals: list[np.ndarray], m: np.ndarray, gw: np.ndarray) -> dict[str, float | None]:
    """ImagenHub as TIGER's evaluate_imagenhub_from_json: Spearman per editing model, averaged as
    ``tanh(mean r)`` (its code); plus evaluate_imagenhub_from_json_v2's per-prompt mean and z-scored overall."""
    pred = np.array([v[0] for v in vals])
    gt = np.array([t[0] for t in table.truth])
    reps = gw[table.item_group].astype(np.int64)
    scored = np.isfinite(pred)
    out: dict[str, float | None] = {}
    rs = []
    for model in sorted({s for s in table.subset if s != UNKNOWN}):
        idx = np.repeat(np.flatnonzero((table.subset == model) & scored), reps[(table.subset == model) & scored])
        r = _spearman(pred[idx], gt[idx])
        out[f"model/{model}"] = r
        rs.append(r)
    out["spearman/average"] = math.tanh(sum(rs) / len(rs)) if rs and all(r is not None for r in rs) else None
    per_prompt, z_pred, z_gt = [], [], []
    for g in range(table.n_groups):
        sel = np.flatnonzero((table.item_group == g) & scored)
        if len(sel) < 2 or gw[g] == 0:
            continue
        r = _spearman(pred[sel], gt[sel])
        if r is not None:
            per_prompt += [r] * int(gw[g])
        sd = float(np.std(pred[sel]))
        z = (pred[sel] - pred[sel].mean()) / sd if sd > 1e-6 else np.zeros(len(sel))
        for _ in range(int(gw[g])):
            z_pred.append(z), z_gt.append(gt[sel])
    out["spearman/per_prompt_mean"] = float(np.mean(per_prompt)) if per_prompt else None
    out["spearman/zscore_overall"] = _spearman(np.concatenate(z_pred), np.concatenate(z_gt)) if z_pred else None
    return out


def ours(table: Table, vals: list[np.ndarray], m: np.ndarray, gw: np.ndarray) -> dict[str, float | None]:
    """Our groups: strict and tie-calibrated pairwise accuracy; ranking accuracy over groups of ≥ 3 (tie-calibrated
    over their pairs, and the share of groups with every pair right at that ε)."""
    w = gw[table.item_group[table.pair_item]]
    out: dict[str, float | None] = {
        "pairwise/strict": pw.strict_accuracy(table.pair_h, m, w),
        "pairwise/with_ties": pw.tie_calibrated_accuracy(table.pair_h, m, w).value,
    }
    sizes = np.array([len(t) for t in table.truth])
    big = sizes[table.pair_item] >= 3
    if big.any():
        cal = pw.tie_calibrated_accuracy(table.pair_h[big], m[big], w[big])
        out["ranking/with_ties"], out["epsilon/ranking"] = cal.value, cal.epsilon
        wi = np.where(sizes >= 3, gw[table.item_group], 0.0)
        out["ranking/all_pairs_right"] = pw.group_accuracy(table.pair_item, table.pair_h, m, cal.epsilon, table.n_items, wi)
    for subset in sorted(set(table.subset)):
        mask = table.subset[table.pair_item] == subset
        out[f"pairwise/strict/{subset}"] = pw.strict_accuracy(table.pair_h[mask], m[mask], w[mask])
    return out


SUITES: dict[str, Suite] = {"editscore": editscore, "tiger": tiger, "genai": genai, "imagenhub": imagenhub, "ours": ours}
HEADLINE = {
    "editscore": "overall/macro",
    "tiger": "ranking/overall",
    "genai": "pairwise/with_ties",
    "imagenhub": "spearman/average",
    "ours": "pairwise/with_ties",
}


def evaluate(suite: str, table: Table, values: dict[str, float | None], bootstrap: int, seed: int) -> dict[str, Any]:
    """Point estimates and group-bootstrap intervals of every number of ``suite`` for one set of values."""
    fn = SUITES[suite]
    vals = candidate_values(table, values)
    m = pair_diffs(table, vals)
    point = fn(table, vals, m, np.ones(table.n_groups))
    intervals = pw.bootstrap_intervals(lambda gw: fn(table, vals, m, gw), table.n_groups, bootstrap, seed)
    headline = HEADLINE[suite]
    if suite == "editscore" and headline not in point:
        headline = next((k for k in point if k.endswith("/macro")), headline)
    scored = sum(int(np.isfinite(v).all()) for v in vals)
    return {
        "headline": headline,
        "value": point.get(headline),
        "numbers": point,
        "intervals": {k: v for k, v in intervals.items() if not k.startswith("epsilon/")},
        "n_items_fully_scored": scored,
        "n_pairs": int(len(m)),
        "n_pairs_unscored": int((~np.isfinite(m)).sum()),
        "n_judge_ties": int((m == 0).sum()),
    }
