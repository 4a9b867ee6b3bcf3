"""CPU threads for the TRL engine: seconds per GRPO step of the tiny Qwen2.5-VL at 1, 2, … torch threads.

Each thread count runs in its own subprocess (torch fixes its OpenMP pool per process) on the same model, data and
seed; the figures compare as ratios against the first count (the baseline). This is what `editjudge train
--engine trl`'s default (``trl.cpu_threads``: one thread for a model under 100 M parameters) rests on.

    python benchmarks/bench_trl_threads.py                      # hidden 256 (the demo's size), threads 1 2
    python benchmarks/bench_trl_threads.py --hidden 64 --threads 1 2 4 --steps 6 --out threads.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _png(colour: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (56, 56), colour).save(buffer, "PNG")
    return buffer.getvalue()


def write_data(path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from editjudge import prompts

    rows = [{
        "data_source": prompts.DATA_SOURCE, "prompt": prompts.build_messages("make the square red"),
        "images": [{"bytes": _png("blue")}, {"bytes": _png("red" if i % 2 else "blue")}],
        "ability": prompts.ABILITY, "reward_model": {"style": "rule", "ground_truth": "7" if i % 2 else "1"},
    } for i in range(16)]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def child(model: str, data: str, threads: int, steps: int, completion: int) -> None:
    """One measurement: ``steps`` GRPO steps after one warm-up step, at ``threads`` torch threads."""
    import torch
    from transformers import TrainerCallback

    from editjudge.train import trl as engine

    torch.set_num_threads(threads)
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            times.append(time.perf_counter() - self.start)

    with tempfile.TemporaryDirectory() as out:
        settings = engine.TrlSettings(model=model, output_dir=out, lora_rank=16, lora_alpha=32, num_generations=8,
                                      per_device_batch_size=16, max_completion_length=completion,
                                      max_steps=steps + 1, learning_rate=1e-4, cpu_threads=threads)
        engine.train(settings, data, callbacks=[Clock()])
    per_step = sorted(times[1:])[len(times[1:]) // 2]  # median after the warm-up step
    print(json.dumps({"threads": threads, "seconds_per_step": per_step}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=256, help="hidden size of the tiny model (demo: 256)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts; first = baseline")
    parser.add_argument("--steps", type=int, default=4, help="timed GRPO steps per count (after one warm-up)")
    parser.add_argument("--completion", type=int, default=16, help="max completion tokens")
    parser.add_argument("--out", help="also write the figures as JSON")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, data, threads, steps, completion = args.child
        child(model, data, int(threads), int(steps), int(completion))
        return
    from editjudge.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "tiny", hidden_size=args.hidden)
        data = write_data(Path(tmp) / "train.parquet")
        rows = []
        for threads in args.threads:
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
            done = subprocess.run([sys.executable, __file__, "--child", str(model), str(data), str(threads),
                                   str(args.steps), str(args.completion)], env=env, capture_output=True, text=True)
            if done.returncode:
                sys.exit(done.stderr[-3000:])
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = rows[0]["seconds_per_step"]
    print(f"tiny Qwen2.5-VL hidden {args.hidden}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print("threads  s/step  ratio vs first")
    for row in rows:
        row["ratio"] = row["seconds_per_step"] / base
        print(f"{row['threads']:>7}  {row['seconds_per_step']:6.2f}  {row['ratio']:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
