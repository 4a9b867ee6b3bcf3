"""The judge's reward for GRPO: verl's ``compute_score`` and TRL reward functions over one core.

The row's judgment format (:mod:`editjudge.formats`, routed by ``data_source`` as verl routes rewards) reads the
response and its label and gives the accuracy term; the format term and the weights are the same for every format,
so every format keeps the seed's 0..2 scale. For the seed's pointwise format (the default) both engines score a
response through :func:`editjudge.answer.parse_response`:

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

from editjudge.formats import POINTWISE, JudgmentFormat, digit_credit, format_for_row
from editjudge.formats.pointwise import UNPARSED_ABS_ERROR, UNPARSED_PRED

__all__ = [
    "DEFAULT_OPTIONS",
    "UNPARSED_ABS_ERROR",
    "UNPARSED_PRED",
    "VERL_RUNTIME_KWARGS",
    "RewardOptions",
    "completion_text",
    "compute_score",
    "group_is_flat",
    "parse_label",
    "reward_options",
    "score_response",
    "trl_reward_funcs",
    "trl_reward_weights",
]

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
        least_hit = digit_credit(math.floor(self.tolerance), replace(self, miss_credit=0.0))
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


def parse_label(ground_truth: Any) -> int:
    """The pointwise label 0..9 from a ground truth (``"7"``, ``7``, ``7.0``, numpy scalars); rounded like the seed.

    Raises ``ValueError`` naming the value: a bad label is a data bug, not a response to score 0.
    """
    return POINTWISE.parse_label(ground_truth)


def score_response(
    solution_str: str, ground_truth: Any, options: RewardOptions = DEFAULT_OPTIONS, fmt: JudgmentFormat = POINTWISE
) -> dict[str, Any]:
    """The reward of one response and its parts: ``score``, ``format``, ``accuracy``, ``parsed``, then the format's
    extras (pointwise: ``pred``, ``abs_error``; an unparsed response has ``pred`` = -1 and ``abs_error`` = 9)."""
    label = fmt.parse_label(ground_truth)
    verdict = fmt.parse(solution_str)
    parts = fmt.accuracy(verdict, label, options)
    fmt_term = 1.0 if verdict.has_think else 0.0
    parsed = 1.0 if verdict.parsed else 0.0
    accuracy = parts.pop("accuracy")
    return {
        "score": options.format_weight * fmt_term + options.accuracy_weight * accuracy,
        "format": fmt_term,
        "accuracy": accuracy,
        "parsed": parsed,
        **parts,
    }


def compute_score(
    data_source: Any, solution_str: str, ground_truth: Any, extra_info: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """verl's custom reward function (``reward.custom_reward_function``), seed-exact on well-formed responses.

    ``data_source`` picks the row's judgment format (the seed's ``tts_edit_score`` and any unknown value: pointwise);
    ``extra_info`` is accepted and not used (the reward depends on the response and the label only). ``kwargs`` are the options of :class:`RewardOptions` (from ``reward_kwargs``) plus verl's own runtime
    keywords, which are ignored; any other name raises ``TypeError``. Never raises for any ``solution_str``.
    """
    return score_response(solution_str, ground_truth, _options(kwargs), format_for_row(data_source, ground_truth))


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
        formats = _row_formats(kwargs.get("data_source"), ground_truth)
        verdicts = [fmt.parse(completion_text(c)) for fmt, c in zip(formats, completions)]
        if self.term == "format":
            return [1.0 if v.has_think else 0.0 for v in verdicts]
        parts = [fmt.accuracy(v, fmt.parse_label(gt), self.options)
                 for fmt, v, gt in zip(formats, verdicts, ground_truth)]
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and verdicts:
            log_metric("judge/parse_rate", sum(v.parsed for v in verdicts) / len(verdicts))
            parsed_parts = [p for p, v in zip(parts, verdicts) if v.parsed]
            for key in formats[0].logged_extras:
                values = [p[key] for p in parsed_parts if key in p]
                if values:
                    log_metric(f"judge/{key}", sum(values) / len(values))
        return [p["accuracy"] for p in parts]


def _row_formats(data_sources: Sequence[Any] | None, ground_truth: Sequence[Any]) -> list[JudgmentFormat]:
    """Each row's format from TRL's ``data_source`` column (absent: the default format for every row)."""
    if data_sources is None:
        return [POINTWISE] * len(ground_truth)
    if len(data_sources) != len(ground_truth):
        raise ValueError(f"got {len(ground_truth)} ground truths but {len(data_sources)} data_source values")
    return [format_for_row(ds, gt) for ds, gt in zip(data_sources, ground_truth)]


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
