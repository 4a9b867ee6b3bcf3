"""What a judge returns for one edit, built from a backend's raw generations with the shared parser."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from editjudge.formats import POINTWISE, DimensionsFormat, JudgmentFormat


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

    A dimension judge (:class:`~editjudge.formats.dimensions.DimensionsFormat`) fills ``dimensions``: per dimension,
    in the set's order, ``{"score", "mean_score", "expected_score"}`` (+ ``"scores"`` per sample under Avg@k), and
    ``score`` / ``mean_score`` / ``expected_score`` are the OVERALL by the set's rule (of each sample's digits, of each
    dimension's expected score), so everything that ranks or thresholds by ``score`` ranks by the overall.
    """

    score: int | None = None
    expected_score: float | None = None
    reasoning: str | None = None
    raw: str = ""
    error: str | None = None
    mean_score: float | None = None
    scores: tuple[int | None, ...] = field(default=())
    samples: tuple[str, ...] = field(default=())
    dimensions: dict[str, dict[str, Any]] | None = None  # a dimension judge's per-dimension scores (see above)

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
        if self.dimensions is None:  # a one-score judge's dict is as it always was
            del data["dimensions"]
        return data

    def on(self, dimension: str | None) -> JudgeResult:
        """This result seen through one dimension (its score, mean and expected score in place of the overall's),
        or itself for ``None`` / ``"overall"``; ``ValueError`` naming the judge's dimensions otherwise."""
        if dimension in (None, "overall") or (self.dimensions is None and self.score is None):
            return self  # the overall, or an item that was not judged (it ranks last whatever the dimension)
        if not self.dimensions or dimension not in self.dimensions:
            known = ["overall", *(self.dimensions or {})]
            raise ValueError(f"no dimension {dimension!r} in this judge's results; it gives {known}")
        part = self.dimensions[dimension]
        return JudgeResult(score=part["score"], expected_score=part["expected_score"], reasoning=self.reasoning,
                           raw=self.raw, error=self.error, mean_score=part["mean_score"])


def failed(kind: str, message: str) -> JudgeResult:
    """A result for an item that could not be judged (bad image, server error, malformed response…)."""
    return JudgeResult(error=f"{kind}: {message}")


def combine(generations: Sequence[Generation], fmt: JudgmentFormat = POINTWISE) -> JudgeResult:
    """Parse every sample with the format's parser (pointwise: :func:`editjudge.answer.parse_response`) and
    aggregate them (Avg@k when k > 1); a dimension format's samples are combined per dimension
    (:func:`combine_dimensions`)."""
    if not generations:
        return failed("backend_error", "the backend returned no generation")
    if isinstance(fmt, DimensionsFormat):
        return combine_dimensions(generations, fmt)
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


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def combine_dimensions(generations: Sequence[Generation], fmt: DimensionsFormat) -> JudgeResult:
    """A dimension judge's samples combined: per dimension the mean of the parsed digits (``score`` rounded) and of
    ``Σ k·p(k)`` at that dimension's slot; the overall by the set's rule, of each sample's digits (``score``,
    ``mean_score``) and of its expected scores (``expected_score``)."""
    parsed = [fmt.parse(g.text) for g in generations]
    combine_set = fmt.dimension_set.combine
    good = [p.answer for p in parsed if p.answer is not None]
    overall = [combine_set(dict(zip(fmt.names, digits))) for digits in good]
    read = [fmt.read_slots(g.slots) if p.parsed else None for g, p in zip(generations, parsed)]
    read = [r for r in read if r is not None]
    k = len(generations)
    dimensions: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(fmt.names):
        mean = _mean([digits[i] for digits in good])
        part: dict[str, Any] = {"score": None if mean is None else int(round(mean)), "mean_score": mean,
                                "expected_score": _mean([r[name] for r in read])}
        if k > 1:
            part["scores"] = [p.answer[i] if p.answer is not None else None for p in parsed]
        dimensions[name] = part
    first_ok = next((i for i, p in enumerate(parsed) if p.parsed), None)
    mean_overall = _mean(overall)
    return JudgeResult(
        score=None if mean_overall is None else int(round(mean_overall)),
        expected_score=_mean([r["overall"] for r in read]),
        reasoning=parsed[first_ok].think if first_ok is not None else None,
        raw=generations[first_ok if first_ok is not None else 0].text,
        error=None if good else parsed[0].error,
        mean_score=mean_overall,
        scores=tuple(None if v is None else int(round(v)) for v in
                     (combine_set(dict(zip(fmt.names, p.answer))) if p.answer else None for p in parsed))
        if k > 1 else (),
        samples=tuple(g.text for g in generations) if k > 1 else (),
        dimensions=dimensions,
    )
