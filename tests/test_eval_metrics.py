"""Evaluation metrics against scipy, brute force and hand-computed cases."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from editjudge.evaluate.metrics import compute_metrics
from editjudge.evaluate.records import EvalRecord
from editjudge.prompts import format_answer

stats = pytest.importorskip("scipy.stats")


def rec(i, label, pred, *, group=None, gt=None, expected=None, raw=None, error=None) -> EvalRecord:
    return EvalRecord(id=str(i), group=group, label=label, pred=pred, gt_score=gt, expected_score=expected,
                      raw=raw, error=error)


def strict_json(metrics: dict) -> dict:
    """Round-trip through JSON that rejects NaN / infinity."""
    return json.loads(json.dumps(metrics, allow_nan=False))


# ------------------------------------------------------------------------------------------------ accuracy, MAE


def test_accuracy_and_mae_hand_computed_with_an_unparsable_answer() -> None:
    records = [rec(0, 5, 5), rec(1, 5, 6), rec(2, 2, 4), rec(3, 9, 5), rec(4, 3, None, error="no_answer")]
    m = compute_metrics(records, bootstrap=0)
    assert m["accuracy"] == {"n": 5, "exact": 1 / 5, "within_1": 2 / 5, "within_2": 3 / 5, "n_failed": 0}
    # MAE over the 4 scored records: (0 + 1 + 2 + 4) / 4; the unparsable one is counted, not averaged.
    assert m["mae"] == {"value": 7 / 4, "n": 4, "n_excluded": 1}
    assert m["format"]["n_parsed"] == 4 and m["format"]["parse_rate"] == 4 / 5
    assert m["format"]["errors"] == {"no_answer": 1}


def test_records_without_label_do_not_enter_accuracy() -> None:
    m = compute_metrics([rec(0, 4, 4), rec(1, None, 0), rec(2, 7, 0)], bootstrap=0)
    assert m["n"] == 3 and m["n_labelled"] == 2
    assert m["accuracy"]["exact"] == 0.5


def test_per_label_and_confusion_hand_computed() -> None:
    records = [rec(0, 3, 3), rec(1, 3, 5), rec(2, 3, None), rec(3, 8, 7)]
    m = compute_metrics(records, bootstrap=0)
    assert set(m["per_label"]) == {"3", "8"}
    three = m["per_label"]["3"]
    assert three["n"] == 3 and three["exact"] == pytest.approx(1 / 3) and three["within_2"] == pytest.approx(2 / 3)
    assert three["parse_rate"] == pytest.approx(2 / 3) and three["mean_pred"] == 4.0 and three["mae"] == 1.0
    matrix = np.array(m["confusion"]["matrix"])
    assert matrix.shape == (10, 11) and matrix.sum() == 4
    assert matrix[3, 3] == 1 and matrix[3, 5] == 1 and matrix[3, 10] == 1 and matrix[8, 7] == 1
    assert m["confusion"]["columns"][-1] == "unparsed"


def test_format_rate_reads_raw_with_the_shared_parser() -> None:
    records = [
        rec(0, 5, 5, raw=format_answer(5, "looks right")),  # well-formed with think
        rec(1, 5, 5, raw="<answer>5</answer>"),  # parses, but no think block
        rec(2, 5, None, raw="I think 5", error="no_answer"),
        rec(3, 5, None, raw="<think>a</think><answer>3 or 4</answer>", error="non_numeric_answer"),
        rec(4, 5, None, raw="", error="backend_error: connection refused"),
    ]
    fmt = compute_metrics(records, bootstrap=0)["format"]
    assert fmt["parse_rate"] == 2 / 5
    assert fmt["format_rate"] == 1 / 5 and fmt["n_with_raw"] == 5
    assert fmt["errors"] == {"backend_error": 1, "no_answer": 1, "non_numeric_answer": 1}


def test_format_rate_is_none_with_a_reason_without_raw_text() -> None:
    fmt = compute_metrics([rec(0, 1, 1), rec(1, 2, 2)], bootstrap=0)["format"]
    assert fmt["format_rate"] is None and "raw" in fmt["format_reason"]


# ---------------------------------------------------------------------------------------------- correlations


def test_correlations_match_scipy_and_exclude_unparsed() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 60)
    preds = np.clip(labels + rng.integers(-3, 4, 60), 0, 9)
    gts = labels / 10 + rng.random(60) * 0.1
    records = [rec(i, int(t), int(p), gt=float(g)) for i, (t, p, g) in enumerate(zip(labels, preds, gts))]
    records += [rec(100, 4, None), rec(101, 7, None)]
    corr = compute_metrics(records, bootstrap=0)["correlation"]
    for key, truth in (("pred_vs_label", labels), ("pred_vs_gt_score", gts)):
        c = corr[key]
        assert c["n"] == 60
        for name, fn in (("spearman", stats.spearmanr), ("kendall", stats.kendalltau), ("pearson", stats.pearsonr)):
            ref = fn(preds, truth)
            assert c[name]["value"] == pytest.approx(ref.statistic, abs=1e-12)
            assert c[name]["p_value"] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    assert corr["pred_vs_label"]["n_excluded"] == 2
    assert corr["pred_vs_gt_score"]["n_excluded"] == 0  # the two unparsed records have no gt_score


def test_constant_predictions_give_none_with_a_reason_and_valid_json() -> None:
    records = [rec(i, i % 10, 5, group=f"g{i // 3}") for i in range(12)]
    m = strict_json(compute_metrics(records, bootstrap=50))
    for name in ("spearman", "kendall", "pearson"):
        entry = m["correlation"]["pred_vs_label"][name]
        assert entry["value"] is None and "constant" in entry["reason"]
    assert m["bootstrap"]["intervals"]["correlation.pred_vs_label.spearman"]["low"] is None
    # every judge score ties: strict pairwise accuracy is 0, not undefined
    assert m["pairwise"]["strict"]["value"] == 0.0
    assert m["pairwise"]["strict"]["n_judge_ties"] == m["pairwise"]["strict"]["n_pairs"]


def test_too_few_records_for_a_correlation() -> None:
    corr = compute_metrics([rec(0, 1, 2), rec(1, 5, 6)], bootstrap=0)["correlation"]["pred_vs_label"]
    assert corr["spearman"]["value"] is None and "at least 3" in corr["spearman"]["reason"]


def test_expected_score_correlations_are_reported_when_present() -> None:
    records = [rec(i, i, i, expected=i + 0.25 * (-1) ** i) for i in range(10)]
    corr = compute_metrics(records, bootstrap=0)["correlation"]
    exp = corr["expected_vs_label"]["spearman"]["value"]
    assert exp == pytest.approx(stats.spearmanr([i + 0.25 * (-1) ** i for i in range(10)], range(10)).statistic)
    assert "expected_vs_gt_score" not in corr  # no gt_score anywhere


# ---------------------------------------------------------------------------------------------- pairwise


def test_pairwise_strict_hand_computed_ties_count_wrong() -> None:
    # group a: labels 1,2,3 with answers 1,1,3 → pairs (1,2) judge tie: wrong, (1,3) right, (2,3) right.
    # group b: labels 4,4 → no truth preference: not a strict pair. group c: a singleton.
    records = [rec(0, 1, 1, group="a"), rec(1, 2, 1, group="a"), rec(2, 3, 3, group="a"),
               rec(3, 4, 9, group="b"), rec(4, 4, 0, group="b"), rec(5, 7, 7, group="c")]
    pw = compute_metrics(records, bootstrap=0)["pairwise"]
    assert pw["strict"] == {"value": 2 / 3, "n_pairs": 3, "n_judge_ties": 1, "n_unscored": 0}
    assert pw["ranking_score"] == "pred" and pw["truth"] == "label"


def test_pairwise_with_ties_hand_computed() -> None:
    # pairs: (0,1) truth tie & judge tie, (0,2) and (1,2) both right → 1.0 at ε = 0
    records = [rec(0, 1, 3, group="g"), rec(1, 1, 3, group="g"), rec(2, 2, 5, group="g")]
    ties = compute_metrics(records, bootstrap=0)["pairwise"]["with_ties"]
    assert ties["value"] == 1.0 and ties["epsilon"] == 0.0 and ties["n_pairs"] == 3 and ties["n_truth_ties"] == 1
    # the judge separates the truth tie by 1: pairs (Δtruth sign, Δjudge) = (0,1):(0,-1) (0,2):(-1,-3) (1,2):(-1,-2)
    # ε=0: 2/3 (no judge tie); ε=1: 3/3; ε=2: 2/3; ε=3: 1/3 → calibration picks ε = 1
    records = [rec(0, 1, 3, group="g"), rec(1, 1, 4, group="g"), rec(2, 2, 6, group="g")]
    ties = compute_metrics(records, bootstrap=0)["pairwise"]["with_ties"]
    assert ties["value"] == 1.0 and ties["epsilon"] == 1.0 and ties["value_at_epsilon_0"] == pytest.approx(2 / 3)


def test_unscored_items_count_wrong_in_both_pairwise_accuracies() -> None:
    records = [rec(0, 1, 1, group="g"), rec(1, 5, None, group="g"), rec(2, 9, 9, group="g")]
    pw = compute_metrics(records, bootstrap=0)["pairwise"]
    assert pw["strict"]["value"] == pytest.approx(1 / 3) and pw["strict"]["n_unscored"] == 2
    assert pw["with_ties"]["value"] == pytest.approx(1 / 3) and pw["with_ties"]["n_unscored"] == 2
    # a judge that never answers ranks nothing: both accuracies are 0, not undefined
    silent = [rec(i, label, None, group="g", error="no_answer") for i, label in enumerate((1, 5, 5))]
    pw = compute_metrics(silent, bootstrap=0)["pairwise"]
    assert pw["strict"]["value"] == 0.0 and pw["with_ties"]["value"] == 0.0 and pw["ranking_score"] is None


def test_singleton_groups_leave_pairwise_and_best_of_n_undefined_not_zero() -> None:
    records = [rec(i, i, i) for i in range(5)]  # no group → each record is its own group
    m = strict_json(compute_metrics(records, bootstrap=20))
    for kind in ("strict", "with_ties"):
        assert m["pairwise"][kind]["value"] is None and m["pairwise"][kind]["reason"]
    bon = m["best_of_n"]
    assert bon["truth"] == "label" and bon["value"] is None and bon["reason"] and "pick" not in bon
    assert m["bootstrap"]["intervals"]["pairwise.strict"]["low"] is None


def test_expected_scores_rank_pairs_when_present() -> None:
    # the integer answers tie; the expected scores order the pair correctly
    records = [rec(0, 3, 5, group="g", expected=4.6), rec(1, 6, 5, group="g", expected=5.4)]
    pw = compute_metrics(records, bootstrap=0)["pairwise"]
    assert pw["ranking_score"] == "expected_score"
    assert pw["strict"]["value"] == 1.0 and pw["strict"]["n_judge_ties"] == 0


def test_avg_at_k_means_rank_when_there_is_no_expected_score() -> None:
    # Avg@4: both round to 5, the means order the pair; an unparsed record's mean is ignored
    records = [EvalRecord(id="a", group="g", label=3, pred=5, mean_score=4.75),
               EvalRecord(id="b", group="g", label=6, pred=5, mean_score=5.25),
               EvalRecord(id="c", group="h", label=2, pred=None, mean_score=None),
               EvalRecord(id="d", group="h", label=4, pred=4, mean_score=4.0)]
    pw = compute_metrics(records, bootstrap=0)["pairwise"]
    assert pw["ranking_score"] == "mean_score" and pw["strict"]["value"] == 0.5  # g right, h unscored
    records.append(EvalRecord(id="e", group="h", label=9, pred=8, expected_score=7.9))
    assert compute_metrics(records, bootstrap=0)["pairwise"]["ranking_score"] == "expected_score, else mean_score"


def test_records_from_judge_results() -> None:
    from editjudge.judge.result import Generation, combine

    result = combine([Generation("<think>ok</think><answer>6</answer>", {"6": -0.1, "7": -2.4}),
                      Generation("<answer>8</answer>"), Generation("garbage")])
    rec_ = EvalRecord.from_judge_result(result, id="x", group="s", label=7, gt_score=0.91)
    assert (rec_.pred, rec_.mean_score, rec_.raw) == (result.score, 7.0, result.raw) and rec_.pred == 7
    assert rec_.expected_score == pytest.approx(result.expected_score) and rec_.error is None
    assert rec_.label == 7 and rec_.gt_score == 0.91 and rec_.group == "s"


def test_pair_truth_gt_score_orders_pairs_inside_a_label() -> None:
    records = [rec(0, 9, 8, group="g", gt=0.95), rec(1, 9, 9, group="g", gt=0.99)]
    assert compute_metrics(records, bootstrap=0)["pairwise"]["strict"]["value"] is None  # labels tie
    pw = compute_metrics(records, bootstrap=0, pair_truth="gt_score")["pairwise"]
    assert pw["truth"] == "gt_score" and pw["strict"]["value"] == 1.0


def _brute_force_with_ties(truth: list[float], score: list[float], groups: list[str]) -> float:
    """Accuracy with ties by its definition: best (C + T_hm) / N over thresholds ε ∈ {0} ∪ {|Δscore|}."""
    pairs = []
    for i, j in itertools.combinations(range(len(truth)), 2):
        if groups[i] == groups[j]:
            pairs.append((np.sign(truth[i] - truth[j]), score[i] - score[j]))
    best = -1.0
    for eps in {0.0} | {abs(m) for _, m in pairs}:
        right = sum((h == 0 and abs(m) <= eps) or (h != 0 and abs(m) > eps and np.sign(m) == h) for h, m in pairs)
        best = max(best, right / len(pairs))
    return best


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 9),
            st.one_of(st.integers(0, 9), st.floats(0, 9, allow_nan=False)),
            st.sampled_from("abc"),
        ),
        min_size=2,
        max_size=14,
    )
)
def test_pairwise_with_ties_equals_brute_force(rows) -> None:
    truth = [float(t) for t, _, _ in rows]
    score = [float(s) for _, s, _ in rows]
    groups = [g for _, _, g in rows]
    records = [rec(i, t, round(s), group=g, expected=s) for i, (t, s, g) in enumerate(rows)]
    ties = compute_metrics(records, bootstrap=0)["pairwise"]["with_ties"]
    has_pairs = any(groups[i] == groups[j] for i, j in itertools.combinations(range(len(rows)), 2))
    if not has_pairs:
        assert ties["value"] is None
        return
    assert ties["value"] == pytest.approx(_brute_force_with_ties(truth, score, groups), abs=1e-12)


def _incremental_editreward_style(h: list[int], m: list[float]) -> float:
    """The scan EditReward's evaluation uses (pairs sorted by |m|, each turned into a judge tie in turn)."""
    order = sorted(range(len(m)), key=lambda k: abs(m[k]))
    is_tie = [False] * len(m)
    best = -math.inf
    for k in order:
        is_tie[k] = True
        right = sum((h[q] == 0 and is_tie[q]) or (h[q] != 0 and not is_tie[q] and h[q] * m[q] > 0)
                    for q in range(len(m)))
        best = max(best, right / len(m))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_pairwise_with_ties_matches_editreward_scan_when_gaps_are_distinct(seed) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, 9).astype(float)
    score = rng.random(9) * 9  # continuous scores: all |Δ| distinct, so the scan visits exactly the thresholds
    records = [rec(i, int(t), round(s), group="g", expected=float(s)) for i, (t, s) in enumerate(zip(truth, score))]
    pairs = list(itertools.combinations(range(9), 2))
    h = [int(np.sign(truth[i] - truth[j])) for i, j in pairs]
    m = [score[i] - score[j] for i, j in pairs]
    no_ties = sum(hq != 0 and hq * mq > 0 for hq, mq in zip(h, m)) / len(m)
    ties = compute_metrics(records, bootstrap=0)["pairwise"]["with_ties"]
    # the thresholds EditReward's scan visits, plus ε = 0 (no judge tie), which the scan never evaluates
    assert ties["value"] == pytest.approx(max(_incremental_editreward_style(h, m), no_ties))
    assert ties["value_at_epsilon_0"] == pytest.approx(no_ties)


def test_repeated_gaps_use_real_thresholds_not_the_order_dependent_scan() -> None:
    # one truth tie and one preference, both with |Δ| = 1: EditReward's scan scores the state "first pair is a
    # judge tie, second is not" (which no threshold produces), so its value depends on the input order
    assert _incremental_editreward_style([0, 1], [1.0, 1.0]) == 1.0
    assert _incremental_editreward_style([1, 0], [1.0, 1.0]) == 0.5
    records = [rec(0, 5, 5, group="a"), rec(1, 5, 4, group="a"), rec(2, 6, 5, group="b"), rec(3, 5, 4, group="b")]
    ties = compute_metrics(records, bootstrap=0)["pairwise"]["with_ties"]
    assert ties["value"] == 0.5  # ε = 0: the preference is right; ε = 1: the tie is right — never both


# ---------------------------------------------------------------------------------------------- best-of-N


def test_best_of_n_hand_computed_with_a_tie_for_the_top_score() -> None:
    records = [rec(0, 1, 5, group="g", gt=0.1), rec(1, 5, 5, group="g", gt=0.5), rec(2, 9, 2, group="g", gt=0.9)]
    bon = compute_metrics(records, bootstrap=0)["best_of_n"]
    assert bon["truth"] == "gt_score" and bon["n_groups"] == 1
    assert bon["pick"] == pytest.approx(0.3)  # uniform over the two tied picks
    assert bon["oracle"] == pytest.approx(0.9) and bon["random"] == pytest.approx(0.5)
    assert bon["regret"] == pytest.approx(0.6) and bon["hit_rate"] == 0.0
    # P(pick > random) + ½ P(tie): pick 0.1 → (½)/3, pick 0.5 → (1 + ½)/3, averaged
    assert bon["win_rate_vs_random"] == pytest.approx((0.5 / 3 + 1.5 / 3) / 2)
    assert bon["gain_over_random"] == pytest.approx(-0.2)
    assert bon["oracle_gain_captured"] == pytest.approx(-0.2 / 0.4)


def test_best_of_n_averages_groups_and_treats_an_unscored_group_as_random() -> None:
    records = [rec(0, 2, 9, group="a"), rec(1, 8, 1, group="a"), rec(2, 2, None, group="b"), rec(3, 6, None, group="b")]
    bon = compute_metrics(records, bootstrap=0)["best_of_n"]
    assert bon["truth"] == "label" and bon["n_groups"] == 2 and bon["n_groups_unscored"] == 1
    assert bon["pick"] == pytest.approx((2 + 4) / 2) and bon["oracle"] == pytest.approx((8 + 6) / 2)
    assert bon["hit_rate"] == pytest.approx((0 + 0.5) / 2)


# ---------------------------------------------------------------------------------------------- bootstrap


def _grouped(n_groups: int, seed: int = 0) -> list[EvalRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for g in range(n_groups):
        for k in range(4):
            label = int(rng.integers(0, 10))
            pred = int(np.clip(label + rng.integers(-2, 3), 0, 9))
            out.append(rec(f"{g}-{k}", label, pred, group=f"g{g}", gt=label / 9 + rng.random() * 0.05))
    return out


def test_bootstrap_is_seeded_and_brackets_the_point_estimate() -> None:
    records = _grouped(30)
    a = compute_metrics(records, bootstrap=100, seed=3)
    b = compute_metrics(records, bootstrap=100, seed=3)
    c = compute_metrics(records, bootstrap=100, seed=4)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a["bootstrap"]["intervals"] != c["bootstrap"]["intervals"]
    iv = a["bootstrap"]["intervals"]
    for name, point in (("accuracy.exact", a["accuracy"]["exact"]),
                        ("pairwise.strict", a["pairwise"]["strict"]["value"]),
                        ("correlation.pred_vs_label.spearman", a["correlation"]["pred_vs_label"]["spearman"]["value"]),
                        ("best_of_n.regret", a["best_of_n"]["regret"])):
        assert iv[name]["low"] <= point <= iv[name]["high"]
        assert iv[name]["low"] < iv[name]["high"]
    assert a["bootstrap"]["n_groups"] == 30 and a["bootstrap"]["resample"].startswith("groups")
    assert "bootstrap" not in compute_metrics(records, bootstrap=0)


def test_one_group_gets_no_intervals_but_a_reason() -> None:
    m = strict_json(compute_metrics([rec(i, i, i, group="only") for i in range(4)], bootstrap=50))
    assert m["pairwise"]["strict"]["value"] == 1.0
    assert all(iv["low"] is None and "2 groups" in iv["reason"] for iv in m["bootstrap"]["intervals"].values())


def test_bootstrap_resamples_groups_not_records() -> None:
    # every group holds the same four records: resampling whole groups cannot move any metric,
    # whereas resampling single records would.
    block = [(1, 1), (3, 5), (6, 6), (9, 7)]
    records = [rec(f"{g}-{k}", t, p, group=f"g{g}") for g in range(12) for k, (t, p) in enumerate(block)]
    m = compute_metrics(records, bootstrap=100)
    for name, iv in m["bootstrap"]["intervals"].items():
        if iv["low"] is not None:
            assert iv["low"] == pytest.approx(iv["high"]), name
    iv = m["bootstrap"]["intervals"]
    assert iv["accuracy.exact"]["low"] == pytest.approx(m["accuracy"]["exact"]) == 0.5
    assert iv["pairwise.strict"]["low"] == pytest.approx(m["pairwise"]["strict"]["value"])
    assert iv["pairwise.with_ties"]["low"] == pytest.approx(m["pairwise"]["with_ties"]["value"])


# ---------------------------------------------------------------------------------------------- input checks


def test_empty_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no records to evaluate"):
        compute_metrics([])


def test_bad_records_name_the_record_and_field() -> None:
    with pytest.raises(ValueError, match=r"record 1: label must be an integer 0..9"):
        compute_metrics([{"id": "a", "label": 3, "pred": 3}, {"id": "b", "label": 12, "pred": 3}])
    with pytest.raises(ValueError, match="expected_score must be a finite number"):
        compute_metrics([{"id": "a", "label": 3, "pred": 3, "expected_score": float("nan")}])
    with pytest.raises(ValueError, match="pair_truth"):
        compute_metrics([{"label": 3, "pred": 3}], pair_truth="score")


def test_mappings_work_like_records_and_strings_are_accepted_for_labels() -> None:
    as_dicts = compute_metrics([{"label": "7", "pred": 7}, {"label": 2, "pred": 3.0}], bootstrap=0)
    as_recs = compute_metrics([rec(0, 7, 7), rec(1, 2, 3)], bootstrap=0)
    assert as_dicts == as_recs
