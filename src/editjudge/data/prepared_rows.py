"""Rows of a prepared parquet (what ``editjudge prepare`` writes, contract 3), one at a time. Imports no torch.

One reader for every verb that reads a prepared parquet row by row: ``eval --data`` (which refuses a malformed row),
``score --manifest FILE.parquet`` (which gives a malformed row an ``input_error`` and goes on), ``distill`` and
``bench ours`` (which count a malformed row with its reason and go on). :func:`prepared_row` checks what judging
needs, :func:`row_name` and :func:`ground_truth_label` give a row's id and label even when the row is malformed
(a null ``extra_info`` included), :func:`prompt_problem` checks the stored prompt (what distill's SFT rows reuse).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from editjudge.data import labels as lbl

COLUMNS = ("images", "reward_model", "extra_info")


def read_prepared_table(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The raw rows (images, reward_model, extra_info) of a prepared parquet; ``FileNotFoundError`` / ``ValueError``
    naming the fix when the file is missing or is not a prepared parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prepared parquet not found: {path} (write it with `editjudge prepare`)")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: not a readable parquet file ({exc})") from None
    missing = sorted(set(COLUMNS) - set(schema.names))
    if missing:
        raise ValueError(f"{path}: not an editjudge parquet (missing columns {missing}); write it with `editjudge prepare`")
    try:
        rows = pq.read_table(path, columns=list(COLUMNS)).to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: cannot read the parquet ({exc})") from None
    return rows[:limit] if limit is not None else rows


def prepared_row(row: dict[str, Any], i: int) -> dict[str, Any] | str:
    """Row ``i`` as a dict (id, name, group, label, gt_score, instruction, source, edited, source_path, edited_path),
    or a string naming what is wrong with it. ``id`` is prepare's index (as ``eval --data`` counts rows), ``name``
    the edit's id from the manifest; ``group`` is what eval compares (prepare's group + the instruction); ``label``
    is the row's ground truth as stored; ``source``/``edited`` the image bytes as prepare sized them."""
    extra = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
    images = row.get("images") or []
    if len(images) != 2 or not all(isinstance(im, dict) and im.get("bytes") for im in images):
        return f"row {i} must carry two images with bytes (source, edited)"
    instruction = extra.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        return f"row {i} has no extra_info.instruction"
    reward_model = row.get("reward_model") if isinstance(row.get("reward_model"), dict) else {}
    group = extra.get("group")
    index = extra.get("index")
    name = extra.get("id")
    return {
        "id": str(index if index is not None else i),
        "name": str(name) if name is not None else None,
        "group": lbl.compare_key(str(group), instruction) if group is not None else None,
        "label": reward_model.get("ground_truth", extra.get("label")),
        "gt_score": extra.get("score"),
        "instruction": instruction,
        "source": images[0]["bytes"],
        "edited": images[1]["bytes"],
        "source_path": extra.get("source_path"),
        "edited_path": extra.get("edited_path"),
    }


def _extra(row: dict[str, Any]) -> dict[str, Any]:
    extra = row.get("extra_info") if isinstance(row, dict) else None
    return extra if isinstance(extra, dict) else {}


def row_name(row: dict[str, Any], i: int) -> str:
    """The row's id: ``extra_info.id`` (the edit's id), else ``extra_info.index``, else its position ``i``."""
    extra = _extra(row)
    name = extra.get("id", extra.get("index"))
    return str(name) if name is not None else str(i)


def ground_truth_label(value: Any) -> int | None:
    """The 0..9 label of a ``reward_model.ground_truth`` (prepare writes a digit string), or None when it is not one."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text.lstrip("-").isdigit() and len(text) < 8:
        text = int(text)
    if isinstance(text, int) and not isinstance(text, bool) and lbl.LABEL_MIN <= text <= lbl.LABEL_MAX:
        return text
    return None


def row_label(row: dict[str, Any]) -> int | None:
    """The row's stored label (``reward_model.ground_truth``, else ``extra_info.label``: what :func:`prepared_row`
    reads), or None when the row has none that is 0..9."""
    reward_model = row.get("reward_model") if isinstance(row, dict) else None
    reward_model = reward_model if isinstance(reward_model, dict) else {}
    return ground_truth_label(reward_model.get("ground_truth", _extra(row).get("label")))


def prompt_problem(row: dict[str, Any], i: int) -> str | None:
    """Why the row's stored ``prompt`` is not a list of {role, content} messages (None when it is)."""
    messages = row.get("prompt") if isinstance(row, dict) else None
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages):
        return f"row {i} has no prompt of {{role, content}} messages"
    return None
