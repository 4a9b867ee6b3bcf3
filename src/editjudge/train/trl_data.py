"""The TRL engine's data: prepared parquet as training examples (images left in Arrow), the ``datasets.Dataset`` TRL
consumes, and the warm start's format-only targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from editjudge import prompts
from editjudge.reward import parse_label

WARM_START_THINK = "ok"
WARM_START_DIGITS = tuple(range(prompts.SCORE_MIN, prompts.SCORE_MAX + 1))


def warm_start_target(digit: int) -> str:
    """A supervised target of the warm start: the answer FORMAT only — a constant short reasoning, then ``digit``.

    The warm start pairs every training prompt with each of :data:`WARM_START_DIGITS` once (see
    :func:`build_dataset`), so its targets carry nothing about the images or the label: the best it can learn is the
    format with a uniform answer for every edit (a fixed random digit per row would be memorised, and sharp answers
    leave GRPO's groups without reward variance). Whatever the judge learns about the edits comes from GRPO.
    """
    return prompts.format_answer(digit, WARM_START_THINK)


@dataclass
class Examples:
    """Training examples read from prepared parquet: Python prompts and labels, images left in Arrow (no copies)."""

    prompts: list[list[dict[str, Any]]]  # messages with {"type": "image"} / {"type": "text"} content parts
    images: Any  # pyarrow ChunkedArray, list<struct<bytes: binary>> (source, edited)
    ground_truth: list[str]

    def __len__(self) -> int:
        return len(self.ground_truth)


def read_examples(paths: str | Path | Sequence[str | Path]) -> Examples:
    """Prepared parquet files (``prompt``, ``images``, ``reward_model.ground_truth``) as TRL examples; checked."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = [paths] if isinstance(paths, (str, Path)) else list(paths or [])
    if not files:
        raise ValueError("no training files given: pass --train-files PATH.parquet (written by `editjudge prepare`)")
    prompts_out: list[list[dict[str, Any]]] = []
    labels: list[str] = []
    image_chunks: list[Any] = []
    for file in files:
        path = Path(file)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such parquet file (write one with `editjudge prepare`)")
        names = set(pq.read_schema(path).names)
        missing = {"prompt", "images", "reward_model"} - names
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; is it a parquet from `editjudge prepare`?")
        table = pq.read_table(path, columns=["prompt", "images", "reward_model"])
        image_counts = pc.fill_null(pc.list_value_length(table["images"]), 0).to_pylist()
        truths = pc.struct_field(table["reward_model"], "ground_truth").to_pylist()
        for i, (messages, count, truth) in enumerate(zip(table["prompt"].to_pylist(), image_counts, truths)):
            placeholders = sum(str(m.get("content", "")).count(prompts.IMAGE_PLACEHOLDER) for m in messages)
            if placeholders != count:
                raise ValueError(f"{path} row {i}: {placeholders} {prompts.IMAGE_PLACEHOLDER} placeholders but "
                                 f"{count} images")
            if truth is None:
                raise ValueError(f"{path} row {i}: reward_model.ground_truth is missing")
            try:
                parse_label(truth)
            except ValueError as exc:
                raise ValueError(f"{path} row {i}: {exc}") from None
            prompts_out.append(prompts.to_content_parts(messages))
            labels.append(str(truth))
        image_chunks += table["images"].chunks
    if not labels:
        raise ValueError(f"{', '.join(map(str, files))}: no rows to train on")
    return Examples(prompts_out, pa.chunked_array(image_chunks), labels)


def build_dataset(examples: Examples, with_completion: bool = False):
    """A ``datasets.Dataset`` whose ``images`` decode lazily to PIL images (what TRL's trainers consume).

    The image bytes go from the parquet's Arrow buffers into the dataset's without a copy through Python.
    ``with_completion`` adds the warm start's supervised targets (:func:`warm_start_target`): each row once per
    digit, so every prompt is paired with every answer equally often.
    """
    import datasets

    text_part = {"type": datasets.Value("string"), "text": datasets.Value("string")}
    message = {"role": datasets.Value("string"), "content": datasets.List(text_part)}
    features = {
        "prompt": datasets.List(message),
        "images": datasets.List(datasets.Image()),
        "ground_truth": datasets.Value("string"),
    }
    columns: dict[str, Any] = {
        "prompt": examples.prompts, "images": examples.images, "ground_truth": examples.ground_truth,
    }
    if with_completion:
        rows = [row for row in range(len(examples)) for _ in WARM_START_DIGITS]
        columns = {"prompt": [examples.prompts[r] for r in rows], "images": examples.images.take(rows),
                   "ground_truth": [examples.ground_truth[r] for r in rows]}
        features["completion"] = datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
        columns["completion"] = [
            [{"role": "assistant", "content": warm_start_target(digit)}] for _ in range(len(examples))
            for digit in WARM_START_DIGITS
        ]
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


__all__ = ["WARM_START_DIGITS", "WARM_START_THINK", "Examples", "build_dataset", "read_examples", "warm_start_target"]
