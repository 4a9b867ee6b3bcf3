"""What a TRL run will do and cost, said before it starts: steps, time, and whether the recipe fits the machine.

- :func:`count_steps`: warm-start and GRPO optimizer steps as TRL's trainer counts them (``max_steps``, else epochs ×
  whole prompt batches per epoch; TRL drops the incomplete batch), validation passes and their cost in steps.
- :func:`measure`: one warm-start step and one GRPO step run for real on the first prompts, with the run's settings
  (batch, generations, completion length), in a temporary folder; the seconds they took.
- :func:`flops_estimate`: for a model too large to try in a dry run, a lower bound from the tokens a step processes
  (≈ 6 × parameters FLOPs per token: generation, then forward + backward) at this machine's measured matmul speed.
- :func:`gpu_sized_warning`: the GPU recipe (the 3B preset, which is also the default) about to run on a CPU.

``editjudge train --engine trl --dry-run`` prints all of it; a real run prints the warning before loading the model.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import struct
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

SMALL_ENOUGH_TO_TRY = 100_000_000  # parameters: a dry run loads such a model and times a real step
GPU_SIZED_PARAMS = 1_000_000_000
GPU_SIZED_RANK = 64
GPU_SIZED_COMPLETION = 256


@dataclass(frozen=True)
class StepPlan:
    """The optimizer steps of a run and what they consume."""

    rows: int
    prompts_per_step: int  # prompts of one generation batch (one optimizer step with TRL's defaults)
    warm_start_steps: int
    grpo_steps: int
    epochs: float  # passes over the training rows the GRPO steps make
    validation_passes: int = 0
    validation_step_cost: float = 0.0  # one validation pass, in training steps (generation only: an upper bound)

    @property
    def problem(self) -> str | None:
        if self.rows < self.prompts_per_step:
            return (f"{self.rows} training row(s) hold no whole step of {self.prompts_per_step} prompts (TRL drops the "
                    "incomplete batch, so no GRPO step would run): lower --per-device-batch-size or add rows")
        return None


def model_parameters(model_dir: str | os.PathLike[str]) -> int | None:
    """Parameters of a local model folder, read from its safetensors headers (nothing loaded); None if unknown."""
    total = 0
    files = sorted(Path(model_dir).glob("*.safetensors"))
    for file in files:
        try:
            with open(file, "rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(length))
        except (OSError, ValueError, struct.error):
            return None
        total += sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    return total or None


def _generation(settings: Any) -> tuple[int, int]:
    """(steps_per_generation, num_iterations) as TRL's GRPOConfig resolves them for these settings."""
    grpo = dict(settings.grpo or {})
    accumulation = int(settings.gradient_accumulation_steps or 1)
    if grpo.get("generation_batch_size"):
        per_generation = max(1, int(grpo["generation_batch_size"]) // settings.batch_size)
    else:
        per_generation = int(grpo.get("steps_per_generation") or accumulation)
    return per_generation, int(grpo.get("num_iterations") or 1)


def count_steps(settings: Any, rows: int, val_rows: int = 0) -> StepPlan:
    """The steps TRL's GRPOTrainer will run (``transformers.Trainer.set_initial_training_values`` over TRL's
    ``RepeatSampler``); ``val_rows``: validation prompts per pass (after ``trl.eval_max_rows``)."""
    per_generation, iterations = _generation(settings)
    accumulation = int(settings.gradient_accumulation_steps or 1)
    prompts = settings.batch_size * per_generation // settings.num_generations  # one generation batch
    loader = (rows // prompts) * per_generation * iterations if prompts else 0
    per_epoch = max(loader // accumulation + int(loader % accumulation > 0), 1)
    steps = settings.max_steps if settings.max_steps > 0 else math.ceil(settings.epochs * per_epoch)
    passes = 0
    if val_rows and settings.eval_steps > 0:
        passes = steps // settings.eval_steps + int(steps % settings.eval_steps > 0)
    return StepPlan(rows=rows, prompts_per_step=prompts, warm_start_steps=int(settings.warm_start_steps or 0),
                    grpo_steps=steps, epochs=steps / per_epoch if loader else 0.0,
                    validation_passes=passes,
                    validation_step_cost=val_rows * settings.num_generations / settings.batch_size if val_rows else 0.0)


@dataclass(frozen=True)
class Timing:
    """Seconds measured by :func:`measure`."""

    load: float
    warm_start_step: float | None
    grpo_step: float
    completion_tokens: float | None  # mean completion length of the measured step
    grpo_step_cpu: float | None = None  # CPU seconds of this process in that step (< wall time on a busy machine)


class _Clock:
    """A TrainerCallback factory timing each step (seconds per global step, in order)."""

    @staticmethod
    def new(seconds: list[float], cpu: list[float] | None = None) -> Any:
        from transformers import TrainerCallback

        class Clock(TrainerCallback):
            began = used = 0.0

            def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
                self.began, self.used = time.perf_counter(), time.process_time()

            def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
                seconds.append(time.perf_counter() - self.began)
                if cpu is not None:
                    cpu.append(time.process_time() - self.used)

        return Clock()


def measure(settings: Any, train_files: Any) -> Timing:
    """Time real steps with the run's settings in a temporary folder: two warm-start steps (the second is the
    figure; the first carries one-time costs) and one GRPO step on the first prompts, each on a fresh model."""
    from editjudge.train import trl as engine

    warm: list[float] = []
    grpo: list[float] = []
    grpo_cpu: list[float] = []
    quiet = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="editjudge-dry-run-") as tmp, \
            contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        trial = replace(settings, output_dir=tmp, max_steps=1, warm_start_steps=0, save_steps=0, eval_steps=0,
                        loggers=["console"], zero_std_warn_steps=10**9)
        started = time.perf_counter()
        processor, model = engine.load_model(settings.model)
        loaded = time.perf_counter() - started
        if settings.warm_start_steps:
            examples = engine.read_examples(train_files)
            engine.warm_start(model, processor, examples, replace(trial, warm_start_steps=2), Path(tmp) / "warm",
                              [], Path(tmp) / "warm.jsonl", callbacks=[_Clock.new(warm)])
            processor, model = engine.load_model(settings.model)  # GRPO's step on the model as it loads
        result = engine.train(trial, train_files, model=model, processor=processor, callbacks=[_Clock.new(grpo, grpo_cpu)])
    lengths = [r.get("completions/mean_length") for r in result.grpo_records()]
    return Timing(load=loaded, warm_start_step=warm[-1] if warm else None, grpo_step=grpo[0],
                  completion_tokens=lengths[0] if lengths and lengths[0] is not None else None,
                  grpo_step_cpu=grpo_cpu[0] if grpo_cpu else None)


def matmul_flops() -> float:
    """This machine's float32 matmul speed now (FLOP/s), on the device the engine would train on."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    n = 1024
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    rounds, started = 0, time.perf_counter()
    while rounds < 3 or time.perf_counter() - started < 0.3:
        a @ b
        rounds += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * rounds / (time.perf_counter() - started)


def prompt_tokens(train_files: Any) -> float | None:
    """Mean prompt tokens of the training rows (``extra_info.prompt_tokens``, written by ``prepare``)."""
    import pyarrow.parquet as pq

    files = [train_files] if isinstance(train_files, (str, os.PathLike)) else list(train_files or [])
    values: list[float] = []
    for file in files:
        try:
            extra = pq.read_table(file, columns=["extra_info"]).column("extra_info").to_pylist()
        except Exception:  # noqa: BLE001 - an estimate only: the data checks are the engine's
            return None
        values += [float(e["prompt_tokens"]) for e in extra if isinstance(e, dict) and e.get("prompt_tokens")]
    return sum(values) / len(values) if values else None


def flops_estimate(settings: Any, parameters: int, tokens_per_prompt: float, flops: float) -> float:
    """Seconds per GRPO step, a lower bound: 2·P FLOPs per token to generate, 4·P to train on it (forward +
    backward through frozen weights), 2·P more for a reference model (beta > 0), at ``flops`` FLOP/s."""
    tokens = settings.batch_size * (tokens_per_prompt + settings.max_completion_length)
    per_token = 2 + 4 + (2 if settings.beta else 0)
    return per_token * parameters * tokens / flops


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def describe(plan: StepPlan, *, timing: Timing | None = None, lower_bound: float | None = None,
             parameters: int | None = None) -> list[str]:
    """The dry run's lines: steps, then time with how it was estimated."""
    lines = [f"steps: {plan.warm_start_steps} warm-start + {plan.grpo_steps} GRPO steps "
             f"({plan.prompts_per_step} prompts per step over {plan.rows} training rows: {plan.epochs:.1f} epochs)"
             + (f"; {plan.validation_passes} validation passes of about {plan.validation_step_cost:.1f} steps each"
                if plan.validation_passes else "")]
    grpo_equivalent = plan.grpo_steps + plan.validation_passes * plan.validation_step_cost
    if timing is not None:
        warm = (timing.warm_start_step or 0.0) * plan.warm_start_steps
        total = timing.load + warm + timing.grpo_step * grpo_equivalent
        tokens = f", completions of {timing.completion_tokens:.0f} tokens" if timing.completion_tokens else ""
        lines.append(
            f"time: about {_duration(total)} on this machine now (load average {_load()}), estimated from one measured "
            f"GRPO step of {timing.grpo_step:.1f} s{tokens}"
            + (f" and one warm-start step of {timing.warm_start_step:.1f} s" if timing.warm_start_step else "")
            + f" × the steps above, + {timing.load:.0f} s to load the model; an untrained model's completions run "
            "to the length limit, so later steps are usually as fast or faster; other work on the machine slows it")
        share = timing.grpo_step_cpu / timing.grpo_step if timing.grpo_step_cpu and timing.grpo_step else None
        if share is not None and share < 0.8:
            quiet = timing.load + warm * share + timing.grpo_step_cpu * grpo_equivalent
            lines.append(f"      (that step had {share:.0%} of a CPU core to itself: about {_duration(quiet)} on this "
                         "machine with nothing else running)")
    elif lower_bound is not None:
        lines.append(
            f"time: at least {_duration(lower_bound * grpo_equivalent)} (not measured: a model of "
            f"{(parameters or 0) / 1e9:.1f} B parameters is not loaded in a dry run; a lower bound from the tokens "
            "a step processes at this machine's measured matmul speed — real steps are several times slower, "
            "decoding most of all); measure with a short run (--max-steps 2)")
    return lines


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:  # pragma: no cover - not on every platform
        return "unknown"


def gpu_sized_warning(settings: Any, preset: str, parameters: int | None, steps: int) -> str | None:
    """The warning for a GPU-sized recipe about to run on a CPU (``None`` with a GPU, or a CPU-sized recipe)."""
    import torch

    if torch.cuda.is_available():
        return None
    sized = []
    if parameters and parameters >= GPU_SIZED_PARAMS:
        sized.append(f"a {parameters / 1e9:.1f} B-parameter model")
    if settings.lora_rank >= GPU_SIZED_RANK:
        sized.append(f"LoRA rank {settings.lora_rank}")
    if settings.max_completion_length >= GPU_SIZED_COMPLETION:
        sized.append(f"completions up to {settings.max_completion_length} tokens")
    if not sized:
        return None
    loggers = [name for name in settings.loggers if name != "console"]
    sized.append(f"{steps} GRPO steps")
    if loggers:
        sized.append(f"logging to {', '.join(loggers)}")
    return (f"a GPU-sized recipe is about to run on a CPU (preset {preset}: {', '.join(sized)}). For a CPU, use "
            "--preset tiny_cpu (the demo's recipe: LoRA r16, 16-token completions, 60 steps) with a small model "
            "(`editjudge tiny-model` builds one), or shrink this one: --max-steps N --max-completion-length 32 "
            "-- actor_rollout_ref.model.lora_rank=16 'trainer.logger=[console]'; `--dry-run` says how long it takes")


def _rows_in(files: Any) -> int:
    import pyarrow.parquet as pq

    from editjudge.train.trl import read_examples

    files = [files] if isinstance(files, (str, os.PathLike)) else list(files or [])
    try:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    except Exception:  # noqa: BLE001 - let the engine's reader name the problem
        return len(read_examples(files))


def plan_run(settings: Any, preset: str, train_files: Any, val_files: Any = None) -> tuple[StepPlan, int | None]:
    """The steps of this run and the model's parameters; warns (stderr) about a GPU-sized recipe on a CPU and
    raises ``ValueError`` when no step could run."""
    import sys

    parameters = model_parameters(settings.model)
    val_rows = 0
    if val_files and settings.eval_steps > 0:
        val_rows = _rows_in(val_files)
        val_rows = min(val_rows, settings.eval_max_rows) if settings.eval_max_rows else val_rows
    plan = count_steps(settings, _rows_in(train_files), val_rows)
    if plan.problem:
        raise ValueError(plan.problem)
    warning = gpu_sized_warning(settings, preset, parameters, plan.grpo_steps)
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return plan, parameters


def estimate_lines(settings: Any, plan: StepPlan, parameters: int | None, train_files: Any) -> list[str]:
    """:func:`describe` with a measured step for a small model, else the FLOPs lower bound."""
    try:
        if parameters is not None and parameters < SMALL_ENOUGH_TO_TRY:
            print(f"measuring one warm-start step and one GRPO step ({settings.batch_size} completions) to estimate "
                  "the time …", flush=True)
            return describe(plan, timing=measure(settings, train_files))
        if parameters is None:
            return describe(plan) + ["time: not estimated (the model's parameter count is unknown: no safetensors)"]
        tokens = prompt_tokens(train_files) or settings.max_prompt_length or 1024
        bound = flops_estimate(settings, parameters, tokens, matmul_flops())
        return describe(plan, lower_bound=bound, parameters=parameters)
    except Exception as exc:  # noqa: BLE001 - an estimate must not fail the dry run
        return describe(plan) + [f"time: not estimated ({type(exc).__name__}: {exc})"]


__all__ = ["StepPlan", "Timing", "count_steps", "describe", "flops_estimate", "gpu_sized_warning", "matmul_flops",
           "measure", "model_parameters", "plan_run", "estimate_lines", "prompt_tokens"]
