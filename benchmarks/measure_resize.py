"""The mild resize step after a reduced-scale JPEG decode: time and quality of PIL's filters, in one run.

``prepare`` decodes a 1024 px JPEG planned at 546 px at libjpeg's 5/8 scale (640 px), then resizes 640 -> 546.
This measures that last step with each PIL filter on the same decodes: milliseconds per image (best of
``--repeat``) and PSNR against a reference made without the scaled decode (full decode + Lanczos straight to the
target). ``editjudge.data.resample.resize`` is what ``prepare`` uses for it (OpenCV's bit-exact bilinear, where OpenCV
is installed, else ``MILD_RESAMPLE``): its row is marked.

    PYTHONPATH=src python benchmarks/measure_resize.py                 # photo-like 1024 px JPEGs, 24 of them
    PYTHONPATH=src python benchmarks/measure_resize.py --images 48 --side 1024 --target 546
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from editjudge.data import images as imgs
from editjudge.data import resample
from editjudge.synthetic import write_synthetic_edits


def psnr(a: Image.Image, b: Image.Image) -> float:
    error = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / error))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--target", type=int, default=546, help="the planned side (546: prepare's default plan)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_edits(tmp, n_sources=args.images, candidates_per_source=1, size=args.side, seed=3,
                              photo_like=True)
        files = [p.read_bytes() for p in sorted(Path(tmp).rglob("*_output.jpg"))]
    target = (args.target, args.target)
    references = [Image.open(io.BytesIO(d)).convert("RGB").resize(target, Image.Resampling.LANCZOS) for d in files]
    # the decode prepare makes: the smallest libjpeg M/8 scale covering the target (asked for at exactly that size,
    # load_rgb does not resize it)
    eighths = next(m for m in range(1, 9) if -(-args.side * m // 8) >= args.target)
    scaled = -(-args.side * eighths // 8)
    decoded = [imgs.load_rgb(d, (scaled, scaled)) for d in files]
    print(f"{len(files)} photo-like {args.side} px JPEGs, decoded at {decoded[0].size[0]} px, resized to {args.target}")
    rows = []
    for name in ("BICUBIC", "BILINEAR", "LANCZOS", "HAMMING", "BOX"):
        pil_filter = getattr(Image.Resampling, name)
        best = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            out = [image.resize(target, pil_filter, reducing_gap=resample.REDUCING_GAP) for image in decoded]
            best = min(best, (time.perf_counter() - started) / len(decoded) * 1e3)
        rows.append((name, best, float(np.mean([psnr(o, r) for o, r in zip(out, references)]))))
    best = float("inf")
    arrays = [np.asarray(image) for image in decoded]  # prepare's own step, on the decoder's arrays (as it gets them)
    for _ in range(args.repeat):
        started = time.perf_counter()
        out = [resample.as_image(resample.resize(a, target, mild=True)) for a in arrays]
        best = min(best, (time.perf_counter() - started) / len(decoded) * 1e3)
    opencv = resample._cv2() is not None
    quality = float(np.mean([psnr(o, r) for o, r in zip(out, references)]))
    rows.append(("opencv" if opencv else "prepare", best, quality))
    bicubic = rows[0][1]
    for name, ms, quality in rows:
        mark = "  <- prepare's mild step" if name in ("opencv", "prepare") else ""
        print(f"{name:9s} {ms:6.2f} ms/image ({ms / bicubic:4.2f}x bicubic's time)  PSNR {quality:5.2f} dB{mark}")


if __name__ == "__main__":
    main()
