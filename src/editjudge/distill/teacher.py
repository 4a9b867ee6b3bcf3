"""A teacher judge over the rows of a prepared parquet: the rows' own prompt and images, K samples per row.

The rows already hold the project's prompt (:mod:`editjudge.prompts`) and the images sized by ``editjudge prepare``,
so the request is built from them directly (no second resize) and sent through any judge backend
(:mod:`editjudge.judge.backends`: an OpenAI-compatible server, vLLM or transformers).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from editjudge.judge.backends import Backend, ItemOutput, SamplingOptions
from editjudge.judge.request import JudgeRequest

REQUIRED_COLUMNS = ("prompt", "images", "reward_model", "extra_info")


def check_parquet(path: str | Path) -> str | None:
    """Why ``path`` is not a prepared parquet (None when it is one)."""
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.is_file():
        return f"--data {p}: no such file (give the train parquet written by `editjudge prepare`)"
    try:
        names = set(pq.read_schema(p).names)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a non-parquet file
        return f"--data {p}: not a parquet file ({type(exc).__name__}: {exc})"
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        return (
            f"--data {p}: lacks column(s) {missing}; give the train parquet written by `editjudge prepare` "
            "(not an SFT parquet written by `editjudge distill`)"
        )
    return None


def read_rows(path: str | Path, batch_rows: int = 64) -> Iterator[dict[str, Any]]:
    """The rows of a prepared parquet as dicts, a few at a time (memory stays bounded)."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        yield from batch.to_pylist()


def count_rows(path: str | Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def request_of(row: dict[str, Any]) -> JudgeRequest:
    """The row's messages and its two images decoded as the trainer decodes them; ``ValueError`` when unusable."""
    from PIL import Image

    from editjudge.data.images import to_rgb

    messages = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
    images = []
    for i, item in enumerate(row["images"] or []):
        try:
            image = Image.open(io.BytesIO(item["bytes"]))
            image.load()
        except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for bad bytes
            raise ValueError(f"image {i} cannot be decoded ({type(exc).__name__}: {exc})") from None
        images.append(to_rgb(image))
    if len(images) != 2:
        raise ValueError(f"expected 2 images (source, edited), found {len(images)}")
    return JudgeRequest(messages=messages, images=(images[0], images[1]))


def ask(backend: Backend, rows: Iterable[dict[str, Any]], sampling: SamplingOptions) -> Iterator[tuple[dict[str, Any], ItemOutput]]:
    """Each row with the teacher's output, in input order, ``backend.batch_size`` rows in flight at most."""
    from itertools import islice

    iterator = iter(rows)
    while chunk := list(islice(iterator, max(1, backend.batch_size))):
        outputs: dict[int, ItemOutput] = {}
        requests, positions = [], []
        for i, row in enumerate(chunk):
            try:
                requests.append(request_of(row))
                positions.append(i)
            except (ValueError, KeyError, TypeError) as exc:
                outputs[i] = ItemOutput(error=f"input_error: {exc}")
        if requests:
            for i, output in zip(positions, backend.generate(requests, sampling)):
                outputs[i] = output
        for i, row in enumerate(chunk):
            yield row, outputs[i]
