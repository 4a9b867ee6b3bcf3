"""Dimension sets as data: the names a multi-dimension judge scores, the sentence its prompt gives each, and the
overall rule. Shipped sets live in ``dimension_sets/<name>.yaml``; users pass their own file by path. No torch.

A set file holds ``name``, ``description``, ``overall`` (``mean``, ``min`` or ``geometric``: the geometric mean over
groups of each group's minimum — with groups semantic = {prompt following, consistency} and quality = {perceptual
quality} that is EditScore's ``sqrt(min(PF, C) * PQ)``) and ``dimensions``: a list of ``{name, prompt, group}``
(``group`` defaults to the dimension's own name).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SET_DIR = Path(__file__).with_name("dimension_sets")
OVERALL_RULES = ("mean", "min", "geometric")
MAX_DIMENSIONS = 8  # each costs answer tokens and a reward term; more is a data bug, not a judge
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_MAX_SET_BYTES = 64 * 1024


@dataclass(frozen=True)
class Dimension:
    """One scored dimension: its ``name`` (as the answer spells it), the prompt's sentence, its overall group."""

    name: str
    prompt: str
    group: str


@dataclass(frozen=True)
class DimensionSet:
    """The dimensions of a judge, in answer order, and how they combine into the overall score."""

    name: str
    dimensions: tuple[Dimension, ...]
    overall: str = "mean"
    description: str = ""
    source: str = ""  # the shipped name or the file's absolute path: what a spec records

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    def combine(self, values: Mapping[str, float | None]) -> float | None:
        """The overall score of per-dimension values (0..9) by the set's rule; None when any value is missing."""
        numbers = [values.get(name) for name in self.names]
        if any(v is None or not math.isfinite(v) for v in numbers):
            return None
        by_name = dict(zip(self.names, numbers))
        if self.overall == "mean":
            return sum(numbers) / len(numbers)
        if self.overall == "min":
            return min(numbers)
        groups: dict[str, list[float]] = {}
        for dim in self.dimensions:
            groups.setdefault(dim.group, []).append(by_name[dim.name])
        minima = [max(min(group), 0.0) for group in groups.values()]
        return math.prod(minima) ** (1.0 / len(minima))


def builtin_sets() -> list[str]:
    """The shipped set names."""
    return sorted(p.stem for p in SET_DIR.glob("*.yaml"))


def from_names(names: tuple[str, ...]) -> DimensionSet:
    """A set known only by its names (how the reward reads a row: the label carries them), overall ``mean``."""
    dims = tuple(Dimension(name, name.replace("_", " "), name) for name in names)
    return _checked(DimensionSet("+".join(names), dims, "mean", "", ",".join(names)), "the label")


def load_dimension_set(name_or_path: str | Path) -> DimensionSet:
    """A shipped set by name or a YAML file; ``ValueError`` naming what is wrong and the fix."""
    import yaml

    text_name = str(name_or_path)
    path = SET_DIR / f"{text_name}.yaml" if text_name in builtin_sets() else Path(name_or_path).expanduser()
    where = f"dimension set {text_name!r}"
    if not path.is_file():
        raise ValueError(f"unknown {where}: use one of {builtin_sets()} or a YAML file with 'name' and 'dimensions'")
    if path.stat().st_size > _MAX_SET_BYTES:
        raise ValueError(f"{where}: file larger than {_MAX_SET_BYTES} bytes")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise ValueError(f"{where}: not readable YAML ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("dimensions"), list):
        raise ValueError(f"{where}: expected a mapping with a 'dimensions' list of {{name, prompt[, group]}}")
    dims = []
    for i, item in enumerate(data["dimensions"][: MAX_DIMENSIONS + 1]):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("prompt"), str):
            raise ValueError(f"{where}: dimension {i} needs string 'name' and 'prompt'")
        group = item.get("group", item["name"])
        dims.append(Dimension(item["name"], item["prompt"].strip(), str(group)))
    overall = data.get("overall", "mean")
    source = text_name if text_name in builtin_sets() else str(path.resolve())
    name = data.get("name", path.stem)
    dim_set = DimensionSet(str(name), tuple(dims), str(overall), str(data.get("description", "")), source)
    if len(data["dimensions"]) > MAX_DIMENSIONS:
        raise ValueError(f"{where}: {len(data['dimensions'])} dimensions; at most {MAX_DIMENSIONS} are supported")
    return _checked(dim_set, where)


def _checked(dim_set: DimensionSet, where: str) -> DimensionSet:
    from editjudge.prompts import special_tokens_in

    names = dim_set.names
    if not names:
        raise ValueError(f"{where}: no dimensions")
    if len(names) > MAX_DIMENSIONS:
        raise ValueError(f"{where}: {len(names)} dimensions; at most {MAX_DIMENSIONS} are supported")
    bad = [n for n in names if not NAME_RE.fullmatch(n)]
    if bad:
        raise ValueError(f"{where}: dimension names must be lower-case words ([a-z][a-z0-9_]*, ≤ 40), got {bad}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{where}: dimension(s) {repeated} appear more than once")
    if dim_set.overall not in OVERALL_RULES:
        raise ValueError(f"{where}: overall must be one of {list(OVERALL_RULES)}, got {dim_set.overall!r}")
    for dim in dim_set.dimensions:
        if not dim.prompt or special_tokens_in(dim.prompt) or any(c in dim.prompt for c in "\n{}"):
            raise ValueError(
                f"{where}: dimension {dim.name!r} needs a one-line prompt sentence without braces or special tokens")
    return dim_set
