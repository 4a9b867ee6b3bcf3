"""The seed's judgment format: a source and an edited image, one integer 0–9, accuracy within ±2 of the label.

The default format. Its rows are byte-identical to the seed recipe's contract (``data_source`` ``tts_edit_score``,
ground truth ``"0"``..``"9"``), its reading is :func:`editjudge.answer.parse_response`, its reward
:func:`editjudge.reward.compute_score` on a ``tts_edit_score`` row. Imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from editjudge import prompts
from editjudge.answer import ParsedResponse, parse_response
from editjudge.formats.base import RewardRule, digit_credit, roles_with_sources
from editjudge.formats.slots import DIGITS, Slot, expected_score, first_choice_after

_LABELS = {str(d): d for d in range(prompts.SCORE_MIN, prompts.SCORE_MAX + 1)}
ROLES = ("source", "edited")
#: ``pred`` of a response that yields no score: outside 0..9, so it never counts as a prediction.
UNPARSED_PRED = -1
#: ``abs_error`` of a response that yields no score: the largest possible error.
UNPARSED_ABS_ERROR = prompts.SCORE_MAX - prompts.SCORE_MIN


@dataclass(frozen=True)
class PointwiseFormat:
    """One 0–9 score per edit (the seed recipe's format)."""

    name: str = "pointwise"
    data_source: str = prompts.DATA_SOURCE
    choice_tokens: tuple[str, ...] = DIGITS
    logged_extras: tuple[str, ...] = ("abs_error",)

    @property
    def spec(self) -> str:
        return self.name

    def image_roles(self, n_sources: int = 1) -> tuple[str, ...]:
        return ROLES if n_sources == 1 else roles_with_sources(n_sources, ROLES[1:])

    def load_template(self, name_or_path: prompts.PromptTemplate | str | Path = prompts.DEFAULT_TEMPLATE) \
            -> prompts.PromptTemplate:
        if isinstance(name_or_path, prompts.PromptTemplate):
            return name_or_path
        return prompts.load_template(name_or_path)

    def messages(self, instruction: str, template: prompts.PromptTemplate | str = prompts.DEFAULT_TEMPLATE,
                 n_sources: int = 1) -> list[dict[str, str]]:
        self.image_roles(n_sources)
        return prompts.build_messages(instruction, self.load_template(template), n_sources)

    def parse(self, text: str) -> ParsedResponse:
        return parse_response(text)

    def answer_text(self, value: int, reasoning: str = "") -> str:
        return prompts.format_answer(value, reasoning)

    def warm_start_values(self) -> tuple[int, ...]:
        return tuple(range(prompts.SCORE_MIN, prompts.SCORE_MAX + 1))

    def encode_label(self, label: int) -> str:
        return str(self.parse_label(label))

    def parse_label(self, ground_truth: Any) -> int:
        """The integer label 0..9 (``"7"``, ``7``, ``7.0``, numpy scalars), rounded like the seed; ``ValueError``
        naming the value otherwise: a bad label is a data bug, not a response to score 0."""
        if type(ground_truth) is str:  # the parquet's "0".."9": a dict lookup
            label = _LABELS.get(ground_truth)
            if label is not None:
                return label
        try:
            value = math.nan if isinstance(ground_truth, bool) else float(ground_truth)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or not prompts.SCORE_MIN <= round(value) <= prompts.SCORE_MAX:
            raise ValueError(
                f"ground_truth must be a score {prompts.SCORE_MIN}..{prompts.SCORE_MAX} (e.g. the string '7' that "
                f"`editjudge prepare` writes to reward_model.ground_truth), got {ground_truth!r}"
            )
        return int(round(value))

    def accuracy(self, verdict: ParsedResponse, label: int, options: RewardRule) -> dict[str, float]:
        """``accuracy``, ``pred`` (-1 when unparsed) and ``abs_error`` (9 when unparsed: means count it worst)."""
        score = verdict.score
        if score is None:
            return {"accuracy": 0.0, "pred": UNPARSED_PRED, "abs_error": UNPARSED_ABS_ERROR}
        distance = abs(score - label)
        return {"accuracy": digit_credit(distance, options), "pred": score, "abs_error": distance}

    def answer_slots(self, tokens: Sequence[str]) -> list[Slot]:
        """The first digit that begins the answer (after ``<answer>``, whitespace allowed)."""
        slot = first_choice_after(tokens, DIGITS)
        return [] if slot is None else [slot]

    def read_slots(self, slot_logprobs: Sequence[Mapping[str, float] | None]) -> float | None:
        """The expected score Σ k·p(k) at the answer digit (None without probabilities)."""
        return expected_score(slot_logprobs[0]) if slot_logprobs else None


POINTWISE = PointwiseFormat()
