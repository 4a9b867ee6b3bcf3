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
the manifest's folder. A record's paths are absolute, so outputs that carry them resolve from any folder.

An edit of several source images ("put the cat from image 2 into image 1"): a manifest's ``source`` is a list of
paths in order (in a CSV cell, a JSON list), a folder's sources are ``<stem>_input_1.<ext>``, ``<stem>_input_2.<ext>``,
… (numbered from 1 without gaps, instead of ``<stem>_input.<ext>``). ``source_path`` is the first,
``extra_sources`` the others (``source_paths`` all of them); an edit holds at most
:data:`MAX_SOURCES` sources (``too_many_images`` beyond: a prompt holds at most 16 images).

With ``require_score=False`` (inference: :mod:`editjudge.judge`) a missing score is allowed and ``score`` is None;
an invalid score (NaN, inf, text) is still rejected.

With ``dimensions=True`` (a dimension judge: ``prepare --dimensions SET``) each record also carries ``scores``, one
raw score per dimension, from a manifest's ``scores`` object / ``score_<name>`` columns or the keys of a
``_score.json`` beside ``score`` (:mod:`editjudge.data.dimension_scores`); a single ``score`` is then optional.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from editjudge import prompts
from editjudge.data.dimension_scores import REASONS as DIMENSION_REASONS
from editjudge.data.dimension_scores import DimensionScoreError, row_scores, sidecar_scores
from editjudge.data.files import DEFAULT_MAX_FILE_BYTES, FileRejected, file_problem, read_file, safe_path

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
_ROLE_RE = re.compile(r"\A(?P<stem>.+)_(?P<role>input(?:_[0-9]{1,4})?|output|meta|score)(?P<ext>\.[^./\\]+)\Z",
                      re.IGNORECASE | re.DOTALL)
#: Sources one edit may have: a prompt holds at most MAX_IMAGES_PER_PROMPT images, the edited image among them.
MAX_SOURCES = prompts.MAX_IMAGES_PER_PROMPT - 1
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

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
    "duplicate": "the same (source, edited, instruction) was already listed",
    "malformed_manifest_row": "a manifest line is not valid JSON / UTF-8, is nested too deep, or lacks required columns",
    "special_token": "the instruction holds a model special token or an <image>/<video> placeholder",
    "bad_file_name": "a file name holds a control character (e.g. a newline) or bytes that are not UTF-8",
    "bad_path": "a path that cannot be a file name (unknown ~user, NUL byte, too long)",
    "not_a_regular_file": "a FIFO, device, socket or folder where a file was expected",
    "file_too_large": "the file is larger than --max-file-bytes",
    # Image-level reasons (editjudge.data.images).
    "unreadable_file": "the file exists but cannot be read (permissions, I/O error)",
    "not_an_image": "the file cannot be identified as an image",
    "truncated_image": "the image file is truncated or corrupt",
    "decompression_bomb": "the image has more pixels than the decompression-bomb limit",
    "bad_aspect_ratio": "the image's aspect ratio exceeds Qwen2.5-VL's limit of 200",
    "prompt_too_long": "text plus both images at their minimum size exceed --max-prompt-length",
    "too_many_images": "more source images than one prompt can hold (at most 16 images per prompt)",
    # Selection (editjudge.data.labels).
    "not_selected": "left out by --sample-size / --balanced sampling",
    # Dimension scores (editjudge.data.dimension_scores; read with dimensions=True only).
    **DIMENSION_REASONS,
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
    scores: dict[str, float | None] | None = None  # raw score per dimension (read with dimensions=True only)
    extra_sources: tuple[str, ...] = ()  # an edit's other source images, in order, after source_path

    @property
    def source_paths(self) -> tuple[str, ...]:
        """Every source image of the edit, in order."""
        return (self.source_path, *self.extra_sources)

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
    score: float | None = None  # the row's truth where it could be read (a failed edit keeps its label in eval)
    group: str | None = None

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
        try:
            score = float(value)
        except OverflowError:
            raise ScoreError("non_finite_score", f"score is out of range: an integer of {len(str(abs(value)))} digits") from None
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


def _loads(text: str) -> Any:
    """``json.loads`` with every way it can fail as ``ValueError`` (too deep: RecursionError; huge ints)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc})") from None
    except ValueError as exc:  # e.g. an integer over Python's digit limit
        raise ValueError(f"invalid JSON ({exc})") from None


def _read_json_object(path: Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> dict[str, Any]:
    """A JSON object from ``path``; ValueError with a readable message otherwise (NaN/Infinity are parsed)."""
    try:
        text = read_file(path, max_bytes).decode("utf-8")
        data = _loads(text)
    except (FileRejected, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    if lone_surrogate(data, text):
        raise ValueError(f"{path}: {LONE_SURROGATE}")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _instruction_of(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _instruction_problem(instruction: str) -> str | None:
    """Why an instruction cannot go into a prompt (see :func:`editjudge.prompts.check_instruction`), or None."""
    try:
        prompts.check_instruction(instruction)
    except ValueError as exc:
        return str(exc)
    return None


def _file_problem(paths: Sequence[tuple[str, Path]], max_bytes: int) -> tuple[str, str] | None:
    """(reason, detail) for the first of ``(role, path)`` that is not a usable regular file, or None."""
    for role, path in paths:
        if _CONTROL_RE.search(path.name):
            return "bad_file_name", f"{role} file name {path.name!r} holds a control character; rename it"
        problem = file_problem(path, max_bytes)
        if problem is not None:
            reason = problem.reason
            if reason == "missing_file":
                reason = "missing_source" if role.startswith("source") else "missing_edited"
            return reason, f"{role}: {problem.detail}"
    return None


# ---------------------------------------------------------------------------------------------------- folders


def _walk_sorted(root: Path) -> Iterator[Path]:
    """Files under ``root`` in a stable order (sorted at every level), following no symlinked folders."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _read_folder(root: Path, require_score: bool, max_bytes: int, dimensions: bool = False) \
        -> Iterator[EditRecord | Rejected]:
    groups: dict[str, dict[str, list[Path]]] = {}
    for path in _walk_sorted(root):
        match = _ROLE_RE.match(path.name)
        if not match:
            continue
        role, ext = match["role"].lower(), match["ext"].lower()
        if role in ("meta", "score") and ext != ".json":
            continue
        if role not in ("meta", "score") and ext == ".json":
            continue
        rel = path.parent.relative_to(root).as_posix()
        key = match["stem"] if rel == "." else f"{rel}/{match['stem']}"
        groups.setdefault(key, {}).setdefault(role, []).append(path)
    for key in sorted(groups):
        yield _folder_item(key, groups[key], require_score, max_bytes, dimensions)


def _peek_score(paths: list[Path], max_bytes: int) -> float | None:
    """The score of a sample's score sidecar when it can be read, else None (never raises)."""
    if len(paths) != 1:
        return None
    try:
        return parse_score(_read_json_object(paths[0], max_bytes).get("score"))
    except (ValueError, ScoreError):
        return None


def _numbered_sources(key: str, files: dict[str, list[Path]]) -> tuple[str, str] | list[Path] | None:
    """A folder stem's numbered sources ``_input_1``, ``_input_2``, … in order; ``(reason, detail)`` when they
    gap, clash with an unnumbered ``_input`` or are too many; None when the stem has none."""
    numbers = sorted(int(role[6:]) for role in files if role.startswith("input_"))
    if not numbers:
        return None
    if "input" in files:
        return "ambiguous_files", f"{key}_input.* and numbered {key}_input_N.* files: give one source, or number them all"
    if len(numbers) > MAX_SOURCES:
        return "too_many_images", (f"{len(numbers)} source images ({key}_input_1 … _input_{numbers[-1]}); an edit "
                                   f"has at most {MAX_SOURCES} (a prompt holds at most {prompts.MAX_IMAGES_PER_PROMPT} images)")
    missing = [n for n in range(1, len(numbers) + 1) if n not in numbers]
    if missing or numbers[0] != 1:
        gap = missing[0] if missing else 1
        return "missing_source", f"no {key}_input_{gap}.* image: numbered sources run _input_1, _input_2, … without gaps"
    if any(len(files[f"input_{n}"]) > 1 for n in numbers):
        return None  # several files for one numbered role: reported as ambiguous_files below
    return [files[f"input_{n}"][0] for n in numbers]


def _folder_item(key: str, files: dict[str, list[Path]], require_score: bool, max_bytes: int,
                 dimensions: bool = False) -> EditRecord | Rejected:
    roles = ("input", *sorted((r for r in files if r.startswith("input_")), key=lambda r: int(r[6:])), "output",
             "meta", "score")
    paths = tuple(str(p) for role in roles for p in files.get(role, []))
    if _CONTROL_RE.search(key):
        return Rejected(key, "bad_file_name", f"the file names of stem {key!r} hold a control character; rename them", paths)
    if _has_surrogates(key):  # bytes that are not UTF-8: no JSON line or parquet string can hold the name as it is
        shown = _shown_name(key)
        return Rejected(shown, "bad_file_name", f"the file names of stem '{shown}' are not UTF-8; rename them",
                        tuple(_shown_name(p) for p in paths))
    known: dict[str, Any] = {
        "source_path": str(files["input"][0]) if len(files.get("input", ())) == 1 else None,
        "edited_path": str(files["output"][0]) if len(files.get("output", ())) == 1 else None,
        "score": _peek_score(files.get("score", []), max_bytes),  # a rejected edit keeps its truth for `score`/eval
    }
    numbered = _numbered_sources(key, files)
    if isinstance(numbered, tuple):
        return Rejected(key, numbered[0], numbered[1], paths, **known)
    if numbered:
        known["source_path"] = str(numbered[0])
        files = {**files, "input": [numbered[0]]}
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
    named = [(role, files[r][0]) for r, role in (("input", "source"), ("output", "edited"), ("meta", "meta"), ("score", "score")) if r in files]
    if numbered:
        named[1:1] = [(f"source {n}", path) for n, path in enumerate(numbered[1:], start=2)]
        named[0] = ("source 1", numbered[0])
    problem = _file_problem(named, max_bytes)
    if problem is not None:
        return Rejected(key, problem[0], problem[1], paths, **known)
    try:
        meta = _read_json_object(files["meta"][0], max_bytes)
    except ValueError as exc:
        return Rejected(key, "malformed_meta", str(exc), paths, **known)
    instruction = _instruction_of(meta.get("instruction"))
    known["instruction"] = instruction or None
    if not instruction:
        return Rejected(
            key, "empty_instruction", f"{files['meta'][0]}: 'instruction' is missing or blank", paths, **known,
        )
    special = _instruction_problem(instruction)
    if special:
        return Rejected(key, "special_token", f"{files['meta'][0]}: {special}", paths, **known)
    score: float | None = None
    scores: dict[str, float | None] | None = None
    if "score" in files:
        try:
            data = _read_json_object(files["score"][0], max_bytes)
        except ValueError as exc:
            return Rejected(key, "malformed_score_file", str(exc), paths, **known)
        try:
            score = parse_score(data.get("score"))
            scores = sidecar_scores(data) if dimensions else None
        except (ScoreError, DimensionScoreError) as exc:
            return Rejected(key, exc.reason, f"{files['score'][0]}: {exc}", paths, **known)
        if score is None and require_score and not dimensions:
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
        extra_sources=tuple(str(p) for p in (numbered or [])[1:]),
        scores=scores,
    )


def stem_groups(ids: Sequence[str]) -> list[str | None] | None:
    """The groups a seed-layout folder names itself: the stems ``<name>_<candidate>`` (``s00012_c01``,
    ``cat_2``) whose ``<name>`` (with its sub-folder) several stems share; ``None`` when no two stems share one (the
    folder names no groups), else one name per id (``None`` for a stem without a candidate suffix)."""
    names: list[str | None] = []
    for stem in ids:
        folder, _, last = stem.rpartition("/")
        base, sep, candidate = last.rpartition("_")
        names.append(f"{folder}/{base}" if folder and sep and base and candidate else base if sep and base and
                     candidate else None)
    counts = Counter(n for n in names if n is not None)
    return names if any(c >= 2 for c in counts.values()) else None


# -------------------------------------------------------------------------------------------------- manifests


def _decoded_lines(data: bytes) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per line of ``data``; text None for a line that is not valid UTF-8."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None


def _manifest_rows(path: Path, max_bytes: int, required: tuple[str, ...] = ("source", "edited")) \
        -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row dict) or (line number, error message) for each data line of a manifest (a CSV header
    lacking ``required`` columns is refused)."""
    try:
        data = read_file(path, max_bytes)
    except FileRejected as exc:
        raise ValueError(f"manifest {exc.detail}") from None
    if path.suffix.lower() == ".csv":
        text = data.decode("utf-8-sig", errors="surrogateescape")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            fieldnames = reader.fieldnames
        except csv.Error as exc:
            raise ValueError(f"{path}: not a CSV file ({exc})") from None
        missing = set(required) - set(fieldnames or [])
        if missing:
            raise ValueError(f"{path}: CSV header lacks column(s) {sorted(missing)}; found {fieldnames}")
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield reader.line_num, f"line {reader.line_num}: {exc}"
                continue
            values = [v for v in row.values() if isinstance(v, str)] + [k for k in row if isinstance(k, str)]
            if any(_has_surrogates(v) for v in values):
                yield reader.line_num, f"line {reader.line_num}: not valid UTF-8"
                continue
            yield reader.line_num, dict(row)
        return
    for number, line in _decoded_lines(data):
        if line is None:
            yield number, f"line {number}: not valid UTF-8"
            continue
        if not line.strip():
            continue
        try:
            row = _loads(line)
        except ValueError as exc:
            yield number, f"line {number}: {exc}"
            continue
        if lone_surrogate(row, line):
            yield number, f"line {number}: {LONE_SURROGATE}"
            continue
        yield (number, row) if isinstance(row, dict) else (number, f"line {number}: expected a JSON object")


def _shown_name(name: str) -> str:
    """A file-system name with its bytes that are not UTF-8 written as ``\\xNN``: text that prints and can be stored."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


LONE_SURROGATE = "a \\u escape in it makes a lone surrogate (\\ud800-\\udfff), which is not Unicode text"


def lone_surrogate(value: Any, text: str | None = None) -> bool:
    """Whether a parsed JSON value holds a string (a key or a value, at any depth) that is not valid Unicode text: a
    lone surrogate from a ``\\udXXX`` escape, which no UTF-8 file holds and no parquet string column can store.
    ``text``: the decoded JSON ``value`` was parsed from; without a ``\\u`` escape in it there is none to find."""
    if text is not None and "\\u" not in text:
        return False
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _has_surrogates(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _resolve(base: Path, value: Any) -> Path | None:
    """The path a manifest cell names (``FileRejected`` for one that cannot be a path), or None when blank."""
    if not isinstance(value, str) or not value.strip():
        return None
    return safe_path(value.strip(), base)


def resolve_sources(base: Path, value: Any) -> list[Path]:
    """The source images a manifest cell names, in order: one path, a list of paths (JSON), or a CSV cell holding a
    JSON list; ``[]`` when blank; :class:`FileRejected` (``bad_path``) for an entry that is not a path."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            raise FileRejected("bad_path", f"source {value[:80]!r} is neither a path nor a JSON list of paths") from None
    if isinstance(value, list):
        found = []
        for k, entry in enumerate(value, start=1):
            if not isinstance(entry, str) or not entry.strip():
                raise FileRejected("bad_path", f"source entry {k} of the list is {entry!r:.40}, not a path")
            found.append(safe_path(entry.strip(), base))
        return found
    one = _resolve(base, value)
    return [] if one is None else [one]


def source_roles(sources: Sequence[Path]) -> list[tuple[str, Path]]:
    """``(role, path)`` of an edit's sources for messages: ``source``, or ``source 1``, ``source 2``, …"""
    if len(sources) == 1:
        return [("source", sources[0])]
    return [(f"source {k}", p) for k, p in enumerate(sources, start=1)]


def _read_manifest(path: Path, require_score: bool, max_bytes: int, dimensions: bool = False) \
        -> Iterator[EditRecord | Rejected]:
    base = path.parent
    for number, row in _manifest_rows(path, max_bytes):
        default_id = f"{path.name}:{number}"
        if isinstance(row, str):
            yield Rejected(default_id, "malformed_manifest_row", f"{path}: {row}", (str(path),))
            continue
        rid = str(row["id"]) if row.get("id") not in (None, "") else default_id
        try:
            sources = resolve_sources(base, row.get("source"))
            edited = _resolve(base, row.get("edited"))
        except FileRejected as exc:
            yield Rejected(rid, exc.reason, f"{path}:{number}: {exc.detail}", (str(path),))
            continue
        source = sources[0] if sources else None
        paths = tuple(str(p) for p in (*sources, edited) if p is not None)
        instruction = _instruction_of(row.get("instruction"))
        try:
            known_score = parse_score(row.get("score"))
        except ScoreError:
            known_score = None
        known = {
            "source_path": None if source is None else str(source),
            "edited_path": None if edited is None else str(edited),
            "instruction": instruction or None,
            "score": known_score,
            "group": str(row["group"]) if row.get("group") not in (None, "") else None,
        }
        if source is None:
            yield Rejected(rid, "missing_source", f"{path}:{number}: no 'source' file given", paths, **known)
            continue
        if edited is None:
            yield Rejected(rid, "missing_edited", f"{path}:{number}: no 'edited' file given", paths, **known)
            continue
        if len(sources) > MAX_SOURCES:
            yield Rejected(rid, "too_many_images", f"{path}:{number}: {len(sources)} source images; an edit has at "
                           f"most {MAX_SOURCES} (a prompt holds at most {prompts.MAX_IMAGES_PER_PROMPT} images)",
                           paths[:4], **known)
            continue
        problem = _file_problem([*source_roles(sources), ("edited", edited)], max_bytes)
        if problem is not None:
            yield Rejected(rid, problem[0], f"{path}:{number}: {problem[1]}", paths, **known)
            continue
        if not instruction:
            yield Rejected(
                rid, "empty_instruction", f"{path}:{number}: 'instruction' is missing or blank", paths, **known,
            )
            continue
        special = _instruction_problem(instruction)
        if special:
            yield Rejected(rid, "special_token", f"{path}:{number}: {special}", paths, **known)
            continue
        try:
            score = parse_score(row.get("score"))
            scores = row_scores(row) if dimensions else None
        except (ScoreError, DimensionScoreError) as exc:
            yield Rejected(rid, exc.reason, f"{path}:{number}: {exc}", paths, **known)
            continue
        if score is None and require_score and not dimensions:
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
            extra_sources=tuple(str(p) for p in sources[1:]),
            scores=scores,
        )


# ------------------------------------------------------------------------------------------------------- API


def _read_one(path: Path, require_score: bool, max_bytes: int, dimensions: bool = False) \
        -> Iterator[EditRecord | Rejected]:
    if path.is_dir():
        yield from _read_folder(path, require_score, max_bytes, dimensions)
    elif path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        yield from _read_manifest(path, require_score, max_bytes, dimensions)
    elif path.is_file():
        raise ValueError(f"{path}: not a folder nor a manifest; manifests end in {', '.join(MANIFEST_SUFFIXES)}")
    else:
        raise FileNotFoundError(f"{path}: no such folder or manifest")


def read_sources(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    require_score: bool = True,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    dimensions: bool = False,
) -> Iterator[EditRecord | Rejected]:
    """Yield one :class:`EditRecord` or :class:`Rejected` per sample found under ``paths`` (folders or manifests).

    Order is deterministic (sorted paths, manifest order). With several inputs, ids are prefixed with the input's
    position (``0/…``, ``1/…``) so that they stay unique. Raises ``FileNotFoundError`` / ``ValueError`` only for an
    unusable input path (a missing folder, a CSV without the required header); bad samples are yielded as
    :class:`Rejected`. An edit listed again (same source and edited files, same instruction) is rejected as
    ``duplicate``; files that are not regular or exceed ``max_file_bytes`` are rejected, never opened.
    ``dimensions``: read each record's per-dimension ``scores`` too (a bad one rejects the record with its reason).
    """
    inputs = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    if not inputs:
        raise ValueError("no input folder or manifest given")
    seen: set[str] = set()
    pairs: dict[tuple[str, ...], str] = {}
    for position, path in enumerate(inputs):
        # absolute: every path a record carries into an output resolves the same from any working folder
        for item in _read_one(Path(os.path.abspath(path.expanduser())), require_score, max_file_bytes, dimensions):
            if len(inputs) > 1:
                item = _prefixed(item, f"{position}/")
            if item.id in seen:
                item = Rejected(
                    item.id, "duplicate_id", f"id {item.id!r} appears more than once", _paths_of(item),
                    source_path=item.source_path, edited_path=item.edited_path, instruction=item.instruction,
                    score=item.score, group=item.group,
                )
            elif isinstance(item, EditRecord):
                pair = (os.path.realpath(item.source_path), os.path.realpath(item.edited_path), item.instruction,
                        *(os.path.realpath(p) for p in item.extra_sources))
                if pair in pairs:
                    item = Rejected(
                        item.id, "duplicate", f"the same edit (source, edited, instruction) as {pairs[pair]!r}",
                        _paths_of(item), source_path=item.source_path, edited_path=item.edited_path,
                        instruction=item.instruction, score=item.score, group=item.group,
                    )
                else:
                    pairs[pair] = item.id
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
