"""Use a trained judge: score edits one by one or in bulk, and rank N candidate edits (test-time scaling).

``Judge(model, adapter=None, backend="transformers" | "vllm" | "openai")`` builds prompts with
:mod:`editjudge.prompts`, sizes images with :mod:`editjudge.data.images` and parses answers with
:func:`editjudge.answer.parse_response` — the same as training. Importing this package does not import torch.
"""

from editjudge.judge.judge import EditItem, Judge
from editjudge.judge.ranking import RankedCandidate, Ranking
from editjudge.judge.request import ImageSizing, JudgeRequest
from editjudge.judge.result import Generation, JudgeResult

__all__ = ["EditItem", "Generation", "ImageSizing", "Judge", "JudgeRequest", "JudgeResult", "RankedCandidate", "Ranking"]
