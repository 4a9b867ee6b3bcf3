"""One judge scoring a dynamic batch: what each Serve replica (and the in-process benchmark) runs.

Items reach the worker already decoded and checked (:mod:`editjudge.serve.inputs`); the judge does the rest with
its own request building and image sizing, so the service sees exactly the prompts and pixels ``score`` does.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from typing import Any

from editjudge.judge.result import JudgeResult


def result_payload(result: JudgeResult) -> dict[str, Any]:
    """The API's view of a :class:`JudgeResult` (``ItemScore`` without the id; ``dimensions`` for a dimension
    judge only)."""
    payload = {
        "score": result.score,
        "expected_score": result.expected_score,
        "mean_score": result.mean_score,
        "scores": list(result.scores) or None,
        "reasoning": result.reasoning,
        "error": result.error,
    }
    if result.dimensions is not None:
        payload["dimensions"] = result.dimensions
    return payload


def comparison_payload(comparison: Any) -> dict[str, Any]:
    """The API's view of a :class:`~editjudge.judge.comparison.Comparison` (``ItemComparison`` without the id)."""
    return {"preference": comparison.preference, "probabilities": comparison.probabilities,
            "consistent": comparison.consistent, "reasoning": comparison.reasoning, "error": comparison.error}


class JudgeWorker:
    """Holds one :class:`~editjudge.judge.Judge` built from ``editjudge serve``'s judge flags.

    ``max_batch`` becomes the backend's batch size, so one dynamic batch is one ``generate`` call.
    """

    def __init__(self, judge_args: argparse.Namespace, max_batch: int) -> None:
        from editjudge.judge.cli_common import judge_from_args

        args = copy.copy(judge_args)
        args.batch_size = max(1, int(max_batch))
        self._attach(judge_from_args(args))

    @classmethod
    def from_judge(cls, judge: Any) -> JudgeWorker:
        """A worker over a judge already built (e.g. a benchmark's in-memory model); its backend's batch size holds."""
        self = cls.__new__(cls)
        self._attach(judge)
        return self

    def _attach(self, judge: Any) -> None:
        self.judge = judge
        self.judge.progress = False
        self._views: dict[int, Any] = {self.judge.sampling.num_samples: self.judge}

    def judge_for(self, samples: int | None) -> Any:
        """The judge, or a view of it drawing ``samples`` responses (Avg@k; sampled at the judge's temperature or 1)."""
        k = samples or self.judge.sampling.num_samples
        if k not in self._views:
            view = copy.copy(self.judge)
            temperature = self.judge.sampling.temperature if self.judge.sampling.temperature > 0 else 1.0
            view.sampling = dataclasses.replace(self.judge.sampling, num_samples=k, temperature=temperature)
            self._views[k] = view
        return self._views[k]

    def score(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``items``: ``{source: bytes, edited: bytes, instruction: str, samples: int | None}``; results in order."""
        from editjudge.judge import EditItem

        results: list[dict[str, Any] | None] = [None] * len(items)
        groups: dict[int, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(item.get("samples") or self.judge.sampling.num_samples, []).append(i)
        for samples, positions in groups.items():
            edits = [EditItem(items[i]["source"], items[i]["edited"], items[i]["instruction"]) for i in positions]
            for i, result in zip(positions, self.judge_for(samples).score_many(edits, progress=False)):
                results[i] = result_payload(result)
        return [r for r in results if r is not None]

    def compare(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``items``: ``{source, a, b: bytes, instruction, both_orders, samples}``; comparisons in order."""
        from editjudge.judge import PairItem

        results: list[dict[str, Any] | None] = [None] * len(items)
        groups: dict[tuple[int, bool], list[int]] = {}
        for i, item in enumerate(items):
            key = (item.get("samples") or self.judge.sampling.num_samples, bool(item.get("both_orders")))
            groups.setdefault(key, []).append(i)
        for (samples, both), positions in groups.items():
            pairs = [PairItem(items[i]["source"], items[i]["a"], items[i]["b"], items[i]["instruction"])
                     for i in positions]
            judged = self.judge_for(samples).compare_many(pairs, both_orders=both, progress=False)
            for i, comparison in zip(positions, judged):
                results[i] = comparison_payload(comparison)
        return [r for r in results if r is not None]
