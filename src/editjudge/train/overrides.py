"""Hydra override syntax: format a value, split ``+key=value``, an ordered set of overrides. No verl import."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@functools.lru_cache(maxsize=1)
def _override_parser() -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def _reads_back_as(text: str) -> Any:
    """What Hydra's override parser makes of ``key=<text>`` (``None`` when it rejects it)."""
    from hydra.errors import HydraException

    try:
        return _override_parser().parse_override(f"k={text}").value()
    except HydraException:
        return None


def format_value(value: Any) -> str:
    """A Python value as Hydra override syntax (bools lower-case, lists in brackets, strings quoted if needed)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if text == text.strip() and _reads_back_as(text) == text:
        return text
    quoted = _quoted(text)
    if _reads_back_as(quoted) != text:
        raise ValueError(f"{text!r} cannot be written as a Hydra override value")
    return quoted


def _quoted(text: str) -> str:
    """``text`` in single quotes by Hydra's rule: a backslash escapes only a quote, or the backslashes before one
    (so a regex's ``\\.`` stays one backslash; doubling every backslash made ``.*visual\\.(blocks)`` match nothing)."""
    body = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    body = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, body)  # a trailing run comes before the closing quote
    return "'" + body + "'"


def split_override(item: str) -> tuple[str, str, str | None]:
    """``'+a.b=1'`` -> ``('+', 'a.b', '1')``; ``'~a.b'`` -> ``('~', 'a.b', None)``."""
    match = re.match(r"^(\+\+|\+|~)?([^=]+?)(?:=(.*))?$", item.strip(), re.DOTALL)
    if not match or (match.group(3) is None and match.group(1) != "~"):
        raise ValueError(f"extra override {item!r} is not KEY=VALUE (use '+key=value' to add, '~key' to delete)")
    return match.group(1) or "", match.group(2).strip(), match.group(3)


@dataclass
class OverrideSet:
    """Ordered Hydra overrides keyed by their bare key; remembers which keys the user set explicitly."""

    items: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # key -> (prefix, value text)
    explicit: set[str] = field(default_factory=set)

    def set(self, key: str, value: Any, *, prefix: str | None = None, raw: bool = False) -> None:
        """Set ``key``; keeps a ``+`` prefix the key already has unless ``prefix`` is given."""
        bare = key.lstrip("+")
        if prefix is None:
            prefix = key[: len(key) - len(bare)] or self.items.get(bare, ("", None))[0]
        self.items[bare] = (prefix, value if raw else format_value(value))

    def get(self, key: str) -> str | None:
        """The value text of ``key`` (``None`` if unset)."""
        return self.items.get(key, ("", None))[1]

    def as_list(self) -> list[str]:
        """``prefix+key=value`` strings in insertion order."""
        return [f"{p}{k}" if v is None else f"{p}{k}={v}" for k, (p, v) in self.items.items()]
