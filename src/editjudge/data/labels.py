"""Labels, the leak-free split and sampling. Pure functions of their inputs and a seed. Imports no torch.

* Label (the seed's formula): ``int(clip((score - median) / mad * 4.5 + 4.5, 0, 9))``, stored as "0".."9".
* Median and MAD (median absolute deviation, unscaled) are estimated on the training split when not given.
* Split: whole groups go to one side. A group is a record's explicit ``group`` (it always wins) or the *picture* of
  its source image, so all candidates of one source land together (the seed split by position and leaked them),
  even when each candidate carries its own re-encoded, slightly resized or EXIF-rotated copy of the source.
  An edit of several source images belongs to the group of every one of them (their groups join).
  The picture rule (:func:`picture_hash`, :func:`group_keys`): the 64-bit pHash (``imagehash.phash``) of the
  upright image's luminance plus an 8 x 8 colour thumbnail; two sources are one picture when their pHashes differ
  in at most :data:`PHASH_MAX_DISTANCE` bits and their thumbnails by at most :data:`THUMB_MAX_DIFF` levels, and the
  relation is closed transitively (union-find). The same rule groups edits in ``eval`` and ``best-of-n`` (there
  together with the instruction: :func:`compare_key`).
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

__all__ = [
    "LABEL_MIN", "LABEL_MAX", "PHASH_SIZE", "PHASH_MAX_DISTANCE", "THUMB_MAX_DIFF", "label_of", "estimate_median_mad",
    "content_hash", "picture_hash", "cluster_pictures", "group_keys", "group_key", "compare_key", "seeded_hash",
    "split_groups", "select", "histogram",
]

LABEL_MIN, LABEL_MAX = 0, 9
_HALF = (LABEL_MAX - LABEL_MIN) / 2  # 4.5

PHASH_SIZE = 8  # imagehash.phash(hash_size=8): the usual 64-bit pHash of the lowest 8 x 8 DCT frequencies
# Two sources are one picture when their pHashes differ in at most PHASH_MAX_DISTANCE of 64 bits AND their 8 x 8
# colour thumbnails differ by at most THUMB_MAX_DIFF grey levels on average. Measured (docs/prepare.md,
# benchmarks/measure_grouping.py): re-encoded (JPEG q95..q70), resized ±10 % and EXIF-rotated copies of photo-like
# pictures differ by <= 2 bits and <= 1 level; the thumbnail check keeps apart the different pictures whose pHash is
# unstable (flat drawings: the synthetic generator's sources).
PHASH_MAX_DISTANCE = 10
THUMB_MAX_DIFF = 6.0
_HASH_SIDE = 64  # pixels: the upright image is decoded (at reduced scale) and resized to 64 x 64 once
_THUMB_SIDE = 8


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


def picture_hash(data: bytes, bomb_pixels: int | None = None) -> str:
    """The picture of an image file's bytes: ``p<16 hex: 64-bit pHash><384 hex: 8 x 8 RGB thumbnail>``.

    Decodes upright (EXIF applied) at reduced scale; raises :class:`~editjudge.data.images.ImageRejected` for files
    that do not decode (so a corrupt source is named, not hashed).
    """
    import imagehash
    from PIL import Image

    from editjudge.data import images as imgs

    image = imgs.load_rgb(data, (_HASH_SIDE, _HASH_SIDE), bomb_pixels or imgs.DEFAULT_BOMB_PIXELS)
    phash = imagehash.phash(image.convert("L"), hash_size=PHASH_SIZE)
    thumb = image.resize((_THUMB_SIDE, _THUMB_SIDE), Image.Resampling.BOX).tobytes()
    return "p" + str(phash) + thumb.hex()


_PHASH_HEX = PHASH_SIZE * PHASH_SIZE // 4


def _split(hashes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(pHash words as uint64, thumbnails as int16 rows) of picture hashes."""
    words = np.array([int(h[1 : 1 + _PHASH_HEX], 16) for h in hashes], dtype=np.uint64)
    thumbs = np.frombuffer(b"".join(bytes.fromhex(h[1 + _PHASH_HEX :]) for h in hashes), dtype=np.uint8)
    return words, thumbs.reshape(len(hashes), -1).astype(np.int16)


def cluster_pictures(
    hashes: Iterable[str], max_distance: int = PHASH_MAX_DISTANCE, max_thumb_diff: float = THUMB_MAX_DIFF
) -> dict[str, str]:
    """Each distinct picture hash -> its cluster's key (the smallest hash in the cluster): deterministic, whatever
    the order. Two pictures join when their pHashes are within ``max_distance`` bits and their thumbnails within
    ``max_thumb_diff``; joins are transitive (union-find).

    Candidate pairs come from the pigeonhole rule (two 64-bit hashes within ``d`` bits agree exactly on at least one
    of ``d + 1`` bands), so the work grows with the near pairs, not with the square of the sources.
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
                ia, ja = ia[keep], ja[keep]
                close = np.abs(thumbs[ia] - thumbs[ja]).mean(axis=1) <= max_thumb_diff
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
