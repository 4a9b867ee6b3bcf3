"""Judgment formats: what the judge is asked and how its answer is read, labelled and rewarded (no torch).

``get_format(spec)`` turns a spec into a format: ``"pointwise"`` (the seed's, the default), ``"dimensions:SET"`` (a
shipped dimension set such as ``editscore``, or a YAML file; ``dimensions:seed`` is the pointwise format itself),
``"pairwise"``. ``format_for_row(data_source, ground_truth)`` is the reward's routing (verl keys rewards by a row's
``data_source``; a dimension row's label names its dimensions). The protocol is
:class:`~editjudge.formats.base.JudgmentFormat`. Design: ``docs/architecture.md``, "The judgment format".
"""

from __future__ import annotations

from typing import Any

from editjudge.formats.base import JudgmentFormat, RewardRule, Verdict, digit_credit
from editjudge.formats.dimensions import DATA_SOURCE as DIMENSIONS_DATA_SOURCE
from editjudge.formats.dimensions import DimensionsFormat, dimensions_format, format_from_names, label_names
from editjudge.formats.pairwise import PAIRWISE, PairwiseFormat
from editjudge.formats.pointwise import POINTWISE, PointwiseFormat

DEFAULT_FORMAT: JudgmentFormat = POINTWISE
#: Formats without an argument, by name; ``dimensions`` takes one (``dimensions:SET``).
_PLAIN: dict[str, JudgmentFormat] = {POINTWISE.name: POINTWISE, PAIRWISE.name: PAIRWISE}
_WITH_ARGUMENT = ("dimensions",)
#: Formats by the data_source their rows carry (the reward's routing); dimension rows are read by their label.
_BY_DATA_SOURCE: dict[str, JudgmentFormat] = {POINTWISE.data_source: POINTWISE, PAIRWISE.data_source: PAIRWISE}


def format_names() -> list[str]:
    """The names a format spec may start with (for ``--help`` and errors)."""
    return sorted([*_PLAIN, *(f"{n}:SET" for n in _WITH_ARGUMENT)])


def get_format(spec: str | JudgmentFormat | None = None) -> JudgmentFormat:
    """The format named by ``spec`` (None: the default, pointwise); ``ValueError`` listing the known ones."""
    if spec is None:
        return DEFAULT_FORMAT
    if not isinstance(spec, str):
        if isinstance(spec, JudgmentFormat):
            return spec
        raise TypeError(f"a judgment format is a spec string or a format object, got {type(spec).__name__}")
    name, _, argument = spec.strip().partition(":")
    if name in _PLAIN and not argument:
        return _PLAIN[name]
    if name == "dimensions":
        if not argument:
            raise ValueError("the dimensions format needs a dimension set: dimensions:editscore, or dimensions:FILE.yaml")
        return POINTWISE if argument == "seed" else dimensions_format(argument)
    raise ValueError(f"unknown judgment format {spec!r}: use one of {format_names()}")


def format_for_row(data_source: object, ground_truth: Any = None) -> JudgmentFormat:
    """The format a row is read and rewarded with: by its ``data_source`` (the seed's ``tts_edit_score`` and any
    unknown value: pointwise, as the seed's reward ignored data_source); a dimension row's label names its dimensions
    (``ValueError`` when it cannot)."""
    if data_source == DIMENSIONS_DATA_SOURCE:
        return format_from_names(label_names(ground_truth))
    return _BY_DATA_SOURCE.get(data_source, DEFAULT_FORMAT) if isinstance(data_source, str) else DEFAULT_FORMAT


__all__ = [
    "DEFAULT_FORMAT", "DimensionsFormat", "JudgmentFormat", "PAIRWISE", "POINTWISE", "PairwiseFormat",
    "PointwiseFormat", "RewardRule", "Verdict", "digit_credit", "format_for_row", "format_names", "get_format",
]
