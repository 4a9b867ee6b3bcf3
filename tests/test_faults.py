"""The fault suite: hostile inputs to ``prepare``, each under a timeout.

Every case writes one good edit and one hostile one (a seed-layout folder or a manifest), runs ``prepare`` twice and
checks: no crash, no hang (a SIGALRM timeout per case), ``found == kept + rejected``, the hostile sample rejected
with its named reason (or kept, where it is fine), the good one kept, and byte-identical outputs on the rerun.
"""

from __future__ import annotations

import io
import json
import os
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from editjudge.data.prepare import PrepareConfig, prepare

CASE_SECONDS = 20


def _picture(seed: int, size: int = 96) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    return coarse


def _encode(image: Image.Image, fmt: str = "JPEG", **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


SOURCE = _encode(_picture(1))
EDITED = _encode(_picture(2))


def _corrupt_png() -> bytes:
    data = bytearray(_encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)), "PNG"))
    start = data.index(b"IDAT") + 20
    for k in range(start, start + 40):
        data[k] ^= 0x55
    return bytes(data)


def _bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _deep_json(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


# ------------------------------------------------------------------------------------------------- builders


def _sample(folder: Path, stem: str, *, source: bytes | None = SOURCE, edited: bytes | None = EDITED,
            meta: str | bytes | None = None, score: str | bytes | None = None, ext: str = ".jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if source is not None:
        (folder / f"{stem}_input{ext}").write_bytes(source)
    if edited is not None:
        (folder / f"{stem}_output{ext}").write_bytes(edited)
    meta = json.dumps({"instruction": "make the sky warmer"}) if meta is None else meta
    score = json.dumps({"score": 0.7}) if score is None else score
    if meta != "":
        (folder / f"{stem}_meta.json").write_bytes(meta.encode() if isinstance(meta, str) else meta)
    if score != "":
        (folder / f"{stem}_score.json").write_bytes(score.encode() if isinstance(score, str) else score)


def _folder(tmp: Path, **bad: Any) -> tuple[Path, str]:
    """A seed-layout folder with a good sample and a hostile sample ``bad`` (keyword arguments of ``_sample``)."""
    folder = tmp / "edits"
    _sample(folder, "good")
    _sample(folder, "bad", **bad)
    return folder, "bad"


def _images(tmp: Path) -> tuple[Path, Path]:
    (tmp / "img").mkdir(exist_ok=True)
    (tmp / "img" / "s.jpg").write_bytes(SOURCE)
    (tmp / "img" / "e.jpg").write_bytes(EDITED)
    return tmp / "img" / "s.jpg", tmp / "img" / "e.jpg"


GOOD_ROW = {"source": "img/s.jpg", "edited": "img/e.jpg", "instruction": "make the sky warmer", "score": 0.7}


def _manifest(tmp: Path, line: str | bytes | dict, name: str = "m.jsonl") -> tuple[Path, str]:
    """A JSONL manifest: a good row, then the hostile line (id ``m.jsonl:2``)."""
    _images(tmp)
    raw = line if isinstance(line, bytes) else (json.dumps(line) if isinstance(line, dict) else line).encode("utf-8", "surrogateescape")
    path = tmp / name
    path.write_bytes(json.dumps(GOOD_ROW).encode() + b"\n" + raw + b"\n")
    return path, f"{name}:2"


def _row(**changes: Any) -> dict:
    return {**GOOD_ROW, "instruction": "make the grass greener", **changes}


@dataclass
class Case:
    name: str
    build: Callable[[Path], tuple[Path, str]]
    reason: str | None  # None: the hostile sample is kept
    config: dict[str, Any] = field(default_factory=dict)


def _fifo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)


def _fifo_output(tmp: Path) -> tuple[Path, str]:
    folder, bad = _folder(tmp, edited=None)
    _fifo(folder / "bad_output.jpg")
    return folder, bad


def _fifo_meta(tmp: Path) -> tuple[Path, str]:
    folder, bad = _folder(tmp, meta="")
    _fifo(folder / "bad_meta.json")
    return folder, bad


def _dev_zero_source(tmp: Path) -> tuple[Path, str]:
    folder, bad = _folder(tmp, source=None)
    (folder / "bad_input.jpg").symlink_to("/dev/zero")
    return folder, bad


def _symlink_loop(tmp: Path) -> tuple[Path, str]:
    folder, bad = _folder(tmp, source=None)
    (folder / "bad_input.jpg").symlink_to(folder / "bad_input.jpg")
    return folder, bad


def _folder_as_image(tmp: Path) -> tuple[Path, str]:
    folder, bad = _folder(tmp, source=None)
    (folder / "bad_input.jpg").mkdir()
    return folder, bad


def _newline_name(tmp: Path) -> tuple[Path, str]:
    folder = tmp / "edits"
    _sample(folder, "good")
    _sample(folder, "bad\nname")
    return folder, "bad\nname"


def _non_utf8_name(tmp: Path) -> tuple[Path, str]:
    """A stem whose file names hold a byte that is not UTF-8 (0xff): Python sees it as a lone surrogate."""
    folder = tmp / "edits"
    _sample(folder, "good")
    _sample(folder, "bad\udcff")
    return folder, "bad\\xff"


def _ambiguous(tmp: Path) -> tuple[Path, str]:
    folder, bad = _folder(tmp)
    (folder / "bad_input.png").write_bytes(_encode(_picture(1), "PNG"))
    return folder, bad


def _manifest_fifo(tmp: Path) -> tuple[Path, str]:
    _fifo(tmp / "img" / "fifo.jpg")
    return _manifest(tmp, _row(source="img/fifo.jpg"))


def _manifest_dev_zero(tmp: Path) -> tuple[Path, str]:
    (tmp / "img").mkdir(exist_ok=True)
    (tmp / "img" / "zero.jpg").symlink_to("/dev/zero")
    return _manifest(tmp, _row(edited="img/zero.jpg"))


def _csv(tmp: Path, cells: list[str] | bytes) -> tuple[Path, str]:
    _images(tmp)
    path = tmp / "m.csv"
    good = b"img/s.jpg,img/e.jpg,make the sky warmer,0.7\n"
    line = cells if isinstance(cells, bytes) else (",".join(cells) + "\n").encode()
    path.write_bytes(b"source,edited,instruction,score\n" + good + line)
    return path, "m.csv:3"


def _duplicate_pair(tmp: Path) -> tuple[Path, str]:
    return _manifest(tmp, dict(GOOD_ROW))


CASES = [
    # seed-layout folders
    Case("fifo_edited_image", _fifo_output, "not_a_regular_file"),
    Case("fifo_meta_sidecar", _fifo_meta, "not_a_regular_file"),
    Case("source_symlinked_to_dev_zero", _dev_zero_source, "not_a_regular_file"),
    Case("source_symlink_loop", _symlink_loop, "unreadable_file"),
    Case("folder_named_like_an_image", _folder_as_image, "missing_source"),
    Case("oversized_source", lambda t: _folder(t, source=SOURCE + b"\0" * 4096), "file_too_large",
         {"max_file_bytes": len(SOURCE) + 100}),
    Case("corrupt_png_data", lambda t: _folder(t, source=_corrupt_png(), ext=".png"), "truncated_image"),
    Case("truncated_jpeg", lambda t: _folder(t, edited=EDITED[: len(EDITED) // 2]), "truncated_image"),
    Case("text_as_image", lambda t: _folder(t, source=b"hello, not an image"), "not_an_image"),
    Case("empty_image", lambda t: _folder(t, edited=b""), "not_an_image"),
    Case("decompression_bomb", lambda t: _folder(t, source=_bomb_png(), ext=".png"), "decompression_bomb"),
    Case("aspect_ratio_300", lambda t: _folder(t, edited=_encode(Image.new("RGB", (600, 2)), "PNG"), ext=".png"),
         "bad_aspect_ratio"),
    Case("newline_in_file_name", _newline_name, "bad_file_name"),
    Case("file_name_not_utf8", _non_utf8_name, "bad_file_name"),
    Case("meta_lone_surrogate_escape", lambda t: _folder(t, meta='{"instruction": "warmer \\ud800 sky"}'),
         "malformed_meta"),
    Case("score_key_lone_surrogate", lambda t: _folder(t, score='{"score": 0.5, "\\udc00": 1}'),
         "malformed_score_file"),
    Case("ambiguous_inputs", _ambiguous, "ambiguous_files"),
    Case("no_edited_image", lambda t: _folder(t, edited=None), "missing_edited"),
    Case("no_meta", lambda t: _folder(t, meta=""), "missing_meta"),
    Case("no_score_file", lambda t: _folder(t, score=""), "missing_score_file"),
    Case("image_placeholder_in_instruction", lambda t: _folder(t, meta=json.dumps({"instruction": "put <image> here"})),
         "special_token"),
    Case("image_pad_in_instruction", lambda t: _folder(t, meta=json.dumps({"instruction": "a <|image_pad|> b"})),
         "special_token"),
    Case("im_start_in_instruction", lambda t: _folder(t, meta=json.dumps({"instruction": "<|im_start|>system"})),
         "special_token"),
    Case("video_placeholder_in_instruction", lambda t: _folder(t, meta=json.dumps({"instruction": "x <video>"})),
         "special_token"),
    Case("blank_instruction", lambda t: _folder(t, meta=json.dumps({"instruction": "   "})), "empty_instruction"),
    Case("meta_not_an_object", lambda t: _folder(t, meta="[1, 2]"), "malformed_meta"),
    Case("meta_nested_100k_deep", lambda t: _folder(t, meta=_deep_json()), "malformed_meta"),
    Case("meta_invalid_utf8", lambda t: _folder(t, meta=b'{"instruction": "\xff\xfe"}'), "malformed_meta"),
    Case("score_400_digits", lambda t: _folder(t, score='{"score": ' + "9" * 400 + "}"), "non_finite_score"),
    Case("score_5000_digits", lambda t: _folder(t, score='{"score": ' + "9" * 5000 + "}"), "malformed_score_file"),
    Case("score_nan", lambda t: _folder(t, score='{"score": NaN}'), "non_finite_score"),
    Case("score_text", lambda t: _folder(t, score='{"score": "good"}'), "non_numeric_score"),
    Case("score_bool", lambda t: _folder(t, score='{"score": true}'), "non_numeric_score"),
    Case("score_sidecar_deep", lambda t: _folder(t, score=_deep_json()), "malformed_score_file"),
    Case("cmyk_jpeg_is_fine", lambda t: _folder(t, source=_encode(_picture(1).convert("CMYK"))), None),
    Case("exif_rotated_is_fine",
         lambda t: _folder(t, source=_encode(_picture(1), exif=_exif(6))), None),
    Case("formula_instruction_is_text", lambda t: _folder(t, meta=json.dumps({"instruction": "=HYPERLINK(\"x\")"})),
         None),
    # JSONL manifests
    Case("manifest_invalid_utf8_line", lambda t: _manifest(t, b'{"source": "img/s.jpg", "instruction": "\xff"}'),
         "malformed_manifest_row"),
    Case("manifest_line_nested_100k_deep", lambda t: _manifest(t, _deep_json()), "malformed_manifest_row"),
    Case("manifest_score_400_digits", lambda t: _manifest(t, json.dumps(_row())[:-1] + ', "score": ' + "9" * 400 + "}"),
         "non_finite_score"),
    Case("manifest_score_1e999", lambda t: _manifest(t, _row(score="1e999")), "non_finite_score"),
    Case("manifest_path_5000_chars", lambda t: _manifest(t, _row(source="a/" * 2500 + "s.jpg")), "bad_path"),
    Case("manifest_unknown_user_path", lambda t: _manifest(t, _row(source="~nosuchuser-editjudge/a.jpg")), "bad_path"),
    Case("manifest_nul_in_path", lambda t: _manifest(t, _row(edited="img/e\u0000.jpg")), "bad_path"),
    Case("manifest_duplicate_pair", _duplicate_pair, "duplicate"),
    Case("manifest_duplicate_id",
         lambda t: _manifest(t, b'{"id": "x", "source": "img/s.jpg", "edited": "img/e.jpg", "instruction": "a b", '
                                b'"score": 1}\n{"id": "x", "source": "img/s.jpg", "edited": "img/e.jpg", '
                                b'"instruction": "c d", "score": 1}'), None),
    Case("manifest_line_not_an_object", lambda t: _manifest(t, "[1, 2, 3]"), "malformed_manifest_row"),
    Case("manifest_lone_surrogate_instruction", lambda t: _manifest(t, _row(instruction="make it red \ud800")),
         "malformed_manifest_row"),
    Case("manifest_lone_surrogate_id", lambda t: _manifest(t, _row(id="x\udcff")), "malformed_manifest_row"),
    Case("manifest_surrogate_pair_is_fine", lambda t: _manifest(t, _row(instruction="add a \U0001F600 here")), None),
    Case("manifest_invalid_json", lambda t: _manifest(t, '{"source": "img/s.jpg",'), "malformed_manifest_row"),
    Case("manifest_no_source", lambda t: _manifest(t, _row(source="")), "missing_source"),
    Case("manifest_missing_file", lambda t: _manifest(t, _row(source="img/nope.jpg")), "missing_source"),
    Case("manifest_fifo_source", _manifest_fifo, "not_a_regular_file"),
    Case("manifest_edited_dev_zero", _manifest_dev_zero, "not_a_regular_file"),
    Case("manifest_edited_is_a_folder", lambda t: _manifest(t, _row(edited="img")), "not_a_regular_file"),
    Case("manifest_special_token", lambda t: _manifest(t, _row(instruction="<|vision_start|> hi")), "special_token"),
    # CSV manifests
    Case("csv_invalid_utf8_row", lambda t: _csv(t, b"img/s.jpg,img/e.jpg,\xff\xfe bad,0.5\n"), "malformed_manifest_row"),
    Case("csv_special_token", lambda t: _csv(t, ["img/s.jpg", "img/e.jpg", "see <image>", "0.5"]), "special_token"),
    Case("csv_score_overflow", lambda t: _csv(t, ["img/s.jpg", "img/e.jpg", "other", "9" * 400]), "non_finite_score"),
]


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _run(inputs: Path, out: Path, extra: dict[str, Any]):
    config = PrepareConfig(inputs=(str(inputs),), out_dir=str(out), workers=1, progress=False, train_split=1.0,
                           score_median=0.5, score_mad=0.2, **extra)
    return prepare(config)


def _rejects(path: Path) -> dict[str, str]:
    return {r["id"]: r["reason"] for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, symlinks to /dev/zero")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path, time_limit) -> None:
    inputs, bad_id = case.build(tmp_path)
    first = _run(inputs, tmp_path / "out1", case.config)
    counts = first.report["counts"]
    rejects = _rejects(first.rejects_path)
    import pyarrow.parquet as pq

    kept = [r["extra_info"]["id"] for r in pq.read_table(first.train_path).to_pylist()]
    kept += [r["extra_info"]["id"] for r in pq.read_table(first.test_path).to_pylist()]
    assert counts["found"] == counts["kept"] + counts["rejected"] == len(kept) + len(rejects)
    if case.name == "manifest_duplicate_id":  # the second "x" is the duplicate
        assert list(rejects.values()) == ["duplicate_id"]
    elif case.reason is None:
        assert bad_id in kept, rejects
    else:
        assert rejects.get(bad_id) == case.reason, rejects
    assert counts["kept"] >= 1  # the good edit went through
    assert all(" at 0x" not in detail and "<_io." not in detail for detail in
               (json.loads(line)["detail"] for line in first.rejects_path.read_text(encoding="utf-8").splitlines()))
    again = _run(inputs, tmp_path / "out2", case.config)
    for name in ("train.parquet", "test.parquet", "rejects.jsonl"):
        assert (first.out_dir / name).read_bytes() == (again.out_dir / name).read_bytes(), name


def test_the_suite_has_at_least_40_hostile_inputs() -> None:
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)
