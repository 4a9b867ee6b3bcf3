"""Preference records as input to ``prepare --pairs``: two candidate edits of one source and which is better.
Imports no torch.

Two layouts, read as they are:

* our manifest (``.jsonl`` / ``.csv``): ``source`` (a path, or a list of paths for an edit of several source
  images), ``edited_a``, ``edited_b``, ``instruction``, ``preferred`` ∈ {``a``, ``b``, ``tie``}, optional ``group``
  and ``id``;
* TIGER-AI-Lab's EditReward training pairs (``train.json``: a JSON list, or the same objects one per line):
  ``prompt``, ``path_src``, ``path1`` (the preferred edit: "path1's image is always the preferred one"), ``path2``,
  ``tie_case`` (true: a tie) — their other keys (``model1``, ``model1_overall_score``, …) are ignored.

Relative paths resolve against the file's folder. Each record becomes a :class:`PreferencePair` of two
:class:`~editjudge.data.sources.EditRecord` candidates (unscored; a candidate named by several records is one record)
or a :class:`~editjudge.data.sources.Rejected` with its reason (:data:`REASONS`, on top of the sources' own):
the same pair listed with conflicting preferences rejects every record of it; an edited image that is a candidate of
another source, or that is the source file itself, is refused; the same candidate twice in one pair is refused.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from editjudge.data.files import DEFAULT_MAX_FILE_BYTES, FileRejected, read_file, safe_path
from editjudge.data.sources import (LONE_SURROGATE, MAX_SOURCES, EditRecord, Rejected, _file_problem,
                                    _instruction_problem, _manifest_rows, lone_surrogate, resolve_sources,
                                    source_roles)

__all__ = ["PREFERRED", "REASONS", "PreferencePair", "is_preference_file", "read_preferences"]

PREFERRED = ("a", "b", "tie")
REASONS: dict[str, str] = {
    "bad_preference": "'preferred' is not a, b or tie (or TIGER's tie_case is not true/false)",
    "identical_candidates": "edited_a and edited_b are the same file: there is nothing to prefer",
    "candidate_is_source": "a candidate is the source image file itself (an unchanged edit is a copy of it)",
    "contradictory_preference": "the same pair is listed again with a different preference",
    "pair_across_groups": "a candidate of this pair is already a candidate of another source: pairs compare edits "
                          "of one source",
}
_OURS = {"edited_a", "edited_b"}
_TIGER = {"path_src", "path1", "path2"}
_MAX_LIST_BYTES = DEFAULT_MAX_FILE_BYTES


@dataclass(frozen=True)
class PreferencePair:
    """A labelled pair: candidate ``a`` and ``b`` of one edit and ``preferred`` (``a``, ``b`` or ``tie``)."""

    id: str
    a: EditRecord
    b: EditRecord
    preferred: str
    origin: str = ""


def _keys_of(path: Path) -> set[str]:
    """The keys of a manifest's first record (a JSONL line's, a CSV header's), else empty."""
    try:
        head = read_file(path, _MAX_LIST_BYTES)[: 1 << 16].decode("utf-8", errors="replace").lstrip("\ufeff")
    except FileRejected:
        return set()
    if path.suffix.lower() == ".csv":
        return set(next(csv.reader(io.StringIO(head)), []))
    line = next((ln for ln in head.splitlines() if ln.strip()), "")
    try:
        first = json.loads(line)
    except (ValueError, RecursionError):
        return set()
    return set(first) if isinstance(first, dict) else set()


def is_preference_file(path: str | os.PathLike[str]) -> bool:
    """Whether an input holds preference records (a ``.json`` list, or a manifest whose records have
    ``edited_a``/``edited_b`` or TIGER's ``path_src``/``path1``/``path2``)."""
    p = Path(path)
    if not p.is_file() or p.suffix.lower() not in (".json", ".jsonl", ".csv"):
        return False
    if p.suffix.lower() == ".json":
        return True
    keys = _keys_of(p)
    return _OURS <= keys or _TIGER <= keys


def _records(path: Path, max_bytes: int) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(number, row) or (number, error) per record: a JSON list's items, or manifest lines."""
    if path.suffix.lower() != ".json":
        yield from _manifest_rows(path, max_bytes, required=())  # each row is checked for either layout
        return
    try:
        data = json.loads(read_file(path, max_bytes).decode("utf-8-sig"))
    except FileRejected as exc:
        raise ValueError(f"preference file {exc.detail}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: not a readable JSON list of preference records ({str(exc)[:120]})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of preference records (TIGER's train.json), got "
                         f"{type(data).__name__}")
    for number, row in enumerate(data, start=1):
        if not isinstance(row, dict):
            yield number, f"record {number}: expected a JSON object"
        elif lone_surrogate(row):
            yield number, f"record {number}: {LONE_SURROGATE}"
        else:
            yield number, row


def _preferred(row: dict[str, Any]) -> tuple[str, str] | str:
    """(edited_a key, edited_b key) and the preference of a row in either layout, or why it has none."""
    if _TIGER <= set(row) and not _OURS <= set(row):
        tie = row.get("tie_case", False)
        if tie is None:
            tie = False
        if isinstance(tie, str) and tie.strip().lower() in ("true", "false"):
            tie = tie.strip().lower() == "true"
        if not isinstance(tie, bool):
            return f"tie_case must be true or false, got {tie!r:.40}"
        return "tie" if tie else "a"
    value = row.get("preferred")
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in PREFERRED:
        return f"'preferred' must be one of {list(PREFERRED)}, got {value!r:.40}"
    return text


def _fields(row: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """(source, edited_a, edited_b, instruction) in either layout."""
    if _TIGER <= set(row) and not _OURS <= set(row):
        return row.get("path_src"), row.get("path1"), row.get("path2"), row.get("prompt")
    return row.get("source"), row.get("edited_a"), row.get("edited_b"), row.get("instruction")


def _one(path: Path, number: int, row: dict[str, Any], max_bytes: int) -> PreferencePair | Rejected:
    base = path.parent
    rid = str(row["id"]) if row.get("id") not in (None, "") else f"{path.name}:{number}"
    where = f"{path}:{number}"
    source_value, a_value, b_value, instruction_value = _fields(row)
    try:
        sources = resolve_sources(base, source_value)
        a = safe_path(a_value.strip(), base) if isinstance(a_value, str) and a_value.strip() else None
        b = safe_path(b_value.strip(), base) if isinstance(b_value, str) and b_value.strip() else None
    except FileRejected as exc:
        return Rejected(rid, exc.reason, f"{where}: {exc.detail}", (str(path),))
    paths = tuple(str(p) for p in (*sources[:3], a, b) if p is not None)
    if not sources:
        return Rejected(rid, "missing_source", f"{where}: no source image given", paths)
    if a is None or b is None:
        return Rejected(rid, "missing_edited", f"{where}: a preference names two edited images (edited_a, edited_b "
                        "or TIGER's path1, path2)", paths)
    if len(sources) > MAX_SOURCES - 1:
        return Rejected(rid, "too_many_images", f"{where}: {len(sources)} source images and two candidates; a "
                        f"prompt holds at most {MAX_SOURCES + 1} images", paths)
    preferred = _preferred(row)
    if preferred not in PREFERRED:
        return Rejected(rid, "bad_preference", f"{where}: {preferred}", paths)
    instruction = instruction_value.strip() if isinstance(instruction_value, str) else ""
    if not instruction:
        return Rejected(rid, "empty_instruction", f"{where}: the instruction ('instruction', or TIGER's 'prompt') "
                        "is missing or blank", paths)
    special = _instruction_problem(instruction)
    if special:
        return Rejected(rid, "special_token", f"{where}: {special}", paths)
    problem = _file_problem([*source_roles(sources), ("edited_a", a), ("edited_b", b)], max_bytes)
    if problem is not None:
        reason = "missing_edited" if problem[0] == "missing_source" and problem[1].startswith("edited") else problem[0]
        return Rejected(rid, reason, f"{where}: {problem[1]}", paths)
    real = [os.path.realpath(p) for p in sources]
    if os.path.realpath(a) == os.path.realpath(b):
        return Rejected(rid, "identical_candidates", f"{where}: edited_a and edited_b are both {a}", paths)
    for name, candidate in (("edited_a", a), ("edited_b", b)):
        if os.path.realpath(candidate) in real:
            return Rejected(rid, "candidate_is_source", f"{where}: {name} {candidate} is the source image file "
                            "itself; name the edited image", paths)
    group = str(row["group"]) if row.get("group") not in (None, "") else None
    common = {"instruction": instruction, "group": group, "origin": where,
              "extra_sources": tuple(str(p) for p in sources[1:])}
    first = EditRecord(id=f"{rid}/a", source_path=str(sources[0]), edited_path=str(a), **common)
    second = EditRecord(id=f"{rid}/b", source_path=str(sources[0]), edited_path=str(b), **common)
    return PreferencePair(rid, first, second, preferred, where)


def _key(record: EditRecord) -> tuple[str, ...]:
    return (os.path.realpath(record.edited_path), record.instruction,
            *(os.path.realpath(p) for p in record.source_paths))


def read_preferences(paths: Sequence[str | os.PathLike[str]], *,
                     max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Iterator[PreferencePair | Rejected]:
    """One :class:`PreferencePair` or :class:`Rejected` per record of ``paths``, in file order. A candidate named by
    several records is the same :class:`EditRecord` (its first mention's id); ``ValueError`` only for a file that
    is not preference records at all."""
    items: list[PreferencePair | Rejected] = []
    for position, raw in enumerate(paths):
        path = Path(os.path.abspath(Path(raw).expanduser()))
        for number, row in _records(path, max_file_bytes):
            if isinstance(row, str):
                items.append(Rejected(f"{path.name}:{number}", "malformed_manifest_row", f"{path}: {row}", (str(path),)))
                continue
            item = _one(path, number, row, max_file_bytes)
            if len(paths) > 1:
                item = _prefixed(item, f"{position}/")
            items.append(item)
    yield from _checked(items)


def _prefixed(item: PreferencePair | Rejected, prefix: str) -> PreferencePair | Rejected:
    from dataclasses import replace

    if isinstance(item, Rejected):
        return replace(item, id=prefix + item.id)
    return replace(item, id=prefix + item.id, a=replace(item.a, id=prefix + item.a.id),
                   b=replace(item.b, id=prefix + item.b.id))


def _checked(items: list[PreferencePair | Rejected]) -> Iterator[PreferencePair | Rejected]:
    """Contradictions, repeats, ids and candidates shared across sources, over all records."""
    verdicts: dict[tuple[Any, ...], set[str]] = {}
    for item in items:
        if isinstance(item, PreferencePair):
            key, preferred = _pair_key(item)
            verdicts.setdefault(key, set()).add(preferred)
    seen_pairs: dict[tuple[Any, ...], str] = {}
    seen_ids: set[str] = set()
    candidates: dict[tuple[str, ...], EditRecord] = {}
    owner: dict[str, tuple[tuple[str, ...], str]] = {}  # edited file -> (its sources, the first record)
    for item in items:
        if isinstance(item, Rejected):
            yield item
            continue
        paths = (item.a.source_path, item.a.edited_path, item.b.edited_path)
        key, _ = _pair_key(item)
        if item.id in seen_ids:
            yield Rejected(item.id, "duplicate_id", f"id {item.id!r} appears more than once", paths)
            continue
        seen_ids.add(item.id)
        if len(verdicts[key]) > 1:
            yield Rejected(item.id, "contradictory_preference", f"{item.origin}: the pair is listed with preferences "
                           f"{sorted(verdicts[key])}; every record of it is left out", paths)
            continue
        if key in seen_pairs:
            yield Rejected(item.id, "duplicate", f"{item.origin}: the same preference as {seen_pairs[key]!r}", paths)
            continue
        sources = tuple(os.path.realpath(p) for p in item.a.source_paths)
        clash = next((owner[e] for e in (os.path.realpath(item.a.edited_path), os.path.realpath(item.b.edited_path))
                      if e in owner and owner[e][0] != sources), None)
        if clash is not None:
            yield Rejected(item.id, "pair_across_groups", f"{item.origin}: a candidate is already an edit of another "
                           f"source (record {clash[1]!r}); pairs compare edits of one source", paths)
            continue
        seen_pairs[key] = item.id
        for record in (item.a, item.b):
            owner.setdefault(os.path.realpath(record.edited_path), (sources, item.id))
        a = candidates.setdefault(_key(item.a), item.a)
        b = candidates.setdefault(_key(item.b), item.b)
        yield PreferencePair(item.id, a, b, item.preferred, item.origin)


def _pair_key(item: PreferencePair) -> tuple[tuple[Any, ...], str]:
    """The unordered pair's key and the preference in the key's order (so (a, b, 'a') equals (b, a, 'b'))."""
    ka, kb = _key(item.a), _key(item.b)
    if ka <= kb:
        return (ka, kb), item.preferred
    return (kb, ka), {"a": "b", "b": "a", "tie": "tie"}[item.preferred]
