"""The steps every demo shares (``editjudge demo``, ``--task pairwise``, ``--task dimensions``).

Its settings from a preset, one CPU thread for the run, numbered stages, the world it trains on (synthetic edits →
the tiny offline Qwen2.5-VL → a prepared parquet, each by the package function the real workflow uses), GRPO with a
held-out learning curve, and the summary every demo writes. Each demo module keeps what is its own: its task, how
it judges the held-out set and what its closing table shows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from editjudge.model_path import absolute_path

STAGES = 6
TEMPLATE = "demo"  # prompts.DEMO: short prompts train ~2.5x faster on a CPU than the `en` template
HIDDEN_SIZE, QK_SCALE = 256, 0.3  # see docs/demo.md for the comparison
TRAIN_SPLIT = 0.75


class Stages:
    """Numbered stage headers (of ``total``) with elapsed time."""

    def __init__(self, total: int = STAGES) -> None:
        self.started = time.perf_counter()
        self.number = 0
        self.total = total

    def __call__(self, text: str) -> None:
        self.number += 1
        print(f"\n[{self.number}/{self.total}] {text}  (t = {time.perf_counter() - self.started:.0f} s)", flush=True)


def preset_settings(model_dir: str | Path, output_dir: str | Path, preset: str | Path = "tiny_cpu", **fields_: Any):
    """TrlSettings from a preset exactly as ``editjudge train --engine trl --preset …`` resolves it (its verl keys,
    then its ``trl:`` mapping, checked by name), then ``fields_`` (those not ``None``); by default the pointwise
    demo's preset."""
    from editjudge.train import trl as engine
    from editjudge.train import trl_settings
    from editjudge.train.presets import load_preset

    loaded = load_preset(preset)
    verl_keys, trl_keys = trl_settings.resolve(loaded.overrides, loaded.trl, {})
    trl_keys.update({k: v for k, v in fields_.items() if v is not None})
    return engine.settings_from_overrides(verl_keys, model=str(model_dir), output_dir=absolute_path(output_dir),
                                          **trl_keys)  # output_dir as `train` records it: absolute


def demo_settings(out: str | Path, preset: str | Path, *, sources: int, candidates: int, seed: int,
                  grpo_steps: int | None, warm_start_steps: int | None,
                  settings_overrides: dict[str, Any] | None, threads: int = 1) -> tuple[Path, Any]:
    """Every demo task's first step: check its sizes, make ``out`` and resolve the preset's settings for it (training
    on ``threads`` CPU threads unless the overrides say otherwise)."""
    if min(sources, candidates) < 2 or (grpo_steps is not None and grpo_steps < 1) or (warm_start_steps or 0) < 0:
        raise ValueError("--sources and --candidates must be >= 2, --grpo-steps >= 1, --warm-start-steps >= 0")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out, preset_settings(out / "tiny-qwen2_5-vl", out / "train", preset, seed=seed, max_steps=grpo_steps,
                                warm_start_steps=warm_start_steps,
                                **{"cpu_threads": threads, **(settings_overrides or {})})


def training_header(settings: Any, preset: str | Path) -> str:
    """The training stage's header: warm-start and GRPO steps, batch shape, learning rate, LoRA rank, preset,
    CPU threads."""
    threads = settings.cpu_threads or 1
    return (f"training: {settings.warm_start_steps} format-only warm-start steps, then {settings.max_steps} GRPO steps "
            f"({settings.num_generations} generations x {settings.batch_size // settings.num_generations} prompts, "
            f"lr {settings.learning_rate:g}, TRL, LoRA r{settings.lora_rank}; preset {preset}; {threads} CPU thread"
            f"{'s' if threads > 1 else ''})")


@contextmanager
def cpu_threads(threads: int = 1) -> Iterator[None]:
    """torch on ``threads`` CPU threads for the block, then as it was (the library's default is 1; the command
    line's, :func:`default_threads`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def begin(out: str | Path, preset: str | Path, *, stages: int = STAGES,
          **settings_args: Any) -> Iterator[tuple[Path, Any, Stages]]:
    """Every demo's frame: ``out`` and the preset's settings (:func:`demo_settings` with ``settings_args``), its
    numbered stages, and the block on the settings' CPU threads (:func:`cpu_threads`)."""
    out, settings = demo_settings(out, preset, **settings_args)
    with cpu_threads(settings.cpu_threads or 1):
        yield out, settings, Stages(stages)


def print_rows(prepared: Any) -> dict[str, Any]:
    """Say where a prepared parquet's train and held-out rows went; return its report's counts."""
    counts = prepared.report.get("counts", {})
    print(f"      {counts.get('train')} train rows -> {prepared.train_path}\n"
          f"      {counts.get('test')} held-out rows (other source images) -> {prepared.test_path}")
    return counts


@dataclass(frozen=True)
class World:
    """What a demo trains and judges on: the tiny model's folder and the prepared parquet (``PrepareResult``)."""

    model_dir: Path
    prepared: Any


def build_world(out: Path, stage: Stages, *, task: str, what: str, sources: int, candidates: int, seed: int,
                hidden_size: int, qk_scale: float, template: str, preparing: str,
                model_options: dict[str, Any] | None = None, **prepare_fields: Any) -> World:
    """Stages 1–3: ``sources`` x ``candidates`` synthetic edits of ``task`` (``what`` says what they show), the tiny
    model (``model_options``: more :func:`~editjudge.tiny.build_tiny_model` keywords), and ``prepare`` on them with
    the seed's median/MAD for the task, the demo's split and template (``preparing``: the stage's header;
    ``prepare_fields``: more ``PrepareConfig`` fields, e.g. the format)."""
    from editjudge.data.prepare import PrepareConfig, prepare
    from editjudge.synthetic import RED_SQUARE_MEDIAN_MAD, write_synthetic_edits
    from editjudge.tiny import build_tiny_model

    stage(f"writing {sources} x {candidates} synthetic edits: {what}")
    synth = write_synthetic_edits(out / "edits", n_sources=sources, candidates_per_source=candidates, seed=seed,
                                  task=task)
    print(f"      {synth.samples} edits in {synth.out_dir}")

    stage(f"building the tiny offline Qwen2.5-VL (hidden {hidden_size}, attention q/k x{qk_scale}; real processor and "
          "model classes, random weights)")
    model_dir = build_tiny_model(out / "tiny-qwen2_5-vl", seed=seed, hidden_size=hidden_size, qk_scale=qk_scale,
                                 **(model_options or {}))
    print(f"      {model_dir}")

    stage(preparing)
    median, mad = RED_SQUARE_MEDIAN_MAD
    prepared = prepare(PrepareConfig(inputs=(str(synth.out_dir),), out_dir=str(out / "data"), train_split=TRAIN_SPLIT,
                                     score_median=median, score_mad=mad, seed=seed, template=template,
                                     processor=str(model_dir), workers=1, **prepare_fields))
    return World(model_dir, prepared)


def train_with_curve(stage: Stages, settings: Any, preset: str | Path, world: World, model: Any, processor: Any,
                     curve: list[dict[str, Any]], eval_every: int, begin: Callable[[Any], dict[str, Any]],
                     evaluate: Callable[[Any], dict[str, Any]], describe: Callable[[dict[str, Any]], str]) -> Any:
    """The training stage: the warm start then GRPO on the world's train rows, the held-out set judged when GRPO
    begins (``begin``) and every ``eval_every`` steps (``evaluate``; :func:`~editjudge.demo_curve.held_out_curve`)."""
    from editjudge.demo_curve import held_out_curve
    from editjudge.train import trl as engine

    callback = held_out_curve(curve, eval_every, begin, evaluate, describe)
    stage(training_header(settings, preset))
    return engine.train(settings, world.prepared.train_path, model=model, processor=processor, callbacks=[callback])


def base_summary(out: Path, *, seed: int, preset: str | Path, hidden_size: int, qk_scale: float, template: str,
                 result: Any, report: Path, curve: Sequence[dict[str, Any]], **more: Any) -> dict[str, Any]:
    """The summary keys every demo writes (its paths absolute: they resolve from any folder), then ``more``."""
    return {"out": absolute_path(out), "seed": seed, "preset": str(preset),
            "tiny_model": {"hidden_size": hidden_size, "qk_scale": qk_scale}, "template": template,
            "adapter": absolute_path(result.adapter_dir), "metrics_jsonl": absolute_path(result.metrics_path),
            "report": absolute_path(report), **more, "learning_curve": list(curve)}


def finish(out: Path, summary: dict[str, Any], stage: Stages) -> dict[str, Any]:
    """Write ``out/summary.json`` (no wall clock in it: the same seed in the same ``out`` gives the same bytes) and
    return the summary with the run's seconds."""
    from editjudge.data.writer import atomic_write_text

    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return {**summary, "seconds": round(time.perf_counter() - stage.started, 1)}


def reproduce_line(summary: dict[str, Any]) -> str:
    """The closing line that names the ``editjudge train`` command reproducing a demo's training."""
    out = Path(summary["out"])
    return (f"Reproduce the training: editjudge train --engine trl --preset {summary['preset']} --model "
            f"{out / 'tiny-qwen2_5-vl'} --train-files {out / 'data' / 'train.parquet'} --seed {summary['seed']}")


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """The demos' CPU threads when ``--threads`` is not given: 2 on a machine with 2+ cores (``os.cpu_count()``)
    and a 1-minute load under 0.5 (``os.getloadavg()``: idle), else 1 — two threads train the tiny model ~25 %
    faster on 2 idle cores and make its step 14x slower on busy ones (``benchmarks/bench_trl_threads.py``)."""
    import os

    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average (Windows): the safe choice
            return 1
    cores = (os.cpu_count() or 1) if cores is None else cores
    return 2 if load < 0.5 and cores >= 2 else 1


def run_task(args: Any, run_demo: Callable[..., dict[str, Any]], print_summary: Callable[[dict[str, Any]], None],
             *, out: str, sources: int, candidates: int, **options: Any) -> int:
    """``editjudge demo [--task …]``: the task's run with the command line's sizes (its defaults where unset), its
    closing table; exit 2 with the reason on a bad size."""
    try:
        summary = run_demo(out if args.out is None else args.out, sources if args.sources is None else args.sources,
                           candidates if args.candidates is None else args.candidates, args.warm_start_steps,
                           args.grpo_steps, args.seed, args.eval_every,
                           threads=getattr(args, "threads", None) or default_threads(), **options)
    except ValueError as error:
        print(f"editjudge demo: error: {error}")
        return 2
    print_summary(summary)
    return 0


def pct(value: Any) -> str:
    """A rate as the closing tables print it (``–`` when there is none)."""
    return "   –  " if value is None else f"{100 * value:5.1f}%"


__all__ = ["HIDDEN_SIZE", "QK_SCALE", "STAGES", "TEMPLATE", "TRAIN_SPLIT", "Stages", "World", "base_summary", "begin",
           "build_world", "cpu_threads", "default_threads", "demo_settings", "finish", "pct", "preset_settings",
           "print_rows", "reproduce_line", "run_task", "train_with_curve", "training_header"]
