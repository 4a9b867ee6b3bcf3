"""Check a model / adapter argument before anything loads it: local folder or cached hub snapshot, else fail at once.

``transformers`` and ``peft`` treat a missing local folder such as ``runs/nope`` as a hub id and spend seconds to
minutes retrying the hub before failing. :func:`resolve_model_path` answers at once, without network and without
torch: a local folder, or the snapshot of a ``org/name`` hub id already in the Hugging Face cache; anything else is
a ``FileNotFoundError`` with the fix (the message the verl pre-flight gives).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["find_model_dir", "resolve_model_path", "check_model_paths"]


def _cached_snapshot(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - ships with transformers
        return None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, malformed id, offline-only: all mean "not here"
        return None


def _hub_like(text: str) -> bool:
    return text.count("/") == 1 and not text.startswith(("/", ".", "~")) and all(text.split("/"))


def find_model_dir(value: str | os.PathLike[str]) -> Path | None:
    """The local folder ``value`` names, or the cached snapshot of a ``org/name`` hub id; ``None`` otherwise."""
    text = os.fspath(value)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    return _cached_snapshot(text) if not path.exists() and _hub_like(text) else None


def resolve_model_path(value: str | os.PathLike[str], what: str = "--model") -> Path:
    """The local folder ``value`` names, or its cached hub snapshot; ``FileNotFoundError`` naming ``what`` and the
    fix otherwise. Never downloads."""
    text = os.fspath(value)
    found = find_model_dir(text)
    if found is not None:
        return found
    if Path(text).expanduser().exists():
        raise FileNotFoundError(f"{what} {text}: not a folder (give the folder of a Hugging Face model or adapter)")
    hub_like = _hub_like(text)
    example = text if hub_like else "Qwen/Qwen2.5-VL-3B-Instruct"
    raise FileNotFoundError(
        f"{what} {text!r} is neither a local directory nor in the Hugging Face cache: download it once (e.g. "
        f"`hf download {example} --local-dir /models/qwen2_5_vl_3b`) and pass {what} /models/qwen2_5_vl_3b"
    )


def check_model_paths(**named: str | os.PathLike[str] | None) -> None:
    """:func:`resolve_model_path` for each named value that is given (``model=…, adapter=…``)."""
    for what, value in named.items():
        if value:
            resolve_model_path(value, f"--{what.replace('_', '-')}")
