"""What a judge returns for one edit, built from a backend's raw generations with the shared parser."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from editjudge.formats import POINTWISE, JudgmentFormat


FAILURE_KINDS = ("input_error", "backend_error")


@dataclass(frozen=True)
class Generation:
    """One sampled response and, when the backend saw them, the log-probabilities of the format's choice tokens at
    each answer slot (``slot_logprobs``; the pointwise format has one slot: the digit after ``<answer>``).

    ``answer_logprobs`` is the first slot's (what a pointwise backend hands over); give one or the other.
    """

    text: str
    answer_logprobs: dict[str, float] | None = None
    slot_logprobs: tuple[dict[str, float] | None, ...] = ()

    @property
    def slots(self) -> tuple[dict[str, float] | None, ...]:
        """Every slot's log-probabilities (the first slot from ``answer_logprobs`` when only that was given)."""
        if self.slot_logprobs:
            return self.slot_logprobs
        return (self.answer_logprobs,) if self.answer_logprobs is not None else ()


def generation_from_slots(text: str, slots: list[dict[str, float] | None]) -> Generation:
    """A generation whose slot log-probabilities a backend read (``answer_logprobs`` = the first slot's)."""
    first = slots[0] if slots else None
    return Generation(text=text, answer_logprobs=first, slot_logprobs=tuple(slots) if len(slots) > 1 else ())


@dataclass(frozen=True)
class JudgeResult:
    """The judge's verdict on one edit.

    ``score`` is the parsed integer 0–9 (with Avg@k: the rounded mean of the parsed samples); ``expected_score`` is
    ``Σ k·p(k)`` at the answer position (mean over samples) or None when the answer did not parse or no
    probabilities were available; ``error`` is a parse reason from :data:`editjudge.answer.REASONS` or, for an item
    that could not be judged at all, ``"<kind>: <message>"`` (``input_error``, ``backend_error``).
    """

    score: int | None = None
    expected_score: float | None = None
    reasoning: str | None = None
    raw: str = ""
    error: str | None = None
    mean_score: float | None = None
    scores: tuple[int | None, ...] = field(default=())
    samples: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when the item was judged and at least one response parsed."""
        return self.score is not None

    @property
    def is_failure(self) -> bool:
        """True when the item could not be judged at all (bad input, server error), as opposed to a bad answer."""
        return bool(self.error) and self.error.startswith(FAILURE_KINDS)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scores"] = list(self.scores)
        data["samples"] = list(self.samples)
        return data


def failed(kind: str, message: str) -> JudgeResult:
    """A result for an item that could not be judged (bad image, server error, malformed response…)."""
    return JudgeResult(error=f"{kind}: {message}")


def combine(generations: Sequence[Generation], fmt: JudgmentFormat = POINTWISE) -> JudgeResult:
    """Parse every sample with the format's parser (pointwise: :func:`editjudge.answer.parse_response`) and
    aggregate them (Avg@k when k > 1)."""
    if not generations:
        return failed("backend_error", "the backend returned no generation")
    parsed = [fmt.parse(g.text) for g in generations]
    scores = tuple(p.answer for p in parsed)
    good = [s for s in scores if s is not None]
    expected = [
        e
        for g, p in zip(generations, parsed)
        if p.parsed and (e := fmt.read_slots(g.slots)) is not None
    ]
    first_ok = next((i for i, p in enumerate(parsed) if p.parsed), None)
    mean = sum(good) / len(good) if good else None
    return JudgeResult(
        score=int(round(mean)) if mean is not None else None,
        expected_score=sum(expected) / len(expected) if expected else None,
        reasoning=parsed[first_ok].think if first_ok is not None else None,
        raw=generations[first_ok if first_ok is not None else 0].text,
        error=None if good else parsed[0].error,
        mean_score=mean,
        scores=scores if len(generations) > 1 else (),
        samples=tuple(g.text for g in generations) if len(generations) > 1 else (),
    )
