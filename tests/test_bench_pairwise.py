"""The shared pairwise / ranking / tie-calibration metrics against brute force and cases worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from editjudge.evaluate import pairwise as pw


def _brute_threshold(h, m):
    """The definition, literally: every ε in {0} ∪ {|m|}, the counts by a loop, the first best kept."""
    best, best_eps = -1.0, None
    for eps in sorted({0.0} | {abs(x) for x in m if not math.isnan(x)}):
        right = 0
        for hi, mi in zip(h, m):
            if math.isnan(mi):
                continue
            tie = abs(mi) <= eps
            right += (hi == 0 and tie) or (hi != 0 and not tie and hi * mi > 0)
        acc = right / len(h)
        if acc > best:
            best, best_eps = acc, eps
    return best, best_eps


def _brute_sweep(h, m):
    """TIGER's calc_accuracy_with_ties as its docstring describes it: visit pairs by |m| (stable), tie each in turn."""
    order = sorted(range(len(h)), key=lambda i: abs(m[i]))
    best, best_eps = float("-inf"), None
    tied: set[int] = set()
    for i in order:
        tied.add(i)
        right = sum((h[j] == 0 and j in tied) or (h[j] != 0 and j not in tied and h[j] * m[j] > 0) for j in range(len(h)))
        if right / len(h) > best:
            best, best_eps = right / len(h), abs(m[i])
    return best, best_eps


@pytest.mark.parametrize("seed", range(30))
def test_tie_calibration_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    h = rng.integers(-1, 2, n).astype(float)
    m = rng.integers(-4, 5, n).astype(float) / 2  # coarse scores: many equal |Δ| and judge ties
    if seed % 3 == 0:
        m[rng.random(n) < 0.2] = np.nan  # unscored pairs
    got = pw.tie_calibrated_accuracy(h, m)
    want = _brute_threshold(h.tolist(), m.tolist())
    assert got.value == pytest.approx(want[0]) and got.epsilon == want[1]
    if not np.isnan(m).any():
        sweep = pw.tie_calibrated_sweep(h, m)
        assert (sweep.value, sweep.epsilon) == pytest.approx(_brute_sweep(h.tolist(), m.tolist()))
        assert sweep.value >= got.value - 1e-12 or got.epsilon == 0.0  # the sweep's prefixes include every threshold > 0


def test_epsilon_search_worked_by_hand() -> None:
    # (h, m): ε=0 → C=3 of 5; ε=0.5 → C=2 (pairs 1, 4) + Thm=2 → 4/5; ε=2 → 3/5; ε=3 → 2/5.
    h = [1, 0, 0, -1, 1]
    m = [3, 0.5, -0.5, -2, 0.5]
    cal = pw.tie_calibrated_accuracy(h, m)
    assert (cal.value, cal.epsilon) == (pytest.approx(0.8), 0.5)
    assert pw.accuracy_with_ties_at(h, m, 0.0) == pytest.approx(0.6)
    assert pw.suff_stats(h, m, 0.5) == pw.TieCounts(C=2, D=0, Th=0, Tm=1, Thm=2)
    # TIGER's sweep ties the two human ties before pair 5 (same |m|, input order): a state no threshold reaches.
    sweep = pw.tie_calibrated_sweep(h, m)
    assert (sweep.value, sweep.epsilon) == (pytest.approx(1.0), 0.5)
    # ... and it depends on the input order among equal |m|:
    order = [4, 1, 2, 3, 0]
    assert pw.tie_calibrated_sweep([h[i] for i in order], [m[i] for i in order]).value == pytest.approx(0.8)


def test_strict_accuracy_ignores_human_ties_and_counts_judge_ties_and_unscored_wrong() -> None:
    h = [1, 1, 0, -1, -1]
    m = [1.0, 0.0, 5.0, float("nan"), -0.5]
    assert pw.strict_accuracy(h, m) == pytest.approx(2 / 4)
    assert pw.strict_accuracy([0, 0], [1, 2]) is None
    c = pw.suff_stats(h, m, -1)  # TIGER's "without ties": C / (C + D + Tm) at ε < 0
    assert c.C / (c.C + c.D + c.Tm) == pytest.approx(2 / 4)


def test_equal_scores_everywhere() -> None:
    h, m = [1, -1, 0, 0], [0.0, 0.0, 0.0, 0.0]
    assert pw.strict_accuracy(h, m) == 0.0
    cal = pw.tie_calibrated_accuracy(h, m)
    assert (cal.value, cal.epsilon) == (0.5, 0.0)  # the two human ties are right at ε = 0
    assert pw.tie_calibrated_accuracy([1], [float("nan")]).value == 0.0
    assert pw.tie_calibrated_accuracy([], []).value is None


def test_weights_equal_duplicated_pairs() -> None:
    rng = np.random.default_rng(7)
    h = rng.integers(-1, 2, 25).astype(float)
    m = rng.integers(-3, 4, 25).astype(float)
    w = rng.integers(0, 4, 25).astype(float)
    rep = np.repeat(np.arange(25), w.astype(int))
    for fn in (pw.tie_calibrated_accuracy,):
        a, b = fn(h, m, w), fn(h[rep], m[rep])
        assert (a.value, a.epsilon) == (pytest.approx(b.value), b.epsilon)
    assert pw.strict_accuracy(h, m, w) == pytest.approx(pw.strict_accuracy(h[rep], m[rep]))


@pytest.mark.parametrize(
    ("text", "k", "tiers"),
    [
        ("A>B", 2, (0, 1)), ("B>A", 2, (1, 0)), ("A<B", 2, (1, 0)), ("A=B=Good", 2, (0, 0)), ("A=B=Bad", 2, (0, 0)),
        ("C>A>B", 3, (1, 2, 0)), ("B>C>A", 3, (2, 0, 1)), ("A>B=C>D", 4, (0, 1, 1, 2)), ("D=C>A=B", 4, (1, 1, 0, 0)),
        (" A > B ", 2, (0, 1)),
    ],
)
def test_parse_ranking(text: str, k: int, tiers: tuple[int, ...]) -> None:
    assert pw.parse_ranking(text, k) == tiers


@pytest.mark.parametrize(("text", "k"), [("A>A", 2), ("A>B>D", 3), ("A>B", 3), ("foo", 2), (None, 2), ("A<B<C", 3),
                                         ("A>>B", 2), ("A=B=Meh>C", 3), ("", 2)])
def test_unknown_rankings_are_refused(text: object, k: int) -> None:
    with pytest.raises(pw.RankingError):
        pw.parse_ranking(text, k)


def test_ranking_pairs_with_ties_k4() -> None:
    truth = [-t for t in pw.parse_ranking("A>B=C>D", 4)]
    assert pw.truth_pairs(truth) == [(0, 1, 1), (0, 2, 1), (0, 3, 1), (1, 2, 0), (1, 3, 1), (2, 3, 1)]
    assert [h for *_, h in pw.truth_pairs([-t for t in pw.parse_ranking("C>A>B", 3)])] == [1, -1, -1]


def test_tiger_ranking_check() -> None:
    assert pw.tiger_ranking_correct((0, 1, 2), [3, 2, 1], None)
    assert not pw.tiger_ranking_correct((0, 1, 2), [3, 1, 2], None)
    # argsort reversed: with equal scores the later candidate ranks first (what TIGER's code does)
    assert pw.tiger_ranking_correct((1, 0), [2, 2], None) and not pw.tiger_ranking_correct((0, 1), [2, 2], None)
    assert pw.tiger_ranking_correct((0, 0), [2, 2.5], 0.5) and not pw.tiger_ranking_correct((0, 0), [2, 2.5], 0.25)
    assert not pw.tiger_ranking_correct((0, 0), [2, 2], None)
    assert not pw.tiger_ranking_correct((0, 1, 1), [3, 2, 1], 1.0)  # a tied K=3 ranking is unreadable to TIGER
    assert not pw.tiger_ranking_correct((0, 1), [float("nan"), 1], None)


def test_group_accuracy_by_hand() -> None:
    # item 0: pairs right; item 1: one pair a judge tie where humans prefer; item 2: human tie within ε
    item = np.array([0, 0, 1, 1, 2])
    h = np.array([1, 1, 1, -1, 0.0])
    m = np.array([1, 2, 0, -1, 0.4])
    assert pw.group_accuracy(item, h, m, 0.5, 3) == pytest.approx(2 / 3)
    assert pw.group_accuracy(item, h, m, None, 3) == pytest.approx(1 / 3)


def test_macro_average_and_bootstrap() -> None:
    assert pw.macro_average({"a": 1.0, "b": 1 / 3, "c": None}) == pytest.approx(2 / 3)
    h = np.array([1, -1, 1, 1, -1, 1.0])
    m = np.array([1, -1, -1, 2, 1, 3.0])
    group = np.array([0, 0, 1, 1, 2, 2])
    ivs = pw.bootstrap_intervals(lambda gw: {"acc": pw.strict_accuracy(h, m, gw[group])}, 3, 200, seed=1)
    assert 0.0 <= ivs["acc"]["low"] <= pw.strict_accuracy(h, m) <= ivs["acc"]["high"] <= 1.0
    again = pw.bootstrap_intervals(lambda gw: {"acc": pw.strict_accuracy(h, m, gw[group])}, 3, 200, seed=1)
    assert again == ivs
    assert pw.bootstrap_intervals(lambda gw: {"acc": 1.0}, 1, 10)["acc"]["low"] is None


def test_eval_uses_the_same_definitions_and_gains_ranking_accuracy() -> None:
    from editjudge.evaluate.metrics import compute_metrics

    rng = np.random.default_rng(3)
    records, h, m, big_h, big_m = [], [], [], [], []
    for g, size in enumerate([2, 3, 4, 3, 2, 5]):
        labels = rng.integers(0, 10, size)
        preds = rng.integers(0, 10, size)
        records += [{"id": f"{g}-{i}", "group": f"g{g}", "label": int(labels[i]), "pred": int(preds[i])} for i in range(size)]
        for i, j, hh in pw.truth_pairs(labels.tolist()):
            h.append(hh), m.append(float(preds[i] - preds[j]))
            if size >= 3:
                big_h.append(hh), big_m.append(float(preds[i] - preds[j]))
    metrics = compute_metrics(records, bootstrap=0)["pairwise"]
    assert metrics["strict"]["value"] == pytest.approx(pw.strict_accuracy(h, m))
    assert metrics["with_ties"]["value"] == pytest.approx(pw.tie_calibrated_accuracy(h, m).value)
    ranking = pw.tie_calibrated_accuracy(big_h, big_m)
    assert metrics["ranking"]["value"] == pytest.approx(ranking.value) and metrics["ranking"]["epsilon"] == ranking.epsilon
    assert metrics["ranking"]["n_groups"] == 4 and metrics["ranking"]["n_pairs"] == 3 + 6 + 3 + 10
    only_pairs = compute_metrics([r for r in records if r["group"] in ("g0", "g4")], bootstrap=0)["pairwise"]
    assert only_pairs["ranking"]["value"] is None and "three or more" in only_pairs["ranking"]["reason"]
