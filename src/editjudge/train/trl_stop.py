"""SIGTERM during a TRL run: finish the step, write a resumable checkpoint and the adapter, exit 143.

Job runners stop jobs with SIGTERM (``timeout``, SLURM at the end of a job's time or on ``scancel``, Kubernetes on
eviction) and kill them a grace period later. :func:`sigterm_checkpoints` wraps the engine's ``train``: while it runs,
the first SIGTERM asks the trainer to stop after the step in progress; TRL's trainer then writes its own checkpoint
(``<output-dir>/checkpoints/checkpoint-N``: adapter, optimizer, scheduler, RNG and trainer state), which
``--resume`` continues exactly as it continues a ``trainer.save_freq`` checkpoint — the TRL counterpart of verl's
``trainer.resume_mode=auto``. A SIGTERM during the warm start ends the run after that step with the adapter only
(the warm start is short and reruns on ``--resume``). A second SIGTERM, or Ctrl-C, stops at once and saves the
adapter of the last finished step, as Ctrl-C always did.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
EXIT_CODE = 128 + signal.SIGTERM  # 143, what a shell reports for a process ended by SIGTERM


class SigtermStop:
    """The SIGTERM handler of one run and the trainer callbacks that act on it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.step: int | None = None  # the step after which the run stopped
        self._previous: Any = None
        self._installed = False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def install(self) -> SigtermStop:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def uninstall(self) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        if self.requested:
            raise KeyboardInterrupt  # the second one: stop now, as Ctrl-C does
        self.signum = signum
        print("\nSIGTERM: finishing the current step, then saving a checkpoint and the adapter (send SIGTERM again "
              "to stop at once, saving the adapter only)", file=sys.stderr, flush=True)

    def callback(self, save: bool) -> Any:
        """A TrainerCallback that ends training after the step in progress once SIGTERM came (``save``: with a
        checkpoint written by the trainer itself)."""
        from transformers import TrainerCallback

        stop = self

        class StopOnSigterm(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
                if stop.requested:
                    stop.step = state.global_step
                    control.should_training_stop = True
                    control.should_save = control.should_save or save
                return control

        return StopOnSigterm()


_ACTIVE: list[SigtermStop] = []


def active() -> SigtermStop:
    """The handler of the run in progress (a fresh, uninstalled one outside :func:`sigterm_checkpoints`)."""
    return _ACTIVE[-1] if _ACTIVE else SigtermStop()


def sigterm_checkpoints(train: F) -> F:
    """Run ``train`` with SIGTERM turned into "finish the step, checkpoint, stop"; the previous handler is restored."""

    @functools.wraps(train)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        stop = SigtermStop().install()
        _ACTIVE.append(stop)
        try:
            return train(*args, **kwargs)
        finally:
            _ACTIVE.pop()
            stop.uninstall()

    return wrapped  # type: ignore[return-value]


__all__ = ["EXIT_CODE", "SigtermStop", "active", "sigterm_checkpoints"]
