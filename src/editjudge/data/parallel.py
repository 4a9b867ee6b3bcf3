"""An ordered map over a process pool (or in the calling process with one worker), bounded and interruptible.

Used by ``prepare``: results come back in task order (the outputs' bytes do not depend on ``--workers``), at most
``in_flight`` tasks are queued so results never pile up in memory, and a Ctrl-C ends the run at once.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class _Gate:
    """Lets at most ``limit`` tasks be in flight, so results never pile up in memory; stoppable."""

    def __init__(self, limit: int) -> None:
        self._sem = threading.Semaphore(limit)
        self._stop = threading.Event()

    def feed(self, items: Iterable[T]) -> Iterator[T]:
        for item in items:
            while not self._sem.acquire(timeout=0.1):
                if self._stop.is_set():
                    return
            yield item

    def done_one(self) -> None:
        self._sem.release()

    def stop(self) -> None:
        self._stop.set()


@contextmanager
def sigint_held() -> Iterator[None]:
    """Block SIGINT in this thread for the duration (a no-op where the platform has no signal masks)."""
    import signal

    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class OrderedPool:
    """Ordered map over ``workers`` processes, each started with ``initializer(*initargs)``; with one worker, the
    tasks run here (the caller has set up this process itself)."""

    def __init__(self, workers: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
        self.workers = max(1, int(workers))
        self.pool = None
        if self.workers > 1:
            from multiprocessing import get_context

            # Forking a process whose torch or OpenCV already started threads can deadlock the child (OpenCV's
            # pool hangs the child's first resize); when a caller has imported either (the demo, a notebook, a
            # run of prepare in this process), start workers from a clean forkserver instead.
            context = get_context("forkserver" if {"torch", "cv2"} & set(sys.modules) else None)
            # A Ctrl-C that lands inside os.fork's at-fork callbacks is swallowed by CPython ("Exception ignored
            # in _releaseLock"), and the run would go on: hold SIGINT back while forking; it arrives right after.
            with sigint_held():
                self.pool = context.Pool(self.workers, initializer=initializer, initargs=initargs)

    def map(self, fn: Any, tasks: Iterable[Any], in_flight: int) -> Iterator[Any]:
        if self.pool is None:
            yield from map(fn, tasks)
            return
        gate = _Gate(in_flight)
        try:
            for result in self.pool.imap(fn, gate.feed(tasks), chunksize=1):
                gate.done_one()
                yield result
        finally:
            gate.stop()

    def close(self, ok: bool) -> None:
        if self.pool is not None:
            if ok:
                self.pool.close()
            else:
                self.pool.terminate()
            self.pool.join()


def chunks(items: list[T], size: int) -> Iterator[list[T]]:
    """``items`` in consecutive lists of ``size`` (the last may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = ["OrderedPool", "chunks", "sigint_held"]
