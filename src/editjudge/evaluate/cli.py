"""``editjudge eval``: measure one or more judges and write ``metrics.json`` + ``report.md`` with plots.

Inputs (any mix; each becomes one judge in the report):

* ``--predictions FILE…`` — JSONL written by ``editjudge score --out``;
* ``--verl-dumps DIR…`` — verl's ``trainer.validation_data_dir`` (or ``rollout_data_dir``) folders of
  ``<step>.jsonl``: the last step (or ``--step``) is evaluated, every step goes into the training curves;
* ``--data test.parquet --model M [--adapter A] [--backend B]`` — run a judge over a prepared parquet now.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_OUT = "eval_report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Measure a judge: parse/format rate, exact/±1/±2 accuracy, MAE, Spearman/Kendall/Pearson, pairwise accuracy "
        "(strict as EditScore, with ties as EditReward-Bench), best-of-N regret, per-label accuracy and bootstrap "
        "intervals; writes metrics.json and report.md with plots. Metric definitions: docs/evaluate.md."
    )
    parser.epilog = (
        "examples:\n"
        "  editjudge eval --predictions preds.jsonl --out report/\n"
        "  editjudge eval --predictions base.jsonl trained.jsonl --name base trained --compare --out cmp/\n"
        "  editjudge eval --verl-dumps checkpoints/val_generations --out val_report/\n"
        "  editjudge eval --data data/test.parquet --model Qwen/Qwen2.5-VL-3B-Instruct --adapter lora/ --out r/"
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    src = parser.add_argument_group("inputs (at least one)")
    src.add_argument("--predictions", nargs="+", default=[], metavar="FILE",
                     help="predictions JSONL files written by `editjudge score --out` (one judge each)")
    src.add_argument("--verl-dumps", nargs="+", default=[], metavar="DIR",
                     help="verl dump folders of <step>.jsonl (trainer.validation_data_dir / rollout_data_dir)")
    src.add_argument("--training-log", metavar="JSONL",
                     help="a trainer's per-step log to plot (e.g. the TRL engine's <output-dir>/metrics.jsonl)")
    src.add_argument("--data", metavar="PARQUET",
                     help="prepared test.parquet to judge now with --model (options: see the judge groups below); "
                          "pair rows (prepare --pairs) are judged by a pairwise judge directly, or by a pointwise "
                          "judge on the same pairs")
    src.add_argument("--pair-predictions", nargs="+", default=[], metavar="FILE",
                     help="pair records saved by `eval --data PAIRS --save-predictions` (<name>.pairs.jsonl), one "
                          "judge each: side by side in one table")
    src.add_argument("--limit", type=int, default=None, help="with --data: judge only the first N rows")
    src.add_argument("--save-predictions", action="store_true",
                     help="with --data: also write the judge's records to OUT/<name>.predictions.jsonl")
    # The judge's options are the ones `editjudge score` has (one source of truth for image sizing, sampling,
    # backends); here --model is only needed with --data.
    from editjudge.judge.cli_common import add_judge_arguments

    add_judge_arguments(parser)
    for action in parser._actions:
        if action.dest == "model":
            action.required = False
            action.help = "with --data: " + (action.help or "")
    out = parser.add_argument_group("report")
    out.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    out.add_argument("--name", nargs="+", default=[], metavar="NAME",
                     help="names of the judges, in input order (predictions, dumps, then --data)")
    out.add_argument("--compare", action="store_true",
                     help="one side-by-side report for all judges, with paired differences to the first judge on "
                          "the items they share (default: one report per judge under OUT/<name>)")
    out.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for intervals; 0 = off")
    out.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    out.add_argument("--pair-truth", default="label", choices=["label", "gt_score"],
                     help="order pairs by the 0-9 label (default) or the raw score")
    out.add_argument("--step", type=int, default=None, help="verl step to evaluate (default: the last one)")
    out.add_argument("--force", action="store_true", help="write into an --out folder that already holds files")


def _error(message: str) -> int:
    """A usage or input mistake: exit 2, like every verb."""
    print(f"editjudge eval: error: {message}", file=sys.stderr)
    return 2


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


def _judge_records(args: argparse.Namespace, rows: list[dict[str, Any]]) -> list[Any]:
    from editjudge.evaluate.readers import judge_parquet
    from editjudge.judge.cli_common import judge_from_args

    return judge_parquet(args.data, judge_from_args(args), limit=args.limit, progress=True, rows=rows)


def run(args: argparse.Namespace) -> int:
    from editjudge.evaluate.metrics import compute_metrics, per_step
    from editjudge.evaluate.readers import read_predictions, read_training_log, read_verl_dumps
    from editjudge.evaluate.report import slug, write_report

    if getattr(args, "pair_predictions", None) or (args.data and _pair_rows(args.data)):
        from editjudge.evaluate.pair_cli import run_pairs

        return run_pairs(args)
    if not (args.predictions or args.verl_dumps or args.data):
        return _error("nothing to evaluate: give --predictions FILE, --verl-dumps DIR or --data PARQUET --model M")
    if args.data and not args.model:
        return _error("--data needs --model (and optionally --adapter / --backend) to run a judge")
    if args.model and not args.data:
        return _error("--model needs --data PARQUET: the prepared test set to judge")
    from editjudge.data.writer import OutputExists, check_output

    try:
        check_output(args.out, force=args.force, flag="--out")
    except OutputExists as exc:
        return _error(str(exc))

    sources: list[tuple[str, str, Any]] = [("predictions", Path(p).stem, p) for p in args.predictions]
    sources += [("verl", Path(d).name or "verl", d) for d in args.verl_dumps]
    if args.data:
        from editjudge.judge.cli_common import judge_name

        sources.append(("judge", judge_name(args.model, args.adapter), args.data))
    if args.name and len(args.name) != len(sources):
        return _error(f"--name got {len(args.name)} names for {len(sources)} judges; give one per input")
    names = _unique(args.name or [s[1] for s in sources])
    if len({slug(n) for n in names}) != len(names):
        return _error(f"judge names must stay distinct as file names: {names}")

    records: dict[str, list[Any]] = {}
    logs: dict[str, list[dict[str, Any]]] = {}
    failures: dict[str, int] = {}
    try:
        # Every input is read and checked before a model is loaded (5-8 s wasted on a typo otherwise).
        rows = None
        if args.data:
            from editjudge.evaluate.readers import read_test_parquet

            rows = read_test_parquet(args.data, args.limit)
            if not rows:
                return _error(f"{args.data}: no rows to judge")
        if args.training_log:
            logs[Path(args.training_log).stem] = read_training_log(args.training_log)
        for (kind, _, where), name in zip(sources, names):
            if kind == "predictions":
                records[name] = read_predictions(where)
            elif kind == "verl":
                dumped = read_verl_dumps(where)
                logs[name] = per_step(dumped)
                steps = sorted({r.step for r in dumped if r.step is not None})
                step = args.step if args.step is not None else (steps[-1] if steps else None)
                if args.step is not None and args.step not in steps:
                    return _error(f"{where}: no dump for step {args.step}; steps present: {steps}")
                records[name] = [r for r in dumped if r.step == step]
            else:
                try:
                    records[name] = _judge_records(args, rows or [])
                except (OSError, ValueError, ImportError) as exc:
                    return _error(f"cannot set up the judge: {exc}")
            if not records[name]:
                return _error(f"{where}: no records to evaluate")
            failures[name] = sum(1 for r in records[name] if _is_failure(r))
    except (OSError, ValueError) as exc:
        return _error(str(exc))

    metrics = {}
    for name, recs in records.items():
        print(f"computing metrics for {name} ({len(recs)} records)…", file=sys.stderr)
        metrics[name] = compute_metrics(recs, bootstrap=args.bootstrap, seed=args.bootstrap_seed,
                                        pair_truth=args.pair_truth, progress=True)

    out = Path(args.out)
    if args.save_predictions:
        from editjudge.evaluate.records import write_records

        for name, recs in records.items():
            write_records(recs, out / f"{slug(name)}.predictions.jsonl")
    pages = []
    if args.compare or len(names) == 1:
        comparison = None
        if len(names) > 1:
            from editjudge.evaluate.compare import compare_judges

            comparison = compare_judges(records, bootstrap=args.bootstrap, seed=args.bootstrap_seed,
                                        pair_truth=args.pair_truth)
        pages.append(write_report(metrics, records, out, training_log=_merge_logs(logs), comparison=comparison))
    else:
        for name in names:
            log = _merge_logs({k: v for k, v in logs.items() if k == name or k not in names})
            pages.append(write_report({name: metrics[name]}, {name: records[name]}, out / slug(name), training_log=log))
    from editjudge.evaluate.failures import describe

    for name in names:
        m = metrics[name]
        print(f"{name}: n={m['n']} parse={_pct(m['format']['parse_rate'])} exact={_pct(m['accuracy']['exact'])} "
              f"±1={_pct(m['accuracy']['within_1'])} pairwise strict={_pct(m['pairwise']['strict']['value'])} "
              f"failed={failures.get(name, 0)} (counted as wrong)")
        for line in describe(m["format"].get("reasons") or []):  # why rows have no score, with an example each
            print(f"  {line}")
        for dim, d in (m.get("dimensions") or {}).items():  # a dimension judge: each dimension's figures
            print(f"  {dim}: labelled={d['n_labelled']} exact={_pct(d['accuracy']['exact'])} "
                  f"±2={_pct(d['accuracy']['within_2'])} pairwise strict={_pct(d['pairwise']['strict']['value'])}")
    for page in pages:
        print(f"report: {page}")
    judged = [name for name, (kind, _, _) in zip(names, sources) if kind == "judge"]
    for name in judged:
        if failures.get(name) == len(records[name]):
            top = (metrics[name]["format"].get("reasons") or [{}])[0]
            print(f"editjudge eval: error: the judge could not judge a single row: {top.get('count')} × "
                  f"{top.get('example', {}).get('message')} (all reasons: 'format.reasons' in metrics.json and the "
                  "report)", file=sys.stderr)
            return 1
    return 0


def _pair_rows(path: str) -> bool:
    from editjudge.evaluate.pair_records import is_pair_parquet

    return Path(path).is_file() and is_pair_parquet(path)


def _is_failure(record: Any) -> bool:
    from editjudge.judge.result import FAILURE_KINDS

    return bool(record.error) and str(record.error).startswith(FAILURE_KINDS)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _merge_logs(logs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]] | None:
    """One training log for the page: a single run as is, several runs with a ``run`` column."""
    if not logs:
        return None
    if len(logs) == 1:
        return next(iter(logs.values()))
    return [{"run": name, **row} for name, rows in logs.items() for row in rows]
