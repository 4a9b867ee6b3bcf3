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


@pytest.mark.parametrize("bits", [0, 5, 10, 11])
def test_cluster_threshold_is_the_documented_one(bits: int) -> None:
    thumb = bytes(range(192)).hex()
    base = 0xF0F0F0F0F0F0F0F0
    flipped = base ^ ((1 << bits) - 1)
    a, b = f"p{base:016x}{thumb}", f"p{flipped:016x}{thumb}"
    clusters = lbl.cluster_pictures([a, b])
    assert (clusters[a] == clusters[b]) == (bits <= lbl.PHASH_MAX_DISTANCE)
    # a thumbnail further than THUMB_MAX_DIFF apart keeps even equal pHashes apart
    other = f"p{base:016x}{bytes((v + 7) % 256 for v in range(192)).hex()}"
    assert len(set(lbl.cluster_pictures([a, other]).values())) == 2
