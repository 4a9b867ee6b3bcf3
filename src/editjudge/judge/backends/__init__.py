"""Judge backends: each turns prepared requests into raw generations (+ answer-digit log-probabilities).

A backend never builds prompts or parses answers itself: it receives :class:`~editjudge.judge.request.JudgeRequest`
objects (messages + sized images, built once for all backends) and returns, per request, either a list of
:class:`~editjudge.judge.result.Generation` or an error message. Heavy libraries are imported inside each backend.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from editjudge.judge.request import JudgeRequest
from editjudge.judge.result import Generation

BACKENDS: dict[str, str] = {
    "transformers": "editjudge.judge.backends.transformers:TransformersBackend",
    "vllm": "editjudge.judge.backends.vllm:VLLMBackend",
    "openai": "editjudge.judge.backends.openai:OpenAIBackend",
}


def check_local_paths(**named: str | None) -> None:
    """Raise ``FileNotFoundError`` at once for a model/adapter/processor that is neither a local folder nor a cached
    hub snapshot (see :mod:`editjudge.model_path`), instead of letting the hub client retry for minutes."""
    from editjudge.model_path import check_model_paths

    check_model_paths(**named)


@dataclass(frozen=True)
class SamplingOptions:
    """How many responses to draw per item and how: greedy for one sample, sampled for Avg@k."""

    num_samples: int = 1
    temperature: float = 0.0
    max_new_tokens: int = 512
    seed: int = 0

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0.0


@dataclass(frozen=True)
class ItemOutput:
    """A backend's answer for one request: generations, or why there are none."""

    generations: tuple[Generation, ...] = ()
    error: str | None = None  # "<kind>: <message>", e.g. "backend_error: …"
    usage: dict[str, int] | None = None  # the server's token counts (prompt_tokens, completion_tokens), when reported


class Backend(Protocol):
    """What :class:`~editjudge.judge.Judge` needs from a backend."""

    batch_size: int

    def generate(self, requests: Sequence[JudgeRequest], sampling: SamplingOptions) -> list[ItemOutput]: ...


def isolate_failures(
    generate_batch: Callable[[Sequence[JudgeRequest], SamplingOptions], list[ItemOutput]],
    requests: Sequence[JudgeRequest],
    sampling: SamplingOptions,
) -> list[ItemOutput]:
    """Run ``generate_batch``; if the batch raises, retry item by item so one bad item cannot sink the rest."""
    if not requests:
        return []
    try:
        return generate_batch(requests, sampling)
    except Exception as exc:  # noqa: BLE001 - reported per item below
        if len(requests) == 1:
            return [ItemOutput(error=f"backend_error: {type(exc).__name__}: {exc}")]
    return [isolate_failures(generate_batch, [r], sampling)[0] for r in requests]


def load_backend(name: str, model: str, adapter: str | None = None, **options: Any) -> Backend:
    """Instantiate backend ``name`` (``transformers``, ``vllm``, ``openai``) for ``model`` (+ LoRA ``adapter``)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown judge backend {name!r}: use one of {sorted(BACKENDS)}")
    module_name, class_name = BACKENDS[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(model, adapter=adapter, **options)
