"""The judgment-format protocol: what the judge is asked, how its answer is read, how a row's label is stored, what
the reward's accuracy term pays and where the answer's probabilities are read. Imports no torch.

Every edge (prepare, both training engines, the judge's backends, eval, bench, serve, distill) asks a format instead
of assuming one pointwise 0–9 score over two images; see ``docs/architecture.md`` ("The judgment format").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from editjudge import prompts


@runtime_checkable
class Verdict(Protocol):
    """A parsed response: ``answer`` is the format's value (None unless well-formed and valid), ``error`` its reason."""

    @property
    def answer(self) -> Any: ...

    @property
    def think(self) -> str | None: ...

    @property
    def answer_text(self) -> str | None: ...

    @property
    def error(self) -> str | None: ...

    @property
    def parsed(self) -> bool: ...

    @property
    def has_think(self) -> bool: ...


class RewardRule(Protocol):
    """What a format's accuracy term reads of the reward's options (:class:`editjudge.reward.RewardOptions`)."""

    tolerance: float
    graded: bool
    miss_credit: float  # 0 (the seed): a miss earns nothing


@runtime_checkable
class JudgmentFormat(Protocol):
    """One way of judging. Implementations are frozen dataclasses: stateless, hashable, and named by ``spec``."""

    name: str  # "pointwise", "dimensions", "pairwise"
    data_source: str  # verl's data_source of this format's rows (reward routing)
    choice_tokens: tuple[str, ...]  # the tokens whose probabilities are read at each answer slot
    logged_extras: tuple[str, ...]  # extras of accuracy() a trainer logs per step (mean over parsed responses)

    @property
    def spec(self) -> str:
        """The string :func:`editjudge.formats.get_format` turns back into this format (recorded in reports)."""
        ...

    def image_roles(self, n_sources: int = 1) -> tuple[str, ...]:
        """The images of one prompt in order (one ``<image>`` placeholder each)."""
        ...

    def load_template(self, name_or_path: Any = ...) -> Any:
        """A built-in template of this format by name, or a user file checked against :meth:`image_roles`."""
        ...

    def messages(self, instruction: str, template: Any = ..., n_sources: int = 1) -> list[dict[str, str]]:
        """verl's two chat messages (system, user with one ``<image>`` per role)."""
        ...

    def parse(self, text: str) -> Verdict:
        """The strict reading of one response: the envelope (:mod:`editjudge.answer`), then this format's body."""
        ...

    def answer_text(self, value: Any, reasoning: str = "") -> str:
        """A well-formed response answering ``value``."""
        ...

    def warm_start_values(self) -> tuple[Any, ...]:
        """Every answer the format can give, once (the format-only warm start pairs each prompt with each)."""
        ...

    def encode_label(self, label: Any) -> str:
        """The label as ``reward_model.ground_truth`` stores it (a string)."""
        ...

    def parse_label(self, ground_truth: Any) -> Any:
        """The label from a stored ground truth; ``ValueError`` naming the value and the fix."""
        ...

    def accuracy(self, verdict: Verdict, label: Any, options: RewardRule) -> dict[str, float]:
        """``{"accuracy": 0..1, **extras}``: the reward's accuracy term and per-part extras (same keys every call)."""
        ...

    def answer_slots(self, tokens: Sequence[str]) -> list[Any]:
        """The :class:`~editjudge.formats.slots.Slot` s (token index + the prefix of that token before the value) of
        the generated tokens (decoded text, in order) where :attr:`choice_tokens` are read."""
        ...

    def read_slots(self, slot_logprobs: Sequence[Mapping[str, float] | None]) -> Any:
        """What the answer tokens' log-probabilities say (Σ k·p(k) per slot; p(A), p(B), p(tie); …)."""
        ...


def roles_with_sources(n_sources: int, candidates: tuple[str, ...]) -> tuple[str, ...]:
    """A format's image roles: the edit's sources in order (``source``, or ``source 1`` … ``source n``) then its
    ``candidates``; :class:`~editjudge.prompts.TooManyImages` beyond :data:`~editjudge.prompts.MAX_IMAGES_PER_PROMPT`."""
    roles = prompts.source_roles(n_sources) + candidates
    prompts.check_image_count(len(roles), f"an edit of {n_sources} source image(s)")
    return roles


def digit_credit(distance: float, options: RewardRule) -> float:
    """The accuracy rule for one digit ``distance`` = ``|pred − label|`` away from its label (0..9), the one place it
    lives (pointwise, and per dimension). Within the tolerance: 1 (the seed), or ``1 − distance / (tolerance + 1)``
    with ``graded`` (closer earns more, never more than 1). Beyond it: 0 (the seed), or with ``miss_credit`` m (a
    departure from the seed, off by default): ``m · (9 − distance) / (9 − first_miss)``, ``first_miss`` being the
    first distance beyond the tolerance (m there, 0 at 9: a miss by 3 earns more than a miss by 7)."""
    if distance <= options.tolerance:
        return 1.0 - distance / (options.tolerance + 1) if options.graded else 1.0
    miss_credit = getattr(options, "miss_credit", 0.0)
    if not miss_credit:
        return 0.0
    span = prompts.SCORE_MAX - prompts.SCORE_MIN
    first_miss = math.floor(options.tolerance) + 1
    return miss_credit * max(0.0, span - distance) / max(1, span - first_miss)