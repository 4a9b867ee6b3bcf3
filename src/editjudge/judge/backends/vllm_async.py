"""vLLM's async engine (``AsyncLLM``) for the judge: each request joins the running batch the moment it arrives.

What ``serve --backend vllm`` runs in each replica: no ``serve.batch`` window to fill, vLLM's scheduler batches the
requests in flight step by step (continuous batching) and a short answer leaves the batch as soon as it is done. The
prompt, image sizing and answer parsing are the judge's own (:class:`~editjudge.judge.Judge` builds the request,
:func:`~editjudge.judge.backends.vllm.render_prompt` renders it, the shared logprob functions read the answer), and
the engine options (LoRA, tower/connector LoRA, two images) and the adapter check are the offline backend's.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from editjudge.judge.backends import ItemOutput, SamplingOptions, check_local_paths
from editjudge.judge.backends.vllm import engine_options, import_vllm, item_output, render_prompt, sampling_params
from editjudge.judge.request import JudgeRequest


class AsyncVLLMEngine:
    """One ``vllm.v1.engine.async_llm.AsyncLLM`` for the judge (+ LoRA ``adapter``); call :meth:`start` once."""

    def __init__(self, model: str, adapter: str | None = None, *, top_logprobs: int = 20, processor: str | None = None,
                 images_per_prompt: int | None = None, **engine_args: Any) -> None:
        vllm = import_vllm()
        from transformers import AutoProcessor
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        check_local_paths(model=model, adapter=adapter, processor=processor)
        options, self.adapter_modules = engine_options(adapter, engine_args, images_per_prompt)
        self.processor = AutoProcessor.from_pretrained(processor or model)
        self.top_logprobs = int(top_logprobs)
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(model=model, **options))
        self.lora = None
        if adapter:
            self.lora = vllm.lora.request.LoRARequest("editjudge", 1, adapter)
        self._ids = itertools.count()
        self._prefix = uuid.uuid4().hex[:8]
        self.in_flight = 0

    async def start(self) -> None:
        """Load the adapter and check that the engine applies all of it (see :mod:`.vllm_lora`)."""
        if self.lora is None:
            return
        from editjudge.judge.backends.vllm_lora import check_applied, lora_coverage

        await self.engine.add_lora(self.lora)
        try:
            reports = await self.engine.collective_rpc(lora_coverage)
            missing: list[str] | None = sorted({m for r in reports for m in r.get(self.lora.lora_int_id, [])})
        except (AttributeError, TypeError, KeyError):
            missing = None
        check_applied(self.adapter_modules, missing)

    async def generate(self, request: JudgeRequest, sampling: SamplingOptions) -> ItemOutput:
        """The outputs of one request (all ``sampling.num_samples`` of them); the error, when vLLM refuses it."""
        vllm = import_vllm()
        params = sampling_params(vllm, sampling, self.top_logprobs)
        request_id = f"editjudge-{self._prefix}-{next(self._ids)}"
        final = None
        self.in_flight += 1
        try:
            async for output in self.engine.generate(render_prompt(self.processor, request), params, request_id,
                                                     lora_request=self.lora):
                final = output
        except Exception as exc:  # noqa: BLE001 - one bad request (too long, unreadable image) gets its own error
            return ItemOutput(error=f"backend_error: {type(exc).__name__}: {exc}")
        finally:
            self.in_flight -= 1
        if final is None or not final.finished:
            return ItemOutput(error="backend_error: vLLM returned no finished output")
        return item_output(final, request.format)

    def shutdown(self) -> None:
        self.engine.shutdown()
