"""Labels (the seed's formula), median/MAD estimation, the leak-free split, sampling."""

from __future__ import annotations

import random

import pytest

from editjudge.data import labels as lbl


@pytest.mark.parametrize(
    "score, label", [(0.9, 4), (1.0, 9), (1.5, 9), (0.8, 0), (0.0, 0), (0.92, 5), (0.95, 6), (0.85, 2)]
)
def test_seed_formula(score, label):
    assert lbl.label_of(score, 0.9, 0.1) == label


def test_median_mad_estimation_and_its_clear_failure():
    assert lbl.estimate_median_mad([0.7, 0.8, 0.9, 1.0, 1.1]) == pytest.approx((0.9, 0.1))
    with pytest.raises(ValueError, match="--score-mad"):
        lbl.estimate_median_mad([0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="--score-median"):
        lbl.estimate_median_mad([])


def test_split_keeps_groups_whole_is_deterministic_and_near_the_fraction():
    rng = random.Random(0)
    sizes = {f"g{i}": rng.randint(1, 8) for i in range(300)}
    train = lbl.split_groups(sizes, 0.9, seed=42)
    assert train == lbl.split_groups(dict(reversed(list(sizes.items()))), 0.9, seed=42)  # order-independent
    assert train != lbl.split_groups(sizes, 0.9, seed=43)
    fraction = sum(sizes[g] for g in train) / sum(sizes.values())
    assert abs(fraction - 0.9) < 0.02


def test_split_edges():
    assert lbl.split_groups({"a": 5, "b": 5}, 1.0, 0) == {"a", "b"}
    assert lbl.split_groups({"a": 5, "b": 5}, 0.0, 0) == set()
    assert len(lbl.split_groups({"a": 5, "b": 5}, 0.9, 0)) == 1  # neither side left empty
    with pytest.raises(ValueError):
        lbl.split_groups({"a": 1}, 1.5, 0)


def test_balanced_selection_has_equal_counts_per_label_and_is_seeded():
    labels = [0] * 50 + [3] * 7 + [9] * 20
    chosen = lbl.select(labels, None, True, seed=1)
    counts = {k: sum(1 for i in chosen if labels[i] == k) for k in (0, 3, 9)}
    assert counts == {0: 7, 3: 7, 9: 7}
    assert chosen == lbl.select(labels, None, True, seed=1) != lbl.select(labels, None, True, seed=2)
    capped = lbl.select(labels, 6, True, seed=1)
    assert len(capped) == 6 and {labels[i] for i in capped} == {0, 3, 9}


def test_sample_size_draws_a_sorted_subset():
    chosen = lbl.select([1] * 100, 10, False, seed=0)
    assert len(chosen) == 10 and chosen == sorted(set(chosen))
    assert lbl.select([1] * 5, 10, False, seed=0) == list(range(5))
