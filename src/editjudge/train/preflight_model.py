"""Pre-flight, model seam: the model is a local folder (or a cached hub snapshot) with its config and processor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from editjudge.model_path import find_model_dir
from editjudge.train.preflight_report import Report


def resolve_model_dir(model: str) -> Path | None:
    """A local model directory, or the cached snapshot of a hub id (never downloads): :mod:`editjudge.model_path`."""
    return find_model_dir(model)


def check_model_folder(model: str, report: Report, *, needs_vision: bool) -> Path | None:
    """The model is a local folder (or a cached hub snapshot: never downloads) with its config, a vision tower when
    needed, an image processor and a tokenizer; returns the folder, or ``None`` after a problem (with its fix)."""
    folder = resolve_model_dir(model)
    if folder is None:
        report.fail(
            f"model {model!r} is neither a local directory nor in the Hugging Face cache",
            f"download it once (e.g. `hf download {model if model.count('/') == 1 else 'Qwen/Qwen2.5-VL-3B-Instruct'} "
            "--local-dir /models/qwen2_5_vl_3b`) to a path every node sees, and pass --model /models/qwen2_5_vl_3b",
        )
        return None
    config_path = folder / "config.json"
    if not config_path.is_file():
        report.fail(f"model folder {folder} has no config.json", "pass --model the folder of a Hugging Face model")
        return None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        report.fail(f"model folder {folder}: config.json is not readable JSON ({exc})",
                    "re-download or re-save the model (save_pretrained)")
        return None
    if needs_vision and "vision_config" not in config:
        report.fail(
            f"model {folder} has no vision tower (config.json lacks vision_config) but the data has images",
            "use a vision-language model such as Qwen2.5-VL-3B-Instruct",
        )
        return None
    missing = [
        what for what, names in (
            ("image processor (preprocessor_config.json / processor_config.json)",
             ("preprocessor_config.json", "processor_config.json")),
            ("tokenizer (tokenizer.json / tokenizer_config.json)", ("tokenizer.json", "tokenizer_config.json")),
        ) if not any((folder / n).is_file() for n in names)
    ]
    if missing:
        report.fail(
            f"model folder {folder} lacks its {' and '.join(missing)}",
            "copy the processor files from the base model (AutoProcessor.from_pretrained(base).save_pretrained(dir))",
        )
        return None
    return folder


def check_model(cfg: Any, report: Report, *, needs_vision: bool) -> Any:
    """Config and processor are there and load with verl's loader; returns the processor (or ``None``)."""
    folder = check_model_folder(str(cfg.actor_rollout_ref.model.path), report, needs_vision=needs_vision)
    if folder is None:
        return None
    import warnings

    from verl.utils import hf_processor

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        processor = hf_processor(str(folder), trust_remote_code=bool(cfg.data.get("trust_remote_code", False)))
    if processor is None and needs_vision:
        reason = "; ".join(str(w.message) for w in caught if "processor" in str(w.message).lower()) or "unknown"
        report.fail(
            f"verl's hf_processor returned no processor for {folder} ({reason}): verl would silently train "
            "text-only and the images would never reach the model",
            "install torchvision matching torch (transformers needs it for Qwen2.5-VL processors) and check "
            "the model's processor files",
        )
        return None
    report.passed.append(f"model {folder}: config + {type(processor).__name__ if processor else 'tokenizer'}")
    return processor

