"""Labels, the leak-free split and sampling. Pure functions of their inputs and a seed. Imports no torch.

* Label (the seed's formula): ``int(clip((score - median) / mad * 4.5 + 4.5, 0, 9))``, stored as "0".."9".
* Median and MAD (median absolute deviation, unscaled) are estimated on the training split when not given.
* Split: whole groups go to one side. A group is a record's explicit ``group`` or the content hash of its source
  image file, so all candidates of one source land together (the seed split by position and leaked them).
  Groups are visited in the order of a seeded hash of their key and join train while that brings train closer to
  ``train_split`` of the samples — deterministic, and independent of file order.
* Selection (the seed's semantics): ``balanced`` keeps the same number of samples for every label present (the
  smallest label's count, at most ``sample_size // labels``); otherwise ``sample_size`` draws a random subset.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["LABEL_MIN", "LABEL_MAX", "label_of", "estimate_median_mad", "seeded_hash", "split_groups", "select", "histogram"]

LABEL_MIN, LABEL_MAX = 0, 9
_HALF = (LABEL_MAX - LABEL_MIN) / 2  # 4.5


def label_of(score: float, median: float, mad: float) -> int:
    """The seed's normalisation of a raw score into an integer label 0..9."""
    if not mad > 0:
        raise ValueError(f"MAD must be positive, got {mad}")
    value = (score - median) / mad * _HALF + _HALF
    return int(min(max(value, LABEL_MIN), LABEL_MAX))


def estimate_median_mad(scores: Iterable[float]) -> tuple[float, float]:
    """Median and (unscaled) median absolute deviation of ``scores``.

    Raises ``ValueError`` when there are no scores or all scores are equal (MAD 0): pass ``--score-mad`` then.
    """
    values = np.asarray(list(scores), dtype=np.float64)
    if values.size == 0:
        raise ValueError("no training scores to estimate the median/MAD from; pass --score-median and --score-mad")
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    if not mad > 0:
        raise ValueError(
            f"the training scores have a median absolute deviation of 0 (median {median}); "
            "pass --score-mad (the seed used 0.1) so that labels spread over 0..9"
        )
    return median, mad


def content_hash(data: bytes) -> str:
    """The content hash of a source image file's bytes (blake2b-128, hex): candidates of one source share it."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def group_key(group: str | None, source_hash: str) -> str:
    """The key the split keeps whole: ``group:<name>`` for an explicit group, else ``image:<content hash>``."""
    return f"group:{group}" if group is not None else f"image:{source_hash}"


def seeded_hash(key: str, seed: int) -> str:
    """A stable hex digest of ``key`` under ``seed`` (same on every machine and Python run)."""
    return hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=16).hexdigest()


def split_groups(group_sizes: dict[str, int], train_split: float, seed: int) -> set[str]:
    """The set of groups that go to train; every other group goes to test.

    Groups are visited in the order of :func:`seeded_hash`; a group joins train when that brings the train count
    closer to ``train_split`` x total (ties join). With 0 < ``train_split`` < 1 and at least two groups, neither side
    is left empty.
    """
    if not 0.0 <= train_split <= 1.0:
        raise ValueError(f"train_split must be within [0, 1], got {train_split}")
    order = sorted(group_sizes, key=lambda g: seeded_hash(g, seed))
    target = train_split * sum(group_sizes.values())
    train: list[str] = []
    taken = 0
    for group in order:
        size = group_sizes[group]
        if taken + size / 2 <= target:
            train.append(group)
            taken += size
    if 0.0 < train_split < 1.0 and len(order) >= 2:
        if not train:
            train.append(order[0])
        elif len(train) == len(order):
            train.pop()
    return set(train)


def select(labels: Sequence[int], sample_size: int | None, balanced: bool, seed: int) -> list[int]:
    """Indices (ascending) of the samples to keep, given each sample's label."""
    n = len(labels)
    rng = np.random.default_rng(seed)
    if balanced and n:
        by_label: dict[int, list[int]] = {}
        for i, label in enumerate(labels):
            by_label.setdefault(label, []).append(i)
        per_label = min(len(v) for v in by_label.values())
        if sample_size is not None:
            per_label = min(per_label, sample_size // len(by_label))
        chosen: list[int] = []
        for label in sorted(by_label):
            members = by_label[label]
            chosen += [members[j] for j in rng.choice(len(members), size=per_label, replace=False)]
        return sorted(chosen)
    if sample_size is not None and sample_size < n:
        return sorted(int(i) for i in rng.choice(n, size=sample_size, replace=False))
    return list(range(n))


def histogram(labels: Iterable[int]) -> dict[str, int]:
    """Counts of each label 0..9 as a JSON-friendly dict (every label present, zeros included)."""
    counts = Counter(labels)
    return {str(k): int(counts.get(k, 0)) for k in range(LABEL_MIN, LABEL_MAX + 1)}
