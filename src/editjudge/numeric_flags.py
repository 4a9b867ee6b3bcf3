"""One rule for the numeric flags of every verb: a number that makes no sense is a usage error (exit 2).

:func:`editjudge.cli.main` calls :func:`check_numeric_flags` on the verb's parser and its parsed arguments before the
verb runs, so every verb gets the same rule without a check of its own:

* every flag parsed with ``type=int`` or ``type=float`` (or a subclass) must be a finite number — ``nan``, ``inf``
  and ``1e999`` are refused;
* and lie within its :class:`Bound`: the one :data:`BOUNDS` lists under the flag's option string (e.g.
  ``"--workers"``), or, for a flag not listed, :data:`DEFAULT_BOUND` (``>= 0``: no negative counts, sizes,
  timeouts, waits, CPUs or prices).

Adding a numeric flag to any verb: declare it with ``type=int`` or ``type=float`` as usual. When 0 is not a sensible
least value, or there is a most, add one line to :data:`BOUNDS` (``"--my-flag": Bound(1)``, ``Bound(0, 1)``,
``Bound(0, low_open=True)`` for "above 0"); a flag that may be negative gets ``Bound(None)``. A flag that means
different things in two verbs can be bounded per verb with the key ``"VERB --flag"`` (it wins over ``"--flag"``).
``tests/test_faults_cli.py`` walks every verb's parser and feeds each numeric flag nan, inf and a value outside its
bound, so a new flag is covered the day it is added. Imports nothing heavy.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Bound", "BOUNDS", "DEFAULT_BOUND", "bound_of", "numeric_actions", "value_problem", "check_numeric_flags"]


@dataclass(frozen=True)
class Bound:
    """``low`` .. ``high`` (None: unbounded on that side); ``low_open`` / ``high_open`` exclude the end itself."""

    low: float | None = 0
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def problem(self, value: float) -> str | None:
        """Why ``value`` is outside the bound (None when it is inside)."""
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return f"must be {'above' if self.low_open else 'at least'} {_show(self.low)}"
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return f"must be {'below' if self.high_open else 'at most'} {_show(self.high)}"
        return None

    def describe(self) -> str:
        lo = None if self.low is None else f"{'>' if self.low_open else '>='} {_show(self.low)}"
        hi = None if self.high is None else f"{'<' if self.high_open else '<='} {_show(self.high)}"
        return " and ".join(p for p in (lo, hi) if p) or "any finite number"


def _show(number: float) -> str:
    return str(int(number)) if float(number).is_integer() and abs(number) < 1e15 else f"{number:g}"


DEFAULT_BOUND = Bound(0)
AT_LEAST_1 = Bound(1)
POSITIVE = Bound(0, low_open=True)

# Flags whose bound is not "finite and >= 0". Keyed by option string, or "VERB --flag" for one verb only.
BOUNDS: dict[str, Bound] = {
    # counts and sizes that must be at least 1
    **{flag: AT_LEAST_1 for flag in (
        "--batch-size", "--candidates", "--gpus", "--hidden-size", "--keep", "--layers",
        "--limit", "--max-batch", "--max-body-bytes", "--max-completion-length", "--max-file-bytes",
        "--max-image-pixels", "--max-image-tokens", "--max-items", "--max-new-tokens", "--max-pixels",
        "--max-prompt-length", "--max-queued", "--max-rows", "--max-samples", "--max-steps", "--min-pixels",
        "--min-wrong", "--nodes", "--num-cpus", "--per-device-batch-size", "--preflight-rows",
        "--sample-size", "--sources", "--tensor-parallel-size", "--grpo-steps",
    )},
    # counts that start processes, threads or samples per item: a most keeps a typo from exhausting the machine
    "--workers": Bound(1, 1024),
    "--concurrency": Bound(1, 4096),
    "--replicas": Bound(1, 4096),
    "--actors": Bound(1, 100_000),
    "--samples": Bound(1, 1024),
    "--retries": Bound(0, 100),
    "--bootstrap": Bound(0, 1_000_000),
    "demo --sources": Bound(2),
    "demo --threads": Bound(1, 256),
    "demo --candidates": Bound(2),
    "synth --size": Bound(16, 16384),
    # seconds: a timeout of 0 would fail every request; a wait or a drain of 0 is fine
    "--timeout": POSITIVE,
    "--request-timeout": POSITIVE,
    "--ray-connect-timeout": POSITIVE,
    "--retry-after": Bound(0, 3600),
    # fractions, qualities and ranges
    "--gpu-memory-utilization": Bound(0, 1, low_open=True),
    "--jpeg-quality": Bound(1, 100),
    "--train-split": Bound(0, 1),
    "--port": Bound(1, 65535),
    "--tolerance": Bound(0, 9),
    "--seed": Bound(0, 2**63 - 1),
    "--bootstrap-seed": Bound(0, 2**63 - 1),
    # labels: the median may be any number, the MAD must be above 0
    "--score-median": Bound(None),
    "--score-mad": POSITIVE,
    "--qk-scale": POSITIVE,
    "--warm-start-lr": POSITIVE,
}


def bound_of(verb: str | None, action: argparse.Action) -> Bound:
    """The bound of one numeric flag of ``verb`` (see the module docstring)."""
    for flag in action.option_strings or [action.dest]:
        if verb and f"{verb} {flag}" in BOUNDS:
            return BOUNDS[f"{verb} {flag}"]
    for flag in action.option_strings or [action.dest]:
        if flag in BOUNDS:
            return BOUNDS[flag]
    return DEFAULT_BOUND


def _is_numeric_type(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, (int, float)) and not issubclass(kind, bool)


def numeric_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The flags of ``parser`` that :func:`check_numeric_flags` checks (``type=int`` / ``type=float``)."""
    return [a for a in parser._actions if _is_numeric_type(a.type)]


def value_problem(verb: str | None, action: argparse.Action, value: Any) -> str | None:
    """Why ``value`` of ``action`` makes no sense, naming the flag; None when it is fine (or not given)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    name = "/".join(action.option_strings) or action.dest
    for v in values:
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            return f"{name} {v}: must be a finite number"
        problem = bound_of(verb, action).problem(v)
        if problem:
            return f"{name} {v}: {problem}"
    return None


def check_numeric_flags(verb: str | None, parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """The first numeric flag of ``args`` that makes no sense, as a message; None when all are fine."""
    for action in numeric_actions(parser):
        problem = value_problem(verb, action, getattr(args, action.dest, None))
        if problem:
            return problem
    return None
