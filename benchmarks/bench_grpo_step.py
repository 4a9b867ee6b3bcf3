"""Time GRPO steps of editjudge's TRL engine: samples/s and peak GPU memory at the preset's LoRA settings.

Default (needs one CUDA GPU): the real Qwen2.5-VL-3B-Instruct *architecture* built from its config with random
weights in bf16 (no download), LoRA r128 / alpha 32 on all linear layers of the language model, vision tower
excluded, 4 generations per prompt — the settings of the ``qwen2_5_vl_3b_lora`` preset.

``--tiny``: the tiny offline Qwen2.5-VL on CPU (one thread), to check the script and compare batch sizes anywhere.

Each configuration of ``--prompts-per-step`` runs in the same process on the same model, so the figures compare as
ratios against the first one (the baseline). Completions always run to ``--max-completion-length`` (a random model
rarely stops early), so samples/s measure the full generation + scoring + update loop at that length.

    python benchmarks/bench_grpo_step.py --tiny                       # CPU, ~1 min
    python benchmarks/bench_grpo_step.py --prompts-per-step 1 2 4     # one GPU, 3B architecture
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


def time_config(model, processor, data: Path, work: Path, prompts_per_step: int, args: argparse.Namespace,
                preset: dict[str, Any]) -> tuple[dict[str, Any], Any]:
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

    settings = engine.settings_from_overrides(
        preset, model="benchmark", output_dir=str(work / f"run_{prompts_per_step}"),
        per_device_batch_size=prompts_per_step * int(preset["actor_rollout_ref.rollout.n"]),
        max_completion_length=args.max_completion_length, max_steps=args.warmup + args.steps, seed=0,
    )
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    result = engine.train(settings, data, model=model, processor=processor, callbacks=[StepTimer()])
    measured = durations[args.warmup:]
    step_s = statistics.median(measured)
    completions = settings.batch_size
    grpo = result.grpo_records()
    lengths = [r.get("completions/mean_length") for r in grpo[args.warmup:] if r.get("completions/mean_length")]
    trainable = sum(p.numel() for p in result.model.parameters() if p.requires_grad)
    figures = {
        "prompts_per_step": prompts_per_step,
        "completions_per_step": completions,
        "step_seconds_median": step_s,
        "step_seconds": measured,
        "samples_per_s": completions / step_s,
        "completion_tokens_per_s": (statistics.mean(lengths) * completions / step_s) if lengths else None,
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "trainable_params": trainable,
    }
    return figures, result.model.unload()  # PEFT's unload: the base model back, ready for the next configuration


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU instead of the 3B architecture on GPU")
    parser.add_argument("--prompts-per-step", type=int, nargs="+", default=[1, 4],
                        help="configurations to time; the first is the baseline of the ratios")
    parser.add_argument("--steps", type=int, default=4, help="measured GRPO steps per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="GRPO steps run first and not measured")
    parser.add_argument("--max-completion-length", type=int, default=None,
                        help="tokens per completion (default: 256 on GPU, 20 with --tiny)")
    parser.add_argument("--image-tokens", type=int, default=256, help="image tokens per image (3B mode)")
    parser.add_argument("--preset", default="qwen2_5_vl_3b_lora", help="preset whose LoRA / rollout.n settings apply")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    import torch

    from editjudge.train.presets import load_preset

    if not args.tiny and not torch.cuda.is_available():
        print("error: the 3B benchmark needs a CUDA GPU; run with --tiny on a CPU", file=sys.stderr)
        return 2
    args.max_completion_length = args.max_completion_length or (20 if args.tiny else 256)
    preset = dict(load_preset(args.preset).overrides)
    preset["actor_rollout_ref.actor.optim.lr"] = 1e-5  # any lr: speed and memory do not depend on it
    if args.tiny:
        torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench_grpo_") as tmp:
        work = Path(tmp)
        processor, model = build_tiny(work) if args.tiny else build_3b(args.image_tokens)
        rows = max(args.prompts_per_step) * (args.warmup + args.steps)
        data = write_parquet(work / "train.parquet", rows, image_size=64 if args.tiny else 448)
        results = []
        for prompts_per_step in args.prompts_per_step:
            figures, model = time_config(model, processor, data, work, prompts_per_step, args, preset)
            results.append(figures)
    base = results[0]["samples_per_s"]
    device = torch.cuda.get_device_name() if not args.tiny else "CPU (1 thread)"
    print(f"\nGRPO step benchmark: {'tiny Qwen2.5-VL' if args.tiny else 'Qwen2.5-VL-3B architecture (random, bf16)'}"
          f" on {device}; LoRA r{preset['actor_rollout_ref.model.lora_rank']} alpha "
          f"{preset['actor_rollout_ref.model.lora_alpha']}, n={preset['actor_rollout_ref.rollout.n']}, "
          f"{args.max_completion_length} tokens per completion")
    print("prompts/step  completions/step  step s (median)  samples/s  vs baseline  peak GPU GiB  trainable")
    for r in results:
        memory = "-" if r["peak_gpu_memory_gib"] is None else f"{r['peak_gpu_memory_gib']:.1f}"
        print(f"{r['prompts_per_step']:>12}  {r['completions_per_step']:>16}  {r['step_seconds_median']:>15.2f}  "
              f"{r['samples_per_s']:>9.2f}  {r['samples_per_s'] / base:>10.2f}x  {memory:>12}  "
              f"{r['trainable_params'] / 1e6:.2f} M")
    if args.out:
        payload = {"device": device, "tiny": args.tiny, "max_completion_length": args.max_completion_length,
                   "preset": args.preset, "results": results}
        atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
