"""Benchmark suites read into one shape: items of ≥ 1 candidate edits of a source, each with a human truth.

Each reader takes the folder (or file) ``--root`` points at, in the layout the benchmark's own evaluation code
reads (docs/bench.md cites file and commit), and returns a :class:`Suite`: the items that could be read and the
:class:`FailedItem` list (missing images, malformed items, unknown ranking strings), each with its reason. A root
that is not the suite at all raises :class:`SuiteError` (the CLI exits 2 with what was expected).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from editjudge.data.sources import LONE_SURROGATE, lone_surrogate
from editjudge.evaluate.pairwise import RankingError, parse_ranking

ImageRef = Union[str, bytes]  # a file path (resolved, existing) or encoded image bytes


class SuiteError(ValueError):
    """``--root`` does not hold the suite: the message says what was expected."""


@dataclass(frozen=True)
class BenchItem:
    """One benchmark item: a source image, an instruction and K candidate edits with a human truth.

    ``truth`` holds one value per candidate, higher is better (a ranking's tiers negated, a preference as (1, 0),
    human scores as they are). ``subset`` is what the suite reports by (task type, 2pair/3pair/4pair, model…),
    ``group`` what the bootstrap resamples (items of one source image go together).
    """

    id: str
    instruction: str
    source: ImageRef
    candidates: tuple[ImageRef, ...]
    truth: tuple[float, ...]
    subset: str
    group: str
    dimension: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class FailedItem:
    """An item that could not be read; it counts wrong (``n_pairs`` comparisons) and is shown in the report."""

    id: str
    reason: str
    detail: str
    subset: str | None = None
    dimension: str | None = None
    n_pairs: int = 1


@dataclass
class Suite:
    name: str
    root: str
    items: list[BenchItem]
    failed: list[FailedItem]


class _Bad(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _text(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _Bad("malformed_item", f"'{key}' must be a non-empty string, got {value!r}")
    _unicode(value, key)
    return value


def _unicode(value: str, key: str) -> None:
    """A string of the item that no UTF-8 output could hold (a lone surrogate) fails the item, not the run."""
    if lone_surrogate(value):
        raise _Bad("malformed_item", f"'{key}': {LONE_SURROGATE}")


def _image_path(value: Any, base: Path, key: str) -> str:
    """An existing image file: the path as given, else relative to the suite root (TIGER's files hold absolute
    paths of the authors' machines, so the file name under ``base``/``images`` is tried last)."""
    if not isinstance(value, str) or not value:
        raise _Bad("malformed_item", f"'{key}' must be an image path, got {value!r}")
    _unicode(value, key)
    for candidate in (Path(value), base / value, base / "images" / Path(value).name):
        if candidate.is_file():
            return str(candidate)
    raise _Bad("missing_image", f"{key}: {value} not found (as given, under {base}, or {base / 'images'})")


def _number(item: dict[str, Any], key: str) -> float:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Bad("non_finite_score" if isinstance(value, float) else "malformed_item",
                   f"'{key}' must be a finite number, got {value!r}")
    return float(value)


def _load_json_list(path: Path) -> list[Any]:
    from editjudge.data.files import FileRejected, read_file

    try:
        data = json.loads(read_file(path).decode("utf-8"))  # bounded: regular files within --max-file-bytes only
    except FileRejected as exc:
        raise SuiteError(f"{exc.detail}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise SuiteError(f"{path}: not readable JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(data, list):
        raise SuiteError(f"{path}: expected a JSON list of items, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------------------------------------------
# TIGER-Lab's EditReward-Bench (EditReward/evaluate/eval_bench.py: evaluate_edit_reward_bench)

TIGER_FILES = {"2pair": "EditReward_Bench_2pair.json", "3pair": "EditReward_Bench_3pair.json", "4pair": "EditReward_Bench_4pair.json"}


def read_tiger(root: str | Path) -> Suite:
    """``EditReward_Bench_{2,3,4}pair.json``: lists of ``{prompt, path_src, paths_generated[K], human_vote.ranking}``."""
    base = Path(root)
    files = {k: base / v for k, v in TIGER_FILES.items() if (base / v).is_file()}
    if not files and _parquet_files(base):
        return _read_tiger_hf(base)
    if not files:
        raise SuiteError(
            f"{base}: no EditReward-Bench files; expected {', '.join(TIGER_FILES.values())} (the layout of TIGER's "
            f"eval_bench.py) or the Hugging Face parquet of TIGER-Lab/EditReward-Bench (columns "
            f"{', '.join(TIGER_HF_COLUMNS)}) in it"
        )
    items: list[BenchItem] = []
    failed: list[FailedItem] = []
    for subset, path in files.items():
        k_expected = int(subset[0])
        for index, raw in enumerate(_load_json_list(path)):
            item_id = f"{subset}:{index}"
            try:
                if not isinstance(raw, dict):
                    raise _Bad("malformed_item", f"expected a JSON object, got {type(raw).__name__}")
                prompt = _text(raw, "prompt")
                paths = raw.get("paths_generated")
                if not isinstance(paths, list) or len(paths) < 2:
                    raise _Bad("malformed_item", f"'paths_generated' must list ≥ 2 images, got {paths!r}")
                vote = raw.get("human_vote")
                if not isinstance(vote, dict) or "ranking" not in vote:
                    raise _Bad("malformed_item", "'human_vote.ranking' is missing")
                try:
                    tiers = parse_ranking(vote["ranking"], len(paths))
                except RankingError as exc:
                    raise _Bad("unknown_ranking", str(exc)) from None
                source = _image_path(raw.get("path_src"), base, "path_src")
                candidates = tuple(_image_path(p, base, f"paths_generated[{i}]") for i, p in enumerate(paths))
            except _Bad as bad:
                n = len(raw.get("paths_generated") or []) if isinstance(raw, dict) and isinstance(raw.get("paths_generated"), list) else k_expected
                failed.append(FailedItem(item_id, bad.reason, bad.detail, subset, None, max(1, n * (n - 1) // 2)))
                continue
            items.append(
                BenchItem(item_id, prompt, source, candidates, tuple(-float(t) for t in tiers), subset, item_id,
                          extra={"ranking": vote["ranking"]})
            )
    return Suite("tiger", str(base), items, failed)


TIGER_HF_COLUMNS = ("id", "instruction", "source_image", "candidate_1", "candidate_2", "ranking", "dataset")
_PAIR_VOTE = re.compile(r"^([A-Z])([<>=])([A-Z])(?:=(?:Good|Bad))?$")


def tiger_group_id(row_id: str) -> str:
    """The item a 3-/4-pair comparison row belongs to, by TIGER's own rule (``inference_{3,4}pair_hf.py``: the id
    before its first '_', else its first 10 characters)."""
    return row_id.split("_")[0] if "_" in row_id else row_id[:10]


def _cell_digest(cell: Any) -> str:
    """What identifies an image cell: its bytes' digest, or its path."""
    if isinstance(cell, dict) and isinstance(cell.get("bytes"), (bytes, bytearray)):
        return hashlib.blake2b(bytes(cell["bytes"]), digest_size=16).hexdigest()
    return f"path:{cell.get('path') if isinstance(cell, dict) else cell!r}"


def _read_tiger_hf(base: Path) -> Suite:
    """The Hugging Face copy, one row per comparison (as ``inference_{2,3,4}pair_hf.py`` read it): rows of one
    item share the id prefix of :func:`tiger_group_id` (3-/4-pair; each 2-pair row is an item), ``comparison_type``
    ("AvsC") names the letters of ``candidate_1`` / ``candidate_2`` and ``ranking`` ("A>C", "A=B") the human vote.
    The item's ranking is rebuilt from its pairwise votes; votes that no ranking explains fail the item.

    TIGER's rule alone would merge different items whose ids share the prefix (ids without '_' sharing 10
    characters, or an id repeated), and then lose all of them: rows are also kept apart by what makes them one item
    — the same source image and instruction — and a repeated comparison with the same vote counts once. Items that
    share an id prefix get ``#2``, ``#3``… after it."""
    rows: dict[tuple[str, str], dict[tuple[str, str], list[dict[str, Any]]]] = {}
    for path in _parquet_files(base):
        table = _read_table(path)
        missing = [c for c in TIGER_HF_COLUMNS if c not in table.column_names]
        if missing:
            raise SuiteError(f"{path}: not TIGER-Lab/EditReward-Bench (missing columns {missing}; expected "
                             f"{', '.join(TIGER_HF_COLUMNS)})")
        for index, row in enumerate(_rows(table)):
            subset, rid = str(row.get("dataset")), str(row.get("id") or f"{path.name}:{index}")
            key = rid if subset == "2pair" else tiger_group_id(rid)
            content = (str(row.get("instruction")), _cell_digest(row.get("source_image")))
            rows.setdefault((subset, key), {}).setdefault(content, []).append(row)
    items: list[BenchItem] = []
    failed: list[FailedItem] = []
    for (subset, key), by_content in rows.items():
        for n, group in enumerate(by_content.values(), start=1):
            item_id = f"{subset}:{key}" + (f"#{n}" if n > 1 else "")
            try:
                item = _tiger_hf_item(item_id, subset, group, base)
            except _Bad as bad:
                failed.append(FailedItem(item_id, bad.reason, bad.detail, subset, None, len(group)))
                continue
            items.append(item)
    return Suite("tiger", str(base), items, failed)


def _tiger_hf_item(item_id: str, subset: str, group: list[dict[str, Any]], base: Path) -> BenchItem:
    images: dict[str, ImageRef] = {}
    votes: dict[tuple[str, str], int] = {}
    instruction = _text(group[0], "instruction")
    source = _image_bytes(group[0].get("source_image"), base, "source_image")
    for row in group:
        kind = str(row.get("comparison_type") or "AvsB")
        if not re.fullmatch(r"[A-Z]vs[A-Z]", kind):
            raise _Bad("malformed_item", f"comparison_type {kind!r} is not like 'AvsC'")
        left, right = kind[0], kind[-1]
        for letter, cell in ((left, row.get("candidate_1")), (right, row.get("candidate_2"))):
            image = _image_bytes(cell, base, f"candidate of {letter}")
            if images.setdefault(letter, image) != image:
                raise _Bad("malformed_item", f"candidate {letter} differs between the item's rows")
        vote = _PAIR_VOTE.match(re.sub(r"\s+", "", str(row.get("ranking"))))
        if vote is None or {vote.group(1), vote.group(3)} != {left, right}:
            raise _Bad("unknown_ranking", f"ranking {row.get('ranking')!r} for comparison {kind}")
        a, op, b = vote.groups()
        value = 0 if op == "=" else 1 if op == ">" else -1
        pair, value = ((a, b), value) if a < b else ((b, a), -value)  # one key per pair, whichever way it was written
        if votes.setdefault(pair, value) != value:  # a repeated row with the same vote counts once
            raise _Bad("conflicting_votes", f"comparison {pair[0]}vs{pair[1]} is voted two ways in the item's rows")
    letters = sorted(images)
    if letters != [chr(ord("A") + i) for i in range(len(letters))] or len(votes) != len(letters) * (len(letters) - 1) // 2:
        raise _Bad("malformed_item", f"rows cover candidates {''.join(letters)} with {len(votes)} votes; expected every pair")
    wins = {x: sum(1 for (a, b), h in votes.items() if (a == x and h > 0) or (b == x and h < 0)) for x in letters}
    tiers = {x: sorted(set(wins.values()), reverse=True).index(wins[x]) for x in letters}
    for (a, b), h in votes.items():
        if (tiers[b] > tiers[a]) - (tiers[b] < tiers[a]) != h:
            raise _Bad("unknown_ranking", f"the votes {votes} do not make one ranking")
    ranking = ">".join(sorted(letters, key=lambda x: tiers[x])) if len(set(tiers.values())) == len(letters) else "A=B"
    return BenchItem(item_id, instruction, source, tuple(images[x] for x in letters),
                     tuple(-float(tiers[x]) for x in letters), subset, item_id, extra={"ranking": ranking})


# ---------------------------------------------------------------------------------------------------------------
# GenAI-Bench (image editing) as TIGER's eval_bench.py reads it: main(), evaluate_benchmark == "genai_edit_bench"


def _single_json(root: str | Path, default_name: str, suite: str, fields: str) -> Path:
    path = Path(root)
    if path.is_dir():
        named = path / default_name
        found = [named] if named.is_file() else sorted(path.glob("*.json"))
        if len(found) != 1:
            raise SuiteError(
                f"{path}: expected one JSON file of {suite} items ({fields}), e.g. {default_name}; found {len(found)}"
            )
        path = found[0]
    if not path.is_file():
        raise SuiteError(f"{path}: not found; expected a {suite} JSON file ({fields}) or a folder holding one")
    return path


def read_genai(root: str | Path) -> Suite:
    """A JSON list of ``{prompt, path_src, path1, path2, model1_dim1_score, model2_dim1_score}``."""
    path = _single_json(root, "valid_set2_full.json", "GenAI-Bench (edit)",
                        "prompt, path_src, path1, path2, model1_dim1_score, model2_dim1_score")
    base = path.parent
    items: list[BenchItem] = []
    failed: list[FailedItem] = []
    for index, raw in enumerate(_load_json_list(path)):
        item_id = str(index)
        try:
            if not isinstance(raw, dict):
                raise _Bad("malformed_item", f"expected a JSON object, got {type(raw).__name__}")
            prompt = _text(raw, "prompt")
            truth = (_number(raw, "model1_dim1_score"), _number(raw, "model2_dim1_score"))
            source = _image_path(raw.get("path_src"), base, "path_src")
            candidates = (_image_path(raw.get("path1"), base, "path1"), _image_path(raw.get("path2"), base, "path2"))
        except _Bad as bad:
            failed.append(FailedItem(item_id, bad.reason, bad.detail, "all"))
            continue
        items.append(BenchItem(item_id, prompt, source, candidates, truth, "all", f"src:{raw.get('path_src')}"))
    return Suite("genai", str(path), items, failed)


# ---------------------------------------------------------------------------------------------------------------
# ImagenHub human ratings as TIGER's eval_bench.py reads them: evaluate_imagenhub_from_json


def read_imagenhub(root: str | Path) -> Suite:
    """A JSON list of ``{instruction, input_path, output_path, score, model[, filename]}`` (one edit per item)."""
    path = _single_json(root, "valid_imagenhub_processed.json", "ImagenHub",
                        "instruction, input_path, output_path, score, model")
    base = path.parent
    items: list[BenchItem] = []
    failed: list[FailedItem] = []
    for index, raw in enumerate(_load_json_list(path)):
        item_id = str(raw.get("filename", index)) if isinstance(raw, dict) else str(index)
        item_id = f"{index}:{item_id}"
        try:
            if not isinstance(raw, dict):
                raise _Bad("malformed_item", f"expected a JSON object, got {type(raw).__name__}")
            instruction = _text(raw, "instruction")
            score = _number(raw, "score")
            model = raw.get("model", "unknown")
            source = _image_path(raw.get("input_path"), base, "input_path")
            edited = _image_path(raw.get("output_path"), base, "output_path")
        except _Bad as bad:
            failed.append(FailedItem(item_id, bad.reason, bad.detail, str(raw.get("model", "unknown")) if isinstance(raw, dict) else None, None, 0))
            continue
        items.append(BenchItem(item_id, instruction, source, (edited,), (score,), str(model), f"prompt:{instruction}"))
    return Suite("imagenhub", str(path), items, failed)


# ---------------------------------------------------------------------------------------------------------------
# EditScore's EditReward-Bench (VectorSpaceLab/EditScore: evaluation.py + calculate_statistics.py)

EDITSCORE_COLUMNS = ("key", "instruction", "input_image", "output_images", "task_type", "dimension")


TABLE_SUFFIXES = (".parquet", ".arrow")


def _parquet_files(base: Path) -> list[Path]:
    """Parquet files, and the Arrow files ``datasets`` writes (``save_to_disk`` / Hub repos stored as arrow)."""
    if base.is_file() and base.suffix in TABLE_SUFFIXES:
        return [base]
    if not base.is_dir():
        return []
    return sorted(p for p in base.rglob("*") if p.suffix in TABLE_SUFFIXES and p.is_file())


def _read_table(path: Path) -> Any:
    """A parquet or Arrow IPC (stream or file) table; :class:`SuiteError` naming the file when unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            return pq.read_table(path)
        with pa.memory_map(str(path)) as source:
            try:
                return pa.ipc.open_stream(source).read_all()
            except pa.ArrowInvalid:
                source.seek(0)
                return pa.ipc.open_file(source).read_all()
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a broken file
        raise SuiteError(f"{path}: not a readable {path.suffix[1:]} table ({exc})") from None


def _image_bytes(value: Any, base: Path, key: str) -> bytes | str:
    """A Hugging Face ``Image`` cell (``{"bytes", "path"}``) as bytes, or an existing file it names."""
    if isinstance(value, dict):
        if isinstance(value.get("bytes"), (bytes, bytearray)) and value["bytes"]:
            return bytes(value["bytes"])
        if value.get("path"):
            return _image_path(value["path"], base, key)
    raise _Bad("missing_image", f"{key}: no image bytes or existing path")


def read_editscore(root: str | Path) -> Suite:
    """The Hugging Face files of ``EditScore/EditReward-Bench`` (parquet or arrow): rows of ``key`` [2], ``instruction``,
    ``input_image``, ``output_images`` [2] (the first is the human-preferred one), ``task_type``, ``dimension``."""
    base = Path(root)
    files = _parquet_files(base)
    if not files:
        raise SuiteError(f"{base}: no .parquet or .arrow files; expected the files of EditScore/EditReward-Bench "
                         f"(columns {', '.join(EDITSCORE_COLUMNS)})")
    items: list[BenchItem] = []
    failed: list[FailedItem] = []
    for path in files:
        table = _read_table(path)
        missing = [c for c in EDITSCORE_COLUMNS if c not in table.column_names]
        if missing:
            raise SuiteError(f"{path}: not EditScore's EditReward-Bench (missing columns {missing}; expected "
                             f"{', '.join(EDITSCORE_COLUMNS)})")
        for index, row in enumerate(_rows(table)):
            item_id = f"{path.name}:{index}"
            task, dimension = row.get("task_type"), row.get("dimension")
            try:
                keys = row.get("key")
                if not isinstance(keys, list) or len(keys) != 2 or not all(isinstance(k, str) for k in keys):
                    raise _Bad("malformed_item", f"'key' must hold two strings, got {keys!r}")
                item_id = f"{keys[0]}|{keys[1]}|{dimension}"
                instruction = _text(row, "instruction")
                if not isinstance(task, str) or not task:
                    raise _Bad("malformed_item", f"'task_type' must be a string, got {task!r}")
                if not isinstance(dimension, str) or not dimension:
                    raise _Bad("malformed_item", f"'dimension' must be a string, got {dimension!r}")
                outputs = row.get("output_images")
                if not isinstance(outputs, list) or len(outputs) != 2:
                    raise _Bad("malformed_item", "'output_images' must hold two images")
                source = _image_bytes(row.get("input_image"), path.parent, "input_image")
                candidates = tuple(_image_bytes(o, path.parent, f"output_images[{i}]") for i, o in enumerate(outputs))
            except _Bad as bad:
                failed.append(FailedItem(item_id, bad.reason, bad.detail, task if isinstance(task, str) else None,
                                         dimension if isinstance(dimension, str) else None))
                continue
            items.append(BenchItem(item_id, instruction, source, candidates, (1.0, 0.0), task, f"pair:{keys[0]}|{keys[1]}",
                                   dimension, extra={"keys": keys}))
    return Suite("editscore", str(base), items, failed)


def _rows(table: Any) -> Iterator[dict[str, Any]]:
    for batch in table.to_batches(max_chunksize=64):
        yield from batch.to_pylist()


# ---------------------------------------------------------------------------------------------------------------
# Our own data: a prepared parquet or a manifest / seed folder, candidates grouped by source


def read_ours(root: str | Path) -> Suite:
    """``editjudge prepare``'s parquet (grouped by ``extra_info.group``) or a manifest / seed-layout folder
    (``editjudge score``'s inputs, grouped by ``group`` else the source image); groups of ≥ 2 scored edits."""
    path = Path(root)
    if not path.exists():
        raise SuiteError(f"{path}: not found; expected a prepared .parquet, a .jsonl/.csv manifest or a seed folder")
    rows: list[dict[str, Any]] = []
    failed: list[FailedItem] = []
    if path.is_file() and path.suffix == ".parquet":
        rows, failed = _prepared_rows(path)
    else:
        from editjudge.data.files import FileRejected, hash_file
        from editjudge.data.labels import group_key
        from editjudge.data.sources import Rejected, read_sources

        try:
            records = list(read_sources(path, require_score=True))
        except (OSError, ValueError) as exc:
            raise SuiteError(f"{path}: {exc}") from None
        hashes: dict[str, str] = {}
        for rec in records:
            if isinstance(rec, Rejected):
                failed.append(FailedItem(rec.id, rec.reason, rec.detail, "all"))
                continue
            if rec.source_path not in hashes:
                try:
                    hashes[rec.source_path] = hash_file(rec.source_path)  # = content_hash, a block at a time
                except FileRejected as exc:
                    failed.append(FailedItem(rec.id, "missing_image", f"source {exc.detail}", "all"))
                    continue
            rows.append({"id": rec.id, "group": group_key(rec.group, hashes[rec.source_path]),
                         "instruction": rec.instruction, "source": rec.source_path, "edited": rec.edited_path,
                         "truth": float(rec.score), "label": None})
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((str(r["group"]), r["instruction"]), []).append(r)
    items: list[BenchItem] = []
    for (group, instruction), members in groups.items():
        if len(members) < 2:
            failed.append(FailedItem(members[0]["id"], "single_candidate",
                                     f"group {group} has one scored edit; comparisons need ≥ 2", "all", None, 0))
            continue
        # The raw score orders a group when every member has one (finer), else the 0-9 label does: never a mix.
        key = "truth" if all(m["truth"] is not None for m in members) else "label"
        items.append(BenchItem(
            f"{group}|{instruction}", instruction, members[0]["source"], tuple(m["edited"] for m in members),
            tuple(float(m[key]) for m in members), f"{len(members)}-way" if len(members) <= 4 else "5+-way", group,
            extra={"truth": "score" if key == "truth" else "label"},
        ))
    if not items and not failed:
        raise SuiteError(f"{path}: no scored edits found")
    return Suite("ours", str(path), items, failed)


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _prepared_rows(path: Path) -> tuple[list[dict[str, Any]], list[FailedItem]]:
    """Rows of ``editjudge prepare``'s parquet (contract 3: ``images`` [source, edited] with bytes,
    ``reward_model.ground_truth``, ``extra_info`` with instruction, group, score, index); a bad row fails alone."""
    table = _read_table(path)
    missing = {"images", "reward_model", "extra_info"} - set(table.column_names)
    if missing:
        raise SuiteError(f"{path}: not an editjudge prepared parquet (missing columns {sorted(missing)})")
    rows: list[dict[str, Any]] = []
    failed: list[FailedItem] = []
    index = 0
    for batch in table.select(["images", "reward_model", "extra_info"]).to_batches(max_chunksize=64):
        for row in batch.to_pylist():
            extra = row["extra_info"] if isinstance(row["extra_info"], dict) else {}
            rid = str(extra.get("index", index))
            index += 1
            images = row["images"] or []
            try:
                if len(images) != 2 or not all(isinstance(i, dict) and i.get("bytes") for i in images):
                    raise _Bad("missing_image", "the row must carry two images with bytes (source, edited)")
                instruction = _text(extra, "instruction")
                score, label = _finite(extra.get("score")), _finite((row["reward_model"] or {}).get("ground_truth"))
                if score is None and label is None:
                    raise _Bad("no_truth", "the row has neither a finite extra_info.score nor a ground-truth label")
            except _Bad as bad:
                failed.append(FailedItem(rid, bad.reason, bad.detail, "all"))
                continue
            rows.append({"id": rid, "group": extra.get("group") or f"row:{rid}", "instruction": instruction,
                         "source": images[0]["bytes"], "edited": images[1]["bytes"], "truth": score, "label": label})
    return rows, failed


READERS = {"editscore": read_editscore, "tiger": read_tiger, "genai": read_genai, "imagenhub": read_imagenhub, "ours": read_ours}
