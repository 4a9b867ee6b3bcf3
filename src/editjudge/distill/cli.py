"""``editjudge distill``: reasoning traces for a cold-start SFT, by rejection sampling from a teacher judge.

Three jobs, one verb:

* ``--teacher MODEL``: ask a teacher (any judge backend; typically a large model behind an OpenAI-compatible server)
  for K responses per train row with the rows' own prompt and images; keep a response when it is well-formed, has
  reasoning and its answer is within ``--tolerance`` of the label; at most ``--keep`` per row.
* ``--traces MANIFEST``: your own traces, a manifest's ``reasoning`` column (a whole response or the bare reasoning),
  through the same parser and rule.
* ``--select-hard PREDICTIONS``: the train rows a judge gets wrong in at least ``--min-wrong`` of K samples (the
  GRPO set of the last stage), as a prepared parquet.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from editjudge.judge.backends import BACKENDS
from editjudge.model_path import absolute_path

EPILOG = """\
examples:
  editjudge distill --data data/train.parquet --teacher Qwen/Qwen2.5-VL-72B-Instruct \\
      --base-url http://localhost:8000/v1 --samples 4 --keep 1 --out distill/
  editjudge distill --data data/train.parquet --traces manifest.jsonl --out distill/   # your own traces
  editjudge score --manifest data/train.parquet --model M --adapter sft_adapter --samples 4 --out preds.jsonl
  editjudge distill --data data/train.parquet --select-hard preds.jsonl --min-wrong 2 --out hard/

outputs (in --out):
  sft.parquet            verl multi-turn SFT rows: messages (system, user with two <image>, assistant) + images
  responses.jsonl        every teacher response: id, sample, answer, reason (null = accepted), text
  no_accepted.jsonl      rows with no accepted response, with the teacher's answers and reasons
  distill_report.json    acceptance per label, answer confusion, tokens per response, requests and cost
  hard.parquet + hard_report.json   with --select-hard
"""

OUTPUTS = ("sft.parquet", "responses.jsonl", "no_accepted.jsonl", "distill_report.json", "hard.parquet", "hard_report.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--data", required=True, metavar="PARQUET", help="the train parquet written by `editjudge prepare`")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (see below)")
    parser.add_argument("--force", action="store_true", help="write into a non-empty --out (replacing our files there)")
    parser.add_argument("--max-rows", type=int, metavar="N", help="only the first N rows of --data (a trial run)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--teacher", metavar="MODEL", help="the teacher: served model name (openai backend) or model folder")
    what.add_argument("--traces", metavar="MANIFEST", help="a .jsonl/.csv manifest with 'id' (or prepare's default ids) and 'reasoning'")
    what.add_argument("--select-hard", metavar="PREDICTIONS", help="preds.jsonl of `editjudge score --samples K` on the train set")
    rule = parser.add_argument_group("acceptance rule")
    rule.add_argument("--tolerance", type=int, default=0, help="accept an answer this far from the label (0: exact)")
    rule.add_argument("--keep", type=int, default=1, help="accepted responses kept per row at most")
    rule.add_argument("--min-wrong", type=int, default=1, metavar="M", help="--select-hard: wrong in at least M of the K samples")
    teacher = parser.add_argument_group("teacher")
    teacher.add_argument("--backend", choices=sorted(BACKENDS), default="openai", help="how to run the teacher")
    teacher.add_argument("--adapter", help="LoRA adapter on --teacher (transformers, vllm backends)")
    teacher.add_argument("--samples", type=int, default=4, metavar="K", help="responses per row")
    teacher.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (> 0 when K > 1)")
    teacher.add_argument("--max-new-tokens", type=int, default=1024, help="longest response")
    teacher.add_argument("--seed", type=int, default=0, help="sampling seed")
    teacher.add_argument("--base-url", help="openai backend: server URL, e.g. http://localhost:8000/v1")
    teacher.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    teacher.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    teacher.add_argument("--retries", type=int, default=3, help="retries on timeouts, connection errors, 429 and 5xx")
    teacher.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    teacher.add_argument("--batch-size", type=int, default=8, help="rows per generate call (transformers, vllm)")
    teacher.add_argument("--device", default=None, help="transformers backend: torch device")
    from editjudge.judge.cli_common import add_engine_arg

    add_engine_arg(teacher)  # --engine-arg KEY=VALUE: vLLM engine options (vllm backend)
    teacher.add_argument("--price-in", type=float, metavar="USD", help="price per million prompt tokens (for the cost line)")
    teacher.add_argument("--price-out", type=float, metavar="USD", help="price per million completion tokens")


def _usage_problem(args: argparse.Namespace) -> str | None:
    from editjudge.distill.teacher import check_parquet

    if args.teacher and args.samples > 1 and args.temperature <= 0:
        return f"--samples {args.samples} needs sampling: set --temperature above 0 (e.g. 1.0)"
    if args.traces and not Path(args.traces).is_file():
        return f"--traces {args.traces}: no such file"
    problem = check_parquet(args.data)
    if problem:
        return problem
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a folder"
    from editjudge.data.writer import OutputExists, check_output

    try:
        check_output(out, force=args.force)
    except OutputExists as exc:
        return str(exc)
    return None


def run(args: argparse.Namespace) -> int:
    problem = _usage_problem(args)
    if problem:
        print(f"editjudge distill: error: {problem}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.select_hard:
        return _select_hard(args, out)
    if args.traces:
        return _distill(args, out, _trace_outputs(args))
    try:
        backend = _backend(args)
    except (ValueError, OSError, ImportError) as exc:
        print(f"editjudge distill: error: cannot set up the teacher: {exc}", file=sys.stderr)
        return 2
    return _distill(args, out, _teacher_outputs(args, backend))


def _rows(args: argparse.Namespace):
    """``(row, id, label, problem)`` for each row of --data (``label``: the row's format's, 0..9 or a dimension row's
    labels): ``problem`` names why a malformed row cannot be used (a null extra_info, no images, no prompt, a ground
    truth that is not a label of its format) — prepare's row reader, shared with
    ``score`` (:mod:`editjudge.data.prepared_rows`); such a row is counted with its reason and the run goes on."""
    from itertools import islice

    from editjudge.data.prepared_rows import prepared_row, prompt_problem, row_name
    from editjudge.distill.rules import row_format_label
    from editjudge.distill.teacher import read_rows

    for i, row in enumerate(islice(read_rows(args.data), args.max_rows)):
        checked = prepared_row(row, i)
        problem = checked if isinstance(checked, str) else prompt_problem(row, i)
        label = None
        if problem is None:
            try:
                label = row_format_label(row)[1]  # its format's label: 0..9, or a dimension row's {dimension: label}
            except (ValueError, TypeError, KeyError) as exc:
                problem = f"row {i}: reward_model.ground_truth is not a label of its format: {str(exc)[:200]}"
        yield row, row_name(row, i), label, problem


def _total(args: argparse.Namespace) -> int:
    from editjudge.distill.teacher import count_rows

    total = count_rows(args.data)
    return min(total, args.max_rows) if args.max_rows else total


def _backend(args: argparse.Namespace) -> Any:
    from editjudge.judge.backends import load_backend

    options: dict[str, Any] = {}
    if args.backend == "openai":
        options.update(
            base_url=args.base_url, api_key=os.environ.get(args.api_key_env), timeout=args.timeout,
            max_retries=args.retries, concurrency=args.concurrency, logprobs=False,
        )
    else:
        options["batch_size"] = args.batch_size
    if args.backend == "transformers" and args.device:
        options["device"] = args.device
    from editjudge.judge.cli_common import vllm_engine_args

    options.update(vllm_engine_args(args))
    return load_backend(args.backend, args.teacher, args.adapter, **options)


def _teacher_outputs(args: argparse.Namespace, backend: Any):
    """(row, texts, failure, usage) per row from the teacher."""
    from editjudge.judge.backends import SamplingOptions

    sampling = SamplingOptions(
        num_samples=args.samples, temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed
    )
    pending: list[tuple[dict[str, Any], str, int]] = []
    for row, rid, label, problem in _rows(args):
        if problem:  # never sent to the teacher
            yield from _asked(backend, pending, sampling)
            pending = []
            yield rid, row, label, [], f"input_error: malformed_row: {problem}", None, False
            continue
        pending.append((row, rid, label))
        if len(pending) >= max(1, backend.batch_size):
            yield from _asked(backend, pending, sampling)
            pending = []
    yield from _asked(backend, pending, sampling)


def _asked(backend: Any, pending: list[tuple[dict[str, Any], str, int]], sampling: Any):
    from editjudge.distill.teacher import ask

    for (row, rid, label), (_, output) in zip(pending, ask(backend, [p[0] for p in pending], sampling)):
        yield rid, row, label, [g.text for g in output.generations], output.error, output.usage, True


def _trace_outputs(args: argparse.Namespace):
    """(row, texts, failure, usage) per row from the manifest's ``reasoning`` column."""
    from editjudge.data.files import DEFAULT_MAX_FILE_BYTES
    from editjudge.data.sources import _manifest_rows  # prepare's manifest reader: same lines, same default ids
    from editjudge.distill.rules import bare_reasoning_response, row_format_label

    path = Path(args.traces)
    traces: dict[str, str | None] = {}
    try:
        for number, item in _manifest_rows(path, DEFAULT_MAX_FILE_BYTES):
            if isinstance(item, str):
                continue
            rid = str(item["id"]) if item.get("id") not in (None, "") else f"{path.name}:{number}"
            reasoning = item.get("reasoning")
            traces[rid] = reasoning if isinstance(reasoning, str) and reasoning.strip() else None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise SystemExit(f"editjudge distill: error: --traces {path}: {exc}") from None
    for row, rid, label, problem in _rows(args):
        if problem:
            yield rid, row, label, [], f"input_error: malformed_row: {problem}", None, False
        elif rid not in traces:
            yield rid, row, label, [], "no_trace: the manifest has no line with this id", None, False
        elif traces[rid] is None:
            yield rid, row, label, [], "no_trace: the manifest line has no 'reasoning'", None, False
        else:
            fmt, truth = row_format_label(row)
            yield rid, row, truth, [bare_reasoning_response(traces[rid], truth, fmt)], None, None, False


def _distill(args: argparse.Namespace, out: Path, outputs) -> int:
    from tqdm.auto import tqdm

    from editjudge.data.writer import JsonlSink, ParquetSink, atomic_write_text
    from editjudge.distill.rules import SFT_SCHEMA, DistillStats, judge_response, label_key, row_format_label, sft_row

    stats = DistillStats(tolerance=args.tolerance, keep=args.keep, samples=args.samples if args.teacher else 1)
    origin = "teacher" if args.teacher else "manifest"
    sft = ParquetSink(out / "sft.parquet", schema=SFT_SCHEMA)
    responses = JsonlSink(out / "responses.jsonl")
    missed = JsonlSink(out / "no_accepted.jsonl")
    first_failures: list[str] = []
    try:
        with tqdm(total=_total(args), desc="distilling", unit="row") as bar:
            for rid, row, truth, texts, failure, usage, asked in outputs:
                bar.update(1)
                label = None if truth is None else label_key(truth)  # a dimension row: its rounded mean
                if asked and (not failure or failure.startswith("backend_error")):
                    stats.add_usage(usage, failed=bool(failure))
                if failure:
                    stats.add_row(label, [], 0, failure)
                    missed.add({"id": rid, "label": label, "answers": [], "reasons": [failure]})
                    if stats.rows == len(first_failures) + 1 and failure.startswith("backend_error"):
                        first_failures.append(failure)
                        if len(first_failures) >= 8:
                            print(
                                f"editjudge distill: error: the teacher failed on each of the first {len(first_failures)} "
                                f"rows: {first_failures[0]}", file=sys.stderr,
                            )
                            raise _Abort()
                    continue
                fmt = row_format_label(row)[0]  # a dimension row: every labelled dimension must be right
                judged = [judge_response(t, truth, args.tolerance, fmt) for t in texts]
                kept = 0
                for sample, item in enumerate(judged):
                    reason = item.reason
                    if item.accepted and kept >= args.keep:
                        reason = "over_keep"
                    elif item.accepted:
                        sft.add(sft_row(row, item.text, origin=origin, sample=sample, answer=item.answer, label=label))
                        kept += 1
                    responses.add({"id": rid, "sample": sample, "label": label, "answer": item.answer,
                                   "reason": reason, "text": item.text,
                                   **({"labels": truth, "dimensions": item.dimensions} if isinstance(truth, dict)
                                      else {})})
                stats.add_row(label, judged, kept)
                if not kept:
                    missed.add({"id": rid, "label": label, "answers": [j.answer for j in judged],
                                "reasons": [j.reason for j in judged]})
        report = stats.report(args.price_in, args.price_out)
        report["data"] = absolute_path(args.data)
        report["teacher"] = args.teacher or None
        report["traces"] = args.traces or None
        sft.commit()
        responses.commit()
        missed.commit()
        atomic_write_text(out / "distill_report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    except BaseException as exc:
        sft.discard()
        responses.discard()
        missed.discard()
        if isinstance(exc, _Abort):
            return 1
        raise
    _print_summary(report, out)
    if stats.kept == 0 and stats.rows:
        print("editjudge distill: warning: no response was accepted, sft.parquet has no rows; read responses.jsonl "
              "(what the teacher said and why each was refused), then fix the teacher or raise --samples/--tolerance",
              file=sys.stderr)
    return 0 if stats.rows_failed < stats.rows or not stats.rows else 1


class _Abort(Exception):
    """The teacher failed on every row so far: stop instead of retrying the whole file."""


def _print_summary(report: dict[str, Any], out: Path) -> None:
    rate = report["acceptance_rate"]

    def pct(value: float | None, digits: int = 0) -> str:
        return "n/a" if value is None else f"{value:.{digits}%}"

    lines = [
        f"distilled {report['rows']} rows -> {out / 'sft.parquet'}: {report['kept']} SFT rows, "
        f"{report['rows_with_accepted']} rows with an accepted response, {report['rows_without_accepted']} without "
        f"(see no_accepted.jsonl), {report['rows_failed']} the teacher could not judge",
        f"acceptance {pct(rate, 1)} of {report['responses']} responses; rejections: "
        + (", ".join(f"{k} {v}" for k, v in report["rejections"].items()) or "none"),
        "per label: " + ", ".join(
            f"{label}: {pct(v['acceptance_rate'])}"
            for label, v in report["per_label"].items()
        ),
    ]
    tokens, cost = report["tokens"], report["cost"]
    if tokens.get("reported_by_backend") and tokens.get("per_response") is not None:
        lines.append(
            f"tokens: {tokens['prompt']} prompt + {tokens['completion']} completion, "
            f"{tokens['per_response']:.0f} per response; {cost['requests']} requests"
            + (f"; ${cost['usd']:.2f}" if "usd" in cost else "")
        )
    print("\n".join(lines), file=sys.stderr)


def _select_hard(args: argparse.Namespace, out: Path) -> int:
    from editjudge.data.writer import SCHEMA, ParquetSink, atomic_write_text
    from editjudge.distill.hard import hard_summary, read_predictions, wrong_count
    from editjudge.distill.rules import label_key

    try:
        predictions = read_predictions(args.select_hard)
    except ValueError as exc:
        print(f"editjudge distill: error: {exc}", file=sys.stderr)
        return 2
    sink = ParquetSink(out / "hard.parquet", schema=SCHEMA)
    wrong_by_row: list[int] = []
    samples_by_row: list[int] = []
    rows = 0
    seen: set[str] = set()
    malformed: list[dict[str, str]] = []
    try:
        for row, rid, truth, problem in _rows(args):
            rows += 1
            if problem:  # a malformed row cannot be trained on: counted, never selected
                malformed.append({"id": rid, "reason": "malformed_row", "detail": problem})
                continue
            answers = predictions.samples.get(rid)
            if answers is None:
                continue
            seen.add(rid)
            # a dimension row is hard by its overall: the predictions' samples are each sample's overall
            wrong = wrong_count(answers, label_key(truth), args.tolerance)
            wrong_by_row.append(wrong)
            samples_by_row.append(len(answers))
            if wrong >= args.min_wrong:
                sink.add(row)
        report = hard_summary(
            wrong_by_row, samples_by_row, sink.rows, len(set(predictions.samples) - seen), predictions.problems,
            rows, args.min_wrong, args.tolerance,
        )
        report["predictions"] = absolute_path(args.select_hard)
        report["problems"] = predictions.problems[:100]
        report["malformed_rows"] = len(malformed)
        report["malformed_examples"] = malformed[:20]
        sink.commit()
        atomic_write_text(out / "hard_report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    except BaseException:
        sink.discard()
        raise
    print(
        f"selected {report['selected']} of {rows} train rows (wrong in >= {args.min_wrong} samples) -> "
        f"{out / 'hard.parquet'}; {report['rows_without_prediction']} rows had no prediction, "
        f"{len(predictions.problems)} prediction lines set aside (see hard_report.json)",
        file=sys.stderr,
    )
    if sink.rows == 0:
        print("editjudge distill: warning: no row is hard enough; lower --min-wrong or --tolerance", file=sys.stderr)
    return 0
