"""``editjudge demo``: GRPO teaching a tiny judge to read the images, on a laptop CPU, offline, in about 4 minutes.

synthetic edits whose label only the pixels tell (a blue square on grey, "make the square red": left unchanged ->
label 1, painted red -> label 7) -> ``prepare`` (leak-free split) -> a tiny random Qwen2.5-VL -> a warm start that
teaches the answer FORMAT only (random digits) -> GRPO with TRL (LoRA, the project's reward) -> the judge on the
held-out edits before training, after the warm start and after GRPO -> an evaluation report.

With two labels 6 apart a constant answer scores exactly 1/2 within the ±2 reward; the warm start's answers carry no
label, so any held-out accuracy above 1/2 was learnt by GRPO from the reward. The training settings live in the
``tiny_cpu`` preset (``editjudge train --engine trl --preset tiny_cpu`` reproduces the training); every stage calls
the package function the real workflow uses; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from editjudge.model_path import absolute_path

DEFAULT_OUT = "editjudge_demo"
PRESET = "tiny_cpu"
STAGES = 6
TEMPLATE = "demo"  # prompts.DEMO: short prompts train ~2.5x faster on a CPU than the `en` template
HIDDEN_SIZE, QK_SCALE = 256, 0.3  # see docs/demo.md for the comparison
TRAIN_SPLIT = 0.75


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", choices=("pointwise", "pairwise", "dimensions"), default="pointwise",
                        help="pointwise: the judge scores one edit 0-9 (preset tiny_cpu); pairwise: it compares two "
                             "edits of one source, A or B (preset tiny_cpu_pairwise); dimensions: it scores one edit "
                             "on instruction following and preservation, one digit each (preset tiny_cpu_dimensions; "
                             "docs/demo.md)")
    parser.add_argument("--out", default=None,
                        help=f"folder for everything the demo writes (default {DEFAULT_OUT}, pairwise: "
                             f"{DEFAULT_OUT}_pairs, dimensions: {DEFAULT_OUT}_dims)")
    parser.add_argument("--sources", type=int, default=None,
                        help="synthetic source images (a quarter of them, with all their candidates, are held out; "
                             "default 64, pairwise 128)")
    parser.add_argument("--candidates", type=int, default=None,
                        help="candidate edits per source image (default 4, pairwise 2)")
    parser.add_argument("--warm-start-steps", type=int, default=None,
                        help="format-only supervised steps (default: the preset's trl.warm_start_steps)")
    parser.add_argument("--grpo-steps", type=int, default=None, help="GRPO steps (default: the preset's trl.max_steps)")
    parser.add_argument("--eval-every", type=int, default=10,
                        help="judge the held-out edits every N GRPO steps for the learning curve (0: never)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the model and training")


class _Stages:
    """Numbered stage headers with elapsed time."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.number = 0

    def __call__(self, text: str) -> None:
        self.number += 1
        print(f"\n[{self.number}/{STAGES}] {text}  (t = {time.perf_counter() - self.started:.0f} s)", flush=True)


def preset_settings(model_dir: str | Path, output_dir: str | Path, preset: str | Path = PRESET, **fields_: Any):
    """TrlSettings from a preset exactly as ``editjudge train --engine trl --preset …`` resolves it (its verl keys,
    then its ``trl:`` mapping, checked by name), then ``fields_`` (those not ``None``)."""
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
                  settings_overrides: dict[str, Any] | None) -> tuple[Path, Any]:
    """Every demo task's first step: check its sizes, make ``out`` and resolve the preset's settings for it."""
    if min(sources, candidates) < 2 or (grpo_steps is not None and grpo_steps < 1) or (warm_start_steps or 0) < 0:
        raise ValueError("--sources and --candidates must be >= 2, --grpo-steps >= 1, --warm-start-steps >= 0")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out, preset_settings(out / "tiny-qwen2_5-vl", out / "train", preset, seed=seed, max_steps=grpo_steps,
                                warm_start_steps=warm_start_steps, **(settings_overrides or {}))


def training_header(settings: Any, preset: str | Path) -> str:
    """The training stage's header: warm-start and GRPO steps, batch shape, learning rate, LoRA rank, preset."""
    return (f"training: {settings.warm_start_steps} format-only warm-start steps, then {settings.max_steps} GRPO steps "
            f"({settings.num_generations} generations x {settings.batch_size // settings.num_generations} prompts, "
            f"lr {settings.learning_rate:g}, TRL, LoRA r{settings.lora_rank}; preset {preset})")


def stage_figures(greedy: dict[str, Any], sampled: dict[str, Any] | None = None) -> dict[str, Any]:
    """The held-out figures of one stage: greedy (and sampled) format, ±2 and exact accuracy, pairwise, best-of-N."""
    fmt, acc = greedy.get("format", {}), greedy.get("accuracy", {})
    out = {
        "n_heldout": greedy.get("n"),
        "format_rate": fmt.get("format_rate"),
        "accuracy_within_2": acc.get("within_2"),
        "accuracy_exact": acc.get("exact"),
        "pairwise_accuracy": greedy.get("pairwise", {}).get("strict", {}).get("value"),
        "best_of_n_regret": greedy.get("best_of_n", {}).get("regret"),
    }
    if sampled is not None:
        out |= {
            "sampled_format_rate": sampled.get("format", {}).get("format_rate"),
            "sampled_within_2": sampled.get("accuracy", {}).get("within_2"),
            "sampled_exact": sampled.get("accuracy", {}).get("exact"),
        }
    return out


def _pct(value: Any) -> str:
    return "   –  " if value is None else f"{100 * value:5.1f}%"


def _num(value: Any) -> str:
    return "   –  " if value is None else f"{value:6.3f}"


def run_demo(out: str | Path = DEFAULT_OUT, sources: int = 64, candidates: int = 4, warm_start_steps: int | None = None,
             grpo_steps: int | None = None, seed: int = 0, eval_every: int = 10, preset: str | Path = PRESET,
             progress: bool = True, *, hidden_size: int = HIDDEN_SIZE, qk_scale: float = QK_SCALE,
             template: str = TEMPLATE, settings_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the demo into ``out``; return the summary (also written to ``out/summary.json``).

    The keyword-only options are for studies (``benchmarks/demo_study.py``): the tiny model's size and q/k scale, the
    prompt template, and TrlSettings fields that replace the preset's (e.g. ``{"exclude_modules": ".*visual.*"}``).
    """
    import torch

    from editjudge.data.prepare import PrepareConfig, prepare
    from editjudge.data.writer import atomic_write_text
    from editjudge.demo_curve import held_out_curve
    from editjudge.evaluate.metrics import compute_metrics
    from editjudge.evaluate.readers import judge_parquet
    from editjudge.evaluate.report import write_report
    from editjudge.judge import Judge
    from editjudge.judge.backends.transformers import TransformersBackend
    from editjudge.synthetic import RED_SQUARE_MEDIAN_MAD, write_synthetic_edits
    from editjudge.tiny import build_tiny_model
    from editjudge.train import trl as engine

    out, settings = demo_settings(out, preset, sources=sources, candidates=candidates, seed=seed,
                                  grpo_steps=grpo_steps, warm_start_steps=warm_start_steps,
                                  settings_overrides=settings_overrides)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 1.4M-parameter model gains nothing from threads, and loses a lot on a busy CPU
    stage = _Stages()
    try:
        stage(f"writing {sources} x {candidates} synthetic edits: a blue square, 'make the square red' "
              "(unchanged -> label 1, red -> label 7)")
        synth = write_synthetic_edits(out / "edits", n_sources=sources, candidates_per_source=candidates, seed=seed,
                                      task="red_square")
        print(f"      {synth.samples} edits in {synth.out_dir}")

        stage(f"building the tiny offline Qwen2.5-VL (hidden {hidden_size}, attention q/k x{qk_scale}; real "
              "processor and model classes, random weights)")
        model_dir = build_tiny_model(out / "tiny-qwen2_5-vl", seed=seed, hidden_size=hidden_size, qk_scale=qk_scale)
        print(f"      {model_dir}")

        stage("preparing parquet: labels from the seed's median 0.9 / MAD 0.1, split by source image (leak-free)")
        median, mad = RED_SQUARE_MEDIAN_MAD
        prepared = prepare(PrepareConfig(inputs=(str(synth.out_dir),), out_dir=str(out / "data"),
                                         train_split=TRAIN_SPLIT, score_median=median, score_mad=mad, seed=seed,
                                         template=template, processor=str(model_dir), workers=1, progress=progress))
        counts = prepared.report.get("counts", {})
        print(f"      {counts.get('train')} train rows -> {prepared.train_path}\n"
              f"      {counts.get('test')} held-out rows (other source images) -> {prepared.test_path}")

        tokens = settings.max_completion_length

        def judge_records(model, processor, sampled: bool, show: bool = progress) -> list:
            """The held-out edits judged greedily or sampled at temperature 1; the training RNG is left untouched."""
            backend = TransformersBackend.from_loaded(model, processor, batch_size=32)
            judge = Judge.from_backend(backend, template=template, max_new_tokens=tokens, seed=seed,
                                       temperature=1.0 if sampled else 0.0)
            with torch.random.fork_rng():
                return judge_parquet(prepared.test_path, judge, progress=show)

        def quick(records: list) -> dict[str, Any]:
            return stage_figures(compute_metrics(records, bootstrap=0, seed=seed))

        evaluations: dict[str, list] = {}
        sampled: dict[str, list] = {}
        curve: list[dict[str, Any]] = []
        processor, model = engine.load_model(model_dir)
        stage("judging the held-out edits with the untrained model (greedy, then sampled)")
        evaluations["untrained"] = judge_records(model, processor, sampled=False)
        sampled["untrained"] = judge_records(model, processor, sampled=True)

        def warm_start_figures(model) -> dict[str, Any]:  # noqa: ANN001
            print("      judging the held-out edits after the warm start", flush=True)
            evaluations["warm start"] = judge_records(model, processor, sampled=False)
            sampled["warm start"] = judge_records(model, processor, sampled=True)
            return quick(evaluations["warm start"])

        curve_callback = held_out_curve(
            curve, eval_every, warm_start_figures,
            lambda model: quick(judge_records(model, processor, sampled=False, show=False)),
            lambda point: (f"within ±2 {point['accuracy_within_2']:.2f}, best-of-N regret "
                           f"{point['best_of_n_regret']:.3f}"))

        stage(training_header(settings, preset))
        result = engine.train(settings, prepared.train_path, model=model, processor=processor,
                              callbacks=[curve_callback])

        stage("judging the held-out edits with the trained adapter; writing the evaluation report")
        evaluations["after GRPO"] = judge_records(result.model, processor, sampled=False)
        sampled["after GRPO"] = judge_records(result.model, processor, sampled=True)
        curve.append({"step": settings.max_steps, **quick(evaluations["after GRPO"])})
        metrics = {name: compute_metrics(recs, bootstrap=200, seed=seed) for name, recs in evaluations.items()}
        sampled_metrics = {name: compute_metrics(recs, bootstrap=0, seed=seed) for name, recs in sampled.items()}
        training_log = [r for r in result.records if r.get("phase") in ("warm_start", "grpo")]
        report = write_report(metrics, evaluations, out / "report", training_log=training_log, learning_curve=curve,
                              title="editjudge demo: GRPO teaches a tiny Qwen2.5-VL to read the images")
    finally:
        torch.set_num_threads(threads)

    summary = {
        "out": absolute_path(out),
        "seed": seed,
        "preset": str(preset),
        "tiny_model": {"hidden_size": hidden_size, "qk_scale": qk_scale},
        "template": template,
        "settings_overrides": {k: v for k, v in (settings_overrides or {}).items()},
        "adapter": absolute_path(result.adapter_dir),
        "metrics_jsonl": absolute_path(result.metrics_path),
        "report": absolute_path(report),
        "n_train": counts.get("train"),
        "n_heldout": counts.get("test"),
        "stages": {name: stage_figures(metrics[name], sampled_metrics.get(name)) for name in metrics},
        "learning_curve": curve,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")  # no wall clock: same bytes
    # (its paths are absolute: they resolve from any folder, so the same seed in the same --out gives the same bytes)
    return {**summary, "seconds": round(time.perf_counter() - stage.started, 1)}


def print_summary(summary: dict[str, Any]) -> None:
    """The closing table: held-out figures per stage, and where things are."""
    print("\n" + "=" * 96)
    print(f"editjudge demo finished in {summary['seconds']:.0f} s: {summary['n_heldout']} held-out edits "
          f"(source images never seen in training), labels 1 (unchanged) and 7 (red); a constant answer scores 50% "
          "within ±2\n")
    print("                  ------ greedy judge ------   sampled (T=1)   pairwise   best-of-N")
    print("stage             format  within ±2   exact      within ±2     accuracy    regret")
    for name, f in summary["stages"].items():
        print(f"  {name:<14} {_pct(f['format_rate'])}   {_pct(f['accuracy_within_2'])}  {_pct(f['accuracy_exact'])}"
              f"      {_pct(f.get('sampled_within_2'))}      {_pct(f['pairwise_accuracy'])}   "
              f"{_num(f['best_of_n_regret'])}")
    curve = summary.get("learning_curve") or []
    if len(curve) > 2:
        points = ", ".join(f"{p['step']}: {100 * p['accuracy_within_2']:.0f}%" for p in curve)
        print(f"\nheld-out within ±2 during GRPO (step: greedy accuracy)  {points}")
    print(f"\nreport        {summary['report']}")
    print(f"adapter       {summary['adapter']}")
    print(f"step metrics  {summary['metrics_jsonl']}")
    print(f"summary       {Path(summary['out']) / 'summary.json'}")
    print(f"\nThe warm start taught the answer format with random digits; what the judge knows about the images it "
          f"learnt from GRPO's reward.\nReproduce the training: editjudge train --engine trl --preset {PRESET} "
          f"--model {Path(summary['out']) / 'tiny-qwen2_5-vl'} --train-files "
          f"{Path(summary['out']) / 'data' / 'train.parquet'} --seed {summary['seed']}")
    print("Next: `editjudge prepare` on your edits, then `editjudge train` (see the README).")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "task", "pointwise") == "pairwise":
        from editjudge import demo_pairwise

        return demo_pairwise.run(args)
    if getattr(args, "task", "pointwise") == "dimensions":
        from editjudge import demo_dimensions

        return demo_dimensions.run(args)
    try:
        summary = run_demo(DEFAULT_OUT if args.out is None else args.out,
                           64 if args.sources is None else args.sources,
                           4 if args.candidates is None else args.candidates,
                           args.warm_start_steps, args.grpo_steps, args.seed, args.eval_every)
    except ValueError as error:
        print(f"editjudge demo: error: {error}")
        return 2
    print_summary(summary)
    return 0
