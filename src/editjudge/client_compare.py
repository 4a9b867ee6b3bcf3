"""The pairwise half of :class:`editjudge.client.JudgeClient`: ``POST /v1/compare`` payloads and answer checks.

Light like the client (httpx, Pillow, numpy). An item is ``(source, a, b, instruction)`` or a mapping with those keys
(plus ``id``, ``samples``); ``source`` may be a list of an edit's source images. Every answer is checked before a
caller sees it: one result per item with the item's id, a preference of A, B, tie or null, finite probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from editjudge.client_checks import check_text

PREFERENCES = ("A", "B", "tie")


def encode_sources(source: Any, send_paths: bool = False) -> Any:
    """One source image as the API takes it, or a list of an edit's source images."""
    from editjudge.client import encode_image

    if isinstance(source, (list, tuple)):
        return [encode_image(s, send_paths) for s in source]
    return encode_image(source, send_paths)


def pair_payload(item: Any, index: int, send_paths: bool, both_orders: bool) -> dict[str, Any]:
    """One ``CompareItem``."""
    from editjudge.client import encode_image

    if isinstance(item, Mapping):
        source, a, b, instruction = item["source"], item["a"], item["b"], item["instruction"]
        extra = {k: item[k] for k in ("id", "samples", "both_orders") if item.get(k) is not None}
    elif all(hasattr(item, k) for k in ("source", "a", "b", "instruction")):
        source, a, b, instruction, extra = item.source, item.a, item.b, item.instruction, {}
    else:
        source, a, b, instruction = item
        extra = {}
    return check_text({"id": str(extra.pop("id", index)), "source": encode_sources(source, send_paths),
                       "a": encode_image(a, send_paths), "b": encode_image(b, send_paths), "instruction": instruction,
                       "both_orders": bool(extra.pop("both_orders", both_orders)), **extra})


def refused_pairs(status: int, body: Any, size: int) -> list[dict[str, Any]] | None:
    """Per-item errors when the server refused a request only because every pair was bad."""
    error = body.get("error") if isinstance(body, dict) else None
    items = error.get("items") if isinstance(error, dict) else None
    if isinstance(items, list) and len(items) == size and 400 <= status < 500:
        return [{"preference": None, "probabilities": None, "consistent": None, "reasoning": None,
                 "error": f"input_error: {i.get('reason')}: {i.get('detail')}"} for i in items]
    return None


def checked_results(results: Any, chunk: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The server's results for ``chunk``, each checked; a result that is not a comparison becomes that item's
    error (``bad_answer: …``), never a wrong preference; ``ValueError`` when the count or ids do not match."""
    if not isinstance(results, list) or len(results) != len(chunk):
        raise ValueError(f"the server answered {len(results) if isinstance(results, list) else 'no list of'} "
                         f"results for {len(chunk)} pairs")
    out = []
    for item, result in zip(chunk, results):
        if not isinstance(result, dict) or str(result.get("id")) != item["id"]:
            raise ValueError(f"the server's results are not in the request's order (expected id {item['id']!r})")
        problem = _problem(result)
        out.append(result if problem is None else {"id": item["id"], "preference": None, "probabilities": None,
                                                   "consistent": None, "reasoning": None,
                                                   "error": f"bad_answer: {problem}"})
    return out


def _problem(result: dict[str, Any]) -> str | None:
    preference = result.get("preference")
    if preference is not None and preference not in PREFERENCES:
        return f"preference {preference!r:.40} is not one of {list(PREFERENCES)}"
    probs = result.get("probabilities")
    if probs is not None:
        if not isinstance(probs, dict) or set(probs) != set(PREFERENCES):
            return "probabilities must hold A, B and tie"
        for key, value in probs.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not 0 <= value <= 1:
                return f"p({key}) = {value!r:.40} is not a probability"
    if preference is None and not result.get("error"):
        return "no preference and no error"
    return None


__all__ = ["checked_results", "encode_sources", "pair_payload", "refused_pairs"]
