"""The multi-dimension format: one digit 0–9 per dimension of a set, in the set's order, in one answer.

The answer body is ``name: D`` entries, one per dimension, separated by newlines (commas or semicolons also do),
e.g. ``<answer>prompt_following: 7\nconsistency: 3\nperceptual_quality: 8</answer>``. It is read strictly: every
dimension exactly once, in order, each value a single digit; anything else gets no accuracy credit and a named reason
(below, after the envelope's reasons of :mod:`editjudge.answer`). A row's label is canonical JSON
(``{"prompt_following":7,"consistency":null,…}``; ``null`` = unlabelled, which earns no accuracy term). The accuracy
term is the mean over the row's labelled dimensions of the seed's ±2 rule, so the reward keeps the seed's 2.0 scale.
Imports no torch.

======================  ==================================================================
``malformed_entry``     an entry is not ``name: value`` (or the body is empty)
``unknown_dimension``   a name that is not one of the set's
``repeated_dimension``  a dimension answered twice
``dimension_order``     the dimensions are not in the set's order
``missing_dimension``   a dimension of the set is not answered
``non_digit_value``     a value is not one ASCII digit ("7.5", "3-5", "3 or 4", "seven")
``out_of_range``        a value of several digits ("10", "07")
======================  ==================================================================
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from editjudge import prompts
from editjudge.answer import parse_envelope
from editjudge.formats.base import RewardRule, digit_credit, roles_with_sources
from editjudge.formats.dimension_sets import DimensionSet, from_names, load_dimension_set
from editjudge.formats.slots import DIGITS, Slot, expected_score, starts_choice, values_after

DATA_SOURCE = "editjudge_dimensions"
BODY_REASONS = ("malformed_entry", "unknown_dimension", "repeated_dimension", "dimension_order", "missing_dimension",
                "non_digit_value", "out_of_range")
_SEPARATORS = re.compile(r"[\n,;]")
_ENTRY = re.compile(r"([a-z][a-z0-9_]{0,39})[ \t]*:[ \t]*(\S(?:.*\S)?)")
_MAX_LABEL_CHARS = 4096


class DimensionsVerdict(NamedTuple):
    """A parsed multi-dimension response: ``scores`` one digit per dimension in order, or ``error``."""

    scores: tuple[int, ...] | None = None
    think: str | None = None
    answer_text: str | None = None
    error: str | None = None

    @property
    def answer(self) -> tuple[int, ...] | None:
        return self.scores

    @property
    def parsed(self) -> bool:
        return self.scores is not None

    @property
    def has_think(self) -> bool:
        return self.think is not None and self.error is None


@dataclass(frozen=True)
class DimensionsFormat:
    """Several 0–9 scores per edit, one per dimension of ``dimension_set``."""

    dimension_set: DimensionSet
    name: str = "dimensions"
    data_source: str = DATA_SOURCE
    choice_tokens: tuple[str, ...] = DIGITS
    logged_extras: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "logged_extras", tuple(f"accuracy/{n}" for n in self.names))

    @property
    def names(self) -> tuple[str, ...]:
        return self.dimension_set.names

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.dimension_set.source}"

    def image_roles(self, n_sources: int = 1) -> tuple[str, ...]:
        return roles_with_sources(n_sources, ("edited",))

    # ------------------------------------------------------------------------------------------ prompt
    def load_template(self, name_or_path: prompts.PromptTemplate | str | Path = prompts.DEFAULT_TEMPLATE) \
            -> prompts.PromptTemplate:
        """The built-in ``en`` / ``demo`` wording for this set, or a user file whose ``{dimensions}`` (optional)
        becomes the set's list."""
        if isinstance(name_or_path, prompts.PromptTemplate):
            return name_or_path
        if name_or_path in _TEMPLATES:
            system, user = _TEMPLATES[str(name_or_path)]
        else:
            loaded = prompts.load_template(name_or_path)
            system, user = loaded.system, loaded.user
        listing = "\n".join(f"- {d.name}: {d.prompt}" for d in self.dimension_set.dimensions)
        names = ", ".join(self.names)
        return prompts.PromptTemplate(
            name=f"{name_or_path}:{self.dimension_set.name}",
            system=system.replace("{names}", names),
            user=user.replace("{dimensions}", listing).replace("{names}", names),
        )

    def messages(self, instruction: str, template: prompts.PromptTemplate | str = prompts.DEFAULT_TEMPLATE,
                 n_sources: int = 1) -> list[dict[str, str]]:
        self.image_roles(n_sources)
        return prompts.build_messages(instruction, self.load_template(template), n_sources)

    # ------------------------------------------------------------------------------------------ answer
    def parse(self, text: str) -> DimensionsVerdict:
        envelope = parse_envelope(text)
        if envelope.error is not None or envelope.answer_text is None:
            return DimensionsVerdict(None, envelope.think, envelope.answer_text, envelope.error or "no_answer")
        scores, error = self._read_body(envelope.answer_text)
        return DimensionsVerdict(scores, envelope.think, envelope.answer_text, error)

    def _read_body(self, body: str) -> tuple[tuple[int, ...] | None, str | None]:
        entries = [piece.strip() for piece in _SEPARATORS.split(body)]
        entries = [e for e in entries if e]
        if not entries:
            return None, "malformed_entry"
        seen: dict[str, int] = {}
        for entry in entries:
            match = _ENTRY.fullmatch(entry)
            if match is None:
                return None, "malformed_entry"
            name, value = match.groups()
            if name not in self.names:
                return None, "unknown_dimension"
            if name in seen:
                return None, "repeated_dimension"
            if not value.isascii() or not value.isdigit():
                return None, "non_digit_value"
            if len(value) != 1:
                return None, "out_of_range"
            seen[name] = int(value)
        if len(seen) < len(self.names):
            return None, "missing_dimension"
        if tuple(seen) != self.names:
            return None, "dimension_order"
        return tuple(seen[n] for n in self.names), None

    @property
    def entry_heads(self) -> tuple[str, ...]:
        """What comes before each dimension's digit in :meth:`answer_text` (``"following: "``), in order."""
        return tuple(f"{name}: " for name in self.names)

    def answer_text(self, value: Sequence[int], reasoning: str = "") -> str:
        if len(value) != len(self.names) or not all(isinstance(v, int) and 0 <= v <= 9 for v in value):
            raise ValueError(f"expected {len(self.names)} digits 0..9 (one per dimension), got {value!r}")
        body = "\n".join(f"{head}{v}" for head, v in zip(self.entry_heads, value))
        return f"{prompts.THINK_OPEN}{reasoning}{prompts.THINK_CLOSE}{prompts.ANSWER_OPEN}{body}{prompts.ANSWER_CLOSE}"

    def warm_start_values(self) -> tuple[tuple[int, ...], ...]:
        """100 label-free answers in which every dimension takes every digit equally often AND no dimension's digit
        tells another's: every two of the first three dimensions take every pair of digits once (an orthogonal
        array, rows ``(a, b, a + b mod 10)``; later dimensions ``a + k·b`` for k = 3, 7, 9, then ``3a + b``, …).
        Ten answers with one digit per dimension each (a Latin square) would pair each digit of one dimension with
        one digit of the next: a warm start on them teaches the model that coupling, and GRPO then cannot give an
        edit a high score on one dimension and a low one on another."""
        rows = []
        for a in range(10):
            for b in range(10):
                columns = (a, b) + tuple((p * a + q * b) % 10 for p, q in _WARM_START_MIXES)
                rows.append(columns[: len(self.names)])
        return tuple(rows)

    # ------------------------------------------------------------------------------------------ labels + reward
    def encode_label(self, label: Mapping[str, int | None]) -> str:
        checked = self.parse_label(dict(label))
        return json.dumps({n: checked[n] for n in self.names}, separators=(",", ":"))

    def parse_label(self, ground_truth: Any) -> dict[str, int | None]:
        """The per-dimension labels (None: unlabelled) from canonical JSON or a mapping; ``ValueError`` otherwise."""
        value = _label_object(ground_truth)
        unknown = sorted(str(k) for k in value if k not in self.names)
        if unknown:
            raise ValueError(f"ground_truth names unknown dimension(s) {unknown[:5]}; this judge scores {list(self.names)}")
        labels: dict[str, int | None] = {}
        for name in self.names:
            v = value.get(name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 9):
                raise ValueError(f"ground_truth[{name!r}] must be an integer 0..9 or null, got {v!r}")
            labels[name] = v
        if all(v is None for v in labels.values()):
            raise ValueError("ground_truth labels no dimension (every value is null)")
        return labels

    def accuracy(self, verdict: DimensionsVerdict, label: Mapping[str, int | None], options: RewardRule) \
            -> dict[str, float]:
        """The mean of the ±2 rule over the labelled dimensions, and per dimension ``accuracy/<name>`` (0 when
        unparsed or unlabelled) and ``labelled/<name>`` (1/0: divide to get a rate over labelled rows)."""
        parts: dict[str, float] = {}
        credits = []
        for i, name in enumerate(self.names):
            truth = label.get(name)
            credit = 0.0
            if truth is not None and verdict.scores is not None:
                credit = digit_credit(abs(verdict.scores[i] - truth), options)
            if truth is not None:
                credits.append(credit)
            parts[f"accuracy/{name}"] = credit
            parts[f"labelled/{name}"] = 1.0 if truth is not None else 0.0
        return {"accuracy": sum(credits) / len(credits) if credits else 0.0, **parts}

    # ------------------------------------------------------------------------------------------ probabilities
    def answer_slots(self, tokens: Sequence[str]) -> list[Slot]:
        """For each dimension in order, the digit that begins its value after ``name:``, once the answer began."""
        after = values_after(tokens, prompts.ANSWER_OPEN)
        if not after:
            return []
        start, slots = after[0].index, []
        for name in self.names:
            slot = next((s for s in values_after(tokens, f"{name}:", start)
                         if starts_choice(tokens[s.index], s.prefix, DIGITS) is not None), None)
            if slot is None:
                return slots
            slots.append(slot)
            start = slot.index + 1
        return slots

    def read_slots(self, slot_logprobs: Sequence[Mapping[str, float] | None]) -> dict[str, float | None] | None:
        """Σ k·p(k) per dimension (None where a slot is missing) and ``overall`` by the set's rule."""
        if not slot_logprobs:
            return None
        values = {n: expected_score(lp) for n, lp in zip(self.names, slot_logprobs)}
        values.update({n: None for n in self.names if n not in values})
        return {**values, "overall": self.dimension_set.combine(values)}


# (p, q) of the warm start's columns beyond the first two: p·a + q·b mod 10, each a permutation of the digits.
_WARM_START_MIXES = ((1, 1), (1, 3), (1, 7), (1, 9), (3, 1), (7, 1))

_TEMPLATES: dict[str, tuple[str, str]] = {
    "en": (
        prompts.EN.system,
        "You are an expert judge of image edits. Compare the input image with the edited image and rate the edit on "
        "each of these dimensions with a single integer from 0 (very bad) to 9 (very good):\n{dimensions}\n"
        f"Answer inside {prompts.ANSWER_OPEN}{prompts.ANSWER_CLOSE} with one line per dimension, in this order, "
        "written as name: digit ({names}).\n"
        "Edit instruction: {instruction}\n"
        f"input image: {prompts.IMAGE_PLACEHOLDER}\n"
        f"edited image: {prompts.IMAGE_PLACEHOLDER}",
    ),
    "demo": (
        f"Reason in {prompts.THINK_OPEN}{prompts.THINK_CLOSE}, then rate each of {{names}} 0-9 in "
        f"{prompts.ANSWER_OPEN}{prompts.ANSWER_CLOSE} as name: digit lines.",
        prompts.DEMO.user,
    ),
}


@lru_cache(maxsize=64)
def dimensions_format(set_name_or_path: str) -> DimensionsFormat:
    """The format of a shipped set or a set file (cached: a format is immutable)."""
    return DimensionsFormat(load_dimension_set(set_name_or_path))


@lru_cache(maxsize=256)
def format_from_names(names: tuple[str, ...]) -> DimensionsFormat:
    """The format the reward reads a row with: the dimensions its label names, in the label's order."""
    return DimensionsFormat(from_names(names))


def _label_object(ground_truth: Any) -> Mapping[str, Any]:
    """A stored dimension label as a mapping (canonical JSON or a mapping); ``ValueError`` otherwise."""
    value = ground_truth
    if isinstance(value, str):
        if len(value) > _MAX_LABEL_CHARS:
            raise ValueError(f"ground_truth is {len(value)} characters; a dimension label is a short JSON object")
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise ValueError(f"ground_truth must be a JSON object of dimension labels, got {ground_truth!r:.80}") from None
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"ground_truth must be a JSON object of dimension labels, got {ground_truth!r:.80}")
    return value


def label_names(ground_truth: Any) -> tuple[str, ...]:
    """The dimension names a stored label holds, in order; ``ValueError`` when it is not a JSON object."""
    return tuple(str(k) for k in _label_object(ground_truth))
