"""``editjudge demo``: GRPO teaching a tiny judge to read the images, on a laptop CPU, offline, in about 3 minutes.

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
from pathlib import Path
from typing import Any

from editjudge.demo_run import (HIDDEN_SIZE, QK_SCALE, STAGES, TEMPLATE, TRAIN_SPLIT, base_summary, begin, build_world,
                                demo_settings, finish, pct, preset_settings, print_rows, reproduce_line, run_task,
                                train_with_curve, training_header)

# the shared steps' names, used here and re-exported for the other demos, studies and tests
__all__ = ["DEFAULT_OUT", "HIDDEN_SIZE", "PRESET", "QK_SCALE", "STAGES", "TEMPLATE", "TRAIN_SPLIT", "add_arguments",
           "demo_settings", "preset_settings", "print_summary", "run", "run_demo", "stage_figures", "training_header"]

DEFAULT_OUT = "editjudge_demo"
PRESET = "tiny_cpu"


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
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for training and judging (default: 2 on a machine with 2+ cores whose "
                             "1-minute load is under 0.5, else 1; on 2 idle cores 2 threads train about 25%% faster, "
                             "on a busy CPU a second thread made the tiny model's step 14x slower)")
    parser.add_argument("--one-score", action="store_true",
                        help="--task dimensions only: also train a one-score judge (same recipe) on the overall of "
                             "the same edits and put the two side by side, kind by kind, in the report (about twice "
                             "as long)")


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


def _num(value: Any) -> str:
    return "   –  " if value is None else f"{value:6.3f}"


def run_demo(out: str | Path = DEFAULT_OUT, sources: int = 64, candidates: int = 4, warm_start_steps: int | None = None,
             grpo_steps: int | None = None, seed: int = 0, eval_every: int = 10, preset: str | Path = PRESET,
             progress: bool = True, *, hidden_size: int = HIDDEN_SIZE, qk_scale: float = QK_SCALE,
             template: str = TEMPLATE, settings_overrides: dict[str, Any] | None = None,
             threads: int = 1) -> dict[str, Any]:
    """Run the demo into ``out``; return the summary (also written to ``out/summary.json``).

    The keyword-only options are for studies (``benchmarks/demo_study.py``): the tiny model's size and q/k scale, the
    prompt template, and TrlSettings fields that replace the preset's (e.g. ``{"exclude_modules": ".*visual.*"}``).
    """
    import torch

    from editjudge.evaluate.metrics import compute_metrics
    from editjudge.evaluate.readers import judge_parquet, read_test_parquet
    from editjudge.evaluate.report import write_report
    from editjudge.judge import Judge
    from editjudge.judge.backends.transformers import TransformersBackend
    from editjudge.train import trl as engine

    with begin(out, preset, sources=sources, candidates=candidates, seed=seed, grpo_steps=grpo_steps,
               warm_start_steps=warm_start_steps, settings_overrides=settings_overrides,
               threads=threads) as (out, settings, stage):
        world = build_world(out, stage, task="red_square", sources=sources, candidates=candidates, seed=seed,
                            what="a blue square, 'make the square red' (unchanged -> label 1, red -> label 7)",
                            hidden_size=hidden_size, qk_scale=qk_scale, template=template, progress=progress,
                            preparing="preparing parquet: labels from the seed's median 0.9 / MAD 0.1, split by "
                                      "source image (leak-free)")
        prepared = world.prepared
        counts = print_rows(prepared)

        rows = read_test_parquet(prepared.test_path)  # read once, judged at every stage
        tokens = settings.max_completion_length

        def judge_records(model, processor, sampled: bool, show: bool = progress) -> list:
            """The held-out edits judged greedily or sampled at temperature 1; the training RNG is left untouched."""
            backend = TransformersBackend.from_loaded(model, processor, batch_size=32)
            judge = Judge.from_backend(backend, template=template, max_new_tokens=tokens, seed=seed,
                                       temperature=1.0 if sampled else 0.0)
            with torch.random.fork_rng():
                return judge_parquet(prepared.test_path, judge, rows=rows, progress=show)

        def quick(records: list) -> dict[str, Any]:
            return stage_figures(compute_metrics(records, bootstrap=0, seed=seed))

        evaluations: dict[str, list] = {}
        sampled: dict[str, list] = {}
        curve: list[dict[str, Any]] = []
        processor, model = engine.load_model(world.model_dir)
        stage("judging the held-out edits with the untrained model (greedy, then sampled)")
        evaluations["untrained"] = judge_records(model, processor, sampled=False)
        sampled["untrained"] = judge_records(model, processor, sampled=True)

        def warm_start_figures(model) -> dict[str, Any]:  # noqa: ANN001
            print("      judging the held-out edits after the warm start", flush=True)
            evaluations["warm start"] = judge_records(model, processor, sampled=False)
            sampled["warm start"] = judge_records(model, processor, sampled=True)
            return quick(evaluations["warm start"])

        result = train_with_curve(
            stage, settings, preset, world, model, processor, curve, eval_every, warm_start_figures,
            lambda model: quick(judge_records(model, processor, sampled=False, show=False)),
            lambda point: (f"within ±2 {point['accuracy_within_2']:.2f}, best-of-N regret "
                           f"{point['best_of_n_regret']:.3f}"))

        stage("judging the held-out edits with the trained adapter; writing the evaluation report")
        evaluations["after GRPO"] = judge_records(result.model, processor, sampled=False)
        sampled["after GRPO"] = judge_records(result.model, processor, sampled=True)
        curve.append({"step": settings.max_steps, **quick(evaluations["after GRPO"])})
        metrics = {name: compute_metrics(recs, bootstrap=200, seed=seed) for name, recs in evaluations.items()}
        sampled_metrics = {name: compute_metrics(recs, bootstrap=0, seed=seed) for name, recs in sampled.items()}
        training_log = [r for r in result.records if r.get("phase") in ("warm_start", "grpo")]
        report = write_report(metrics, evaluations, out / "report", training_log=training_log, learning_curve=curve,
                              title="editjudge demo: GRPO teaches a tiny Qwen2.5-VL to read the images")

    summary = base_summary(out, seed=seed, preset=preset, hidden_size=hidden_size, qk_scale=qk_scale,
                           template=template, result=result, report=report, curve=curve,
                           settings_overrides=dict(settings_overrides or {}), n_train=counts.get("train"),
                           n_heldout=counts.get("test"),
                           stages={name: stage_figures(metrics[name], sampled_metrics.get(name)) for name in metrics})
    return finish(out, summary, stage)


def print_summary(summary: dict[str, Any]) -> None:
    """The closing table: held-out figures per stage, and where things are."""
    print("\n" + "=" * 96)
    print(f"editjudge demo finished in {summary['seconds']:.0f} s: {summary['n_heldout']} held-out edits "
          f"(source images never seen in training), labels 1 (unchanged) and 7 (red); a constant answer scores 50% "
          "within ±2\n")
    print("                  ------ greedy judge ------   sampled (T=1)   pairwise   best-of-N")
    print("stage             format  within ±2   exact      within ±2     accuracy    regret")
    for name, f in summary["stages"].items():
        print(f"  {name:<14} {pct(f['format_rate'])}   {pct(f['accuracy_within_2'])}  {pct(f['accuracy_exact'])}"
              f"      {pct(f.get('sampled_within_2'))}      {pct(f['pairwise_accuracy'])}   "
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
          f"learnt from GRPO's reward.\n{reproduce_line(summary)}")
    print("Next: `editjudge prepare` on your edits, then `editjudge train` (see the README).")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "one_score", False) and getattr(args, "task", "pointwise") != "dimensions":
        print("editjudge demo: error: --one-score compares a one-score judge with a dimensions judge: use it with "
              "--task dimensions")
        return 2
    if getattr(args, "task", "pointwise") == "pairwise":
        from editjudge import demo_pairwise

        return demo_pairwise.run(args)
    if getattr(args, "task", "pointwise") == "dimensions":
        from editjudge import demo_dimensions

        return demo_dimensions.run(args)
    return run_task(args, run_demo, print_summary, out=DEFAULT_OUT, sources=64, candidates=4)
