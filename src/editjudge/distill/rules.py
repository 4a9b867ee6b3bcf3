"""The acceptance rule, verl's multi-turn SFT row and the distillation report's counters. Imports no torch.

A teacher response is *accepted* when :func:`editjudge.answer.parse_response` reads it as well-formed with a
non-empty ``<think>`` block and its answer is within ``tolerance`` of the row's label (0: exact). A dimension row
(``prepare --dimensions SET``: its prompt asks for every dimension) is read by its format, and a response is
accepted when EVERY labelled dimension is within ``tolerance`` (``wrong_answer`` otherwise). Each rejected
response gets one named reason: a parser reason from :data:`editjudge.answer.REASONS`, ``no_reasoning`` (no or an
empty think block), ``wrong_answer`` (parsed, outside the tolerance), ``over_keep`` (accepted but the row already has
``--keep`` responses) or the backend's failure (``backend_error``, ``input_error``).

The SFT row is verl's multi-turn SFT format (``verl.utils.dataset.multiturn_sft_dataset.MultiTurnSFTDataset``):
``messages`` = the prepared row's system and user messages (the project's one prompt, two ``<image>`` placeholders)
followed by the teacher's response as the assistant turn; ``images`` exactly as ``editjudge prepare`` wrote them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from editjudge import prompts
from editjudge.answer import parse_response
from editjudge.data.writer import SCHEMA

__all__ = ["SFT_SCHEMA", "Judged", "judge_response", "sft_row", "DistillStats", "bare_reasoning_response"]

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

SFT_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("messages", pa.list_(_MESSAGE)),
        ("images", SCHEMA.field("images").type),
        ("ability", pa.string()),
        ("extra_info", SCHEMA.field("extra_info").type),
        (
            "distill",
            pa.struct(
                [
                    ("origin", pa.string()),  # "teacher" or "manifest"
                    ("sample", pa.int64()),  # which of the K samples
                    ("answer", pa.int64()),  # the response's parsed answer
                    ("label", pa.int64()),
                ]
            ),
        ),
    ]
)


@dataclass(frozen=True)
class Judged:
    """One response under the acceptance rule: its answer (or None) and why it was rejected (None: accepted); a
    dimension row's ``answer`` is the overall of the digits (its set's rule, rounded) and ``dimensions`` the digits."""

    text: str
    answer: int | None
    reason: str | None
    dimensions: dict[str, int] | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is None


def row_format_label(row: dict[str, Any]) -> tuple[Any, Any]:
    """A prepared row's judgment format (by its data_source and label, as the reward routes it) and its label (an
    int 0..9; a dimension row's ``{dimension: label or None}``); ``ValueError`` naming a bad label."""
    from editjudge.formats import format_for_row

    reward_model = row.get("reward_model") if isinstance(row.get("reward_model"), dict) else {}
    extra = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
    truth = reward_model.get("ground_truth", extra.get("label"))  # prepare writes both: the reader's fallback
    fmt = format_for_row(row.get("data_source"), truth)
    return fmt, fmt.parse_label(truth)


def label_key(label: Any) -> int:
    """The number a label is counted under in the report's per-label tables (a dimension row's: the rounded mean of
    its labelled dimensions)."""
    if isinstance(label, dict):
        values = [v for v in label.values() if v is not None]
        return int(round(sum(values) / len(values)))
    return int(label)


def judge_response(text: str, label: Any, tolerance: int = 0, fmt: Any = None) -> Judged:
    """Apply the acceptance rule to one response (see the module docstring); ``fmt``: the row's format (None:
    pointwise)."""
    from editjudge.formats import DimensionsFormat

    if isinstance(fmt, DimensionsFormat):
        return _judge_dimensions(text, label, tolerance, fmt)
    parsed = parse_response(text)
    if parsed.error is not None or parsed.score is None:
        return Judged(text, None, parsed.error or "no_answer")
    if parsed.think is None or not parsed.think.strip():
        return Judged(text, parsed.score, "no_reasoning")
    if abs(parsed.score - int(label)) > tolerance:
        return Judged(text, parsed.score, "wrong_answer")
    return Judged(text, parsed.score, None)


def _judge_dimensions(text: str, labels: dict[str, int | None], tolerance: int, fmt: Any) -> Judged:
    verdict = fmt.parse(text)
    if verdict.error is not None or verdict.answer is None:
        return Judged(text, None, verdict.error or "no_answer")
    digits = dict(zip(fmt.names, verdict.answer))
    overall = int(round(fmt.dimension_set.combine(digits)))
    if verdict.think is None or not verdict.think.strip():
        return Judged(text, overall, "no_reasoning", digits)
    if any(labels.get(n) is not None and abs(digits[n] - labels[n]) > tolerance for n in fmt.names):
        return Judged(text, overall, "wrong_answer", digits)
    return Judged(text, overall, None, digits)


def bare_reasoning_response(reasoning: str, label: Any, fmt: Any = None) -> str:
    """A user-provided trace as a response: kept as is when it carries an ``<answer>`` block, else the bare reasoning
    wrapped as ``<think>reasoning</think><answer>label</answer>`` (tags inside it are then caught by the parser); a
    dimension row's answer is its labels, one line per dimension (a row with an unlabelled dimension has no answer
    to give: the trace must carry its own, else it is refused as ``no_answer``)."""
    if prompts.ANSWER_OPEN in reasoning or prompts.ANSWER_CLOSE in reasoning:
        return reasoning
    if isinstance(label, dict):
        if any(v is None for v in label.values()):
            return f"{prompts.THINK_OPEN}{reasoning.strip()}{prompts.THINK_CLOSE}"
        return fmt.answer_text(tuple(label[n] for n in fmt.names), reasoning.strip())
    return f"{prompts.THINK_OPEN}{reasoning.strip()}{prompts.THINK_CLOSE}{prompts.ANSWER_OPEN}{int(label)}{prompts.ANSWER_CLOSE}"


def sft_row(row: dict[str, Any], response: str, *, origin: str, sample: int, answer: int, label: int) -> dict[str, Any]:
    """verl's multi-turn SFT row for one accepted response to a prepared (GRPO) row."""
    prompt = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
    return {
        "data_source": row.get("data_source") or prompts.DATA_SOURCE,
        "messages": prompt + [{"role": "assistant", "content": response}],
        "images": [{"bytes": image["bytes"]} for image in row["images"]],
        "ability": row.get("ability") or prompts.ABILITY,
        "extra_info": row["extra_info"],
        "distill": {"origin": origin, "sample": sample, "answer": answer, "label": label},
    }


@dataclass
class DistillStats:
    """Counts for ``distill_report.json``: per label, the answer confusion, reasons, tokens and requests."""

    tolerance: int
    keep: int
    samples: int
    rows: int = 0
    rows_accepted: int = 0
    rows_failed: int = 0
    responses: int = 0
    accepted: int = 0
    kept: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_known: bool = True
    per_label: dict[int, Counter] = field(default_factory=dict)
    confusion: dict[int, Counter] = field(default_factory=dict)
    reasons: Counter = field(default_factory=Counter)

    def add_row(self, label: int | None, judged: list[Judged], kept: int, failure: str | None = None) -> None:
        """Count one row's responses (``failure``: the backend could not judge it at all; ``label`` None: a malformed
        row, counted with its failure but under no label)."""
        self.rows += 1
        counts = self.per_label.setdefault(int(label), Counter()) if label is not None else Counter()
        counts["rows"] += 1
        if failure is not None:
            self.rows_failed += 1
            counts["failed"] += 1
            self.reasons[failure.split(":", 1)[0]] += 1
            return
        confusion = self.confusion.setdefault(int(label), Counter())
        for item in judged:
            self.responses += 1
            counts["responses"] += 1
            confusion["none" if item.answer is None else str(item.answer)] += 1
            if item.accepted:
                self.accepted += 1
                counts["accepted"] += 1
            else:
                self.reasons[item.reason] += 1
        self.kept += kept
        counts["kept"] += kept
        if kept:
            self.rows_accepted += 1
            counts["rows_accepted"] += 1

    def add_usage(self, usage: dict[str, int] | None, failed: bool = False) -> None:
        """One request's token usage as the server reported it (None: the backend does not report it; a failed
        request counts as a request with no tokens)."""
        self.requests += 1
        if failed:
            return
        if usage is None:
            self.usage_known = False
            return
        self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.completion_tokens += int(usage.get("completion_tokens") or 0)

    def report(self, price_in: float | None = None, price_out: float | None = None) -> dict[str, Any]:
        """The report as JSON-ready data (keys sorted by label)."""
        per_label = {}
        for label in sorted(self.per_label):
            c = self.per_label[label]
            per_label[str(label)] = {
                "rows": c["rows"],
                "rows_failed": c["failed"],
                "responses": c["responses"],
                "accepted": c["accepted"],
                "acceptance_rate": round(c["accepted"] / c["responses"], 6) if c["responses"] else None,
                "rows_with_accepted": c["rows_accepted"],
                "kept": c["kept"],
            }
        answers = [str(a) for a in range(prompts.SCORE_MIN, prompts.SCORE_MAX + 1)] + ["none"]
        confusion = {
            str(label): {a: self.confusion[label][a] for a in answers if self.confusion[label][a]}
            for label in sorted(self.confusion)
        }
        known = self.usage_known and self.requests > 0
        tokens: dict[str, Any] = {"reported_by_backend": known}
        if known:
            tokens.update(
                prompt=self.prompt_tokens,
                completion=self.completion_tokens,
                per_response=round(self.completion_tokens / self.responses, 3) if self.responses else None,
            )
        cost: dict[str, Any] = {"requests": self.requests}
        if known and price_in is not None and price_out is not None:
            cost["usd"] = round(self.prompt_tokens * price_in / 1e6 + self.completion_tokens * price_out / 1e6, 6)
        return {
            "settings": {"samples": self.samples, "tolerance": self.tolerance, "keep": self.keep},
            "rows": self.rows,
            "rows_with_accepted": self.rows_accepted,
            "rows_without_accepted": self.rows - self.rows_accepted,
            "rows_failed": self.rows_failed,
            "responses": self.responses,
            "accepted": self.accepted,
            "acceptance_rate": round(self.accepted / self.responses, 6) if self.responses else None,
            "kept": self.kept,
            "rejections": dict(sorted(self.reasons.items())),
            "per_label": per_label,
            "answer_confusion": confusion,
            "tokens": tokens,
            "cost": cost,
        }
