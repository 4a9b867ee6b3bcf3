"""vLLM backend: offline ``LLM.generate`` over the shared requests, LoRA via ``LoRARequest``.

Kept thin on purpose: the prompt text comes from the processor's chat template over the shared request, images go
in as ``multi_modal_data``, and the sampled tokens' top-logprobs go through the shared expected-score functions.
The engine options an adapter needs are read off the adapter and checked after it loads
(:mod:`editjudge.judge.backends.vllm_lora`). vLLM is an optional import: ``pip install vllm`` on GPU machines; on
CPU ``bash scripts/setup_vllm.sh`` builds its own environment (``.venv-vllm``, docs/judge.md says why).
The functions here are shared with the async engine of ``serve`` (:mod:`editjudge.judge.backends.vllm_async`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from editjudge.judge.backends import ItemOutput, SamplingOptions, check_local_paths, isolate_failures
from editjudge.formats import JudgmentFormat
from editjudge.formats.slots import choice_logprobs
from editjudge.judge.request import JudgeRequest
from editjudge.judge.result import Generation, generation_from_slots

IMAGES_PER_PROMPT = {"image": 2}  # source + edited: vLLM's limit_mm_per_prompt (pointwise, one source)


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(
            "the vllm backend needs vLLM: `pip install vllm` on GPU machines; on CPU `bash scripts/setup_vllm.sh` "
            "builds it in its own environment (.venv-vllm: run editjudge from .venv-vllm/bin). Or use "
            "backend='transformers', or backend='openai' against a vLLM OpenAI-compatible server"
        ) from exc
    return vllm


def engine_options(adapter: str | None, given: Mapping[str, Any], images: int | None = None) \
        -> tuple[dict[str, Any], Any]:
    """vLLM engine keyword arguments for the judge (+ ``adapter``) and the adapter's modules (None without one).

    ``images`` per prompt (the judge's format says how many: two pointwise, three pairwise; default two) unless
    ``given`` says otherwise; LoRA options from the adapter itself (``enable_lora``,
    ``max_lora_rank``, ``enable_tower_connector_lora`` when it trains the vision merger); then ``given`` (the user's
    ``--engine-arg``), checked not to drop any part of the adapter.
    """
    from editjudge.judge.backends.vllm_lora import lora_engine_options, read_adapter, vllm_lora_ranks

    options: dict[str, Any] = {"limit_mm_per_prompt": {"image": images} if images else dict(IMAGES_PER_PROMPT)}
    info = None
    if adapter:
        info = read_adapter(adapter)
        options.update(lora_engine_options(info, given, vllm_lora_ranks()))
    options.update({k: v for k, v in given.items() if v is not None})
    return options, info


def render_prompt(processor: Any, request: JudgeRequest) -> dict[str, Any]:
    """One vLLM prompt: the chat template over the shared messages, the two sized images as ``multi_modal_data``."""
    text = processor.apply_chat_template(request.content_parts(), add_generation_prompt=True, tokenize=False)
    return {"prompt": text, "multi_modal_data": {"image": list(request.images)}}


def sampling_params(vllm: Any, sampling: SamplingOptions, top_logprobs: int) -> Any:
    """``vllm.SamplingParams`` for the judge's sampling options (greedy for one sample, Avg@k otherwise)."""
    return vllm.SamplingParams(
        n=sampling.num_samples,
        temperature=sampling.temperature,
        max_tokens=sampling.max_new_tokens,
        seed=sampling.seed,
        logprobs=top_logprobs,
    )


def item_output(output: Any, fmt: JudgmentFormat) -> ItemOutput:
    """A vLLM ``RequestOutput`` → the backend-independent :class:`ItemOutput` (answer slots read by ``fmt``)."""
    return ItemOutput(generations=tuple(generation(c, fmt) for c in output.outputs))


class VLLMBackend:
    """Generate with an in-process ``vllm.LLM``."""

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        *,
        batch_size: int = 64,
        top_logprobs: int = 20,
        max_lora_rank: int | None = None,
        processor: str | None = None,
        images_per_prompt: int | None = None,
        **engine_args: Any,
    ) -> None:
        vllm = import_vllm()
        from transformers import AutoProcessor

        self.batch_size = int(batch_size)
        self.top_logprobs = int(top_logprobs)
        check_local_paths(model=model, adapter=adapter, processor=processor)
        options, self.adapter_modules = engine_options(adapter, {"max_lora_rank": max_lora_rank, **engine_args},
                                                       images_per_prompt)
        self.processor = AutoProcessor.from_pretrained(processor or model)
        self.llm = vllm.LLM(model=model, **options)
        self.lora = None
        if adapter:
            from vllm.lora.request import LoRARequest

            from editjudge.judge.backends.vllm_lora import check_applied, unapplied_modules

            self.lora = LoRARequest("editjudge", 1, adapter)
            self.llm.llm_engine.add_lora(self.lora)  # load it now, so the check sees what the engine applies
            check_applied(self.adapter_modules, unapplied_modules(self.llm.collective_rpc, self.lora.lora_int_id))

    def generate(self, requests: Sequence[JudgeRequest], sampling: SamplingOptions) -> list[ItemOutput]:
        """One output per request; a failing batch is retried item by item."""
        return isolate_failures(self._generate_batch, requests, sampling)

    def _generate_batch(self, requests: Sequence[JudgeRequest], sampling: SamplingOptions) -> list[ItemOutput]:
        vllm = import_vllm()
        params = sampling_params(vllm, sampling, self.top_logprobs)
        prompts = [render_prompt(self.processor, r) for r in requests]
        outputs = self.llm.generate(prompts, params, lora_request=self.lora, use_tqdm=False)
        return [item_output(out, r.format) for r, out in zip(requests, outputs)]


def generation(completion: Any, fmt: JudgmentFormat) -> Generation:
    """A vLLM ``CompletionOutput`` → text + the format's choice log-probabilities at each answer slot."""
    steps = completion.logprobs or []
    tokens = [step[token_id].decoded_token or "" for token_id, step in zip(completion.token_ids, steps)]
    slots = [
        choice_logprobs([(lp.decoded_token or "", lp.logprob) for lp in steps[slot.index].values()], slot.prefix,
                        fmt.choice_tokens) or None
        for slot in fmt.answer_slots(tokens)
    ]
    return generation_from_slots(completion.text, slots)
