"""``editjudge best-of-n --pairwise knockout|round-robin``: rank candidates by a pairwise judge's comparisons.

The tournament itself is :mod:`editjudge.judge.tournament` (through :meth:`editjudge.judge.Judge.tournament`);
this module holds its flags, its table and the cost line (comparisons = prompts sent to the judge).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from editjudge.judge.tournament import AGGREGATES, MODES, comparisons_needed


def add_tournament_arguments(parser: argparse.ArgumentParser) -> None:
    """The pairwise judge's flags of ``best-of-n``."""
    group = parser.add_argument_group(
        "pairwise judge (a judge trained on `prepare --pairs` rows: --format pairwise or its prepare report)")
    group.add_argument("--pairwise", choices=MODES, default=None,
                       help="rank by comparisons: knockout (N-1 comparisons: winners advance, ties go to the larger "
                            "of p(A), p(B)) or round-robin (N(N-1)/2, aggregated by --aggregate); default with a "
                            "pairwise judge: knockout")
    group.add_argument("--aggregate", choices=AGGREGATES, default="bt",
                       help="round-robin: Bradley-Terry strengths (choix, default) or wins (a tie counts half)")
    group.add_argument("--both-orders", action="store_true",
                       help="judge every comparison in both orders and combine them (twice the cost; reports the "
                            "position consistency)")
    group.add_argument("--order-seed", type=int, default=0,
                       help="seed of which candidate of each comparison is shown as A (default 0)")


def wants_tournament(args: argparse.Namespace, judge: Any) -> bool:
    """Whether ``best-of-n`` ranks by comparisons: ``--pairwise``, or a pairwise judge. ``ValueError`` when
    ``--pairwise`` is asked of a judge that scores one edit at a time."""
    from editjudge.formats import PairwiseFormat

    pairwise = isinstance(judge.format, PairwiseFormat)
    if args.pairwise and not pairwise:
        raise ValueError(f"--pairwise {args.pairwise} needs a pairwise judge (--format pairwise, or the prepare "
                         f"report of `prepare --pairs`); this judge is {judge.format.spec}: leave --pairwise out")
    return pairwise


def run_tournaments(args: argparse.Namespace, judge: Any,
                    groups: Sequence[tuple[Any, str, list[str], list[Any], list[float | None]]]) -> list[dict[str, Any]]:
    """One tournament per group (source, instruction, candidates, ids, known scores); printed as it ends."""
    from tqdm.auto import tqdm

    from editjudge.judge.cli_best_of_n import with_known

    mode = args.pairwise or "knockout"
    rankings = []
    for source, instruction, candidates, ids, scores in tqdm(groups, desc="sources", unit="source",
                                                             disable=len(groups) == 1):
        result = judge.tournament(source, candidates, instruction, mode=mode, aggregate=args.aggregate,
                                  both_orders=args.both_orders, seed=args.order_seed)
        ranking = with_known(result.to_dict(), ids, scores)
        rankings.append(ranking)
        print_tournament(ranking)
    print(cost_line(rankings))
    return rankings


def tournament_table(ranking: dict[str, Any]) -> str:
    """rank, points (Bradley-Terry strength, wins or knockout round), known score, candidate, error."""
    known = any(c.get("gt_score") is not None for c in ranking["candidates"])
    header = ["rank", "points"] + (["known"] if known else []) + ["candidate", "error"]
    rows = []
    for c in ranking["candidates"]:
        row = [str(c["rank"]), "–" if c["points"] is None else f"{c['points']:.4g}"]
        if known:
            row.append("–" if c.get("gt_score") is None else f"{c['gt_score']:.4g}")
        rows.append(row + [str(c["candidate"]), c.get("error") or ""])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header) - 1)]
    numeric = len(header) - 2

    def line(r: list[str]) -> str:
        cells = [v.rjust(w) if i < numeric else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))]
        return ("  ".join(cells) + "  " + r[-1]).rstrip()

    return "\n".join([line(header)] + [line(r) for r in rows])


def print_tournament(ranking: dict[str, Any]) -> None:
    from tqdm.auto import tqdm

    how = ranking["mode"] + (f" ({ranking['aggregate']})" if ranking.get("aggregate") else "")
    lines = [f"{ranking['source']} [{ranking['instruction']}]", tournament_table(ranking)]
    n = len(ranking["candidates"])
    if ranking["best"] is None:
        lines.append(f"no comparison could be judged ({ranking['matches'][0]['error'] if ranking['matches'] else ''})")
    else:
        lines.append(f"best: {ranking['best']} ({how}, {ranking['comparisons']} comparison(s) for {n} candidates)")
    if ranking.get("position_consistency") is not None:
        lines.append(f"position consistency over both orders: {ranking['position_consistency']:.0%}")
    oracle = ranking.get("oracle")
    if oracle is not None:
        lines.append("the pick is the oracle's" if oracle["picked_oracle"] else
                     f"the oracle would pick {oracle['candidate']} (regret {oracle['regret']:.4g})")
    tqdm.write("\n".join(lines) + "\n")


def cost_line(rankings: Sequence[dict[str, Any]]) -> str:
    """The run's cost in comparisons, beside what a pointwise judge would spend (one call per candidate)."""
    comparisons = sum(r["comparisons"] for r in rankings)
    candidates = sum(len(r["candidates"]) for r in rankings)
    line = (f"best-of-n --pairwise: {len(rankings)} tournament(s) of {candidates} candidate(s): {comparisons} "
            f"comparison(s) (a pointwise judge: {candidates} call(s))")
    known = [r["oracle"] for r in rankings if r.get("oracle") is not None]
    if known:
        hits = sum(o["picked_oracle"] for o in known)
        line += (f"; the pick was the oracle's in {hits} of {len(known)}, mean regret "
                 f"{sum(o['regret'] for o in known) / len(known):.4g}")
    return line


def check_cost(args: argparse.Namespace, sizes: Sequence[int]) -> str | None:
    """Refuse a round-robin whose cost explodes (more than 10,000 comparisons in one tournament)."""
    mode = args.pairwise or "knockout"
    worst = max((comparisons_needed(n, mode, args.both_orders) for n in sizes), default=0)
    if worst > 10_000:
        return (f"a {mode} of {max(sizes)} candidates costs {worst} comparisons; use --pairwise knockout "
                f"({comparisons_needed(max(sizes), 'knockout', args.both_orders)}) or fewer candidates")
    return None


def error(message: str) -> int:
    print(f"editjudge best-of-n: error: {message}", file=sys.stderr)
    return 2


__all__ = ["add_tournament_arguments", "check_cost", "cost_line", "run_tournaments", "tournament_table",
           "wants_tournament"]
