"""Blobs that one stage of ``prepare`` makes and a later stage reads, kept on disk instead of in memory.

``prepare`` sizes each unique source once, while it inspects the sources (the same decode gives the picture hash),
but writes the source into rows only after the split; in between, the sized bytes wait in a spill file (one per
process, in a folder the run removes when it ends), so memory does not grow with the number of sources.
:func:`make_folder` creates that folder (named after the process, so :func:`remove_stale` can tell the folders of
killed runs from live ones); :meth:`Spill.put` appends a blob and returns where it is (``(path, offset, length)``,
small enough to send between processes); :func:`read_blob` reads it back from any process. Imports nothing heavy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["Blob", "Spill", "SpillError", "make_folder", "read_blob", "remove_stale"]

Blob = tuple[str, int, int]  # (path, offset, length)
PREFIX = ".prepare-spill-"


def make_folder(parent: str | os.PathLike[str]) -> str:
    """A new spill folder in ``parent`` (``.prepare-spill-<pid>-<random>``)."""
    return tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent)


def remove_stale(parent: str | os.PathLike[str]) -> list[str]:
    """Remove the spill folders in ``parent`` left by runs whose process is gone (a SIGKILL cannot clean up after
    itself); returns their names. A folder whose process still runs (or cannot be checked) is left alone."""
    removed = []
    for folder in sorted(Path(parent).glob(f"{PREFIX}*")):
        pid = folder.name[len(PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or not folder.is_dir() or folder.is_symlink():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
        except (PermissionError, OverflowError):  # another user's live process / not a pid
            continue
    return removed


class SpillError(RuntimeError):
    """The spill file cannot be written (a full disk): the run's problem, not one sample's."""


class Spill:
    """Appends blobs to ``<folder>/<pid>.bin`` (opened on the first blob, so each worker process has its own file)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._fd: int | None = None
        self._path = ""
        self._offset = 0
        self._pid = -1

    def put(self, data: bytes) -> Blob:
        """Append ``data``; raises :class:`SpillError` when it cannot be written."""
        try:
            if self._fd is None or self._pid != os.getpid():  # a forked child never writes into its parent's file
                self._path = str(self.folder / f"{os.getpid()}.bin")
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
                self._fd = os.open(self._path, flags, 0o600)
                self._offset = os.fstat(self._fd).st_size
                self._pid = os.getpid()
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise SpillError(f"cannot write the spill file {self._path or self.folder}: {exc.strerror or exc}") from None
        blob = (self._path, self._offset, len(data))
        self._offset += len(data)
        return blob

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


def read_blob(blob: Blob) -> bytes:
    """The bytes of a blob written by :meth:`Spill.put` (in this process or another)."""
    path, offset, length = blob
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        chunks, done = [], 0
        while done < length:
            chunk = os.pread(fd, length - done, offset + done)
            if not chunk:
                raise OSError(f"{path}: the spilled blob at {offset} is truncated")
            chunks.append(chunk)
            done += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
