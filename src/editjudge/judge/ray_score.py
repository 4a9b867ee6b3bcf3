"""``editjudge score --ray``: score a manifest, seed folder or prepared parquet with a Ray Data actor pool of judges,
resumably.

The edits are cut into the same chunks ``score`` uses (``--batch-size`` edits in manifest order) and each chunk goes
to one judge actor as one ``score_many`` call, so every edit is judged in the same batch as in a single-process run
and the output is the same, byte for byte. Finished chunks stream into ``OUT.partial`` (one JSON line per edit,
flushed as it lands); after a kill, ``--resume`` keeps them and scores only the rest. When all are done the
predictions are written to ``OUT`` (.jsonl, .csv or .parquet) atomically, in manifest order, in ``score``'s schema, and
``OUT.partial`` is removed. Items, rows and records are made by :mod:`editjudge.judge.score_items`, the functions the
single-process path calls, so the two give the same records.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

PARTIAL_SUFFIX = ".partial"
FORMAT = "editjudge-score-partial/2"  # /2: the fingerprint covers the judge and the label scale, not only the items


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--ray`` flags of ``editjudge score`` (its ``--force`` also drops ``OUT.partial``)."""
    group = parser.add_argument_group(
        "Ray Data (--ray): score a manifest, seed folder or prepared parquet with a pool of judge actors (cluster "
        "scale); the output equals the single-process run's"
    )
    group.add_argument("--ray", action="store_true", help="score --manifest with a Ray Data actor pool of judges")
    group.add_argument("--ray-address", metavar="ADDR", help="join this Ray cluster (default: start a local Ray)")
    group.add_argument("--ray-connect-timeout", type=float, default=15.0, metavar="S",
                       help="seconds to wait for --ray-address to answer before stopping with a named error")
    group.add_argument(
        "--actors", type=int, default=None,
        help="judges in the pool (default: the cluster's GPUs ÷ --gpus-per-actor, else its CPUs ÷ --cpus-per-actor)",
    )
    group.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs reserved per judge actor")
    group.add_argument(
        "--gpus-per-actor", type=float, default=None,
        help="GPUs per judge actor (default: 1 when the cluster has GPUs and the backend runs a model, else 0)",
    )
    group.add_argument("--resume", action="store_true", help="--ray: keep the edits already in OUT.partial")


def partial_path(out: str | os.PathLike[str]) -> Path:
    return Path(os.fspath(out) + PARTIAL_SUFFIX)


def run_fingerprint(args: argparse.Namespace, items: list[Any], median: float, mad: float) -> dict[str, Any]:
    """Everything the records of this run depend on: the items, the judge (:mod:`editjudge.judge.run_fingerprint`)
    and the label scale."""
    from editjudge.judge.run_fingerprint import judge_fingerprint
    from editjudge.judge.score_items import fingerprint

    return {"items": fingerprint(items), "judge": judge_fingerprint(args), "labels": {"median": median, "mad": mad}}


def _read_partial(path: Path, expected: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Records already scored, by manifest position; a torn last line (a kill mid-write) is dropped. ``ValueError``
    naming what differs when the partial run was made with other items, another judge or another label scale."""
    from editjudge.judge.run_fingerprint import differences

    done: dict[int, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as handle:
        header = handle.readline(1 << 24)
        try:
            meta = json.loads(header)
        except (json.JSONDecodeError, RecursionError):
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        if meta.get("format") != FORMAT or not isinstance(meta.get("fingerprint"), dict):
            raise ValueError(f"{path} is not a partial output of this editjudge (or an older one): use --force to "
                             "start over")
        changed = differences(meta["fingerprint"], expected)
        if changed:
            raise ValueError(f"{path} was made by another run; --resume would mix two runs' records in one file. "
                             f"What differs: {'; '.join(changed)}. Rerun with the same settings, or --force to start "
                             "over")
        for line in handle:
            try:
                entry = json.loads(line)
                done[int(entry["i"])] = entry["record"]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                break  # the torn tail of a killed run: everything after it is rescored
    return done


def _problem(args: argparse.Namespace) -> str | None:
    if not args.manifest or not args.out:
        return "--ray scores a manifest: give --manifest and --out"
    if args.resume and args.force:
        return "give --resume or --force, not both"
    out, partial = Path(args.out), partial_path(args.out)
    if out.exists() and out.stat().st_size > 0 and not args.force:
        return f"--out {out} exists: pass --force to overwrite it"
    if partial.exists() and not (args.resume or args.force):
        return f"{partial} holds a partial run: pass --resume to finish it, or --force to start over"
    return None


class ChunkScorer:
    """A Ray Data actor: one judge; each row is one chunk of edits (JSON), scored with one ``score_many`` call."""

    def __init__(self, judge_args: argparse.Namespace) -> None:
        from editjudge.judge.cli_common import judge_from_args

        self.judge = judge_from_args(judge_args)
        self.judge.progress = False

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        from editjudge.judge.score_items import decode_rows, edit_of, row_prediction

        lines = []
        for payload in batch["chunk"]:
            rows = decode_rows(payload)
            results = self.judge.score_many([edit_of(r) for r in rows])
            records = [{"i": r["i"], "record": row_prediction(r, result)} for r, result in zip(rows, results)]
            lines.append("".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records))
        return {"lines": lines}


def _pool_size(args: argparse.Namespace, gpus_per_actor: float) -> int:
    import ray

    if args.actors:
        return args.actors
    resources = ray.cluster_resources()
    if gpus_per_actor > 0:
        return max(1, int(resources.get("GPU", 0) // gpus_per_actor))
    return max(1, int(resources.get("CPU", 1) // max(args.cpus_per_actor, 1e-6)))


def _address(args: argparse.Namespace) -> str | None:
    return args.ray_address or os.environ.get("RAY_ADDRESS")


def run_ray(args: argparse.Namespace) -> int:
    """The ``--ray`` path of ``editjudge score``; exit codes as ``score``'s (2 for usage mistakes)."""
    from editjudge.judge.cli_score import _label_settings, dimension_labels
    from editjudge.judge.output import outcome, prediction_sink
    from editjudge.judge.score_items import is_rejected, judge_row, read_items, reject_prediction

    problem = _problem(args)
    if problem:
        print(f"editjudge score: error: {problem}", file=sys.stderr)
        return 2
    from editjudge.judge.ray_cluster import address_problem

    unreachable = address_problem(_address(args), args.ray_connect_timeout)
    if unreachable:  # before anything is written: nothing to --resume
        print(f"editjudge score: error: cannot reach Ray: {unreachable}", file=sys.stderr)
        return 1
    try:
        dims = dimension_labels(args)
        items = read_items(args.manifest, dims)
        median, mad = _label_settings(args)
    except (OSError, ValueError) as exc:
        print(f"editjudge score: error: {exc}", file=sys.stderr)
        return 2
    digest = run_fingerprint(args, items, median, mad)
    partial = partial_path(args.out)
    done: dict[int, dict[str, Any]] = {}
    if args.resume and partial.exists():
        try:
            done = _read_partial(partial, digest)
        except (OSError, ValueError) as exc:
            print(f"editjudge score: error: {exc}", file=sys.stderr)
            return 2
    kept = len(done)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fresh = partial.with_name(partial.name + ".tmp")  # the header + what survived, swapped in atomically
    with open(fresh, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"format": FORMAT, "fingerprint": digest, "manifest": str(args.manifest)}) + "\n")
        for i in sorted(done):
            handle.write(json.dumps({"i": i, "record": done[i]}, ensure_ascii=False) + "\n")
    os.replace(fresh, partial)
    with open(partial, "a", encoding="utf-8") as sink:  # then every finished chunk is appended as it lands
        rows: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            if i in done:
                continue
            if is_rejected(item):
                record = reject_prediction(item, median, mad, dims)
                done[i] = record
                sink.write(json.dumps({"i": i, "record": record}, ensure_ascii=False) + "\n")
        sink.flush()
        for i, item in enumerate(items):
            if not is_rejected(item):
                rows.append(judge_row(i, item, median, mad, dims))
        size = max(1, args.batch_size)
        chunks = [rows[k : k + size] for k in range(0, len(rows), size)]  # score's chunks, in manifest order
        pending = [c for c in chunks if any(r["i"] not in done for r in c)]
        todo = sum(len(c) for c in pending)
        print(f"editjudge score --ray: {len(items)} edits, {kept} already scored (kept), {todo} to score in "
              f"{len(pending)} chunks", file=sys.stderr)
        if pending:
            code = _run_pool(args, pending, done, sink)
            if code:
                return code
    records = [done[i] for i in range(len(items))]
    with prediction_sink(args.out, dims.fmt.names if dims else None) as out:
        for record in records:
            out.add(record)
    partial.unlink()
    counts = Counter(outcome(r) for r in records)
    failed = counts["failed"]
    print(f"scored {len(items)} edits -> {args.out}: {counts['parsed']} answered, {counts['unparsed']} unparsable "
          f"answers, {failed} could not be judged (see the 'error' field)", file=sys.stderr)
    return 0 if failed < len(items) or not items else 1


def _run_pool(args: argparse.Namespace, pending: list[list[dict[str, Any]]], done: dict[int, dict[str, Any]],
              sink: Any) -> int:
    """Stream the pending chunks through the actor pool; each finished chunk is appended to ``sink`` at once."""
    from editjudge.ray_auth import local_token_auth

    local_token_auth(args.ray_address)  # before Ray is imported: Ray's default, said explicitly, warns no more
    import ray
    from tqdm.auto import tqdm

    if not ray.is_initialized():
        from editjudge.judge.ray_cluster import init_local_ray

        address = _address(args)
        try:
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            else:  # a local Ray of our own: it must not outlive this driver, even SIGKILLed
                init_local_ray(include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            print(f"editjudge score: error: cannot reach Ray ({address or 'local'}): {exc}", file=sys.stderr)
            return 1
    gpus = args.gpus_per_actor
    if gpus is None:
        gpus = 1.0 if args.backend != "openai" and ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    actors = _pool_size(args, gpus)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    judge_args = argparse.Namespace(**{k: v for k, v in vars(args).items() if not k.startswith("_")})
    from editjudge.judge.score_items import encode_rows

    dataset = ray.data.from_items([{"chunk": encode_rows(c)} for c in pending], override_num_blocks=min(len(pending), 10_000))
    scored = dataset.map_batches(
        ChunkScorer, fn_constructor_args=(judge_args,), batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=args.cpus_per_actor, num_gpus=gpus,
    )
    with tqdm(total=sum(len(c) for c in pending), desc=f"judging ({actors} actors)", unit="edit") as bar:
        for row in scored.iter_rows():
            sink.write(row["lines"])
            sink.flush()
            for line in row["lines"].splitlines():
                entry = json.loads(line)
                done[int(entry["i"])] = entry["record"]
                bar.update(1)
    missing = sum(len(c) for c in pending) - sum(1 for c in pending for r in c if r["i"] in done)
    if missing:
        print(f"editjudge score: error: {missing} edits came back unscored; rerun with --resume", file=sys.stderr)
        return 1
    return 0
