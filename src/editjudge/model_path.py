"""Check a model / adapter argument before anything loads it: local folder or cached hub snapshot, else fail at once.

``transformers`` and ``peft`` treat a missing local folder such as ``runs/nope`` as a hub id and spend seconds to
minutes retrying the hub before failing. :func:`resolve_model_path` answers at once, without network and without
torch: a local folder, or the snapshot of a ``org/name`` hub id already in the Hugging Face cache; anything else is
a ``FileNotFoundError`` with the fix (the message the verl pre-flight gives).

Paths that outputs record (a prepare report's processor, an adapter's ``base_model_name_or_path``, a demo summary's
folders) follow one rule so that they resolve the same from any working folder: :func:`recorded_path` writes a local
path absolute (a model argument that is a hub id as it is; :func:`absolute_path` for outputs and data files), and :func:`resolve_recorded` reads one back — absolute as it is, a relative one
(hand-written, or from an older version) against the folder of the file that records it, never the working folder.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["absolute_adapter_base", "absolute_path", "check_model_paths", "find_model_dir", "recorded_path", "resolve_model_path",
           "resolve_recorded"]


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
        return Path(os.path.abspath(path))  # what gets recorded must not depend on the working folder
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


def absolute_path(value: str | os.PathLike[str]) -> str:
    """How an output records a path that is local by nature (an output folder, a data file): absolute, ``~``
    expanded, symlinks kept — whether it exists yet or not."""
    return os.path.abspath(Path(os.fspath(value)).expanduser())


def recorded_path(value: str | os.PathLike[str]) -> str:
    """How an output records a path: a local path absolute (``~`` expanded, symlinks kept), a hub id as given.

    A value that names nothing on disk and reads as ``org/name`` is a hub id; anything else is a local path, made
    absolute against the working folder of the run that writes it."""
    text = os.fspath(value)
    path = Path(text).expanduser()
    if not path.exists() and _hub_like(text):
        return text
    return os.path.abspath(path)


def resolve_recorded(value: str | os.PathLike[str], recorded_in: str | os.PathLike[str]) -> Path:
    """A path read back from the file ``recorded_in``: absolute as it is, relative against that file's folder (the
    same from any working folder). Existence is the caller's check."""
    path = Path(os.fspath(value)).expanduser()
    if path.is_absolute():
        return path
    return Path(os.path.abspath(Path(os.fspath(recorded_in)).expanduser().parent / path))


def absolute_adapter_base(adapter_dir: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> None:
    """Rewrite ``adapter_config.json``'s ``base_model_name_or_path`` as :func:`recorded_path` records it (``base``
    when given, else the value PEFT wrote, which is the path the model was loaded from, relative or not)."""
    import json

    config_path = Path(adapter_dir) / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    value = base if base is not None else config.get("base_model_name_or_path")
    if not value:
        return
    recorded = recorded_path(value)
    if recorded != config.get("base_model_name_or_path"):
        config["base_model_name_or_path"] = recorded
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
