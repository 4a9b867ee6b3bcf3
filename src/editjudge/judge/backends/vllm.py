"""vLLM backend (GPU machines): offline ``LLM.generate`` over the shared requests, LoRA via ``LoRARequest``.

Kept thin on purpose: the prompt text comes from the processor's chat template over the shared request, images go
in as ``multi_modal_data``, and the sampled tokens' top-logprobs go through the shared expected-score functions.
vLLM is an optional import: it is not installed on CPU machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from editjudge.judge.backends import ItemOutput, SamplingOptions, check_local_paths, isolate_failures
from editjudge.formats import JudgmentFormat
from editjudge.formats.slots import choice_logprobs
from editjudge.judge.request import JudgeRequest
from editjudge.judge.result import Generation, generation_from_slots


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(
            "the vllm backend needs vLLM (GPU machines): `pip install vllm`; on CPU use backend='transformers', or "
            "backend='openai' against a `vllm serve` endpoint"
        ) from exc
    return vllm


class VLLMBackend:
    """Generate with an in-process ``vllm.LLM``."""

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        *,
        batch_size: int = 64,
        top_logprobs: int = 20,
        max_lora_rank: int = 128,
        processor: str | None = None,
        **engine_options: Any,
    ) -> None:
        vllm = _import_vllm()
        from transformers import AutoProcessor

        self.batch_size = int(batch_size)
        self.top_logprobs = int(top_logprobs)
        check_local_paths(model=model, adapter=adapter, processor=processor)
        self.processor = AutoProcessor.from_pretrained(processor or model)
        options: dict[str, Any] = {"limit_mm_per_prompt": {"image": 2}, **engine_options}
        self.lora = None
        if adapter:
            from vllm.lora.request import LoRARequest

            options.update(enable_lora=True, max_lora_rank=max_lora_rank)
            self.lora = LoRARequest("editjudge", 1, adapter)
        self.llm = vllm.LLM(model=model, **options)

    def generate(self, requests: Sequence[JudgeRequest], sampling: SamplingOptions) -> list[ItemOutput]:
        """One output per request; a failing batch is retried item by item."""
        return isolate_failures(self._generate_batch, requests, sampling)

    def _generate_batch(self, requests: Sequence[JudgeRequest], sampling: SamplingOptions) -> list[ItemOutput]:
        vllm = _import_vllm()
        params = vllm.SamplingParams(
            n=sampling.num_samples,
            temperature=sampling.temperature,
            max_tokens=sampling.max_new_tokens,
            seed=sampling.seed,
            logprobs=self.top_logprobs,
        )
        prompts = [
            {
                "prompt": self.processor.apply_chat_template(r.content_parts(), add_generation_prompt=True, tokenize=False),
                "multi_modal_data": {"image": list(r.images)},
            }
            for r in requests
        ]
        outputs = self.llm.generate(prompts, params, lora_request=self.lora, use_tqdm=False)
        return [
            ItemOutput(generations=tuple(_generation(c, r.format) for c in out.outputs))
            for r, out in zip(requests, outputs)
        ]


def _generation(completion: Any, fmt: JudgmentFormat) -> Generation:
    """A vLLM ``CompletionOutput`` → text + the format's choice log-probabilities at each answer slot."""
    steps = completion.logprobs or []
    tokens = [step[token_id].decoded_token or "" for token_id, step in zip(completion.token_ids, steps)]
    slots = [
        choice_logprobs([(lp.decoded_token or "", lp.logprob) for lp in steps[slot.index].values()], slot.prefix,
                        fmt.choice_tokens) or None
        for slot in fmt.answer_slots(tokens)
    ]
    return generation_from_slots(completion.text, slots)
