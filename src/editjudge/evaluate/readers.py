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
from editjudge.data import labels as lbl
from editjudge.data.files import MAX_LINE_BYTES, FileRejected, lines_of, open_file
from editjudge.data.sources import LONE_SURROGATE, lone_surrogate
from editjudge.evaluate.records import EvalRecord

_STEP_FILE = re.compile(r"^(\d+)\.jsonl$")
UNCAPPED = 1 << 50  # predictions files have no size cap of their own: only each line has (MAX_LINE_BYTES)


def jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; a bad line raises ``ValueError`` naming file and line."""
    try:
        handle = open_file(path, max_bytes=UNCAPPED)  # regular files only: a FIFO would block the open forever
    except FileRejected as exc:
        if exc.reason == "missing_file":
            raise FileNotFoundError(exc.detail) from None
        raise ValueError(exc.detail) from None
    with handle as fh:
        for lineno, raw in lines_of(fh, MAX_LINE_BYTES):
            if raw is None:
                raise ValueError(f"{path}:{lineno}: a line longer than {MAX_LINE_BYTES} bytes")
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except RecursionError:
                raise ValueError(f"{path}:{lineno}: not valid JSON (nested too deep)") from None
            except ValueError as exc:  # JSONDecodeError, or an integer over Python's digit limit
                why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)[:120]
                raise ValueError(f"{path}:{lineno}: not valid JSON ({why})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            if lone_surrogate(obj, line):
                raise ValueError(f"{path}:{lineno}: {LONE_SURROGATE}")
            yield lineno, obj


_JUDGE_KEYS = ("pred", "raw", "error")  # a predictions line has at least one of them (score writes all three)


def _what_is(path: Path, obj: dict[str, Any] | None = None) -> str:
    """What a file given to --predictions looks like instead, and the flag that reads it."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError:
        head = b""
    if head == b"PAR1":
        return "it is a parquet file: judge a prepared test.parquet with `--data PARQUET --model M`"
    if path.suffix.lower() == ".csv":
        return "it is a CSV file: eval reads the JSONL form, write it with `editjudge score … --out preds.jsonl`"
    if obj is not None and {"input", "output", "gts"} <= set(obj):
        return "it is a verl generation dump: read it with `--verl-dumps DIR`"
    if obj is not None and {"source", "edited"} <= set(obj):
        return ("it looks like a manifest (source, edited, instruction): score it first with "
                "`editjudge score --manifest FILE --model M --out preds.jsonl`, then pass --predictions preds.jsonl")
    return ("--predictions expects the JSONL that `editjudge score --out preds.jsonl` writes: one object per line "
            f"with {', '.join(_JUDGE_KEYS)} (and id, label, gt_score, group, source, instruction)")


def read_predictions(path: str | Path) -> list[EvalRecord]:
    """Records from a predictions JSONL (contract 8); ids default to ``<file name>:<line>``.

    The schema is checked: every line needs one of ``pred``/``raw``/``error``; a parquet file, a CSV, a verl dump or
    a manifest is named as such with the flag that reads it. A line without a ``group`` but with a ``source`` image
    is grouped like ``editjudge prepare`` groups (:func:`editjudge.data.labels.group_keys`: the source's picture,
    relative paths tried against the working directory, then the predictions file's folder; ``source:<path>`` when
    the file cannot be read) and, for comparisons, with its instruction (:func:`~editjudge.data.labels.compare_key`):
    pairwise and best-of-N metrics compare edits of one picture under one instruction.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {path} (write one with `editjudge score … --out`)")
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        for lineno, obj in jsonl_objects(path):
            if not any(k in obj for k in _JUDGE_KEYS):
                raise ValueError(f"{path}:{lineno}: not a predictions line (no {'/'.join(_JUDGE_KEYS)}); {_what_is(path, obj)}")
            rows.append((lineno, obj))
    except ValueError as exc:
        if not rows and ("not valid JSON" in str(exc) or "not UTF-8" in str(exc)):  # what the file is instead
            raise ValueError(f"{exc}; {_what_is(path)}") from None
        raise
    groups = _groups(rows, path.parent)
    records: list[EvalRecord] = []
    for (lineno, obj), group in zip(rows, groups):
        if group is not None:
            obj = {**obj, "group": group}
        try:
            records.append(EvalRecord.from_mapping(obj, default_id=f"{path.name}:{lineno}"))
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: {exc}") from None
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"{path}: the id {dup!r} appears more than once; ids must be unique")
    return records


def _groups(rows: list[tuple[int, dict[str, Any]]], base: Path) -> list[str | None]:
    """The comparison group of each line: an explicit ``group`` as is; else picture + instruction of ``source``."""
    pictures: dict[str, str | None] = {}
    explicit: list[str | None] = []
    picture_of: list[str | None] = []
    for _, obj in rows:
        group = obj.get("group")
        source = obj.get("source")
        explicit.append(None if group is None else str(group))
        if group is None and isinstance(source, str) and source:
            if source not in pictures:
                pictures[source] = _picture(source, base)
            picture_of.append(pictures[source])
        else:
            picture_of.append(None)
    keys = lbl.group_keys(explicit, picture_of)
    out: list[str | None] = []
    for (_, obj), group, picture, key in zip(rows, explicit, picture_of, keys):
        source = obj.get("source")
        if group is not None:
            out.append(group)  # the record's own group, unchanged
        elif picture is not None:
            instruction = obj.get("instruction")
            out.append(lbl.compare_key(key, instruction if isinstance(instruction, str) else None))
        elif isinstance(source, str) and source:
            instruction = obj.get("instruction")
            out.append(lbl.compare_key(f"source:{source}", instruction if isinstance(instruction, str) else None))
        else:
            out.append(None)
    return out


def _picture(source: str, base: Path) -> str | None:
    """The picture hash of a source image file (``labels.picture_hash``), or None when it cannot be read."""
    from editjudge.data import images as imgs
    from editjudge.data.files import FileRejected, read_file

    for candidate in (Path(source), base / source):
        try:
            return lbl.picture_hash(read_file(candidate))
        except (FileRejected, imgs.ImageRejected, OSError, ValueError):
            continue
    return None


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
        for lineno, obj in jsonl_objects(file):
            where = f"{file}:{lineno}"
            missing = [k for k in ("input", "output", "gts") if k not in obj]
            if missing:
                raise ValueError(f"{where}: not a verl generation dump line (missing {', '.join(missing)})")
            output = obj["output"]
            if not isinstance(output, str):
                raise ValueError(f"{where}: 'output' must be a string")
            step = obj.get("step", file_step)
            if _is_dimension_label(obj["gts"]):  # a dimension row: its label names its dimensions
                records.append(_dimension_dump_record(obj, where, step, lineno))
                continue
            parsed = parse_response(output)
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


def _is_dimension_label(value: Any) -> bool:
    """A dump's ``gts`` that is a dimension row's label (a JSON object, or its canonical text)."""
    return isinstance(value, dict) or (isinstance(value, str) and value.lstrip().startswith("{"))


def _dimension_dump_record(obj: dict[str, Any], where: str, step: Any, lineno: int) -> EvalRecord:
    """The record of a dimension row's dump line: read by the format its label names (as the reward reads it)."""
    from editjudge.evaluate.dimensions import record_of
    from editjudge.formats import DIMENSIONS_DATA_SOURCE, format_for_row
    from editjudge.judge.result import Generation, combine

    try:
        fmt = format_for_row(DIMENSIONS_DATA_SOURCE, obj["gts"])
        result = combine([Generation(obj["output"])], fmt)
        record = record_of(result, fmt, id=str(obj.get("uid") or f"{step}:{lineno}"),
                           group=_prompt_group(str(obj["input"])), label=obj["gts"])
        return EvalRecord(**{**record.to_dict(), "step": step, "reward": obj.get("score")})
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


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
    for lineno, obj in jsonl_objects(path):
        if not isinstance(obj.get("step"), int):
            raise ValueError(f"{path}:{lineno}: a training log line needs an integer 'step'")
        rows.append(obj)
    if not rows:
        raise ValueError(f"{path}: the training log is empty")
    return rows


def read_test_parquet(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of a prepared parquet (contract 3) as dicts: id, group, label, gt_score, instruction, source, edited
    (:func:`editjudge.data.prepared_rows.prepared_row`); a malformed row raises ``ValueError`` naming it."""
    from editjudge.data.prepared_rows import prepared_row, read_prepared_table

    out: list[dict[str, Any]] = []
    for i, raw in enumerate(read_prepared_table(path, limit)):
        row = prepared_row(raw, i)
        if isinstance(row, str):
            raise ValueError(f"{path}: {row}")
        out.append(row)
    return out


def judge_parquet(
    path: str | Path, judge: Any, *, limit: int | None = None, progress: bool = True,
    rows: list[dict[str, Any]] | None = None,
) -> list[EvalRecord]:
    """Run ``judge`` (an :class:`editjudge.judge.Judge`) over a prepared parquet (or its ``rows``, already read
    with :func:`read_test_parquet`); one record per row, a row the judge could not judge keeps its label. A
    dimension judge's records carry every dimension (:func:`editjudge.evaluate.dimensions.record_of`)."""
    from editjudge.evaluate.dimensions import check_judge_fits, record_of

    rows = read_test_parquet(path, limit) if rows is None else rows
    fmt = getattr(judge, "format", None)
    check_judge_fits(rows, fmt)  # before a single edit is judged
    items = [{"source": r["source"], "edited": r["edited"], "instruction": r["instruction"]} for r in rows]
    results = judge.score_many(items, progress=progress)
    return [record_of(res, fmt, id=r["id"], group=r["group"], label=r["label"], gt_score=r["gt_score"])
            for r, res in zip(rows, results)]
