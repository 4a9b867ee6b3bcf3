"""Judge throughput: ``Judge.score_many`` pairs/s with batching (left-padded ``generate``) against one pair at a time.

Both modes score the same pairs, in the same run, through the whole judge path (image loading + sizing as in
training, prompt, ``generate`` with raw logits, answer-step probabilities, parsing). A random-init model never stops
early, so every row generates ``--max-new-tokens`` in both modes. Each figure is the best of ``--repeat`` runs.
``--batch-sizes 1 8 32`` times several batch sizes instead (the first is the baseline), each with its peak GPU memory.

    # GPU: Qwen2.5-VL-3B's architecture (sizes from the field notes) at random init, bf16; nothing is downloaded
    python benchmarks/bench_judge_throughput.py --pairs 32 --batch-size 16 --max-new-tokens 128
    # CPU: the tiny offline model
    python benchmarks/bench_judge_throughput.py --tiny --pairs 16 --batch-size 8 --max-new-tokens 32
    # GPU, the GPU check's settings (scripts/gpu_check.sh)
    python benchmarks/bench_judge_throughput.py --pairs 32 --batch-sizes 1 8 32 --max-new-tokens 64 --repeat 1
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

def build_3b_backend(batch_size: int, device: str) -> TransformersBackend:
    """Qwen2.5-VL-3B at random init in bf16 on ``device``, with the offline tokenizer and Qwen's pixel limits."""
    from editjudge import tiny

    processor, model = tiny.build_qwen2_5_vl_3b(device)
    params = sum(p.numel() for p in model.parameters())
    print(f"Qwen2.5-VL-3B architecture at random init: {params / 1e9:.2f} B parameters on {device}", file=sys.stderr)
    return TransformersBackend.from_loaded(model, processor, batch_size=batch_size)


def build_tiny_backend(batch_size: int, work: str) -> TransformersBackend:
    from editjudge.tiny import build_tiny_model

    path = build_tiny_model(os.path.join(work, "tiny"))
    return TransformersBackend(str(path), batch_size=batch_size, device="cpu")


def _peak_reset(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device) -> float | None:
    if device.type != "cuda":
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 3)


def _time(judge: Judge, items: list[tuple[str, str, str]], repeat: int) -> tuple[float, list[Any]]:
    best, results = float("inf"), []
    for _ in range(repeat):
        if judge.backend.model.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        start = time.perf_counter()
        results = judge.score_many(items, progress=False)
        if judge.backend.model.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tiny offline model on CPU instead of the 3B on GPU")
    parser.add_argument("--pairs", type=int, default=32, help="edits to score per mode")
    parser.add_argument("--batch-size", type=int, default=16, help="edits per generate call in the batched mode")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="time these batch sizes instead of 1 and --batch-size (the first is the baseline)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="tokens generated per edit")
    parser.add_argument("--image-size", type=int, default=448, help="side of the synthetic images (3B mode)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per mode; the best counts")
    parser.add_argument("--device", default="cuda", help="device of the 3B model")
    parser.add_argument("--json", "--out", dest="json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.repeat < 1 or min(args.batch_sizes or [args.batch_size]) < 1:
        parser.error("--pairs, --repeat and batch sizes must be >= 1")
    if not args.tiny and args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("error: the 3B benchmark needs a CUDA GPU; run with --tiny on a CPU (or --device cpu, slowly)",
                  file=sys.stderr)
            return 2
    modes = ([(f"batch_{b}", b) for b in args.batch_sizes] if args.batch_sizes
             else [("unbatched", 1), ("batched", args.batch_size)])

    with tempfile.TemporaryDirectory() as work:
        size = 64 if args.tiny else args.image_size
        write_synthetic_edits(os.path.join(work, "edits"), n_sources=max(1, -(-args.pairs // 4)),
                              candidates_per_source=4, size=size, photo_like=True)
        outputs = sorted(glob.glob(os.path.join(work, "edits", "**", "*_output.jpg"), recursive=True))[: args.pairs]
        items = []
        for edited in outputs:
            with open(edited.replace("_output.jpg", "_meta.json"), encoding="utf-8") as handle:
                items.append((edited.replace("_output.jpg", "_input.jpg"), edited, json.load(handle)["instruction"]))
        largest = max(b for _, b in modes)
        backend = build_tiny_backend(largest, work) if args.tiny else build_3b_backend(largest, args.device)
        device = backend.model.device
        judge = Judge.from_backend(backend, max_new_tokens=args.max_new_tokens)
        judge.score_many(items[: min(len(items), largest)])  # warm-up (kernels, allocator, caches)
        figures: dict[str, Any] = {"model": "tiny" if args.tiny else "qwen2.5-vl-3b-random", "pairs": len(items),
                                   "max_new_tokens": args.max_new_tokens, "device": str(device),
                                   "device_name": _device_name(device), "image_size": size, "repeat": args.repeat,
                                   "dtype": str(next(backend.model.parameters()).dtype).removeprefix("torch."),
                                   "modes": [name for name, _ in modes], "complete": False}
        for name, batch in modes:
            backend.batch_size = batch
            _peak_reset(device)
            seconds, results = _time(judge, items, args.repeat)
            figures[name] = {"batch_size": batch, "seconds": round(seconds, 3),
                             "pairs_per_s": round(len(items) / seconds, 3),
                             "errors": sum(r.is_failure for r in results), "peak_gpu_memory_gib": _peak_gib(device)}
            _write(args.json, figures)  # a run stopped by a time cap keeps the modes it finished
        base = figures[modes[0][0]]["pairs_per_s"]
        for name, _ in modes:
            figures[name]["vs_baseline"] = round(figures[name]["pairs_per_s"] / base, 2)
        figures["speedup"] = figures[modes[-1][0]]["vs_baseline"]
        figures["complete"] = True
    print(f"{'mode':<10} {'batch':>5} {'seconds':>8} {'pairs/s':>8} {'vs base':>8} {'peak GiB':>9}")
    for name, _ in modes:
        f = figures[name]
        memory = "-" if f["peak_gpu_memory_gib"] is None else f"{f['peak_gpu_memory_gib']:.1f}"
        print(f"{name:<10} {f['batch_size']:>5} {f['seconds']:>8.2f} {f['pairs_per_s']:>8.2f} "
              f"{f['vs_baseline']:>7.2f}x {memory:>9}")
    print(f"{modes[-1][0]} / {modes[0][0]}: {figures['speedup']}x  ({figures['model']}, {figures['pairs']} pairs, "
          f"{figures['max_new_tokens']} new tokens each, {figures['device']})")
    _write(args.json, figures)
    return 0


def _write(path: str | None, figures: dict[str, Any]) -> None:
    if path:
        from editjudge.data.writer import atomic_write_text

        atomic_write_text(path, json.dumps(figures, indent=2) + "\n")


def _device_name(device) -> str:
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return "CPU"


if __name__ == "__main__":
    sys.exit(main())
