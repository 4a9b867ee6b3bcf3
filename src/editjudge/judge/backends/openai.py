"""OpenAI-compatible backend: chat completions with the images as base64 data URLs.

Serves ``vllm serve <model> [--lora-modules judge=<adapter>]`` and hosted models (zero-shot baselines). The
``openai`` client does the timeouts and the retries (with backoff, on timeouts, connection errors, 408/409/429
and 5xx); requests run in a thread pool of ``concurrency`` workers. When the server returns token log-probabilities
the digit probabilities at the answer position give the expected score, as in the other backends.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from editjudge.formats import JudgmentFormat
from editjudge.formats.slots import choice_logprobs
from editjudge.judge.backends import ItemOutput, SamplingOptions
from editjudge.judge.request import JudgeRequest
from editjudge.judge.result import Generation, generation_from_slots


def image_data_url(image: Any, image_format: str = "PNG") -> str:
    """A PIL image as a ``data:image/…;base64,…`` URL (PNG by default: the sized pixels arrive unchanged)."""
    buffer = io.BytesIO()
    fmt = image_format.upper()
    image.save(buffer, format=fmt)
    mime = "jpeg" if fmt in ("JPG", "JPEG") else fmt.lower()
    return f"data:image/{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def chat_messages(request: JudgeRequest, image_format: str = "PNG") -> list[dict[str, Any]]:
    """The request as chat-completions messages: ``{"type": "image"}`` parts become ``image_url`` parts, in order."""
    images = iter(request.images)
    messages: list[dict[str, Any]] = []
    for message in request.content_parts():
        content = message["content"]
        if isinstance(content, list):
            content = [
                {"type": "image_url", "image_url": {"url": image_data_url(next(images), image_format)}}
                if part.get("type") == "image"
                else part
                for part in content
            ]
            if all(part.get("type") == "text" for part in content):
                content = "".join(part["text"] for part in content)
        messages.append({"role": message["role"], "content": content})
    return messages


class MalformedResponse(ValueError):
    """The server answered, but not with a usable chat completion."""


def _generations(completion: Any, expected: int, fmt: JudgmentFormat) -> tuple[Generation, ...]:
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise MalformedResponse(f"no 'choices' in the response (got {str(completion)[:200]!r})")
    if len(choices) != expected:
        raise MalformedResponse(f"asked for n={expected} choices, got {len(choices)} (does the server support n?)")
    generations = []
    for i, choice in enumerate(choices):
        text = getattr(getattr(choice, "message", None), "content", None)
        if not isinstance(text, str):
            raise MalformedResponse(f"choice {i} has no 'message.content' string")
        generations.append(generation_from_slots(text, _slot_logprobs(getattr(choice, "logprobs", None), fmt)))
    return tuple(generations)


def _slot_logprobs(logprobs: Any, fmt: JudgmentFormat) -> list[dict[str, float] | None]:
    """The format's choice log-probabilities at each answer slot, from the server's per-token top-logprobs."""
    content = getattr(logprobs, "content", None)
    if not isinstance(content, list) or not content:
        return []
    try:
        slots = []
        for slot in fmt.answer_slots([entry.token for entry in content]):
            entry = content[slot.index]
            pairs = [(entry.token, entry.logprob)] + [(top.token, top.logprob) for top in entry.top_logprobs or []]
            slots.append(choice_logprobs(pairs, slot.prefix, fmt.choice_tokens) or None)
        return slots
    except (AttributeError, TypeError, ValueError) as exc:
        raise MalformedResponse(f"unreadable 'logprobs' in the response: {exc}") from exc


def _usage(completion: Any) -> dict[str, int] | None:
    """The completion's token counts, or None when the server sent none."""
    usage = getattr(completion, "usage", None)
    counts = {k: getattr(usage, k, None) for k in ("prompt_tokens", "completion_tokens")}
    return {k: int(v) for k, v in counts.items() if isinstance(v, int)} or None


def _serve_hint(adapter: str) -> str:
    """The vLLM server command for ``adapter`` with the options it needs (e.g. ``--enable-tower-connector-lora``)."""
    import shlex

    from editjudge.judge.backends.vllm_lora import read_adapter, server_command

    try:
        return "`" + shlex.join(server_command("BASE_MODEL", read_adapter(adapter))) + "`"
    except ValueError as exc:
        return f"with vLLM's --enable-lora --lora-modules judge=ADAPTER; {exc}"


class OpenAIBackend:
    """Chat completions against ``base_url`` (default: the ``OPENAI_BASE_URL`` / OpenAI endpoint)."""

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        concurrency: int = 8,
        batch_size: int | None = None,
        logprobs: bool = True,
        top_logprobs: int = 20,
        image_format: str = "PNG",
    ) -> None:
        import openai

        if adapter:
            raise ValueError(f"the openai backend cannot load an adapter: serve it ({_serve_hint(adapter)}) and pass "
                             "its served name (judge) as the model")
        self.model = model
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.concurrency = max(1, int(concurrency))
        self.batch_size = batch_size or 4 * self.concurrency
        self.logprobs = logprobs
        self.top_logprobs = int(top_logprobs)
        self.image_format = image_format
        self.client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
            timeout=self.timeout,
            max_retries=self.max_retries,
        )

    def generate(self, requests: Sequence[JudgeRequest], sampling: SamplingOptions) -> list[ItemOutput]:
        """One output per request, ``concurrency`` requests in flight at most."""
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(lambda r: self._one(r, sampling), requests))

    def _one(self, request: JudgeRequest, sampling: SamplingOptions) -> ItemOutput:
        import openai

        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": chat_messages(request, self.image_format),
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "n": sampling.num_samples,
            "seed": sampling.seed,
        }
        if self.logprobs:
            kwargs.update(logprobs=True, top_logprobs=self.top_logprobs)
        tries = f"{self.max_retries + 1} attempt(s)"
        try:
            completion = self.client.chat.completions.create(**kwargs)
            return ItemOutput(generations=_generations(completion, sampling.num_samples, request.format), usage=_usage(completion))
        except openai.APITimeoutError:
            return ItemOutput(error=f"backend_error: timed out after {self.timeout:g}s ({tries}); raise --timeout")
        except openai.APIStatusError as exc:
            return ItemOutput(error=f"backend_error: HTTP {exc.status_code} from the server ({tries}): {exc.message}")
        except openai.APIConnectionError as exc:
            return ItemOutput(error=f"backend_error: cannot reach {self.client.base_url} ({tries}): {exc}")
        except (MalformedResponse, openai.APIResponseValidationError) as exc:
            return ItemOutput(error=f"backend_error: malformed response from the server: {exc}")
        except openai.APIError as exc:
            return ItemOutput(error=f"backend_error: {type(exc).__name__}: {exc}")
