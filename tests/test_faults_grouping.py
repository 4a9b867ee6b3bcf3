"""The fault suite, grouping: the leak-free split holds on the pictures that broke it, and prepare stays bounded.

Each case writes a seed-layout folder in which every candidate carries its own copy of its source (as editing
pipelines do: re-encoded, resized, rotated, converted), runs ``prepare`` and checks that every source's candidates
share one group and one side of the split, that distinct sources keep their own groups, that the run left nothing
behind (no spill folder), and that a rerun — with another number of workers — gives identical bytes.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from editjudge.data import images as imgs
from editjudge.data import labels as lbl
from editjudge.data.prepare import PrepareConfig, prepare
from editjudge.synthetic_pictures import picture

CASE_SECONDS = 120  # only catches hangs: a case takes a few seconds


def _jpeg(image: Image.Image, quality: int = 95, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, **kwargs)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _exif_rotated(image: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; prepare turns it upright
    return _jpeg(image.transpose(Image.Transpose.ROTATE_90), 90, exif=exif.tobytes())


def _resized(image: Image.Image, side: int) -> bytes:
    return _jpeg(image.resize((side, side), Image.Resampling.BICUBIC), 90)


Copies = Callable[[Image.Image], list[bytes]]


def _reencoded(image: Image.Image) -> list[bytes]:  # the probe of issue 23: q95 vs q93 moved pHash 12-16 bits
    return [_jpeg(image, q) for q in (95, 94, 93, 90)]


def _mixed(image: Image.Image) -> list[bytes]:
    return [_jpeg(image, 95), _exif_rotated(image), _png(image), _resized(image, image.width * 9 // 10)]


def _across_the_hash_decode(image: Image.Image) -> list[bytes]:
    """One picture at 1024 px (hashed from prepare's 5/8-scale sizing decode), 300 px, 252 px PNG (kept as it is:
    hashed from a decode of its own) and 96 px (a plan smaller than the hash's decode)."""
    big = image.resize((1024, 1024), Image.Resampling.BICUBIC)
    return [_jpeg(big, 95), _resized(image, 300), _png(image.resize((252, 252), Image.Resampling.BICUBIC)),
            _resized(image, 96)]


@dataclass
class Case:
    name: str
    family: str
    copies: Copies
    sources: int = 6
    size: int = 256
    distinct_groups: bool = True  # every source its own group (False: only "no source split" is checked)


CASES = [
    Case("gradient_reencoded_q95_to_q90", "gradient", _reencoded),
    Case("sky_reencoded_q95_to_q90", "sky", _reencoded),
    Case("haze_reencoded_q95_to_q90", "haze", _reencoded),
    Case("sky_exif_png_resized_copies", "sky", _mixed),
    Case("gradient_exif_png_resized_copies", "gradient", _mixed),
    Case("sky_copies_from_96_to_1024_px", "sky", _across_the_hash_decode, sources=3),
    # four skies that differ only by a small object: distinct pictures, kept apart
    Case("twins_on_one_sky_reencoded", "twins", _reencoded, sources=4),
]


def _write(folder: Path, case: Case) -> None:
    """``case.sources`` sources, one candidate per copy; each candidate's ``_input`` is that copy."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(case.sources):
        image = Image.fromarray(picture(case.family, 7_000 + k, case.size))
        for c, source in enumerate(case.copies(image)):
            stem = folder / f"s{k}_c{c}"
            Path(f"{stem}_input.jpg").write_bytes(source)
            Path(f"{stem}_output.jpg").write_bytes(_jpeg(Image.fromarray(picture("haze", 100 * k + c, 128)), 90))
            Path(f"{stem}_meta.json").write_text(json.dumps({"instruction": "make the sky red"}))
            Path(f"{stem}_score.json").write_text(json.dumps({"score": 0.5 + 0.1 * c}))


def _run(inputs: Path, out: Path, workers: int = 1):
    return prepare(PrepareConfig(inputs=(str(inputs),), out_dir=str(out), workers=workers, progress=False,
                                 train_split=0.5, score_median=0.6, score_mad=0.2))


def _by_source(result) -> dict[str, set[tuple[str, str]]]:
    rows = pq.read_table(result.train_path).to_pylist() + pq.read_table(result.test_path).to_pylist()
    out: dict[str, set[tuple[str, str]]] = {}
    for row in rows:
        source = Path(row["extra_info"]["source_path"]).name.split("_")[0]
        out.setdefault(source, set()).add((row["extra_info"]["group"], row["extra_info"]["split"]))
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_copies_of_a_source_never_cross_the_split(case: Case, tmp_path: Path, time_limit) -> None:
    _write(tmp_path / "edits", case)
    first = _run(tmp_path / "edits", tmp_path / "out1")
    assert first.report["counts"]["rejected"] == 0, first.rejects_path.read_text()
    by_source = _by_source(first)
    assert len(by_source) == case.sources
    assert all(len(placed) == 1 for placed in by_source.values()), by_source  # one group, one side
    if case.distinct_groups:
        assert len({next(iter(p))[0] for p in by_source.values()}) == case.sources  # no two sources merged
    assert not list((tmp_path / "out1").glob(".prepare-spill-*"))  # the spill folder went with the run
    again = _run(tmp_path / "edits", tmp_path / "out2", workers=2)
    for name in ("train.parquet", "test.parquet", "rejects.jsonl"):
        assert (first.out_dir / name).read_bytes() == (again.out_dir / name).read_bytes(), name


def test_a_truncated_source_is_named_at_inspection_and_the_rest_completes(tmp_path: Path, time_limit) -> None:
    """The source is decoded once, while it is inspected: a source whose header reads but whose data is cut short
    fails there, for each of its candidates, with its reason — the other source's candidates are kept."""
    case = Case("truncated", "sky", lambda image: [_jpeg(image, 95)] * 2, sources=2)
    _write(tmp_path / "edits", case)
    for c in range(2):
        path = tmp_path / "edits" / f"s1_c{c}_input.jpg"
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    result = _run(tmp_path / "edits", tmp_path / "out")
    rejects = [json.loads(line) for line in result.rejects_path.read_text().splitlines()]
    assert sorted(r["id"] for r in rejects) == ["s1_c0", "s1_c1"] and {r["reason"] for r in rejects} == {"truncated_image"}
    assert all("source" in r["detail"] for r in rejects)
    assert result.report["counts"]["kept"] == 2


def test_each_unique_source_is_decoded_once_for_its_sizing_and_its_picture(tmp_path: Path, monkeypatch) -> None:
    """Three sources, four candidates each (every candidate its own file, same bytes): 3 source decodes + 12 edited
    ones, and no separate decode for the picture hash."""
    _write(tmp_path / "edits", Case("once", "sky", lambda image: [_jpeg(image, 95)] * 4, sources=3))
    calls: list[tuple[int, int] | None] = []
    real = imgs.load_pixels  # what load_rgb and the sizing both decode with

    def counting(data, target_hw=None, bomb_pixels=imgs.DEFAULT_BOMB_PIXELS):
        calls.append(target_hw)
        return real(data, target_hw, bomb_pixels)

    monkeypatch.setattr(imgs, "load_pixels", counting)
    result = _run(tmp_path / "edits", tmp_path / "out")
    assert result.report["counts"]["kept"] == 12
    assert len(calls) == 3 + 12, calls
    assert (lbl.HASH_DECODE_SIDE, lbl.HASH_DECODE_SIDE) not in calls  # no decode made only for the hash


def test_a_stale_spill_folder_of_a_killed_run_is_removed_by_the_next(tmp_path: Path) -> None:
    """SIGKILL leaves the spill folder behind (nothing can clean up after it); the next run into that folder
    removes it, so killed runs never pile up spilled sources."""
    _write(tmp_path / "edits", Case("stale", "sky", _reencoded, sources=2))
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / f".prepare-spill-{dead.pid}-x1y2"
    stale.mkdir()
    (stale / f"{dead.pid}.bin").write_bytes(b"\0" * 1024)
    mine = out / f".prepare-spill-{os.getpid()}-alive"  # a live process's folder is left alone
    mine.mkdir()
    _run(tmp_path / "edits", out)
    assert not stale.exists() and mine.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_during_inspection_removes_the_spill_folder(tmp_path: Path) -> None:
    _write(tmp_path / "edits", Case("big", "sky", lambda image: [_jpeg(image.resize((1024, 1024)), 95)] * 2,
                                    sources=40))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "editjudge.cli", "prepare", str(tmp_path / "edits"), "-o", str(out),
                             "--workers", "2", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.stat().st_size for p in out.glob(".prepare-spill-*/*.bin")):
        time.sleep(0.02)
    assert list(out.glob(".prepare-spill-*")), "the run never spilled a source"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, proc.stderr.read() if proc.stderr else ""
    assert not list(out.glob(".prepare-spill-*"))
    assert not (out / "train.parquet").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_under_the_spill_fails_the_run_naming_why(tmp_path: Path, monkeypatch, capsys) -> None:
    """The spill file on a full disk (its path bound to /dev/full: the kernel answers ENOSPC) is the run's problem,
    not one sample's: exit 1 naming the file and the cause, no outputs, the spill folder removed."""
    from editjudge.cli import main
    from editjudge.data import prepare as prep

    _write(tmp_path / "edits", Case("full", "sky", _reencoded, sources=2))
    out = tmp_path / "out"
    real = prep.make_folder

    def full_disk(parent):
        folder = real(parent)
        os.symlink("/dev/full", Path(folder) / f"{os.getpid()}.bin")
        return folder

    monkeypatch.setattr(prep, "make_folder", full_disk)
    assert main(["prepare", str(tmp_path / "edits"), "-o", str(out), "--workers", "1", "-q"]) == 1
    err = capsys.readouterr().err
    assert "cannot write the spill file" in err and "No space left on device" in err
    assert not (out / "train.parquet").exists() and not list(out.glob(".prepare-spill-*"))


def test_a_crowd_of_near_identical_pictures_groups_in_bounded_time(time_limit) -> None:
    """3000 flat colours with noise in one narrow range of colour (the worst case for the candidate grids): grouping
    completes (here in about a second), memory bounded by the pair batches."""
    rng = np.random.default_rng(0)
    base = rng.uniform(120, 170, size=(3000, 1, 3))
    thumbs = np.clip(base + rng.normal(0, 12, size=(3000, 64, 3)), 0, 255).astype(np.uint8)
    words = rng.integers(0, 2**63, size=3000, dtype=np.int64)
    hashes = [f"p{int(w):016x}{t.tobytes().hex()}" for w, t in zip(words, thumbs)]
    clusters = lbl.cluster_pictures(hashes)
    assert len(clusters) == 3000 and len(set(clusters.values())) > 2900  # noise of 12 levels: distinct pictures


def test_the_suite_has_its_cases() -> None:
    assert len(CASES) >= 7 and len({c.name for c in CASES}) == len(CASES)
