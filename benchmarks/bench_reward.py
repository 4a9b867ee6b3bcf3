"""Reward speed: typical responses per second per core, and adversarial 64 KiB responses, against a baseline.

The baseline, measured in the same run on the same inputs, is the seed recipe's regex reward
(``re.search(r"<answer>(.*?)</answer>")`` + ``re.search(r"<think>.*?</think>")`` + ``float``). Times are CPU
seconds of this single-threaded process (``time.process_time``), so "per core" holds on a shared machine; each
figure is the best of ``--repeat`` runs.

    python benchmarks/bench_reward.py                 # ~1 min on one core (the baseline's quadratic cases dominate)
    python benchmarks/bench_reward.py --json out.json --baseline-kib 16
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable

from editjudge.reward import compute_score

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


def seed_style_reward(data_source, solution_str, ground_truth, extra_info=None) -> float:
    """The baseline: the seed recipe's rules written the way the seed wrote them (regexes over the whole text)."""
    match = _ANSWER.search(solution_str)
    if match is None:
        return 0.0
    score = 1.0 if _THINK.search(solution_str) else 0.0
    try:
        pred = round(float(match.group(1).strip()))
    except (ValueError, OverflowError):
        return score
    return score + (1.0 if 0 <= pred <= 9 and abs(pred - round(float(ground_truth))) <= 2 else 0.0)


WORDS = ("the edit follows the instruction the sky is now purple but the clouds lost detail there is a faint halo "
         "around the subject colours match lighting is consistent the background is unchanged artifacts near the "
         "edges the object was removed cleanly texture looks natural").split()


def typical_responses(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(response, label) pairs shaped like a judge's rollouts: mostly well-formed with 20–120 words of reasoning,
    some without reasoning, some hedged or malformed, as a policy early in GRPO produces them."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        reasoning = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 120)))
        score = rng.randint(0, 9)
        kind = rng.random()
        if kind < 0.75:
            text = f"<think>{reasoning}</think>\n<answer>{score}</answer>"
        elif kind < 0.85:
            text = f"<answer>{score}</answer>"
        elif kind < 0.92:
            text = f"<think>{reasoning}</think>\n<answer>{score} or {min(score + 1, 9)}</answer>"
        else:
            text = f"<think>{reasoning}</think>\n<answer>{score}</answer> Maybe lower."
        rows.append((text, str(rng.randint(0, 9))))
    return rows


def adversarial_responses(size: int) -> dict[str, str]:
    """Responses of ``size`` characters built to make scanners slow (repeated partial and whole tags)."""
    def fill(unit: str) -> str:
        return (unit * (size // len(unit) + 1))[:size]

    return {
        "'<answer>' x N": fill("<answer>"),
        "'<think>' x N + answer": fill("<think>")[: size - 18] + "<answer>7</answer>",
        "'<' x N": fill("<"),
        "'<answe' x N + </answer>": fill("<answe")[: size - 9] + "</answer>",
        "think + 64K digits": "<think>r</think><answer>" + fill("9")[: size - 33] + "</answer>",
        "'<answer>7' x N": fill("<answer>7"),
        "well-formed, 64K reasoning": "<think>" + fill("a < b ")[: size - 33] + "</think><answer>7</answer>",
    }


def cpu_seconds(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="typical responses per run (default 20000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure; the best is kept (default 5)")
    parser.add_argument("--kib", type=int, default=64, help="size of the adversarial responses (default 64)")
    parser.add_argument("--baseline-kib", type=int, default=None,
                        help="size for the baseline's adversarial runs (default: --kib; the baseline is quadratic)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    rows = typical_responses(args.n)
    ours = cpu_seconds(lambda: [compute_score("tts_edit_score", t, gt) for t, gt in rows], args.repeat)
    base = cpu_seconds(lambda: [seed_style_reward("tts_edit_score", t, gt) for t, gt in rows], args.repeat)
    mean_chars = sum(len(t) for t, _ in rows) / len(rows)
    result: dict[str, object] = {
        "python": sys.version.split()[0],
        "typical": {
            "n": args.n, "mean_chars": round(mean_chars),
            "editjudge_per_s": round(args.n / ours), "baseline_per_s": round(args.n / base),
            "ratio_vs_baseline": round(base / ours, 3),
        },
        "adversarial": {},
    }
    print(f"typical responses ({args.n}, mean {mean_chars:.0f} chars), one core:")
    print(f"  editjudge compute_score  {args.n / ours:>10,.0f} /s")
    print(f"  seed-style regex reward  {args.n / base:>10,.0f} /s   (editjudge = {base / ours:.2f}x the baseline)")

    base_kib = args.baseline_kib or args.kib
    print(f"\nadversarial responses: editjudge at {args.kib} KiB, baseline at {base_kib} KiB (CPU ms, best of runs)")
    ours_inputs = adversarial_responses(args.kib * 1024)
    base_inputs = adversarial_responses(base_kib * 1024)
    for name, text in ours_inputs.items():
        t_ours = cpu_seconds(lambda: compute_score("tts_edit_score", text, "7"), max(args.repeat, 20))
        t_base = cpu_seconds(lambda: seed_style_reward("tts_edit_score", base_inputs[name], "7"), 1)
        result["adversarial"][name] = {"editjudge_ms": round(t_ours * 1e3, 4), "baseline_ms": round(t_base * 1e3, 3),
                                       "kib": args.kib, "baseline_kib": base_kib}
        ratio = f"   (baseline/editjudge {t_base / max(t_ours, 1e-9):,.1f}x)" if base_kib == args.kib else ""
        print(f"  {name:<28} editjudge {t_ours * 1e3:8.3f} ms   baseline {t_base * 1e3:10.2f} ms{ratio}")
    worst = max(v["editjudge_ms"] for v in result["adversarial"].values())
    print(f"\nworst adversarial {args.kib} KiB case: {worst:.3f} ms (target < 1 ms)")

    if args.json:
        directory = os.path.dirname(os.path.abspath(args.json))
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as handle:
            json.dump(result, handle, indent=2)
        os.replace(handle.name, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
