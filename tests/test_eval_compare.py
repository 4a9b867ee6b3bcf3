"""Paired comparison of judges on shared items."""

from __future__ import annotations

import json

import numpy as np
import pytest

from editjudge.evaluate.compare import compare_judges
from editjudge.evaluate.metrics import compute_metrics
from editjudge.evaluate.records import EvalRecord

pytest.importorskip("scipy")


def judge(shift: int, n_groups: int = 10, seed: int = 0, prefix: str = "") -> list[EvalRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for g in range(n_groups):
        for k in range(4):
            label = int(rng.integers(0, 10))
            noise = int(rng.integers(-shift, shift + 1)) if shift else 0
            pred = min(9, max(0, label + noise))
            out.append(EvalRecord(id=f"{prefix}{g}-{k}", group=f"g{g}", label=label, pred=pred))
    return out


def test_differences_equal_the_difference_of_the_metrics() -> None:
    base, better = judge(3), judge(1)
    cmp = compare_judges({"base": base, "better": better}, bootstrap=200, seed=1)
    assert cmp["baseline"] == "base" and cmp["n_common"] == 40 and cmp["n_groups"] == 10
    mb, mt = compute_metrics(base, bootstrap=0), compute_metrics(better, bootstrap=0)
    d = cmp["differences"]["better"]
    assert d["accuracy.within_1"]["value"] == pytest.approx(mt["accuracy"]["within_1"] - mb["accuracy"]["within_1"])
    assert d["pairwise.strict"]["value"] == pytest.approx(
        mt["pairwise"]["strict"]["value"] - mb["pairwise"]["strict"]["value"])
    assert d["accuracy.within_1"]["clear"] is True and d["accuracy.within_1"]["low"] > 0
    json.dumps(cmp, allow_nan=False)


def test_a_judge_against_itself_differs_by_exactly_zero() -> None:
    base = judge(2)
    cmp = compare_judges({"a": base, "b": list(base)}, bootstrap=100)
    for entry in cmp["differences"]["b"].values():
        if entry["value"] is not None:
            assert entry["value"] == 0 and entry["low"] == 0 and entry["high"] == 0 and entry["clear"] is False


def test_only_shared_ids_are_compared() -> None:
    base, other = judge(1), judge(1)[:20]
    cmp = compare_judges({"base": base, "other": other}, bootstrap=0)
    assert cmp["n_common"] == 20 and cmp["n_by_judge"] == {"base": 40, "other": 20}
    assert cmp["differences"]["other"]["accuracy.exact"]["value"] == 0.0  # same records on the shared ids
    disjoint = compare_judges({"base": base, "x": judge(1, prefix="x")}, bootstrap=0)
    assert disjoint["n_common"] == 0 and "share no item" in disjoint["reason"]
    with pytest.raises(ValueError, match="at least two judges"):
        compare_judges({"base": base})
    with pytest.raises(ValueError, match="baseline"):
        compare_judges({"a": base, "b": base}, baseline="c")
