"""The TRL engine's data: prepared parquet as training examples (images left in Arrow), the ``datasets.Dataset`` TRL
consumes, and the warm start's format-only targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from editjudge import prompts
from editjudge.formats import POINTWISE, JudgmentFormat, format_for_row
from editjudge.train.answer_room import WARM_START_THINK, warm_start_target

WARM_START_DIGITS = POINTWISE.warm_start_values()


@dataclass
class Examples:
    """Training examples read from prepared parquet: Python prompts and labels, images left in Arrow (no copies)."""

    prompts: list[list[dict[str, Any]]]  # messages with {"type": "image"} / {"type": "text"} content parts
    images: Any  # pyarrow ChunkedArray, list<struct<bytes: binary>> (source, edited)
    ground_truth: list[str]
    data_source: list[str] | None = None  # the rows' data_source (their judgment format); None: all pointwise
    pairs: list[str | None] | None = None  # pair rows (prepare --pairs): the pair each row is one order of

    @property
    def formats(self) -> list[JudgmentFormat]:
        """Each row's judgment format."""
        if self.data_source is None:
            return [POINTWISE] * len(self)
        return [format_for_row(ds, gt) for ds, gt in zip(self.data_source, self.ground_truth)]

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
    sources: list[str] = []
    pairs: list[str | None] = []
    image_chunks: list[Any] = []
    for file in files:
        path = Path(file)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such parquet file (write one with `editjudge prepare`)")
        names = set(pq.read_schema(path).names)
        missing = {"prompt", "images", "reward_model"} - names
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; is it a parquet from `editjudge prepare`?")
        columns = ["prompt", "images", "reward_model"] + (["data_source"] if "data_source" in names else [])
        columns += ["extra_info"] if "extra_info" in names else []
        table = pq.read_table(path, columns=columns)
        pairs += _pair_ids(table)
        image_counts = pc.fill_null(pc.list_value_length(table["images"]), 0).to_pylist()
        truths = pc.struct_field(table["reward_model"], "ground_truth").to_pylist()
        data_sources = table["data_source"].to_pylist() if "data_source" in names else [None] * len(truths)
        rows = zip(table["prompt"].to_pylist(), image_counts, truths, data_sources)
        for i, (messages, count, truth, data_source) in enumerate(rows):
            placeholders = sum(str(m.get("content", "")).count(prompts.IMAGE_PLACEHOLDER) for m in messages)
            if placeholders != count:
                raise ValueError(f"{path} row {i}: {placeholders} {prompts.IMAGE_PLACEHOLDER} placeholders but "
                                 f"{count} images")
            if truth is None:
                raise ValueError(f"{path} row {i}: reward_model.ground_truth is missing")
            try:
                fmt = format_for_row(data_source, truth)
                fmt.parse_label(truth)
            except ValueError as exc:
                raise ValueError(f"{path} row {i}: {exc}") from None
            prompts_out.append(prompts.to_content_parts(messages))
            labels.append(str(truth))
            sources.append(data_source if isinstance(data_source, str) else fmt.data_source)
        image_chunks += table["images"].chunks
    if not labels:
        raise ValueError(f"{', '.join(map(str, files))}: no rows to train on")
    return Examples(prompts_out, pa.chunked_array(image_chunks), labels, sources,
                    pairs if any(p is not None for p in pairs) else None)


def _pair_ids(table: Any) -> list[str | None]:
    """``extra_info.pair`` of each row (pair rows of ``prepare --pairs``), else None per row."""
    import pyarrow.compute as pc

    if "extra_info" not in table.column_names or "pair" not in {f.name for f in table.schema.field("extra_info").type}:
        return [None] * table.num_rows
    return pc.struct_field(table["extra_info"], "pair").to_pylist()


def pair_batch_order(examples: Examples, settings: Any) -> list[int] | None:
    """The training order of pair rows: pairs shuffled (seeded, anew each pass over the data), a pair's two orders
    next to each other, tie pairs spread evenly, and a step's prompts a whole number of pairs. A position bias then
    earns the same in both orders of every pair of a step: answering "A" whatever A is gains nothing in any update,
    and A and B labels are equally many in each. None for rows that are not pairs (TRL shuffles them itself), or when a step's prompts
    are odd."""
    import numpy as np

    if not examples.pairs or any(p is None for p in examples.pairs):
        return None
    prompts = settings.batch_size // settings.num_generations
    if prompts % 2:
        return None
    members: dict[str, list[int]] = {}
    for row, pair in enumerate(examples.pairs):
        members.setdefault(pair, []).append(row)  # type: ignore[arg-type]
    units = list(members.values())
    steps = settings.max_steps if settings.max_steps > 0 else int(np.ceil(settings.epochs * len(units) * 2 / prompts))
    passes = max(1, int(np.ceil(steps * prompts / max(1, len(examples)))))
    rng = np.random.default_rng(settings.seed)
    ties = np.array([examples.ground_truth[unit[0]] == "tie" for unit in units])
    order: list[int] = []
    for _ in range(passes):
        # tie pairs and preference pairs each shuffled, then interleaved in proportion: every step holds about the
        # data's share of ties (a step of all ties would push every answer towards "tie")
        keys = np.empty(len(units))
        for kind in (True, False):
            where = np.flatnonzero(ties == kind)
            keys[where[rng.permutation(len(where))]] = (np.arange(len(where)) + rng.uniform(size=len(where))) / max(
                1, len(where))
        for k in np.argsort(keys, kind="stable"):
            order += units[k]
    return order


def check_completion_budget(examples: Examples, tokenizer: Any, max_completion_length: int) -> None:
    """Refuse a run whose completion budget cannot hold one complete answer of its rows' formats
    (:mod:`editjudge.train.answer_room`; verl's pre-flight checks the same)."""
    from editjudge.train.answer_room import budget_problem

    problem = budget_problem(examples.formats, tokenizer, max_completion_length)
    if problem is not None:
        raise ValueError(problem)


def build_dataset(examples: Examples, with_completion: bool = False, order: list[int] | None = None):
    """A ``datasets.Dataset`` whose ``images`` decode lazily to PIL images (what TRL's trainers consume).

    The image bytes go from the parquet's Arrow buffers into the dataset's without a copy through Python.
    ``with_completion`` adds the warm start's supervised targets (:func:`warm_start_target`): each row once per
    answer of its format (pointwise: per digit), so every prompt is paired with every answer equally often. Rows
    of another format than pointwise carry their ``data_source`` (the TRL reward functions route on it).
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
    formats = examples.formats
    if with_completion:
        pairs = [(row, value) for row, fmt in enumerate(formats) for value in fmt.warm_start_values()]
        rows = [row for row, _ in pairs]
        columns = {"prompt": [examples.prompts[r] for r in rows], "images": examples.images.take(rows),
                   "ground_truth": [examples.ground_truth[r] for r in rows]}
        features["completion"] = datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
        columns["completion"] = [
            [{"role": "assistant", "content": warm_start_target(value, formats[row])}] for row, value in pairs
        ]
    elif any(fmt is not POINTWISE for fmt in formats):  # the reward functions route each row by its data_source
        features["data_source"] = datasets.Value("string")
        columns["data_source"] = [fmt.data_source for fmt in formats]
    if order is not None and not with_completion:  # pair batches: rows in their training order
        columns = {k: (v.take(order) if k == "images" else [v[i] for i in order]) for k, v in columns.items()}
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


__all__ = ["WARM_START_DIGITS", "WARM_START_THINK", "Examples", "build_dataset", "check_completion_budget",
           "pair_batch_order", "read_examples", "warm_start_target"]
