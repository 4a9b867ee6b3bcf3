"""``editjudge score``: judge one edit, or every edit of a manifest / seed folder / prepared parquet into a predictions
file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from editjudge.data.files import file_problem
from editjudge.data.writer import check_output
from editjudge.judge.cli_common import add_judge_arguments, judge_from_args, prepare_report
from editjudge.judge.output import check_output_path, outcome, prediction, prediction_sink

DEFAULT_MEDIAN, DEFAULT_MAD = 0.9, 0.1  # the seed's --score_median / --score_mad


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Score image edits with a trained judge. One pair: --source --edited --instruction (prints JSON). "
        "Many: --manifest (JSONL/CSV with source, edited, instruction[, score, group, id]), a seed-layout folder or "
        "a prepared parquet (`editjudge prepare`'s train/test.parquet: its stored images, labelled with each row's "
        "ground truth) -> --out preds.jsonl / preds.csv / preds.parquet (one record per edit, the same fields in "
        "each format; a bad edit or row gets an 'error', the rest go on)."
    )
    what = parser.add_argument_group("what to score")
    what.add_argument("--source", help="the source (input) image of one edit")
    what.add_argument("--edited", help="the edited (output) image of one edit")
    what.add_argument("--instruction", help="the edit instruction of one edit")
    what.add_argument(
        "--manifest",
        help="a .jsonl/.csv manifest, a folder in the seed layout, or a prepared .parquet (from `editjudge prepare`)",
    )
    what.add_argument(
        "--out", help="predictions file (.jsonl, .csv or .parquet, written atomically); required with --manifest"
    )
    what.add_argument("--force", action="store_true", help="replace an existing --out file")
    labels = parser.add_argument_group(
        "ground truth (when the manifest has scores; a prepared parquet's labels are its rows' ground_truth)"
    )
    labels.add_argument(
        "--score-median", type=float, default=None,
        help=f"median that turns scores into labels (default: the prepare report's, else {DEFAULT_MEDIAN})",
    )
    labels.add_argument(
        "--score-mad", type=float, default=None,
        help=f"MAD that turns scores into labels (default: the prepare report's, else {DEFAULT_MAD})",
    )
    add_judge_arguments(parser)
    from editjudge.judge.ray_score import add_ray_arguments

    add_ray_arguments(parser)  # --ray: a Ray Data actor pool (editjudge.judge.ray_score)


def _check(args: argparse.Namespace) -> str | None:
    pair = [args.source, args.edited, args.instruction]
    if args.manifest and any(pair):
        return "give either --manifest or --source/--edited/--instruction, not both"
    if not args.manifest and not all(pair):
        return "give --source, --edited and --instruction for one edit, or --manifest for many"
    if args.manifest and not args.out:
        return "--manifest needs --out preds.jsonl (or .csv / .parquet)"
    if args.out:
        try:
            check_output_path(args.out)
            check_output(args.out, force=args.force, flag="--out")
        except ValueError as exc:
            return str(exc)
    if args.manifest and not Path(args.manifest).exists():
        return f"--manifest {args.manifest}: no such file or folder"
    for flag, value in (("--source", args.source), ("--edited", args.edited)):
        problem = file_problem(value) if value else None
        if problem is not None:
            return f"{flag} {problem.detail}"
    return None


def read_manifest(args: argparse.Namespace) -> tuple[list[Any], str | None]:
    """The items of --manifest (records and rejects; :func:`editjudge.judge.score_items.read_items`), read before
    any model loads; (items, None) or ([], problem)."""
    from editjudge.judge.score_items import read_items

    try:
        return read_items(args.manifest, dimension_labels(args)), None
    except (OSError, ValueError) as exc:
        return [], str(exc)


def run(args: argparse.Namespace) -> int:
    problem = _check(args)
    if not problem and args.manifest:
        args._items, problem = read_manifest(args)  # inputs first: a bad manifest must not cost a model load
    if not problem:
        try:
            _label_settings(args)
        except (ValueError, TypeError) as exc:
            problem = str(exc)
    if problem:
        print(f"editjudge score: error: {problem}", file=sys.stderr)
        return 2
    if args.ray:
        from editjudge.judge.ray_score import run_ray

        return run_ray(args)
    try:
        judge = judge_from_args(args)
    except (ValueError, OSError, ImportError) as exc:
        print(f"editjudge score: error: cannot set up the judge: {exc}", file=sys.stderr)
        return 2
    if args.manifest:
        return _score_manifest(args, judge)
    return _score_pair(args, judge)


def _label_settings(args: argparse.Namespace) -> tuple[float, float]:
    labels = prepare_report(args).get("labels") or {}
    recorded_median = labels.get("median")  # None in a dimension set's report: each dimension has its own
    recorded_mad = labels.get("mad")
    median = args.score_median if args.score_median is not None else (
        DEFAULT_MEDIAN if recorded_median is None else recorded_median)
    mad = args.score_mad if args.score_mad is not None else DEFAULT_MAD if recorded_mad is None else recorded_mad
    if not float(mad) > 0:
        raise ValueError(f"--score-mad must be positive, got {mad}")
    return float(median), float(mad)


def dimension_labels(args: argparse.Namespace) -> Any:
    """How a dimension judge's rows are labelled (:class:`editjudge.judge.score_items.DimensionLabels`), or None
    for a one-score judge: each dimension's median / MAD is --score-median / --score-mad when given, else the
    prepare report's for that dimension, else the seed's defaults."""
    from editjudge.data.dimension_scores import Scale
    from editjudge.formats import DimensionsFormat
    from editjudge.judge.cli_common import judgment_format
    from editjudge.judge.score_items import DimensionLabels

    fmt = judgment_format(args)
    if not isinstance(fmt, DimensionsFormat):
        return None
    recorded = ((prepare_report(args).get("labels") or {}).get("dimensions") or {}).get("dimensions") or {}
    scales = {}
    for name in fmt.names:
        known = recorded.get(name) or {}
        median = args.score_median if args.score_median is not None else known.get("median", DEFAULT_MEDIAN)
        mad = args.score_mad if args.score_mad is not None else known.get("mad", DEFAULT_MAD)
        if not float(mad) > 0:
            raise ValueError(f"dimension {name!r}: the MAD must be positive, got {mad}")
        scales[name] = Scale(float(median), float(mad), False)
    return DimensionLabels(fmt, scales)


def _score_pair(args: argparse.Namespace, judge: Any) -> int:
    result = judge.score(args.source, args.edited, args.instruction)
    dims = dimension_labels(args)
    record = prediction(
        id="pair", source=args.source, edited=args.edited, instruction=args.instruction, group=None, result=result,
        **(dims.record_fields(None) if dims else {}),
    )
    if args.out:
        with prediction_sink(args.out, dims.fmt.names if dims else None) as sink:
            sink.add(record)
    print(json.dumps(record, ensure_ascii=False, indent=2))
    return 1 if result.is_failure else 0


def _score_manifest(args: argparse.Namespace, judge: Any) -> int:
    from editjudge.judge.score_items import edit_of, is_rejected, judge_row, reject_prediction, row_prediction

    items, problem = (args._items, None) if hasattr(args, "_items") else read_manifest(args)
    if problem:
        print(f"editjudge score: error: {problem}", file=sys.stderr)
        return 2
    median, mad = _label_settings(args)
    dims = dimension_labels(args)
    rows = [judge_row(i, item, median, mad, dims) for i, item in enumerate(items) if not is_rejected(item)]
    results = judge.iter_scores([edit_of(r) for r in rows], progress=True)
    by_position = iter(rows)
    counts = {"parsed": 0, "unparsed": 0, "failed": 0}
    with prediction_sink(args.out, dims.fmt.names if dims else None) as sink:
        for item in items:
            if is_rejected(item):
                record = reject_prediction(item, median, mad, dims)
            else:
                record = row_prediction(next(by_position), next(results))
            counts[outcome(record)] += 1
            sink.add(record)
    results.close()  # finishes the progress bar
    print(
        f"scored {len(items)} edits -> {args.out}: {counts['parsed']} answered, {counts['unparsed']} unparsable "
        f"answers, {counts['failed']} could not be judged (see the 'error' field)",
        file=sys.stderr,
    )
    return 0 if counts["failed"] < len(items) or not items else 1
