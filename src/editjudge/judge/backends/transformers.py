"""Transformers backend: a Qwen2.5-VL checkpoint (+ optional peft LoRA adapter), batched generation.

Prompts are left-padded so that every row of a batch generates from its last prompt token. ``generate`` returns
the raw (unwarped) logits of every step; at each answer slot the request's format names (pointwise: the step that
emits the digit right after ``<answer>``) the full-vocab log-softmax is read at the format's choice tokens (the ten
digits) and handed to the format.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from editjudge.judge.backends import ItemOutput, SamplingOptions, check_local_paths, isolate_failures
from editjudge.formats import JudgmentFormat
from editjudge.formats.slots import starts_choice
from editjudge.judge.logprobs import DIGITS
from editjudge.judge.request import JudgeRequest
from editjudge.judge.result import Generation, generation_from_slots
from editjudge.prompts import to_content_parts


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TransformersBackend:
    """Generate with ``AutoModelForImageTextToText`` and its ``AutoProcessor``."""

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        *,
        batch_size: int = 8,
        device: str | None = None,
        dtype: str | None = None,
        merge_adapter: bool = False,
        processor: str | None = None,
        attn_implementation: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.batch_size = max(1, int(batch_size))
        self.device = device or _default_device()
        torch_dtype = getattr(torch, dtype, None) if dtype else (torch.bfloat16 if self.device.startswith("cuda") else torch.float32)
        if not isinstance(torch_dtype, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}: use e.g. bfloat16, float16 or float32")
        check_local_paths(model=model, adapter=adapter, processor=processor)
        self.processor = AutoProcessor.from_pretrained(processor or model)
        kwargs: dict[str, Any] = {"dtype": torch_dtype}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        net = AutoModelForImageTextToText.from_pretrained(model, **kwargs)
        if adapter:
            from peft import PeftModel

            net = PeftModel.from_pretrained(net, adapter)
            if merge_adapter:
                net = net.merge_and_unload()
        self.model = net.to(self.device).eval()
        self._choice_ids: dict[tuple[str, tuple[str, ...]], dict[str, list[int]]] = {}
        self._texts: list[str] | None = None
        self.digit_ids = self.choice_token_ids(DIGITS)

    @classmethod
    def from_loaded(cls, model: Any, processor: Any, *, batch_size: int = 8) -> TransformersBackend:
        """Wrap a model and processor already in memory (e.g. right after training, or a benchmark's model).

        The processor is not modified (left padding is asked for per call); the model is put in eval mode.
        """
        self = cls.__new__(cls)
        self.batch_size = max(1, int(batch_size))
        self.processor = processor
        self.model = model.eval()
        self.device = str(next(model.parameters()).device)
        self._choice_ids = {}
        self._texts = None
        self.digit_ids = self.choice_token_ids(DIGITS)
        return self

    def choice_token_ids(self, choices: tuple[str, ...]) -> list[int]:
        """The token id of each choice (a format's answer tokens); ``ValueError`` when one is not a single token."""
        tokenizer = self.processor.tokenizer
        ids = []
        for choice in choices:
            encoded = tokenizer.encode(choice, add_special_tokens=False)
            if len(encoded) != 1:
                raise ValueError(
                    f"the tokenizer splits the answer token {choice!r} into {len(encoded)} tokens; the judge needs "
                    "single-token answers to read answer probabilities (Qwen2/2.5-VL tokenizers have them)"
                )
            ids.append(encoded[0])
        return ids

    def choice_ids_at(self, prefix: str, choices: tuple[str, ...]) -> dict[str, list[int]]:
        """The vocabulary ids whose text begins each choice at a slot with ``prefix`` (see
        :func:`editjudge.formats.slots.starts_choice`); one id per digit in the usual case, found by a scan of the
        vocabulary's texts (once per prefix) otherwise — e.g. ``>A`` where Qwen's BPE merges the tag with a letter."""
        key = (prefix, choices)
        if key not in self._choice_ids:
            if not prefix and all(len(c) == 1 for c in choices):  # only the choice's own token begins it
                ids: dict[str, list[int]] = {c: [i] for c, i in zip(choices, self.choice_token_ids(choices))}
            else:
                ids = {}
                for token_id, text in enumerate(self._vocab_texts()):
                    choice = starts_choice(text, prefix, choices)
                    if choice is not None:
                        ids.setdefault(choice, []).append(token_id)
            self._choice_ids[key] = ids
        return self._choice_ids[key]

    def _vocab_texts(self) -> list[str]:
        if self._texts is None:
            tokenizer = self.processor.tokenizer
            self._texts = [tokenizer.decode([i]) for i in range(len(tokenizer))]
        return self._texts

    def generate(self, requests: Sequence[JudgeRequest], sampling: SamplingOptions) -> list[ItemOutput]:
        """One output per request; a failing batch is retried item by item so one bad item cannot sink the rest."""
        return isolate_failures(self._generate_batch, requests, sampling)

    def _generation_config(self, sampling: SamplingOptions) -> Any:
        config = copy.deepcopy(self.model.generation_config)
        config.max_new_tokens = sampling.max_new_tokens
        config.num_return_sequences = sampling.num_samples
        config.do_sample = sampling.do_sample
        # Checkpoints ship their own sampling defaults (Qwen2.5-VL: top_k=1, top_p=0.001); Avg@k needs plain sampling.
        config.temperature = sampling.temperature if sampling.do_sample else None
        config.top_k = None
        config.top_p = None
        config.output_logits = True
        config.return_dict_in_generate = True
        return config

    def _generate_batch(self, requests: Sequence[JudgeRequest], sampling: SamplingOptions) -> list[ItemOutput]:
        import torch

        texts = [
            self.processor.apply_chat_template(to_content_parts(r.messages), add_generation_prompt=True, tokenize=False)
            for r in requests
        ]
        inputs = self.processor(
            text=texts, images=[list(r.images) for r in requests], padding=True, padding_side="left", return_tensors="pt"
        ).to(self.device)
        torch.manual_seed(sampling.seed)
        with torch.inference_mode():
            out = self.model.generate(**inputs, generation_config=self._generation_config(sampling))
        new_tokens = out.sequences[:, inputs["input_ids"].shape[1] :].tolist()
        stop_ids = set(self._stop_ids())
        outputs: list[ItemOutput] = []
        k = sampling.num_samples
        for i in range(len(requests)):
            generations = []
            for row in range(i * k, (i + 1) * k):
                ids = new_tokens[row]
                end = next((j for j, t in enumerate(ids) if t in stop_ids), len(ids))
                generations.append(self._to_generation(ids[:end], out.logits, row, requests[i].format))
            outputs.append(ItemOutput(generations=tuple(generations)))
        return outputs

    def _stop_ids(self) -> list[int]:
        config = self.model.generation_config
        ids = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
        pad = self.processor.tokenizer.pad_token_id
        return [i for i in [*ids, pad] if i is not None]

    def _to_generation(self, ids: list[int], step_logits: Sequence[Any], row: int, fmt: JudgmentFormat) -> Generation:
        import torch

        tokenizer = self.processor.tokenizer
        text = tokenizer.decode(ids, skip_special_tokens=True)
        slots = []
        for slot in fmt.answer_slots([tokenizer.decode([t]) for t in ids]):
            row_logprobs = torch.log_softmax(step_logits[slot.index][row].float(), dim=-1)
            by_choice = self.choice_ids_at(slot.prefix, fmt.choice_tokens)
            slots.append({
                choice: float(row_logprobs[ids_[0]]) if len(ids_) == 1 else float(torch.logsumexp(row_logprobs[ids_], 0))
                for choice, ids_ in by_choice.items()
            })
        return generation_from_slots(text, slots)
