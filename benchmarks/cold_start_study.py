"""Cold start on the demo's task: SFT on distilled traces, then GRPO on the hard rows, against GRPO from the base.

    OMP_NUM_THREADS=1 python benchmarks/cold_start_study.py --out cold_start_study/ [--seed 0]

One run, both arms on the same data, tiny model and step budget (``--sft-steps`` + ``--grpo-steps``):

* cold start: a scripted teacher on loopback (the chat server of tests/test_judge_openai.py) answers right 70% of the
  time (it reads the edited image: red square -> 7, blue -> 1); ``editjudge distill`` keeps the right answers;
  ``train --stage sft --engine trl`` on them; ``editjudge score --samples K`` on the train edits with the SFT adapter;
  ``distill --select-hard``; GRPO (TRL, the demo's tiny_cpu settings) from the SFT adapter on the hard rows;
* baseline: the demo's recipe, a format-only warm start of ``--sft-steps`` then GRPO on every train row.

Prints held-out greedy format / ±2 / exact accuracy after each stage and writes ``<out>/study.json``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RIGHT_RATE = 0.7


def teacher_script(behaviour: str, n: int, body: dict) -> list[str]:
    """Right (the edited square's colour) with probability 0.7 per sample, else the other label; deterministic."""
    import numpy as np
    from PIL import Image

    urls = [p["image_url"]["url"] for p in body["messages"][1]["content"] if p.get("type") == "image_url"]
    edited = np.asarray(Image.open(io.BytesIO(base64.b64decode(urls[-1].split(",", 1)[1]))).convert("RGB"), float)
    red = (edited[..., 0] - edited[..., 2]).max() > 80  # a red square somewhere in the edited image
    texts = []
    for i in range(n):
        rng = random.Random(hashlib.sha256(f"{urls[-1]}|{i}".encode()).hexdigest())
        says_red = red if rng.random() < RIGHT_RATE else not red
        reasoning = "red" if says_red else "blue"  # short: the demo judges with 16 new tokens
        texts.append(f"<think>{reasoning}</think><answer>{7 if says_red else 1}</answer>")
    return texts


def heldout(model: Any, processor: Any, test_path: Path, template: str, tokens: int, seed: int) -> dict[str, Any]:
    """Greedy judge over the held-out parquet: format, ±2 and exact accuracy (the demo's figures)."""
    import torch

    from editjudge.demo import stage_figures
    from editjudge.evaluate.metrics import compute_metrics
    from editjudge.evaluate.readers import judge_parquet
    from editjudge.judge import Judge
    from editjudge.judge.backends.transformers import TransformersBackend

    judge = Judge.from_backend(TransformersBackend.from_loaded(model, processor, batch_size=32), template=template,
                               max_new_tokens=tokens, seed=seed, temperature=0.0)
    with torch.random.fork_rng():
        records = judge_parquet(test_path, judge, progress=False)
    figures = stage_figures(compute_metrics(records, bootstrap=0, seed=seed))
    return {k: figures[k] for k in ("n_heldout", "format_rate", "accuracy_within_2", "accuracy_exact")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("cold_start_study"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sources", type=int, default=64)
    parser.add_argument("--sft-steps", type=int, default=100, help="SFT steps (baseline: format-only warm-start steps)")
    parser.add_argument("--grpo-steps", type=int, default=200)
    parser.add_argument("--samples", type=int, default=4, help="teacher samples per row; judge samples for select-hard")
    parser.add_argument("--min-wrong", type=int, default=1)
    args = parser.parse_args()

    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from test_judge_openai import ChatServer

    from editjudge import demo
    from editjudge.cli import main as cli
    from editjudge.data.prepare import PrepareConfig, prepare
    from editjudge.synthetic import RED_SQUARE_MEDIAN_MAD, write_synthetic_edits
    from editjudge.tiny import build_tiny_model
    from editjudge.train import sft_trl
    from editjudge.train import trl as engine

    torch.set_num_threads(1)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    synth = write_synthetic_edits(out / "edits", n_sources=args.sources, candidates_per_source=4, seed=args.seed,
                                  task="red_square")
    model_dir = build_tiny_model(out / "tiny", seed=args.seed, hidden_size=demo.HIDDEN_SIZE, qk_scale=demo.QK_SCALE)
    median, mad = RED_SQUARE_MEDIAN_MAD
    prepared = prepare(PrepareConfig(inputs=(str(synth.out_dir),), out_dir=str(out / "data"), train_split=demo.TRAIN_SPLIT,
                                     score_median=median, score_mad=mad, seed=args.seed, template=demo.TEMPLATE,
                                     processor=str(model_dir), workers=1, progress=False))
    grpo = demo.preset_settings(model_dir, out / "unused", demo.PRESET, seed=args.seed)
    tokens = grpo.max_completion_length
    results: dict[str, Any] = {"settings": vars(args) | {"out": str(out)}, "stages": {}}

    def record(name: str, model: Any, processor: Any) -> None:
        results["stages"][name] = heldout(model, processor, Path(prepared.test_path), demo.TEMPLATE, tokens, args.seed)
        print(f"{name:34s} {json.dumps(results['stages'][name])}", flush=True)

    # ---- cold start: distil from the scripted teacher
    server = ChatServer()
    server.script = teacher_script
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code = cli(["distill", "--data", str(prepared.train_path), "--teacher", "teacher", "--base-url", server.url,
                    "--api-key-env", "NO_KEY", "--samples", str(args.samples), "--keep", "1", "--out", str(out / "distill"),
                    "--force"])
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0, "distill failed"
    results["distill"] = json.loads((out / "distill" / "distill_report.json").read_text())
    print(f"distill: acceptance {results['distill']['acceptance_rate']:.2f}, {results['distill']['kept']} SFT rows")

    processor, model = engine.load_model(model_dir)
    sft_settings = sft_trl.SftSettings(
        model=str(model_dir), output_dir=str(out / "sft"), lora_rank=grpo.lora_rank, lora_alpha=grpo.lora_alpha,
        target_modules=grpo.target_modules, exclude_modules=grpo.exclude_modules, learning_rate=grpo.warm_start_lr,
        lr_scheduler_type="constant", max_steps=args.sft_steps, batch_size=4, micro_batch_size=4, seed=args.seed)
    sft = sft_trl.train(sft_settings, out / "distill" / "sft.parquet", model=model, processor=processor)
    record("cold start: after SFT", sft.model, processor)

    code = cli(["score", "--manifest", str(synth.out_dir), "--model", str(model_dir), "--adapter", str(sft.adapter_dir),
                "--template", demo.TEMPLATE, "--prepare-report", str(out / "data" / "prepare_report.json"),
                "--samples", str(args.samples), "--temperature", "1.0", "--max-new-tokens", str(tokens),
                "--batch-size", "32", "--out", str(out / "preds_train.jsonl")])
    assert code == 0, "score failed"
    code = cli(["distill", "--data", str(prepared.train_path), "--select-hard", str(out / "preds_train.jsonl"),
                "--min-wrong", str(args.min_wrong), "--out", str(out / "hard"), "--force"])
    assert code == 0, "select-hard failed"
    results["hard"] = json.loads((out / "hard" / "hard_report.json").read_text())
    print(f"hard rows: {results['hard']['selected']} of {results['hard']['train_rows']}")

    if results["hard"]["selected"]:
        processor, model = engine.load_model(model_dir)
        settings = demo.preset_settings(model_dir, out / "grpo_cold", demo.PRESET, seed=args.seed, warm_start_steps=0,
                                        max_steps=args.grpo_steps, init_adapter=str(sft.adapter_dir))
        cold = engine.train(settings, out / "hard" / "hard.parquet", model=model, processor=processor)
        record("cold start: SFT + GRPO on hard rows", cold.model, processor)

    # ---- baseline: the demo's recipe with the same number of steps
    processor, model = engine.load_model(model_dir)
    settings = demo.preset_settings(model_dir, out / "grpo_base", demo.PRESET, seed=args.seed,
                                    warm_start_steps=args.sft_steps, max_steps=args.grpo_steps)
    base = engine.train(settings, prepared.train_path, model=model, processor=processor)
    record("baseline: format warm start + GRPO", base.model, processor)

    results["seconds"] = round(time.perf_counter() - started, 1)
    (out / "study.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"done in {results['seconds']} s -> {out / 'study.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
