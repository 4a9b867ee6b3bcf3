"""``--init-adapter DIR``: start a stage from a LoRA adapter (e.g. the SFT stage's), checked against the run first.

An adapter only continues a run whose LoRA has the same shape (rank, alpha, target and excluded modules) on the
same base model; anything else either fails deep inside PEFT/FSDP or silently trains something else. The check reads
the adapter's ``adapter_config.json`` (no torch) and names each mismatch with its fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return sorted(str(v) for v in value)


def adapter_problems(adapter: str | Path, *, rank: int | None, alpha: float | None, target_modules: Any,
                     exclude_modules: Any, base_model: str, keys: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(problem, fix) pairs for an adapter that does not fit the run; empty when it fits.

    ``keys`` names the run's settings in the fixes (e.g. ``{"rank": "actor_rollout_ref.model.lora_rank"}``).
    """
    keys = {"rank": "lora_rank", "alpha": "lora_alpha", "target_modules": "target_modules",
            "exclude_modules": "exclude_modules", **(keys or {})}
    folder = Path(adapter).expanduser()
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        return [(f"--init-adapter {folder}: no adapter_config.json there",
                 "pass the adapter folder written by `train --stage sft` (<output-dir>/adapter) or `editjudge export`")]
    try:
        saved = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return [(f"--init-adapter {folder}: unreadable adapter_config.json ({exc})", "re-export the adapter")]
    if not isinstance(saved, dict):
        return [(f"--init-adapter {folder}: adapter_config.json is not a JSON object", "re-export the adapter")]
    problems: list[tuple[str, str]] = []
    if rank is not None and saved.get("r") is not None and int(saved["r"]) != int(rank):
        problems.append((f"--init-adapter {folder}: rank {saved['r']} in the adapter, {keys['rank']}={rank} in this run",
                         f"set {keys['rank']}={saved['r']}"))
    if alpha is not None and saved.get("lora_alpha") is not None and float(saved["lora_alpha"]) != float(alpha):
        problems.append((f"--init-adapter {folder}: alpha {saved['lora_alpha']} in the adapter, "
                         f"{keys['alpha']}={alpha} in this run", f"set {keys['alpha']}={saved['lora_alpha']}"))
    if exclude_modules is not None and _as_list(saved.get("exclude_modules")) != _as_list(exclude_modules):
        problems.append((f"--init-adapter {folder}: excluded modules {saved.get('exclude_modules')!r} in the adapter, "
                         f"{exclude_modules!r} in this run",
                         f"set {keys['exclude_modules']}={saved.get('exclude_modules')!r}"))
    wanted = _as_list(target_modules)
    if wanted and wanted != ["all-linear"] and set(wanted) != set(_as_list(saved.get("target_modules"))):
        problems.append((f"--init-adapter {folder}: target modules {saved.get('target_modules')} in the adapter, "
                         f"{target_modules} in this run", f"set {keys['target_modules']} to the adapter's"))
    base = saved.get("base_model_name_or_path")
    if base and Path(str(base).rstrip("/")).name != Path(str(base_model).rstrip("/")).name:
        problems.append((f"--init-adapter {folder}: trained on base model {base}, this run uses {base_model}",
                         f"pass --model {base}: an adapter only fits the base model it was trained on"))
    return problems


def check_into(report: Any, adapter: str | None, model_cfg: Any, prefix: str) -> None:
    """Add the adapter's mismatches with a verl ``model`` config (keys under ``prefix``) to a pre-flight report."""
    if not adapter:
        return
    names = {"rank": "lora_rank", "alpha": "lora_alpha", "target_modules": "target_modules",
             "exclude_modules": "exclude_modules"}
    problems = adapter_problems(
        adapter, rank=model_cfg.get("lora_rank") or None, alpha=model_cfg.get("lora_alpha"),
        target_modules=model_cfg.get("target_modules"), exclude_modules=model_cfg.get("exclude_modules"),
        base_model=str(model_cfg.get("path")), keys={k: prefix + v for k, v in names.items()},
    )
    for problem, fix in problems:
        report.fail(problem, fix)
    if not problems:
        report.passed.append(f"--init-adapter {adapter}: matches {prefix}lora_rank/lora_alpha/modules and the base model")
