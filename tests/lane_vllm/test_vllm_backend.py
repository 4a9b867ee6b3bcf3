"""``VLLMBackend`` (offline ``vllm.LLM``) against the transformers backend, with the demo-shaped adapter.

One engine for the module, in float32 so that both backends compute the same function at the same precision:
greedy labels must be equal, and expected scores within 5e-4. Why: the two run different kernels (vLLM's CPU paged
attention, fused QKV / gate-up projections and its own vision-encoder path against PyTorch eager), so float32
rounding differs from the first layer on; measured here, the expected scores differ by up to 3e-5. 5e-4 leaves an
order of magnitude of room on another CPU (AVX2 instead of AVX-512 kernels), while a dropped LoRA module moves
scores by whole points (the merger's LoRA dropped: most labels change, see below). The bf16 default is the server
test's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _lane import MAX_NEW_TOKENS, assert_agree

pytestmark = pytest.mark.vllm
FLOAT32_TOLERANCE = 5e-4


@pytest.fixture(scope="module")
def backend(demo_model: Path, demo_adapter: Path) -> Any:
    from editjudge.judge.backends.vllm import VLLMBackend

    # max_loras=2: the adapter check below loads a second adapter into the same engine
    return VLLMBackend(str(demo_model), str(demo_adapter), batch_size=8, dtype="float32", max_model_len=2048,
                       max_loras=2)


def _items(eval_edits: list[dict[str, Any]]) -> list[Any]:
    from editjudge.judge import EditItem

    return [EditItem(e["source"], e["edited"], e["instruction"]) for e in eval_edits]


def test_engine_gets_what_the_adapter_needs(backend: Any) -> None:
    info = backend.adapter_modules
    assert info.connector and not info.tower  # the tiny_cpu shape: LM + vision merger, no vision blocks
    config = backend.llm.llm_engine.vllm_config.lora_config
    assert config.enable_tower_connector_lora is True
    assert config.max_lora_rank == 16


def test_vllm_scores_equal_transformers(backend: Any, eval_edits: list[dict[str, Any]], reference: list[Any]) -> None:
    from editjudge.judge import Judge

    judge = Judge.from_backend(backend, max_new_tokens=MAX_NEW_TOKENS)
    results = judge.score_many(_items(eval_edits))
    worst = assert_agree(results, reference, FLOAT32_TOLERANCE)
    print(f"vLLM float32 vs transformers: {len(results)} labels equal, max |expected score diff| {worst:.2e}")
    assert len({r.score for r in results}) == 2  # both kinds of answer: the adapter's labels depend on the images


def test_the_adapter_needs_its_merger_lora(demo_model: Path, demo_adapter: Path, eval_edits: list[dict[str, Any]],
                                           reference: list[Any]) -> None:
    """The equality above could not hold if vLLM dropped the merger's LoRA: without it most labels change."""
    from editjudge.judge import Judge
    from editjudge.judge.backends.transformers import TransformersBackend

    no_merger = TransformersBackend(str(demo_model), str(demo_adapter), device="cpu", batch_size=8)
    for name, param in no_merger.model.named_parameters():
        if "visual.merger" in name and "lora_B" in name:
            param.data.zero_()
    results = Judge.from_backend(no_merger, max_new_tokens=MAX_NEW_TOKENS).score_many(_items(eval_edits))
    changed = sum(r.score != want.score for r, want in zip(results, reference))
    assert changed >= len(reference) // 4, f"only {changed} labels depend on the merger's LoRA"


def test_avg_at_k_samples_k_answers_reproducibly(backend: Any, eval_edits: list[dict[str, Any]]) -> None:
    from editjudge.judge import Judge

    items = _items(eval_edits[:6])
    judge = Judge.from_backend(backend, num_samples=4, temperature=1.0, seed=3, max_new_tokens=MAX_NEW_TOKENS)
    first, again = judge.score_many(items), judge.score_many(items)
    for result, repeat in zip(first, again):
        assert result.error is None and len(result.scores) == 4
        parsed = [s for s in result.scores if s is not None]
        assert parsed and result.mean_score == pytest.approx(sum(parsed) / len(parsed))
        assert repeat.scores == result.scores  # vLLM's per-request seed: the same seed draws the same answers
    assert any(len(set(r.scores)) > 1 for r in first)  # sampled at temperature 1, not greedy k times


def test_an_adapter_module_the_engine_cannot_apply_is_an_error(backend: Any, demo_model: Path, tmp_path: Path) -> None:
    """LoRA on the vision patch embedding (a Conv3d): vLLM holds no LoRA layer for it and would drop it silently."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText
    from vllm.lora.request import LoRARequest

    from editjudge.judge.backends.vllm_lora import check_applied, read_adapter, unapplied_modules

    model = AutoModelForImageTextToText.from_pretrained(demo_model)
    config = LoraConfig(r=8, target_modules=["patch_embed.proj", "q_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(tmp_path / "conv-adapter")
    info = read_adapter(tmp_path / "conv-adapter")
    assert any("patch_embed" in m for m in info.tower)
    request = LoRARequest("conv", 2, str(tmp_path / "conv-adapter"))
    backend.llm.llm_engine.add_lora(request)
    missing = unapplied_modules(backend.llm.collective_rpc, request.lora_int_id)
    assert missing and all("patch_embed" in m for m in missing)
    with pytest.raises(ValueError, match="silently drop .* merge the adapter"):
        check_applied(info, missing)
    assert unapplied_modules(backend.llm.collective_rpc, backend.lora.lora_int_id) == []  # the demo's: all applied


def test_engine_args_that_would_drop_the_merger_are_refused(demo_model: Path, demo_adapter: Path) -> None:
    from editjudge.judge.backends.vllm import VLLMBackend

    with pytest.raises(ValueError, match="vision tower/merger .* drop --engine-arg enable_tower_connector_lora=false"):
        VLLMBackend(str(demo_model), str(demo_adapter), enable_tower_connector_lora=False)
    with pytest.raises(ValueError, match="LoRA rank 16 but --engine-arg max_lora_rank=8"):
        VLLMBackend(str(demo_model), str(demo_adapter), max_lora_rank=8)
