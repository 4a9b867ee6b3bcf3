"""Tournament best-of-N (a pairwise judge) against pointwise best-of-N on the same candidates: regret against
the number of judge calls, for N = 4, 8, 16, in one run.

Candidates are the "make it red" world: a blue source and N candidates of random redness (quality q in 0..9, the
oracle picks the reddest). Both judges go through the real :class:`editjudge.judge.Judge` (its requests, sized
images, answer parsing, ``best_of_n`` and ``tournament``: knockout, round-robin by Bradley-Terry or wins, both
orders); what answers is a **simulated perception** backend, so that regret measures the selection rule, not a tiny
model's luck. Both judges see each image with the same Gaussian noise (``--noise`` in score points, drawn anew per
look):

* pointwise: one look at the candidate, q + e; the answer digit and p(k) ∝ exp(-(k - q - e)^2 / 2) (expected score);
* pairwise: one look at each candidate of the pair, Δ = (qA + eA) - (qB + eB); p ∝ softmax(Δ, -Δ, 0) over A, B, tie.

A pairwise judge thus knows nothing a pointwise one does not: the run shows what aggregating comparisons costs and
buys at equal perception (more looks per candidate in a round-robin; a knockout can lose the best to one noisy
comparison). Regret = q(oracle) - q(pick), in score points; calls = prompts sent to the judge.

    python benchmarks/bench_tournament.py                       # ~1 min on one core
    python benchmarks/bench_tournament.py --sources 200 --noise 1.5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence

import numpy as np
from PIL import Image

from editjudge.judge import Judge
from editjudge.judge.backends import ItemOutput, SamplingOptions
from editjudge.judge.request import JudgeRequest
from editjudge.judge.result import Generation

BLUE, RED = np.array([40.0, 70.0, 220.0]), np.array([220.0, 40.0, 40.0])
INSTRUCTION = "make the square red"


def quality(image: Image.Image) -> float:
    """The score (0..9) a candidate deserves: how far its colour went from blue to red."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    level = float(np.dot(rgb - BLUE, RED - BLUE) / np.dot(RED - BLUE, RED - BLUE))
    return 9.0 * min(1.0, max(0.0, level))


class Perception:
    """A backend that looks at the request's candidate image(s) with Gaussian noise (seeded, in call order)."""

    def __init__(self, noise: float, seed: int, batch_size: int = 64) -> None:
        self.noise, self.batch_size = noise, batch_size
        self.rng = np.random.default_rng(seed)
        self.calls = 0

    def look(self, image: Image.Image) -> float:
        return quality(image) + self.noise * float(self.rng.standard_normal())

    def generate(self, requests: Sequence[JudgeRequest], sampling: SamplingOptions) -> list[ItemOutput]:
        out = []
        for request in requests:
            self.calls += 1
            if request.format.spec == "pairwise":
                delta = self.look(request.images[-2]) - self.look(request.images[-1])
                logits = {"A": delta, "B": -delta, "tie": 0.0}
            else:
                seen = self.look(request.images[-1])
                logits = {str(k): -((k - seen) ** 2) / 2.0 for k in range(10)}
            top = max(logits.values())
            norm = math.log(sum(math.exp(v - top) for v in logits.values())) + top
            logprobs = {k: v - norm for k, v in logits.items()}
            choice = max(logprobs, key=logprobs.get)
            out.append(ItemOutput(generations=(Generation(text=f"<think>look</think><answer>{choice}</answer>",
                                                          answer_logprobs=logprobs),)))
        return out


def candidates(rng: np.random.Generator, n: int) -> tuple[list[Image.Image], np.ndarray]:
    levels = rng.uniform(size=n)
    images = [Image.new("RGB", (56, 56), tuple(int(round(v)) for v in BLUE + (RED - BLUE) * level))
              for level in levels]
    return images, np.array([quality(im) for im in images])


METHODS = [("pointwise", {}), ("knockout", {"mode": "knockout"}),
           ("knockout, both orders", {"mode": "knockout", "both_orders": True}),
           ("round-robin (wins)", {"mode": "round-robin", "aggregate": "wins"}),
           ("round-robin (Bradley-Terry)", {"mode": "round-robin", "aggregate": "bt"})]


def run(sizes: Sequence[int], sources: int, noise: float, seed: int) -> list[dict]:
    rows = []
    source = Image.new("RGB", (56, 56), tuple(int(v) for v in BLUE))
    for n in sizes:
        rng = np.random.default_rng(seed * 7919 + n)
        groups = [candidates(rng, n) for _ in range(sources)]
        for name, options in METHODS:
            backend = Perception(noise, seed)
            judge = Judge.from_backend(backend, format="pointwise" if name == "pointwise" else "pairwise",
                                       template="demo", progress=False)
            regrets, hits = [], 0
            started = time.perf_counter()
            for k, (images, q) in enumerate(groups):
                if name == "pointwise":
                    pick = judge.best_of_n(source, images, INSTRUCTION).to_dict()["candidates"][0]["index"]
                else:
                    pick = judge.tournament(source, images, INSTRUCTION, seed=k, **options).order[0]
                regrets.append(float(q.max() - q[pick]))
                hits += int(q[pick] == q.max())
            rows.append({"n": n, "method": name, "calls_per_source": backend.calls / sources,
                         "mean_regret": float(np.mean(regrets)), "regret_sem": float(np.std(regrets) / math.sqrt(sources)),
                         "picked_best": hits / sources, "seconds": round(time.perf_counter() - started, 2)})
    return rows


def table(rows: list[dict]) -> str:
    base = {r["n"]: r for r in rows if r["method"] == "pointwise"}
    lines = [f"{'N':>3}  {'method':<28} {'calls':>6} {'x pointwise':>11} {'mean regret':>12} {'picked best':>11}"]
    for r in rows:
        lines.append(f"{r['n']:>3}  {r['method']:<28} {r['calls_per_source']:>6.0f} "
                     f"{r['calls_per_source'] / base[r['n']]['calls_per_source']:>10.2f}x "
                     f"{r['mean_regret']:>7.3f} ±{r['regret_sem']:.3f} {r['picked_best']:>10.0%}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16], help="candidates per source")
    parser.add_argument("--sources", type=int, default=100, help="sources (tournaments) per N")
    parser.add_argument("--noise", type=float, default=1.0, help="perception noise per look, in score points")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    if args.sources < 1 or min(args.sizes) < 2 or args.noise < 0:
        parser.error("--sources >= 1, --sizes >= 2, --noise >= 0")
    rows = run(args.sizes, args.sources, args.noise, args.seed)
    print(f"{args.sources} sources per N, perception noise {args.noise:g} score points per look, seed {args.seed}\n")
    print(table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"settings": vars(args), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
