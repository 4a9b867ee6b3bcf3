"""``editjudge best-of-n``: rank candidate edits of a source and keep the best (test-time scaling)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from editjudge.judge.cli_common import add_judge_arguments, judge_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Rank N candidate edits with a trained judge: by score, ties broken by the expected score. One source: "
        "--source --candidates A B C --instruction. Many: --folder (seed layout or a manifest): edits that share a "
        "source image (or a 'group') and an instruction are ranked together."
    )
    what = parser.add_argument_group("what to rank")
    what.add_argument("--source", help="the source image")
    what.add_argument("--candidates", nargs="+", metavar="IMAGE", help="candidate edited images of --source")
    what.add_argument("--instruction", help="the edit instruction")
    what.add_argument("--folder", help="a folder in the seed layout (or a .jsonl/.csv manifest) to rank group by group")
    what.add_argument("--out", help="write the rankings to this .json or .jsonl file")
    add_judge_arguments(parser)


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
    return None


def run(args: argparse.Namespace) -> int:
    problem = _check(args)
    if problem:
        print(f"editjudge best-of-n: error: {problem}", file=sys.stderr)
        return 2
    if args.folder:
        try:
            groups, rejected = _groups_of(args.folder)
        except (OSError, ValueError) as exc:
            print(f"editjudge best-of-n: error: {exc}", file=sys.stderr)
            return 2
        for item in rejected:
            print(f"skipped {item.id}: {item.reason}: {item.detail}", file=sys.stderr)
        if not groups:
            print(f"editjudge best-of-n: error: no usable edits under {args.folder}", file=sys.stderr)
            return 1
    else:
        groups = [(args.source, args.instruction, list(args.candidates), [None] * len(args.candidates))]
    try:
        judge = judge_from_args(args)
    except (ValueError, OSError, ImportError) as exc:
        print(f"editjudge best-of-n: error: cannot set up the judge: {exc}", file=sys.stderr)
        return 2
    from tqdm.auto import tqdm

    rankings = []
    judge.progress = len(groups) == 1  # one bar over the candidates of one source, else one over the sources
    for source, instruction, candidates, ids in tqdm(groups, desc="sources", unit="source", disable=len(groups) == 1):
        ranking = judge.best_of_n(source, candidates, instruction).to_dict()
        id_of = dict(zip(candidates, ids))
        for candidate in ranking["candidates"]:
            candidate["id"] = id_of.get(candidate["candidate"])
        rankings.append(ranking)
        _print_winner(ranking)
    if args.out:
        _write(args.out, rankings)
        print(f"rankings of {len(rankings)} source(s) written to {args.out}", file=sys.stderr)
    return 0 if any(r["best"] is not None for r in rankings) else 1


def _groups_of(folder: str) -> tuple[list[tuple[str, str, list[str], list[str]]], list[Any]]:
    """Records grouped by (group or source-image content, instruction), in first-seen order."""
    from editjudge.data.labels import content_hash, group_key
    from editjudge.data.sources import EditRecord, read_sources

    groups: dict[tuple[str, str], tuple[str, str, list[str], list[str]]] = {}
    rejected = []
    digests: dict[str, str] = {}
    for item in read_sources(folder, require_score=False):
        if not isinstance(item, EditRecord):
            rejected.append(item)
            continue
        if item.source_path not in digests:
            digests[item.source_path] = content_hash(Path(item.source_path).read_bytes())
        key = group_key(item.group, digests[item.source_path])
        entry = groups.setdefault((key, item.instruction), (item.source_path, item.instruction, [], []))
        entry[2].append(item.edited_path)
        entry[3].append(item.id)
    return list(groups.values()), rejected


def _print_winner(ranking: dict[str, Any]) -> None:
    from tqdm.auto import tqdm

    best = ranking["best"]
    top = ranking["candidates"][0]
    if best is None:
        tqdm.write(f"{ranking['source']}: no candidate could be judged ({top['error']})")
        return
    expected = f", expected {top['expected_score']:.3f}" if top["expected_score"] is not None else ""
    tqdm.write(f"{ranking['source']} [{ranking['instruction']}] -> {best} (score {top['score']}{expected}, of {len(ranking['candidates'])})")


def _write(path: str, rankings: Sequence[dict[str, Any]]) -> None:
    from editjudge.data.writer import atomic_write_text

    if path.lower().endswith(".jsonl"):
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rankings)
    else:
        text = json.dumps(list(rankings), ensure_ascii=False, indent=2) + "\n"
    atomic_write_text(path, text)
