"""Measure the split's picture-grouping rule (editjudge.data.labels) on the synthetic generator's sources.

* false merges: distinct synthetic sources (each a different drawing) that the rule puts into one group — the share
  of sources that land in a merged group, and merged pairs out of all pairs;
* recall: copies an editing pipeline makes of one source (JPEG re-encodes at q95/94/93/70, resized to 90 % and
  110 %, stored rotated with an EXIF orientation tag, PNG) that end in the source's group.

    PYTHONPATH=src python benchmarks/measure_grouping.py --sources 1000            # flat 64 px drawings (default)
    PYTHONPATH=src python benchmarks/measure_grouping.py --sources 300 --photo-like --size 128
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from PIL import Image

from editjudge.data import labels as lbl
from editjudge.synthetic import write_synthetic_edits


def copies(data: bytes) -> list[bytes]:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    out = []
    for quality in (95, 94, 93, 70):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        out.append(buffer.getvalue())
    for scale in (0.9, 1.1):
        buffer = io.BytesIO()
        image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC).save(
            buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.transpose(Image.Transpose.ROTATE_90).save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    out.append(buffer.getvalue())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    out.append(buffer.getvalue())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--photo-like", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_edits(tmp, n_sources=args.sources, candidates_per_source=1, size=args.size, seed=args.seed,
                              photo_like=args.photo_like)
        sources = [p.read_bytes() for p in sorted(Path(tmp).rglob("*_input.jpg"))]
    started = time.perf_counter()
    hashes = [lbl.picture_hash(data) for data in sources]
    keys = lbl.group_keys([None] * len(hashes), hashes)
    seconds = time.perf_counter() - started
    sizes = Counter(keys)
    merged_sources = sum(n for n in sizes.values() if n > 1)
    merged_pairs = sum(n * (n - 1) // 2 for n in sizes.values())
    all_pairs = len(sources) * (len(sources) - 1) // 2
    hits = total = 0
    for data, own in zip(sources[:200], hashes[:200]):
        variants = [lbl.picture_hash(c) for c in copies(data)]
        grouped = lbl.group_keys([None] * (1 + len(variants)), [own, *variants])
        hits += sum(g == grouped[0] for g in grouped[1:])
        total += len(variants)
    print(json.dumps({
        "sources": len(sources), "size": args.size, "photo_like": args.photo_like,
        "rule": {"phash_bits": lbl.PHASH_SIZE ** 2, "max_distance": lbl.PHASH_MAX_DISTANCE,
                 "thumb_max_diff": lbl.THUMB_MAX_DIFF},
        "groups": len(sizes),
        "false_merge_source_share": round(merged_sources / len(sources), 5),
        "false_merge_pairs": f"{merged_pairs}/{all_pairs}",
        "copy_recall": round(hits / total, 4), "copies_checked": total,
        "hash_and_group_seconds": round(seconds, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
