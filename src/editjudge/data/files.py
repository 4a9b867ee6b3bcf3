"""Read input files safely: regular files only, under a size cap, never blocking. Imports no torch.

A FIFO named ``x_output.jpg`` would block ``open`` forever, and a source symlinked to ``/dev/zero`` would be read
until memory runs out. :func:`read_file` opens without blocking (``O_NONBLOCK``), checks on the open descriptor that
it is a regular file within ``max_bytes``, and reads at most that much; :func:`file_problem` is the same check
without reading (for listing). Problems are :class:`FileRejected` with a stable reason code
(``not_a_regular_file``, ``file_too_large``, ``unreadable_file``, ``missing_file``) and a detail that names the file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["DEFAULT_MAX_FILE_BYTES", "MAX_LINE_BYTES", "FileRejected", "read_file", "open_file", "lines_of", "hash_file",
           "file_problem", "safe_path"]

DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024  # --max-file-bytes: far above any real image or sidecar
MAX_LINE_BYTES = 64 * 1024 * 1024  # one line of a JSONL file that is read line by line (predictions, dumps)


class FileRejected(ValueError):
    """An input file that cannot be used; ``reason`` is a stable code, ``detail`` names the file."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _describe(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _check(path: str, st: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise FileRejected("not_a_regular_file", f"{path} is {_describe(st.st_mode)}, not a regular file")
    if st.st_size > max_bytes:
        raise FileRejected(
            "file_too_large", f"{path} holds {st.st_size} bytes, over the limit of {max_bytes} (--max-file-bytes)"
        )


def _oserror(path: str, exc: OSError) -> FileRejected:
    if isinstance(exc, FileNotFoundError):
        return FileRejected("missing_file", f"{path}: no such file")
    return FileRejected("unreadable_file", f"{path}: {exc.strerror or type(exc).__name__}")


def file_problem(path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> FileRejected | None:
    """Why ``path`` cannot be read as an input file (following symlinks), or None when it can."""
    name = os.fspath(path)
    try:
        _check(name, os.stat(name), max_bytes)
    except FileRejected as exc:
        return exc
    except (OSError, ValueError) as exc:  # ValueError: an embedded NUL
        return _oserror(name, exc) if isinstance(exc, OSError) else FileRejected("unreadable_file", f"{name!r}: {exc}")
    return None


def _open_checked(name: str, max_bytes: int) -> int:
    """A descriptor of ``name`` opened without blocking (a FIFO never waits for a writer), once it is known to be a
    regular file within ``max_bytes``; :class:`FileRejected` otherwise (nothing is left open)."""
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _oserror(name, exc) from None
    except ValueError as exc:
        raise FileRejected("unreadable_file", f"{name!r}: {exc}") from None
    try:
        _check(name, os.fstat(fd), max_bytes)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file(path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; :class:`FileRejected` otherwise. Never blocks."""
    name = os.fspath(path)
    fd = _open_checked(name, max_bytes)
    try:
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise _oserror(name, exc) from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # grew while being read
        raise FileRejected("file_too_large", f"{name} holds more than {max_bytes} bytes (--max-file-bytes)")
    return data


def open_file(path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_FILE_BYTES):  # noqa: ANN201
    """A binary file object for a regular file within ``max_bytes`` (for header-only reads); see :func:`read_file`."""
    return os.fdopen(_open_checked(os.fspath(path), max_bytes), "rb")


def lines_of(handle: BinaryIO, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per line of a binary file; ``None`` for a line over ``max_line_bytes``, whose rest is
    skipped in bounded reads: a file of one endless line never fills memory."""
    number = 0
    while True:
        line = handle.readline(max_line_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) > max_line_bytes and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = handle.readline(1 << 20)
            yield number, None
        else:
            yield number, line


def hash_file(path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_FILE_BYTES, chunk: int = 1 << 20) -> str:
    """The blake2b-128 hex digest of a regular file within ``max_bytes`` (equal to
    :func:`editjudge.data.labels.content_hash` of its bytes), read ``chunk`` bytes at a time: memory stays bounded
    whatever the file's size; :class:`FileRejected` as :func:`read_file`."""
    import hashlib

    name = os.fspath(path)
    digest, total = hashlib.blake2b(digest_size=16), 0
    fd = _open_checked(name, max_bytes)
    try:
        while block := os.read(fd, chunk):
            total += len(block)
            if total > max_bytes:  # grew while being read
                raise FileRejected("file_too_large", f"{name} holds more than {max_bytes} bytes (--max-file-bytes)")
            digest.update(block)
    except OSError as exc:
        raise _oserror(name, exc) from None
    finally:
        os.close(fd)
    return digest.hexdigest()


def safe_path(value: str, base: Path | None = None) -> Path:
    """``value`` as a path (``~`` expanded, relative to ``base``); ``FileRejected`` for one that cannot be a path
    (an unknown ``~user``, a NUL byte, a name longer than the system allows)."""
    if "\x00" in value:
        raise FileRejected("bad_path", f"{value!r}: a path cannot hold a NUL byte")
    try:
        path = Path(value).expanduser()
    except RuntimeError as exc:  # ~nosuchuser
        raise FileRejected("bad_path", f"{value!r}: {exc}") from None
    if base is not None and not path.is_absolute():
        path = base / path
    text = os.fspath(path)
    limit = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096
    if len(os.fsencode(text)) >= limit or any(len(os.fsencode(part)) > 255 for part in path.parts):
        raise FileRejected("bad_path", f"{text[:80]}…: a path of {len(text)} characters is longer than the system allows")
    return path
