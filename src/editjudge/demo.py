"""``editjudge demo``: the whole path on a laptop CPU, offline, in about two minutes.

synthetic scored edits -> ``prepare`` -> a tiny random Qwen2.5-VL -> a short supervised warm start on the answer
format -> GRPO steps with TRL (LoRA, the project's reward) -> the judge on the held-out edits -> an evaluation report
comparing the model before training, after the warm start and after GRPO.

Every stage calls the same package function the real workflow uses; nothing is downloaded. The figures are those
of a ~200k-parameter random model on toy images: they show the machinery working (format learned, reward rising),
not a useful judge.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

DEFAULT_OUT = "editjudge_demo"
STAGES = 6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for everything the demo writes")
    parser.add_argument("--sources", type=int, default=12, help="synthetic source images")
    parser.add_argument("--candidates", type=int, default=4, help="candidate edits per source image")
    parser.add_argument("--warm-start-steps", type=int, default=20, help="supervised steps on the answer format")
    parser.add_argument("--grpo-steps", type=int, default=24, help="GRPO steps")
    parser.add_argument("--prompts-per-step", type=int, default=4, help="prompts per step (x4 generations each)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the model and training")


class _Stages:
    """Numbered stage headers with elapsed time."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.number = 0

    def __call__(self, text: str) -> None:
        self.number += 1
        print(f"\n[{self.number}/{STAGES}] {text}  (t = {time.perf_counter() - self.started:.0f} s)", flush=True)


def _judge_records(judge, test_parquet: Path) -> list:
    from editjudge.evaluate.readers import judge_parquet

    return judge_parquet(test_parquet, judge, progress=True)


def _figures(metrics: dict[str, Any]) -> dict[str, Any]:
    fmt, acc = metrics.get("format", {}), metrics.get("accuracy", {})
    return {
        "format_rate": fmt.get("format_rate"),
        "parse_rate": fmt.get("parse_rate"),
        "accuracy_within_2": acc.get("within_2"),
        "accuracy_exact": acc.get("exact"),
    }


def _pct(value: Any) -> str:
    return "  –  " if value is None else f"{100 * value:5.1f}%"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def run_demo(out: str | Path = DEFAULT_OUT, sources: int = 12, candidates: int = 4, warm_start_steps: int = 20,
             grpo_steps: int = 24, prompts_per_step: int = 4, seed: int = 0, learning_rate: float = 3e-3,
             judge_warm_start: bool = True) -> dict[str, Any]:
    """Run the demo into ``out``; return the summary (also written to ``out/summary.json``)."""
    import torch
    from transformers import TrainerCallback

    from editjudge.data.prepare import PrepareConfig, prepare
    from editjudge.data.writer import atomic_write_text
    from editjudge.evaluate.metrics import compute_metrics
    from editjudge.evaluate.report import write_report
    from editjudge.judge import Judge
    from editjudge.judge.backends.transformers import TransformersBackend
    from editjudge.synthetic import write_synthetic_edits
    from editjudge.tiny import build_tiny_model
    from editjudge.train import trl as engine

    if min(sources, candidates, grpo_steps, prompts_per_step) < 1 or warm_start_steps < 0:
        raise ValueError("--sources, --candidates, --grpo-steps and --prompts-per-step must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 200k-parameter model gains nothing from threads, and loses a lot on a busy CPU
    stage = _Stages()
    try:
        stage(f"writing {sources} x {candidates} synthetic scored edits (seed layout)")
        synth = write_synthetic_edits(out / "edits", n_sources=sources, candidates_per_source=candidates, seed=seed)
        print(f"      {synth.samples} edits in {synth.out_dir}")

        stage("building the tiny offline Qwen2.5-VL (real processor and model classes, random weights)")
        model_dir = build_tiny_model(out / "tiny-qwen2_5-vl", seed=seed)
        print(f"      {model_dir}")

        stage("preparing parquet: labels from median/MAD, split by source image, images sized for the processor")
        prepared = prepare(PrepareConfig(inputs=(str(synth.out_dir),), out_dir=str(out / "data"), train_split=0.75,
                                         seed=seed, processor=str(model_dir), workers=1, progress=True))
        counts = prepared.report.get("counts", {})
        print(f"      {counts.get('train')} train rows -> {prepared.train_path}\n"
              f"      {counts.get('test')} test rows  -> {prepared.test_path}")

        evaluations: dict[str, list] = {}
        processor, model = engine.load_model(model_dir)
        stage("judging the held-out edits with the untrained model")
        untrained = Judge.from_backend(TransformersBackend.from_loaded(model, processor), max_new_tokens=24)
        evaluations["untrained"] = _judge_records(untrained, prepared.test_path)

        class JudgeAfterWarmStart(TrainerCallback):
            """Judge the test set once, when GRPO begins (the model then holds the warm-started adapter)."""

            def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
                if warm_start_steps > 0 and judge_warm_start:
                    print("      judging the held-out edits after the warm start", flush=True)
                    backend = TransformersBackend.from_loaded(model, processor)
                    evaluations["warm start"] = _judge_records(
                        Judge.from_backend(backend, max_new_tokens=24), prepared.test_path)
                    model.train()

        stage(f"training: {warm_start_steps} warm-start steps, then {grpo_steps} GRPO steps (TRL, LoRA r16)")
        settings = engine.TrlSettings(
            model=str(model_dir), output_dir=str(out / "train"), lora_rank=16, lora_alpha=32, num_generations=4,
            per_device_batch_size=4 * prompts_per_step, learning_rate=learning_rate, max_completion_length=20,
            max_steps=grpo_steps, temperature=0.7, warm_start_steps=warm_start_steps, warm_start_lr=2e-2, seed=seed,
        )
        result = engine.train(settings, prepared.train_path, model=model, processor=processor,
                              callbacks=[JudgeAfterWarmStart()])

        stage("judging the held-out edits with the trained adapter; writing the evaluation report")
        evaluations["after GRPO"] = _judge_records(
            Judge.from_backend(TransformersBackend.from_loaded(result.model, processor), max_new_tokens=24),
            prepared.test_path)
        metrics = {name: compute_metrics(recs, bootstrap=200, seed=seed) for name, recs in evaluations.items()}
        grpo = result.grpo_records()
        report = write_report(metrics, evaluations, out / "report", training_log=grpo,
                              title="editjudge demo: tiny Qwen2.5-VL on synthetic edits")
    finally:
        torch.set_num_threads(threads)

    third = max(1, len(grpo) // 3)
    summary = {
        "out": str(out),
        "adapter": str(result.adapter_dir),
        "metrics_jsonl": str(result.metrics_path),
        "report": str(report),
        "test": {name: _figures(m) for name, m in metrics.items()},
        "grpo_reward_first_third": _mean([r["reward_mean"] for r in grpo[:third]]),
        "grpo_reward_last_third": _mean([r["reward_mean"] for r in grpo[-third:]]),
        "grpo_format_first_third": _mean([r.get("format_rate", 0.0) for r in grpo[:third]]),
        "grpo_format_last_third": _mean([r.get("format_rate", 0.0) for r in grpo[-third:]]),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")  # no wall clock: same bytes
    return {**summary, "seconds": round(time.perf_counter() - stage.started, 1)}


def print_summary(summary: dict[str, Any]) -> None:
    """The closing table: where things are and the key figures."""
    print("\n" + "=" * 78)
    print(f"editjudge demo finished in {summary['seconds']:.0f} s\n")
    print("held-out edits, greedy judge   format    parsed   within ±2   exact")
    for name, f in summary["test"].items():
        print(f"  {name:<28} {_pct(f['format_rate'])}   {_pct(f['parse_rate'])}   {_pct(f['accuracy_within_2'])}"
              f"   {_pct(f['accuracy_exact'])}")
    first, last = summary["grpo_reward_first_third"], summary["grpo_reward_last_third"]
    if first is not None and last is not None:
        print(f"\nGRPO mean reward (0..2), first third of steps {first:.2f} -> last third {last:.2f}; "
              f"format rate {summary['grpo_format_first_third']:.2f} -> {summary['grpo_format_last_third']:.2f}")
    print(f"\nreport        {summary['report']}")
    print(f"adapter       {summary['adapter']}")
    print(f"step metrics  {summary['metrics_jsonl']}")
    print(f"summary       {Path(summary['out']) / 'summary.json'}")
    print("\nA random 200k-parameter model on toy images: this shows the machinery, not a useful judge.")
    print("Next: `editjudge prepare` on your edits, then `editjudge train` (see the README).")


def run(args: argparse.Namespace) -> int:
    try:
        summary = run_demo(args.out, args.sources, args.candidates, args.warm_start_steps, args.grpo_steps,
                           args.prompts_per_step, args.seed)
    except ValueError as error:
        print(f"editjudge demo: error: {error}")
        return 2
    print_summary(summary)
    return 0
