"""The pointwise answer's digit probabilities (kept here for the backends and users that import it; the functions
live in :mod:`editjudge.formats.slots`, shared by every format). Imports no torch."""

from __future__ import annotations

from editjudge.formats.slots import DIGITS, answer_digit_index, digit_logprobs_from_top, expected_score

__all__ = ["DIGITS", "answer_digit_index", "digit_logprobs_from_top", "expected_score"]
