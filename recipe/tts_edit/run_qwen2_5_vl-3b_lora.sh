#!/usr/bin/env bash
# The seed's launch script, now a thin shim over `editjudge train` with the `qwen2_5_vl_3b_lora` preset:
# the seed's settings written as verl 0.9.1 keys, checked on CPU (verl's Hydra config + validate_config, data,
# model, reward, LoRA rank) before Ray and the GPUs start.
#
#   bash recipe/tts_edit/run_qwen2_5_vl-3b_lora.sh --dry-run                  # pre-flight + print the verl command
#   bash recipe/tts_edit/run_qwen2_5_vl-3b_lora.sh                            # train
#   bash recipe/tts_edit/run_qwen2_5_vl-3b_lora.sh -- trainer.total_epochs=3  # extra verl overrides after `--`
#
# Environment (defaults in brackets):
#   DATA_DIR   folder with train.parquet / test.parquet from tts_rm.py or `editjudge prepare` [~/data/tts_edit]
#   MODEL      local Qwen2.5-VL-3B-Instruct folder or hub id                       [Qwen/Qwen2.5-VL-3B-Instruct]
#   N_GPUS     GPUs per node [preset: 4]     NNODES  nodes of the Ray cluster [preset: 1]
#   OUTPUT_DIR checkpoints + dumps + TensorBoard [unset: ./rollout_generations, ./validation_generations, checkpoints/]
#   DRY_RUN=1  same as --dry-run             WANDB_MODE  [offline, as in the seed]
# Other `editjudge train` flags (--resume, --preflight-rows N, ...) pass through; see `editjudge train --help`.
set -euo pipefail

export WANDB_MODE="${WANDB_MODE:-offline}"
export PYTHONUNBUFFERED=1

DATA_DIR="${DATA_DIR:-$HOME/data/tts_edit}"
MODEL="${MODEL:-Qwen/Qwen2.5-VL-3B-Instruct}"

if command -v editjudge >/dev/null 2>&1; then
    EDITJUDGE=(editjudge)
else
    EDITJUDGE=("${PYTHON:-python3}" -m editjudge.cli)
fi

args=(train --engine verl --preset qwen2_5_vl_3b_lora
      --train-files "$DATA_DIR/train.parquet" --val-files "$DATA_DIR/test.parquet" --model "$MODEL")
if [[ -n "${N_GPUS:-}" ]]; then args+=(--gpus "$N_GPUS"); fi
if [[ -n "${NNODES:-}" ]]; then args+=(--nodes "$NNODES"); fi
if [[ -n "${OUTPUT_DIR:-}" ]]; then args+=(--output-dir "$OUTPUT_DIR"); fi
if [[ "${DRY_RUN:-0}" == "1" ]]; then args+=(--dry-run); fi

exec "${EDITJUDGE[@]}" "${args[@]}" "$@"
