"""Reading the answer's token probabilities: where the answer slots are in the generated tokens, and what the
choices' log-probabilities there say. Shared by every format and every backend. Imports no torch.

The pointwise judge answers ``<answer>N</answer>`` with a single digit. The probability the model gives each digit
at that position turns the integer answer into a continuous one: ``expected_score = Σ k·p(k)``, with ``p``
renormalised over the ten digit tokens (mass on other tokens is ignored). Backends only find the slots (through the
format's ``answer_slots``) and hand over the choices' log-probabilities; everything else lives here.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from typing import NamedTuple

from editjudge.prompts import ANSWER_OPEN, SCORE_MAX, SCORE_MIN

DIGITS: tuple[str, ...] = tuple(str(k) for k in range(SCORE_MIN, SCORE_MAX + 1))
_NON_SPACE = re.compile(r"\S")


class Slot(NamedTuple):
    """Where an answer value begins in the generated tokens: the token ``index`` and the ``prefix`` of that token's
    text that comes before the value (``""`` when the value starts a token; ``">"`` when a tokenizer merged the end
    of ``<answer>`` with the value, as Qwen's byte-level BPE does with letters: ``<answer`` + ``>A``)."""

    index: int
    prefix: str


def values_after(tokens: Sequence[str], tag: str, start: int = 0) -> list[Slot]:
    """Every place where a value begins after ``tag`` (whitespace between allowed) in tokens ``>= start``, in order.

    ``tokens`` are decoded token texts; ``tag`` may span several tokens, be one added token (the tiny model), or
    share a token with the value. Linear in the text: one join, ``str.find`` for the tag, a bisection per hit.
    """
    text = "".join(tokens)
    ends = list(accumulate(len(tok) for tok in tokens))  # ends[i]: where token i ends in ``text``
    found: list[Slot] = []
    at = text.find(tag)
    while at >= 0:
        match = _NON_SPACE.search(text, at + len(tag))
        if match is None:
            break
        body = match.start()
        index = bisect_right(ends, body)
        if index >= start:
            found.append(Slot(index, text[ends[index] - len(tokens[index]) : body]))
        at = text.find(tag, at + len(tag))
    return found


def starts_choice(token: str, prefix: str, choices: Sequence[str]) -> str | None:
    """The choice a token text begins at a slot with ``prefix`` (the text after the prefix is a start of exactly
    that choice), or None. Digits: only the token ``"7"`` begins ``"7"``; pairwise: ``"t"``, ``"tie"`` begin tie."""
    if not token.startswith(prefix) or len(token) == len(prefix):
        return None
    rest = token[len(prefix) :]
    hits = [c for c in choices if c.startswith(rest)]
    return hits[0] if len(hits) == 1 else None


def first_choice_after(tokens: Sequence[str], choices: Sequence[str], tag: str = ANSWER_OPEN) -> Slot | None:
    """The first slot after ``tag`` whose token begins one of ``choices``, else None."""
    for slot in values_after(tokens, tag):
        if starts_choice(tokens[slot.index], slot.prefix, choices) is not None:
            return slot
    return None


def choice_logprobs(
    candidates: Iterable[tuple[str, float]], prefix: str = "", choices: Sequence[str] = DIGITS
) -> dict[str, float]:
    """Each choice's log-probability at a slot from ``(token text, log-probability)`` candidates (a server's
    top-logprobs, or a vocabulary): the texts that begin a choice (:func:`starts_choice`) add their probabilities;
    the same text listed twice counts once, at its best (servers list the sampled token beside its top-k)."""
    best: dict[str, float] = {}
    for token, logprob in candidates:
        value = float(logprob)
        if math.isfinite(value) and starts_choice(token, prefix, choices) is not None:
            if token not in best or value > best[token]:
                best[token] = value
    by_choice: dict[str, list[float]] = {}
    for token, value in best.items():
        by_choice.setdefault(starts_choice(token, prefix, choices), []).append(value)  # type: ignore[arg-type]
    out = {}
    for choice, values in by_choice.items():
        top = max(values)
        out[choice] = top if len(values) == 1 else top + math.log(sum(math.exp(v - top) for v in values))
    return out


def normalised(logprobs: Mapping[str, float] | None, choices: Sequence[str]) -> dict[str, float] | None:
    """Probabilities over ``choices`` renormalised from their log-probabilities (absent or non-finite: 0), or None
    when no choice has a finite log-probability (e.g. p(A), p(B), p(tie) at a pairwise answer slot)."""
    pairs = [(key, float(value)) for key, value in (logprobs or {}).items() if key in choices]
    pairs = [(key, value) for key, value in pairs if math.isfinite(value)]
    if not pairs:
        return None
    top = max(lp for _, lp in pairs)  # subtract the max: exp never overflows, tiny probabilities survive
    weights = {key: math.exp(lp - top) for key, lp in pairs}
    total = sum(weights.values())
    return {key: weights.get(key, 0.0) / total for key in choices}


def answer_digit_index(tokens: Sequence[str]) -> int | None:
    """Index of the first digit token that directly follows ``<answer>`` (whitespace allowed), else None: the
    pointwise format's one answer slot."""
    slot = first_choice_after(tokens, DIGITS)
    return None if slot is None else slot.index


def expected_score(digit_logprobs: Mapping[str, float] | None) -> float | None:
    """``Σ k·p(k)`` over the digits present in ``digit_logprobs`` (digit → log-probability), renormalised.

    Keys that are not the digits 0–9 are ignored, as are non-finite log-probabilities; digits absent from the
    mapping (e.g. outside a server's top-k) count as probability 0. Returns None when no digit is left.
    """
    if not digit_logprobs:
        return None
    pairs = [(int(d), float(lp)) for d, lp in digit_logprobs.items() if d in DIGITS and math.isfinite(float(lp))]
    if not pairs:
        return None
    top = max(lp for _, lp in pairs)  # subtract the max: exp never overflows, tiny probabilities survive
    weights = [(k, math.exp(lp - top)) for k, lp in pairs]
    total = sum(w for _, w in weights)
    return sum(k * w for k, w in weights) / total


def digit_logprobs_from_top(top_logprobs: Mapping[str, float] | Sequence[tuple[str, float]]) -> dict[str, float]:
    """Keep the digit entries of one step's top-logprobs (token text → log-probability); the best wins on repeats."""
    items = top_logprobs.items() if isinstance(top_logprobs, Mapping) else top_logprobs
    return choice_logprobs(items, "", DIGITS)
