"""Labels, the leak-free split and sampling. Pure functions of their inputs and a seed. Imports no torch.

* Label (the seed's formula): ``int(clip((score - median) / mad * 4.5 + 4.5, 0, 9))``, stored as "0".."9".
* Median and MAD (median absolute deviation, unscaled) are estimated on the training split when not given.
* Split: whole groups go to one side. A group is a record's explicit ``group`` (it always wins) or the *picture* of
  its source image, so all candidates of one source land together (the seed split by position and leaked them),
  even when each candidate carries its own re-encoded, slightly resized or EXIF-rotated copy of the source.
  An edit of several source images belongs to the group of every one of them (their groups join).
  The picture rule (:func:`picture_hash`, :func:`group_keys`): the 64-bit pHash (``imagehash.phash``) of the
  upright image's luminance plus an 8 x 8 colour thumbnail, both from the picture decoded at :data:`HASH_DECODE_SIDE`
  pixels or more and brought to 64 x 64. Two sources are one picture when their thumbnails agree closely — at most
  :data:`THUMB_SAME_DIFF` levels apart on average and no cell more than :data:`THUMB_CELL_MAX` — or when their
  pHashes differ in at most :data:`PHASH_MAX_DISTANCE` bits and their thumbnails by at most :data:`THUMB_MAX_DIFF`
  levels on average; the relation is closed transitively (union-find).
  The same rule groups edits in ``eval`` and ``best-of-n`` (there together with the instruction:
  :func:`compare_key`).
  Groups are visited in the order of a seeded hash of their key and join train while that brings train closer to
  ``train_split`` of the samples — deterministic, and independent of file order.
* Selection (the seed's semantics): ``balanced`` keeps the same number of samples for every label present (the
  smallest label's count, at most ``sample_size // labels``); otherwise ``sample_size`` draws a random subset.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any

import numpy as np

__all__ = [
    "LABEL_MIN", "LABEL_MAX", "PHASH_SIZE", "PHASH_MAX_DISTANCE", "THUMB_MAX_DIFF", "THUMB_SAME_DIFF",
    "THUMB_CELL_MAX", "HASH_DECODE_SIDE", "HASH_MIN_SIDE", "label_of", "estimate_median_mad", "content_hash",
    "picture_hash", "picture_hash_of", "source_picture",
    "cluster_pictures", "group_keys", "group_key", "compare_key", "seeded_hash",
    "split_groups", "select", "histogram",
]

LABEL_MIN, LABEL_MAX = 0, 9
_HALF = (LABEL_MAX - LABEL_MIN) / 2  # 4.5

PHASH_SIZE = 8  # imagehash.phash(hash_size=8): the usual 64-bit pHash of the lowest 8 x 8 DCT frequencies
# The thumbnail test: copies of one picture (JPEG re-encodes q95..q70, resized ±10 % or to half, EXIF-rotated, PNG)
# move the thumbnail by at most ~1.5 levels on average and ~5 in any one cell, in every family measured (flat and
# photo-like drawings, smooth gradients, skies, hazes: benchmarks/measure_grouping.py, docs/prepare.md), while
# distinct sources stay >= 7 apart on average, or — sources that share a background and differ by one object — >= 40
# apart in the object's cell. The pHash test, the older rule kept as a widening for copies whose thumbnail moved more
# (heavier processing that keeps the picture's structure): it is unstable on smooth and flat pictures (a q95 vs q93
# re-encode moved it by up to 22 bits on a gradient: most of its DCT coefficients sit next to their median), which
# is why it cannot be the only test.
PHASH_MAX_DISTANCE = 10
THUMB_MAX_DIFF = 6.0  # with the pHash test
THUMB_SAME_DIFF = 2.5  # the thumbnail test: mean over the 192 values ...
THUMB_CELL_MAX = 12.0  # ... and the most any one cell (the mean of its R, G, B) may move
HASH_DECODE_SIDE = 256  # pixels: the picture is decoded at least this large (a scaled JPEG decode), then brought to
# 64 x 64: a decode straight at 64 px (1/8 DCT scale) moved the thumbnail of resized copies by up to 2 levels on
# average and 12 in a cell
HASH_MIN_SIDE = HASH_DECODE_SIDE // 2  # a decode made for another purpose (prepare's sizing) serves from this size
_HASH_SIDE = 64
_THUMB_SIDE = 8
_THUMB_VALUES = _THUMB_SIDE * _THUMB_SIDE * 3


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


def picture_hash(data: bytes, bomb_pixels: int | None = None, decode_side: int = HASH_DECODE_SIDE) -> str:
    """The picture of an image file's bytes: ``p<16 hex: 64-bit pHash><384 hex: 8 x 8 RGB thumbnail>``.

    Decodes upright (EXIF applied) at reduced scale, ``decode_side`` pixels square (a smaller one only to reproduce
    older hashes: ``benchmarks/measure_grouping.py --baseline``); raises
    :class:`~editjudge.data.images.ImageRejected` for files that do not decode (so a corrupt source is named, not
    hashed).
    """
    from editjudge.data import images as imgs

    side = decode_side
    return picture_hash_of(imgs.load_rgb(data, (side, side), bomb_pixels or imgs.DEFAULT_BOMB_PIXELS))


def picture_hash_of(image: Any) -> str:
    """:func:`picture_hash` of a picture already decoded upright as RGB (a PIL image). Comparable with
    :func:`picture_hash`'s when the decode is at least :data:`HASH_MIN_SIDE` on its short side
    (:func:`source_picture` checks that)."""
    import imagehash
    from PIL import Image

    small = image.resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.BICUBIC, reducing_gap=3.0)
    phash = imagehash.phash(small.convert("L"), hash_size=PHASH_SIZE)
    thumb = small.resize((_THUMB_SIDE, _THUMB_SIDE), Image.Resampling.BOX).tobytes()
    return "p" + str(phash) + thumb.hex()


def source_picture(data: bytes, decoded: Any = None, bomb_pixels: int | None = None) -> str:
    """The picture hash of a source file's bytes, from ``decoded`` (the same file already decoded upright as RGB, for
    another purpose: ``prepare`` sizes the source from that decode) when it is at least :data:`HASH_MIN_SIDE` on its
    short side, else from a decode of its own (:func:`picture_hash`). Either way one decode per source."""
    if decoded is not None and min(decoded.size) >= HASH_MIN_SIDE:
        return picture_hash_of(decoded)
    return picture_hash(data, bomb_pixels)


_PHASH_HEX = PHASH_SIZE * PHASH_SIZE // 4


def _split(hashes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(pHash words as uint64, thumbnails as int16 rows) of picture hashes."""
    words = np.array([int(h[1 : 1 + _PHASH_HEX], 16) for h in hashes], dtype=np.uint64)
    thumbs = np.frombuffer(b"".join(bytes.fromhex(h[1 + _PHASH_HEX :]) for h in hashes), dtype=np.uint8)
    return words, thumbs.reshape(len(hashes), -1).astype(np.int16)


def _pairs_by_phash(words: np.ndarray, max_distance: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Index pairs (i < j) whose pHashes may be within ``max_distance`` bits: the pigeonhole rule (two 64-bit hashes
    within ``d`` bits agree exactly on at least one of ``d + 1`` bands), so the work grows with the near pairs."""
    nbits = PHASH_SIZE * PHASH_SIZE
    for band in np.array_split(np.arange(nbits), max_distance + 1):
        mask = np.uint64(sum(1 << int(b) for b in band))
        keys = words & mask
        order = np.argsort(keys, kind="stable")
        bounds = np.flatnonzero(np.diff(keys[order])) + 1
        for members in np.split(order, bounds):
            if len(members) < 2:
                continue
            for start in range(0, len(members), 256):  # bounded memory for a crowded bucket
                rows = members[start : start + 256]
                bits = np.bitwise_count(words[rows, None] ^ words[None, members])
                a, b = np.nonzero(bits <= max_distance)
                ia, ja = rows[a], members[b]
                keep = ia < ja
                yield ia[keep], ja[keep]


_PAIR_BATCH = 1 << 16  # candidate pairs checked at a time (25 MB of thumbnail differences), however crowded


def _pairs_by_layout(thumbs: np.ndarray, same_diff: float, cell_max: float) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Index pairs (i < j) that may pass the thumbnail test (:func:`cluster_pictures`), from bounds that test implies
    on coarser figures: a quadrant's grey (the mean of 16 cells) moves by at most ``min(cell_max, 4 * same_diff)``,
    a channel's mean by at most ``3 * same_diff``, the grey mean by at most ``same_diff``. Pictures are compared
    only with those in neighbouring cells of a grid over the four quadrant greys, and only the pairs within all
    those bounds are returned — the work grows with pictures of a similar layout, not with the square of the
    sources."""
    n = len(thumbs)
    values = thumbs.reshape(n, 2, 4, 2, 4, 3).astype(np.float64)
    quads = values.mean(axis=(2, 4, 5)).reshape(n, 4)
    channels = values.mean(axis=(1, 2, 3, 4))
    figures = np.column_stack([quads, channels, channels.mean(axis=1)])
    width = max(min(cell_max, 4.0 * same_diff), 1e-6)
    bounds = np.array([width] * 4 + [3.0 * same_diff] * 3 + [same_diff]) + 1e-9
    cells = np.floor(quads / width).astype(np.int64) + 1  # >= 1, so a step of -1 stays >= 0
    base = int(cells.max()) + 2
    keys = ((cells[:, 0] * base + cells[:, 1]) * base + cells[:, 2]) * base + cells[:, 3]
    order = np.argsort(keys, kind="stable")
    unique, starts, counts = np.unique(keys[order], return_index=True, return_counts=True)
    steps = [(a, b, c, d) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) for d in (-1, 0, 1)]
    for step in steps[len(steps) // 2 :]:  # (0, 0, 0, 0) and one of each pair of opposite steps
        shift = ((step[0] * base + step[1]) * base + step[2]) * base + step[3]
        at = np.searchsorted(unique, unique + shift)
        found = np.flatnonzero(at < len(unique))
        found = found[unique[at[found]] == unique[found] + shift]
        for ia, ja in _cross_pairs(order, starts, counts, found, at[found]):
            near = (np.abs(figures[ia] - figures[ja]) <= bounds).all(axis=1)
            yield ia[near], ja[near]


def _cross_pairs(order: np.ndarray, starts: np.ndarray, counts: np.ndarray, a_cells: np.ndarray,
                 b_cells: np.ndarray) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Every (member of a_cells[k], member of b_cells[k]) pair as index pairs (i < j; within one cell each pair
    once), at most about :data:`_PAIR_BATCH` at a time; cell c holds ``order[starts[c] : starts[c] + counts[c]]``."""

    def ordered(ia: np.ndarray, ja: np.ndarray, same_cell: np.ndarray | bool) -> tuple[np.ndarray, np.ndarray]:
        keep = ~np.asarray(same_cell) | (ia < ja)
        return np.minimum(ia, ja)[keep], np.maximum(ia, ja)[keep]

    sizes = counts[a_cells] * counts[b_cells]
    ends = np.cumsum(sizes)
    first = 0
    while first < len(a_cells):
        done = int(ends[first - 1]) if first else 0
        last = max(first + 1, int(np.searchsorted(ends, done + _PAIR_BATCH, side="right")))
        if last == first + 1 and sizes[first] > _PAIR_BATCH:  # one crowded pair of cells: some rows at a time
            a, b = a_cells[first], b_cells[first]
            rows = order[starts[a] : starts[a] + counts[a]]
            others = order[starts[b] : starts[b] + counts[b]]
            step = max(1, _PAIR_BATCH // len(others))
            for lo in range(0, len(rows), step):
                chunk = rows[lo : lo + step]
                yield ordered(np.repeat(chunk, len(others)), np.tile(others, len(chunk)), a == b)
        else:  # many small pairs of cells at once
            a, b, size = a_cells[first:last], b_cells[first:last], sizes[first:last]
            owner = np.repeat(np.arange(len(a)), size)
            k = np.arange(len(owner)) - (np.cumsum(size) - size)[owner]
            width_b = counts[b][owner]
            ia = order[starts[a][owner] + k // width_b]
            ja = order[starts[b][owner] + k % width_b]
            yield ordered(ia, ja, (a == b)[owner])
        first = last


def _batches(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Candidate pairs in slices of at most :data:`_PAIR_BATCH` (a crowded pHash bucket yields millions at once)."""
    for ia, ja in pairs:
        for lo in range(0, len(ia), _PAIR_BATCH):
            yield ia[lo : lo + _PAIR_BATCH], ja[lo : lo + _PAIR_BATCH]


def cluster_pictures(
    hashes: Iterable[str], max_distance: int = PHASH_MAX_DISTANCE, max_thumb_diff: float = THUMB_MAX_DIFF,
    same_thumb_diff: float = THUMB_SAME_DIFF, thumb_cell_max: float = THUMB_CELL_MAX,
) -> dict[str, str]:
    """Each distinct picture hash -> its cluster's key (the smallest hash in the cluster): deterministic, whatever
    the order. Two pictures join when their thumbnails are within ``same_thumb_diff`` on average and
    ``thumb_cell_max`` in every cell (the thumbnail test; ``same_thumb_diff=0`` turns it off), or their pHashes within
    ``max_distance`` bits and their thumbnails within ``max_thumb_diff`` on average (the pHash test); joins are
    transitive (union-find).

    Candidate pairs come from the pHash bands (:func:`_pairs_by_phash`) and from a grid over the thumbnails' layout
    (:func:`_pairs_by_layout`), so the work grows with the near pairs, not with the square of the sources.
    """
    unique = sorted(set(hashes))
    parent = {h: h for h in unique}

    def find(h: str) -> str:
        while parent[h] != h:
            parent[h] = parent[parent[h]]
            h = parent[h]
        return h

    if len(unique) < 2:
        return {h: h for h in unique}
    words, thumbs = _split(unique)
    candidates = _pairs_by_phash(words, max_distance)
    if same_thumb_diff > 0:
        candidates = chain(candidates, _pairs_by_layout(thumbs, same_thumb_diff, thumb_cell_max))
    mean_limit, near_limit = _THUMB_VALUES * same_thumb_diff, _THUMB_VALUES * max_thumb_diff
    cell_limit = 3 * thumb_cell_max
    for ia, ja in _batches(candidates):
        delta = np.abs(thumbs[ia] - thumbs[ja])
        total = delta.sum(axis=1, dtype=np.int32)  # 192 x the mean difference: integers, compared exactly
        close = (np.bitwise_count(words[ia] ^ words[ja]) <= max_distance) & (total <= near_limit)
        maybe = ~close & (total <= mean_limit)
        if maybe.any():
            cells = delta[maybe].reshape(-1, _THUMB_SIDE * _THUMB_SIDE, 3).sum(axis=2, dtype=np.int32)
            close[maybe] = cells.max(axis=1) <= cell_limit
        for i, j in zip(ia[close].tolist(), ja[close].tolist()):
            ri, rj = find(unique[i]), find(unique[j])
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    return {h: find(h) for h in unique}


def _short(picture: str) -> str:
    """A short, stable name for a picture cluster (the full hash is 401 characters)."""
    return picture[: 1 + _PHASH_HEX] + "-" + hashlib.blake2b(picture.encode(), digest_size=8).hexdigest()


def group_keys(explicit: Sequence[str | None], pictures: Sequence[str | Sequence[str] | None]) -> list[str]:
    """The split / comparison group of each record: ``group:<name>`` where an explicit group is given (it wins),
    else ``image:<picture cluster>`` over all the records' pictures, else ``none:<position>`` (no picture).

    A record of several source images gives a tuple of pictures: every one of them counts, so its group joins the
    clusters of all its sources (:func:`_join_sources`) and no source picture lands on both sides of the split."""
    several = [p for g, p in zip(explicit, pictures) if g is None and isinstance(p, (tuple, list))]
    flat = (q for g, p in zip(explicit, pictures) if g is None and p is not None
            for q in ((p,) if isinstance(p, str) else p))
    clusters = cluster_pictures(flat)
    if several:
        clusters = _join_sources(clusters, several)
    keys = []
    for i, (group, picture) in enumerate(zip(explicit, pictures)):
        if group is not None:
            keys.append(group_key(group, ""))
        elif picture is not None:
            first = picture if isinstance(picture, str) else picture[0]
            keys.append(f"image:{_short(clusters[first])}")
        else:
            keys.append(f"none:{i}")
    return keys


def _join_sources(clusters: dict[str, str], several: Iterable[Sequence[str]]) -> dict[str, str]:
    """``clusters`` (picture -> cluster key) with the clusters of each multi-source record's pictures joined into
    one (union-find over cluster keys, the smallest key names the union; deterministic whatever the order)."""
    parent = {key: key for key in clusters.values()}

    def find(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for pictures in several:
        roots = sorted({find(clusters[p]) for p in pictures})
        for other in roots[1:]:
            parent[other] = roots[0]
    return {picture: find(key) for picture, key in clusters.items()}


def group_key(group: str | None, picture: str) -> str:
    """The key of one record on its own: ``group:<name>`` for an explicit group, else ``image:<picture>`` (use
    :func:`group_keys` to merge near-identical pictures across records)."""
    return f"group:{group}" if group is not None else f"image:{picture}"


def compare_key(group: str, instruction: str | None) -> str:
    """What ``eval`` and ``best-of-n`` rank together: an explicit group as is, else the picture + the instruction."""
    if group.startswith("group:") or instruction is None:
        return group
    return f"{group}|{hashlib.blake2b(instruction.strip().encode('utf-8', 'surrogatepass'), digest_size=8).hexdigest()}"


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
