"""Synthetic scored edits in the seed's folder layout — for the demo, tests and benchmarks. Imports no torch.

Each source image is a coloured shape (circle, square, triangle) on a background; its instruction asks for a new
colour ("make the circle red"). Each candidate edit recolours the shape part of the way towards the requested colour
and adds artifacts; its raw score grows with how well the request was met, so a model can learn the score from the
pixels:

    quality q in [0, 1]  ->  colour = mix(original, requested, q), noise ~ (1 - q)  ->  score = 0.7 + 0.4 q

where low-quality candidates are sometimes "wrong colour" (another colour applied) or "unchanged". Scores are spread
uniformly over [0.7, 1.1]: median 0.9, MAD 0.1 — the seed's defaults — so labels cover 0..9.

``faults=True`` adds one sample per kind of bad input ``prepare`` must survive (see :data:`FAULTS`), each with the
outcome ``prepare`` should give it: a reject reason, or ``"kept"`` (kept after conversion).
Output is deterministic: same arguments -> same bytes.

``task="red_square"`` (the demo's task, :data:`TASKS`) writes a simpler world whose label the judge can only get from
the pixels: a blue square on a grey background, always the instruction "make the square red", and each candidate
edit either leaves the square unchanged (raw score :data:`RED_SQUARE_SCORES` ``["unchanged"]``, label 1 with the
seed's median 0.9 / MAD 0.1) or paints it fully red (label 7). Half the candidates of a source are of each kind.
Two labels 6 apart: within the ±2 reward a constant answer scores exactly 1/2, a judge that reads the images 1.

``task="red_square_dims"`` (:data:`DIMENSION_TASK`) is the same world, on a green background, judged on two
dimensions, ``following`` (is the square red?) and ``preservation`` (is everything else as it was?): each source gets
one candidate of each kind of :data:`RED_SQUARE_KINDS` — left unchanged (follows badly, preserves well), the square painted red (both good), the
whole picture painted red (follows, preserves badly) and the background painted red with the square left blue (both
bad). Each ``_score.json`` holds both raw scores (labels 1 / 7 per dimension, the seed's median 0.9 / MAD 0.1) and
``score``, their mean: the one number a single-score judge is trained on (labels 4, 7, 4, 1), under which an
unchanged edit and a ruined one are the same 4. Prepare it with ``--dimensions follow_preserve``.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "COLOURS", "SHAPES", "FAULTS", "TASKS", "RED_SQUARE_SCORES", "RED_SQUARE_MEDIAN_MAD", "SynthResult",
    "write_synthetic_edits", "score_to_quality", "add_arguments", "run",
]

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 205, 40),
    "purple": (140, 60, 175),
    "orange": (245, 135, 30),
}
SHAPES = ("circle", "square", "triangle")
PHRASES = ("make the {shape} {colour}", "turn the {shape} {colour}", "change the colour of the {shape} to {colour}")
SCORE_LOW, SCORE_HIGH = 0.7, 1.1  # uniform scores: median 0.9, MAD 0.1
TASKS = ("recolour", "red_square", "red_square_dims")
# red_square: raw scores that the seed's label formula with median 0.9 / MAD 0.1 maps to labels 1 and 7.
RED_SQUARE_SCORES = {"unchanged": 0.8333, "red": 0.9667}
RED_SQUARE_MEDIAN_MAD = (0.9, 0.1)  # pass these to `prepare` (--score-median/--score-mad): two scores have no MAD
_SQUARE_BLUE = (40, 70, 220)
DIMENSION_TASK = "red_square_dims"
DIMENSION_TASK_SET = "follow_preserve"  # the shipped dimension set its scores are named after
DIMENSION_TASK_TINT = (0.45, 1.2, 0.45)  # its border: green of the grey level's brightness
# kind -> (square red?, background kept?): following is high iff the square is red, preservation iff the rest is kept
RED_SQUARE_KINDS: dict[str, tuple[bool, bool]] = {
    "unchanged": (False, True), "square_red": (True, True), "all_red": (True, False), "background_red": (False, False),
}

# fault sample -> what `editjudge prepare` must do with it: a reject reason, or "kept" (after conversion).
FAULTS: dict[str, str] = {
    "truncated": "truncated_image",
    "not_an_image": "not_an_image",
    "missing_meta": "missing_meta",
    "missing_score_file": "missing_score_file",
    "malformed_json": "malformed_meta",
    "nan_score": "non_finite_score",
    "inf_score": "non_finite_score",
    "text_score": "non_numeric_score",
    "missing_score": "missing_score",
    "empty_instruction": "empty_instruction",
    "decompression_bomb": "decompression_bomb",
    "cmyk": "kept",
    "rgba": "kept",
    "sixteen_bit": "kept",
    "exif_rotated": "kept",
}


@dataclass
class SynthResult:
    """What was written: the folder, how many samples, and each fault sample's id -> expected outcome."""

    out_dir: Path
    samples: int
    faults: dict[str, str] = field(default_factory=dict)


def score_to_quality(score: float) -> float:
    """Inverse of the score formula: the edit quality q in [0, 1] behind a raw score."""
    return min(1.0, max(0.0, (score - SCORE_LOW) / (SCORE_HIGH - SCORE_LOW)))


# ----------------------------------------------------------------------------------------------- drawing


@dataclass(frozen=True)
class _Scene:
    shape: str
    colour: str
    target: str
    background: tuple[int, int, int]
    box: tuple[int, int, int, int]
    instruction: str


def _scene(rng: np.random.Generator, size: int) -> _Scene:
    names = list(COLOURS)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    colour, target = (names[i] for i in rng.choice(len(names), size=2, replace=False))
    background = tuple(int(v) for v in rng.integers(150, 235, size=3))
    extent = int(size * rng.uniform(0.35, 0.6))
    x0, y0 = (int(v) for v in rng.integers(0, size - extent, size=2))
    phrase = PHRASES[int(rng.integers(len(PHRASES)))]
    return _Scene(shape, colour, target, background, (x0, y0, x0 + extent, y0 + extent), phrase.format(shape=shape, colour=target))


def _texture(rng: np.random.Generator, size: int, photo_like: bool) -> np.ndarray | None:
    """A photo-like texture (smooth blobs plus grain) to add to the flat drawing, or None."""
    if not photo_like:
        return None
    coarse = Image.fromarray(rng.integers(0, 255, size=(16, 16, 3), dtype=np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    blobs = np.asarray(coarse, dtype=np.int16) - 128
    grain = rng.integers(-10, 11, size=(size, size, 1), dtype=np.int16)
    return (blobs * 0.35 + grain).astype(np.int16)


def _draw(scene: _Scene, size: int, fill: tuple[int, int, int], texture: np.ndarray | None) -> Image.Image:
    image = Image.new("RGB", (size, size), scene.background)
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = scene.box
    if scene.shape == "circle":
        draw.ellipse(scene.box, fill=fill)
    elif scene.shape == "square":
        draw.rectangle(scene.box, fill=fill)
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)
    if texture is not None:
        image = Image.fromarray(np.clip(np.asarray(image, dtype=np.int16) + texture, 0, 255).astype(np.uint8))
    return image


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def _damage(image: Image.Image, grain: np.ndarray, amount: float) -> Image.Image:
    """Artifacts that grow with ``amount`` in [0, 1]: softening (down- and up-sampling) and noise."""
    if amount <= 0.05:
        return image
    side = image.width
    small = max(4, int(round(side / (1.0 + 3.0 * amount))))
    image = image.resize((small, small), Image.Resampling.BILINEAR).resize((side, side), Image.Resampling.BILINEAR)
    noisy = np.asarray(image, dtype=np.float32) + grain * np.float32(40.0 * amount)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _jpeg(image: Image.Image, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, **kwargs)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _write_sample(folder: Path, stem: str, source: bytes, edited: bytes, instruction: str, score: float, ext: str = ".jpg", edited_ext: str | None = None) -> None:
    (folder / f"{stem}_input{ext}").write_bytes(source)
    (folder / f"{stem}_output{edited_ext or ext}").write_bytes(edited)
    (folder / f"{stem}_meta.json").write_text(json.dumps({"instruction": instruction}) + "\n", encoding="utf-8")
    (folder / f"{stem}_score.json").write_text(json.dumps({"score": round(score, 6)}) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- generator


def _candidates(rng: np.random.Generator, scene: _Scene, n: int) -> Iterator[tuple[float, tuple[int, int, int], float]]:
    """(score, shape colour, damage) per candidate; qualities are stratified so each source spans the range."""
    qualities = (np.arange(n) + rng.uniform(0.0, 1.0, size=n)) / n
    rng.shuffle(qualities)
    for q in (float(v) for v in qualities):
        if q < 0.08:  # left unchanged
            fill = COLOURS[scene.colour]
        elif q < 0.3 and rng.uniform() < 0.5:  # a wrong colour, fully applied
            others = [c for c in COLOURS if c not in (scene.colour, scene.target)]
            fill = COLOURS[others[int(rng.integers(len(others)))]]
        else:  # the requested colour, part of the way
            fill = _mix(COLOURS[scene.colour], COLOURS[scene.target], q)
        yield SCORE_LOW + (SCORE_HIGH - SCORE_LOW) * q, fill, 1.0 - q


def _source_job(job: tuple[int, int, int, int, bool, str]) -> int:
    index, candidates, size, seed, photo_like, out = job
    rng = np.random.default_rng([seed, index])
    scene = _scene(rng, size)
    texture = _texture(rng, size, photo_like)
    folder = Path(out) / f"shard_{index // 100:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    source = _jpeg(_draw(scene, size, COLOURS[scene.colour], texture))
    grain = rng.standard_normal(size=(size, size, 3), dtype=np.float32)
    for k, (score, fill, damage) in enumerate(_candidates(rng, scene, candidates)):
        edited = _damage(_draw(scene, size, fill, texture), np.roll(grain, k * 7, axis=1), damage * 0.6)
        _write_sample(folder, f"s{index:05d}_c{k:02d}", source, _jpeg(edited), scene.instruction, score)
    return candidates


def _blue_square_source(rng: np.random.Generator, index: int, size: int, out: str, extent: tuple[float, float],
                        tint: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> tuple[_Scene, Path, bytes]:
    """The red-square tasks' source: a blue square (side ``extent`` of the image's) on grey (times ``tint`` per
    channel), "make the square red"; its scene, its shard folder (made) and its JPEG bytes."""
    grey = int(rng.integers(110, 170))
    side = int(size * rng.uniform(*extent))
    x0, y0 = (int(v) for v in rng.integers(0, size - side, size=2))
    background = tuple(min(255, int(grey * t)) for t in tint)
    scene = _Scene("square", "blue", "red", background, (x0, y0, x0 + side, y0 + side), "make the square red")
    folder = Path(out) / f"shard_{index // 100:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    return scene, folder, _jpeg(_draw(scene, size, _SQUARE_BLUE, None))


def _red_square_job(job: tuple[int, int, int, int, bool, str]) -> int:
    """One source of the ``red_square`` task: a blue square on grey; candidates unchanged (label 1) or red (label 7)."""
    index, candidates, size, seed, _photo_like, out = job
    rng = np.random.default_rng([seed, index, 7])
    scene, folder, source = _blue_square_source(rng, index, size, out, (0.6, 0.85))  # large: every token sees it
    kinds = [("unchanged", "red")[k % 2] for k in range(candidates)]
    rng.shuffle(kinds)
    for k, kind in enumerate(kinds):
        fill = _SQUARE_BLUE if kind == "unchanged" else COLOURS["red"]
        grain = rng.integers(-6, 7, size=(size, size, 1), dtype=np.int16)  # each candidate's bytes differ
        edited = _draw(scene, size, fill, grain)
        stem = f"s{index:05d}_c{k:02d}"
        _write_sample(folder, stem, source, _jpeg(edited), scene.instruction, RED_SQUARE_SCORES[kind])
    return candidates


def _red_square_dims_job(job: tuple[int, int, int, int, bool, str]) -> int:
    """One source of the ``red_square_dims`` task: a blue square on green and one candidate per kind of
    :data:`RED_SQUARE_KINDS` (cycled when there are more candidates than kinds), scored on both dimensions."""
    index, candidates, size, seed, _photo_like, out = job
    rng = np.random.default_rng([seed, index, 11])
    # square and border about equal in area, and a green border nearly as far from the red paint in colour as the
    # blue square (58 and 67 degrees between RGB directions): both dimensions show. On grey (40 degrees from red)
    # preservation was learnt late or not at all (docs/demo.md)
    scene, folder, source = _blue_square_source(rng, index, size, out, (0.6, 0.75), tint=DIMENSION_TASK_TINT)
    names = list(RED_SQUARE_KINDS)
    kinds = [names[k % len(names)] for k in range(candidates)]
    rng.shuffle(kinds)
    low, high = RED_SQUARE_SCORES["unchanged"], RED_SQUARE_SCORES["red"]
    for k, kind in enumerate(kinds):
        square_red, kept = RED_SQUARE_KINDS[kind]
        background = scene.background if kept else COLOURS["red"]
        painted = _Scene("square", "blue", "red", background, scene.box, scene.instruction)
        grain = rng.integers(-6, 7, size=(size, size, 1), dtype=np.int16)  # each candidate's bytes differ
        edited = _draw(painted, size, COLOURS["red"] if square_red else _SQUARE_BLUE, grain)
        following, preservation = (high if square_red else low), (high if kept else low)
        stem = f"s{index:05d}_c{k:02d}"
        _write_sample(folder, stem, source, _jpeg(edited), scene.instruction, (following + preservation) / 2)
        scores = {"score": round((following + preservation) / 2, 6), "following": following,
                  "preservation": preservation}
        (folder / f"{stem}_score.json").write_text(json.dumps(scores) + "\n", encoding="utf-8")
    return candidates


_JOBS = {"recolour": _source_job, "red_square": _red_square_job, "red_square_dims": _red_square_dims_job}


def _bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb; never decode it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _write_faults(out: Path, size: int, seed: int) -> dict[str, str]:
    rng = np.random.default_rng([seed, 10**9])
    folder = out / "faults"
    folder.mkdir(parents=True, exist_ok=True)
    scene = _scene(rng, size)
    good = _draw(scene, size, COLOURS[scene.colour], None)
    edited = _draw(scene, size, COLOURS[scene.target], None)
    src, edt = _jpeg(good), _jpeg(edited)
    text, score = scene.instruction, 1.0
    expected: dict[str, str] = {}
    for name, outcome in FAULTS.items():
        stem = f"fault_{name}"
        expected[f"faults/{stem}"] = outcome
        if name == "truncated":
            _write_sample(folder, stem, src, edt[: len(edt) * 4 // 5], text, score)  # header intact, data cut
        elif name == "not_an_image":
            _write_sample(folder, stem, src, b"this is not an image\n", text, score)
        elif name == "missing_meta":
            _write_sample(folder, stem, src, edt, text, score)
            (folder / f"{stem}_meta.json").unlink()
        elif name == "missing_score_file":
            _write_sample(folder, stem, src, edt, text, score)
            (folder / f"{stem}_score.json").unlink()
        elif name == "malformed_json":
            _write_sample(folder, stem, src, edt, text, score)
            (folder / f"{stem}_meta.json").write_text('{"instruction": "make it', encoding="utf-8")
        elif name in ("nan_score", "inf_score", "text_score", "missing_score"):
            _write_sample(folder, stem, src, edt, text, score)
            body = {"nan_score": '{"score": NaN}', "inf_score": '{"score": Infinity}', "text_score": '{"score": "high"}', "missing_score": "{}"}[name]
            (folder / f"{stem}_score.json").write_text(body + "\n", encoding="utf-8")
        elif name == "empty_instruction":
            _write_sample(folder, stem, src, edt, "   ", score)
        elif name == "decompression_bomb":
            _write_sample(folder, stem, src, _bomb_png(), text, score, edited_ext=".png")
        elif name == "cmyk":
            _write_sample(folder, stem, _jpeg(good.convert("CMYK")), edt, text, score)
        elif name == "rgba":
            rgba = edited.convert("RGBA")
            rgba.putalpha(200)
            _write_sample(folder, stem, src, _png(rgba), text, score, edited_ext=".png")
        elif name == "sixteen_bit":
            gray = (np.asarray(good.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
            _write_sample(folder, stem, _png(Image.fromarray(gray)), edt, text, score, ext=".png", edited_ext=".jpg")
        elif name == "exif_rotated":
            # A landscape scene stored as portrait pixels + EXIF orientation 6 (rotate 90° clockwise to view).
            wide = good.resize((size * 3 // 2, size))
            stored = wide.transpose(Image.Transpose.ROTATE_90)  # what a camera writes; viewers turn it back
            exif = Image.Exif()
            exif[0x0112] = 6
            _write_sample(folder, stem, _jpeg(stored, exif=exif.tobytes()), edt, text, score)
    return expected


def write_synthetic_edits(
    out_dir: str | Path,
    n_sources: int = 8,
    candidates_per_source: int = 4,
    size: int = 64,
    seed: int = 0,
    faults: bool = False,
    photo_like: bool = False,
    workers: int = 1,
    task: str = "recolour",
) -> SynthResult:
    """Write ``n_sources x candidates_per_source`` scored edits (plus fault samples) in the seed's layout.

    ``size`` is the side of the square images in pixels; ``photo_like`` adds texture and grain so JPEGs weigh what
    photos do (for benchmarks). ``task``: ``recolour`` (scores over 0..9), ``red_square`` (labels 1 and 7) or
    ``red_square_dims`` (two dimensions; see the module docstring). Deterministic: same arguments -> same files, whatever ``workers``.
    """
    if task not in TASKS:
        raise ValueError(f"unknown synthetic task {task!r}: use one of {', '.join(TASKS)}")
    if n_sources < 0 or candidates_per_source < 1 or size < 16:
        raise ValueError("need n_sources >= 0, candidates_per_source >= 1 and size >= 16")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(i, candidates_per_source, size, seed, photo_like, str(out)) for i in range(n_sources)]
    job = _JOBS[task]
    if workers > 1 and len(jobs) > 1:
        with Pool(workers) as pool:
            written = sum(pool.imap(job, jobs, chunksize=max(1, len(jobs) // (workers * 8))))
    else:
        written = sum(map(job, jobs))
    expected = _write_faults(out, size, seed) if faults else {}
    return SynthResult(out_dir=out, samples=written + len(expected), faults=expected)


# ---------------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="folder to write the samples to (created)")
    parser.add_argument("--sources", type=int, default=8, help="number of source images")
    parser.add_argument("--candidates", type=int, default=4, help="candidate edits per source")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed -> same files)")
    parser.add_argument("--faults", action="store_true", help="add one sample per kind of bad input")
    parser.add_argument("--photo-like", action="store_true", help="textured images with photo-sized JPEGs")
    parser.add_argument("--workers", type=int, default=1, help="processes to use")
    parser.add_argument("--task", choices=TASKS, default="recolour",
                        help="recolour: varied shapes/colours, labels 0..9; red_square: the demo's task, labels 1 and 7 "
                             "(prepare it with --score-median 0.9 --score-mad 0.1); red_square_dims: the same world "
                             "scored on following and preservation (prepare it with --dimensions follow_preserve "
                             "--score-median 0.9 --score-mad 0.1)")


def run(args: argparse.Namespace) -> int:
    result = write_synthetic_edits(
        args.out, args.sources, args.candidates, args.size, args.seed, args.faults, args.photo_like, args.workers,
        task=args.task,
    )
    print(f"wrote {result.samples} samples to {result.out_dir}" + (f" ({len(result.faults)} with faults)" if result.faults else ""))
    return 0
