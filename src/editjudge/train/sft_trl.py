"""``editjudge train --stage sft --engine trl``: the cold-start SFT in one process with TRL's ``SFTTrainer`` + PEFT.

It reads the same ``sft.parquet`` as verl's SFT trainer (``editjudge distill``: ``messages`` = system, user with two
``<image>``, assistant; ``images`` as ``{"bytes"}``) and the same preset keys where their meaning is shared
(:data:`SFT_KEYS`). The loss is on the assistant turn only. Per logged step it writes ``metrics.jsonl`` (phase
``sft``); the adapter and the processor go to ``<output_dir>/adapter``, which the judge, ``export`` and
``--init-adapter`` of the GRPO stage read.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from editjudge import prompts
from editjudge.data.writer import atomic_write_text
from editjudge.model_path import absolute_path, recorded_path

# verl SFT key -> SftSettings field: the keys this engine reads (the others of an SFT preset are verl-only).
SFT_KEYS: dict[str, str] = {
    "model.lora_rank": "lora_rank",
    "model.lora_alpha": "lora_alpha",
    "model.target_modules": "target_modules",
    "model.exclude_modules": "exclude_modules",
    "optim.lr": "learning_rate",
    "optim.lr_scheduler_type": "lr_scheduler_type",
    "optim.lr_warmup_steps_ratio": "warmup_ratio",
    "optim.weight_decay": "weight_decay",
    "optim.clip_grad": "max_grad_norm",
    "trainer.total_epochs": "epochs",
    "trainer.seed": "seed",
    "data.train_batch_size": "batch_size",
    "data.micro_batch_size_per_gpu": "micro_batch_size",
}
ADAPTER_DIR = "adapter"
METRICS_FILE = "metrics.jsonl"


@dataclass
class SftSettings:
    """What the TRL SFT stage needs; from an SFT preset's verl keys plus flags."""

    model: str
    output_dir: str
    lora_rank: int = 128
    lora_alpha: int = 32
    target_modules: str | list[str] = "all-linear"
    exclude_modules: str | list[str] | None = r".*visual.*"
    learning_rate: float = 1e-4
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 8  # rows per optimiser step
    micro_batch_size: int = 1  # rows per forward pass
    seed: int = 42
    init_adapter: str | None = None

    def __post_init__(self) -> None:
        if self.lora_rank <= 0 and not self.init_adapter:
            raise ValueError("the TRL SFT stage trains a LoRA adapter: model.lora_rank must be > 0")
        if self.micro_batch_size < 1 or self.batch_size < self.micro_batch_size or self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"data.train_batch_size={self.batch_size} must be a positive multiple of "
                f"data.micro_batch_size_per_gpu={self.micro_batch_size} (one process: the rest is accumulation)"
            )


def _coerce(name: str, value: Any) -> Any:
    import yaml

    if isinstance(value, str) and (name not in ("target_modules", "exclude_modules") or value.startswith("[")):
        value = yaml.safe_load(value)
    if name in ("lora_rank", "lora_alpha", "batch_size", "micro_batch_size", "seed"):
        return int(value)
    if name in ("learning_rate", "warmup_ratio", "weight_decay", "max_grad_norm", "epochs"):
        return float(value)
    return value


def settings_from_args(args: argparse.Namespace, preset: Any) -> SftSettings:
    """Preset keys, then ``-- key=value`` overrides (each must be a key this engine reads), then the flags."""
    values: dict[str, Any] = {}
    for key, value in (getattr(preset, "overrides", {}) or {}).items():
        name = SFT_KEYS.get(key.lstrip("+"))
        if name:
            values[name] = value
    unknown = []
    for item in getattr(args, "overrides", None) or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        name = SFT_KEYS.get(key.lstrip("+"))
        if name is None:
            unknown.append(key)
        else:
            values[name] = value
    if unknown:
        raise ValueError(f"the TRL SFT stage does not read {', '.join(unknown)}; it reads {', '.join(SFT_KEYS)}")
    try:
        coerced = {name: _coerce(name, value) for name, value in values.items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"an SFT setting has the wrong type ({exc}); give numbers for rank, alpha, lr, batch, epochs")
    model = getattr(args, "model", None) or getattr(preset, "model", None)
    return SftSettings(
        model=recorded_path(model) if model else str(model),
        output_dir=absolute_path(getattr(args, "output_dir", None) or "outputs/sft"),
        max_steps=getattr(args, "max_steps", -1) or -1,
        init_adapter=absolute_path(args.init_adapter) if getattr(args, "init_adapter", None) else None,
        **({"seed": args.seed} if getattr(args, "seed", None) is not None else {}), **coerced,
    )


# ----------------------------------------------------------------------------------------------------- data
def read_sft_dataset(paths: str | Path | Sequence[str | Path]):
    """``sft.parquet`` file(s) as a TRL prompt-completion dataset with lazily decoded images; checked."""
    import datasets
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = [paths] if isinstance(paths, (str, Path)) else list(paths or [])
    if not files:
        raise ValueError("no training files given: pass --train-files sft.parquet (written by `editjudge distill`)")
    prompt_rows: list[Any] = []
    completions: list[Any] = []
    image_chunks: list[Any] = []
    for file in files:
        path = Path(file)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (write it with `editjudge distill --out DIR`)")
        names = set(pq.read_schema(path).names)
        if not {"messages", "images"} <= names:
            hint = " (a GRPO parquet from `prepare`: distil it first)" if "prompt" in names else ""
            raise ValueError(f"{path}: needs columns messages and images{hint}")
        table = pq.read_table(path, columns=["messages", "images"])
        counts = pc.fill_null(pc.list_value_length(table["images"]), 0).to_pylist()
        for i, (messages, count) in enumerate(zip(table["messages"].to_pylist(), counts)):
            if not messages or messages[-1]["role"] != "assistant":
                raise ValueError(f"{path} row {i}: the last message must be the assistant's response")
            placeholders = sum(str(m["content"]).count(prompts.IMAGE_PLACEHOLDER) for m in messages)
            if placeholders != count:
                raise ValueError(f"{path} row {i}: {placeholders} {prompts.IMAGE_PLACEHOLDER} placeholders, {count} images")
            prompt_rows.append(prompts.to_content_parts(messages[:-1]))
            completions.append([{"role": "assistant", "content": messages[-1]["content"]}])
        image_chunks += table["images"].chunks
    if not completions:
        raise ValueError(f"{', '.join(map(str, files))}: no rows to train on (distill accepted no response, or the "
                         "file was written empty): read distill's responses.jsonl and no_accepted.jsonl, then distil "
                         "again with more --samples, a larger --tolerance or a better teacher")
    text_part = {"type": datasets.Value("string"), "text": datasets.Value("string")}
    features = datasets.Features({
        "prompt": datasets.List({"role": datasets.Value("string"), "content": datasets.List(text_part)}),
        "completion": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
        "images": datasets.List(datasets.Image()),
    })
    columns = {"prompt": prompt_rows, "completion": completions, "images": pa.chunked_array(image_chunks)}
    return datasets.Dataset.from_dict(columns, features=features)


# ----------------------------------------------------------------------------------------------------- training
def lora_config(settings: SftSettings):
    """The same PEFT LoRA as the GRPO engine builds (rank, alpha, targets, exclusions), so its adapter continues."""
    from editjudge.train.trl import lora_config as grpo_lora_config

    return grpo_lora_config(settings)  # type: ignore[arg-type]  # reads only the four LoRA fields


def sft_config(settings: SftSettings, output_dir: Path):
    import torch
    from trl import SFTConfig

    gpu = torch.cuda.is_available()
    return SFTConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=settings.micro_batch_size,
        gradient_accumulation_steps=settings.batch_size // settings.micro_batch_size,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler_type,
        warmup_ratio=settings.warmup_ratio,
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        max_length=None,  # multimodal prompts are never truncated (the pre-flight measures lengths)
        completion_only_loss=True,
        seed=settings.seed,
        data_seed=settings.seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not gpu,
        bf16=gpu and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=gpu,
    )


def with_adapter(model: Any, adapter: str | Path):
    """``model`` wrapped with a trainable copy of a saved LoRA adapter (the weights it starts from)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter), is_trainable=True)


@dataclass
class SftResult:
    adapter_dir: Path
    metrics_path: Path
    records: list[dict[str, Any]]
    model: Any = None


def train(settings: SftSettings, train_files: Any, model: Any = None, processor: Any = None) -> SftResult:
    """SFT with LoRA (fresh, or continuing ``settings.init_adapter``); adapter + processor saved atomically."""
    from trl import SFTTrainer

    from editjudge.train.trl import _metrics_callback as metrics_callback
    from editjudge.train.trl import _use_quiet_progress as quiet_progress
    from editjudge.train.trl import load_model, save_adapter

    out = Path(settings.output_dir)
    dataset = read_sft_dataset(train_files)
    if model is None or processor is None:
        processor, model = load_model(settings.model)
    peft_config = lora_config(settings)
    if settings.init_adapter:
        model, peft_config = with_adapter(model, settings.init_adapter), None
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "sft_settings.json", json.dumps(asdict(settings), indent=2, sort_keys=True) + "\n")
    records: list[dict[str, Any]] = []
    trainer = SFTTrainer(model=model, args=sft_config(settings, out / "checkpoints"), train_dataset=dataset,
                         processing_class=processor, peft_config=peft_config,
                         callbacks=[metrics_callback(out / METRICS_FILE, "sft", records)])
    quiet_progress(trainer)  # one line per step, no raw log dicts; no bar in a log file
    trainer.train()
    if (out / "checkpoints").is_dir() and not any((out / "checkpoints").iterdir()):
        (out / "checkpoints").rmdir()
    adapter_dir = save_adapter(trainer.model, processor, out / ADAPTER_DIR)  # the GRPO engine's atomic save
    return SftResult(adapter_dir, out / METRICS_FILE, records, trainer.model)


def _preflight(settings: SftSettings) -> list[tuple[str, str]]:
    """The model folder exists; an --init-adapter fits this run."""
    from editjudge.train.init_adapter import adapter_problems
    from editjudge.train.preflight import resolve_model_dir

    problems: list[tuple[str, str]] = []
    if resolve_model_dir(settings.model) is None:
        problems.append((f"model {settings.model!r} is neither a local directory nor in the Hugging Face cache",
                         "pass --model a local Qwen2.5-VL folder (or build one with `editjudge tiny-model`)"))
    if settings.init_adapter:
        problems += adapter_problems(
            settings.init_adapter, rank=settings.lora_rank, alpha=settings.lora_alpha,
            target_modules=settings.target_modules, exclude_modules=settings.exclude_modules,
            base_model=settings.model, keys={k: f"model.{v}" for k, v in (
                ("rank", "lora_rank"), ("alpha", "lora_alpha"), ("target_modules", "target_modules"),
                ("exclude_modules", "exclude_modules"))},
        )
    return problems


def run(args: argparse.Namespace, preset: Any) -> int:
    """``editjudge train --stage sft --engine trl``; exit 2 for bad settings, data or model."""
    import sys

    from editjudge.train.sft_verl import check_stage

    try:
        check_stage(preset)
        settings = settings_from_args(args, preset)
        dataset = read_sft_dataset(getattr(args, "train_files", None))
    except (FileNotFoundError, ValueError) as exc:
        print(f"editjudge train: error: {exc}", file=sys.stderr)
        return 2
    from editjudge.data.writer import OutputExists, check_output

    problems = _preflight(settings)
    if not getattr(args, "dry_run", False):
        try:
            check_output(settings.output_dir, force=bool(getattr(args, "force", False)), flag="--output-dir")
        except OutputExists as exc:
            problems.append((str(exc), "each stage writes its own --output-dir"))
    for problem, fix in problems:
        print(f"  ✗ {problem}\n    fix: {fix}", file=sys.stderr)
    if problems:
        return 2
    print("TRL SFT settings:\n" + json.dumps(asdict(settings), indent=2, sort_keys=True), file=sys.stderr)
    if settings.batch_size > len(dataset):
        print(f"warning: data.train_batch_size={settings.batch_size} rows per optimiser step, but {len(dataset)} "
              f"SFT rows: every epoch is one step over {len(dataset)} rows here (and verl's SFT trainer drops the "
              f"incomplete batch, so it would train nothing): set data.train_batch_size <= {len(dataset)}",
              file=sys.stderr)
    if getattr(args, "dry_run", False):
        print(f"dry run: settings valid, {len(dataset)} SFT rows readable; nothing trained")
        return 0
    result = train(settings, args.train_files)
    losses = [r["loss"] for r in result.records if "loss" in r]
    print(f"adapter saved to {result.adapter_dir}; per-step metrics in {result.metrics_path}"
          + (f"; loss {losses[0]:.4g} -> {losses[-1]:.4g} over {len(losses)} steps" if losses else ""))
    if losses and abs(losses[-1] - losses[0]) <= 1e-3 * max(1.0, abs(losses[0])):
        print(f"warning: the loss did not move over {len(losses)} step(s) ({losses[0]:.4g} -> {losses[-1]:.4g}): "
              f"too few steps at optim.lr={settings.learning_rate:g} to change the adapter (LoRA starts as a no-op); "
              "train longer (trainer.total_epochs, --max-steps, a smaller data.train_batch_size) or raise optim.lr",
              file=sys.stderr)
    return 0


__all__ = ["SFT_KEYS", "SftResult", "SftSettings", "read_sft_dataset", "run", "settings_from_args", "train",
           "with_adapter"]
