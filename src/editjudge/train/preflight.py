"""CPU pre-flight for verl runs: everything that can be checked before Ray and the GPUs start.

The config is composed with verl's own Hydra config (``verl/trainer/config/ppo_trainer.yaml``) and checked with
verl's ``validate_config``; on top of that come the checks verl only makes on the GPUs, or never: ignored legacy
keys, the reward function, the model's config and processor, the parquet schema, the ``<image>`` placeholder
counts, prompt lengths measured with verl's own multimodal path, and the LoRA rank vLLM accepts.
Every problem carries its fix.

The checks live in four seams — :mod:`~editjudge.train.preflight_config` (keys, values, reward, loggers),
:mod:`~editjudge.train.preflight_batches` (batch splits and their joint fix),
:mod:`~editjudge.train.preflight_data` (parquet files) and :mod:`~editjudge.train.preflight_model` (the model
folder) — and this module runs them in order. It imports nothing from the launch code (:mod:`editjudge.train.verl`);
the launch code depends on it.
"""

from __future__ import annotations

import os
from typing import Any

from editjudge.train.preflight_config import (  # noqa: F401  (re-exported: the pre-flight's public names)
    POSITIVE_KEYS, VLLM_LORA_RANKS_FALLBACK, base_config, batch_problems, check_environment, check_legacy_keys,
    check_loggers, check_resume, check_reward, check_steps, check_values, check_verl_config, compose, config_keys,
    legacy_replacement, lora_rank, nearest_keys, value_problems, verl_config_dir, vllm_lora_ranks, wandb_logged_in,
    wandb_offline_if_no_login,
)
from editjudge.train.preflight_data import (  # noqa: F401
    FAST_CHECK_ROWS, FastLength, _as_list, check_answer_room, check_data_file, check_train_val_overlap, label_problems,
    prompt_length,
)
from editjudge.train.preflight_model import check_model, check_model_folder, resolve_model_dir  # noqa: F401
from editjudge.train.preflight_report import PreflightError, Report  # noqa: F401


def run_checks(cfg: Any, *, launching: bool, max_rows: int | None = None) -> Report:
    """All pre-flight checks on a composed config; ``launching`` adds the checks of the launch environment."""
    report = Report()
    check_legacy_keys(cfg, report)
    check_verl_config(cfg, report)
    check_reward(cfg, report)
    check_loggers(cfg, report)
    check_resume(cfg, report)
    files = {"train": _as_list(cfg.data.get("train_files")), "val": _as_list(cfg.data.get("val_files"))}
    default_data = "~/data/rlhf/gsm8k/"
    for split, paths in files.items():
        if not paths or any(p.startswith(default_data) for p in paths):
            report.fail(
                f"no {split} files given (verl would read its example {default_data}…)",
                f"pass --{split}-files <prepared>/{'train' if split == 'train' else 'test'}.parquet",
            )
            files[split] = []
    processor = check_model(cfg, report, needs_vision=True)
    rows = {split: sum(check_data_file(os.path.expanduser(p), cfg, processor, report, max_rows=max_rows) for p in paths)
            for split, paths in files.items()}
    check_answer_room(cfg, [os.path.expanduser(p) for p in files["train"]], processor, report)
    check_train_val_overlap(files["train"], files["val"], report)
    check_steps(cfg, rows["train"], report)
    if launching:
        check_environment(cfg, report)
    return report
