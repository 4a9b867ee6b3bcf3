"""`editjudge demo` on many seeds: does the recipe learn on every seed, and when does it stall?

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/demo_seeds.py --seeds 0-9 --jobs 2 --out /tmp/seeds
    python benchmarks/demo_seeds.py --table /tmp/seeds          # the table of the runs already made
    python benchmarks/demo_seeds.py --seeds 0-9 --sources 32 --grpo-steps 30 --set temperature=1.2 --out /tmp/x

Each seed runs ``editjudge.demo.run_demo`` in a process of its own (``--jobs`` at once; its log in
``<out>/seed_<S>/log.txt``) into ``<out>/seed_<S>``; a seed whose ``summary.json`` exists is not run again (``--force``
reruns). ``--set NAME=VALUE`` replaces a ``TrlSettings`` field of the preset (YAML values: ``--set
'reward_kwargs={graded: true}'``) for studies. The table (``<out>/seeds.md`` and ``<out>/seeds.json``) has, per seed,
held-out ±2 accuracy at the warm start and after GRPO (greedy and sampled), exact, pairwise accuracy, the first
evaluated GRPO step at which held-out ±2 reached 0.9, the share of prompt groups whose rewards were all equal
(``frac_reward_zero_std``: mean over GRPO steps and over the last quarter; and the mean share of groups flat below
the best reward, ``groups/flat_stuck``, i.e. stuck rather than solved) and the seconds each run took; then the success rate (held-out ±2
>= 0.9 after GRPO).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SUCCESS = 0.9  # held-out ±2 accuracy after GRPO that counts as "learnt"


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"0,3,5"``, ``"0-4,10-12"`` -> the seeds in order, each once."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        first, last = int(low), int(high or low)
        if last < first:
            raise argparse.ArgumentTypeError(f"seed range {part!r} runs backwards")
        seeds += [s for s in range(first, last + 1) if s not in seeds]
    if not seeds:
        raise argparse.ArgumentTypeError("no seeds given")
    return seeds


def parse_set(items: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--set {item!r}: write NAME=VALUE (a TrlSettings field)")
        out[name.strip()] = yaml.safe_load(value)
    return out


def crossed(curve: list[dict[str, Any]], threshold: float = SUCCESS) -> int | None:
    """The first evaluated GRPO step whose held-out ±2 accuracy is >= ``threshold`` (None: never)."""
    for point in curve:
        value = point.get("accuracy_within_2")
        if value is not None and value >= threshold:
            return int(point["step"])
    return None


def flat_groups(metrics_path: Path) -> dict[str, float | None]:
    """From the run's ``metrics.jsonl``: mean ``frac_reward_zero_std`` over GRPO steps and over the last quarter,
    and the mean share of groups flat below the best reward (``groups/flat_stuck``, stuck) when logged."""
    rows = []
    if metrics_path.is_file():
        rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    grpo = [r for r in rows if r.get("phase") == "grpo" and r.get("frac_reward_zero_std") is not None]

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 3) if values else None

    tail = grpo[-max(1, len(grpo) // 4):] if grpo else []
    below = [r["groups/flat_stuck"] for r in grpo if r.get("groups/flat_stuck") is not None]  # TRL engine's count
    return {"zero_std_mean": mean([r["frac_reward_zero_std"] for r in grpo]),
            "zero_std_last_quarter": mean([r["frac_reward_zero_std"] for r in tail]),
            "flat_below_max_mean": mean(below)}


def row(folder: Path) -> dict[str, Any] | None:
    """One seed's figures from its folder (None when it has not finished)."""
    path = folder / "summary.json"
    if not path.is_file():
        return None
    s = json.loads(path.read_text())
    warm, after = s["stages"]["warm start"], s["stages"]["after GRPO"]
    seconds = folder / "seconds.txt"
    return {
        "seed": s["seed"],
        "warm_within_2": warm["accuracy_within_2"], "after_within_2": after["accuracy_within_2"],
        "warm_sampled_within_2": warm.get("sampled_within_2"), "after_sampled_within_2": after.get("sampled_within_2"),
        "warm_exact": warm["accuracy_exact"], "after_exact": after["accuracy_exact"],
        "warm_pairwise": warm["pairwise_accuracy"], "after_pairwise": after["pairwise_accuracy"],
        "crossed_0_9_at_step": crossed(s.get("learning_curve") or []),
        "learnt": after["accuracy_within_2"] is not None and after["accuracy_within_2"] >= SUCCESS,
        **flat_groups(folder / "train" / "metrics.jsonl"),
        "seconds": float(seconds.read_text()) if seconds.is_file() else None,
        "settings_overrides": s.get("settings_overrides") or {},
    }


def _f(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| seed | ±2 greedy: warm start → after GRPO | sampled ±2 | exact | pairwise | first step ≥ 0.9 | "
             "flat groups (mean / last quarter) | flat below the best (mean) | s |",
             "|---:|---|---|---|---|---:|---|---:|---:|"]
    for r in rows:
        mark = "**" if r["learnt"] else ""
        lines.append(
            f"| {r['seed']} | {_f(r['warm_within_2'])} → {mark}{_f(r['after_within_2'])}{mark} | "
            f"{_f(r['warm_sampled_within_2'])} → {_f(r['after_sampled_within_2'])} | "
            f"{_f(r['warm_exact'])} → {_f(r['after_exact'])} | {_f(r['warm_pairwise'])} → {_f(r['after_pairwise'])} | "
            f"{r['crossed_0_9_at_step'] if r['crossed_0_9_at_step'] is not None else 'never'} | "
            f"{_f(r['zero_std_mean'])} / {_f(r['zero_std_last_quarter'])} | {_f(r['flat_below_max_mean'])} | "
            f"{_f(r['seconds'], 0)} |")
    learnt = sum(r["learnt"] for r in rows)
    lines.append(f"\nlearnt (held-out ±2 >= {SUCCESS} after GRPO): **{learnt} of {len(rows)}** seeds")
    return "\n".join(lines)


def write_table(out: Path, seeds: list[int] | None = None) -> str:
    folders = sorted(out.glob("seed_*"), key=lambda p: int(p.name.split("_")[1]))
    rows = [r for r in (row(f) for f in folders) if r is not None and (seeds is None or r["seed"] in seeds)]
    text = table(rows)
    (out / "seeds.md").write_text(text + "\n")
    (out / "seeds.json").write_text(json.dumps(
        {"success_threshold": SUCCESS, "learnt": sum(r["learnt"] for r in rows), "seeds": rows}, indent=2) + "\n")
    return text


def run_one(args: argparse.Namespace) -> None:
    """The child process: one seed's demo (what ``editjudge demo --seed S`` runs, plus the study's options)."""
    from editjudge.demo import run_demo

    folder = args.out / f"seed_{args.one}"
    started = time.perf_counter()
    run_demo(folder, sources=args.sources, warm_start_steps=args.warm_start_steps, grpo_steps=args.grpo_steps,
             seed=args.one, eval_every=args.eval_every, progress=False,
             settings_overrides=parse_set(args.set) or None)
    (folder / "seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")


def child_command(args: argparse.Namespace, seed: int) -> list[str]:
    cmd = [sys.executable, __file__, "--one", str(seed), "--out", str(args.out), "--sources", str(args.sources),
           "--eval-every", str(args.eval_every)]
    for flag, value in (("--warm-start-steps", args.warm_start_steps), ("--grpo-steps", args.grpo_steps)):
        if value is not None:
            cmd += [flag, str(value)]
    for item in args.set:
        cmd += ["--set", item]
    return cmd


def run_all(args: argparse.Namespace) -> None:
    import shutil

    todo = []
    for seed in args.seeds:
        folder = args.out / f"seed_{seed}"
        if (folder / "summary.json").is_file() and not args.force:
            print(f"seed {seed}: done before ({folder})", flush=True)
            continue
        if folder.exists():
            shutil.rmtree(folder)
        todo.append(seed)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    running: list[tuple[int, subprocess.Popen, Any, float]] = []
    failed = []
    while todo or running:
        while todo and len(running) < args.jobs:
            seed = todo.pop(0)
            folder = args.out / f"seed_{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            log = (folder / "log.txt").open("w")
            running.append((seed, subprocess.Popen(child_command(args, seed), stdout=log, stderr=subprocess.STDOUT,
                                                   env=env), log, time.perf_counter()))
            print(f"seed {seed}: started (log {folder / 'log.txt'})", flush=True)
        time.sleep(2)
        for item in list(running):
            seed, proc, log, started = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            r = row(args.out / f"seed_{seed}")
            if proc.returncode or r is None:
                failed.append(seed)
                print(f"seed {seed}: FAILED (exit {proc.returncode}; see its log.txt)", flush=True)
            else:
                print(f"seed {seed}: ±2 {_f(r['warm_within_2'])} -> {_f(r['after_within_2'])}, first step >= 0.9: "
                      f"{r['crossed_0_9_at_step']}, flat groups {_f(r['zero_std_mean'])} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
    if failed:
        print(f"failed seeds: {failed}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-9"), help="e.g. 0-9 or 0,3,10-12")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once (each on one torch thread)")
    parser.add_argument("--out", type=Path, default=Path("demo_seeds"))
    parser.add_argument("--sources", type=int, default=64, help="the demo's --sources (reduced runs: 32)")
    parser.add_argument("--warm-start-steps", type=int, default=None)
    parser.add_argument("--grpo-steps", type=int, default=None)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="replace a TrlSettings field of the tiny_cpu preset (studies)")
    parser.add_argument("--force", action="store_true", help="rerun seeds that already have a summary")
    parser.add_argument("--table", type=Path, help="print the table of the runs in this folder and exit")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process of one seed
    args = parser.parse_args()
    if args.table:
        print(write_table(args.table))
        return
    if args.one is not None:
        run_one(args)
        return
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    args.out.mkdir(parents=True, exist_ok=True)
    run_all(args)
    print(write_table(args.out, args.seeds))


if __name__ == "__main__":
    main()
