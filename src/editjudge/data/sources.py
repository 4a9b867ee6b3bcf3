"""Read scored edits from the seed's folder layout or from a JSONL/CSV manifest. Imports no torch.

Public API (stable, shared with :mod:`editjudge.judge`):

* :class:`EditRecord` — one edit: ``id``, ``source_path``, ``edited_path``, ``instruction``, ``score`` (float or
  None), ``group`` (str or None), ``origin`` (where it was read from).
* :class:`Rejected` — a sample that cannot be used: ``id``, ``reason`` (a stable code, see :data:`REASONS`),
  ``detail`` (a sentence for humans), ``paths``.
* :func:`read_sources` — yields ``EditRecord`` or ``Rejected`` items, in a deterministic order, from one or more
  folders / manifests. Every sample found yields exactly one item, so ``kept + rejected == found``.
* :func:`load_sources` — the same, collected into ``(records, rejects)``.

Folder layout (the seed's), found recursively: ``<stem>_input.<ext>``, ``<stem>_output.<ext>``,
``<stem>_meta.json`` (``{"instruction": …}``) and ``<stem>_score.json`` (``{"score": <float>}``). The record id is the
stem's path relative to the folder (``sub/dir/stem``).

Manifest (``.jsonl`` or ``.csv``): columns ``source``, ``edited``, ``instruction``, ``score`` (optional, may be
empty), ``group`` (optional), ``id`` (optional; default ``<manifest name>:<line>``). Relative paths resolve against
the manifest's folder.

With ``require_score=False`` (inference: :mod:`editjudge.judge`) a missing score is allowed and ``score`` is None;
an invalid score (NaN, inf, text) is still rejected.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EditRecord",
    "Rejected",
    "REASONS",
    "MANIFEST_SUFFIXES",
    "read_sources",
    "load_sources",
    "parse_score",
]

MANIFEST_SUFFIXES = (".jsonl", ".csv")
_ROLE_RE = re.compile(r"^(?P<stem>.+)_(?P<role>input|output|meta|score)(?P<ext>\.[^./\\]+)$", re.IGNORECASE)

# Stable reject codes -> what they mean (prepare's report and rejects.jsonl use these codes).
REASONS: dict[str, str] = {
    "missing_source": "no <stem>_input.* image (or the manifest's source file does not exist)",
    "missing_edited": "no <stem>_output.* image (or the manifest's edited file does not exist)",
    "ambiguous_files": "several files claim the same role for one stem (e.g. a_input.jpg and a_input.png)",
    "missing_meta": "no <stem>_meta.json sidecar",
    "malformed_meta": "the meta sidecar is not a JSON object",
    "empty_instruction": "the instruction is missing or blank",
    "missing_score_file": "no <stem>_score.json sidecar",
    "malformed_score_file": "the score sidecar is not a JSON object",
    "missing_score": "no score value",
    "non_numeric_score": "the score is not a number",
    "non_finite_score": "the score is NaN or infinite",
    "duplicate_id": "another sample already has this id",
    "malformed_manifest_row": "a manifest line is not valid JSON / lacks required columns",
    # Image-level reasons (editjudge.data.images).
    "unreadable_file": "the file exists but cannot be read (permissions, I/O error)",
    "not_an_image": "the file cannot be identified as an image",
    "truncated_image": "the image file is truncated or corrupt",
    "decompression_bomb": "the image has more pixels than the decompression-bomb limit",
    "bad_aspect_ratio": "the image's aspect ratio exceeds Qwen2.5-VL's limit of 200",
    "prompt_too_long": "text plus both images at their minimum size exceed --max-prompt-length",
    # Selection (editjudge.data.labels).
    "not_selected": "left out by --sample-size / --balanced sampling",
}


@dataclass(frozen=True)
class EditRecord:
    """One scored (or unscored) edit: a source image, an edited image and the instruction that links them."""

    id: str
    source_path: str
    edited_path: str
    instruction: str
    score: float | None = None
    group: str | None = None
    origin: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Rejected:
    """A sample that was found but cannot be used, with a stable ``reason`` code and a readable ``detail``."""

    id: str
    reason: str
    detail: str
    paths: tuple[str, ...] = field(default_factory=tuple)
    # What could still be read, so that a consumer (e.g. `editjudge score`) reports the sample as it was given.
    source_path: str | None = None
    edited_path: str | None = None
    instruction: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "reason": self.reason, "detail": self.detail, "paths": list(self.paths)}


class ScoreError(ValueError):
    """A score value that cannot be used; ``reason`` is one of the score codes of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def parse_score(value: Any) -> float | None:
    """A finite float from a JSON/CSV value; None for missing/empty; :class:`ScoreError` for anything else."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ScoreError("non_numeric_score", f"score must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        score = float(value)
    elif isinstance(value, str):
        try:
            score = float(value.strip())
        except ValueError:
            raise ScoreError("non_numeric_score", f"score must be a number, got {value!r}") from None
    else:
        raise ScoreError("non_numeric_score", f"score must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(score):
        raise ScoreError("non_finite_score", f"score must be finite, got {value!r}")
    return score


def _read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ValueError with a readable message otherwise (NaN/Infinity are parsed)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _instruction_of(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


# ---------------------------------------------------------------------------------------------------- folders


def _walk_sorted(root: Path) -> Iterator[Path]:
    """Files under ``root`` in a stable order (sorted at every level), following no symlinked folders."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _read_folder(root: Path, require_score: bool) -> Iterator[EditRecord | Rejected]:
    groups: dict[str, dict[str, list[Path]]] = {}
    for path in _walk_sorted(root):
        match = _ROLE_RE.match(path.name)
        if not match:
            continue
        role, ext = match["role"].lower(), match["ext"].lower()
        if role in ("meta", "score") and ext != ".json":
            continue
        if role in ("input", "output") and ext == ".json":
            continue
        rel = path.parent.relative_to(root).as_posix()
        key = match["stem"] if rel == "." else f"{rel}/{match['stem']}"
        groups.setdefault(key, {}).setdefault(role, []).append(path)
    for key in sorted(groups):
        yield _folder_item(key, groups[key], require_score)


def _folder_item(key: str, files: dict[str, list[Path]], require_score: bool) -> EditRecord | Rejected:
    paths = tuple(str(p) for role in ("input", "output", "meta", "score") for p in files.get(role, []))
    known: dict[str, str | None] = {
        "source_path": str(files["input"][0]) if len(files.get("input", ())) == 1 else None,
        "edited_path": str(files["output"][0]) if len(files.get("output", ())) == 1 else None,
    }
    for role, files_of_role in files.items():
        if len(files_of_role) > 1:
            names = ", ".join(p.name for p in files_of_role)
            return Rejected(key, "ambiguous_files", f"several {role} files for one stem: {names}", paths, **known)
    if "input" not in files:
        return Rejected(key, "missing_source", f"no {key}_input.* image next to the other files", paths, **known)
    if "output" not in files:
        return Rejected(key, "missing_edited", f"no {key}_output.* image next to the other files", paths, **known)
    if "meta" not in files:
        return Rejected(key, "missing_meta", f"no {key}_meta.json with the instruction", paths, **known)
    try:
        meta = _read_json_object(files["meta"][0])
    except ValueError as exc:
        return Rejected(key, "malformed_meta", str(exc), paths, **known)
    instruction = _instruction_of(meta.get("instruction"))
    known["instruction"] = instruction or None
    if not instruction:
        return Rejected(
            key, "empty_instruction", f"{files['meta'][0]}: 'instruction' is missing or blank", paths, **known,
        )
    score: float | None = None
    if "score" in files:
        try:
            data = _read_json_object(files["score"][0])
        except ValueError as exc:
            return Rejected(key, "malformed_score_file", str(exc), paths, **known)
        try:
            score = parse_score(data.get("score"))
        except ScoreError as exc:
            return Rejected(key, exc.reason, f"{files['score'][0]}: {exc}", paths, **known)
        if score is None and require_score:
            return Rejected(key, "missing_score", f"{files['score'][0]}: no 'score' value", paths, **known)
    elif require_score:
        return Rejected(key, "missing_score_file", f"no {key}_score.json with the score", paths, **known)
    group = meta.get("group")
    return EditRecord(
        id=key,
        source_path=str(files["input"][0]),
        edited_path=str(files["output"][0]),
        instruction=instruction,
        score=score,
        group=str(group) if group not in (None, "") else None,
        origin=str(files["meta"][0]),
    )


# -------------------------------------------------------------------------------------------------- manifests


def _manifest_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row dict) or (line number, error message) for each data line of a manifest."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = {"source", "edited"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{path}: CSV header lacks column(s) {sorted(missing)}; found {reader.fieldnames}")
            for row in reader:
                yield reader.line_num, dict(row)
        return
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, f"line {number}: invalid JSON ({exc})"
                continue
            yield (number, row) if isinstance(row, dict) else (number, f"line {number}: expected a JSON object")


def _resolve(base: Path, value: Any) -> Path | None:
    if not isinstance(value, str) or not value.strip():
        return None
    path = Path(value.strip()).expanduser()
    return path if path.is_absolute() else base / path


def _read_manifest(path: Path, require_score: bool) -> Iterator[EditRecord | Rejected]:
    base = path.parent
    for number, row in _manifest_rows(path):
        default_id = f"{path.name}:{number}"
        if isinstance(row, str):
            yield Rejected(default_id, "malformed_manifest_row", f"{path}: {row}", (str(path),))
            continue
        rid = str(row["id"]) if row.get("id") not in (None, "") else default_id
        source, edited = _resolve(base, row.get("source")), _resolve(base, row.get("edited"))
        paths = tuple(str(p) for p in (source, edited) if p is not None)
        instruction = _instruction_of(row.get("instruction"))
        known = {
            "source_path": None if source is None else str(source),
            "edited_path": None if edited is None else str(edited),
            "instruction": instruction or None,
        }
        if source is None or not source.is_file():
            yield Rejected(
                rid, "missing_source", f"{path}:{number}: source file {row.get('source')!r} not found", paths, **known,
            )
            continue
        if edited is None or not edited.is_file():
            yield Rejected(
                rid, "missing_edited", f"{path}:{number}: edited file {row.get('edited')!r} not found", paths, **known,
            )
            continue
        if not instruction:
            yield Rejected(
                rid, "empty_instruction", f"{path}:{number}: 'instruction' is missing or blank", paths, **known,
            )
            continue
        try:
            score = parse_score(row.get("score"))
        except ScoreError as exc:
            yield Rejected(rid, exc.reason, f"{path}:{number}: {exc}", paths, **known)
            continue
        if score is None and require_score:
            yield Rejected(rid, "missing_score", f"{path}:{number}: no 'score' value", paths, **known)
            continue
        group = row.get("group")
        yield EditRecord(
            id=rid,
            source_path=str(source),
            edited_path=str(edited),
            instruction=instruction,
            score=score,
            group=str(group) if group not in (None, "") else None,
            origin=f"{path}:{number}",
        )


# ------------------------------------------------------------------------------------------------------- API


def _read_one(path: Path, require_score: bool) -> Iterator[EditRecord | Rejected]:
    if path.is_dir():
        yield from _read_folder(path, require_score)
    elif path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        yield from _read_manifest(path, require_score)
    elif path.is_file():
        raise ValueError(f"{path}: not a folder nor a manifest; manifests end in {', '.join(MANIFEST_SUFFIXES)}")
    else:
        raise FileNotFoundError(f"{path}: no such folder or manifest")


def read_sources(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *, require_score: bool = True
) -> Iterator[EditRecord | Rejected]:
    """Yield one :class:`EditRecord` or :class:`Rejected` per sample found under ``paths`` (folders or manifests).

    Order is deterministic (sorted paths, manifest order). With several inputs, ids are prefixed with the input's
    position (``0/…``, ``1/…``) so that they stay unique. Raises ``FileNotFoundError`` / ``ValueError`` only for an
    unusable input path (a missing folder, a CSV without the required header); bad samples are yielded as
    :class:`Rejected`.
    """
    inputs = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    if not inputs:
        raise ValueError("no input folder or manifest given")
    seen: set[str] = set()
    for position, path in enumerate(inputs):
        for item in _read_one(path.expanduser(), require_score):
            if len(inputs) > 1:
                item = _prefixed(item, f"{position}/")
            if item.id in seen:
                item = Rejected(
                    item.id, "duplicate_id", f"id {item.id!r} appears more than once", _paths_of(item),
                    source_path=item.source_path, edited_path=item.edited_path, instruction=item.instruction,
                )
            seen.add(item.id)
            yield item


def _prefixed(item: EditRecord | Rejected, prefix: str) -> EditRecord | Rejected:
    from dataclasses import replace

    return replace(item, id=prefix + item.id)


def _paths_of(item: EditRecord | Rejected) -> tuple[str, ...]:
    return item.paths if isinstance(item, Rejected) else (item.source_path, item.edited_path)


def load_sources(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, require_score: bool = True
) -> tuple[list[EditRecord], list[Rejected]]:
    """:func:`read_sources` collected into ``(records, rejects)``."""
    records: list[EditRecord] = []
    rejects: list[Rejected] = []
    for item in read_sources(paths if isinstance(paths, (str, os.PathLike)) else list(paths), require_score=require_score):
        (records if isinstance(item, EditRecord) else rejects).append(item)
    return records, rejects
