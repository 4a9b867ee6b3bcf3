"""Time GRPO steps of editjudge's TRL engine: steps/s, samples/s and peak GPU memory at the preset's LoRA settings.

Default (needs one CUDA GPU): the real Qwen2.5-VL-3B-Instruct *architecture* built from its config with random
weights in bf16 (no download), LoRA r128 / alpha 32 on all linear layers of the language model, vision tower
excluded, 4 generations per prompt — the settings of the ``qwen2_5_vl_3b_lora`` preset.

``--tiny``: the tiny offline Qwen2.5-VL on CPU (one thread), to check the script and compare batch sizes anywhere.

Each configuration (every ``--prompts-per-step`` with every ``--gradient-checkpointing`` setting) runs in the same
process on the same model, so the figures compare as ratios against the first one (the baseline). Completions always
run to ``--max-completion-length`` (a random model rarely stops early), so samples/s measure the full generation +
scoring + update loop at that length. ``--out`` is rewritten after each configuration, so a run stopped by a time cap
keeps the configurations it finished.

    python benchmarks/bench_grpo_step.py --tiny                       # CPU, ~1 min
    python benchmarks/bench_grpo_step.py --prompts-per-step 1 2 4     # one GPU, 3B architecture
    python benchmarks/bench_grpo_step.py --image-size 1024 --image-tokens 1369 --gradient-checkpointing off on
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from editjudge import prompts
from editjudge.data.writer import atomic_write_text
from editjudge.train import trl as engine

def build_3b(image_tokens: int, device: str = "cuda"):
    """Qwen2.5-VL-3B's architecture at random init (bf16) with a processor that gives ``image_tokens`` per image."""
    from editjudge import tiny

    pixels = image_tokens * 28 * 28
    return tiny.build_qwen2_5_vl_3b(device, min_pixels=pixels, max_pixels=pixels)


def build_tiny(work: Path):
    from editjudge.tiny import build_tiny_model

    return engine.load_model(build_tiny_model(work / "tiny-qwen2_5-vl"))


def write_parquet(path: Path, rows: int, image_size: int) -> Path:
    """Contract-3 rows: the project's prompt, a source and an edited image (noise PNGs), a label."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(0)

    def png() -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (image_size, image_size, 3), dtype=np.uint8)).save(buffer, "PNG")
        return buffer.getvalue()

    table = [
        {"data_source": prompts.DATA_SOURCE, "prompt": prompts.build_messages("make the circle red"),
         "images": [{"bytes": png()}, {"bytes": png()}], "ability": prompts.ABILITY,
         "reward_model": {"style": "rule", "ground_truth": str(i % 10)},
         "extra_info": {"split": "train", "index": i, "instruction": "make the circle red"}}
        for i in range(rows)
    ]
    pq.write_table(pa.Table.from_pylist(table), path)
    return path


def _is_checkpointing(model) -> bool:
    """Whether gradient checkpointing is really on in ``model`` (a PEFT model or the base model)."""
    for module in (model, getattr(model, "base_model", None), getattr(getattr(model, "base_model", None), "model", None)):
        flag = getattr(module, "is_gradient_checkpointing", None)
        if isinstance(flag, bool):
            return flag
    return False


def time_config(model, processor, data: Path, work: Path, prompts_per_step: int, checkpointing: bool,
                args: argparse.Namespace, preset: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Run warmup + measured GRPO steps; return the figures and the base model with the LoRA removed."""
    import torch
    from transformers import TrainerCallback

    durations: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            durations.append(time.perf_counter() - self.started)

    if not checkpointing and getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()  # the Trainer turns it on but never off again
        if hasattr(model, "_require_grads_hook"):
            model.disable_input_require_grads()
    name = f"run_{prompts_per_step}_{'gc' if checkpointing else 'nogc'}"
    settings = engine.settings_from_overrides(
        preset, model="benchmark", output_dir=str(work / name),
        per_device_batch_size=prompts_per_step * int(preset["actor_rollout_ref.rollout.n"]),
        max_completion_length=args.max_completion_length, max_steps=args.warmup + args.steps, seed=0,
        gradient_checkpointing=checkpointing,
    )
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    result = engine.train(settings, data, model=model, processor=processor, callbacks=[StepTimer()])
    measured = durations[args.warmup:] or durations
    step_s = statistics.median(measured)
    completions = settings.batch_size
    grpo = result.grpo_records()
    lengths = [r.get("completions/mean_length") for r in grpo[args.warmup:] if r.get("completions/mean_length")]
    trainable = sum(p.numel() for p in result.model.parameters() if p.requires_grad)
    gpu = torch.cuda.is_available()
    figures = {
        "prompts_per_step": prompts_per_step,
        "completions_per_step": completions,
        "gradient_checkpointing": _is_checkpointing(result.model),
        "gradient_checkpointing_requested": checkpointing,
        "measured_steps": len(measured),
        "step_seconds_median": step_s,
        "step_seconds": measured,
        "steps_per_s": 1.0 / step_s,
        "samples_per_s": completions / step_s,
        "completion_tokens_per_s": (statistics.mean(lengths) * completions / step_s) if lengths else None,
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if gpu else None,
        "peak_gpu_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if gpu else None,
        "trainable_params": trainable,
    }
    return figures, result.model.unload()  # PEFT's unload: the base model back, ready for the next configuration


def _on_off(value: str) -> bool:
    if value.lower() in ("on", "true", "1", "yes"):
        return True
    if value.lower() in ("off", "false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r}: use on or off")


def _write(path: Path | None, payload: dict[str, Any]) -> None:
    if path is not None:
        atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU instead of the 3B architecture on GPU")
    parser.add_argument("--prompts-per-step", type=int, nargs="+", default=[1, 4],
                        help="configurations to time; the first is the baseline of the ratios")
    parser.add_argument("--gradient-checkpointing", type=_on_off, nargs="+", default=None, metavar="on|off",
                        help="settings to time for each prompts-per-step, in this order (default: on with a GPU, off "
                             "on CPU, as the engine does); each result records whether it really was on")
    parser.add_argument("--steps", type=int, default=4, help="measured GRPO steps per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="GRPO steps run first and not measured")
    parser.add_argument("--max-completion-length", type=int, default=None,
                        help="tokens per completion (default: 256 on GPU, 20 with --tiny)")
    parser.add_argument("--image-tokens", type=int, default=256,
                        help="image tokens per image (3B mode: the processor resizes every image to this many)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="side of the synthetic square images in pixels (default: 448 on GPU, 64 with --tiny)")
    parser.add_argument("--preset", default="qwen2_5_vl_3b_lora", help="preset whose LoRA / rollout.n settings apply")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here (rewritten after each configuration)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    import torch

    from editjudge.train.presets import load_preset

    if not args.tiny and not torch.cuda.is_available():
        print("error: the 3B benchmark needs a CUDA GPU; run with --tiny on a CPU", file=sys.stderr)
        return 2
    args.max_completion_length = args.max_completion_length or (20 if args.tiny else 256)
    image_size = args.image_size or (64 if args.tiny else 448)
    checkpointing = list(dict.fromkeys(args.gradient_checkpointing or [not args.tiny]))
    preset = dict(load_preset(args.preset).overrides)
    preset["actor_rollout_ref.actor.optim.lr"] = 1e-5  # any lr: speed and memory do not depend on it
    if args.tiny:
        torch.set_num_threads(1)
    device = torch.cuda.get_device_name() if not args.tiny else "CPU (1 thread)"
    payload: dict[str, Any] = {
        "device": device, "tiny": args.tiny, "max_completion_length": args.max_completion_length,
        "preset": args.preset, "lora_rank": preset["actor_rollout_ref.model.lora_rank"],
        "lora_alpha": preset["actor_rollout_ref.model.lora_alpha"],
        "exclude_modules": preset.get("actor_rollout_ref.model.exclude_modules"),
        "num_generations": int(preset["actor_rollout_ref.rollout.n"]), "images_per_prompt": 2,
        "image_size": image_size, "image_tokens_per_image": None if args.tiny else args.image_tokens,
        "warmup_steps": args.warmup, "complete": False, "results": [],
    }
    results: list[dict[str, Any]] = payload["results"]
    with tempfile.TemporaryDirectory(prefix="bench_grpo_") as tmp:
        work = Path(tmp)
        processor, model = build_tiny(work) if args.tiny else build_3b(args.image_tokens)
        payload["dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
        payload["total_params"] = sum(p.numel() for p in model.parameters())
        rows = max(args.prompts_per_step) * (args.warmup + args.steps)
        data = write_parquet(work / "train.parquet", rows, image_size=image_size)
        for prompts_per_step in args.prompts_per_step:
            for gc in checkpointing:
                figures, model = time_config(model, processor, data, work, prompts_per_step, gc, args, preset)
                results.append(figures)
                _write(args.out, payload)
    payload["complete"] = True
    base = results[0]["samples_per_s"]
    print(f"\nGRPO step benchmark: {'tiny Qwen2.5-VL' if args.tiny else 'Qwen2.5-VL-3B architecture (random, bf16)'}"
          f" on {device}; LoRA r{payload['lora_rank']} alpha {payload['lora_alpha']}, n={payload['num_generations']}, "
          f"{args.max_completion_length} tokens per completion, two {image_size}px images per prompt")
    print("prompts/step  completions/step  grad ckpt  step s (median)  steps/s  samples/s  vs baseline  peak GPU GiB"
          "  trainable")
    for r in results:
        memory = "-" if r["peak_gpu_memory_gib"] is None else f"{r['peak_gpu_memory_gib']:.1f}"
        print(f"{r['prompts_per_step']:>12}  {r['completions_per_step']:>16}  "
              f"{'on' if r['gradient_checkpointing'] else 'off':>9}  {r['step_seconds_median']:>15.2f}  "
              f"{r['steps_per_s']:>7.3f}  {r['samples_per_s']:>9.2f}  {r['samples_per_s'] / base:>10.2f}x  "
              f"{memory:>12}  {r['trainable_params'] / 1e6:.2f} M")
    _write(args.out, payload)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
