"""Score each distinct (source, edited, instruction) of a suite once, with a resumable cache.

A candidate's key is ``blake2b(source bytes' hash, edited bytes' hash, instruction)``: the same edit shared by
several pairs, dimensions or files is judged once. Results are appended to ``OUT/scores.jsonl`` as they come (one
JSON line per key), so an interrupted run resumes where it stopped; items the backend could not judge
(``backend_error``) are not cached and are retried on the next run. ``--predictions`` reads the same lines (or
``editjudge score`` predictions matched by source, edited and instruction) instead of running a judge.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from editjudge.bench.suites import BenchItem, ImageRef

CACHE_NAME = "scores.jsonl"
SCORE_FIELDS = ("score", "mean_score", "expected_score", "error")


@dataclass(frozen=True)
class Score:
    """A judge's verdict on one candidate, as the metrics need it."""

    score: float | None = None  # the parsed answer, or the Avg@K mean of the parsed samples
    expected_score: float | None = None
    error: str | None = None
    dimensions: dict[str, dict[str, Any]] | None = None  # a dimension judge's answer per dimension (overall above)

    @classmethod
    def from_line(cls, obj: dict[str, Any]) -> Score:
        """A score from a cache or predictions line; values that are not finite numbers (NaN, inf, text) are None."""
        mean, pred = obj.get("mean_score"), obj.get("score", obj.get("pred"))
        value = mean if _finite(mean) else pred
        expected = obj.get("expected_score")
        dims = obj.get("dimensions")
        return cls(
            float(value) if _finite(value) else None,
            float(expected) if _finite(expected) else None,
            obj.get("error") if isinstance(obj.get("error"), str) else None,
            {str(k): dict(v) for k, v in dims.items() if isinstance(v, dict)} if isinstance(dims, dict) else None,
        )


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class ImageHasher:
    """Content hashes of image files and bytes, each file hashed once, a block at a time (a 3 GiB file costs a
    megabyte of memory, and a file over the input limit, a FIFO or a device is refused: ``FileRejected``)."""

    def __init__(self) -> None:
        self._paths: dict[str, str] = {}

    def __call__(self, image: ImageRef) -> str:
        from editjudge.data.files import hash_file

        if isinstance(image, bytes):
            return hashlib.blake2b(image, digest_size=16).hexdigest()
        if image not in self._paths:
            self._paths[image] = hash_file(image)
        return self._paths[image]


def edit_key(source_hash: str, edited_hash: str, instruction: str) -> str:
    """The key of one (source, edited, instruction): what is judged once."""
    data = f"{source_hash}\x00{edited_hash}\x00{instruction}".encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class Plan:
    """Every item's candidate keys and the distinct edits to judge (first occurrence kept)."""

    keys: dict[str, tuple[str, ...]]  # item id -> key per candidate
    edits: dict[str, tuple[ImageRef, ImageRef, str]]  # key -> (source, edited, instruction)
    unreadable: dict[str, str]  # item id -> why its images could not be hashed
    comparisons: int


def plan(items: Iterable[BenchItem]) -> Plan:
    hasher = ImageHasher()
    keys: dict[str, tuple[str, ...]] = {}
    edits: dict[str, tuple[ImageRef, ImageRef, str]] = {}
    unreadable: dict[str, str] = {}
    comparisons = 0
    for item in items:
        try:
            src = hasher(item.source)
            item_keys = tuple(edit_key(src, hasher(c), item.instruction) for c in item.candidates)
        except OSError as exc:
            unreadable[item.id] = f"{exc.filename or ''}: {exc.strerror or exc}"
            continue
        except ValueError as exc:  # FileRejected: too large, not a regular file
            unreadable[item.id] = f"{getattr(exc, 'reason', 'unreadable')}: {getattr(exc, 'detail', exc)}"
            continue
        keys[item.id] = item_keys
        for key, cand in zip(item_keys, item.candidates):
            edits.setdefault(key, (item.source, cand, item.instruction))
        k = len(item.candidates)
        comparisons += k * (k - 1) // 2
    return Plan(keys, edits, unreadable, comparisons)


def read_cache(path: Path) -> dict[str, Score]:
    """Scores by key from a ``scores.jsonl``; a torn last line (interrupted write) is skipped."""
    out: dict[str, Score] = {}
    if not path.is_file():
        return out
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("key"), str):
                out[obj["key"]] = Score.from_line(obj)
    return out


def read_predictions(path: str | Path, work: Plan) -> dict[str, Score]:
    """Scores by key from ``--predictions``: lines with ``key`` (a bench ``scores.jsonl``), or ``editjudge score``
    lines with ``source``, ``edited``, ``instruction`` (paths as the suite gives them)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--predictions {path}: no such file")
    by_paths = {
        (s, e, i): key for key, (s, e, i) in work.edits.items() if isinstance(s, str) and isinstance(e, str)
    }
    out: dict[str, Score] = {}
    from editjudge.evaluate.readers import jsonl_objects

    for _, obj in jsonl_objects(path):  # a bad line raises ValueError naming file and line
        key = obj.get("key")
        if not isinstance(key, str):
            key = by_paths.get((obj.get("source"), obj.get("edited"), obj.get("instruction")))
        if key is not None:
            out[key] = Score.from_line(obj)
    return out


def judge_missing(judge: Any, work: Plan, cache_path: Path, cached: dict[str, Score]) -> dict[str, Score]:
    """Judge every planned edit not in ``cached``, appending each result to ``cache_path`` as it arrives."""
    from editjudge.judge import EditItem

    todo = [key for key in work.edits if key not in cached]
    scores = dict(cached)
    if not todo:
        return scores
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    items = [EditItem(*work.edits[key]) for key in todo]
    with cache_path.open("a", encoding="utf-8") as fh:
        for key, result in zip(todo, judge.iter_scores(items, progress=True)):
            line = {"key": key, "score": result.score, "mean_score": result.mean_score,
                    "expected_score": result.expected_score, "error": result.error}
            if result.dimensions is not None:  # a dimension judge: each dimension's answer too
                line["dimensions"] = result.dimensions
            scores[key] = Score.from_line(line)
            if result.error and result.error.startswith("backend_error"):
                continue  # retried on the next run
            fh.write(json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n")
            fh.flush()
    return scores
