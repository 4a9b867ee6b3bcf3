"""The judge's reward for GRPO: verl's ``compute_score`` and TRL reward functions over one core.

Both engines score a response the same way, through :func:`editjudge.answer.parse_response`:

* ``format`` = 1 when the response is well-formed *and* carries its reasoning, i.e.
  ``<think>…</think><answer>N</answer>`` with a valid ``N`` (else 0);
* ``accuracy`` = 1 when the response parses and ``|N − label| ≤ tolerance`` (else 0); with ``graded=True`` it is
  ``1 − |N − label| / (tolerance + 1)`` inside the tolerance (closer earns more, never more than the binary rule);
  with ``miss_credit`` > 0 (a departure from the seed, off by default) a miss earns a little, less the further it is:
  ``miss_credit`` at the first distance beyond the tolerance, falling linearly to 0 at the largest distance (9);
* ``score = format_weight · format + accuracy_weight · accuracy`` (the seed's 0..2 with the default weights).

On every well-formed response this equals the seed recipe's reward; on anything else it is never higher (see
``docs/reward.md`` for each rule). Imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any

from editjudge.answer import ParsedResponse, parse_response
from editjudge.prompts import SCORE_MAX, SCORE_MIN

__all__ = [
    "DEFAULT_OPTIONS",
    "UNPARSED_ABS_ERROR",
    "UNPARSED_PRED",
    "VERL_RUNTIME_KWARGS",
    "RewardOptions",
    "accuracy_credit",
    "completion_text",
    "compute_score",
    "group_is_flat",
    "parse_label",
    "reward_options",
    "score_response",
    "trl_reward_funcs",
    "trl_reward_weights",
]

#: ``pred`` of a response that yields no score (no valid answer): outside 0..9, so it never counts as a prediction.
UNPARSED_PRED = -1
#: ``abs_error`` of a response that yields no score: the largest possible error, so means count failures as worst.
UNPARSED_ABS_ERROR = SCORE_MAX - SCORE_MIN
#: Rewards of one prompt's samples within this of each other count as equal (GRPO gets no signal from the group).
FLAT_ATOL = 1e-6
#: Keyword arguments verl's reward managers add on their own (when a reward model router runs); accepted, ignored.
VERL_RUNTIME_KWARGS = frozenset({"reward_router_address", "reward_model_tokenizer"})


@dataclass(frozen=True)
class RewardOptions:
    """The reward's options, set through verl's ``reward.custom_reward_function.reward_kwargs`` or TRL's adapter.

    ``tolerance``: largest ``|pred − label|`` that still earns accuracy (seed: 2).
    ``format_weight`` / ``accuracy_weight``: weights of the two terms in ``score`` (seed: 1 and 1).
    ``graded``: accuracy ``1 − |pred − label| / (tolerance + 1)`` inside the tolerance instead of a flat 1.
    ``miss_credit``: accuracy of a miss (``|pred − label| > tolerance``): ``miss_credit`` at the first distance beyond
    the tolerance, falling linearly to 0 at the largest distance (9); 0 (the seed's rule) pays nothing for any miss.
    It must stay below the least a hit earns, so a hit always beats a miss.
    """

    tolerance: float = 2
    format_weight: float = 1.0
    accuracy_weight: float = 1.0
    graded: bool = False
    miss_credit: float = 0.0

    def __post_init__(self) -> None:
        for name in ("tolerance", "format_weight", "accuracy_weight", "miss_credit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"reward option {name!r} must be a finite number >= 0, got {value!r}")
        if not isinstance(self.graded, bool):
            raise ValueError(f"reward option 'graded' must be true or false, got {self.graded!r}")
        if not self.miss_credit:
            return
        least_hit = accuracy_credit(math.floor(self.tolerance), replace(self, miss_credit=0.0))
        if self.miss_credit >= least_hit:
            raise ValueError(f"reward option 'miss_credit' must be below {least_hit:.4g}, the least a hit within the "
                             f"tolerance earns here (a miss must never pay as much as a hit), got {self.miss_credit!r}")


DEFAULT_OPTIONS = RewardOptions()
_OPTION_NAMES = tuple(f.name for f in fields(RewardOptions))


def reward_options(**kwargs: Any) -> RewardOptions:
    """Validated options from keyword arguments; unknown names raise ``TypeError`` listing the known ones.

    verl's own runtime keywords (:data:`VERL_RUNTIME_KWARGS`) are accepted and ignored.
    """
    unknown = sorted(set(kwargs) - set(_OPTION_NAMES) - VERL_RUNTIME_KWARGS)
    if unknown:
        raise TypeError(
            f"unknown reward option(s) {unknown}: the editjudge reward accepts {list(_OPTION_NAMES)} "
            "(set them with +reward.custom_reward_function.reward_kwargs.<name>=<value>)"
        )
    return RewardOptions(**{k: v for k, v in kwargs.items() if k in _OPTION_NAMES})


@lru_cache(maxsize=64)
def _cached_options(items: tuple[tuple[str, type, Any], ...]) -> RewardOptions:
    return reward_options(**{name: value for name, _, value in items})


def _options(kwargs: Mapping[str, Any]) -> RewardOptions:
    if not kwargs:
        return DEFAULT_OPTIONS
    # The type is part of the key: True == 1 and hash(True) == hash(1), but only 1 is a valid tolerance.
    items = tuple(sorted((k, type(v), v) for k, v in kwargs.items() if k not in VERL_RUNTIME_KWARGS))
    try:
        hash(items)
    except TypeError:  # an unhashable value (e.g. a list): validate uncached, which raises the clear error
        return reward_options(**{name: value for name, _, value in items})
    return _cached_options(items)


_LABELS = {str(d): d for d in range(SCORE_MIN, SCORE_MAX + 1)}


def parse_label(ground_truth: Any) -> int:
    """The integer label 0..9 from a ground truth (``"7"``, ``7``, ``7.0``, numpy scalars); rounded like the seed.

    Raises ``ValueError`` naming the value: a bad label is a data bug, not a response to score 0.
    """
    if type(ground_truth) is str:  # the parquet's "0".."9": a dict lookup
        label = _LABELS.get(ground_truth)
        if label is not None:
            return label
    try:
        value = math.nan if isinstance(ground_truth, bool) else float(ground_truth)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or not SCORE_MIN <= round(value) <= SCORE_MAX:
        raise ValueError(
            f"ground_truth must be a score {SCORE_MIN}..{SCORE_MAX} (e.g. the string '7' that `editjudge prepare` "
            f"writes to reward_model.ground_truth), got {ground_truth!r}"
        )
    return int(round(value))


def _format_term(parsed: ParsedResponse) -> float:
    """1 for a well-formed response with its ``<think>`` block, else 0."""
    return 1.0 if parsed.has_think else 0.0


def accuracy_credit(distance: float, options: RewardOptions = DEFAULT_OPTIONS) -> float:
    """The accuracy term for an answer ``distance`` = ``|pred − label|`` away from its label (0..9).

    Within the tolerance: 1, or ``1 − distance / (tolerance + 1)`` with ``graded``. Beyond it: 0 (the seed), or with
    ``miss_credit`` m: ``m · (9 − distance) / (9 − first_miss)``, ``first_miss`` being the first distance beyond the
    tolerance (m there, 0 at 9). The one place the accuracy rule lives (per answer; reused per dimension).
    """
    if distance <= options.tolerance:
        return 1.0 - distance / (options.tolerance + 1) if options.graded else 1.0
    if not options.miss_credit:
        return 0.0
    span = SCORE_MAX - SCORE_MIN
    first_miss = math.floor(options.tolerance) + 1
    return options.miss_credit * max(0.0, span - distance) / max(1, span - first_miss)


def _accuracy_term(parsed: ParsedResponse, label: int, options: RewardOptions) -> float:
    """The accuracy credit of the parsed score (:func:`accuracy_credit`), 0 when nothing parsed."""
    if parsed.score is None:
        return 0.0
    return accuracy_credit(abs(parsed.score - label), options)


def score_response(solution_str: str, ground_truth: Any, options: RewardOptions = DEFAULT_OPTIONS) -> dict[str, Any]:
    """The reward of one response and its parts: ``score``, ``format``, ``accuracy``, ``parsed``, ``pred``,
    ``abs_error`` (numbers only; an unparsed response has ``pred`` = -1 and ``abs_error`` = 9)."""
    label = parse_label(ground_truth)
    parsed = parse_response(solution_str)
    pred = parsed.score
    if pred is None:
        return {
            "score": 0.0,
            "format": 0.0,
            "accuracy": 0.0,
            "parsed": 0.0,
            "pred": UNPARSED_PRED,
            "abs_error": UNPARSED_ABS_ERROR,
        }
    fmt = 1.0 if parsed.think is not None else 0.0  # parsed, so well-formed: has_think
    acc = _accuracy_term(parsed, label, options)
    return {
        "score": options.format_weight * fmt + options.accuracy_weight * acc,
        "format": fmt,
        "accuracy": acc,
        "parsed": 1.0,
        "pred": pred,
        "abs_error": abs(pred - label),
    }


def compute_score(
    data_source: Any, solution_str: str, ground_truth: Any, extra_info: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """verl's custom reward function (``reward.custom_reward_function``), seed-exact on well-formed responses.

    ``data_source`` and ``extra_info`` are accepted and not used (the reward depends on the response and the label
    only). ``kwargs`` are the options of :class:`RewardOptions` (from ``reward_kwargs``) plus verl's own runtime
    keywords, which are ignored; any other name raises ``TypeError``. Never raises for any ``solution_str``.
    """
    return score_response(solution_str, ground_truth, _options(kwargs))


def group_is_flat(rewards: Sequence[float]) -> bool:
    """Whether the rewards of one prompt's samples are all equal (NaNs ignored): GRPO's advantage is then zero for
    every sample, so the group teaches nothing. The one rule both engines' flat-group figures use."""
    values = [float(r) for r in rewards if r is not None and not math.isnan(float(r))]
    return not values or max(values) - min(values) <= FLAT_ATOL


# ---------------------------------------------------------------- TRL adapter


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string, or a list of chat messages whose contents are joined.

    A message's content may be a string or a list of ``{"type": "text", "text": …}`` parts; anything else adds
    nothing (so a malformed completion scores 0 rather than raising).
    """
    if isinstance(completion, str):
        return completion
    if not isinstance(completion, Sequence):
        return ""
    chunks: list[str] = []
    for message in completion:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            chunks.append(content)
        elif isinstance(content, Sequence):
            chunks.extend(
                part["text"] for part in content if isinstance(part, Mapping) and isinstance(part.get("text"), str)
            )
    return "".join(chunks)


class _TrlRewardTerm:
    """One unweighted reward term for TRL's ``GRPOTrainer`` (TRL logs ``rewards/<__name__>/mean`` per step)."""

    def __init__(self, name: str, term: str, options: RewardOptions, weight: float) -> None:
        self.__name__ = name
        self.term = term
        self.options = options
        self.weight = weight

    def __repr__(self) -> str:
        return f"<editjudge TRL reward {self.__name__!r} weight={self.weight}>"

    def __call__(
        self, completions: Sequence[Any], ground_truth: Sequence[Any] | None = None, **kwargs: Any
    ) -> list[float]:
        if ground_truth is None:
            raise ValueError(
                "the TRL dataset needs a 'ground_truth' column (the label '0'..'9' of each row) "
                "for the editjudge reward"
            )
        if len(ground_truth) != len(completions):
            raise ValueError(f"got {len(completions)} completions but {len(ground_truth)} ground truths")
        parsed = [parse_response(completion_text(c)) for c in completions]
        if self.term == "format":
            return [_format_term(p) for p in parsed]
        labels = [parse_label(gt) for gt in ground_truth]
        rewards = [_accuracy_term(p, label, self.options) for p, label in zip(parsed, labels)]
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and parsed:
            ok = [p.score is not None for p in parsed]
            errors = [abs(p.score - label) for p, label in zip(parsed, labels) if p.score is not None]
            log_metric("judge/parse_rate", sum(ok) / len(ok))
            if errors:
                log_metric("judge/abs_error", sum(errors) / len(errors))
        return rewards


def trl_reward_funcs(**reward_kwargs: Any) -> list[Callable[..., list[float]]]:
    """Reward functions for TRL's ``GRPOTrainer``: ``[format, accuracy]``, each unweighted (0/1 rates).

    Each takes ``(completions, ground_truth, **kwargs)`` and returns one float per completion; TRL then logs the
    format rate and the accuracy rate as ``rewards/format/mean`` and ``rewards/accuracy/mean``. Pass
    :func:`trl_reward_weights` (the same kwargs) as ``GRPOConfig(reward_weights=…)`` so that TRL's weighted sum equals
    :func:`compute_score`'s ``score``; each function also carries its ``weight``. The accuracy function logs
    ``judge/parse_rate`` and ``judge/abs_error`` (over parsed responses) through TRL's ``log_metric``.
    """
    options = reward_options(**reward_kwargs)
    return [
        _TrlRewardTerm("format", "format", options, options.format_weight),
        _TrlRewardTerm("accuracy", "accuracy", options, options.accuracy_weight),
    ]


def trl_reward_weights(**reward_kwargs: Any) -> list[float]:
    """``GRPOConfig.reward_weights`` matching :func:`trl_reward_funcs` with the same kwargs."""
    return [float(f.weight) for f in trl_reward_funcs(**reward_kwargs)]
