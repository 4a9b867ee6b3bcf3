"""Scripted pairwise backends for tests: they see the real requests (sized PIL images, the format's prompt) and
answer in the pairwise format with answer-token log-probabilities, like a real backend hands them over."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from editjudge.judge.backends import ItemOutput, SamplingOptions
from editjudge.judge.request import JudgeRequest
from editjudge.judge.result import Generation


def redness(image: Image.Image) -> float:
    """Mean red minus mean blue of an image (the synthetic 'make it red' quality)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float64)
    return float(array[..., 0].mean() - array[..., 2].mean())


def answer(choice: str, p: dict[str, float] | None = None) -> Generation:
    probs = p or {"A": 0.1, "B": 0.1, "tie": 0.1, choice: 0.8}
    return Generation(text=f"<think>r</think><answer>{choice}</answer>",
                      answer_logprobs={k: math.log(v) for k, v in probs.items()})


class OracleBackend:
    """Prefers the redder candidate (a tie within ``tie_margin``); ``bias_a`` makes it answer A whatever it sees."""

    def __init__(self, tie_margin: float = 5.0, bias_a: bool = False, batch_size: int = 8) -> None:
        self.tie_margin, self.bias_a, self.batch_size = tie_margin, bias_a, batch_size
        self.requests: list[JudgeRequest] = []

    def generate(self, requests: Sequence[JudgeRequest], sampling: SamplingOptions) -> list[ItemOutput]:
        self.requests += list(requests)
        out = []
        for request in requests:
            if self.bias_a:
                out.append(ItemOutput(generations=(answer("A", {"A": 0.7, "B": 0.2, "tie": 0.1}),)))
                continue
            delta = redness(request.images[-2]) - redness(request.images[-1])
            choice = "tie" if abs(delta) <= self.tie_margin else ("A" if delta > 0 else "B")
            out.append(ItemOutput(generations=tuple(answer(choice) for _ in range(sampling.num_samples))))
        return out


def write_reds(folder: Path, levels: Sequence[float], size: int = 56) -> tuple[Path, list[Path]]:
    """A blue source and one candidate per level of redness (0: unchanged blue, 1: fully red), as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    blue, red = np.array([40, 70, 220]), np.array([220, 40, 40])
    source = folder / "source.png"
    Image.new("RGB", (size, size), tuple(int(v) for v in blue)).save(source)
    paths = []
    for k, level in enumerate(levels):
        colour = tuple(int(round(v)) for v in blue + (red - blue) * level)
        path = folder / f"candidate_{k}.png"
        Image.new("RGB", (size, size), colour).save(path)
        paths.append(path)
    return source, paths
