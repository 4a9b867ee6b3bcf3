"""``editjudge demo --task pairwise``: GRPO teaching a tiny judge to compare two edits, on a CPU, offline.

The demo's world (a blue square, "make the square red"; each candidate left unchanged or painted red) prepared as
pairs (``prepare --pairs --no-ties``: both orders of every pair, only pairs of one red and one unchanged candidate)
→ the tiny random Qwen2.5-VL with ``tie`` as one token → a warm start that teaches the answer FORMAT only (every
prompt paired with A, B and tie once: no label) → GRPO with TRL (LoRA, the project's reward: format + the right
preference; a pair's two orders in one step) → the judge on the held-out pairs (other source pictures) before
training, after the warm start and after GRPO.

No ties: the labels are half A, half B, so a constant answer (always A, always B, always tie) scores at most 1/2
and is never position-consistent; a judge that reads both candidates is right in both orders. With ties kept (a
third of the rows: two candidates of one kind) the judge learnt every A/B pair and never a tie (held-out 72 %,
docs/demo.md). The training settings are the ``tiny_cpu_pairwise`` preset's; every stage calls the package
function the real workflow uses (prepare, TRL engine, ``Judge.compare``, :mod:`editjudge.evaluate.pair_records`);
nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from editjudge.demo_run import (HIDDEN_SIZE, QK_SCALE, TEMPLATE, base_summary, begin, build_world, finish, pct,
                                reproduce_line, run_task, train_with_curve)

DEFAULT_OUT = "editjudge_demo_pairs"
PRESET = "tiny_cpu_pairwise"
TASK = "red_square_pairs"
FORMAT = "pairwise"
SOURCES, CANDIDATES = 128, 2


def stage_figures(metrics: dict[str, Any]) -> dict[str, Any]:
    """The held-out figures of one stage (:func:`editjudge.evaluate.pair_records.pair_metrics`)."""
    return {key: metrics.get(key) for key in ("n", "answer_rate", "accuracy", "accuracy_strict", "accuracy_ties",
                                              "position_consistency")}


def run_pairwise_demo(out: str | Path = DEFAULT_OUT, sources: int = SOURCES, candidates: int = CANDIDATES,
                      warm_start_steps: int | None = None, grpo_steps: int | None = None, seed: int = 0,
                      eval_every: int = 10, preset: str | Path = PRESET, progress: bool = True, *,
                      hidden_size: int = HIDDEN_SIZE, qk_scale: float = QK_SCALE, template: str = TEMPLATE,
                      settings_overrides: dict[str, Any] | None = None, threads: int = 1) -> dict[str, Any]:
    """Run the pairwise demo into ``out``; return the summary (also written to ``out/summary.json``)."""
    import torch

    from editjudge.data.writer import atomic_write_text
    from editjudge.evaluate.pair_records import judge_pairs, pair_metrics, read_pair_rows, write_pair_records
    from editjudge.judge import Judge
    from editjudge.judge.backends.transformers import TransformersBackend
    from editjudge.tiny import ANSWER_WORDS
    from editjudge.train import trl as engine

    with begin(out, preset, sources=sources, candidates=candidates, seed=seed, grpo_steps=grpo_steps,
               warm_start_steps=warm_start_steps, settings_overrides=settings_overrides,
               threads=threads) as (out, settings, stage):
        world = build_world(out, stage, task="red_square", sources=sources, candidates=candidates, seed=seed,
                            what="a blue square, 'make the square red' (each candidate unchanged or red)",
                            hidden_size=hidden_size, qk_scale=qk_scale, template=template,
                            model_options={"answer_words": ANSWER_WORDS}, format=FORMAT, progress=progress,
                            ties=False,
                            preparing="preparing pairs (prepare --pairs --no-ties): candidates of one source paired "
                                      "inside each split, both orders, only pairs of a red and an unchanged candidate")
        prepared = world.prepared
        pairs = prepared.report["pairs"]
        print(f"      {pairs['train']['rows']} train rows -> {prepared.train_path}\n"
              f"      {pairs['test']['rows']} held-out rows (other source images; A {pairs['test']['A']}, "
              f"B {pairs['test']['B']}) -> {prepared.test_path}")
        rows = read_pair_rows(prepared.test_path)
        tokens = settings.max_completion_length

        def judge_rows(model, processor, show: bool = progress) -> list:
            backend = TransformersBackend.from_loaded(model, processor, batch_size=32)
            judge = Judge.from_backend(backend, format=FORMAT, template=template, max_new_tokens=tokens, seed=seed)
            with torch.random.fork_rng():
                return judge_pairs(rows, judge, progress=show)

        records: dict[str, list] = {}
        curve: list[dict[str, Any]] = []
        processor, model = engine.load_model(world.model_dir)
        stage("judging the held-out pairs with the untrained model")
        records["untrained"] = judge_rows(model, processor)

        def warm_start_figures(model) -> dict[str, Any]:  # noqa: ANN001
            records["warm start"] = judge_rows(model, processor)
            return stage_figures(pair_metrics(records["warm start"]))

        result = train_with_curve(
            stage, settings, preset, world, model, processor, curve, eval_every, warm_start_figures,
            lambda model: stage_figures(pair_metrics(judge_rows(model, processor, show=False))),
            lambda point: (f"pairwise accuracy {point['accuracy']:.2f}, position consistency "
                           f"{point['position_consistency'] or 0:.2f}"))

        stage("judging the held-out pairs with the trained adapter")
        records["after GRPO"] = judge_rows(result.model, processor)
        curve.append({"step": settings.max_steps, **stage_figures(pair_metrics(records["after GRPO"]))})
        report_dir = out / "report"
        report_dir.mkdir(parents=True, exist_ok=True)
        for name, recs in records.items():
            write_pair_records(recs, report_dir / f"{name.replace(' ', '_')}.pairs.jsonl")
        metrics = {name: pair_metrics(recs) for name, recs in records.items()}
        atomic_write_text(report_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    summary = base_summary(out, seed=seed, preset=preset, hidden_size=hidden_size, qk_scale=qk_scale,
                           template=template, result=result, report=report_dir / "metrics.json", curve=curve,
                           task=TASK, format=FORMAT, n_train_rows=pairs["train"]["rows"],
                           n_heldout_rows=pairs["test"]["rows"],
                           stages={name: stage_figures(m) for name, m in metrics.items()})
    return finish(out, summary, stage)


def print_summary(summary: dict[str, Any]) -> None:
    """The closing table: held-out pairwise accuracy and position consistency per stage."""
    print("\n" + "=" * 96)
    print(f"editjudge pairwise demo finished in {summary['seconds']:.0f} s: {summary['n_heldout_rows']} held-out pair "
          "rows (source images never seen in training, each pair in both orders, no ties); a constant answer scores at "
          "most 50%\n")
    print("stage             answered  accuracy  position consistency")
    for name, f in summary["stages"].items():
        print(f"  {name:<14} {pct(f['answer_rate'])}   {pct(f['accuracy'])}      {pct(f['position_consistency'])}")
    curve = summary.get("learning_curve") or []
    if len(curve) > 2:
        print("\nheld-out pairwise accuracy during GRPO (step: accuracy)  "
              + ", ".join(f"{p['step']}: {100 * (p['accuracy'] or 0):.0f}%" for p in curve))
    print(f"\nadapter       {summary['adapter']}\nmetrics       {summary['report']}\n"
          f"step metrics  {summary['metrics_jsonl']}")
    print("The warm start taught the answer format with A, B and tie for every prompt; what the judge knows about "
          "the two edits it learnt from GRPO's reward.")
    print(reproduce_line(summary))


def run(args: Any) -> int:
    """``editjudge demo --task pairwise``."""
    return run_task(args, run_pairwise_demo, print_summary, out=DEFAULT_OUT, sources=SOURCES,
                    candidates=CANDIDATES)


__all__ = ["PRESET", "TASK", "print_summary", "run", "run_pairwise_demo", "stage_figures"]
