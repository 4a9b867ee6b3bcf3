"""``editjudge bench`` costs: judge calls saved by scoring each distinct edit once, and metric time at TIGER's size.

1. Scoring cost on suites of our making (in memory, random image bytes): an EditScore-style suite (each pair of
   images appears under 3 dimensions, as in EditScore/EditReward-Bench) and a TIGER-sized one (186 pairs, 150
   triples, 148 quads = 1,524 comparisons). Reported: distinct edits judged, comparisons made, their ratio, and the
   judge calls a per-comparison pairwise scorer would make (2 per comparison).
2. Metric time on 1,524 comparisons: :func:`editjudge.evaluate.pairwise.tie_calibrated_accuracy` against the
   baseline in the same run, the definition computed literally (the counts at every candidate ε, as TIGER's
   ``calc_accuracy_with_ties_for_edit_reward_bench`` does), for continuous scores (a reward model) and 0-9 integer
   scores (our judge); then the whole TIGER suite with a 1,000-resample group bootstrap. Best of ``--repeat``,
   CPU time of this process.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_bench.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from editjudge.bench import metrics, scoring
from editjudge.bench.suites import BenchItem
from editjudge.evaluate import pairwise as pw


def _image(rng: np.random.Generator) -> bytes:
    return rng.bytes(64)


def editscore_like(rng: np.random.Generator, pairs: int = 1000) -> list[BenchItem]:
    items = []
    for p in range(pairs):
        src, a, b = _image(rng), _image(rng), _image(rng)
        for dim in ("prompt_following", "consistency", "overall"):
            items.append(BenchItem(f"{p}:{dim}", f"edit {p}", src, (a, b), (1.0, 0.0), "t", f"pair{p}", dim))
    return items


def tiger_sized(rng: np.random.Generator) -> list[BenchItem]:
    items = []
    for k, n in ((2, 186), (3, 150), (4, 148)):
        for i in range(n):
            tiers = rng.permutation(k)
            items.append(BenchItem(f"{k}:{i}", f"edit {k}:{i}", _image(rng), tuple(_image(rng) for _ in range(k)),
                                   tuple(-float(t) for t in tiers), f"{k}pair", f"{k}:{i}"))
    return items


def literal_threshold(h: list[float], m: list[float]) -> float:
    """Baseline: the counts C, D, Th, Tm, Thm recomputed at every ε ∈ {0} ∪ {|m|} (O(n × thresholds))."""
    best = -1.0
    for eps in [0.0] + sorted({abs(x) for x in m}):
        right = 0
        for hi, mi in zip(h, m):
            tie = abs(mi) <= eps
            right += (hi == 0 and tie) or (hi != 0 and not tie and hi * mi > 0)
        best = max(best, right / len(h))
    return best


def best_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    out: dict[str, object] = {}

    for name, items in (("editscore_like_1000_pairs_x3_dims", editscore_like(rng)), ("tiger_sized", tiger_sized(rng))):
        work = scoring.plan(items)
        candidates = sum(len(i.candidates) for i in items)
        out[name] = {
            "items": len(items), "comparisons": work.comparisons, "candidates_listed": candidates,
            "distinct_edits_judged": len(work.edits),
            "comparisons_per_judged_edit": round(work.comparisons / len(work.edits), 3),
            "judge_calls_saved_vs_pairwise_scorer": round(2 * work.comparisons / len(work.edits), 3),
            "judge_calls_saved_vs_per_candidate": round(candidates / len(work.edits), 3),
        }
        print(f"{name}: {out[name]}")

    items = tiger_sized(np.random.default_rng(1))
    work = scoring.plan(items)
    table = metrics.build_table(items, [], work.keys)
    for kind, draw in (("continuous", lambda n: rng.normal(size=n)), ("integer_0_9", lambda n: rng.integers(0, 10, n))):
        values = {k: float(v) for k, v in zip(work.edits, draw(len(work.edits)))}
        m = metrics.pair_diffs(table, metrics.candidate_values(table, values))
        h = table.pair_h
        assert pw.tie_calibrated_accuracy(h, m).value == literal_threshold(h.tolist(), m.tolist())
        ours = best_time(lambda: pw.tie_calibrated_accuracy(h, m), args.repeat)
        base = best_time(lambda: literal_threshold(h.tolist(), m.tolist()), args.repeat)
        suite = best_time(lambda: metrics.evaluate("tiger", table, values, bootstrap=1000, seed=0), 1)
        out[f"metric_{kind}"] = {"pairs": int(len(h)), "tie_calibrated_s": round(ours, 5), "literal_baseline_s": round(base, 4),
                                 "speedup": round(base / ours, 1), "tiger_suite_with_1000_bootstrap_s": round(suite, 2)}
        print(f"metric ({kind} scores, {len(h)} pairs): {out[f'metric_{kind}']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
