"""Judge throughput: ``Judge.score_many`` pairs/s with batching (left-padded ``generate``) against one pair at a time.

Both modes score the same pairs, in the same run, through the whole judge path (image loading + sizing as in
training, prompt, ``generate`` with raw logits, answer-step probabilities, parsing). A random-init model never stops
early, so every row generates ``--max-new-tokens`` in both modes. Each figure is the best of ``--repeat`` runs.

    # GPU: Qwen2.5-VL-3B's architecture (sizes from the field notes) at random init, bf16; nothing is downloaded
    python benchmarks/bench_judge_throughput.py --pairs 32 --batch-size 16 --max-new-tokens 128
    # CPU: the tiny offline model
    python benchmarks/bench_judge_throughput.py --tiny --pairs 16 --batch-size 8 --max-new-tokens 32
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from typing import Any

from editjudge.judge import Judge
from editjudge.judge.backends.transformers import TransformersBackend
from editjudge.synthetic import write_synthetic_edits

# Qwen2.5-VL-3B-Instruct (field notes): text 2048 hidden, 36 layers, 16/2 heads, 11008 MLP, vocab 151936;
# vision depth 32, hidden 1280, patch 14, merge 2.
QWEN25_VL_3B_TEXT = {
    "hidden_size": 2048, "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 2,
    "intermediate_size": 11008, "vocab_size": 151936, "max_position_embeddings": 128000, "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
    "tie_word_embeddings": True,
}
QWEN25_VL_3B_VISION = {
    "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 2048,
    "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31], "in_channels": 3, "tokens_per_second": 2,
}
QWEN_MIN_PIXELS, QWEN_MAX_PIXELS = 4 * 28 * 28, 16384 * 28 * 28


def build_3b_backend(batch_size: int, device: str) -> TransformersBackend:
    """Qwen2.5-VL-3B at random init in bf16 on ``device``, with the offline tokenizer and Qwen's pixel limits."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    from editjudge import tiny

    tokenizer = tiny.build_tokenizer()
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(
            min_pixels=QWEN_MIN_PIXELS, max_pixels=QWEN_MAX_PIXELS,
            size={"shortest_edge": QWEN_MIN_PIXELS, "longest_edge": QWEN_MAX_PIXELS},
        ),
        tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(), chat_template=tiny.CHAT_TEMPLATE,
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in tiny.SPECIAL_TOKENS}
    text = dict(QWEN25_VL_3B_TEXT, bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"])
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=QWEN25_VL_3B_VISION, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=text["eos_token_id"], pad_token_id=text["pad_token_id"])
    params = sum(p.numel() for p in model.parameters())
    print(f"Qwen2.5-VL-3B architecture at random init: {params / 1e9:.2f} B parameters on {device}", file=sys.stderr)
    return TransformersBackend.from_loaded(model, processor, batch_size=batch_size)


def build_tiny_backend(batch_size: int, work: str) -> TransformersBackend:
    from editjudge.tiny import build_tiny_model

    path = build_tiny_model(os.path.join(work, "tiny"))
    return TransformersBackend(str(path), batch_size=batch_size, device="cpu")


def _time(judge: Judge, items: list[tuple[str, str, str]], repeat: int) -> tuple[float, list[Any]]:
    best, results = float("inf"), []
    for _ in range(repeat):
        if judge.backend.model.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        start = time.perf_counter()
        results = judge.score_many(items, progress=False)
        best = min(best, time.perf_counter() - start)
    return best, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tiny offline model on CPU instead of the 3B on GPU")
    parser.add_argument("--pairs", type=int, default=32, help="edits to score per mode")
    parser.add_argument("--batch-size", type=int, default=16, help="edits per generate call in the batched mode")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="tokens generated per edit")
    parser.add_argument("--image-size", type=int, default=448, help="side of the synthetic images (3B mode)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per mode; the best counts")
    parser.add_argument("--device", default="cuda", help="device of the 3B model")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as work:
        size = 64 if args.tiny else args.image_size
        write_synthetic_edits(os.path.join(work, "edits"), n_sources=max(1, args.pairs // 4), candidates_per_source=4,
                              size=size, photo_like=True)
        outputs = sorted(glob.glob(os.path.join(work, "edits", "**", "*_output.jpg"), recursive=True))[: args.pairs]
        items = []
        for edited in outputs:
            with open(edited.replace("_output.jpg", "_meta.json"), encoding="utf-8") as handle:
                items.append((edited.replace("_output.jpg", "_input.jpg"), edited, json.load(handle)["instruction"]))
        backend = build_tiny_backend(args.batch_size, work) if args.tiny else build_3b_backend(args.batch_size, args.device)
        judge = Judge.from_backend(backend, max_new_tokens=args.max_new_tokens)
        judge.score_many(items[: min(len(items), args.batch_size)])  # warm-up (kernels, allocator, caches)
        figures: dict[str, Any] = {"model": "tiny" if args.tiny else "qwen2.5-vl-3b-random", "pairs": len(items),
                                   "max_new_tokens": args.max_new_tokens, "device": str(backend.model.device)}
        for name, batch in (("unbatched", 1), ("batched", args.batch_size)):
            backend.batch_size = batch
            seconds, results = _time(judge, items, args.repeat)
            figures[name] = {"batch_size": batch, "seconds": round(seconds, 3), "pairs_per_s": round(len(items) / seconds, 3),
                             "errors": sum(r.is_failure for r in results)}
        figures["speedup"] = round(figures["batched"]["pairs_per_s"] / figures["unbatched"]["pairs_per_s"], 2)
    print(f"{'mode':<10} {'batch':>5} {'seconds':>8} {'pairs/s':>8}")
    for name in ("unbatched", "batched"):
        f = figures[name]
        print(f"{name:<10} {f['batch_size']:>5} {f['seconds']:>8.2f} {f['pairs_per_s']:>8.2f}")
    print(f"batched / unbatched: {figures['speedup']}x  ({figures['model']}, {figures['pairs']} pairs, "
          f"{figures['max_new_tokens']} new tokens each, {figures['device']})")
    if args.json:
        from editjudge.data.writer import atomic_write_text

        atomic_write_text(args.json, json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
