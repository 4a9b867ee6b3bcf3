"""``editjudge export``: a verl FSDP checkpoint -> a LoRA adapter, or (``--merge``) a merged Hugging Face model;
a PEFT adapter (the TRL engine's ``<output-dir>/adapter``) -> a merged model.

verl's own model merger (``verl.model_merger``, FSDP backend) gathers the shards and splits off the adapter; with
``--merge`` peft folds the adapter into the base weights (``merge_and_unload``) and the result is saved with its
processor, ready for ``transformers`` and vLLM. A PEFT adapter needs no export to be used (``--model BASE --adapter
DIR``); ``--adapter DIR --merge`` folds it into its base model (``--base-model``, else the adapter's recorded
``base_model_name_or_path``). Outputs appear atomically: built in a temporary sibling folder, then renamed into place.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from editjudge.model_path import absolute_path, recorded_path

EXPORT_INFO = "editjudge_export.json"


class ExportError(Exception):
    """A checkpoint that cannot be exported; the message names the fix."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``export`` verb's flags."""
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--checkpoint", metavar="DIR",
        help="verl checkpoint: <checkpoints>/global_step_N/actor (or global_step_N)",
    )
    what.add_argument(
        "--adapter", metavar="DIR",
        help="a PEFT LoRA adapter (e.g. the TRL engine's <output-dir>/adapter) to fold into its base with --merge; "
        "without --merge there is nothing to export: judge verbs load it with --model BASE --adapter DIR",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist, or be empty)")
    parser.add_argument(
        "--merge", action="store_true",
        help="fold the LoRA adapter into the base weights and save a full Hugging Face model + processor",
    )
    parser.add_argument(
        "--base-model", metavar="PATH_OR_ID",
        help="recorded as the adapter's base_model_name_or_path (default: none; the judge is told the base); with "
        "--adapter: the base to merge into (default: the adapter's base_model_name_or_path)",
    )
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out folder")


def resolve_actor_dir(checkpoint: str | Path) -> Path:
    """The ``actor`` folder of a verl FSDP checkpoint, checked for the files the merger reads."""
    path = Path(os.path.expanduser(str(checkpoint)))
    if (path / "actor").is_dir():
        path = path / "actor"
    if not path.is_dir():
        raise ExportError(f"checkpoint {path} does not exist: pass <default_local_dir>/global_step_N/actor")
    if not (path / "fsdp_config.json").is_file() or not list(path.glob("model_world_size_*_rank_*.pt")):
        if list(path.glob("**/dist_ckpt")):
            raise ExportError(f"{path} is a Megatron checkpoint: run `python -m verl.model_merger merge --backend megatron`")
        raise ExportError(
            f"{path} is not a verl FSDP actor checkpoint (needs fsdp_config.json and model_world_size_*_rank_*.pt): "
            "pass <default_local_dir>/global_step_N/actor"
        )
    if not (path / "huggingface" / "config.json").is_file():
        raise ExportError(f"{path}/huggingface/config.json is missing: the checkpoint was not fully written")
    world = json.loads((path / "fsdp_config.json").read_text()).get("world_size")
    missing = [r for r in range(int(world or 0)) if not (path / f"model_world_size_{world}_rank_{r}.pt").is_file()]
    if missing:
        raise ExportError(f"{path}: shards of rank(s) {missing} are missing (world size {world}): copy them all")
    return path


def run_merger(actor_dir: Path, target_dir: Path) -> None:
    """verl's FSDP model merger: the full HF model in ``target_dir``, the adapter in ``target_dir/lora_adapter``."""
    from verl.model_merger.base_model_merger import ModelMergerConfig
    from verl.model_merger.fsdp_model_merger import FSDPModelMerger

    config = ModelMergerConfig(
        operation="merge",
        backend="fsdp",
        local_dir=str(actor_dir),
        target_dir=str(target_dir),
        hf_model_config_path=str(actor_dir / "huggingface"),
    )
    merger = FSDPModelMerger(config)
    merger.merge_and_save()
    merger.cleanup()


def finish_adapter_config(adapter_dir: Path, base_model: str | None) -> None:
    """Record the base model and keep the vision tower out when it carries no LoRA weights.

    verl's merger lists target modules by short name (``q_proj``, ``gate_proj``…), which would also match the
    vision tower's MLP when the adapter is loaded; training excluded it (``exclude_modules='.*visual.*'``).
    """
    from safetensors import safe_open

    config_path = adapter_dir / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    with safe_open(str(adapter_dir / "adapter_model.safetensors"), framework="pt") as weights:
        keys = list(weights.keys())
    if keys and not any(".visual." in k for k in keys) and not config.get("exclude_modules"):
        config["exclude_modules"] = ".*visual.*"
    if base_model:
        config["base_model_name_or_path"] = recorded_path(base_model)
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def has_base_weights(model_dir: Path) -> bool:
    """Whether the merger's model holds the base weights (a ``save_lora_only`` checkpoint has only the adapter)."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    for file in files:
        with safe_open(str(file), framework="pt") as weights:
            if any("embed_tokens" in key for key in weights.keys()):
                return True
    return False


def merge_adapter(model_dir: Path, adapter_dir: Path, out_dir: Path) -> None:
    """peft's ``merge_and_unload``: base + adapter -> one model saved with its processor."""
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

    config = AutoConfig.from_pretrained(model_dir)
    auto = AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM
    base = auto.from_pretrained(model_dir, dtype=torch.bfloat16)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(out_dir)
    AutoProcessor.from_pretrained(model_dir).save_pretrained(out_dir)
    generation = model_dir / "generation_config.json"
    if generation.is_file() and not (out_dir / "generation_config.json").is_file():
        shutil.copy2(generation, out_dir / "generation_config.json")


def export(checkpoint: str | Path, out: str | Path, *, merge: bool = False, base_model: str | None = None,
           force: bool = False) -> Path:
    """Export ``checkpoint`` to ``out``; returns ``out``. Raises :class:`ExportError` with the fix."""
    actor_dir = resolve_actor_dir(checkpoint)
    out = _output_folder(out, force)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        full, result = work / "full", work / "result"
        adapter = full / "lora_adapter"
        try:
            run_merger(actor_dir, full)
            lora_only = adapter.is_dir() and not has_base_weights(full)
        except RuntimeError as exc:
            # verl's merger writes the adapter, then fails on a checkpoint saved with save_lora_only (no base weights)
            if not (adapter / "adapter_model.safetensors").is_file():
                raise ExportError(f"verl's model merger failed on {actor_dir}: {exc}") from exc
            lora_only = True
        if not adapter.is_dir():  # a full fine-tune: the merger's model is the export
            full.rename(result)
            kind = "full model (the checkpoint has no LoRA weights)"
        else:
            finish_adapter_config(adapter, base_model)
            if merge:
                base_dir = full
                if lora_only:  # merge into the base model the run started from
                    if not base_model or not Path(os.path.expanduser(base_model)).is_dir():
                        raise ExportError(
                            "the checkpoint holds only the LoRA weights (saved with save_lora_only): pass --base-model "
                            "with the local folder of the base model it was trained from"
                        )
                    base_dir = Path(os.path.expanduser(base_model))
                merge_adapter(base_dir, adapter, result)
                kind = "merged model (LoRA folded into the base weights)"
            else:
                adapter.rename(result)
                from transformers import AutoProcessor

                AutoProcessor.from_pretrained(actor_dir / "huggingface").save_pretrained(result)
                kind = "LoRA adapter"
        info = {"kind": kind, "checkpoint": absolute_path(actor_dir),
                "base_model": recorded_path(base_model) if base_model else None}
        _commit(result, info, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _commit(result: Path, info: dict, out: Path) -> None:
    """Write the export record into ``result`` and rename it to ``out`` (replacing what ``--force`` allowed)."""
    (result / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    os.replace(result, out)


def _output_folder(out: str | Path, force: bool) -> Path:
    """``out`` made absolute; refused when it holds files and ``force`` is not set."""
    out = Path(os.path.expanduser(str(out))).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise ExportError(f"{out} exists and is not empty: choose another --out or pass --force")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def adapter_base(adapter_dir: Path, base_model: str | None) -> Path:
    """The local base model folder a PEFT adapter merges into: ``base_model``, else the adapter's recorded
    ``base_model_name_or_path`` (absolute, or relative to the adapter folder); :class:`ExportError` with the fix."""
    from editjudge.model_path import find_model_dir, resolve_recorded

    if base_model:
        found = find_model_dir(base_model)
        where = "--base-model"
    else:
        config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
        recorded = config.get("base_model_name_or_path")
        if not recorded:
            raise ExportError(f"{adapter_dir}/adapter_config.json names no base model: pass --base-model BASE_FOLDER")
        local = resolve_recorded(recorded, adapter_dir / "adapter_config.json")
        found = local if local.is_dir() else find_model_dir(recorded)
        base_model, where = str(recorded), f"the adapter's base_model_name_or_path ({adapter_dir}/adapter_config.json)"
    if found is None or not (found / "config.json").is_file():
        raise ExportError(f"{where} {base_model!r} is not a local model folder (nor a cached hub snapshot): pass "
                          "--base-model with the folder of the model the adapter was trained on")
    return found


def export_adapter(adapter: str | Path, out: str | Path, *, base_model: str | None = None, force: bool = False) -> Path:
    """Fold a PEFT adapter into its base model (peft ``merge_and_unload``) and save model + processor to ``out``."""
    adapter_dir = Path(os.path.expanduser(str(adapter))).absolute()
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ExportError(f"--adapter {adapter_dir}: no adapter_config.json there (pass the folder PEFT saved, e.g. "
                          "<output-dir>/adapter of `editjudge train --engine trl`)")
    base_dir = adapter_base(adapter_dir, base_model)  # before anything loads or is written
    out = _output_folder(out, force)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        result = work / "result"
        merge_adapter(base_dir, adapter_dir, result)
        info = {"kind": "merged model (LoRA folded into the base weights)", "adapter": absolute_path(adapter_dir),
                "base_model": absolute_path(base_dir)}
        _commit(result, info, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def is_adapter_folder(path: str | Path) -> bool:
    """Whether ``path`` is a PEFT adapter folder (``adapter_config.json``) rather than a verl checkpoint."""
    folder = Path(os.path.expanduser(str(path)))
    return (folder / "adapter_config.json").is_file() and not (folder / "fsdp_config.json").is_file()


def run(args: argparse.Namespace) -> int:
    """``editjudge export``."""
    adapter = args.adapter or (args.checkpoint if is_adapter_folder(args.checkpoint) else None)
    if adapter and not args.merge:
        print(f"editjudge export: {adapter} is a PEFT adapter already: nothing to export. Use it as it is "
              f"(`editjudge score --model BASE --adapter {adapter}`, the same for eval, best-of-n, serve), or pass "
              "--merge to fold it into its base model (one folder that transformers and vLLM load)", file=sys.stderr)
        return 2
    try:
        if adapter:
            out = export_adapter(adapter, args.out, base_model=args.base_model, force=args.force)
        else:
            out = export(args.checkpoint, args.out, merge=args.merge, base_model=args.base_model, force=args.force)
    except ExportError as exc:
        print(f"editjudge export: error: {exc}", file=sys.stderr)
        return 2
    info = json.loads((out / EXPORT_INFO).read_text())
    print(f"exported {info['kind']} to {out}")
    return 0
