"""``editjudge prepare``: folders or manifests of scored edits -> verl parquet (train/test), report and rejects.

The path of one sample: :mod:`~editjudge.data.sources` (record or reject) -> inspect (read both image headers,
count the prompt's text tokens, plan both image sizes within the token budget, then decode each unique source once,
at reduced scale, for both its sized copy — kept in a spill file (:mod:`~editjudge.data.spill`) until the rows are
written — and its picture hash, the group) -> :mod:`~editjudge.data.labels` (split by group, median/MAD on train,
label, selection) -> build (the edited image decoded at reduced scale, resized, JPEG-encoded; original bytes kept
when nothing changes) -> :mod:`~editjudge.data.writer` (streamed, atomic parquet) -> :mod:`~editjudge.data.report`.

Both heavy stages run in an ordered process pool (``--workers``); the order of results, hence the output bytes, does
not depend on the number of workers. Every sample found ends up in exactly one place: a parquet row or a line of
``rejects.jsonl`` (with its reason), so ``kept + rejected == found``. Imports no torch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from editjudge import prompts
from editjudge.data import images as imgs
from editjudge.data import labels as lbl
from editjudge.data.files import DEFAULT_MAX_FILE_BYTES, FileRejected, open_file, read_file
from editjudge.data.pairs import DEFAULT_MAX_PAIRS, DEFAULT_TIE_MARGIN, MIRROR, PairJob, SkippedPair
from editjudge.data.pairs import account as account_pairs
from editjudge.data.pairs import counts as pair_counts
from editjudge.data.pairs import plan_pairs
from editjudge.data.preferences import PreferencePair, is_preference_file, read_preferences
from editjudge.data.parallel import OrderedPool, chunks
from editjudge.data.resample import set_opencv_threads
from editjudge.data.report import Stats, build_report, format_summary
from editjudge.data.spill import Blob, Spill, SpillError, make_folder, read_blob, remove_stale
from editjudge.data.sources import EditRecord, Rejected, read_sources
from editjudge.data.tokens import EstimateCounter, TextCounter, load_counter
from editjudge.data.writer import JsonlSink, OutputExists, ParquetSink, atomic_write_text, check_output, schema_for
from editjudge.formats import DimensionsFormat, JudgmentFormat, PairwiseFormat, get_format
from editjudge.model_path import absolute_path

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
    tie_margin: int = DEFAULT_TIE_MARGIN  # --pairs: a pair is a tie when its labels differ by at most this
    ties: bool = True  # --pairs: False (--no-ties) leaves tie pairs and tie preference records out
    max_pairs_per_source: int = DEFAULT_MAX_PAIRS  # --pairs: pairs kept per source + instruction (seeded)
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
    spill: Spill | None = None  # where sized sources wait between inspect and build

    @property
    def pairwise(self) -> bool:
        """Rows compare two candidates (``--pairs``): see :mod:`editjudge.data.pairs`."""
        return isinstance(self.format, PairwiseFormat)


_CTX: _Context | None = None


def _limits(config: PrepareConfig) -> imgs.PixelLimits:
    return imgs.PixelLimits.resolve(config.processor, config.min_pixels, config.max_pixels)


def _make_context(config: PrepareConfig, spill_dir: str | None = None) -> _Context:
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
        spill=Spill(spill_dir) if spill_dir else None,
    )


def _init_worker(config: PrepareConfig, worker: bool = True, spill_dir: str | None = None) -> None:
    global _CTX
    if worker:
        # Ctrl-C is the main process's business: a worker killed by SIGINT half-way through a queue read would
        # leave the pool's shared lock held and the pool's shutdown hanging. The main process terminates them.
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked while the pool forked us
        set_opencv_threads(1)
    _CTX = _make_context(config, spill_dir)
    _text_tokens.cache_clear()
    _source_header.cache_clear()
    _SIZED.clear()


@lru_cache(maxsize=4096)
def _text_tokens(instruction: str, n_sources: int = 1) -> int:
    assert _CTX is not None
    return _CTX.counter.text_tokens(_CTX.format.messages(instruction, _CTX.template, n_sources))


# --------------------------------------------------------------------------------------------- inspection


@dataclass(frozen=True)
class _SizedSource:
    """A source sized for its plan, waiting in the spill file, and its picture hash from the same decode."""

    blob: Blob
    image: imgs.SizedImage  # its size and tokens; its bytes (empty here) wait in the spill file, at ``blob``
    picture: str  # labels.picture_hash_of the decoded source: what the split groups by


@dataclass(frozen=True)
class _Source:
    """Another source image of an edit of several (the first is ``_Inspected``'s own fields)."""

    hash: str
    sized: _SizedSource
    hw: tuple[int, int]
    orig_hw: tuple[int, int]


@dataclass(frozen=True)
class _Inspected:
    source_hash: str  # content hash of the source file's bytes (its sized copy is shared by equal bytes)
    source: _SizedSource
    text_tokens: int
    source_hw: tuple[int, int]
    edited_hw: tuple[int, int]
    source_orig_hw: tuple[int, int]
    edited_orig_hw: tuple[int, int]
    more_sources: tuple[_Source, ...] = ()  # an edit of several source images: the others, in order
    edited_hash: str = ""  # pairwise: the edited file's content hash (two equal candidates are never paired)

    @property
    def pictures(self) -> str | tuple[str, ...]:
        """What the split groups by: the source's picture, or every source's (labels.group_keys joins them)."""
        first = self.source.picture
        return (first, *(s.sized.picture for s in self.more_sources)) if self.more_sources else first


def _read(path: str) -> bytes:
    """A regular input file within --max-file-bytes (never blocks on a FIFO, never reads /dev/zero)."""
    assert _CTX is not None
    return read_file(path, _CTX.max_file_bytes)


@lru_cache(maxsize=64)
def _source_header(path: str, size: int, mtime_ns: int) -> tuple[str, imgs.ImageInfo]:
    """Content hash and header of a source file. Cached by (path, size, mtime): the candidates of one source come one
    after another, so the file is read once for all of them, not once per candidate.
    Raises ``OSError`` / :class:`~editjudge.data.images.ImageRejected` (never cached)."""
    assert _CTX is not None
    data = _read(path)
    return lbl.content_hash(data), imgs.probe(data, _CTX.max_image_pixels)


_SIZED: dict[tuple[str, tuple[int, int]], _SizedSource] = {}


def _sized_source(path: str, digest: str, info: imgs.ImageInfo, hw: tuple[int, int]) -> _SizedSource:
    """The source sized for ``hw`` and its picture hash, from one decode at reduced scale (cached by content and
    size: candidates sharing a source share it). Raises like :func:`_sized`'s callees."""
    assert _CTX is not None
    key = (digest, hw)
    if key not in _SIZED:
        if len(_SIZED) >= 4096:
            _SIZED.clear()
        data = _read(path)
        sized, decoded = imgs.size_image_decoded(data, hw, info, _CTX.jpeg_quality, _CTX.max_image_pixels,
                                                 _CTX.limits.factor)
        # the same decode as the sized copy, unless the original bytes were kept or the plan is small
        picture = lbl.source_picture(data, decoded, _CTX.max_image_pixels)
        blob = _CTX.spill.put(sized.bytes) if _CTX.spill is not None else ("", 0, 0)
        _SIZED[key] = _SizedSource(blob, replace(sized, bytes=b""), picture)
    return _SIZED[key]


def _header_of(record: EditRecord, path: str, role: str, paths: tuple[str, ...]) \
        -> tuple[str, imgs.ImageInfo] | Rejected:
    """Content hash and header of one source image of ``record``, or its rejection naming ``role``."""
    try:
        stat = os.stat(path)
        return _source_header(path, stat.st_size, stat.st_mtime_ns)
    except (FileRejected, OSError, imgs.ImageRejected) as exc:
        return _rejection(record.id, role, path, exc, paths)


def _rejection(record_id: str, role: str, path: str, exc: Exception, paths: tuple[str, ...]) -> Rejected:
    """The record's rejection for one of its images that could not be read or used, naming the image's ``role``."""
    if isinstance(exc, FileRejected):
        return Rejected(record_id, exc.reason, f"{role} {exc.detail}", paths)
    if isinstance(exc, imgs.ImageRejected):
        return Rejected(record_id, exc.reason, f"{role} {path}: {exc.detail}", paths)
    return Rejected(record_id, "unreadable_file", f"{role} {path}: {imgs.stable_message(exc)}", paths)


def _inspect(record: EditRecord) -> _Inspected | Rejected:
    """Group hash, headers and the size plan of one record, without decoding pixels."""
    assert _CTX is not None
    paths = (record.source_path, record.edited_path)
    n_sources = 1 + len(record.extra_sources)
    try:
        roles = _CTX.format.image_roles(n_sources)
    except ValueError as exc:  # prompts.TooManyImages: more images than a prompt holds
        return Rejected(record.id, getattr(exc, "reason", "too_many_images"), str(exc), paths)
    header = _header_of(record, record.source_path, roles[0], paths)
    if isinstance(header, Rejected):
        return header
    source_hash, src = header
    others: list[tuple[str, imgs.ImageInfo]] = []
    for role, path in zip(roles[1:], record.extra_sources):
        more = _header_of(record, path, role, paths)
        if isinstance(more, Rejected):
            return more
        others.append(more)
    try:
        with open_file(record.edited_path, _CTX.max_file_bytes) as handle:  # the header only
            edt = imgs.probe(handle, _CTX.max_image_pixels)
    except (FileRejected, OSError, imgs.ImageRejected) as exc:
        return _rejection(record.id, "edited", record.edited_path, exc, paths)
    edited_hash = ""
    if _CTX.pairwise:  # two candidates with equal bytes are never paired
        try:
            edited_hash = lbl.content_hash(_read(record.edited_path))
        except FileRejected as exc:
            return Rejected(record.id, exc.reason, f"edited {exc.detail}", paths)
    text = _text_tokens(record.instruction, n_sources)
    # every image of the prompt (pairwise: the candidate as A, and as B beside one of its size) within the budget
    sizes = [src.upright_hw, *(info.upright_hw for _, info in others), edt.upright_hw]
    try:
        planned = imgs.plan_images(sizes + [edt.upright_hw] * (len(roles) - len(sizes)),
                                   _CTX.max_prompt_length - text, _CTX.limits, _CTX.max_image_tokens)
    except imgs.ImageRejected as exc:
        detail = f"{exc.detail} (prompt text takes {text} of --max-prompt-length {_CTX.max_prompt_length} tokens)"
        return Rejected(record.id, exc.reason, detail, paths)
    sized = []
    for role, path, (digest, info), hw in zip(roles, record.source_paths, [(source_hash, src), *others], planned):
        one = _sized_source_of(record, path, role, digest, info, hw, paths)
        if isinstance(one, Rejected):
            return one
        sized.append(one)
    more = tuple(_Source(h, one, hw, info.upright_hw) for (h, info), one, hw in zip(others, sized[1:], planned[1:]))
    return _Inspected(source_hash, sized[0], text, planned[0], planned[len(sizes) - 1], src.upright_hw,
                      edt.upright_hw, more, edited_hash)


def _sized_source_of(record: EditRecord, path: str, role: str, digest: str, info: imgs.ImageInfo,
                     hw: tuple[int, int], paths: tuple[str, ...]) -> _SizedSource | Rejected:
    """:func:`_sized_source` for one source image of ``record``, or its rejection naming ``role``."""
    try:
        return _sized_source(path, digest, info, hw)
    except (FileRejected, OSError, imgs.ImageRejected) as exc:
        return _rejection(record.id, role, path, exc, paths)


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


def _sized_cached(cache: dict[tuple[str, tuple[int, int]], imgs.SizedImage | Rejected], digest: str, record_id: str,
                  which: str, path: str, hw: tuple[int, int], paths: tuple[Any, Any]) -> imgs.SizedImage | Rejected:
    """:func:`_sized`, once per (file content, size) within a task: a shared source is decoded once."""
    key = (digest, hw)
    if key not in cache:
        cache[key] = _sized(record_id, which, path, hw, paths)
    return cache[key]


def _spilled(cache: dict[Blob, imgs.SizedImage], source: _SizedSource) -> imgs.SizedImage:
    """A source sized at inspection, read back from the spill file once per task."""
    if source.blob not in cache:
        cache[source.blob] = replace(source.image, bytes=read_blob(source.blob))
    return cache[source.blob]


def _build_task(jobs: list[_Job]) -> list[tuple[dict[str, Any], dict[str, Any]] | Rejected]:
    """Rows (with per-row stats) or rejects for a few records; a source shared by them is sized once."""
    assert _CTX is not None
    cache: dict[Blob, imgs.SizedImage] = {}
    out: list[tuple[dict[str, Any], dict[str, Any]] | Rejected] = []
    for job in jobs:
        record, plan = job.record, job.plan
        paths = (record.source_path, record.edited_path)
        images = [_spilled(cache, plan.source), *(_spilled(cache, more.sized) for more in plan.more_sources)]
        edited = _sized(record.id, "edited", record.edited_path, plan.edited_hw, paths)
        if isinstance(edited, Rejected):
            out.append(edited)
            continue
        images.append(edited)
        prompt_tokens = plan.text_tokens + sum(image.tokens for image in images)
        row = {
            "data_source": _CTX.format.data_source,
            "prompt": _CTX.format.messages(record.instruction, _CTX.template, len(images) - 1),
            "images": [{"bytes": image.bytes} for image in images],
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
                "image_tokens": [image.tokens for image in images],
                "image_hw": [[image.height, image.width] for image in images],
            },
        }
        if record.extra_sources:
            row["extra_info"]["source_paths"] = list(record.source_paths)
        if record.scores is not None:  # dimension rows only: the raw score of each dimension
            row["extra_info"]["scores"] = record.scores
        out.append((row, _row_stats(plan.text_tokens, prompt_tokens, images)))
    return out


def _row_stats(text_tokens: int, prompt_tokens: int, images: list[imgs.SizedImage]) -> dict[str, Any]:
    """What the report keeps of a row: its tokens and, per image, tokens, original size and bytes."""
    return {
        "prompt_tokens": prompt_tokens,
        "text_tokens": text_tokens,
        "image_tokens": tuple(image.tokens for image in images),
        "orig_hw": tuple((image.original_height, image.original_width) for image in images),
        "bytes": sum(len(image.bytes) for image in images),
        "kept_original": sum(int(image.kept_original) for image in images),
    }


def _build_pair_task(pairs: list[PairJob]) -> list[tuple[dict[str, Any], dict[str, Any]] | Rejected | SkippedPair]:
    """Both orders of a few pairs of one group: source image(s), then A, then B, sized together per order; a
    candidate whose image fails is rejected once and its pairs are left out."""
    assert _CTX is not None
    cache: dict[tuple[str, tuple[int, int]], imgs.SizedImage | Rejected] = {}
    out: list[tuple[dict[str, Any], dict[str, Any]] | Rejected | SkippedPair] = []
    failed: set[str] = set()
    for pair in pairs:
        rows = []
        for first, second, label, swapped in ((pair.a, pair.b, pair.label, False),
                                              (pair.b, pair.a, MIRROR[pair.label], True)):
            row = _pair_row(pair, first, second, label, swapped, cache)
            if isinstance(row, (Rejected, SkippedPair)):
                rows = [row]
                break
            rows.append(row)
        if isinstance(rows[0], Rejected):
            failure = rows[0] if pair.origin == "scores" else Rejected(pair.pair_id, rows[0].reason, rows[0].detail,
                                                                       rows[0].paths)
            if failure.id not in failed:
                failed.add(failure.id)
                out.append(failure)
        else:
            out += rows
    return out


def _pair_row(pair: PairJob, first: _Job, second: _Job, label: str, swapped: bool,
              cache: dict[tuple[str, tuple[int, int]], imgs.SizedImage | Rejected]) \
        -> tuple[dict[str, Any], dict[str, Any]] | Rejected | SkippedPair:
    """One order of a pair as a row, or the candidate's rejection, or the pair skipped (too long)."""
    assert _CTX is not None
    shown = pair.a  # both orders show the first candidate's source image(s)
    record = shown.record
    n_sources = 1 + len(record.extra_sources)
    roles = _CTX.format.image_roles(n_sources)
    text = _text_tokens(record.instruction, n_sources)
    source_infos = [(record.source_path, shown.plan.source_hash, shown.plan.source_orig_hw)]
    source_infos += [(path, more.hash, more.orig_hw) for path, more in zip(record.extra_sources, shown.plan.more_sources)]
    sizes = [orig for _, _, orig in source_infos] + [first.plan.edited_orig_hw, second.plan.edited_orig_hw]
    try:
        planned = imgs.plan_images(sizes, _CTX.max_prompt_length - text, _CTX.limits, _CTX.max_image_tokens)
    except imgs.ImageRejected as exc:
        return SkippedPair(exc.reason, f"{first.record.id} vs {second.record.id}: {exc.detail}")
    images: list[imgs.SizedImage] = []
    for (path, digest, _), role, hw in zip(source_infos, roles, planned):
        image = _sized_cached(cache, digest, record.id, role, path, hw, (path, record.edited_path))
        if isinstance(image, Rejected):
            return image
        images.append(image)
    for job, role, hw in ((first, "A", planned[-2]), (second, "B", planned[-1])):
        candidate = job.record
        image = _sized_cached(cache, job.plan.edited_hash or candidate.edited_path, candidate.id, "edited",
                              candidate.edited_path, hw, (candidate.source_path, candidate.edited_path))
        if isinstance(image, Rejected):
            return image
        images.append(image)
    prompt_tokens = text + sum(image.tokens for image in images)
    a, b = first.record, second.record
    row = {
        "data_source": _CTX.format.data_source,
        "prompt": _CTX.format.messages(record.instruction, _CTX.template, n_sources),
        "images": [{"bytes": image.bytes} for image in images],
        "ability": prompts.ABILITY,
        "reward_model": {"style": "rule", "ground_truth": _CTX.format.encode_label(label)},
        "extra_info": {
            "split": first.split, "index": -1, "id": f"{pair.pair_id}:{'ba' if swapped else 'ab'}",
            "pair": pair.pair_id, "swapped": swapped, "origin": pair.origin, "instruction": record.instruction,
            "label": label, "group": shown.group,
            "a_id": a.id, "b_id": b.id, "a_score": a.score, "b_score": b.score, "a_label": first.label,
            "b_label": second.label, "source_paths": list(record.source_paths), "a_path": a.edited_path,
            "b_path": b.edited_path, "prompt_tokens": prompt_tokens,
            "image_tokens": [image.tokens for image in images],
            "image_hw": [[image.height, image.width] for image in images],
        },
    }
    return row, _row_stats(text, prompt_tokens, images)


class _NoBar:
    """The bar of a run with progress off (``-q``): tqdm is not even imported (≈ 30 ms of a short run's start)."""

    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", dynamic_ncols=True, leave=False)


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
    fmt = get_format(config.format)
    if isinstance(fmt, PairwiseFormat):
        check_pair_settings(config)
    fmt.load_template(config.template)  # fail fast on a bad template
    pairwise = isinstance(fmt, PairwiseFormat)
    edit_inputs, preference_inputs = split_inputs(config) if pairwise else (list(config.inputs), [])
    _make_context(config)  # ... and on a bad --processor, before reading anything or starting workers
    out = Path(config.out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)

    labeller = _dimension_labeller(config)
    items: list[EditRecord | Rejected] = []
    if edit_inputs:
        items = list(read_sources(edit_inputs, max_file_bytes=config.max_file_bytes, dimensions=labeller is not None))
    if labeller is not None:
        items = [_screened(item, labeller) for item in items]
    preferences = list(read_preferences(preference_inputs, max_file_bytes=config.max_file_bytes))
    records = [item for item in items if isinstance(item, EditRecord)] + preference_candidates(preferences)
    found = len(items) + len(preferences)
    if not found:
        raise ValueError(
            f"no samples found in {', '.join(config.inputs)}: expected <stem>_input.*, <stem>_output.*, "
            "<stem>_meta.json and <stem>_score.json files, or a .jsonl/.csv manifest"
        )
    rejects: JsonlSink | None = None
    sinks: dict[str, ParquetSink] = {}
    mapper: OrderedPool | None = None
    spill_dir: str | None = None
    ok = False
    stats = Stats()
    try:  # everything that creates a temporary file or a process is inside: an interrupt anywhere cleans up
        rejects = JsonlSink(out / "rejects.jsonl")
        # The main process needs the context too (workers=1, and the report's limits); building it first means a
        # bad --processor or template fails here, once, before any worker starts.
        # sized sources wait here between inspect and build: beside the outputs (the disk that will hold them
        # anyway, not a RAM-backed /tmp), removed when the run ends (and by the next run after a SIGKILL)
        remove_stale(out)
        spill_dir = make_folder(out)
        _init_worker(config, worker=False, spill_dir=spill_dir)
        _preload_hash_libraries()  # imported once here, inherited by the forked workers
        mapper = OrderedPool(config.workers, _init_worker, (config, True, spill_dir))
        for item in items + preferences:
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
        candidate_rejects: dict[str, Rejected] = {}  # preference candidates: their records are rejected instead
        for record, result in zip(records, inspected):
            if isinstance(result, Rejected) and record.score is None and pairwise:
                candidate_rejects[record.id] = result
            elif isinstance(result, Rejected):
                rejects.add(result.to_dict())
                stats.reject(result.reason)
            else:
                good.append((record, result))
        del inspected
        keys = lbl.group_keys([r.group for r, _ in good], [p.pictures for _, p in good])
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
        elif pairwise and all(r.score is None for r, _, _ in valid):  # preference records only: no scores
            median, mad, estimated = None, None, False
        else:
            train_scores = [r.score for (r, _, _), s in zip(valid, splits) if s == "train" and r.score is not None]
            median, mad = lbl.estimate_median_mad(train_scores)
            estimated = True
        if labeller is not None:
            labels: list[Any] = [labeller.label(r.scores) for r, _, _ in valid]  # type: ignore[arg-type]
            row_labels = [labeller.overall(label) for label in labels]
        else:  # a preference candidate may carry no score: no label
            labels = [None if r.score is None else lbl.label_of(float(r.score), median, mad)  # type: ignore[arg-type]
                      for r, _, _ in valid]
            row_labels = labels
        balance_on = [-1 if label is None else label for label in row_labels]
        chosen = set(lbl.select(balance_on, config.sample_size, config.balanced, config.seed))
        how = "--balanced" if config.balanced else "--sample-size"
        jobs: dict[str, list[_Job]] = {"train": [], "test": []}
        for i, ((record, plan, group), split, label, row_label) in enumerate(zip(valid, splits, labels, row_labels)):
            if i in chosen:
                jobs[split].append(_Job(record, plan, split, label, group, row_label))
            elif pairwise and record.score is None:  # a preference candidate: its records are rejected instead
                candidate_rejects[record.id] = Rejected(record.id, "not_selected", f"a candidate was left out by {how}")
            else:
                detail = f"left out by {how} (seed {config.seed})"
                rejects.add(Rejected(record.id, "not_selected", detail, (record.source_path, record.edited_path)).to_dict())
                stats.reject("not_selected")
        del valid

        # 3. build rows (parallel), stream them into the parquet files in a stable order
        tasks: list[list[Any]] = []
        schema = schema_for(pairwise, multi_source=any(job.record.extra_sources for js in jobs.values() for job in js))
        schema = _schema(labeller, schema)
        for split in ("train", "test"):
            sinks[split] = ParquetSink(out / f"{split}.parquet", schema=schema)
            if not pairwise:
                tasks += list(_group_tasks(_group_order(jobs[split])))
        pair_plan = None
        if pairwise:
            pair_plan, pair_rejects = plan_pair_rows(config, jobs, preferences, candidate_rejects)
            tasks = pair_plan.tasks
            for item in pair_rejects:
                rejects.add(item.to_dict())
                stats.reject(item.reason)
        total = sum(len(t) for t in tasks)
        used: dict[str, set[str]] = {"scores": set(), "preference": set()}
        rejected_ids: set[str] = set()
        with _bar(total, "build", config.progress) as bar:
            for results in mapper.map(_build_pair_task if pairwise else _build_task, tasks,
                                      in_flight=2 * mapper.workers + 2):
                for result in results:
                    if isinstance(result, SkippedPair):
                        pair_plan.skipped[result.reason] += 1  # type: ignore[union-attr]
                        continue
                    if isinstance(result, Rejected):
                        rejects.add(result.to_dict())
                        stats.reject(result.reason)
                        rejected_ids.add(result.id)
                        continue
                    row, row_stats = result
                    extra = row["extra_info"]
                    split = extra["split"]
                    extra["index"] = sinks[split].rows
                    sinks[split].add(row)
                    if pairwise:
                        stats.keep_pair(split, extra["label"], row_stats)
                        used[extra["origin"]].update((extra["a_id"], extra["b_id"]) if extra["origin"] == "scores"
                                                     else (extra["pair"],))
                    else:
                        stats.keep(split, extra["label"], extra["score"], row_stats)
                        if labeller is not None:
                            labeller.count(split, _CTX.format.parse_label(row["reward_model"]["ground_truth"]))
                bar.update(len(results))
        if pairwise:
            for item in account_pairs(pair_plan, used, rejected_ids, stats):  # type: ignore[arg-type]
                rejects.add(item.to_dict())
                stats.reject(item.reason)
        del tasks, jobs

        paths = {split: sink.commit() for split, sink in sinks.items()}
        rejects_path = rejects.commit()
        limits = _CTX.limits if _CTX is not None else _limits(config)
        counter_name = _CTX.counter.name if _CTX is not None else "estimate"
        report = build_report(
            config=recorded_settings(config),
            found=found,
            stats=stats,
            median=median,
            mad=mad,
            estimated=estimated,
            limits=asdict(limits),
            counter=counter_name,
            groups={"total": len(sizes), "train": len(train_groups), "source_files": sources,
                    "picture_groups": sum(1 for g in sizes if g.startswith("image:"))},
            outputs={k: absolute_path(v) for k, v in paths.items()} | {"rejects": absolute_path(rejects_path)},
            seconds=time.perf_counter() - started,
            pairs=None if pair_plan is None else pair_counts(stats.pair_rows, pair_plan, config.tie_margin,
                                                              config.max_pairs_per_source, config.ties),
            dimensions=labeller.report() if labeller is not None else None,
        )
        report_path = atomic_write_text(out / "prepare_report.json", _json(report))
        ok = True
        return PrepareResult(out, paths["train"], paths["test"], rejects_path, report_path, report)
    finally:
        if mapper is not None:
            mapper.close(ok)
        if _CTX is not None and _CTX.spill is not None:
            _CTX.spill.close()
        if spill_dir is not None:
            shutil.rmtree(spill_dir, ignore_errors=True)
        if not ok:
            for sink in sinks.values():
                sink.discard()
            if rejects is not None:
                rejects.discard()


def recorded_settings(config: PrepareConfig) -> dict[str, Any]:
    """The settings as ``prepare_report.json`` records them: inputs, output folder, processor and a template file
    absolute, so that ``eval`` / ``score`` / ``bench --prepare-report`` resolve them the same from any folder."""
    settings = asdict(config)
    settings["inputs"] = [absolute_path(p) for p in config.inputs]
    settings["out_dir"] = absolute_path(config.out_dir)
    if config.processor:
        settings["processor"] = absolute_path(config.processor)
    if config.template not in prompts.BUILTIN_TEMPLATES:
        settings["template"] = absolute_path(config.template)
    return settings


def check_pair_settings(config: PrepareConfig) -> None:
    """``ValueError`` for ``--pairs`` settings that cannot work."""
    if config.balanced:
        raise ValueError("--balanced keeps as many samples of each score label; with --pairs every pair is written in "
                         "both orders (A and B balanced): leave --balanced out")
    if isinstance(config.tie_margin, bool) or not isinstance(config.tie_margin, int) or not 0 <= config.tie_margin <= 9:
        raise ValueError(f"--tie-margin must be an integer 0..9 (labels are 0..9), got {config.tie_margin!r}")
    if isinstance(config.max_pairs_per_source, bool) or not isinstance(config.max_pairs_per_source, int) \
            or config.max_pairs_per_source < 1:
        raise ValueError(f"--max-pairs-per-source must be a positive integer, got {config.max_pairs_per_source!r}")


def split_inputs(config: PrepareConfig) -> tuple[list[str], list[str]]:
    """``--pairs`` inputs: (folders and manifests of scored edits, files of preference records)."""
    edits, preferences = [], []
    for path in config.inputs:
        (preferences if is_preference_file(Path(path).expanduser()) else edits).append(path)
    return edits, preferences


def preference_candidates(preferences: list[PreferencePair | Rejected]) -> list[EditRecord]:
    """The candidates of the preference records, once each (a candidate of several records is one record)."""
    seen: dict[str, EditRecord] = {}
    for pair in preferences:
        if isinstance(pair, PreferencePair):
            seen.setdefault(pair.a.id, pair.a)
            seen.setdefault(pair.b.id, pair.b)
    return list(seen.values())


def plan_pair_rows(config: PrepareConfig, jobs: dict[str, list[_Job]], preferences: list[PreferencePair | Rejected],
                   candidate_rejects: dict[str, Rejected]) -> tuple[Any, list[Rejected]]:
    """The pairs to build (:func:`editjudge.data.pairs.plan_pairs`) and the rejects known before the build: a
    preference record whose candidate could not be used (its reason), candidates in no pair."""
    job_of = {job.record.id: job for split_jobs in jobs.values() for job in split_jobs}
    explicit, rejected = [], []
    for pair in preferences:
        if not isinstance(pair, PreferencePair):
            continue
        a, b = job_of.get(pair.a.id), job_of.get(pair.b.id)
        if a is None or b is None:
            cause = candidate_rejects.get((pair.a if a is None else pair.b).id)
            reason, detail = (cause.reason, cause.detail) if cause else ("not_selected", "a candidate was left out")
            rejected.append(Rejected(pair.id, reason, f"{pair.origin}: {detail}",
                                     (pair.a.source_path, pair.a.edited_path, pair.b.edited_path)))
            continue
        explicit.append((a, b, pair.preferred, pair.id))
    plan = plan_pairs(jobs, explicit, tie_margin=config.tie_margin, max_pairs=config.max_pairs_per_source,
                      seed=config.seed, ties=config.ties)
    return plan, rejected + plan.unpaired


def _preload_hash_libraries() -> None:
    """Import what the picture hash uses (imagehash's pHash imports scipy.fftpack on its first call) before the
    workers fork, so each of them does not pay for the import again."""
    try:
        import imagehash  # noqa: F401
        import scipy.fftpack  # noqa: F401
    except ImportError:  # the hash reports it where it is used
        pass


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


def _schema(labeller: Any, base: Any) -> Any:
    """The rows' schema: ``base`` (:func:`~editjudge.data.writer.schema_for`), with a dimension set's raw scores."""
    if labeller is None:
        return base
    from editjudge.data.dimension_scores import parquet_schema

    return parquet_schema(labeller.names, base)


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
    group = parser.add_argument_group(
        "pairs: rows for a pairwise judge (source + candidates A and B, answer A, B or tie; docs/prepare.md)")
    group.add_argument("--pairs", action="store_true",
                       help="write pair rows instead of one row per edit: candidates of one source (and instruction) "
                            "paired inside each split, both orders; inputs may also be preference records "
                            "(.jsonl/.csv with source, edited_a, edited_b, instruction, preferred = a|b|tie, or "
                            "TIGER's EditReward train.json: prompt, path_src, path1, path2, tie_case)")
    group.add_argument("--tie-margin", type=int, default=DEFAULT_TIE_MARGIN,
                       help="a pair is a tie when the candidates' 0-9 labels differ by at most this "
                            f"(default {DEFAULT_TIE_MARGIN}: equal labels, as TIGER's tie_case)")
    group.add_argument("--no-ties", dest="ties", action="store_false",
                       help="leave ties out: only pairs with a better candidate (tie preference records and "
                            "candidates whose every pair is a tie become rejects named tie_left_out)")
    group.add_argument("--max-pairs-per-source", type=int, default=DEFAULT_MAX_PAIRS,
                       help=f"at most this many pairs per source and instruction, a seeded choice (default "
                            f"{DEFAULT_MAX_PAIRS}; each is written in both orders)")
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
    """The judgment format: ``--pairs`` (pairwise), the one ``--dimensions`` names (its spec), else pointwise."""
    dimensions, pairs = getattr(args, "dimensions", None), getattr(args, "pairs", False)
    if dimensions is not None and pairs:
        raise ValueError("--pairs and --dimensions make two kinds of judge: prepare one kind per output folder")
    if pairs:
        return "pairwise"
    if dimensions is None:
        return "pointwise"
    return get_format(f"dimensions:{dimensions}").spec


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
        tie_margin=args.tie_margin,
        ties=getattr(args, "ties", True),
        max_pairs_per_source=args.max_pairs_per_source,
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
    except SpillError as exc:  # a full disk: the run's problem, not one sample's
        print(f"editjudge prepare: error: {exc}; the previous outputs (if any) are left as they were", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("editjudge prepare: interrupted; the previous outputs (if any) are left as they were", file=sys.stderr)
        return 130
    print(format_summary(result.report))
    return 0 if result.report["counts"]["kept"] else 1
