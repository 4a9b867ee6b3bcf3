"""The judge's requests: the training prompt and the very pixels ``prepare`` put in the parquet."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from editjudge import prompts
from editjudge.data.images import ImageRejected
from editjudge.data.prepare import PrepareConfig, prepare
from editjudge.judge.request import ImageSizing, build_request
from editjudge.synthetic import write_synthetic_edits


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize(
    ("size", "options"),
    [
        (64, {}),  # small images: smart_resize to the 28-px grid
        (200, {"max_prompt_length": 420, "max_image_tokens": 30}),  # the token budget and the per-image cap bite
    ],
)
def test_request_images_equal_the_prepared_training_images(tmp_path, size, options) -> None:
    folder = tmp_path / "edits"
    synth = write_synthetic_edits(folder, n_sources=2, candidates_per_source=2, size=size, faults=True)
    config = PrepareConfig(inputs=(str(folder),), out_dir=str(tmp_path / "parquet"), train_split=0.5,
                           score_median=0.9, score_mad=0.1, workers=1, progress=False, **options)
    result = prepare(config)
    rows = pq.read_table(result.train_path).to_pylist() + pq.read_table(result.test_path).to_pylist()
    converted = {fault for fault, outcome in synth.faults.items() if outcome == "kept"}  # CMYK, RGBA, 16-bit, EXIF
    assert converted and converted <= {r["extra_info"]["id"] for r in rows}
    sizing = ImageSizing(**options)
    assert ImageSizing.from_prepare_report(result.report_path) == sizing  # the report carries prepare's settings
    for row in rows:
        info = row["extra_info"]
        request = build_request(info["source_path"], info["edited_path"], info["instruction"], sizing=sizing)
        assert request.messages == [dict(m) for m in row["prompt"]] == prompts.build_messages(info["instruction"])
        # judging the parquet's own bytes (what `editjudge eval --data` does) must not change them either
        again = build_request(row["images"][0]["bytes"], row["images"][1]["bytes"], info["instruction"], sizing=sizing)
        for ours, ours_again, theirs in zip(request.images, again.images, row["images"]):
            trained = Image.open(io.BytesIO(theirs["bytes"]))
            assert ours.size == trained.size == ours_again.size, info["id"]
            assert np.array_equal(_pixels(ours), _pixels(trained)), info["id"]
            assert np.array_equal(_pixels(ours_again), _pixels(trained)), info["id"]


def test_paths_bytes_and_pil_inputs(tmp_path) -> None:
    folder = tmp_path / "edits"
    write_synthetic_edits(folder, n_sources=1, candidates_per_source=1, size=64)
    source = next(folder.rglob("*_input.jpg"))
    edited = next(folder.rglob("*_output.jpg"))
    by_path = build_request(source, edited, "make the circle red")
    by_bytes = build_request(source.read_bytes(), edited.read_bytes(), "make the circle red")
    for a, b in zip(by_path.images, by_bytes.images):
        assert np.array_equal(_pixels(a), _pixels(b))
    png = Image.new("RGB", (100, 60), "red")
    from_pil = build_request(png, png, "make it red")
    assert from_pil.images[0].size == (112, 56)  # 28-px grid, aspect kept
    assert np.abs(_pixels(from_pil.images[0]).astype(int) - [255, 0, 0]).max() <= 3  # resized, then JPEG like prepare
    parts = from_pil.content_parts()[1]["content"]
    assert [p["type"] for p in parts].count("image") == 2


def test_bad_inputs_name_the_image_and_the_reason(tmp_path) -> None:
    good = Image.new("RGB", (64, 64), "blue")
    with pytest.raises(ImageRejected, match="edited image") as info:
        build_request(good, b"definitely not an image", "make it red")
    assert info.value.reason == "not_an_image"
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), "green").save(buffer, format="JPEG")
    with pytest.raises(ImageRejected, match="source image") as info:
        build_request(buffer.getvalue()[:-200], good, "make it red")
    assert info.value.reason == "truncated_image"
    with pytest.raises(FileNotFoundError, match="source image .*missing.jpg"):
        build_request(tmp_path / "missing.jpg", good, "make it red")
    with pytest.raises(ValueError, match="instruction is empty"):
        build_request(good, good, "  ")
