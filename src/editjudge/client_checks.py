"""What :class:`editjudge.client.JudgeClient` accepts from the service before an answer can become a reward.

The client trusts nothing it receives: a proxy's HTML page with status 200, a text 403, a server of another version
answering fewer results than it was sent, results in another order, NaN or a score of 12. :func:`score_results`
checks the whole answer (a JSON object, one result per item sent, the ids echoed in order) and each result (types,
finite numbers inside 0..9); a whole answer that fails is an :class:`InvalidAnswer` (the caller turns it into a
:class:`~editjudge.client.ServiceError`), a result that fails becomes that item's ``invalid_response`` error, so it
goes through the reward's failure policy like any other failure. Standard library only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

__all__ = ["InvalidAnswer", "NotText", "decode_json", "score_results", "result_problem", "failed_result", "retry_after",
           "finite_number", "check_number", "check_text"]

SCORE_MIN, SCORE_MAX = 0, 9
_TEXT_SHOWN = 120


class InvalidAnswer(ValueError):
    """The service's answer as a whole cannot be used: ``reason`` (a stable code) and ``detail``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def decode_json(content: bytes, content_type: str | None) -> Any:
    """The JSON of a response body; :class:`InvalidAnswer` (``not_json``) naming what came instead."""
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        shown = content[:_TEXT_SHOWN].decode("utf-8", "replace").replace("\n", " ")
        raise InvalidAnswer("not_json", f"the answer is not JSON ({content_type or 'no content type'}): {shown!r}") \
            from None


def finite_number(value: Any) -> bool:
    """A real number (not a bool) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _in_scale(value: Any) -> bool:
    return finite_number(value) and SCORE_MIN <= value <= SCORE_MAX


def result_problem(result: Any) -> str | None:
    """Why one item's result cannot be used (None when it can)."""
    if not isinstance(result, dict):
        return f"a result is {type(result).__name__}, not an object"
    score = result.get("score")
    if score is not None and (not isinstance(score, int) or isinstance(score, bool) or not _in_scale(score)):
        return f"score {score!r} is not an integer {SCORE_MIN}..{SCORE_MAX}"
    for key in ("expected_score", "mean_score"):
        value = result.get(key)
        if value is not None and not _in_scale(value):
            return f"{key} {value!r} is not a finite number in {SCORE_MIN}..{SCORE_MAX}"
    scores = result.get("scores")
    if scores is not None and (not isinstance(scores, list) or not all(
            s is None or (isinstance(s, int) and not isinstance(s, bool) and _in_scale(s)) for s in scores)):
        return "scores is not a list of answers 0..9 (or null)"
    for key in ("reasoning", "error"):
        if result.get(key) is not None and not isinstance(result.get(key), str):
            return f"{key} is not a string"
    return None


def failed_result(item_id: str, error: str) -> dict[str, Any]:
    """The result of an item that got no verdict (``error`` says why)."""
    return {"id": item_id, "score": None, "expected_score": None, "mean_score": None, "scores": None,
            "reasoning": None, "error": error}


def score_results(body: Any, sent_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The checked results of a ``/v1/score`` answer to items ``sent_ids``, in their order.

    :class:`InvalidAnswer` when the answer is not one result per item with the ids in order (it cannot be aligned
    with the items); a result that is malformed on its own becomes an ``invalid_response`` error for its item."""
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise InvalidAnswer("invalid_response", f"the answer has no 'results' list (got {str(body)[:_TEXT_SHOWN]!r})")
    if len(results) != len(sent_ids):
        raise InvalidAnswer("invalid_response", f"{len(results)} results for {len(sent_ids)} items sent")
    out = []
    for position, (sent, result) in enumerate(zip(sent_ids, results)):
        got = result.get("id") if isinstance(result, dict) else None
        if got is not None and str(got) != sent:
            raise InvalidAnswer("invalid_response", f"result {position} is for id {str(got)[:40]!r}, not the item "
                                                    f"sent there ({sent[:40]!r}): the answer is out of order")
        problem = result_problem(result)
        out.append(failed_result(sent, f"invalid_response: {problem}") if problem else {**result, "id": sent})
    return out


def retry_after(value: str | None, cap: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for, at most ``cap``; None when absent or not a number of seconds
    (an HTTP date, ``nan``, a negative number: the client's own backoff applies)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, cap)


def check_number(name: str, value: Any, low: float, *, integer: bool = False, low_open: bool = False) -> None:
    """``ValueError`` unless ``value`` is a finite number >= ``low`` (> with ``low_open``; an int with ``integer``)."""
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and finite_number(value)
    if not ok or value < low or (low_open and value == low):
        kind = "an integer" if integer else "a finite number"
        raise ValueError(f"{name} must be {kind} {'>' if low_open else '>='} {low:g}, got {value!r}")


class NotText(ValueError):
    """An item's text holds a lone surrogate: not Unicode, and the service would refuse the whole request for it
    (400 ``malformed_json``); the client fails that item alone instead."""

    reason = "malformed_json"


def check_text(payload: dict[str, Any], keys: Sequence[str] = ("id", "instruction")) -> dict[str, Any]:
    """``payload``, once its text fields are Unicode text; :class:`NotText` naming the first that is not."""
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise NotText(f"the {key} holds a lone surrogate (a \\udXXX with no pair): not Unicode text") from None
    return payload
