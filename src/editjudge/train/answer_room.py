"""Room for the answer: whether a completion budget can hold one whole answer of the rows' formats (both engines).

The shortest answer a judge can give is the warm start's (``<think>ok</think><answer>…</answer>`` and the end of the
turn); when the tokenizer makes it longer than the budget (verl's ``data.max_response_length``, TRL's
``max_completion_length``), every completion is cut before its answer closes: every reward is 0, GRPO has nothing to
compare and the run learns nothing, silently. Imports no torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from editjudge.formats import POINTWISE, JudgmentFormat

WARM_START_THINK = "ok"  # the warm start's constant reasoning


def warm_start_target(value: Any, fmt: JudgmentFormat = POINTWISE) -> str:
    """A supervised target of the warm start: the answer FORMAT only — a constant short reasoning, then ``value``.

    The warm start pairs every training prompt with each of the format's answers once (``fmt.warm_start_values()``;
    pointwise: ``trl_data.WARM_START_DIGITS``, see ``trl_data.build_dataset``), so its targets carry nothing about the images
    or the label: the best it can learn is the format with a uniform answer for every edit (a fixed random digit per
    row would be memorised, and sharp answers leave GRPO's groups without reward variance). Whatever the judge
    learns about the edits comes from GRPO.
    """
    return fmt.answer_text(value, WARM_START_THINK)


def answer_tokens(formats: Iterable[Any], tokenizer: Any) -> tuple[int, str]:
    """The tokens the longest of the formats' label-free answers takes with the end of the turn, and that answer."""
    longest, example = 0, ""
    for fmt in {fmt.data_source: fmt for fmt in formats}.values():
        for value in fmt.warm_start_values():
            text = warm_start_target(value, fmt)
            tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 1  # + the end of the turn
            if tokens > longest:
                longest, example = tokens, text
    return longest, example


def budget_problem(formats: Iterable[Any], tokenizer: Any, max_completion_length: int) -> str | None:
    """Why ``max_completion_length`` cannot hold an answer (naming the key and the number to set), or None."""
    needed, example = answer_tokens(formats, tokenizer)
    if needed <= max_completion_length:
        return None
    return (f"completions of at most {max_completion_length} tokens cannot hold an answer: {example!r} and the end "
            f"of the turn take {needed} tokens with this tokenizer, so every completion would be cut before its "
            f"answer closes (reward 0). Set data.max_response_length (or trl.max_completion_length) to at least "
            f"{needed}")


__all__ = ["WARM_START_THINK", "answer_tokens", "budget_problem", "warm_start_target"]
