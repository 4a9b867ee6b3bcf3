"""``editjudge eval`` on pair rows (``prepare --pairs``): a pairwise judge directly, a pointwise judge on the same
pairs, or saved pair records of several judges side by side (``--pair-predictions``).

Writes ``metrics.json`` (one entry per judge: :func:`editjudge.evaluate.pair_records.pair_metrics` plus group-bootstrap
intervals) and ``report.md`` (one table, the judges side by side); ``--save-predictions`` writes each judge's
records as ``<name>.pairs.jsonl`` (what ``--pair-predictions`` reads back).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from editjudge.evaluate.pair_records import (MIRROR, PairRecord, judge_pairs, pair_metrics, read_pair_records,
                                             read_pair_rows, score_pairs, write_pair_records)

ROWS = [("accuracy", "accuracy with ties (the judge's own answers)"), ("accuracy_strict", "accuracy on preferences"),
        ("accuracy_ties", "accuracy on ties"), ("position_consistency", "position consistency (both orders agree)"),
        ("answer_rate", "answered (parsed)")]


def _error(message: str) -> int:
    print(f"editjudge eval: error: {message}", file=sys.stderr)
    return 2


def intervals(records: list[PairRecord], bootstrap: int, seed: int) -> dict[str, Any]:
    """Group-bootstrap 95 % intervals of accuracy and position consistency (groups: the pairs' source groups)."""
    from editjudge.evaluate.pairwise import bootstrap_intervals

    groups = sorted({str(r.group) for r in records})
    index = {g: i for i, g in enumerate(groups)}
    g = np.array([index[str(r.group)] for r in records])
    right = np.array([r.preference == r.label for r in records], dtype=float)
    by_pair: dict[str, dict[bool, PairRecord]] = {}
    for r in records:
        by_pair.setdefault(r.pair, {})[r.swapped] = r
    both = [(p[False], p[True]) for p in by_pair.values() if len(p) == 2
            and p[False].preference is not None and p[True].preference is not None]
    pg = np.array([index[str(a.group)] for a, _ in both], dtype=int)
    agree = np.array([a.preference == MIRROR[b.preference] for a, b in both], dtype=float)

    def statistic(weights: np.ndarray) -> dict[str, float | None]:
        w, wp = weights[g], weights[pg] if len(pg) else np.zeros(0)
        return {"accuracy": float((w * right).sum() / w.sum()) if w.sum() else None,
                "position_consistency": float((wp * agree).sum() / wp.sum()) if wp.sum() else None}

    return bootstrap_intervals(statistic, len(groups), n_resamples=bootstrap, seed=seed)


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def report_markdown(metrics: dict[str, dict[str, Any]], data: str | None) -> str:
    names = list(metrics)
    lines = ["# Judges on pairs", "", f"Pair rows: `{data}`" if data else "Pair records given with --pair-predictions",
             "", "| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key, label in ROWS:
        cells = []
        for name in names:
            m = metrics[name]
            iv = m.get("intervals", {}).get(key) or {}
            band = f" [{_fmt(iv['low'])}, {_fmt(iv['high'])}]" if iv.get("low") is not None else ""
            cells.append(_fmt(m.get(key)) + band)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| margin: accuracy with ties, tie-calibrated (EditReward) | "
                 + " | ".join(_fmt(metrics[n]["margin"]["with_ties_calibrated"]) for n in names) + " |")
    lines.append("| margin: strict accuracy (EditScore) | "
                 + " | ".join(_fmt(metrics[n]["margin"]["strict"]) for n in names) + " |")
    lines.append("| rows | " + " | ".join(str(metrics[n]["n"]) for n in names) + " |")
    lines += ["", "A pairwise judge's margin is p(A) − p(B); a pointwise judge's is score(A) − score(B), and its answer "
              "(the margin's sign) never depends on the order, so its position consistency is 1 by construction. "
              "Rows without an answer count wrong. Definitions: docs/evaluate.md (judges on pairs).", ""]
    for name in names:
        m = metrics[name]
        lines.append(f"- {name}: answers {m['answers']}, labels {m['labels']}"
                     + (f", errors {m['errors']}" if m["errors"] else ""))
    return "\n".join(lines) + "\n"


def run_pairs(args: argparse.Namespace) -> int:
    """The pair branch of ``editjudge eval``."""
    from editjudge.data.writer import OutputExists, atomic_write_text, check_output
    from editjudge.evaluate.report import slug

    if args.verl_dumps or args.predictions:
        return _error("pair rows are evaluated on their own: give --data PAIRS.parquet --model M and/or "
                      "--pair-predictions FILE…, without --predictions / --verl-dumps")
    if args.data and not args.model:
        return _error("--data needs --model (and optionally --adapter / --backend) to run a judge")
    try:
        check_output(args.out, force=args.force, flag="--out")
    except OutputExists as exc:
        return _error(str(exc))
    records: dict[str, list[PairRecord]] = {}
    sources = [(Path(p).name.split(".")[0], p) for p in args.pair_predictions or []]
    if args.data:
        sources.append((Path(args.adapter or args.model).name or "judge", None))
    names = args.name or [s[0] for s in sources]
    if len(names) != len(sources):
        return _error(f"--name got {len(names)} names for {len(sources)} judges; give one per input")
    try:
        rows = read_pair_rows(args.data, args.limit) if args.data else []
        if args.data and not rows:
            return _error(f"{args.data}: no pair rows to judge")
        for name, (_, path) in zip(names, sources):
            if path is not None:
                records[name] = read_pair_records(path)
                continue
            from editjudge.formats import PairwiseFormat
            from editjudge.judge.cli_common import judge_from_args

            judge = judge_from_args(args)
            judged = judge_pairs if isinstance(judge.format, PairwiseFormat) else score_pairs
            records[name] = judged(rows, judge, progress=True)
    except (OSError, ValueError, ImportError) as exc:
        return _error(str(exc))
    out = Path(args.out)
    metrics = {}
    for name, recs in records.items():
        metrics[name] = {**pair_metrics(recs), "intervals": intervals(recs, args.bootstrap, args.bootstrap_seed)}
        if args.save_predictions:
            write_pair_records(recs, out / f"{slug(name)}.pairs.jsonl")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    page = atomic_write_text(out / "report.md", report_markdown(metrics, args.data))
    for name, m in metrics.items():
        print(f"{name}: {m['n']} pair rows, accuracy {_fmt(m['accuracy'])} (preferences {_fmt(m['accuracy_strict'])}, "
              f"ties {_fmt(m['accuracy_ties'])}), position consistency {_fmt(m['position_consistency'])}, "
              f"answered {_fmt(m['answer_rate'])}")
    print(f"report: {page}")
    judged_all_failed = args.data and all(r.preference is None for r in records[names[-1]])
    if judged_all_failed:
        print("editjudge eval: error: the judge answered no pair (see the errors in the report)", file=sys.stderr)
        return 1
    return 0


__all__ = ["intervals", "report_markdown", "run_pairs"]
