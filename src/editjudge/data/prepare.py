"""``editjudge prepare``: folders or manifests of scored edits -> verl parquet (train/test), report and rejects.

The path of one sample: :mod:`~editjudge.data.sources` (record or reject) -> inspect (hash the source file for its
group, read both image headers, count the prompt's text tokens, plan both image sizes within the token budget) ->
:mod:`~editjudge.data.labels` (split by group, median/MAD on train, label, selection) -> build (decode at reduced
scale, resize, JPEG-encode; keep original bytes when nothing changes) -> :mod:`~editjudge.data.writer` (streamed,
atomic parquet) -> :mod:`~editjudge.data.report`.

Both heavy stages run in an ordered process pool (``--workers``); the order of results, hence the output bytes, does
not depend on the number of workers. Every sample found ends up in exactly one place: a parquet row or a line of
``rejects.jsonl`` (with its reason), so ``kept + rejected == found``. Imports no torch.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from editjudge import prompts
from editjudge.data import images as imgs
from editjudge.data import labels as lbl
from editjudge.data.files import DEFAULT_MAX_FILE_BYTES, FileRejected, open_file, read_file
from editjudge.data.parallel import OrderedPool, chunks
from editjudge.data.report import Stats, build_report, format_summary
from editjudge.data.sources import EditRecord, Rejected, read_sources
from editjudge.data.tokens import EstimateCounter, TextCounter, load_counter
from editjudge.data.writer import SCHEMA, JsonlSink, OutputExists, ParquetSink, atomic_write_text, check_output
from editjudge.formats import DimensionsFormat, JudgmentFormat, get_format

__all__ = ["PrepareConfig", "PrepareResult", "prepare", "add_arguments", "run"]

TASK_RECORDS = 8  # records per build task: candidates of one source share a task, so its source is sized once
PIL_BLOCKS_MAX = 8  # freed image blocks PIL keeps for reuse (PILLOW_BLOCKS_MAX; PIL's default 0 frees them all)
T = TypeVar("T")


@dataclass(frozen=True)
class PrepareConfig:
    """Everything ``prepare`` needs; the CLI flags map one to one."""

    inputs: tuple[str, ...]
    out_dir: str
    train_split: float = 0.9
    score_median: float | None = None
    score_mad: float | None = None
    sample_size: int | None = None
    balanced: bool = False
    seed: int = 42
    template: str = prompts.DEFAULT_TEMPLATE
    format: str = "pointwise"  # the judgment format's spec (editjudge.formats.get_format)
    # A dimension format's labels (editjudge.data.dimension_scores): per-dimension median / MAD as "NAME=VALUE"
    # (else --score-median/--score-mad, else estimated on train), and what a row missing a dimension gets.
    dimension_median: tuple[str, ...] = ()
    dimension_mad: tuple[str, ...] = ()
    missing_dimension: str = "keep"
    max_prompt_length: int = 1024
    processor: str | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    max_image_tokens: int | None = None
    jpeg_quality: int = imgs.DEFAULT_JPEG_QUALITY
    max_image_pixels: int = imgs.DEFAULT_BOMB_PIXELS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    progress: bool = True


@dataclass
class PrepareResult:
    """Paths written and the report (also saved as ``prepare_report.json``)."""

    out_dir: Path
    train_path: Path
    test_path: Path
    rejects_path: Path
    report_path: Path
    report: dict[str, Any]


# ------------------------------------------------------------------------------------------ worker context


@dataclass
class _Context:
    format: JudgmentFormat
    template: prompts.PromptTemplate
    counter: TextCounter
    limits: imgs.PixelLimits
    max_prompt_length: int
    max_image_tokens: int | None
    jpeg_quality: int
    max_image_pixels: int
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES


_CTX: _Context | None = None


def _limits(config: PrepareConfig) -> imgs.PixelLimits:
    return imgs.PixelLimits.resolve(config.processor, config.min_pixels, config.max_pixels)


def _make_context(config: PrepareConfig) -> _Context:
    from PIL import Image

    # PIL refuses images above 2 x MAX_IMAGE_PIXELS on its own; let our (reported) limit be the one that applies.
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, config.max_image_pixels)
    if "PILLOW_BLOCKS_MAX" not in os.environ:
        # Every image here is decoded, resized and dropped: reusing PIL's freed blocks instead of returning them
        # to the OS saves the page faults of thousands of fresh multi-MB allocations (≈ 8 % of the CPU time).
        Image.core.set_blocks_max(PIL_BLOCKS_MAX)
    counter: TextCounter = load_counter(config.processor) if config.processor else EstimateCounter()
    fmt = get_format(config.format)
    return _Context(
        format=fmt,
        template=fmt.load_template(config.template),
        counter=counter,
        limits=_limits(config),
        max_prompt_length=config.max_prompt_length,
        max_image_tokens=config.max_image_tokens,
        jpeg_quality=config.jpeg_quality,
        max_image_pixels=config.max_image_pixels,
        max_file_bytes=config.max_file_bytes,
    )


def _init_worker(config: PrepareConfig, worker: bool = True) -> None:
    global _CTX
    if worker:
        # Ctrl-C is the main process's business: a worker killed by SIGINT half-way through a queue read would
        # leave the pool's shared lock held and the pool's shutdown hanging. The main process terminates them.
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked while the pool forked us
    _CTX = _make_context(config)
    _text_tokens.cache_clear()
    _source_header.cache_clear()
    _PICTURES.clear()


@lru_cache(maxsize=4096)
def _text_tokens(instruction: str) -> int:
    assert _CTX is not None
    return _CTX.counter.text_tokens(_CTX.format.messages(instruction, _CTX.template))


# --------------------------------------------------------------------------------------------- inspection


@dataclass(frozen=True)
class _Inspected:
    source_hash: str  # content hash of the source file's bytes (its sized copy is shared by equal bytes)
    picture: str  # the source's picture (labels.picture_hash): what the split groups by
    text_tokens: int
    source_hw: tuple[int, int]
    edited_hw: tuple[int, int]
    source_orig_hw: tuple[int, int]
    edited_orig_hw: tuple[int, int]


def _read(path: str) -> bytes:
    """A regular input file within --max-file-bytes (never blocks on a FIFO, never reads /dev/zero)."""
    assert _CTX is not None
    return read_file(path, _CTX.max_file_bytes)


@lru_cache(maxsize=64)
def _source_header(path: str, size: int, mtime_ns: int) -> tuple[str, str, imgs.ImageInfo]:
    """Content hash, picture hash and header of a source file. Cached by (path, size, mtime): the candidates of one
    source come one after another, so the file is read and hashed once for all of them, not once per candidate;
    copies with equal bytes share one decode for the picture hash.
    Raises ``OSError`` / :class:`~editjudge.data.images.ImageRejected` (never cached)."""
    assert _CTX is not None
    data = _read(path)
    digest = lbl.content_hash(data)
    info = imgs.probe(data, _CTX.max_image_pixels)
    return digest, _picture(digest, data), info


_PICTURES: dict[str, str] = {}


def _picture(digest: str, data: bytes) -> str:
    if digest not in _PICTURES:
        if len(_PICTURES) >= 4096:
            _PICTURES.clear()
        assert _CTX is not None
        _PICTURES[digest] = lbl.picture_hash(data, _CTX.max_image_pixels)
    return _PICTURES[digest]


def _inspect(record: EditRecord) -> _Inspected | Rejected:
    """Group hash, headers and the size plan of one record, without decoding pixels."""
    assert _CTX is not None
    paths = (record.source_path, record.edited_path)
    try:
        stat = os.stat(record.source_path)
        source_hash, picture, src = _source_header(record.source_path, stat.st_size, stat.st_mtime_ns)
    except FileRejected as exc:
        return Rejected(record.id, exc.reason, f"source {exc.detail}", paths)
    except OSError as exc:
        return Rejected(record.id, "unreadable_file", f"source {record.source_path}: {imgs.stable_message(exc)}", paths)
    except imgs.ImageRejected as exc:
        return Rejected(record.id, exc.reason, f"source {record.source_path}: {exc.detail}", paths)
    try:
        with open_file(record.edited_path, _CTX.max_file_bytes) as handle:  # the header only
            edt = imgs.probe(handle, _CTX.max_image_pixels)
    except FileRejected as exc:
        return Rejected(record.id, exc.reason, f"edited {exc.detail}", paths)
    except OSError as exc:
        return Rejected(record.id, "unreadable_file", f"edited {record.edited_path}: {imgs.stable_message(exc)}", paths)
    except imgs.ImageRejected as exc:
        return Rejected(record.id, exc.reason, f"edited {record.edited_path}: {exc.detail}", paths)
    text = _text_tokens(record.instruction)
    try:
        source_hw, edited_hw = imgs.plan_pair(
            src.upright_hw, edt.upright_hw, _CTX.max_prompt_length - text, _CTX.limits, _CTX.max_image_tokens
        )
    except imgs.ImageRejected as exc:
        detail = f"{exc.detail} (prompt text takes {text} of --max-prompt-length {_CTX.max_prompt_length} tokens)"
        return Rejected(record.id, exc.reason, detail, paths)
    return _Inspected(source_hash, picture, text, source_hw, edited_hw, src.upright_hw, edt.upright_hw)


def _inspect_chunk(records: list[EditRecord]) -> list[_Inspected | Rejected]:
    return [_inspect(r) for r in records]


# ----------------------------------------------------------------------------------------------- building


@dataclass(frozen=True)
class _Job:
    record: EditRecord
    plan: _Inspected
    split: str
    label: Any  # what the format's encode_label takes: an int 0..9 (pointwise), a {dimension: label} mapping
    group: str
    row_label: int | None  # extra_info.label: the label (pointwise), the overall label by the set's rule


def _sized(record_id: str, which: str, path: str, hw: tuple[int, int], paths: tuple[Any, Any]) \
        -> imgs.SizedImage | Rejected:
    """One image of a pair read and sized for its plan, or the record's rejection naming ``which`` image and why."""
    assert _CTX is not None
    try:
        return imgs.size_image(_read(path), hw, None, _CTX.jpeg_quality, _CTX.max_image_pixels, _CTX.limits.factor)
    except imgs.ImageRejected as exc:
        return Rejected(record_id, exc.reason, f"{which} {path}: {exc.detail}", paths)
    except FileRejected as exc:
        return Rejected(record_id, exc.reason, f"{which} {exc.detail}", paths)
    except OSError as exc:
        return Rejected(record_id, "unreadable_file", f"{which} {path}: {exc}", paths)


def _build_task(jobs: list[_Job]) -> list[tuple[dict[str, Any], dict[str, Any]] | Rejected]:
    """Rows (with per-row stats) or rejects for a few records; a source shared by them is sized once."""
    assert _CTX is not None
    cache: dict[tuple[str, tuple[int, int]], imgs.SizedImage | Rejected] = {}
    out: list[tuple[dict[str, Any], dict[str, Any]] | Rejected] = []
    for job in jobs:
        record, plan = job.record, job.plan
        paths = (record.source_path, record.edited_path)
        key = (plan.source_hash, plan.source_hw)
        if key not in cache:
            cache[key] = _sized(record.id, "source", record.source_path, plan.source_hw, paths)
        source = cache[key]
        edited = None if isinstance(source, Rejected) else _sized(
            record.id, "edited", record.edited_path, plan.edited_hw, paths)
        failed = source if isinstance(source, Rejected) else edited
        if isinstance(failed, Rejected):  # a cached source failure is this record's too
            out.append(Rejected(record.id, failed.reason, failed.detail, paths))
            continue
        assert isinstance(source, imgs.SizedImage) and isinstance(edited, imgs.SizedImage)
        prompt_tokens = plan.text_tokens + source.tokens + edited.tokens
        row = {
            "data_source": _CTX.format.data_source,
            "prompt": _CTX.format.messages(record.instruction, _CTX.template),
            "images": [{"bytes": source.bytes}, {"bytes": edited.bytes}],
            "ability": prompts.ABILITY,
            "reward_model": {"style": "rule", "ground_truth": _CTX.format.encode_label(job.label)},
            "extra_info": {
                "split": job.split,
                "index": -1,  # set by the writer, in output order
                "id": record.id,
                "instruction": record.instruction,
                "score": record.score,
                "label": job.row_label,
                "group": job.group,
                "source_path": record.source_path,
                "edited_path": record.edited_path,
                "prompt_tokens": prompt_tokens,
                "image_tokens": [source.tokens, edited.tokens],
                "image_hw": [[source.height, source.width], [edited.height, edited.width]],
            },
        }
        if record.scores is not None:  # dimension rows only: the raw score of each dimension
            row["extra_info"]["scores"] = record.scores
        stats = {
            "prompt_tokens": prompt_tokens,
            "text_tokens": plan.text_tokens,
            "image_tokens": (source.tokens, edited.tokens),
            "orig_hw": (source.original_height, source.original_width, edited.original_height, edited.original_width),
            "bytes": len(source.bytes) + len(edited.bytes),
            "kept_original": int(source.kept_original) + int(edited.kept_original),
        }
        out.append((row, stats))
    return out


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", disable=not enabled, dynamic_ncols=True, leave=False)


# ---------------------------------------------------------------------------------------------- the verb


def prepare(config: PrepareConfig) -> PrepareResult:
    """Run the whole preparation; raises ``ValueError``/``FileNotFoundError`` for unusable settings or inputs."""
    started = time.perf_counter()
    if not 0.0 <= config.train_split <= 1.0:
        raise ValueError(f"--train-split must be within [0, 1], got {config.train_split}")
    if (config.score_median is None) != (config.score_mad is None):
        raise ValueError("give both --score-median and --score-mad, or neither (then both are estimated on train)")
    if config.score_mad is not None and not config.score_mad > 0:
        raise ValueError(f"--score-mad must be positive, got {config.score_mad}")
    if config.sample_size is not None and config.sample_size < 1:
        raise ValueError(f"--sample-size must be positive, got {config.sample_size}")
    if config.max_file_bytes < 1:
        raise ValueError(f"--max-file-bytes must be positive, got {config.max_file_bytes}")
    prompts.load_template(config.template)  # fail fast on a bad template
    _make_context(config)  # ... and on a bad --processor, before reading anything or starting workers
    out = Path(config.out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)

    labeller = _dimension_labeller(config)
    items = list(read_sources(list(config.inputs), max_file_bytes=config.max_file_bytes,
                              dimensions=labeller is not None))
    if labeller is not None:
        items = [_screened(item, labeller) for item in items]
    records = [item for item in items if isinstance(item, EditRecord)]
    found = len(items)
    if not found:
        raise ValueError(
            f"no samples found in {', '.join(config.inputs)}: expected <stem>_input.*, <stem>_output.*, "
            "<stem>_meta.json and <stem>_score.json files, or a .jsonl/.csv manifest"
        )
    rejects: JsonlSink | None = None
    sinks: dict[str, ParquetSink] = {}
    mapper: OrderedPool | None = None
    ok = False
    stats = Stats()
    try:  # everything that creates a temporary file or a process is inside: an interrupt anywhere cleans up
        rejects = JsonlSink(out / "rejects.jsonl")
        # The main process needs the context too (workers=1, and the report's limits); building it first means a
        # bad --processor or template fails here, once, before any worker starts.
        _init_worker(config, worker=False)
        mapper = OrderedPool(config.workers, _init_worker, (config,))
        for item in items:
            if isinstance(item, Rejected):
                rejects.add(item.to_dict())
                stats.reject(item.reason)
        del items

        # 1. inspect: group hash, headers, token plan (parallel, no pixel decoding)
        inspected: list[_Inspected | Rejected] = []
        with _bar(len(records), "inspect", config.progress) as bar:
            for chunk in mapper.map(_inspect_chunk, chunks(records, 16), in_flight=4 * mapper.workers):
                inspected += chunk
                bar.update(len(chunk))
        good: list[tuple[EditRecord, _Inspected]] = []
        for record, result in zip(records, inspected):
            if isinstance(result, Rejected):
                rejects.add(result.to_dict())
                stats.reject(result.reason)
            else:
                good.append((record, result))
        del inspected
        keys = lbl.group_keys([r.group for r, _ in good], [p.picture for _, p in good])
        valid = [(record, plan, group) for (record, plan), group in zip(good, keys)]
        sources = len({plan.source_hash for record, plan in good if record.group is None})
        del good

        # 2. split by group, median/MAD on train, labels, selection
        sizes = Counter(group for _, _, group in valid)
        train_groups = lbl.split_groups(dict(sizes), config.train_split, config.seed)
        splits = ["train" if group in train_groups else "test" for _, _, group in valid]
        if labeller is not None:  # one median / MAD per dimension
            median, mad, estimated = None, None, False
            if valid:
                labeller.fit([r.scores for (r, _, _), s in zip(valid, splits) if s == "train"],  # type: ignore[misc]
                             config.score_median, config.score_mad)
        elif config.score_median is not None and config.score_mad is not None:
            median, mad, estimated = config.score_median, config.score_mad, False
        elif not valid:  # nothing left to label: the report says why
            median, mad, estimated = None, None, False
        else:
            train_scores = [r.score for (r, _, _), s in zip(valid, splits) if s == "train" and r.score is not None]
            median, mad = lbl.estimate_median_mad(train_scores)
            estimated = True
        if labeller is not None:
            labels: list[Any] = [labeller.label(r.scores) for r, _, _ in valid]  # type: ignore[arg-type]
            row_labels = [labeller.overall(label) for label in labels]
        else:
            labels = [lbl.label_of(float(r.score), median, mad) for r, _, _ in valid]  # type: ignore[arg-type]
            row_labels = labels
        balance_on = [-1 if label is None else label for label in row_labels]
        chosen = set(lbl.select(balance_on, config.sample_size, config.balanced, config.seed))
        how = "--balanced" if config.balanced else "--sample-size"
        jobs: dict[str, list[_Job]] = {"train": [], "test": []}
        for i, ((record, plan, group), split, label, row_label) in enumerate(zip(valid, splits, labels, row_labels)):
            if i in chosen:
                jobs[split].append(_Job(record, plan, split, label, group, row_label))
            else:
                detail = f"left out by {how} (seed {config.seed})"
                rejects.add(Rejected(record.id, "not_selected", detail, (record.source_path, record.edited_path)).to_dict())
                stats.reject("not_selected")
        del valid

        # 3. build rows (parallel), stream them into the parquet files in a stable order
        tasks: list[list[_Job]] = []
        for split in ("train", "test"):
            sinks[split] = ParquetSink(out / f"{split}.parquet", schema=_schema(labeller))
            ordered = _group_order(jobs[split])
            tasks += list(_group_tasks(ordered))
        total = sum(len(t) for t in tasks)
        with _bar(total, "build", config.progress) as bar:
            for results in mapper.map(_build_task, tasks, in_flight=2 * mapper.workers + 2):
                for result in results:
                    if isinstance(result, Rejected):
                        rejects.add(result.to_dict())
                        stats.reject(result.reason)
                        continue
                    row, row_stats = result
                    split = row["extra_info"]["split"]
                    row["extra_info"]["index"] = sinks[split].rows
                    sinks[split].add(row)
                    stats.keep(split, row["extra_info"]["label"], row["extra_info"]["score"], row_stats)
                    if labeller is not None:
                        labeller.count(split, _CTX.format.parse_label(row["reward_model"]["ground_truth"]))
                bar.update(len(results))
        del tasks, jobs

        paths = {split: sink.commit() for split, sink in sinks.items()}
        rejects_path = rejects.commit()
        limits = _CTX.limits if _CTX is not None else _limits(config)
        counter_name = _CTX.counter.name if _CTX is not None else "estimate"
        report = build_report(
            config=asdict(config),
            found=found,
            stats=stats,
            median=median,
            mad=mad,
            estimated=estimated,
            limits=asdict(limits),
            counter=counter_name,
            groups={"total": len(sizes), "train": len(train_groups), "source_files": sources,
                    "picture_groups": sum(1 for g in sizes if g.startswith("image:"))},
            outputs={k: str(v) for k, v in paths.items()} | {"rejects": str(rejects_path)},
            seconds=time.perf_counter() - started,
            dimensions=labeller.report() if labeller is not None else None,
        )
        report_path = atomic_write_text(out / "prepare_report.json", _json(report))
        ok = True
        return PrepareResult(out, paths["train"], paths["test"], rejects_path, report_path, report)
    finally:
        if mapper is not None:
            mapper.close(ok)
        if not ok:
            for sink in sinks.values():
                sink.discard()
            if rejects is not None:
                rejects.discard()


def _dimension_labeller(config: PrepareConfig) -> Any:
    """The dimension labeller of a dimension format (:mod:`editjudge.data.dimension_scores`), else None."""
    fmt = get_format(config.format)
    if not isinstance(fmt, DimensionsFormat):
        return None
    from editjudge.data.dimension_scores import DimensionLabeller, parse_assignments

    return DimensionLabeller(fmt, config.missing_dimension,
                             parse_assignments(config.dimension_median, "--dimension-median"),
                             parse_assignments(config.dimension_mad, "--dimension-mad"))


def _screened(item: EditRecord | Rejected, labeller: Any) -> EditRecord | Rejected:
    """A record with its scores in the set's order, or its rejection naming why the set cannot use them."""
    if not isinstance(item, EditRecord):
        return item
    from dataclasses import replace

    from editjudge.data.dimension_scores import DimensionScoreError

    try:
        return replace(item, scores=labeller.screen(item))
    except DimensionScoreError as exc:
        return Rejected(item.id, exc.reason, f"{item.origin}: {exc}", (item.source_path, item.edited_path),
                        source_path=item.source_path, edited_path=item.edited_path, instruction=item.instruction,
                        score=item.score, group=item.group)


def _schema(labeller: Any) -> Any:
    if labeller is None:
        return SCHEMA
    from editjudge.data.dimension_scores import parquet_schema

    return parquet_schema(labeller.names)


def _group_order(jobs: list[_Job]) -> list[_Job]:
    """Candidates of one group next to each other (groups by first appearance; stable within a group)."""
    first: dict[str, int] = {}
    for i, job in enumerate(jobs):
        first.setdefault(job.group, i)
    return sorted(jobs, key=lambda job: first[job.group])


def _group_tasks(jobs: list[_Job]) -> Iterator[list[_Job]]:
    """Tasks of at most TASK_RECORDS jobs that never mix groups (so a shared source is sized once per task)."""
    task: list[_Job] = []
    for job in jobs:
        if task and (len(task) >= TASK_RECORDS or task[-1].group != job.group):
            yield task
            task = []
        task.append(job)
    if task:
        yield task


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


# -------------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Turn folders (the seed's <stem>_input/_output/_meta.json/_score.json layout, searched recursively) or "
        "JSONL/CSV manifests (source, edited, instruction, score[, group]) into verl parquet: train.parquet, "
        "test.parquet, prepare_report.json and rejects.jsonl."
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="folder(s) and/or .jsonl/.csv manifest(s)")
    parser.add_argument("-o", "--out", default="~/data/tts_edit", help="output folder")
    group = parser.add_argument_group("labels and split")
    group.add_argument("--train-split", type=float, default=0.9, help="fraction of samples (whole groups) for train")
    group.add_argument("--score-median", type=float, default=None, help="median for the label formula (default: estimated on train)")
    group.add_argument("--score-mad", type=float, default=None, help="MAD for the label formula (default: estimated on train)")
    group.add_argument("--sample-size", type=int, default=None, help="keep at most this many samples (random, seeded)")
    group.add_argument("--balanced", action="store_true", help="keep the same number of samples for every label")
    group.add_argument("--seed", type=int, default=42, help="seed of the split and the sampling")
    add_dimension_arguments(parser)
    group = parser.add_argument_group("prompt and images")
    group.add_argument("--template", default=prompts.DEFAULT_TEMPLATE, help="prompt template: en, zh, or a YAML/JSON file with 'system' and 'user'")
    group.add_argument("--max-prompt-length", type=int, default=1024, help="token budget of a prompt: text + both images (verl's data.max_prompt_length)")
    group.add_argument("--processor", "--model", dest="processor", default=None, metavar="PATH",
                       help="model/processor folder: exact token counts (tokenizer.json + chat template) and its min/max pixels; "
                            "without it a generous estimate and Qwen2.5-VL's default pixel limits are used")
    group.add_argument("--min-pixels", type=int, default=None, help="override the processor's min_pixels")
    group.add_argument("--max-pixels", type=int, default=None, help="override the processor's max_pixels")
    group.add_argument("--max-image-tokens", type=int, default=None, help="cap on tokens per image (default: fill the budget)")
    group.add_argument("--jpeg-quality", type=int, default=imgs.DEFAULT_JPEG_QUALITY, help="quality of re-encoded JPEGs")
    group.add_argument("--max-image-pixels", type=int, default=imgs.DEFAULT_BOMB_PIXELS, help="reject larger images as decompression bombs")
    group.add_argument("--max-file-bytes", type=int, default=DEFAULT_MAX_FILE_BYTES,
                       help="reject larger input files (and anything that is not a regular file) without reading them")
    group = parser.add_argument_group("run")
    group.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    group.add_argument("--force", action="store_true", help="write into an --out folder that already holds files")


def add_dimension_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dimensions SET`` and its label settings (a judge that scores several dimensions, docs/prepare.md)."""
    from editjudge.data.dimension_scores import DEFAULT_MISSING, MISSING_POLICIES
    from editjudge.formats.dimension_sets import builtin_sets

    group = parser.add_argument_group(
        "dimensions (a judge that scores several dimensions: rows carry a 'scores' object, score_<name> columns, or "
        "several keys in <stem>_score.json)")
    group.add_argument("--dimensions", metavar="SET", default=None,
                       help=f"dimension set: {', '.join(builtin_sets())} or a YAML file; the set decides the format "
                            "(the prompt asks for one 0-9 digit per dimension). Default: the seed's one score")
    group.add_argument("--dimension-median", action="append", default=[], metavar="NAME=VALUE",
                       help="one dimension's median for the label formula, repeatable (default: --score-median, else "
                            "estimated on train for that dimension)")
    group.add_argument("--dimension-mad", action="append", default=[], metavar="NAME=VALUE",
                       help="one dimension's MAD, repeatable (default: --score-mad, else estimated on train)")
    group.add_argument("--missing-dimension", choices=MISSING_POLICIES, default=DEFAULT_MISSING,
                       help=f"a row without a score for one of the set's dimensions: keep it with that dimension "
                            f"unlabelled (no accuracy term for it), or reject it (missing_dimension). "
                            f"Default: {DEFAULT_MISSING}")


def _format_spec(args: argparse.Namespace) -> str:
    """The judgment format ``--dimensions`` names (its spec), else pointwise."""
    if getattr(args, "dimensions", None) is None:
        return "pointwise"
    return get_format(f"dimensions:{args.dimensions}").spec


def config_from_args(args: argparse.Namespace) -> PrepareConfig:
    return PrepareConfig(
        inputs=tuple(args.inputs),
        out_dir=args.out,
        train_split=args.train_split,
        score_median=args.score_median,
        score_mad=args.score_mad,
        sample_size=args.sample_size,
        balanced=args.balanced,
        seed=args.seed,
        template=args.template,
        format=_format_spec(args),
        dimension_median=tuple(args.dimension_median),
        dimension_mad=tuple(args.dimension_mad),
        missing_dimension=args.missing_dimension,
        max_prompt_length=args.max_prompt_length,
        processor=args.processor,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        max_image_tokens=args.max_image_tokens,
        jpeg_quality=args.jpeg_quality,
        max_image_pixels=args.max_image_pixels,
        max_file_bytes=args.max_file_bytes,
        workers=args.workers,
        progress=not args.quiet and sys.stderr.isatty(),
    )


def run(args: argparse.Namespace) -> int:
    try:
        check_output(Path(args.out).expanduser(), force=args.force, flag="--out")
        result = prepare(config_from_args(args))
    except (ValueError, FileNotFoundError, ImportError, OutputExists) as exc:
        print(f"editjudge prepare: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("editjudge prepare: interrupted; the previous outputs (if any) are left as they were", file=sys.stderr)
        return 130
    print(format_summary(result.report))
    return 0 if result.report["counts"]["kept"] else 1
