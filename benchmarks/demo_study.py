"""The demo's recipe against the variants it was chosen over: held-out figures per variant and seed.

    OMP_NUM_THREADS=1 python benchmarks/demo_study.py --variants recipe lm_only_lora --seeds 0 1 2 --out study/
    python benchmarks/demo_study.py --table study/          # the table of runs already made (docs/demo.md)

Each run is ``editjudge.demo.run_demo`` into ``<out>/<variant>_s<seed>`` with one change to the recipe (see
VARIANTS); a run whose ``summary.json`` exists is not repeated. Prints a Markdown table: held-out ±2 / exact accuracy
(greedy and sampled), pairwise accuracy and best-of-N regret, before (warm start) and after GRPO, and seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "recipe": ("the demo (preset tiny_cpu): hidden 256, q/k x0.3, LoRA on LM + vision merger, graded ±2 reward, "
               "16 prompts x 8 generations, 60 steps", {}),
    "binary_reward": ("the seed's binary ±2 reward (not graded)",
                      {"settings_overrides": {"reward_kwargs": {}}}),
    "lr3e-4_300": ("lr 3e-4 for 300 GRPO steps instead of 5e-4 for 200",
                          {"settings_overrides": {"learning_rate": 3e-4}, "grpo_steps": 300}),
    "ws_lr1e-3": ("warm start at lr 1e-3 instead of 5e-3 (a gentler format-only warm start)",
                  {"settings_overrides": {"warm_start_lr": 1e-3}}),
    "gen16": ("warm start lr 1e-3; 16 generations x 2 prompts per step instead of 8 x 4",
              {"settings_overrides": {"warm_start_lr": 1e-3, "num_generations": 16}}),
    "temp1.3": ("warm start lr 1e-3; sampling temperature 1.3 instead of 1.0",
                {"settings_overrides": {"warm_start_lr": 1e-3, "temperature": 1.3}}),
    # The variants below change the preset's 16 prompts x 8 generations / 60 steps (the earlier recipe: 4 x 8 / 200).
    "8prompts_100": ("8 generations x 8 prompts per step for 100 steps",
                     {"settings_overrides": {"per_device_batch_size": 64}, "grpo_steps": 100, "eval_every": 20}),
    "8prompts_150": ("8 generations x 8 prompts per step for 150 steps",
                     {"settings_overrides": {"per_device_batch_size": 64}, "grpo_steps": 150}),
    "16prompts_75": ("8 generations x 16 prompts per step for 75 steps",
                     {"settings_overrides": {"per_device_batch_size": 128}, "grpo_steps": 75, "eval_every": 15}),
    "lm_only_lora": ("LoRA on the language model only (exclude .*visual.*, as the 3B preset)",
                     {"settings_overrides": {"exclude_modules": ".*visual.*"}}),
    "no_qk_scale": ("attention q/k not scaled (x1.0)", {"qk_scale": 1.0}),
    "hidden_128": ("hidden size 128", {"hidden_size": 128}),
    "en_template": ("the `en` prompt template instead of `demo`", {"template": "en"}),
}


def run_variant(out: Path, variant: str, seed: int) -> dict[str, Any]:
    from editjudge.demo import run_demo

    folder = out / f"{variant}_s{seed}"
    if (folder / "summary.json").is_file():
        return json.loads((folder / "summary.json").read_text())
    started = time.perf_counter()
    summary = run_demo(folder, seed=seed, progress=False, **{"eval_every": 25, **VARIANTS[variant][1]})
    summary["seconds"] = round(time.perf_counter() - started, 1)
    (folder / "seconds.txt").write_text(f"{summary['seconds']}\n")
    return summary


def table(out: Path) -> str:
    rows = ["| variant | seed | warm start ±2 | after GRPO ±2 greedy / sampled | exact | pairwise | best-of-N regret "
            "(warm → GRPO) | s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for path in sorted(out.glob("*_s*/summary.json")):
        s = json.loads(path.read_text())
        variant = path.parent.name.rsplit("_s", 1)[0]
        w, g = s["stages"]["warm start"], s["stages"]["after GRPO"]
        secs = path.parent / "seconds.txt"
        rows.append(
            f"| {variant} | {s['seed']} | {w['accuracy_within_2']:.2f} | {g['accuracy_within_2']:.2f} / "
            f"{g['sampled_within_2']:.2f} | {g['accuracy_exact']:.2f} | {g['pairwise_accuracy']:.2f} | "
            f"{w['best_of_n_regret']:.3f} → {g['best_of_n_regret']:.3f} | "
            f"{secs.read_text().strip() if secs.is_file() else '–'} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo_study"))
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["recipe"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--table", type=Path, help="print the table of the runs in this folder and exit")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    for variant in args.variants:
        for seed in args.seeds:
            print(f"== {variant} seed {seed}: {VARIANTS[variant][0]}", flush=True)
            run_variant(args.out, variant, seed)
    print(table(args.out))


if __name__ == "__main__":
    main()
