"""Use a trained judge: score edits one by one or in bulk, compare two candidates (a pairwise judge), and rank N
candidate edits (test-time scaling: by score, or by a knockout / round-robin tournament of comparisons).

``Judge(model, adapter=None, backend="transformers" | "vllm" | "openai")`` builds prompts with
:mod:`editjudge.prompts`, sizes images with :mod:`editjudge.data.images` and parses answers with
:func:`editjudge.answer.parse_response` — the same as training. Importing this package does not import torch.
"""

from editjudge.judge.comparison import Comparison
from editjudge.judge.judge import EditItem, Judge, PairItem
from editjudge.judge.ranking import RankedCandidate, Ranking
from editjudge.judge.request import ImageSizing, JudgeRequest
from editjudge.judge.result import Generation, JudgeResult

__all__ = ["Comparison", "EditItem", "Generation", "ImageSizing", "Judge", "JudgeRequest", "JudgeResult", "PairItem",
           "RankedCandidate", "Ranking"]
