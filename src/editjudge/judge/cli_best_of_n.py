"""``editjudge best-of-n``: rank candidate edits of a source and keep the best (test-time scaling)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from editjudge.judge.cli_common import add_judge_arguments, judge_from_args
from editjudge.judge.cli_tournament import add_tournament_arguments, check_cost, run_tournaments, wants_tournament
from editjudge.judge.cli_tournament import error as tournament_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Rank N candidate edits with a trained judge: by score, ties broken by the expected score. One source: "
        "--source --candidates A B C --instruction. Many: --folder (seed layout or a manifest): edits the input "
        "names as one group (a 'group' column or meta key; in the seed layout, stems <name>_<candidate> sharing "
        "<name>, with the same source picture), else edits that share a source picture, and an instruction, are "
        "ranked together; a summary line ends the run. A pairwise judge ranks by a "
        "tournament of comparisons instead (--pairwise knockout|round-robin; the cost in comparisons is printed)."
    )
    what = parser.add_argument_group("what to rank")
    what.add_argument("--source", help="the source image")
    what.add_argument("--candidates", nargs="+", metavar="IMAGE", help="candidate edited images of --source")
    what.add_argument("--instruction", help="the edit instruction")
    what.add_argument("--folder", help="a folder in the seed layout (or a .jsonl/.csv manifest) to rank group by group")
    what.add_argument("--out", help="write the rankings to this .json or .jsonl file")
    what.add_argument("--force", action="store_true", help="replace an existing --out file")
    what.add_argument("--rank-by", metavar="DIMENSION", default=None,
                      help="a dimension judge (--format dimensions:SET) ranks by the overall (the set's rule) by "
                           "default; name one of its dimensions to rank by that one instead")
    add_judge_arguments(parser)
    add_tournament_arguments(parser)


def _check(args: argparse.Namespace) -> str | None:
    single = [args.source, args.candidates, args.instruction]
    if args.folder and any(single):
        return "give either --folder or --source/--candidates/--instruction, not both"
    if not args.folder and not all(single):
        return "give --source, --candidates and --instruction, or --folder"
    if args.folder and not Path(args.folder).exists():
        return f"--folder {args.folder}: no such folder or manifest"
    if args.out and Path(args.out).suffix.lower() not in (".json", ".jsonl"):
        return f"--out {args.out}: use a .json or .jsonl file name"
    if args.out:
        from editjudge.data.writer import OutputExists, check_output

        try:
            check_output(args.out, force=args.force, flag="--out")
        except OutputExists as exc:
            return str(exc)
    if not args.folder:
        from editjudge.data.files import file_problem

        for flag, value in [("--source", args.source)] + [("--candidates", c) for c in args.candidates]:
            problem = file_problem(value)
            if problem is not None:
                return f"{flag} {problem.detail}"
    return None


def run(args: argparse.Namespace) -> int:
    problem = _check(args)
    if problem:
        print(f"editjudge best-of-n: error: {problem}", file=sys.stderr)
        return 2
    grouped_by = "the given source"
    if args.folder:
        try:
            groups, rejected, grouped_by = _groups_of(args.folder)
        except (OSError, ValueError) as exc:
            print(f"editjudge best-of-n: error: {exc}", file=sys.stderr)
            return 2
        for item in rejected:
            print(f"skipped {item.id}: {item.reason}: {item.detail}", file=sys.stderr)
        if not groups:
            print(f"editjudge best-of-n: error: no usable edits under {args.folder}", file=sys.stderr)
            return 1
    else:
        groups = [(args.source, args.instruction, list(args.candidates), [None] * len(args.candidates), [None] * len(args.candidates))]
    try:
        from editjudge.judge.cli_common import judgment_format
        from editjudge.judge.judge import check_rank_by

        check_rank_by(judgment_format(args), args.rank_by)  # a misspelt dimension fails before a model loads
    except ValueError as exc:
        print(f"editjudge best-of-n: error: --rank-by: {exc}", file=sys.stderr)
        return 2
    try:
        judge = judge_from_args(args)
    except (ValueError, OSError, ImportError) as exc:
        print(f"editjudge best-of-n: error: cannot set up the judge: {exc}", file=sys.stderr)
        return 2
    try:
        tournament = wants_tournament(args, judge)
    except ValueError as exc:
        return tournament_error(str(exc))
    if tournament:
        problem = check_cost(args, [len(g[2]) for g in groups])
        if problem:
            return tournament_error(problem)
        judge.progress = False
        rankings = run_tournaments(args, judge, groups)
    else:
        rankings = _rank_by_scores(judge, groups, args.rank_by)
    print(summary_line(rankings, grouped_by))
    if args.out:
        _write(args.out, rankings)
        print(f"rankings of {len(rankings)} source(s) written to {args.out}", file=sys.stderr)
    return 0 if any(r["best"] is not None for r in rankings) else 1


def _rank_by_scores(judge: Any, groups: list[tuple[Any, str, list[str], list[Any], list[float | None]]],
                    rank_by: str | None = None) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    rankings = []
    judge.progress = len(groups) == 1  # one bar over the candidates of one source, else one over the sources
    for source, instruction, candidates, ids, scores in tqdm(groups, desc="sources", unit="source", disable=len(groups) == 1):
        ranking = with_known(judge.best_of_n(source, candidates, instruction, rank_by=rank_by).to_dict(), ids, scores)
        if rank_by not in (None, "overall"):
            ranking["rank_by"] = rank_by
        rankings.append(ranking)
        _print_ranking(ranking)
    return rankings


def with_known(ranking: dict[str, Any], ids: list[Any], scores: list[float | None]) -> dict[str, Any]:
    """A ranking's candidates with their ids and known scores, and the oracle's pick when every score is known."""
    for candidate in ranking["candidates"]:
        candidate["id"] = ids[candidate["index"]]
        candidate["gt_score"] = scores[candidate["index"]]
    ranking["oracle"] = _oracle(ranking)
    return ranking


def summary_line(rankings: Sequence[dict[str, Any]], grouped_by: str) -> str:
    """One line for the whole run: rankings, candidates, how they were grouped, how often the pick was the oracle's
    (when every candidate of a ranking has a known score) and the mean regret."""
    candidates = sum(len(r["candidates"]) for r in rankings)
    judged = sum(r["best"] is not None for r in rankings)
    line = (f"best-of-n: {len(rankings)} ranking(s) of {candidates} candidate(s) (groups: {grouped_by}); "
            f"{judged} with a pick")
    known = [r["oracle"] for r in rankings if r.get("oracle") is not None]
    if known:
        hits = sum(o["picked_oracle"] for o in known)
        regret = sum(o["regret"] for o in known) / len(known)
        line += (f"; the pick was the oracle's in {hits} of {len(known)} ranking(s) with known scores "
                 f"({hits / len(known):.0%}), mean regret {regret:.4g}")
    return line


def _groups_of(folder: str) -> tuple[list[tuple[str, str, list[str], list[str], list[float | None]]], list[Any], str]:
    """Records grouped by the names the input gives (a manifest's or meta's ``group``; a seed folder's stems
    ``<name>_<candidate>``, together with the source picture so that one name never holds two pictures), else as
    ``eval`` groups them (:func:`editjudge.data.labels.group_keys`: the source picture), each with the instruction
    (``compare_key``); in first-seen order. Also returns what the groups came from, for the summary."""
    from collections import Counter

    from editjudge.data import images as imgs
    from editjudge.data import labels as lbl
    from editjudge.data.files import FileRejected, read_file
    from editjudge.data.sources import EditRecord, Rejected, read_sources, stem_groups

    records: list[EditRecord] = []
    rejected = []
    pictures: dict[str, str | None] = {}
    for item in read_sources(folder, require_score=False):
        if not isinstance(item, EditRecord):
            rejected.append(item)
            continue
        if item.group is None and item.source_path not in pictures:
            try:
                pictures[item.source_path] = lbl.picture_hash(read_file(item.source_path))
            except (FileRejected, imgs.ImageRejected) as exc:
                pictures[item.source_path] = None
                rejected.append(Rejected(item.id, getattr(exc, "reason", "unreadable_file"), f"source {exc}"))
        if item.group is None and pictures[item.source_path] is None:
            continue
        records.append(item)
    keys = lbl.group_keys([r.group for r in records], [pictures.get(r.source_path) for r in records])
    # flat pictures (a square on grey) fool any perceptual rule: the folder's own names keep their sources apart
    stems = (stem_groups([r.id for r in records]) if Path(folder).is_dir() else None) or [None] * len(records)
    groups: dict[str, tuple[str, str, list[str], list[str], list[float | None]]] = {}
    kinds: Counter[str] = Counter()
    for record, key, stem in zip(records, keys, stems):
        if record.group is None and stem is not None:
            key = f"stem:{stem}|{key}"
        kinds["group names" if record.group is not None else "stem names + source picture" if stem is not None
              else "source picture"] += 1
        entry = groups.setdefault(lbl.compare_key(key, record.instruction), (record.source_path, record.instruction, [], [], []))
        entry[2].append(record.edited_path)
        entry[3].append(record.id)
        entry[4].append(record.score)
    return list(groups.values()), rejected, ", ".join(f"{kind} ({n} edits)" for kind, n in kinds.most_common())


def _oracle(ranking: dict[str, Any]) -> dict[str, Any] | None:
    """With known scores for every candidate: the oracle's pick (highest score) and whether the judge's pick was it."""
    scores = [c.get("gt_score") for c in ranking["candidates"]]
    if not scores or any(s is None for s in scores) or ranking["best"] is None:
        return None
    top = max(scores)
    best = ranking["candidates"][0]
    return {
        "candidate": next(c["candidate"] for c in ranking["candidates"] if c["gt_score"] == top),
        "gt_score": top,
        "picked_gt_score": best["gt_score"],
        "picked_oracle": best["gt_score"] == top,
        "regret": top - best["gt_score"],
    }


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def expected_decimals(candidates: Sequence[dict[str, Any]], least: int = 3, most: int = 8) -> int:
    """Decimals that show the expected scores apart where they break a tie: the fewest (at least ``least``) at
    which candidates with the same score and different expected scores print differently."""
    by_score: dict[Any, set[float]] = {}
    for c in candidates:
        if c.get("expected_score") is not None:
            by_score.setdefault(c.get("score"), set()).add(float(c["expected_score"]))
    for decimals in range(least, most + 1):
        if all(len({f"{v:.{decimals}f}" for v in values}) == len(values) for values in by_score.values()):
            return decimals
    return most


def ranking_table(ranking: dict[str, Any]) -> str:
    """The ranking as a text table: rank, score, expected score, known score (when given), candidate, error; a
    dimension judge's score and expected score are the overall's, and each dimension's answer follows them."""
    known = any(c.get("gt_score") is not None for c in ranking["candidates"])
    names = list(next((c["dimensions"] for c in ranking["candidates"] if c.get("dimensions")), None) or {})
    header = ["rank", "score", "expected"] + names + (["known"] if known else []) + ["candidate", "error"]
    rows = []
    spec = f".{expected_decimals(ranking['candidates'])}f"
    for c in ranking["candidates"]:
        row = [str(c["rank"]), _fmt(c["score"], "d"), _fmt(c["expected_score"], spec)]
        row += [_fmt(((c.get("dimensions") or {}).get(n) or {}).get("score"), "d") for n in names]
        if known:
            row.append(_fmt(c.get("gt_score"), ".4g"))
        rows.append(row + [str(c["candidate"]), c["error"] or ""])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header) - 1)]
    numeric = 3 + len(names)
    fmt = lambda r: "  ".join(v.rjust(w) if i < numeric else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))) + "  " + r[-1]  # noqa: E731
    return "\n".join([fmt(header).rstrip()] + [fmt(r).rstrip() for r in rows])


def _print_ranking(ranking: dict[str, Any]) -> None:
    from tqdm.auto import tqdm

    best = ranking["best"]
    top = ranking["candidates"][0]
    lines = [f"{ranking['source']} [{ranking['instruction']}]"]
    lines.append(ranking_table(ranking))
    if best is None:
        lines.append(f"no candidate could be judged ({top['error']})")
    else:
        by = f"{ranking['rank_by']} " if ranking.get("rank_by") else ""
        score = ((top.get("dimensions") or {}).get(ranking["rank_by"]) or {}).get("score") if by else top["score"]
        lines.append(f"best: {best} ({by}score {score}, of {len(ranking['candidates'])})")
    oracle = ranking.get("oracle")
    if oracle is not None:
        if oracle["picked_oracle"]:
            lines.append(f"the pick is the oracle's (known score {oracle['gt_score']:.4g})")
        else:
            lines.append(
                f"the oracle would pick {oracle['candidate']} (known score {oracle['gt_score']:.4g}); "
                f"the pick's known score is {oracle['picked_gt_score']:.4g} (regret {oracle['regret']:.4g})"
            )
    tqdm.write("\n".join(lines) + "\n")


def _write(path: str, rankings: Sequence[dict[str, Any]]) -> None:
    from editjudge.data.writer import atomic_write_text

    if path.lower().endswith(".jsonl"):
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rankings)
    else:
        text = json.dumps(list(rankings), ensure_ascii=False, indent=2) + "\n"
    atomic_write_text(path, text)
