"""Build :class:`EvalRecord` lists from what a judge leaves behind.

* :func:`read_predictions` — the JSONL ``editjudge score`` writes (contract 8): ``id``, ``group``, ``pred``,
  ``expected_score``, ``raw``, ``error``, ``gt_score``, ``label`` per line.
* :func:`read_verl_dumps` — verl's ``trainer.validation_data_dir`` / ``trainer.rollout_data_dir`` folders: one
  ``<step>.jsonl`` per dump, each line ``{"input", "output", "gts", "score", "step", …}`` as written by
  ``RayPPOTrainer._write_generations`` (verl 0.9.1). ``output`` is parsed with the shared parser, ``gts`` is the
  label, ``score`` the reward; edits are grouped by their prompt text.
* :func:`read_test_parquet` + :func:`judge_parquet` — run a :class:`editjudge.judge.Judge` over a prepared
  ``test.parquet`` (contract 3 rows).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from editjudge.answer import parse_response
from editjudge.data.labels import content_hash, group_key
from editjudge.evaluate.records import EvalRecord

_STEP_FILE = re.compile(r"^(\d+)\.jsonl$")


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; a bad line raises ``ValueError`` naming file and line."""
    with path.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def read_predictions(path: str | Path) -> list[EvalRecord]:
    """Records from a predictions JSONL (contract 8); ids default to ``<file name>:<line>``.

    A line without a ``group`` but with a ``source`` image is grouped by that image, as ``editjudge prepare`` groups:
    ``image:<blake2b-128 of the file's bytes>`` when the file can be read (relative paths are tried against the
    working directory, then the predictions file's folder), else ``source:<path>``. Edits of one source image are
    what pairwise and best-of-N metrics compare (the seed's layout stores a copy of the source per edit).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {path} (write one with `editjudge score … --out`)")
    records: list[EvalRecord] = []
    hashes: dict[str, str] = {}
    for lineno, obj in _jsonl(path):
        if obj.get("group") is None and isinstance(obj.get("source"), str) and obj["source"]:
            obj = {**obj, "group": _source_group(obj["source"], path.parent, hashes)}
        try:
            records.append(EvalRecord.from_mapping(obj, default_id=f"{path.name}:{lineno}"))
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: {exc}") from None
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"{path}: the id {dup!r} appears more than once; ids must be unique")
    return records


def _source_group(source: str, base: Path, cache: dict[str, str]) -> str:
    """``image:<hash>`` of a source image file (the group ``editjudge prepare`` gives it), else ``source:<path>``."""
    if source not in cache:
        cache[source] = f"source:{source}"
        for candidate in (Path(source), base / source):
            try:
                data = candidate.read_bytes()
            except OSError:
                continue
            cache[source] = group_key(None, content_hash(data))
            break
    return cache[source]


def _prompt_group(text: str) -> str:
    return "prompt-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def dump_files(path: str | Path) -> list[Path]:
    """verl's ``<step>.jsonl`` files under ``path`` (or ``path`` itself), in step order."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"verl dump folder not found: {path}")
    files = [p for p in path.iterdir() if p.is_file() and _STEP_FILE.match(p.name)]
    if not files:
        raise ValueError(
            f"{path}: no <step>.jsonl files; point --verl-dumps at the folder given to verl as "
            "trainer.validation_data_dir or trainer.rollout_data_dir"
        )
    return sorted(files, key=lambda p: int(_STEP_FILE.match(p.name).group(1)))  # type: ignore[union-attr]


def read_verl_dumps(path: str | Path) -> list[EvalRecord]:
    """Records from verl generation dumps: one per line of every ``<step>.jsonl`` (all steps, in step order)."""
    records: list[EvalRecord] = []
    for file in dump_files(path):
        m = _STEP_FILE.match(file.name)
        file_step = int(m.group(1)) if m else None
        for lineno, obj in _jsonl(file):
            where = f"{file}:{lineno}"
            missing = [k for k in ("input", "output", "gts") if k not in obj]
            if missing:
                raise ValueError(f"{where}: not a verl generation dump line (missing {', '.join(missing)})")
            output = obj["output"]
            if not isinstance(output, str):
                raise ValueError(f"{where}: 'output' must be a string")
            parsed = parse_response(output)
            step = obj.get("step", file_step)
            try:
                records.append(
                    EvalRecord(
                        id=str(obj.get("uid") or f"{step}:{lineno}"),
                        group=_prompt_group(str(obj["input"])),
                        label=obj["gts"],
                        pred=parsed.score,
                        raw=output,
                        error=parsed.error,
                        step=step,
                        reward=obj.get("score"),
                    )
                )
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
    return records


def by_step(records: list[EvalRecord]) -> dict[int, list[EvalRecord]]:
    """Records split by training step (records without a step are left out), in step order."""
    steps: dict[int, list[EvalRecord]] = {}
    for rec in records:
        if rec.step is not None:
            steps.setdefault(rec.step, []).append(rec)
    return dict(sorted(steps.items()))


def read_training_log(path: str | Path) -> list[dict[str, Any]]:
    """A trainer's per-step log as JSONL (e.g. the TRL engine's ``metrics.jsonl``): objects with a ``step``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training log not found: {path} (the TRL engine writes <output-dir>/metrics.jsonl)")
    rows = []
    for lineno, obj in _jsonl(path):
        if not isinstance(obj.get("step"), int):
            raise ValueError(f"{path}:{lineno}: a training log line needs an integer 'step'")
        rows.append(obj)
    if not rows:
        raise ValueError(f"{path}: the training log is empty")
    return rows


def read_test_parquet(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of a prepared parquet (contract 3) as dicts: id, group, label, gt_score, instruction, source, edited."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"test parquet not found: {path} (write it with `editjudge prepare`)")
    table = pq.read_table(path)
    needed = {"images", "reward_model", "extra_info"}
    missing = needed - set(table.column_names)
    if missing:
        raise ValueError(f"{path}: not an editjudge parquet (missing columns {sorted(missing)})")
    rows = table.select(["images", "reward_model", "extra_info"]).to_pylist()
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows[:limit] if limit is not None else rows):
        extra = row["extra_info"] or {}
        images = row["images"] or []
        if len(images) != 2 or not all(isinstance(im, dict) and im.get("bytes") for im in images):
            raise ValueError(f"{path}: row {i} must carry two images with bytes (source, edited)")
        instruction = extra.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"{path}: row {i} has no extra_info.instruction")
        truth = (row["reward_model"] or {}).get("ground_truth", extra.get("label"))
        out.append(
            {
                "id": str(extra.get("index", i)),
                "group": extra.get("group"),
                "label": truth,
                "gt_score": extra.get("score"),
                "instruction": instruction,
                "source": images[0]["bytes"],
                "edited": images[1]["bytes"],
            }
        )
    return out


def judge_parquet(path: str | Path, judge: Any, *, limit: int | None = None, progress: bool = True) -> list[EvalRecord]:
    """Run ``judge`` (an :class:`editjudge.judge.Judge`) over a prepared parquet; one record per row."""
    rows = read_test_parquet(path, limit)
    items = [{"source": r["source"], "edited": r["edited"], "instruction": r["instruction"]} for r in rows]
    results = judge.score_many(items, progress=progress)
    return [
        EvalRecord.from_judge_result(res, id=r["id"], group=r["group"], label=r["label"], gt_score=r["gt_score"])
        for r, res in zip(rows, results)
    ]
