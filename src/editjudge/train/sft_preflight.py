"""CPU pre-flight of a verl SFT run (``verl.trainer.sft_trainer``), with verl's own config, dataset and processor.

The same discipline as the GRPO pre-flight (:mod:`editjudge.train.preflight`), on the SFT config
(``sft_trainer_engine.yaml``): compose the overrides with verl's Hydra config, build verl's own config dataclasses
(model, engine, optimiser, checkpoint: what ``SFTTrainer._build_config`` builds, which also loads the model's
tokenizer and processor), run every row through verl's own ``MultiTurnSFTDataset`` with that processor, measure
each sequence against ``data.max_length``, check that the rows fill at least one global batch on the GPUs given and
that the LoRA settings match what the GRPO stage will continue from. Every failure names its fix.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from editjudge.train.preflight import PreflightError, Report, compose, resolve_model_dir

SFT_CONFIG = "sft_trainer_engine"
SFT_COLUMNS = ("messages", "images")
_SHOWN = 5  # rows named per kind of problem


def compose_sft(overrides: list[str]) -> Any:
    """Compose with verl's SFT config exactly as ``torchrun -m verl.trainer.sft_trainer`` would."""
    try:
        return compose(overrides, config_name=SFT_CONFIG)
    except PreflightError as exc:
        problem = exc.problem.replace("verl's config", "verl's SFT config")
        if "has no key" in exc.problem:  # a typo: the pre-flight already names the nearest real key
            raise PreflightError(problem, exc.fix) from None
        raise PreflightError(
            problem,
            "check the key against `python -m verl.trainer.sft_trainer --cfg job` (SFT keys are data.*, model.*, "
            "engine.*, optim.*, trainer.*, not the GRPO trainer's actor_rollout_ref.*); write '+key=value' only for "
            "keys verl's YAML does not declare",
        ) from None


def _world(cfg: Any) -> int:
    return int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)


def check_sft_config(cfg: Any, report: Report) -> None:
    """verl's own dataclasses for engine, optimiser and checkpoint; batch arithmetic; the LoRA shape."""
    from verl.utils.config import omega_conf_to_dataclass

    for section in ("engine", "optim", "checkpoint"):
        try:
            omega_conf_to_dataclass(cfg[section])
        except Exception as exc:  # noqa: BLE001 - verl validates with asserts and ValueErrors alike
            report.fail(
                f"verl rejects the {section}.* settings: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
                f"fix the {section}.* override named in the message (see verl's trainer/config/{section}/ YAML)",
            )
    data = cfg.data
    try:
        batch, micro, max_length = int(data.train_batch_size), int(data.micro_batch_size_per_gpu), int(data.max_length)
        gpus, nodes, epochs = int(cfg.trainer.n_gpus_per_node), int(cfg.trainer.nnodes), int(cfg.trainer.total_epochs)
    except (TypeError, ValueError) as exc:
        report.fail(f"a batch, length, GPU or epoch setting is not a whole number ({exc})",
                    "give data.train_batch_size, data.micro_batch_size_per_gpu, data.max_length, "
                    "trainer.n_gpus_per_node, trainer.nnodes and trainer.total_epochs as integers")
        return
    for key, value in (("data.train_batch_size", batch), ("data.micro_batch_size_per_gpu", micro),
                       ("data.max_length", max_length), ("trainer.n_gpus_per_node", gpus), ("trainer.nnodes", nodes),
                       ("trainer.total_epochs", epochs)):
        if value < 1:
            report.fail(f"{key}={value} must be at least 1", f"set {key} to a positive integer")
    if report.problems:
        return
    world = gpus * nodes
    if batch % world:
        fixed = max(world, batch // world * world)
        report.fail(
            f"data.train_batch_size={batch} is not a multiple of the {world} GPU(s): each GPU takes batch/GPUs rows",
            f"set data.train_batch_size={fixed} (or change --gpus/--nodes)",
        )
    elif not data.use_dynamic_bsz and (batch // world) % micro:
        report.fail(
            f"data.micro_batch_size_per_gpu={micro} does not divide the {batch // world} rows per GPU",
            f"set data.micro_batch_size_per_gpu to a divisor of {batch // world}, e.g. 1",
        )
    if data.use_dynamic_bsz and int(data.max_token_len_per_gpu) < max_length:
        report.fail(
            f"data.max_token_len_per_gpu={data.max_token_len_per_gpu} is below data.max_length={max_length}: a long "
            "sequence would not fit in any micro-batch",
            f"set data.max_token_len_per_gpu={max_length} or more",
        )
    if cfg.data.get("image_key", "images") != "images" or cfg.data.messages_key != "messages":
        report.warnings.append("data.image_key/messages_key differ from distill's columns (images, messages)")
    rank = int(cfg.model.lora_rank or 0)
    if rank <= 0 and not cfg.model.get("lora_adapter_path"):
        report.warnings.append("model.lora_rank is 0: a full fine-tune (no adapter for --init-adapter to continue from)")
    exclude = str(cfg.model.get("exclude_modules") or "")
    if rank > 0 and "visual" not in exclude:
        report.fail(
            "LoRA on the vision tower (model.exclude_modules does not exclude it): vLLM's LoRA for Qwen2.5-VL "
            "cannot serve such an adapter in the GRPO stage",
            "set model.exclude_modules='.*visual.*' as the GRPO preset does",
        )
    if not report.problems:
        report.passed.append(
            f"verl SFT config: batch {batch} on {world} GPU(s), max_length {max_length}, LoRA r{rank}/alpha "
            f"{cfg.model.lora_alpha}, {epochs} epoch(s)"
        )


def check_sft_model(cfg: Any, report: Report) -> Any:
    """The model folder, then verl's own ``HFModelConfig`` (loads config, tokenizer and processor); None on failure."""
    from verl.utils.config import omega_conf_to_dataclass

    model = str(cfg.model.path)
    folder = resolve_model_dir(model)
    if folder is None:
        report.fail(
            f"model {model!r} is neither a local directory nor in the Hugging Face cache",
            "download it once to a path every node sees and pass --model that folder",
        )
        return None
    try:
        model_config = omega_conf_to_dataclass(cfg.model)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds for a broken folder
        report.fail(f"verl cannot load model {folder}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
                    "pass --model the folder of a Hugging Face vision-language model (config, tokenizer, processor)")
        return None
    if model_config.processor is None:
        report.fail(
            f"verl found no processor for {folder}: the images would never reach the model",
            "pass a vision-language model (e.g. Qwen2.5-VL-3B-Instruct) whose folder has its processor files",
        )
        return None
    report.passed.append(f"model {folder}: {type(model_config.processor).__name__}")
    return model_config


def check_sft_data(path: str, cfg: Any, model_config: Any, report: Report, *, max_rows: int | None = None) -> int:
    """Every row (or about ``max_rows`` evenly spaced) through verl's ``MultiTurnSFTDataset``; returns the row count."""
    import pyarrow.parquet as pq
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    file = Path(path)
    if not file.is_file():
        report.fail(f"SFT data {file}: no such file", "write it with `editjudge distill --out DIR` (DIR/sft.parquet)")
        return 0
    try:
        names = set(pq.read_schema(file).names)
    except Exception as exc:  # noqa: BLE001
        report.fail(f"SFT data {file}: not a parquet file ({type(exc).__name__})", "give the sft.parquet of `editjudge distill`")
        return 0
    missing = [c for c in SFT_COLUMNS if c not in names]
    if missing:
        hint = " (this is a GRPO parquet from `prepare`: distil it first)" if "prompt" in names else ""
        report.fail(f"SFT data {file} lacks column(s) {missing}{hint}",
                    "give the sft.parquet written by `editjudge distill` (columns messages, images)")
        return 0
    if pq.ParquetFile(file).metadata.num_rows == 0:
        report.fail(f"SFT data {file} has no rows: there is nothing to train on (distill accepted no response, or "
                    "the file was written empty)",
                    "read distill's responses.jsonl and no_accepted.jsonl (what the teacher said, why each answer was "
                    "refused), then distil again with more --samples, a larger --tolerance or a better teacher")
        return 0
    with contextlib.redirect_stdout(sys.stderr):  # verl prints progress; stdout carries the command
        dataset = MultiTurnSFTDataset([str(file)], model_config.tokenizer, cfg.data, processor=model_config.processor)
    rows = len(dataset)
    indices = range(rows)
    if max_rows and rows > max_rows:
        step = rows / max_rows
        indices = sorted({int(i * step) for i in range(max_rows)})
    max_length = int(cfg.data.max_length)
    broken: list[str] = []
    long: list[tuple[int, int]] = []
    unmasked: list[int] = []
    longest = 0
    for i in indices:
        try:
            with contextlib.redirect_stdout(sys.stderr):
                item = dataset[i]
        except Exception as exc:  # noqa: BLE001 - verl asserts on placeholders/images, raises on length
            text = " ".join(str(exc).split())
            if "larger than" in text:
                long.append((i, int(text.split("sequence_length=")[1].split()[0]) if "sequence_length=" in text else -1))
            else:
                broken.append(f"row {i}: {type(exc).__name__}: {text[:200]}")
            continue
        length = int(item["input_ids"].shape[0])
        longest = max(longest, length)
        if length > max_length:
            long.append((i, length))
        if int(item["loss_mask"].sum()) == 0:
            unmasked.append(i)
    if broken:
        report.fail(
            f"{len(broken)} row(s) of {file} fail in verl's MultiTurnSFTDataset: " + "; ".join(broken[:_SHOWN]),
            "rewrite the file with `editjudge distill` (one <image> per image, system/user/assistant messages)",
        )
    if long:
        shown = ", ".join(f"row {i} ({n} tokens)" for i, n in long[:_SHOWN])
        worst = max(n for _, n in long)
        report.fail(
            f"{len(long)} row(s) of {file} are longer than data.max_length={max_length}: {shown}",
            f"raise data.max_length to {worst} or more (and data.max_token_len_per_gpu with it), or keep shorter "
            "responses (distill --max-new-tokens) / smaller images (prepare --max-image-tokens)",
        )
    if unmasked:
        report.fail(f"{len(unmasked)} row(s) of {file} have no assistant tokens to learn (rows {unmasked[:_SHOWN]})",
                    "every row needs the teacher's response as its last (assistant) message: rewrite with distill")
    if not (broken or long or unmasked):
        report.passed.append(f"SFT data {file}: {rows} rows through verl's MultiTurnSFTDataset, longest {longest} "
                             f"tokens <= data.max_length {max_length}")
    return rows


def check_sft_rows(cfg: Any, rows: int, report: Report) -> None:
    """At least one global batch per GPU group (verl drops the last incomplete batch)."""
    batch, world = int(cfg.data.train_batch_size), _world(cfg)
    usable = (rows // world) * world
    if usable < batch:
        fit = max(world, (rows // world) * world)
        report.fail(
            f"{rows} SFT row(s) do not fill one global batch of data.train_batch_size={batch}: verl drops incomplete "
            "batches, so training would run 0 steps",
            f"set data.train_batch_size={fit} (a multiple of the {world} GPU(s)) or distil more rows "
            "(more --samples, a larger --keep, or more train rows)",
        )
    else:
        steps = (rows // world) // (batch // world) * int(cfg.trainer.total_epochs)
        report.passed.append(f"{rows} rows: {steps} optimiser step(s) over {cfg.trainer.total_epochs} epoch(s)")


def run_sft_checks(cfg: Any, *, max_rows: int | None = None, init_adapter: str | None = None) -> Report:
    """All SFT checks, in the order a user would fix them."""
    report = Report()
    check_sft_config(cfg, report)
    model_config = check_sft_model(cfg, report)
    from editjudge.train.init_adapter import check_into

    check_into(report, init_adapter, cfg.model, "model.")
    if model_config is None:
        return report
    files = cfg.data.train_files
    files = [files] if isinstance(files, str) else list(files or [])
    rows = sum(check_sft_data(f, cfg, model_config, report, max_rows=max_rows) for f in files)
    val = cfg.data.get("val_files")
    for f in ([val] if isinstance(val, str) else list(val or [])):
        check_sft_data(f, cfg, model_config, report, max_rows=max_rows)
    if rows:
        check_sft_rows(cfg, rows, report)
    return report
