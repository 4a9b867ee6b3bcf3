"""Digit probabilities at the answer position → a tie-free expected score (shared by every backend).

The judge answers ``<answer>N</answer>`` with a single digit. The probability the model gives each digit at that
position turns the integer answer into a continuous one: ``expected_score = Σ k·p(k)``, with ``p`` renormalised
over the ten digit tokens (mass on non-digit tokens is ignored). Backends only have to find the answer step and
hand over the digits' log-probabilities; everything else lives here. Imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from editjudge.prompts import ANSWER_OPEN, SCORE_MAX, SCORE_MIN

DIGITS: tuple[str, ...] = tuple(str(k) for k in range(SCORE_MIN, SCORE_MAX + 1))


def answer_digit_index(tokens: Sequence[str]) -> int | None:
    """Index of the first digit token that directly follows ``<answer>`` (whitespace allowed), else None.

    ``tokens`` are the generated tokens as decoded text, in order; ``<answer>`` itself may span several tokens
    (real Qwen tokenizers) or be a single added token (the tiny model).
    """
    # Linear time: keep only what decides the test, not the whole prefix. ``core`` holds the last characters of
    # the text so far without its trailing whitespace, ``space`` that trailing whitespace (both cut to the tag's
    # length), so ``core.endswith(ANSWER_OPEN)`` equals ``prefix.rstrip().endswith(ANSWER_OPEN)``.
    keep = len(ANSWER_OPEN)
    core = space = ""
    for i, token in enumerate(tokens):
        if token in DIGITS and core.endswith(ANSWER_OPEN):
            return i
        body = token.rstrip()
        if body:
            core = (core + space + body)[-keep:]
            space = token[len(body) :][-keep:]
        else:
            space = (space + token)[-keep:]
    return None


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
    out: dict[str, float] = {}
    for token, logprob in items:
        if token in DIGITS and (token not in out or logprob > out[token]):
            out[token] = float(logprob)
    return out
