"""Each suite's aggregation on hand-made tables: macro vs micro, groups, ImagenHub's average, GenAI's sweep."""

from __future__ import annotations

import math

import numpy as np
import pytest

from editjudge.bench import metrics
from editjudge.bench.suites import BenchItem, FailedItem


def _items(specs):
    """(id, subset, dimension, truth, values) → items, keys and values by key."""
    items, keys, values = [], {}, {}
    for item_id, subset, dim, truth, vals in specs:
        items.append(BenchItem(item_id, "i", b"s", tuple(b"c" for _ in truth), tuple(truth), subset, item_id, dim))
        keys[item_id] = tuple(f"{item_id}/{j}" for j in range(len(truth)))
        values.update({f"{item_id}/{j}": v for j, v in enumerate(vals)})
    return items, keys, values


def test_editscore_macro_over_task_types_differs_from_micro() -> None:
    # color_alter: 1 of 1 right; subject-add: 1 of 3 right (a judge tie and a reversed pair are wrong).
    items, keys, values = _items([
        ("a", "color_alter", "overall", (1, 0), (5, 2)),
        ("b", "subject-add", "overall", (1, 0), (6, 3)),
        ("c", "subject-add", "overall", (1, 0), (4, 4)),
        ("d", "subject-add", "overall", (1, 0), (1, 8)),
        ("e", "subject-add", "consistency", (1, 0), (9, 8)),
    ])
    failed = [FailedItem("f", "missing_image", "x", "material_alter", "overall")]
    table = metrics.build_table(items, failed, keys)
    res = metrics.evaluate("editscore", table, values, bootstrap=0, seed=0)
    n = res["numbers"]
    assert n["overall/task/color_alter"] == 1.0 and n["overall/task/subject-add"] == pytest.approx(1 / 3)
    assert n["overall/task/material_alter"] == 0.0  # the failed item counts wrong in its task type
    assert n["overall/macro"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert n["overall/micro"] == pytest.approx(2 / 5)
    assert n["overall/group/object"] == pytest.approx(1 / 3)
    assert n["overall/group/appearance"] == pytest.approx(0.5)  # mean of color_alter and material_alter
    assert n["consistency/macro"] == 1.0
    assert res["headline"] == "overall/macro" and res["n_judge_ties"] == 1


def test_genai_uses_tigers_sweep_and_reports_the_threshold_search() -> None:
    items, keys, values = _items([
        ("0", "all", None, (4, 2), (3, 0)),        # h=+1, m=3
        ("1", "all", None, (3, 3), (1, 0.5)),      # h=0, m=0.5
        ("2", "all", None, (3, 3), (0, 0.5)),      # h=0, m=-0.5
        ("3", "all", None, (1, 5), (0, 2)),        # h=-1, m=-2
        ("4", "all", None, (2, 1), (1, 0.5)),      # h=+1, m=0.5
    ])
    n = metrics.evaluate("genai", metrics.build_table(items, [], keys), values, 0, 0)["numbers"]
    assert n["pairwise/with_ties"] == pytest.approx(1.0) and n["pairwise/with_ties_threshold"] == pytest.approx(0.8)
    assert n["epsilon/with_ties_threshold"] == 0.5 and n["pairwise/without_ties"] == 1.0


def test_imagenhub_average_is_tanh_of_the_mean_spearman() -> None:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    specs = []
    for model in ("m1", "m2"):
        for k in range(6):
            specs.append((f"{model}-{k}", model, None, (float(rng.random()),), (float(rng.integers(0, 10)),)))
    items, keys, values = _items(specs)
    items = [BenchItem(i.id, i.instruction, i.source, i.candidates, i.truth, i.subset, f"prompt{k % 3}", None)
             for k, i in enumerate(items)]
    n = metrics.evaluate("imagenhub", metrics.build_table(items, [], keys), values, 0, 0)["numbers"]
    rs = []
    for model in ("m1", "m2"):
        gt = [i.truth[0] for i in items if i.subset == model]
        pred = [values[f"{i.id}/0"] for i in items if i.subset == model]
        rs.append(spearmanr(pred, gt).statistic)
        assert n[f"model/{model}"] == pytest.approx(rs[-1])
    assert n["spearman/average"] == pytest.approx(math.tanh(sum(rs) / 2))


def test_ours_ranking_over_groups_of_three_or_more() -> None:
    items, keys, values = _items([
        ("g1", "2-way", None, (0.9, 0.1), (7, 3)),
        ("g2", "3-way", None, (0.9, 0.5, 0.5), (8, 4, 4)),   # right at ε = 0: the human tie is a judge tie
        ("g3", "3-way", None, (0.1, 0.5, 0.9), (5, 5, 6)),   # the first pair is a judge tie where humans prefer
    ])
    n = metrics.evaluate("ours", metrics.build_table(items, [], keys), values, 0, 0)["numbers"]
    assert n["ranking/with_ties"] == pytest.approx(5 / 6) and n["epsilon/ranking"] == 0.0
    assert n["ranking/all_pairs_right"] == pytest.approx(1 / 2)
    assert n["pairwise/strict"] == pytest.approx(5 / 6)  # 6 preference pairs, the judge tie in g3 wrong
