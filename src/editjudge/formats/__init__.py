"""Judgment formats: what the judge is asked and how its answer is read, labelled and rewarded (no torch).

``get_format(spec)`` turns a spec string (``"pointwise"``, the default) into a format; ``format_for_data_source``
is the reward's routing (verl keys rewards by a row's ``data_source``); the protocol is
:class:`~editjudge.formats.base.JudgmentFormat`. Design: ``shared/ARCHITECTURE.md``, "The judgment format".
"""

from __future__ import annotations

from editjudge.formats.base import JudgmentFormat, RewardRule, Verdict, digit_credit
from editjudge.formats.pointwise import POINTWISE, PointwiseFormat

DEFAULT_FORMAT: JudgmentFormat = POINTWISE
#: Formats by name; a spec is ``name`` or ``name:argument`` (e.g. a dimension set).
_BY_NAME: dict[str, JudgmentFormat] = {POINTWISE.name: POINTWISE}
#: Formats by the data_source their rows carry (the reward's routing).
_BY_DATA_SOURCE: dict[str, JudgmentFormat] = {POINTWISE.data_source: POINTWISE}


def get_format(spec: str | JudgmentFormat | None = None) -> JudgmentFormat:
    """The format named by ``spec`` (None: the default, pointwise); ``ValueError`` listing the known ones."""
    if spec is None:
        return DEFAULT_FORMAT
    if not isinstance(spec, str):
        if isinstance(spec, JudgmentFormat):
            return spec
        raise TypeError(f"a judgment format is a spec string or a format object, got {type(spec).__name__}")
    name = spec.strip()
    found = _BY_NAME.get(name)
    if found is None:
        raise ValueError(f"unknown judgment format {spec!r}: use one of {format_names()}")
    return found


def format_names() -> list[str]:
    """The names a format spec may start with (for ``--help`` and errors)."""
    return sorted(_BY_NAME)


def format_for_data_source(data_source: object) -> JudgmentFormat:
    """The format whose rows carry ``data_source``; the default for any other value (the seed's reward ignored
    ``data_source``, so rows of other data sources keep being scored the seed's way)."""
    return _BY_DATA_SOURCE.get(data_source, DEFAULT_FORMAT) if isinstance(data_source, str) else DEFAULT_FORMAT


__all__ = [
    "DEFAULT_FORMAT", "JudgmentFormat", "POINTWISE", "PointwiseFormat", "RewardRule", "Verdict", "digit_credit",
    "format_for_data_source", "format_names", "get_format",
]
