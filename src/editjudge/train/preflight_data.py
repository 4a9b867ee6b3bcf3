"""Pre-flight, data seam: parquet schema, ``<image>`` placeholders, labels, prompt lengths as verl counts them."""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from editjudge.prompts import IMAGE_PLACEHOLDER
from editjudge.train.preflight_report import Report


def _field_names(arrow_type: Any) -> set[str]:
    return {arrow_type.field(i).name for i in range(arrow_type.num_fields)}


def _schema_problems(schema: Any, prompt_key: str, image_key: str) -> list[str]:
    import pyarrow as pa

    issues = []
    for column in (prompt_key, image_key, "data_source", "reward_model"):
        if column not in schema.names:
            issues.append(f"column {column!r} is missing")
    if issues:
        return issues
    prompt = schema.field(prompt_key).type
    if not (pa.types.is_list(prompt) or pa.types.is_large_list(prompt)) or not pa.types.is_struct(
        prompt.value_type
    ) or not {"role", "content"} <= _field_names(prompt.value_type):
        issues.append(f"column {prompt_key!r} must be a list of {{role, content}} messages, got {prompt}")
    images = schema.field(image_key).type
    ok_images = (pa.types.is_list(images) or pa.types.is_large_list(images)) and (
        (pa.types.is_struct(images.value_type) and "bytes" in _field_names(images.value_type))
        or pa.types.is_string(images.value_type)
        or pa.types.is_large_string(images.value_type)
    )
    if not ok_images:
        issues.append(f"column {image_key!r} must be a list of {{bytes}} structs or path strings, got {images}")
    reward = schema.field("reward_model").type
    if not pa.types.is_struct(reward) or "ground_truth" not in _field_names(reward):
        issues.append(f"column 'reward_model' must be a struct with 'ground_truth', got {reward}")
    return issues


def _verl_messages(prompt: list[dict], images: list[Any]) -> list[dict]:
    """verl's RLHFDataset._build_messages for string contents: each <image> becomes an image part, in order."""
    from io import BytesIO

    from PIL import Image

    pending = list(images)
    messages = []
    for message in prompt:
        content = message["content"]
        if not isinstance(content, str) or IMAGE_PLACEHOLDER not in content:
            messages.append({"role": message["role"], "content": content})
            continue
        parts: list[dict] = []
        for i, chunk in enumerate(content.split(IMAGE_PLACEHOLDER)):
            if i:
                image = pending.pop(0)
                if isinstance(image, dict):
                    image = Image.open(BytesIO(image["bytes"]))
                parts.append({"type": "image", "image": image})
            if chunk:
                parts.append({"type": "text", "text": chunk})
        messages.append({"role": message["role"], "content": parts})
    return messages


def prompt_length(processor: Any, prompt: list[dict], images: list[Any], data_cfg: Any) -> int:
    """Prompt tokens as verl counts them (chat template + qwen_vl_utils sizing + processor), images included."""
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl.utils.tokenizer import build_multimodal_processor_inputs

    messages = _verl_messages(prompt, images)
    kwargs = dict(data_cfg.get("apply_chat_template_kwargs") or {})
    raw = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **kwargs)
    patch = data_cfg.get("image_patch_size") or getattr(processor.image_processor, "patch_size", 14)
    pil_images, videos, audios = RLHFDataset._process_multi_modal_info(messages, patch, data_cfg)
    inputs = build_multimodal_processor_inputs(
        processor, text=[raw], images=pil_images, videos=videos, audio=audios,
        mm_processor_kwargs=dict(data_cfg.get("mm_processor_kwargs") or {}),
    )
    return int(len(inputs["input_ids"][0]))


FAST_CHECK_ROWS = 8


@dataclass(frozen=True)
class FastLength:
    """Prompt tokens without decoding images: the chat template through the tokenizer, plus each image's tokens
    from its header size after the two resizes verl's path applies (``qwen_vl_utils.fetch_image``'s
    ``smart_resize``, then the processor's). Only for Qwen2-VL-style processors; always checked against
    :func:`prompt_length` on the longest rows before it is trusted.
    """

    processor: Any
    template_kwargs: dict
    patch: int
    processor_patch: int
    merge: int
    min_pixels: int
    max_pixels: int

    @classmethod
    def build(cls, processor: Any, data_cfg: Any) -> FastLength | None:
        image_processor = getattr(processor, "image_processor", None)
        size = getattr(image_processor, "size", None)
        needed = (getattr(image_processor, "patch_size", None), getattr(image_processor, "merge_size", None))
        if None in needed or size is None or data_cfg.get("mm_processor_kwargs"):
            return None
        get = size.get if hasattr(size, "get") else lambda key: getattr(size, key, None)
        min_pixels = getattr(image_processor, "min_pixels", None) or get("shortest_edge")
        max_pixels = getattr(image_processor, "max_pixels", None) or get("longest_edge")
        if not (min_pixels and max_pixels):
            return None
        patch = int(data_cfg.get("image_patch_size") or image_processor.patch_size)
        return cls(processor, dict(data_cfg.get("apply_chat_template_kwargs") or {}), patch,
                   int(image_processor.patch_size), int(image_processor.merge_size), int(min_pixels), int(max_pixels))

    def __call__(self, prompt: list[dict], images: list[Any]) -> int:
        from io import BytesIO

        from PIL import Image
        from qwen_vl_utils import vision_process
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        messages = [
            {"role": m["role"], "content": [
                part for i, chunk in enumerate(str(m["content"]).split(IMAGE_PLACEHOLDER))
                for part in ([{"type": "image"}] if i else []) + ([{"type": "text", "text": chunk}] if chunk else [])
            ]} if IMAGE_PLACEHOLDER in str(m["content"]) else dict(m)
            for m in prompt
        ]
        raw = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                                 **self.template_kwargs)
        total = len(self.processor.tokenizer(raw, add_special_tokens=False)["input_ids"]) - len(images)
        factor = self.patch * vision_process.SPATIAL_MERGE_SIZE
        for image in images:
            source = BytesIO(image["bytes"]) if isinstance(image, dict) else image
            with Image.open(source) as opened:
                width, height = opened.size
            height, width = vision_process.smart_resize(
                height, width, factor=factor, min_pixels=vision_process.IMAGE_MIN_TOKEN_NUM * factor**2,
                max_pixels=vision_process.IMAGE_MAX_TOKEN_NUM * factor**2,
            )
            height, width = smart_resize(height, width, factor=self.processor_patch * self.merge,
                                         min_pixels=self.min_pixels, max_pixels=self.max_pixels)
            total += (height // self.processor_patch) * (width // self.processor_patch) // self.merge**2
        return total


def check_data_file(path: str, cfg: Any, processor: Any, report: Report, *, max_rows: int | None = None) -> int:
    """Schema, ``<image>`` placeholders = images per row, prompt lengths within ``data.max_prompt_length``.

    Returns the file's row count (0 when it cannot be read).
    """
    import pyarrow.parquet as pq
    from tqdm import tqdm

    name = os.path.basename(path)
    if not os.path.isfile(path):
        report.fail(
            f"data file {path} does not exist",
            "run `editjudge prepare <folders or manifests> -o <dir>` and pass <dir>/train.parquet and "
            "<dir>/test.parquet with --train-files / --val-files",
        )
        return 0
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:
        report.fail(f"data file {path} is not a readable parquet file ({exc})", "re-create it with `editjudge prepare`")
        return 0
    prompt_key, image_key = str(cfg.data.prompt_key), str(cfg.data.image_key)
    issues = _schema_problems(parquet.schema_arrow, prompt_key, image_key)
    if issues:
        report.fail(
            f"{path}: {'; '.join(issues)}",
            f"write it with `editjudge prepare` (verl's format: {prompt_key}, {image_key}, data_source, reward_model)",
        )
        return 0
    rows = parquet.metadata.num_rows
    if rows == 0:
        report.fail(f"{path} has no rows", "check the input of `editjudge prepare` (no scored edits were found)")
        return 0
    bad_labels = label_problems(parquet)
    if bad_labels:
        report.fail(
            f"{path}: {len(bad_labels)} row(s) whose reward_model.ground_truth the reward refuses "
            f"({'; '.join(bad_labels[:3])}) — verl's reward workers would raise mid-run",
            "labels must be the scores 0..9 (the string '7' that `editjudge prepare` writes; a dimension row's: a JSON "
            "object of its dimensions' scores 0..9 or null, as `prepare --dimensions SET` writes); re-create the file "
            "with `editjudge prepare`",
        )
    limit = int(cfg.data.max_prompt_length)
    step = max(1, rows // max_rows) if max_rows else 1
    fast = FastLength.build(processor, cfg.data) if processor is not None else None

    def full(prompt: list[dict], images: list[Any]) -> int:
        return prompt_length(processor, prompt, images, cfg.data)

    mismatched: list[str] = []
    head: list[tuple[int, int, list[dict], list[Any]]] = []  # (fast length, -index, prompt, images): first rows
    top: list[tuple[int, int, list[dict], list[Any]]] = []  # min-heap of the longest rows

    def rows_of() -> Iterable[tuple[int, list[dict], list[Any]]]:
        index = 0
        with tqdm(total=rows, desc=f"pre-flight {name}", unit="row", disable=None) as bar:
            for batch in parquet.iter_batches(batch_size=64, columns=[prompt_key, image_key]):
                for row in batch.to_pylist():
                    yield index, row[prompt_key] or [], row[image_key] or []
                    index += 1
                bar.update(batch.num_rows)

    def measure(counter: Any, first_pass: bool) -> tuple[int, list[tuple[int, int]], list[str]]:
        longest, overlong, unreadable = 0, [], []
        for index, prompt, images in rows_of():
            placeholders = sum(str(m.get("content") or "").count(IMAGE_PLACEHOLDER) for m in prompt)
            if placeholders != len(images):
                if first_pass:
                    mismatched.append(f"row {index}: {placeholders} {IMAGE_PLACEHOLDER} vs {len(images)} images")
                continue
            if counter is None or index % step:
                continue
            try:
                length = counter(prompt, images)
            except Exception as exc:
                unreadable.append(f"row {index}: {type(exc).__name__}: {exc}")
                continue
            longest = max(longest, length)
            if length > limit:
                overlong.append((index, length))
            if first_pass and counter is fast:  # keep the first and the longest rows to check against verl
                item = (length, -index, prompt, images)
                if len(head) < FAST_CHECK_ROWS:
                    head.append(item)
                if len(top) < FAST_CHECK_ROWS:
                    heapq.heappush(top, item)
                elif length > top[0][0]:
                    heapq.heapreplace(top, item)
        return longest, overlong, unreadable

    longest, overlong, unreadable = measure(fast or (full if processor is not None else None), True)
    how = "verl's processor path"
    if fast is not None and not unreadable:
        sample = {-neg: (n, pr, im) for n, neg, pr, im in head + top}
        disagree = [(i, n, full(pr, im)) for i, (n, pr, im) in sorted(sample.items())]
        disagree = [(i, n, f) for i, n, f in disagree if n != f]
        if disagree:
            i, n, f = disagree[0]
            report.warnings.append(
                f"{name}: the fast length count disagrees with verl's processor path on row {i} ({n} vs {f}); "
                "measured every row with verl's path"
            )
            longest, overlong, unreadable = measure(full, False)
        else:
            how = f"fast count, equal to verl's processor path on {len(sample)} rows incl. the longest"
    if mismatched:
        report.fail(
            f"{path}: {len(mismatched)} row(s) whose {IMAGE_PLACEHOLDER} placeholders differ from their images "
            f"({'; '.join(mismatched[:3])}) — verl would stop mid-run",
            "re-create the file with `editjudge prepare` (prompts from editjudge.prompts hold exactly two "
            "<image>, images = [source, edited])",
        )
    if unreadable:
        report.fail(
            f"{path}: {len(unreadable)} row(s) the processor cannot read ({'; '.join(unreadable[:3])})",
            "re-create the file with `editjudge prepare` (it re-encodes images and drops unreadable ones)",
        )
    if overlong:
        worst = max(length for _, length in overlong)
        report.fail(
            f"{path}: {len(overlong)} prompt(s) longer than data.max_prompt_length={limit} tokens "
            f"(longest {worst}; rows {[i for i, _ in overlong[:5]]})"
            + (" — filter_overlong_prompts would drop them" if cfg.data.get("filter_overlong_prompts") else ""),
            f"pass `-- data.max_prompt_length={_round_up_pow2(worst)}`, or re-run `editjudge prepare ... "
            f"--max-prompt-length {limit} --processor <model>` so the images are sized to fit",
        )
    if not (mismatched or unreadable or overlong or bad_labels):
        measured = f"longest prompt {longest}/{limit} tokens ({how})" if processor is not None else "lengths not measured"
        sampled = f", lengths on 1 row in {step}" if step > 1 else ""
        report.passed.append(f"{name}: {rows} rows, 2-image prompts match their images, {measured}{sampled}")
    return rows


def _routed_labels(parquet: Any) -> Iterator[tuple[Any, Any, Any, ValueError | None]]:
    """Each row's ``(ground_truth, data_source, format, error)``: its label read by its judgment format, routed by
    ``data_source`` as the reward routes it (``error``: why the reward refuses the label, else None)."""
    import pyarrow.compute as pc

    from editjudge.formats import format_for_row

    columns = ["reward_model"] + (["data_source"] if "data_source" in parquet.schema_arrow.names else [])
    for batch in parquet.iter_batches(batch_size=4096, columns=columns):
        truths = pc.struct_field(batch.column(0), "ground_truth").to_pylist()
        sources = batch.column(1).to_pylist() if len(columns) > 1 else [None] * len(truths)
        for truth, source in zip(truths, sources):
            try:
                fmt = format_for_row(source, truth)
                fmt.parse_label(truth)
            except ValueError as exc:
                yield truth, source, None, exc
            else:
                yield truth, source, fmt, None


def label_problems(parquet: Any) -> list[str]:
    """Rows whose ``reward_model.ground_truth`` the reward refuses: each row's label read by its judgment format
    (routed by ``data_source`` as the reward routes it; pointwise: :func:`~editjudge.reward.parse_label`)."""
    from editjudge.formats import DIMENSIONS_DATA_SOURCE

    return [f"row {index}: {truth!r}" + (f" ({error})" if source == DIMENSIONS_DATA_SOURCE else "")
            for index, (truth, source, _, error) in enumerate(_routed_labels(parquet))
            if error is not None]  # a dimension row's reason names the dimension and the value


def row_formats(path: str) -> list[Any]:
    """The judgment formats of a prepared parquet's rows (one per kind, routed as the reward routes them); rows
    whose label the reward refuses are left out (:func:`label_problems` names them)."""
    import pyarrow.parquet as pq

    found: dict[str, Any] = {}
    for _, _, fmt, _ in _routed_labels(pq.ParquetFile(path)):
        if fmt is not None:
            found.setdefault(getattr(fmt, "spec", fmt.data_source), fmt)
    return list(found.values())


def check_answer_room(cfg: Any, paths: list[str], processor: Any, report: Report) -> None:
    """``data.max_response_length`` holds one whole answer of the training rows' formats (else every completion is
    cut before its answer closes: reward 0 for all, nothing learnt)."""
    from editjudge.train.answer_room import answer_tokens

    tokenizer = getattr(processor, "tokenizer", processor)
    readable = [p for p in paths if os.path.isfile(p)]
    if tokenizer is None or not readable:
        return
    try:
        formats = [fmt for p in readable for fmt in row_formats(p)]
    except Exception:  # noqa: BLE001 - check_data_file names an unreadable file
        return
    if not formats:
        return
    limit = int(cfg.data.max_response_length)
    needed, example = answer_tokens(formats, tokenizer)
    if needed > limit:
        report.fail(f"data.max_response_length={limit} cannot hold an answer: {example!r} and the end of the turn "
                    f"take {needed} tokens with this tokenizer, so every response would be cut before its answer "
                    "closes (reward 0 for all, nothing learnt)",
                    f"pass `-- data.max_response_length={needed}` or more (docs/training.md, \"Room for the answer\")")
    else:
        report.passed.append(f"data.max_response_length={limit} holds a whole answer ({needed} tokens at least)")


def _groups(paths: list[str]) -> dict[str, set[str]] | None:
    """Source group (``extra_info.group``, written by prepare) per file; ``None`` when a file records none."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    groups: dict[str, set[str]] = {}
    for path in paths:
        try:
            schema = pq.read_schema(path)
            extra = schema.field("extra_info").type if "extra_info" in schema.names else None
            if extra is None or not hasattr(extra, "get_field_index") or extra.get_field_index("group") < 0:
                return None
            column = pq.read_table(path, columns=["extra_info"]).column("extra_info")
            groups[path] = {g for g in pc.struct_field(column, "group").to_pylist() if g is not None}
        except Exception:  # unreadable files get their own problem from check_data_file
            return None
    return groups


def check_train_val_overlap(train: list[str], val: list[str], report: Report) -> None:
    """Warn when validation repeats training: the same file, or source groups on both sides (a leaky split).

    The groups are the ``extra_info.group`` that ``editjudge prepare`` writes (one per source picture, or the
    manifest's ``group``); its split keeps every group on one side.
    """
    train = [os.path.expanduser(p) for p in train if os.path.isfile(os.path.expanduser(p))]
    val = [os.path.expanduser(p) for p in val if os.path.isfile(os.path.expanduser(p))]
    if not train or not val:
        return
    same = sorted({v for v in val for t in train if os.path.samefile(v, t)})
    if same:
        report.warnings.append(
            f"the validation file {same[0]} is also a training file: validation would score the judge on what it "
            "trained on; pass --val-files <prepared>/test.parquet (editjudge prepare writes both)"
        )
        return
    groups = _groups(train + val)
    if groups is None:
        report.warnings.append("train/validation overlap not checked: the files record no extra_info.group")
        return
    seen = set().union(*(groups[p] for p in train))
    val_groups = set().union(*(groups[p] for p in val))
    shared = sorted(val_groups & seen)
    if shared:
        report.warnings.append(
            f"{len(shared)} of {len(val_groups)} validation source group(s) also appear in training "
            f"(e.g. {', '.join(shared[:3])}): validation would overstate the judge on sources it saw; re-run "
            "`editjudge prepare` on all the data so its split keeps each source on one side"
        )
    else:
        report.passed.append(f"train and validation share no source group ({len(seen)} / {len(val_groups)} groups)")


def _round_up_pow2(value: int) -> int:
    return 1 << (int(value) - 1).bit_length()


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]

