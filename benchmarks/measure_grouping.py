"""Measure the split's picture-grouping rule (editjudge.data.labels) per family of source pictures.

Families: ``flat`` (the synthetic generator's drawings), ``photo`` (the same with photo-like texture),
``red_square`` (the demo's task: a blue square on grey), and from ``editjudge.synthetic_pictures``: ``gradient``,
``sky``, ``haze`` (smooth pictures with noise), ``backdrop`` and ``sea`` — smooth families held out from tuning the
rule (written before its thresholds were set, measured only once they were fixed) — and ``twins`` (sources made in
sets of four on one shared sky, each with its own small object: distinct pictures that differ only there, the hard
case for false merges).

Each source is stored as a JPEG (q95) and copied the ways an editing pipeline copies a source: JPEG re-encodes at
q95/94/93/90/80/70 of the decoded source, the original pixels encoded at q93 and q90 (families made from pixels),
resized to 90 %, 110 % and 50 %, cropped by 0.8 % a side (to a multiple of 16), stored rotated with an EXIF
orientation tag, PNG. All sources and copies of a family are grouped together, as a dataset is, and:

* false splits: copies that end outside their source's group (they would leak across the split), and the sources
  with at least one such copy;
* false merges: distinct sources that share a group (sources in a merged group, merged pairs of all pairs).

Rules, in one run on the same pictures: ``prepare`` — this rule, each picture hashed as ``prepare`` hashes a source
(sized for ``--image-tokens`` tokens, hashed from that decode: ``labels.source_picture``); ``eval`` — this rule
through ``labels.picture_hash``, as ``eval`` and ``best-of-n`` hash; ``main`` — the rule before it (a 64 px decode,
the pHash test alone).

    PYTHONPATH=src python benchmarks/measure_grouping.py                       # every family, 150 sources each
    PYTHONPATH=src python benchmarks/measure_grouping.py --families sky sea --sources 300 --size 1024
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from editjudge.data import images as imgs
from editjudge.data import labels as lbl
from editjudge.synthetic import write_synthetic_edits
from editjudge.synthetic_pictures import FAMILIES, HELD_OUT, SHARED_BASE, picture

ALL_FAMILIES = ("flat", "photo", "red_square", *FAMILIES)
DRAWN = {"flat": {}, "photo": {"photo_like": True}, "red_square": {"task": "red_square"}}


def _jpeg(image: Image.Image, quality: int, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, **kwargs)
    return buffer.getvalue()


def copies(data: bytes, original: Image.Image | None = None) -> list[tuple[str, bytes]]:
    """(kind, bytes) of the copies an editing pipeline makes of the source ``data`` (and of its ``original``
    pixels, when known)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size
    out = [(f"q{q}", _jpeg(image, q)) for q in (95, 94, 93, 90, 80, 70)]
    if original is not None:
        out += [(f"original_q{q}", _jpeg(original, q)) for q in (93, 90)]
    for scale in (0.9, 1.1, 0.5):
        resized = image.resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC)
        out.append((f"resized_{scale:g}", _jpeg(resized, 90)))
    c = max(1, round(w * 0.008))
    out.append(("crop_0.8%", _jpeg(image.crop((c, c, w - c, h - c)), 90)))
    exif = Image.Exif()
    exif[0x0112] = 6
    out.append(("exif_rotated", _jpeg(image.transpose(Image.Transpose.ROTATE_90), 90, exif=exif.tobytes())))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    out.append(("png", buffer.getvalue()))
    return out


def sources(family: str, n: int, size: int, seed: int) -> list[tuple[bytes, Image.Image | None]]:
    """``n`` distinct sources of ``family`` as stored JPEG bytes (with the original pixels where they exist)."""
    if family in DRAWN:
        with tempfile.TemporaryDirectory() as tmp:
            write_synthetic_edits(tmp, n_sources=n, candidates_per_source=2, size=size, seed=seed, **DRAWN[family])
            return [(p.read_bytes(), None) for p in sorted(Path(tmp).rglob("*_c00_input.jpg"))]
    out = []
    for k in range(n):
        original = Image.fromarray(picture(family, seed * 100_003 + k, size))
        out.append((_jpeg(original, 95), original))
    return out


def prepare_hash(image_tokens: int) -> Callable[[bytes], str]:
    """A picture's hash as ``prepare`` makes it for a source (its ``_sized_source``): sized for at most
    ``image_tokens`` tokens, hashed from the decode that sizing made (or its own decode when the bytes are kept)."""

    def hash_(data: bytes) -> str:
        info = imgs.probe(data)
        hw = imgs.fit_size(*info.upright_hw, image_tokens)
        _, decoded = imgs.size_image_decoded(data, hw, info)
        return lbl.source_picture(data, decoded)

    return hash_


def rules(image_tokens: int) -> dict[str, tuple[Callable[[bytes], str], dict[str, float]]]:
    """name -> (how a picture is hashed, cluster_pictures' keyword arguments)."""
    return {
        "prepare": (prepare_hash(image_tokens), {}),
        "eval": (lbl.picture_hash, {}),
        "main": (lambda data: lbl.picture_hash(data, decode_side=64), {"same_thumb_diff": 0}),
    }


def grouped(hashes: list[str], cluster_kwargs: dict[str, float]) -> list[str]:
    clusters = lbl.cluster_pictures(hashes, **cluster_kwargs)
    return [clusters[h] for h in hashes]


def measure(family: str, n: int, size: int, seed: int, which: dict) -> dict[str, object]:
    made = sources(family, n, size, seed)
    items: list[tuple[int, str, bytes]] = []  # (source number, kind, bytes); the source itself first
    for k, (data, original) in enumerate(made):
        items.append((k, "source", data))
        items += [(k, kind, copy) for kind, copy in copies(data, original)]
    row: dict[str, object] = {"family": family, "held_out": family in HELD_OUT, "sources": n, "size": size,
                              "copies": len(items) - n, "pairs": n * (n - 1) // 2}
    for name, (hash_, cluster_kwargs) in which.items():
        started = time.perf_counter()
        keys = grouped([hash_(data) for _, _, data in items], cluster_kwargs)
        home: dict[int, str] = {}
        for key, (k, _, _) in zip(keys, items):
            home.setdefault(k, key)
        strays = [(k, kind) for key, (k, kind, _) in zip(keys, items) if key != home[k]]
        sizes = Counter(home.values())
        merged = {key for key, count in sizes.items() if count > 1}
        result = {
            "false_split_sources": len({k for k, _ in strays}),
            "false_split_copies": len(strays),
            "false_split_by_kind": dict(sorted(Counter(kind for _, kind in strays).items())),
            "false_merge_sources": sum(sizes[key] for key in merged),
            "false_merge_pairs": sum(c * (c - 1) // 2 for c in sizes.values()),
            "groups": len(sizes),
            "seconds": round(time.perf_counter() - started, 2),
        }
        if family in SHARED_BASE:  # merges within one shared background (4 sources each) vs across backgrounds
            by_base = Counter((home[k], k // 4) for k in home)
            within = sum(c * (c - 1) // 2 for c in by_base.values())
            result["false_merge_pairs_same_background"] = within
        row[name] = result
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=list(ALL_FAMILIES), choices=ALL_FAMILIES)
    parser.add_argument("--sources", type=int, default=150, help="distinct sources per family")
    parser.add_argument("--size", type=int, default=256, help="side of the smooth families' pictures")
    parser.add_argument("--flat-size", type=int, default=128, help="side of the drawn families' pictures")
    parser.add_argument("--image-tokens", type=int, default=380,
                        help="the prepare rule's token plan per source (380: prepare's defaults on 1024 px pairs)")
    parser.add_argument("--rules", nargs="+", default=["prepare", "eval", "main"], choices=["prepare", "eval", "main"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    which = {name: rule for name, rule in rules(args.image_tokens).items() if name in args.rules}
    rows = []
    for family in args.families:
        size = args.flat_size if family in DRAWN else args.size
        rows.append(measure(family, args.sources, size, args.seed, which))
        print(json.dumps(rows[-1]), flush=True)
    settings = {"phash_max_distance": lbl.PHASH_MAX_DISTANCE, "thumb_max_diff": lbl.THUMB_MAX_DIFF,
                "thumb_same_diff": lbl.THUMB_SAME_DIFF, "thumb_cell_max": lbl.THUMB_CELL_MAX,
                "hash_decode_side": lbl.HASH_DECODE_SIDE, "image_tokens": args.image_tokens}
    print(f"\nrule: {settings}; false splits: sources (copies of all); false merges: sources (pairs of all)")
    header = f"{'family':27s}" + "".join(f" | {name + ': split':>20s} {'merged':>16s}" for name in which)
    print(header)
    for r in rows:
        name = f"{r['family']} {r['size']}px" + (" (held out)" if r["held_out"] else "")
        cells = ""
        for rule in which:
            m = r[rule]
            cells += (f" | {m['false_split_sources']:>6d} ({m['false_split_copies']:>4d}/{r['copies']:<5d})"
                      f" {m['false_merge_sources']:>5d} ({m['false_merge_pairs']}/{r['pairs']})")
        print(f"{name:27s}{cells}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rule": settings, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
