"""What the TRL engine sets up around a run: checks before start, CPU threads, loggers, the validation subset.

- :func:`check_before_start`: verl-only flags refused, the model folder checked as the verl pre-flight checks it
  (a missing local path or an uncached hub id fails at once, never a hub retry), train/validation overlap warned,
  W&B without a login switched to offline (and said so).
- :func:`set_cpu_threads`: on CPU, ``trl.cpu_threads``, else ``OMP_NUM_THREADS``, else one thread for a model under
  :data:`SMALL_MODEL_PARAMS` parameters (its matrices are too small for threads to pay; measured in
  ``benchmarks/bench_trl_threads.py``), else torch's default (one per core).
- :func:`logging_environment` / :func:`report_to`: ``trainer.logger`` as TRL's ``report_to``.
- :func:`bounded_validation`: at most ``trl.eval_max_rows`` evenly spaced validation prompts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

SMALL_MODEL_PARAMS = 100_000_000
# verl logger name -> transformers' report_to name (console is the trainer's own progress output)
_REPORT_TO = {"wandb": "wandb", "tensorboard": "tensorboard", "mlflow": "mlflow", "swanlab": "swanlab",
              "trackio": "trackio", "clearml": "clearml", "comet_ml": "comet_ml"}
# flags of `editjudge train` that only the verl engine reads, with what to do instead
VERL_ONLY_FLAGS = {
    "gpus": "the TRL engine runs in one process on the CPU or one GPU (CUDA_VISIBLE_DEVICES picks it)",
    "nodes": "the TRL engine runs in one process; use --engine verl for a Ray cluster",
    "preflight_rows": "the TRL engine reads every row before it starts",
    "skip_preflight": "the TRL engine's checks are cheap and always run",
}


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr, flush=True)


def report_to(loggers: Sequence[str]) -> list[str] | str:
    """verl's ``trainer.logger`` names as TRL's ``report_to``; ``"none"`` for console only."""
    names = []
    for name in loggers:
        if name == "console":
            continue
        if name not in _REPORT_TO:
            raise ValueError(f"trainer.logger: {name!r} is not a logger the TRL engine can use; choose from "
                             f"{['console', *_REPORT_TO]}")
        names.append(_REPORT_TO[name])
    return names or "none"


@contextlib.contextmanager
def logging_environment(settings: Any) -> Iterator[None]:
    """W&B and TensorBoard output under the output folder while the run lasts (the user's environment wins)."""
    out = Path(settings.output_dir).resolve()
    wanted: dict[str, str] = {}
    if "tensorboard" in settings.loggers:
        wanted["TENSORBOARD_LOGGING_DIR"] = str(out / "tensorboard")
    if "wandb" in settings.loggers:
        wanted.update(WANDB_DIR=str(out), WANDB_PROJECT=settings.project_name)
    added = [name for name in wanted if name not in os.environ]
    for name in added:
        os.environ[name] = wanted[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def set_cpu_threads(settings: Any, model: Any) -> int | None:
    """Torch's CPU threads for this run (nothing on a GPU); returns the count set, or ``None`` if left alone."""
    import torch

    if torch.cuda.is_available():
        return None
    threads = settings.cpu_threads
    if threads is None:
        if os.environ.get("OMP_NUM_THREADS"):
            return None  # torch already follows it
        params = sum(p.numel() for p in model.parameters())
        if params >= SMALL_MODEL_PARAMS:
            return None
        threads = 1
    torch.set_num_threads(max(1, int(threads)))
    return torch.get_num_threads()


def bounded_validation(examples: Any, settings: Any) -> Any:
    """At most ``settings.eval_max_rows`` evenly spaced validation examples (0: all), announced with their cost."""
    import pyarrow as pa

    from editjudge.train.trl import Examples

    total = len(examples)
    limit = int(settings.eval_max_rows or 0)
    if limit and total > limit:
        indices = [i * total // limit for i in range(limit)]
        examples = Examples([examples.prompts[i] for i in indices], examples.images.take(pa.array(indices)),
                            [examples.ground_truth[i] for i in indices])
    completions = len(examples) * settings.num_generations
    _note(f"validation every {settings.eval_steps} GRPO step(s) on {len(examples)} of {total} prompt(s) × "
          f"{settings.num_generations} generations = {completions} completions per pass (a training step generates "
          f"{settings.batch_size}, so a pass costs about {completions / settings.batch_size:.0f} steps); "
          "change with -- trl.eval_max_rows=N (0: all) or trainer.test_freq")
    return examples


def check_before_start(args: argparse.Namespace, settings: Any, train_files: Sequence[str] | None,
                       val_files: Sequence[str] | None) -> Any:
    """The TRL engine's pre-flight; returns the settings with the model resolved to its local folder.

    Raises ``ValueError`` (exit 2) for a verl-only flag or a model that is not there.
    """
    import dataclasses

    from editjudge.train.preflight_config import wandb_offline_if_no_login
    from editjudge.train.preflight_data import check_train_val_overlap
    from editjudge.train.preflight_model import check_model_folder
    from editjudge.train.preflight_report import Report

    given = [flag for flag in VERL_ONLY_FLAGS if getattr(args, flag, None) not in (None, False)]
    if given:
        flag = given[0]
        raise ValueError(f"--{flag.replace('_', '-')} is a verl engine flag: {VERL_ONLY_FLAGS[flag]}; drop it, or "
                         "use --engine verl")
    report = Report()
    folder = check_model_folder(settings.model, report, needs_vision=True)
    if folder is None:
        problem, fix = report.problems[0]
        raise ValueError(f"{problem}; fix: {fix}")
    check_train_val_overlap(list(train_files or []), list(val_files or []), report)
    for warning in report.warnings:
        _warn(warning)
    offline = wandb_offline_if_no_login(settings.loggers)
    if offline:
        _note(offline)
    return dataclasses.replace(settings, model=str(folder))


__all__ = ["SMALL_MODEL_PARAMS", "VERL_ONLY_FLAGS", "bounded_validation", "check_before_start", "logging_environment",
           "report_to", "set_cpu_threads"]
