"""Parse a judge's response: the one parser shared by the reward, every judge backend and evaluation.

Two layers. The **envelope** (:func:`parse_envelope`) is the same for every judgment format: the response's
structure, ``<think>reasoning</think><answer>BODY</answer>``, read strictly with the structural reasons below. The
**body** is the format's own grammar (:mod:`editjudge.formats`); :func:`parse_response` is the seed's pointwise
reading of it — one number 0..9 — and what the rest of this docstring describes.

A response is *well-formed* when, ignoring surrounding whitespace, it is exactly::

    <think>reasoning</think><answer>N</answer>      (whitespace allowed between the two blocks)

or just ``<answer>N</answer>`` (parsed, but without the reasoning block). ``N`` is one plain decimal number of at
most 32 characters, surrounding whitespace ignored (``7``, `` 7 ``, ``+7``, ``7.0``, ``7.``, ``.5``); it is rounded
with Python's ``round`` (half to even, as the seed did: ``8.5`` → 8) and must land in 0..9.

Everything else is rejected with a named reason, never guessed at:

========================  ==========================================================================
``no_answer``             no ``<answer>…</answer>`` pair (missing, unclosed, or closed before opened)
``multiple_answers``      more than one ``<answer>`` or ``</answer>`` tag
``malformed_think``       more than one think tag, or an unclosed / unopened one
``answer_before_think``   the answer block comes before (or inside) the reasoning block
``nested_tags``           the reasoning block is inside the answer block, or the two blocks interleave
``text_outside_tags``     non-whitespace text before the first block, between blocks, or after ``</answer>``
``non_numeric_answer``    the answer is not one plain number ("3-5", "3 or 4", "seven", "1e1", "nan", "7/9")
``out_of_range``          the number rounds outside 0..9
========================  ==========================================================================

The scan uses ``str.find``/``str.count`` only (a regex touches nothing but the short answer): linear time on any
input, no backtracking. A one-pass fast path accepts well-formed responses; anything else goes through the full
rule-by-rule classifier, which names the reason (the two agree on every input; property-tested).

Every accepted number is one that ``float`` also accepts, with the same value, so a score from this parser never
disagrees with the seed's ``float(answer)`` reading.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from editjudge.prompts import ANSWER_CLOSE, ANSWER_OPEN, SCORE_MAX, SCORE_MIN, THINK_CLOSE, THINK_OPEN

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")  # ASCII digits only: [0-9], not \d
_MAX_NUMBER_CHARS = 32

#: The envelope's reasons (structure), the same for every format.
ENVELOPE_REASONS = (
    "no_answer",
    "multiple_answers",
    "malformed_think",
    "answer_before_think",
    "nested_tags",
    "text_outside_tags",
)
#: Every reason of the pointwise reading: the envelope's, then the number's.
REASONS = (*ENVELOPE_REASONS, "non_numeric_answer", "out_of_range")


class Envelope(NamedTuple):
    """A response's structure: the reasoning and the answer's text, or the structural reason it is malformed.

    ``answer_text`` is set whenever one ``<answer>…</answer>`` pair was found (also when the structure around it
    is wrong, so a reason can show what was answered); ``think`` when the reasoning block was read.
    """

    think: str | None = None
    answer_text: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the structure is well-formed (the body may still be refused by a format's grammar)."""
        return self.error is None and self.answer_text is not None


class ParsedResponse(NamedTuple):
    """What a response says. ``score`` is set exactly when the response is well-formed and in range.

    An immutable named tuple (cheap to build: the reward parses ~10^5 responses per second per core).
    """

    score: int | None = None
    value: float | None = None
    think: str | None = None
    answer_text: str | None = None
    error: str | None = None

    @property
    def answer(self) -> int | None:
        """The format's answer (:class:`editjudge.formats.base.Verdict`): the score."""
        return self.score

    @property
    def parsed(self) -> bool:
        """True when the response yields a score in 0..9."""
        return self.score is not None

    @property
    def has_think(self) -> bool:
        """True when a well-formed response carries a ``<think>…</think>`` block."""
        return self.think is not None and self.error is None


def _blank(text: str) -> bool:
    return not text or text.isspace()


_DIGITS = {str(d): d for d in range(SCORE_MIN, SCORE_MAX + 1)}


def parse_envelope(text: str) -> Envelope:
    """The structure of one response (every format's first step); never raises for any ``str``."""
    if not isinstance(text, str):
        return Envelope(error="no_answer")
    return _well_formed_envelope(text) or _classify(text)


def parse_response(text: str) -> ParsedResponse:
    """Parse one response in the seed's pointwise format; never raises for any ``str`` (else ``no_answer``)."""
    envelope = parse_envelope(text)
    if envelope.error is not None or envelope.answer_text is None:
        return ParsedResponse(think=envelope.think, answer_text=envelope.answer_text, error=envelope.error or "no_answer")
    return read_number(envelope.think, envelope.answer_text)


def read_number(think: str | None, answer_text: str) -> ParsedResponse:
    """The pointwise body: one plain number that rounds into 0..9, or why not (for a well-formed envelope)."""
    """The score of a structurally well-formed response, or why its answer is rejected."""
    stripped = answer_text.strip()
    digit = _DIGITS.get(stripped)
    if digit is not None:  # the common case, "7"
        return ParsedResponse(digit, float(digit), think, answer_text, None)
    if len(stripped) > _MAX_NUMBER_CHARS or _NUMBER.fullmatch(stripped) is None:
        return ParsedResponse(think=think, answer_text=answer_text, error="non_numeric_answer")
    value = float(stripped)
    if not math.isfinite(value) or not SCORE_MIN <= round(value) <= SCORE_MAX:
        return ParsedResponse(value=value, think=think, answer_text=answer_text, error="out_of_range")
    return ParsedResponse(score=int(round(value)), value=value, think=think, answer_text=answer_text)


def _well_formed_envelope(text: str) -> Envelope | None:
    """Fast path, one pass: the envelope when the only ``<`` characters are those of its tags, in the well-formed
    order with blank text around the blocks; else ``None`` (the full classifier then names the reason).

    With exactly as many ``<`` as tags found in order, no other tag can occur anywhere in the text.
    """
    n_lt = text.count("<")
    think: str | None = None
    if n_lt == 4:
        t_open = text.find(THINK_OPEN)
        if t_open < 0 or not _blank(text[:t_open]):
            return None
        t_body = t_open + len(THINK_OPEN)
        t_close = text.find(THINK_CLOSE, t_body)
        if t_close < 0:
            return None
        a_open = text.find(ANSWER_OPEN, t_close + len(THINK_CLOSE))
        if a_open < 0 or not _blank(text[t_close + len(THINK_CLOSE) : a_open]):
            return None
        think = text[t_body:t_close]
    elif n_lt == 2:
        a_open = text.find(ANSWER_OPEN)
        if a_open < 0 or not _blank(text[:a_open]):
            return None
    else:
        return None
    a_body = a_open + len(ANSWER_OPEN)
    a_close = text.find(ANSWER_CLOSE, a_body)
    if a_close < 0 or not _blank(text[a_close + len(ANSWER_CLOSE) :]):
        return None
    return Envelope(think, text[a_body:a_close])


def _classify(text: str) -> Envelope:
    """The full rules, tag by tag (each ``str.count``/``str.find`` is one linear scan)."""
    n_ao, n_ac = text.count(ANSWER_OPEN), text.count(ANSWER_CLOSE)
    if n_ao == 0 or n_ac == 0:
        return Envelope(error="no_answer")
    if n_ao > 1 or n_ac > 1:
        return Envelope(error="multiple_answers")
    a_open, a_close = text.find(ANSWER_OPEN), text.find(ANSWER_CLOSE)
    if a_close < a_open:
        return Envelope(error="no_answer")
    answer_text = text[a_open + len(ANSWER_OPEN) : a_close]

    n_to, n_tc = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    think: str | None = None
    if n_to or n_tc:
        if n_to != 1 or n_tc != 1:
            return Envelope(answer_text=answer_text, error="malformed_think")
        t_open, t_close = text.find(THINK_OPEN), text.find(THINK_CLOSE)
        if t_close < t_open:
            return Envelope(answer_text=answer_text, error="malformed_think")
        if a_open < t_open < a_close or a_open < t_close < a_close:
            return Envelope(answer_text=answer_text, error="nested_tags")
        if t_open > a_open or t_open < a_open < t_close:
            return Envelope(answer_text=answer_text, error="answer_before_think")
        think = text[t_open + len(THINK_OPEN) : t_close]
        if not _blank(text[:t_open]) or not _blank(text[t_close + len(THINK_CLOSE) : a_open]):
            return Envelope(think=think, answer_text=answer_text, error="text_outside_tags")
    elif not _blank(text[:a_open]):
        return Envelope(answer_text=answer_text, error="text_outside_tags")
    if not _blank(text[a_close + len(ANSWER_CLOSE) :]):
        return Envelope(think=think, answer_text=answer_text, error="text_outside_tags")
    return Envelope(think, answer_text)
