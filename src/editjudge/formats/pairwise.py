"""The pairwise format: the source and two candidate edits A and B in one prompt; the answer is ``A``, ``B`` or
``tie`` inside the answer tags, read strictly (``non_choice_answer`` otherwise, after the envelope's reasons).

A row's label is ``"A"``, ``"B"`` or ``"tie"``. The accuracy term is 1 when the preference equals the label (a
correct ``tie`` included) and 0 otherwise — a tie answered for a strict preference, or a preference for a tie, earns
nothing — so the reward keeps the seed's 2.0 scale (format 1 + preference 1). Imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from editjudge import prompts
from editjudge.answer import parse_envelope
from editjudge.formats.base import RewardRule, roles_with_sources
from editjudge.formats.slots import Slot, first_choice_after, normalised

DATA_SOURCE = "editjudge_pairwise"
CHOICES = ("A", "B", "tie")
CANDIDATES = ("A", "B")  # the image roles after the source(s)
BODY_REASONS = ("non_choice_answer",)


class PairwiseVerdict(NamedTuple):
    """A parsed pairwise response: ``preference`` is ``"A"``, ``"B"`` or ``"tie"``, or ``error``."""

    preference: str | None = None
    think: str | None = None
    answer_text: str | None = None
    error: str | None = None

    @property
    def answer(self) -> str | None:
        return self.preference

    @property
    def parsed(self) -> bool:
        return self.preference is not None

    @property
    def has_think(self) -> bool:
        return self.think is not None and self.error is None


@dataclass(frozen=True)
class PairwiseFormat:
    """Which of two candidate edits of one source is better, or a tie."""

    name: str = "pairwise"
    data_source: str = DATA_SOURCE
    choice_tokens: tuple[str, ...] = CHOICES
    logged_extras: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        return self.name

    def image_roles(self, n_sources: int = 1) -> tuple[str, ...]:
        return roles_with_sources(n_sources, CANDIDATES)

    def load_template(self, name_or_path: prompts.PromptTemplate | str | Path = prompts.DEFAULT_TEMPLATE) \
            -> prompts.PromptTemplate:
        if isinstance(name_or_path, prompts.PromptTemplate):
            return name_or_path
        if name_or_path in TEMPLATES:
            return TEMPLATES[str(name_or_path)]
        return prompts.load_template(name_or_path, images=len(self.image_roles()))

    def messages(self, instruction: str, template: prompts.PromptTemplate | str = prompts.DEFAULT_TEMPLATE,
                 n_sources: int = 1) -> list[dict[str, str]]:
        self.image_roles(n_sources)
        return prompts.build_messages(instruction, self.load_template(template), n_sources)

    def parse(self, text: str) -> PairwiseVerdict:
        envelope = parse_envelope(text)
        if envelope.error is not None or envelope.answer_text is None:
            return PairwiseVerdict(None, envelope.think, envelope.answer_text, envelope.error or "no_answer")
        choice = envelope.answer_text.strip()
        if choice not in CHOICES:
            return PairwiseVerdict(None, envelope.think, envelope.answer_text, "non_choice_answer")
        return PairwiseVerdict(choice, envelope.think, envelope.answer_text, None)

    def answer_text(self, value: str, reasoning: str = "") -> str:
        if value not in CHOICES:
            raise ValueError(f"a pairwise answer is one of {list(CHOICES)}, got {value!r}")
        return f"{prompts.THINK_OPEN}{reasoning}{prompts.THINK_CLOSE}{prompts.ANSWER_OPEN}{value}{prompts.ANSWER_CLOSE}"

    def warm_start_values(self) -> tuple[str, ...]:
        return CHOICES

    def encode_label(self, label: str) -> str:
        return self.parse_label(label)

    def parse_label(self, ground_truth: Any) -> str:
        if isinstance(ground_truth, str) and ground_truth in CHOICES:
            return ground_truth
        raise ValueError(f"a pairwise ground_truth is one of {list(CHOICES)}, got {ground_truth!r:.80}")

    def accuracy(self, verdict: PairwiseVerdict, label: str, options: RewardRule) -> dict[str, float]:
        """1 for the labelled preference (ties included), else 0; ``tie`` 1/0 marks rows labelled tie."""
        return {"accuracy": 1.0 if verdict.preference == label else 0.0, "tie": 1.0 if label == "tie" else 0.0}

    def answer_slots(self, tokens: Sequence[str]) -> list[Slot]:
        """The token that begins the answer (``A``, ``B``, or ``tie``'s first piece; with Qwen's tokenizer often
        merged with the tag's ``>``: the slot's prefix)."""
        slot = first_choice_after(tokens, CHOICES)
        return [] if slot is None else [slot]

    def read_slots(self, slot_logprobs: Sequence[Mapping[str, float] | None]) -> dict[str, float] | None:
        """p(A), p(B), p(tie) at the answer token, renormalised over the three (None without probabilities)."""
        return normalised(slot_logprobs[0], CHOICES) if slot_logprobs else None


_ANSWER = f"{prompts.ANSWER_OPEN}{prompts.ANSWER_CLOSE}"
TEMPLATES: dict[str, prompts.PromptTemplate] = {
    "en": prompts.PromptTemplate(
        name="en",
        system=prompts.EN.system,
        user=(
            "You are an expert judge of image edits. Compare two edits of the input image, A and B, and decide which "
            "one follows the instruction better while keeping the image natural and free of artifacts. "
            f"Answer A, B or tie inside {_ANSWER}.\n"
            "Edit instruction: {instruction}\n"
            f"input image: {prompts.IMAGE_PLACEHOLDER}\n"
            f"edited image A: {prompts.IMAGE_PLACEHOLDER}\n"
            f"edited image B: {prompts.IMAGE_PLACEHOLDER}"
        ),
        images=3,
    ),
    "demo": prompts.PromptTemplate(
        name="demo",
        system=f"Reason in {prompts.THINK_OPEN}{prompts.THINK_CLOSE}, then answer A, B or tie in {_ANSWER}.",
        user=(
            "Edit instruction: {instruction}\n"
            f"input image: {prompts.IMAGE_PLACEHOLDER}\nedit A: {prompts.IMAGE_PLACEHOLDER}\n"
            f"edit B: {prompts.IMAGE_PLACEHOLDER}"
        ),
        images=3,
    ),
}

PAIRWISE = PairwiseFormat()
