"""The fingerprint of a judging run: everything that changes the records it writes, so ``--resume`` never mixes two.

A resumable output (``score --ray``'s ``OUT.partial``, ``bench``'s ``scores.jsonl`` cache) stores
:func:`judge_fingerprint` when it starts; a rerun with ``--resume`` compares its own and refuses, naming each setting
that differs (:func:`differences`), instead of appending a second judge's answers (another adapter, another label
scale) to the first one's.

What is in it: every flag of the judge's parser (model, adapter, backend, template, sampling, batch size, dtype, the
image sizing flags, engine options, … — a flag added later is in it without a change here) except those in
:data:`NOT_IN_RECORDS`, which change how a run goes but not what it writes (where the output goes, timeouts,
retries, concurrency, the Ray pool); then what those flags resolve to: the model and adapter folders' contents (a
cheap signature: each file's name, size and first/last MiB — so an adapter retrained in the same folder is another
judge), the prompt template's text, the image sizing as resolved from ``--prepare-report`` and the flags. The
caller adds what it knows beside the judge (the label median/MAD, the items' digest). Imports no torch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

__all__ = ["NOT_IN_RECORDS", "judge_fingerprint", "folder_signature", "differences"]

# Flags that do not change a record: where outputs go, how to retry or reach things, how the work is spread.
NOT_IN_RECORDS = frozenset({
    "verb", "out", "force", "resume", "manifest", "source", "edited", "instruction",
    "ray", "ray_address", "ray_connect_timeout", "actors", "cpus_per_actor", "gpus_per_actor",
    "api_key_env", "timeout", "retries", "concurrency", "device",
    "prepare_report",  # its path: what it holds (sizing, template, labels) is fingerprinted as resolved
    # bench's report flags (its cache keys already name the images and the instruction)
    "suite", "root", "dimension", "predictions", "name", "bootstrap", "bootstrap_seed",
})
_EDGE = 1 << 20  # bytes read at each end of a file for its signature


def _file_signature(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.blake2b(digest_size=12)
    with open(path, "rb") as handle:
        digest.update(handle.read(_EDGE))
        if size > 2 * _EDGE:
            handle.seek(size - _EDGE)
            digest.update(handle.read(_EDGE))
    return f"{size}:{digest.hexdigest()}"


def folder_signature(path: str | os.PathLike[str] | None) -> str | None:
    """A signature of a model or adapter folder (files' names, sizes, first and last MiB); a name that is not a
    local folder (a hub id, a served model's name) is kept as it is."""
    if path is None:
        return None
    folder = Path(os.path.expanduser(os.fspath(path)))
    if not folder.is_dir():
        return os.fspath(path)
    digest = hashlib.blake2b(digest_size=16)
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        try:
            digest.update(f"{file.relative_to(folder)}={_file_signature(file)}\n".encode())
        except OSError:
            continue
    return f"{folder.resolve()}#{digest.hexdigest()}"


def _plain(value: Any) -> Any:
    """``value`` as JSON (paths and other objects as their text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    return str(value)


def judge_fingerprint(args: argparse.Namespace) -> dict[str, Any]:
    """The judge's part of a run's fingerprint, from the parsed flags of a verb built by ``add_judge_arguments``."""
    from editjudge import prompts
    from editjudge.judge.cli_common import image_sizing, recorded_template

    flags = {k: _plain(v) for k, v in sorted(vars(args).items()) if not k.startswith("_") and k not in NOT_IN_RECORDS}
    resolved: dict[str, Any] = {}
    if getattr(args, "model", None) and getattr(args, "backend", None) != "openai":
        resolved["model_files"] = folder_signature(args.model)
    if getattr(args, "adapter", None):
        resolved["adapter_files"] = folder_signature(args.adapter)
    try:
        template = prompts.load_template(args.template or recorded_template(args) or prompts.DEFAULT_TEMPLATE)
        resolved["template_text"] = hashlib.blake2b(f"{template.system}\x00{template.user}".encode(),
                                                    digest_size=12).hexdigest()
        sizing = image_sizing(args)
        resolved["image_sizing"] = _plain(asdict(sizing) if is_dataclass(sizing) else vars(sizing))
    except (OSError, ValueError) as exc:  # the run itself reports these; the fingerprint just says so
        resolved["unresolved"] = str(exc)
    return {"flags": flags, "resolved": resolved}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def differences(before: Any, now: Any, shown: int = 8) -> list[str]:
    """What differs between two fingerprints, one ``key: before -> now`` line each (at most ``shown``)."""
    old, new = _flatten(before), _flatten(now)
    lines = []
    for key in sorted(set(old) | set(new)):
        if old.get(key, "<absent>") != new.get(key, "<absent>"):
            a, b = (json.dumps(d.get(key, "<absent>"), default=str)[:100] for d in (old, new))
            lines.append(f"{key}: {a} -> {b}")
    return lines[:shown] + ([f"… and {len(lines) - shown} more"] if len(lines) > shown else [])
