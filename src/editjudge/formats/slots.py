"""Reading the answer's token probabilities: where the answer slots are in the generated tokens, and what the
choices' log-probabilities there say. Shared by every format and every backend. Imports no torch.

The pointwise judge answers ``<answer>N</answer>`` with a single digit. The probability the model gives each digit
at that position turns the integer answer into a continuous one: ``expected_score = Σ k·p(k)``, with ``p``
renormalised over the ten digit tokens (mass on other tokens is ignored). Backends only find the slots (through the
format's ``answer_slots``) and hand over the choices' log-probabilities; everything else lives here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from editjudge.prompts import ANSWER_OPEN, SCORE_MAX, SCORE_MIN

DIGITS: tuple[str, ...] = tuple(str(k) for k in range(SCORE_MIN, SCORE_MAX + 1))


def tag_follows(tokens: Sequence[str], tag: str, start: int = 0) -> list[int]:
    """Indices ``i >= start`` of the tokens that directly follow ``tag`` (whitespace between allowed), in order.

    ``tokens`` are decoded token texts; ``tag`` may span several tokens (real tokenizers) or be one added token
    (the tiny model). Linear time: only the last ``len(tag)`` characters of the text so far are kept (``core``: the
    text without its trailing whitespace, ``space``: that whitespace), so ``core.endswith(tag)`` equals
    ``prefix.rstrip().endswith(tag)``.
    """
    keep = len(tag)
    core = space = ""
    found: list[int] = []
    for i, token in enumerate(tokens):
        if i >= start and token.strip() and core.endswith(tag):
            found.append(i)
        body = token.rstrip()
        if body:
            core = (core + space + body)[-keep:]
            space = token[len(body) :][-keep:]
        else:
            space = (space + token)[-keep:]
    return found


def first_choice_after(tokens: Sequence[str], choices: Sequence[str], tag: str = ANSWER_OPEN) -> int | None:
    """Index of the first token that is one of ``choices`` and directly follows ``tag``, else None."""
    for i in tag_follows(tokens, tag):
        if tokens[i] in choices:
            return i
    return None


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
    return first_choice_after(tokens, DIGITS)


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


def choices_from_top(
    top_logprobs: Mapping[str, float] | Sequence[tuple[str, float]], choices: Sequence[str] = DIGITS
) -> dict[str, float]:
    """Keep the ``choices`` entries of one step's top-logprobs (token text → log-probability); the best wins on
    repeats (a server may list one text under several token ids)."""
    items = top_logprobs.items() if isinstance(top_logprobs, Mapping) else top_logprobs
    out: dict[str, float] = {}
    for token, logprob in items:
        if token in choices and (token not in out or logprob > out[token]):
            out[token] = float(logprob)
    return out


def digit_logprobs_from_top(top_logprobs: Mapping[str, float] | Sequence[tuple[str, float]]) -> dict[str, float]:
    """Keep the digit entries of one step's top-logprobs (token text → log-probability); the best wins on repeats."""
    return choices_from_top(top_logprobs, DIGITS)
