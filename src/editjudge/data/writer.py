"""Stream verl rows into parquet files atomically, with fixed settings (same rows -> same bytes). No torch.

Rows follow the seed's schema (contract 3): ``data_source``, ``prompt`` (list of {role, content}), ``images``
(list of {bytes}), ``ability``, ``reward_model`` {style, ground_truth}, ``extra_info`` (see :data:`SCHEMA`).
Rows are buffered into row groups of ``row_group_rows`` and written to a hidden temporary file next to the target;
:meth:`ParquetSink.commit` moves it into place with ``os.replace``. A run killed half-way leaves the previous file
(or nothing), never a half-written parquet.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from editjudge.data.arrow_rows import rows_table

__all__ = ["OutputExists", "check_output", "SCHEMA", "MULTI_SOURCE_SCHEMA", "PAIR_SCHEMA", "schema_for", "AtomicTextFile", "ParquetSink", "JsonlSink", "atomic_write_bytes", "atomic_write_text"]

SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("images", pa.list_(pa.struct([("bytes", pa.binary())]))),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        (
            "extra_info",
            pa.struct(
                [
                    ("split", pa.string()),
                    ("index", pa.int64()),
                    ("id", pa.string()),
                    ("instruction", pa.string()),
                    ("score", pa.float64()),
                    ("label", pa.int64()),
                    ("group", pa.string()),
                    ("source_path", pa.string()),
                    ("edited_path", pa.string()),
                    ("prompt_tokens", pa.int64()),
                    ("image_tokens", pa.list_(pa.int64())),
                    ("image_hw", pa.list_(pa.list_(pa.int64()))),
                ]
            ),
        ),
    ]
)

def _with_extra_info(fields: list[tuple[str, pa.DataType]]) -> pa.Schema:
    """:data:`SCHEMA` with another ``extra_info`` struct (the other columns as they are)."""
    return pa.schema([pa.field("extra_info", pa.struct(fields)) if f.name == "extra_info" else f for f in SCHEMA])


#: Rows of an edit of several source images: :data:`SCHEMA` plus ``extra_info.source_paths`` (all of them, in order).
MULTI_SOURCE_SCHEMA = _with_extra_info([*((f.name, f.type) for f in SCHEMA.field("extra_info").type),
                                        ("source_paths", pa.list_(pa.string()))])
#: Pair rows (``prepare --pairs``): the source image(s), candidate A, candidate B; the label "A" / "B" / "tie".
PAIR_SCHEMA = _with_extra_info([
    ("split", pa.string()), ("index", pa.int64()), ("id", pa.string()), ("pair", pa.string()),
    ("swapped", pa.bool_()), ("origin", pa.string()), ("instruction", pa.string()), ("label", pa.string()),
    ("group", pa.string()), ("a_id", pa.string()), ("b_id", pa.string()), ("a_score", pa.float64()),
    ("b_score", pa.float64()), ("a_label", pa.int64()), ("b_label", pa.int64()),
    ("source_paths", pa.list_(pa.string())), ("a_path", pa.string()), ("b_path", pa.string()),
    ("prompt_tokens", pa.int64()), ("image_tokens", pa.list_(pa.int64())),
    ("image_hw", pa.list_(pa.list_(pa.int64()))),
])


def schema_for(pairs: bool = False, multi_source: bool = False) -> pa.Schema:
    """The row schema of a prepare run: pair rows, rows of multi-source edits, or the seed's (:data:`SCHEMA`)."""
    return PAIR_SCHEMA if pairs else MULTI_SOURCE_SCHEMA if multi_source else SCHEMA


class OutputExists(ValueError):
    """An output folder/file that already holds data and may not be replaced without ``--force``/``--resume``."""


def check_output(path: str | Path, *, force: bool = False, resume: bool = False, flag: str = "--out",
                 can_resume: bool = False) -> Path:
    """The one rule for verbs that write outputs: an existing non-empty folder, or an existing non-empty file, is
    refused (:class:`OutputExists`, the CLI exits 2) unless ``force`` (or ``resume`` where the verb resumes).
    Returns ``path``. Nothing is created or deleted here."""
    target = Path(path)
    if force or resume:
        return target
    try:
        if target.is_dir():
            occupied = any(True for _ in target.iterdir())
        else:
            occupied = target.exists() and (not target.is_file() or target.stat().st_size > 0)
    except OSError as exc:
        raise OutputExists(f"{flag} {target}: cannot be inspected ({exc.strerror})") from None
    if occupied:
        what = "folder already holds files" if target.is_dir() else "file already exists"
        fix = f"pass --force to replace {'them' if target.is_dir() else 'it'}" + (
            ", or --resume to continue the run" if can_resume else ""
        )
        raise OutputExists(f"{flag} {target}: the {what}; choose another {flag}, or {fix}")
    return target


# Fixed writer settings: part of the byte-identical-output promise.
_WRITER_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": ["data_source", "ability", "reward_model.style", "extra_info.split"],
    "write_statistics": False,
    "data_page_version": "2.0",
}


class _CommitOnSuccess:
    """``with sink:`` commits when the block ends normally and discards on an exception (or interrupt)."""

    def commit(self) -> Path:  # pragma: no cover - defined by each sink
        raise NotImplementedError

    def discard(self) -> None:  # pragma: no cover - defined by each sink
        raise NotImplementedError

    def __enter__(self):  # noqa: ANN204 - the sink itself
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


class ParquetSink(_CommitOnSuccess):
    """A parquet file being written: ``add(row)``, then ``commit()`` (atomic) or ``discard()``; or ``with`` it."""

    def __init__(self, path: str | Path, row_group_rows: int = 64, schema: pa.Schema = SCHEMA) -> None:
        self.path = Path(path)
        self.schema = schema
        self.row_group_rows = row_group_rows
        self.rows = 0
        self._buffer: list[dict[str, Any]] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(str(self._tmp), schema, **_WRITER_OPTIONS)

    def add(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        self.rows += 1
        if len(self._buffer) >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if self._buffer and self._writer is not None:
            self._writer.write_table(rows_table(self._buffer, self.schema))
            self._buffer.clear()

    def commit(self) -> Path:
        """Finish the file and move it into place atomically; returns the final path."""
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        _public(self._tmp)
        os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Drop the temporary file (on error or interrupt); the target is left untouched."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:
                pass
            self._writer = None
        self._buffer.clear()
        self._tmp.unlink(missing_ok=True)


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _public(path: Path) -> None:
    """mkstemp creates 0600 files; give the final file the usual permissions."""
    os.chmod(path, _umask_mode())


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``: readers see the old or the whole new."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        _public(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: see :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


class AtomicTextFile(_CommitOnSuccess):
    """A text file written through a hidden temporary file next to ``path``.

    ``commit()`` gives it the usual permissions and moves it into place with ``os.replace``; ``discard()`` (or leaving
    a ``with`` block through an exception) drops it and leaves the target untouched.
    """

    def __init__(self, path: str | Path, newline: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._tmp = Path(tmp)
        self._handle = os.fdopen(fd, "w", encoding="utf-8", newline=newline)

    def commit(self) -> Path:
        self._handle.close()
        _public(self._tmp)
        os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        self._tmp.unlink(missing_ok=True)


class JsonlSink(AtomicTextFile):
    """A JSON-lines file (sorted keys, one object a line) written atomically."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.rows = 0

    def add(self, obj: dict[str, Any]) -> None:
        self._handle.write(json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n")
        self.rows += 1
