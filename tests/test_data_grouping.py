"""The split's one grouping rule (labels.picture_hash / group_keys): copies of one picture stay together."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from editjudge.data import labels as lbl


def _picture(seed: int, size: int = 160, tint: tuple[int, int, int] = (120, 110, 100)) -> Image.Image:
    """A photo-like picture: smooth random structure around one average colour."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    array = np.asarray(coarse, dtype=np.float32) * 0.5 + np.asarray(tint, dtype=np.float32) * 0.5
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def _jpeg(image: Image.Image, quality: int = 95, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, **kwargs)
    return buffer.getvalue()


def _copies(image: Image.Image) -> list[bytes]:
    """What an editing pipeline does to its input: re-encode, resize ±10 %, store rotated with an EXIF tag."""
    w, h = image.size
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; the viewer (and prepare) turn it upright
    stored = image.transpose(Image.Transpose.ROTATE_90)
    png = io.BytesIO()
    image.save(png, format="PNG")
    return [
        _jpeg(image, 95), _jpeg(image, 94), _jpeg(image, 93), _jpeg(image, 70),
        _jpeg(image.resize((int(w * 0.9), int(h * 0.9)), Image.Resampling.BICUBIC), 90),
        _jpeg(image.resize((int(w * 1.1), int(h * 1.1)), Image.Resampling.BICUBIC), 90),
        _jpeg(stored, 90, exif=exif.tobytes()), png.getvalue(),
    ]


def test_copies_of_one_picture_share_a_group_and_similar_colours_do_not_merge() -> None:
    pictures = [_picture(seed) for seed in range(6)]  # same average colour, different structure
    hashes = [[lbl.picture_hash(data) for data in _copies(p)] for p in pictures]
    keys = lbl.group_keys([None] * sum(map(len, hashes)), [h for copies in hashes for h in copies])
    per_picture = [set(keys[i * 8 : (i + 1) * 8]) for i in range(len(pictures))]
    assert all(len(k) == 1 for k in per_picture), per_picture  # every copy of a picture: one group
    assert len(set.union(*per_picture)) == len(pictures)  # six pictures: six groups
    # byte-exact copies alone would have given 8 groups per picture (the leak of the old rule)
    assert len({lbl.content_hash(d) for d in _copies(pictures[0])}) == 8


def test_clustering_is_order_free_and_the_explicit_group_wins() -> None:
    hashes = [lbl.picture_hash(d) for d in _copies(_picture(1))[:3]] + [lbl.picture_hash(_jpeg(_picture(2)))]
    forward = lbl.cluster_pictures(hashes)
    assert lbl.cluster_pictures(list(reversed(hashes))) == forward
    assert len(set(forward.values())) == 2
    keys = lbl.group_keys(["g", None, None, None], hashes)
    assert keys[0] == "group:g" and keys[1] == keys[2] != keys[3]
    # blank canvases: equal pHashes, but the colour thumbnail keeps red and blue apart (and re-encodes together)
    blank = [lbl.picture_hash(_jpeg(Image.new("RGB", (64, 64), c), q)) for c, q in (("red", 95), ("red", 80), ("blue", 95))]
    red, red_again, blue = lbl.group_keys([None] * 3, blank)
    assert red == red_again != blue
    assert lbl.compare_key("group:g", "a") == "group:g"
    assert lbl.compare_key("image:p1", "a") != lbl.compare_key("image:p1", "b")


def test_prepare_never_splits_re_encoded_copies_and_warns_about_a_skewed_split(tmp_path: Path) -> None:
    """The seed layout where every candidate carries its own re-encoded copy of the source (quality 95/94/93)."""
    from editjudge.data.prepare import PrepareConfig, prepare

    folder = tmp_path / "edits"
    folder.mkdir()
    for s in range(3):
        picture = _picture(10 + s)
        for c, quality in enumerate((95, 94, 93)):
            stem = folder / f"s{s}_c{c}"
            Path(f"{stem}_input.jpg").write_bytes(_jpeg(picture, quality))
            Path(f"{stem}_output.jpg").write_bytes(_jpeg(_picture(100 + 3 * s + c), 90))
            Path(f"{stem}_meta.json").write_text(json.dumps({"instruction": "make it warmer"}))
            Path(f"{stem}_score.json").write_text(json.dumps({"score": 0.5 + 0.1 * c}))
    config = PrepareConfig(inputs=(str(folder),), out_dir=str(tmp_path / "out"), workers=1, progress=False,
                           train_split=0.9, score_median=0.6, score_mad=0.1)
    result = prepare(config)
    import pyarrow.parquet as pq

    sides: dict[str, set[str]] = {}
    for split, path in (("train", result.train_path), ("test", result.test_path)):
        for row in pq.read_table(path).to_pylist():
            sides.setdefault(row["extra_info"]["id"].split("_")[0], set()).add(split)
    assert len(sides) == 3 and all(len(s) == 1 for s in sides.values())  # no source on both sides
    groups = result.report["counts"]["groups"]
    assert groups["total"] == 3 and groups["source_files"] == 9
    warnings = result.report["warnings"]
    assert any("collapsed 9 distinct source files into 3" in w for w in warnings)
    assert any("realised split is 6/3" in w and "--train-split 0.9" in w for w in warnings)
    from editjudge.data.report import format_summary

    assert "warning: the realised split is 6/3" in format_summary(result.report)


@pytest.mark.parametrize("bits", [0, 5, 10, 11, 40])
def test_cluster_thresholds_are_the_documented_ones(bits: int) -> None:
    thumb = bytes(range(192))
    base = 0xF0F0F0F0F0F0F0F0
    flipped = base ^ ((1 << bits) - 1)

    def picture(word: int, levels: int, cell: int = 0) -> str:
        """A thumbnail ``levels`` grey levels above ``thumb`` everywhere, and ``cell`` more in its first cell."""
        values = [min(255, v + levels + (cell if k < 3 else 0)) for k, v in enumerate(thumb)]
        return f"p{word:016x}{bytes(values).hex()}"

    def joined(a: str, b: str) -> bool:
        clusters = lbl.cluster_pictures([a, b])
        return clusters[a] == clusters[b]

    phash_agrees = bits <= lbl.PHASH_MAX_DISTANCE
    # the thumbnail test: within THUMB_SAME_DIFF on average and THUMB_CELL_MAX in every cell, whatever the pHash says
    # (smooth pictures' pHash is unstable)
    assert lbl.THUMB_SAME_DIFF >= 2 and lbl.THUMB_CELL_MAX >= 10
    a = picture(base, 0)
    assert joined(a, picture(flipped, 2))
    assert joined(a, picture(flipped, 0, cell=int(lbl.THUMB_CELL_MAX)))
    # one cell further than THUMB_CELL_MAX (a small object that differs) while the mean stays tiny: the pHash decides
    assert joined(a, picture(flipped, 0, cell=int(lbl.THUMB_CELL_MAX) + 1)) == phash_agrees
    assert joined(a, picture(flipped, 0, cell=60)) == phash_agrees
    # further apart on average (4 levels) but within THUMB_MAX_DIFF: one picture only when the pHashes agree
    assert joined(a, picture(flipped, 4)) == phash_agrees
    # a thumbnail further than THUMB_MAX_DIFF apart keeps even equal pHashes apart
    other = f"p{base:016x}{bytes((v + 7) % 256 for v in range(192)).hex()}"
    assert not joined(a, other)


def test_the_layout_grid_proposes_every_pair_the_thumbnail_test_accepts() -> None:
    """Brute force against the candidate grid, on crowds of near thumbnails (and with tiny batches, so the crowded
    cells are cut into slices)."""
    rng = np.random.default_rng(3)
    for trial in range(12):
        n = int(rng.integers(2, 300))
        centres = rng.integers(0, 256, size=(int(rng.integers(1, 12)), 192))
        noise = rng.normal(0, rng.uniform(0.5, 12), (n, 192))
        thumbs = np.clip(centres[rng.integers(0, len(centres), n)] + noise, 0, 255).astype(np.int16)
        proposed: set[tuple[int, int]] = set()
        batch = lbl._PAIR_BATCH
        try:
            lbl._PAIR_BATCH = int(rng.choice([7, 100, 1 << 16]))
            for ia, ja in lbl._pairs_by_layout(thumbs, lbl.THUMB_SAME_DIFF, lbl.THUMB_CELL_MAX):
                assert (ia < ja).all()
                proposed |= set(zip(ia.tolist(), ja.tolist()))
        finally:
            lbl._PAIR_BATCH = batch
        delta = np.abs(thumbs[:, None] - thumbs[None])
        passes = (delta.mean(axis=2) <= lbl.THUMB_SAME_DIFF) & (
            delta.reshape(n, n, 64, 3).mean(axis=3).max(axis=2) <= lbl.THUMB_CELL_MAX)
        wanted = {(i, j) for i, j in zip(*np.nonzero(passes)) if i < j}
        assert wanted <= proposed, (trial, len(wanted - proposed))


def test_a_hash_from_prepares_sizing_decode_matches_the_files_own() -> None:
    """prepare hashes a source from the decode it sized it from (labels.source_picture); eval and best-of-n decode
    the file for the hash alone (labels.picture_hash): the two land in one cluster, for every size of copy."""
    from editjudge.data import images as imgs
    from editjudge.synthetic_pictures import picture

    for family in ("gradient", "sky"):
        original = Image.fromarray(picture(family, 11, 512))
        for side in (1024, 512, 300, 150, 90):
            data = _jpeg(original.resize((side, side), Image.Resampling.BICUBIC), 95)
            hw = imgs.fit_size(side, side, 380)
            _, decoded = imgs.size_image_decoded(data, hw)
            own, from_sizing = lbl.picture_hash(data), lbl.source_picture(data, decoded)
            assert len(set(lbl.cluster_pictures([own, from_sizing, lbl.picture_hash(_jpeg(original))]).values())) == 1


def test_smooth_pictures_and_their_copies_stay_together_distinct_ones_apart() -> None:
    """The probe of issue 23: smooth photo-like pictures (gradients, skies with noise) re-encoded at q95 vs q93 moved
    the pHash by 12-16 bits; with the thumbnail rule their copies stay in their source's group."""
    import io

    from editjudge.synthetic_pictures import picture

    def jpeg(image: Image.Image, quality: int) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        return buffer.getvalue()

    hashes, owners = [], []
    for family in ("gradient", "sky", "haze"):
        for seed in range(8):
            original = Image.fromarray(picture(family, 1000 + seed, 192))
            for variant in (jpeg(original, 95), jpeg(original, 93), jpeg(original.resize((173, 173)), 90)):
                hashes.append(lbl.picture_hash(variant))
                owners.append((family, seed))
    keys = lbl.group_keys([None] * len(hashes), hashes)
    by_owner: dict[tuple[str, int], set[str]] = {}
    for key, owner in zip(keys, owners):
        by_owner.setdefault(owner, set()).add(key)
    assert all(len(k) == 1 for k in by_owner.values())  # no source split
    assert len({next(iter(k)) for k in by_owner.values()}) == len(by_owner)  # no two sources merged
