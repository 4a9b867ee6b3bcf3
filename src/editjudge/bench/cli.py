"""``editjudge bench SUITE --root DIR``: score a judge on a public edit-judge benchmark with its own metric."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from editjudge.data.writer import OutputExists, check_output

SUITE_HELP = {
    "editscore": "EditScore's EditReward-Bench (VectorSpaceLab): the HF parquet of EditScore/EditReward-Bench; "
                 "strict pairwise accuracy, macro over 13 task types and 4 groups",
    "tiger": "TIGER-Lab's EditReward-Bench: EditReward_Bench_{2,3,4}pair.json; strict ranking accuracy per K and "
             "overall (its table), tie-calibrated pairwise accuracy",
    "genai": "GenAI-Bench (image editing) as TIGER's eval_bench.py reads it: a JSON list of {prompt, path_src, path1, "
             "path2, model1_dim1_score, model2_dim1_score}; accuracy with ties",
    "imagenhub": "ImagenHub human ratings as TIGER's eval_bench.py reads them: a JSON list of {instruction, "
                 "input_path, output_path, score, model}; Spearman per model",
    "ours": "our own data: a prepared .parquet, a .jsonl/.csv manifest or a seed folder; groups of >= 2 scored edits",
}
FAILED_SHOWN = 50
GROUPS = {  # what the bootstrap resamples, per suite (failed items are groups of their own)
    "editscore": "groups: one pair of images, its rows under every dimension together",
    "tiger": "groups: one item (its 1, 3 or 6 comparisons together)",
    "genai": "groups: the items of one source image",
    "imagenhub": "groups: one prompt",
    "ours": "groups: one source group",
}
UNJUDGED = ("input_error", "backend_error")  # an edit the judge never saw (unlike an answer that did not parse)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Score a judge on a public edit-judge benchmark with that benchmark's exact metric and print it beside the "
        "published results. Each distinct (source, edited, instruction) is judged once; results are cached in "
        "OUT/scores.jsonl so an interrupted run resumes with --resume. Definitions and sources: docs/bench.md."
    )
    parser.epilog = "suites:\n" + "\n".join(f"  {k:10s} {v}" for k, v in SUITE_HELP.items()) + (
        "\n\nexamples:\n"
        "  editjudge bench tiger --root EditReward-Bench/ --model Qwen/Qwen2.5-VL-3B-Instruct --adapter lora/ --out b/\n"
        "  editjudge bench editscore --root EditReward-Bench-parquet/ --model gpt-4.1 --backend openai \\\n"
        "      --base-url https://api.openai.com/v1 --samples 4 --out b_gpt/\n"
        "  editjudge bench ours --root data/test.parquet --predictions b/scores.jsonl --out b2/"
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("suite", metavar="SUITE", help=f"one of: {', '.join(SUITE_HELP)}")
    where = parser.add_argument_group("benchmark")
    where.add_argument("--root", required=True, help="the benchmark's folder (or file) in its published layout")
    where.add_argument("--dimension", nargs="+", default=None,
                       help="editscore: only these dimensions (prompt_following, consistency, overall; default all)")
    where.add_argument("--predictions", metavar="JSONL",
                       help="scores instead of a judge: a bench scores.jsonl (by key) or `editjudge score` lines "
                            "(by source, edited, instruction)")
    from editjudge.judge.cli_common import add_judge_arguments

    add_judge_arguments(parser)
    for action in parser._actions:
        if action.dest == "model":
            action.required = False
    out = parser.add_argument_group("report")
    out.add_argument("--out", required=True, help="output folder: bench.json, bench.md, scores.jsonl (the cache)")
    out.add_argument("--resume", action="store_true", help="continue an interrupted run in --out from its cache")
    out.add_argument("--force", action="store_true", help="start over in a non-empty --out (its cache is removed)")
    out.add_argument("--name", default=None, help="the judge's name in the report (default: adapter or model name)")
    out.add_argument("--bootstrap", type=int, default=1000, help="group-bootstrap resamples; 0 = off")
    out.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap")


def _usage(message: str) -> int:
    print(f"editjudge bench: error: {message}", file=sys.stderr)
    return 2


def _check(args: argparse.Namespace) -> str | None:
    from editjudge.bench.suites import READERS

    if args.suite not in READERS:
        return f"unknown suite {args.suite!r}; expected one of: {', '.join(READERS)}"
    if bool(args.model) == bool(args.predictions):
        return "give exactly one of --model M (run a judge) or --predictions FILE (scores made before)"
    if args.dimension and args.suite != "editscore":
        return "--dimension applies to the editscore suite only"
    if args.resume and args.force:
        return "--resume and --force exclude each other"
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file; give a folder"
    try:  # the one output rule of every verb
        check_output(out, force=args.force, resume=args.resume, flag="--out", can_resume=True)
    except OutputExists as exc:
        return str(exc)
    return None


def _judge_summary(args: argparse.Namespace) -> dict[str, Any]:
    """The judge as the report names it."""
    if args.predictions:
        return {"predictions": str(args.predictions)}
    return {"model": str(args.model), "adapter": args.adapter, "backend": args.backend, "samples": args.samples,
            "temperature": args.temperature, "template": args.template, "max_new_tokens": args.max_new_tokens,
            "seed": args.seed, "prepare_report": args.prepare_report}


def _judge_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What the cached scores depend on: the judge's whole fingerprint (:mod:`editjudge.judge.run_fingerprint`)."""
    if args.predictions:
        return {"predictions": str(args.predictions)}
    from editjudge.judge.run_fingerprint import judge_fingerprint

    return judge_fingerprint(args)


def _dimension_note(suite: str, names: list[str], compared: dict[str, str]) -> dict[str, Any]:
    """``{"dimensions": …}``: what the judge's score was on each pair (its answer under the pair's dimension, or its
    one score), for the editscore suite and for any dimension judge; ``{}`` otherwise (the report as it was)."""
    if compared:
        note = ("each pair compared by the judge's answer under the benchmark's dimension of that pair (EditScore's "
                "published table is per dimension)")
    elif suite == "editscore":
        note = ("a one-score judge: its one score compares every pair, whatever the pair's dimension (train with "
                "`prepare --dimensions editscore` to compare per dimension)")
    elif names:
        note = "a dimension judge on a suite without dimensions: its overall (its set's rule) compares every pair"
    else:
        return {}
    return {"dimensions": {"judge_dimensions": names, "compared_by": compared, "note": note}}


def _error_kind(error: str | None) -> str:
    return "no_score" if not error else error.split(":", 1)[0]


def run(args: argparse.Namespace) -> int:
    from editjudge.bench import metrics, report, scoring
    from editjudge.bench.published import PUBLISHED
    from editjudge.bench.suites import READERS, FailedItem, SuiteError

    problem = _check(args)
    if problem:
        return _usage(problem)
    try:
        suite = READERS[args.suite](args.root)
    except SuiteError as exc:
        return _usage(f"{args.suite}: {exc}")
    if not suite.items and not suite.failed:
        return _usage(f"{args.suite}: {args.root} holds no items")
    if args.dimension:
        suite.items = [i for i in suite.items if i.dimension in args.dimension]
        suite.failed = [f for f in suite.failed if f.dimension in args.dimension]
    out = Path(args.out)
    cache_path, meta_path = out / scoring.CACHE_NAME, out / "bench_settings.json"
    settings = {"suite": args.suite, "judge": _judge_settings(args)}
    if args.force and out.is_dir():
        for path in (cache_path, meta_path, out / "bench.json", out / "bench.md"):
            path.unlink(missing_ok=True)
    if args.resume and meta_path.is_file():
        from editjudge.judge.run_fingerprint import differences

        try:
            before = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return _usage(f"--resume: {meta_path} is unreadable ({exc}); use a new --out or --force")
        changed = differences(before, settings)
        if changed:
            return _usage(f"--resume: {out} was made with other settings; its cache would mix two judges' scores. "
                          f"What differs: {'; '.join(changed)}. Use the same settings, a new --out, or --force")

    print(f"{args.suite}: {len(suite.items)} items read, {len(suite.failed)} failed to read", file=sys.stderr)
    work = scoring.plan(suite.items)
    cached = scoring.read_cache(cache_path) if args.resume else {}
    cached = {k: v for k, v in cached.items() if k in work.edits}
    if args.predictions:
        try:
            scores = scoring.read_predictions(args.predictions, work)
        except (OSError, ValueError) as exc:
            return _usage(str(exc))
        judged_now = 0
    else:
        from editjudge.data.writer import atomic_write_text
        from editjudge.judge.cli_common import judge_from_args

        try:
            judge = judge_from_args(args)
        except (ValueError, OSError, ImportError) as exc:
            return _usage(f"cannot set up the judge: {exc}")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(meta_path, json.dumps(settings, indent=2, sort_keys=True) + "\n")
        scores = scoring.judge_missing(judge, work, cache_path, cached)
        judged_now = len(work.edits) - len(cached)
    unjudged = [k for k in work.edits if k not in scores or (scores[k].error or "").startswith(UNJUDGED)]

    failed = list(suite.failed) + [
        FailedItem(i.id, "unreadable_image", work.unreadable[i.id], i.subset, i.dimension,
                   len(i.candidates) * (len(i.candidates) - 1) // 2)
        for i in suite.items if i.id in work.unreadable
    ]
    readable = [i for i in suite.items if i.id not in work.unreadable]
    table = metrics.build_table(readable, failed, work.keys)
    from editjudge.bench.dimensions import by_dimension, judge_dimensions

    names = judge_dimensions(scores.values())
    per_dimension = args.suite == "editscore" and bool(names)  # each pair under its own dimension
    compared: dict[str, str] = {}
    results: dict[str, Any] = {}
    for variant in ("score", "expected_score"):
        values = {k: getattr(scores[k], variant) if k in scores else None for k in work.edits}
        if per_dimension:
            keys, values, compared = by_dimension(readable, work.keys, scores, variant, names)
            table = metrics.build_table(readable, failed, keys)
        if variant == "expected_score" and not any(v is not None for v in values.values()):
            results[variant] = {"value": None, "reason": "no candidate has an expected score (no answer-token "
                                                          "probabilities from the backend, or no parsed answer)"}
            continue
        res = metrics.evaluate(args.suite, table, values, args.bootstrap, args.bootstrap_seed)
        missing = [k for k, v in values.items() if v is None]
        res["n_items_not_scored"] = len(readable) - res["n_items_fully_scored"]
        res["judge_failure_reasons"] = dict(sorted(Counter(
            _error_kind(scores[k].error) if k in scores else "no_prediction" for k in missing).items()))
        results[variant] = res

    from editjudge.judge.cli_common import judge_name

    name = args.name or (judge_name(args.model, args.adapter) if args.model else Path(args.predictions).stem)
    reasons = Counter(f.reason for f in failed)
    bench = {
        "suite": args.suite,
        "root": str(args.root),
        "judge": {"name": name, **_judge_summary(args)},
        "scoring": {"distinct_edits": len(work.edits), "comparisons": work.comparisons,
                    "comparisons_per_edit": work.comparisons / len(work.edits) if work.edits else None,
                    "judged_now": judged_now, "from_cache": len(cached) if not args.predictions else 0},
        "items": {"n_read": len(readable), "n_failed": len(failed), "failure_reasons": dict(sorted(reasons.items())),
                  "failed_examples": [{"id": f.id, "reason": f.reason, "detail": f.detail} for f in failed[:FAILED_SHOWN]]},
        "results": results,
        **_dimension_note(args.suite, names, compared),
        "bootstrap": {"resamples": args.bootstrap, "seed": args.bootstrap_seed, "level": 0.95,
                      "resample": GROUPS[args.suite]},
        "published": PUBLISHED[args.suite],
    }
    from editjudge.evaluate.metrics import json_safe

    json_path, md_path = report.write(json_safe(bench), out)
    head = results["score"]
    value = head.get("value")
    print(f"{args.suite}: {head.get('headline', 'headline')} = {'–' if value is None else f'{value:.4f}'} "
          f"({len(failed)} items failed to read, {head.get('n_items_not_scored', 0)} not scored by the judge)",
          file=sys.stderr)
    print(f"report: {md_path}\n        {json_path}", file=sys.stderr)
    if work.edits and len(unjudged) == len(work.edits):
        print(f"editjudge bench: error: no edit could be judged ({results['score'].get('judge_failure_reasons')}); "
              "check the images, the server, or that --predictions names this suite's files", file=sys.stderr)
        return 1
    return 0
