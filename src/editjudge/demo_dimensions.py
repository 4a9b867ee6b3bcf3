"""``editjudge demo --task dimensions``: GRPO teaching a tiny judge two dimensions at once, on a CPU, offline.

The demo's world judged on two dimensions (``synth --task red_square_dims``: a blue square, "make the square red";
each source gets one candidate of each kind — left unchanged, the square painted red, the whole picture painted
red, the background painted red with the square left blue), scored ``following`` (is the square red?) and
``preservation`` (is the rest as it was?), labels 1 or 7 on each → ``prepare --dimensions follow_preserve`` → the
tiny random Qwen2.5-VL with each answer head (``following: ``) one token (``tiny-model --dimensions``) → a warm start
that teaches the answer FORMAT only (every dimension takes every digit, no digit tells another's: no label) → GRPO
with TRL (LoRA, the project's reward: format + the mean of the dimensions' ±2 credits with a graded miss, each
dimension's digit credited with its own dimension's reward, ``trl.dimension_credit``; a constant learning rate)
→ the judge on the held-out edits (other source pictures) before training, after the warm start and after GRPO, per
dimension. With ``one_score`` (``--one-score``) a one-score judge is trained on the overall of the same edits and
the two are put side by side, kind by kind (:mod:`editjudge.demo_one_score`).

A constant answer scores 1/2 within ±2 on each dimension (half the labels are 1, half 7); a judge that reads both
regions scores 1 on both. The one number a single-score judge would be trained on (``score``: the mean) is 4 for an
unchanged edit and 4 for a ruined one: only the dimensions tell them apart.
The training settings are the ``tiny_cpu_dimensions`` preset's; every stage calls the package function the real
workflow uses; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from editjudge import demo_one_score
from editjudge.demo_run import (HIDDEN_SIZE, QK_SCALE, TEMPLATE, base_summary, begin, build_world, finish, pct,
                                print_rows, reproduce_line, run_task, train_with_curve)

DEFAULT_OUT = "editjudge_demo_dims"
PRESET = "tiny_cpu_dimensions"
TASK = "red_square_dims"
FORMAT = "dimensions:follow_preserve"
SOURCES, CANDIDATES = 64, 4
DIMENSIONS = ("following", "preservation")


def stage_figures(metrics: dict[str, Any]) -> dict[str, Any]:
    """Held-out figures of one stage: format rate, then ±2 and exact accuracy of each dimension and the overall."""
    out: dict[str, Any] = {"n": metrics.get("n"), "format_rate": metrics.get("format", {}).get("format_rate")}
    per = metrics.get("dimensions") or {}
    for name in DIMENSIONS:
        accuracy = (per.get(name) or {}).get("accuracy", {})
        out[f"{name}_within_2"] = accuracy.get("within_2")
        out[f"{name}_exact"] = accuracy.get("exact")
    out["overall_within_2"] = metrics.get("accuracy", {}).get("within_2")
    return out


def run_dimensions_demo(out: str | Path = DEFAULT_OUT, sources: int = SOURCES, candidates: int = CANDIDATES,
                        warm_start_steps: int | None = None, grpo_steps: int | None = None, seed: int = 0,
                        eval_every: int = 10, preset: str | Path = PRESET, progress: bool = True, *,
                        hidden_size: int = HIDDEN_SIZE, qk_scale: float = QK_SCALE, template: str = TEMPLATE,
                        settings_overrides: dict[str, Any] | None = None, one_score: bool = False,
                        threads: int = 1) -> dict[str, Any]:
    """Run the dimensions demo into ``out``; return the summary (also written to ``out/summary.json``).

    ``one_score``: also train the one-score judge on the overall of the same edits and write the side-by-side
    (:mod:`editjudge.demo_one_score`) into the report: about as long again."""
    import torch

    from editjudge.evaluate.metrics import compute_metrics
    from editjudge.evaluate.readers import judge_parquet, read_test_parquet
    from editjudge.evaluate.report import write_report
    from editjudge.formats import get_format
    from editjudge.judge import Judge
    from editjudge.judge.backends.transformers import TransformersBackend
    from editjudge.train import trl as engine

    with begin(out, preset, stages=7 if one_score else 6, sources=sources, candidates=candidates, seed=seed,
               grpo_steps=grpo_steps, warm_start_steps=warm_start_steps, settings_overrides=settings_overrides,
               threads=threads) as (out, settings, stage):
        world = build_world(out, stage, task=TASK, sources=sources, candidates=candidates, seed=seed,
                            what="a blue square on green, 'make the square red' (unchanged, square red, all red, "
                                 "background red), scored on following and preservation",
                            hidden_size=hidden_size, qk_scale=qk_scale, template=template, format=FORMAT,
                            progress=progress, model_options={"answer_heads": get_format(FORMAT).entry_heads},
                            preparing="preparing parquet (prepare --dimensions follow_preserve): labels per dimension "
                                      "from the seed's median 0.9 / MAD 0.1, split by source image")
        prepared = world.prepared
        counts = print_rows(prepared)
        rows = read_test_parquet(prepared.test_path)  # read once, judged at every stage
        tokens = settings.max_completion_length

        def judge_records(model, processor, show: bool = progress) -> list:
            backend = TransformersBackend.from_loaded(model, processor, batch_size=32)
            judge = Judge.from_backend(backend, format=FORMAT, template=template, max_new_tokens=tokens, seed=seed)
            with torch.random.fork_rng():
                return judge_parquet(prepared.test_path, judge, rows=rows, progress=show)

        def quick(records: list) -> dict[str, Any]:
            return stage_figures(compute_metrics(records, bootstrap=0, seed=seed))

        evaluations: dict[str, list] = {}
        curve: list[dict[str, Any]] = []
        processor, model = engine.load_model(world.model_dir)
        stage("judging the held-out edits with the untrained model")
        evaluations["untrained"] = judge_records(model, processor)

        def warm_start_figures(model) -> dict[str, Any]:  # noqa: ANN001
            evaluations["warm start"] = judge_records(model, processor)
            return quick(evaluations["warm start"])

        result = train_with_curve(
            stage, settings, preset, world, model, processor, curve, eval_every, warm_start_figures,
            lambda model: quick(judge_records(model, processor, show=False)),
            lambda point: ", ".join(f"{name} within ±2 {point[f'{name}_within_2'] or 0:.2f}" for name in DIMENSIONS))

        stage("judging the held-out edits with the trained adapter; writing the evaluation report")
        evaluations["after GRPO"] = judge_records(result.model, processor)
        curve.append({"step": settings.max_steps, **quick(evaluations["after GRPO"])})
        metrics = {name: compute_metrics(recs, bootstrap=200, seed=seed) for name, recs in evaluations.items()}
        training_log = [r for r in result.records if r.get("phase") in ("warm_start", "grpo")]
        report = write_report(metrics, evaluations, out / "report", training_log=training_log, learning_curve=curve,
                              title="editjudge demo: GRPO teaches a tiny Qwen2.5-VL two dimensions")
        kinds = None
        if one_score:
            stage(f"training the one-score judge on the overall of the same edits (preset "
                  f"{demo_one_score.ONE_SCORE_PRESET}); judging it")

            def judge_one_score(model, processor, test_path: Path, one_rows: list) -> list:  # noqa: ANN001
                backend = TransformersBackend.from_loaded(model, processor, batch_size=32)
                judge = Judge.from_backend(backend, template=template, max_new_tokens=16, seed=seed)
                with torch.random.fork_rng():
                    return judge_parquet(test_path, judge, rows=one_rows, progress=progress)

            one_rows, one_records, _ = demo_one_score.train_and_judge(
                out, world.model_dir, seed=seed, template=template, steps=grpo_steps,
                warm_start_steps=warm_start_steps, judge_rows=judge_one_score, progress=progress,
                settings_overrides={"cpu_threads": settings.cpu_threads, **(settings_overrides or {})})
            kinds = demo_one_score.by_kind(rows, evaluations["after GRPO"], one_rows, one_records)
            print(demo_one_score.markdown(kinds))
            demo_one_score.write_table(out / "report", kinds)
    summary = base_summary(out, seed=seed, preset=preset, hidden_size=hidden_size, qk_scale=qk_scale,
                           template=template, result=result, report=report, curve=curve, task=TASK, format=FORMAT,
                           settings_overrides=dict(settings_overrides or {}), n_train=counts.get("train"),
                           n_heldout=counts.get("test"), stages={name: stage_figures(m) for name, m in metrics.items()},
                           one_score_vs_dimensions=kinds)
    return finish(out, summary, stage)


def print_summary(summary: dict[str, Any]) -> None:
    """The closing table: held-out accuracy per dimension and stage."""
    print("\n" + "=" * 96)
    print(f"editjudge dimensions demo finished in {summary['seconds']:.0f} s: {summary['n_heldout']} held-out edits "
          "(source images never seen in training), labels 1 or 7 on each dimension; a constant answer scores 50% "
          "within ±2 on each\n")
    print("                          following             preservation")
    print("stage             format  within ±2   exact     within ±2   exact")
    for name, f in summary["stages"].items():
        print(f"  {name:<14} {pct(f['format_rate'])}   {pct(f['following_within_2'])}  {pct(f['following_exact'])}"
              f"    {pct(f['preservation_within_2'])}  {pct(f['preservation_exact'])}")
    curve = summary.get("learning_curve") or []
    if len(curve) > 2:
        print("\nheld-out within ±2 during GRPO (step: following / preservation)  " + ", ".join(
            f"{p['step']}: {100 * (p['following_within_2'] or 0):.0f}/{100 * (p['preservation_within_2'] or 0):.0f}%"
            for p in curve))
    if summary.get("one_score_vs_dimensions"):
        print("\n" + demo_one_score.markdown(summary["one_score_vs_dimensions"]))
    print(f"\nreport        {summary['report']}\nadapter       {summary['adapter']}\n"
          f"step metrics  {summary['metrics_jsonl']}")
    print("The warm start taught the answer format with label-free digits; what the judge knows about each dimension "
          "it learnt from GRPO's reward.")
    print(reproduce_line(summary))


def run(args: Any) -> int:
    """``editjudge demo --task dimensions``."""
    return run_task(args, run_dimensions_demo, print_summary, out=DEFAULT_OUT, sources=SOURCES, candidates=CANDIDATES,
                    one_score=bool(getattr(args, "one_score", False)))


__all__ = ["DIMENSIONS", "PRESET", "TASK", "print_summary", "run", "run_dimensions_demo", "stage_figures"]
