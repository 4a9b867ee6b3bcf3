"""Training presets: named sets of verl Hydra overrides kept as YAML data files.

A preset file holds ``name``, ``description``, ``model`` (default model path or hub id), ``overrides``: a flat
mapping of verl 0.9.1 dotted config keys to values (a leading ``+`` adds a key verl's YAML does not declare), and
optionally ``trl``: settings only the TRL engine reads (``TrlSettings`` fields or TRL ``GRPOConfig`` fields, checked
by name when that engine runs; see :mod:`editjudge.train.trl_settings`).
Built-in presets live next to this module in ``presets/<name>.yaml``; users pass their own file by path.
Imports no torch and no verl.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRESET_DIR = Path(__file__).with_name("presets")
DEFAULT_PRESET = "qwen2_5_vl_3b_lora"


@dataclass(frozen=True)
class Preset:
    """One training preset; ``overrides`` maps verl dotted keys (``+`` kept where present) to values."""

    name: str
    description: str
    model: str
    overrides: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    trl: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` with or without a leading ``+``/``++``; ``default`` when the preset leaves it."""
        for candidate in (key, f"+{key}", f"++{key}"):
            if candidate in self.overrides:
                return self.overrides[candidate]
        return default


def builtin_presets() -> list[str]:
    """Names of the presets shipped with editjudge."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name_or_path: str | Path = DEFAULT_PRESET) -> Preset:
    """A built-in preset by name, or a user's preset YAML file by path."""
    import yaml

    candidate = Path(name_or_path)
    if isinstance(name_or_path, str) and (PRESET_DIR / f"{name_or_path}.yaml").is_file():
        path = PRESET_DIR / f"{name_or_path}.yaml"
    elif candidate.is_file():
        path = candidate
    else:
        raise ValueError(
            f"unknown preset {str(name_or_path)!r}: use one of {builtin_presets()} or the path of a preset YAML file "
            f"(copy {PRESET_DIR / (DEFAULT_PRESET + '.yaml')} to start)"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"preset {path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"preset {path}: expected a mapping with 'name', 'model' and 'overrides'")
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides):
        raise ValueError(f"preset {path}: 'overrides' must map dotted verl keys (strings) to values")
    nested = [k for k, v in overrides.items() if isinstance(v, dict)]
    if nested:
        raise ValueError(
            f"preset {path}: overrides must be flat dotted keys; write e.g. '{nested[0]}.<sub_key>: value' "
            f"instead of a nested mapping under {nested[0]!r}"
        )
    trl = data.get("trl") or {}
    if not isinstance(trl, dict) or not all(isinstance(k, str) for k in trl):
        raise ValueError(f"preset {path}: 'trl' must map TRL engine setting names to values (e.g. 'max_steps: 200')")
    nested = [k for k, v in trl.items() if isinstance(v, dict) and k != "reward_kwargs"]
    if nested:
        raise ValueError(f"preset {path}: 'trl' holds flat names; {nested[0]!r} maps to a nested mapping")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError(f"preset {path}: 'model' must be a model path or hub id (string)")
    return Preset(
        name=str(data.get("name") or path.stem),
        description=str(data.get("description") or "").strip(),
        model=model,
        overrides=dict(overrides),
        path=path,
        trl=dict(trl),
    )
