"""The judge replica of ``serve --backend vllm``: vLLM's async engine, continuous batching, no ``serve.batch``.

:class:`~editjudge.serve.app.JudgeModel` (the other backends) waits up to ``--batch-wait-ms`` for a ``serve.batch``
to fill, then scores it in one ``generate`` call, so a request that arrives while a batch runs waits for the whole
batch. Here each item goes straight into vLLM's ``AsyncLLM``: its scheduler adds the request to the running batch at
the next step and returns it as soon as its answer is done. The interface is :class:`JudgeModel`'s (``score(item)``,
``ready()``), so the ingress, limits, metrics and API are the same; ``batch`` in each result reports the requests
the engine held when this one joined (the histogram of ``/metrics`` shows the continuous batch's size).

Images are decoded and sized off the event loop (the judge's own request building), then the engine runs them.
"""

import asyncio
import copy
import uuid
from typing import Any

from ray import serve

from editjudge.serve.app import ServeSettings


@serve.deployment(name="JudgeModel")
class VLLMJudgeModel:
    """One ``AsyncLLM`` per replica; every request joins its running batch as it arrives."""

    async def __init__(self, settings: ServeSettings) -> None:
        from editjudge.judge import Judge
        from editjudge.judge.backends.vllm_async import AsyncVLLMEngine
        from editjudge.judge.cli_common import judge_settings, judgment_format, vllm_engine_args
        from editjudge.serve.worker import JudgeWorker

        args = copy.copy(settings.judge_args)
        images = len(judgment_format(args).image_roles())  # vLLM's room per prompt: the format's images
        self.engine = AsyncVLLMEngine(args.model, args.adapter, images_per_prompt=images, **vllm_engine_args(args))
        await self.engine.start()
        # The Judge holds the prompt template, image sizing and sampling (Avg@k views per `samples`); its backend is
        # this engine, driven here one request at a time instead of through Judge.score_many.
        self.worker = JudgeWorker.from_judge(Judge.from_backend(self.engine, **judge_settings(args)))
        self._replica = uuid.uuid4().hex[:12]
        self._requests = 0

    async def score(self, item: dict[str, Any]) -> dict[str, Any]:
        """One decoded item (``source``, ``edited`` bytes, ``instruction``, ``samples``) → its result payload."""
        from editjudge.judge.judge import input_failure, result_of
        from editjudge.serve.worker import result_payload

        judge = self.worker.judge_for(item.get("samples"))
        self._requests += 1
        batch = [self._replica, self._requests, self.engine.in_flight + 1]
        try:
            request = await asyncio.to_thread(judge.request, item["source"], item["edited"], item["instruction"])
        except Exception as exc:  # noqa: BLE001 - an unusable image is this item's error, like Judge.score_many's
            return {**result_payload(input_failure(exc)), "batch": batch}
        output = await self.engine.generate(request, judge.sampling)
        return {**result_payload(result_of(output, judge.format)), "batch": batch}

    async def compare(self, item: dict[str, Any]) -> dict[str, Any]:
        """One decoded pair (``source``, ``a``, ``b``, ``instruction``, ``both_orders``, ``samples``) → its
        comparison payload; both orders run in the engine at once."""
        from editjudge.judge.comparison import both_orders
        from editjudge.judge.judge import comparison_of, input_failure
        from editjudge.serve.worker import comparison_payload

        judge = self.worker.judge_for(item.get("samples"))
        self._requests += 1
        batch = [self._replica, self._requests, self.engine.in_flight + 1]
        orders = [(item["a"], item["b"]), (item["b"], item["a"])] if item.get("both_orders") else [(item["a"], item["b"])]
        try:
            requests = [await asyncio.to_thread(judge.pair_request, item["source"], x, y, item["instruction"])
                        for x, y in orders]
        except Exception as exc:  # noqa: BLE001 - an unusable image is this item's error
            from editjudge.judge.comparison import Comparison

            return {**comparison_payload(Comparison(error=input_failure(exc).error)), "batch": batch}
        outputs = await asyncio.gather(*(self.engine.generate(r, judge.sampling) for r in requests))
        judged = [comparison_of(output) for output in outputs]
        result = both_orders(*judged) if len(judged) == 2 else judged[0]
        return {**comparison_payload(result), "batch": batch}

    async def ready(self) -> bool:
        return True
