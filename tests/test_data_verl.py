"""The parquet that `prepare` writes loads through verl's own RLHFDataset with a real Qwen2.5-VL processor."""

from __future__ import annotations

import pytest

from editjudge.data.prepare import PrepareConfig, prepare
from editjudge.synthetic import write_synthetic_edits

MAX_PROMPT = 300  # tight on purpose: the tiny processor allows 64 tokens per image, the text takes ~230


@pytest.mark.slow
def test_rows_load_in_verl_rlhf_dataset_with_exact_prompt_lengths(tmp_path, tiny_model_dir):
    pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from qwen_vl_utils import process_vision_info
    from transformers import AutoProcessor
    from verl.utils.dataset.rl_dataset import RLHFDataset

    data = write_synthetic_edits(tmp_path / "data", n_sources=3, candidates_per_source=3, size=256, seed=4, faults=True)
    result = prepare(
        PrepareConfig(
            inputs=(str(data.out_dir),), out_dir=str(tmp_path / "out"), processor=str(tiny_model_dir),
            max_prompt_length=MAX_PROMPT, train_split=1.0, workers=1, progress=False,
        )
    )
    kept = result.report["counts"]["train"]
    assert kept == 9 + 4  # clean samples + the four convertible faults

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    # No worker processes for the length filter: forking a process that already ran torch can hang in OpenMP.
    config = OmegaConf.create(
        {"max_prompt_length": MAX_PROMPT, "filter_overlong_prompts": True, "filter_overlong_prompts_workers": None,
         "cache_dir": str(tmp_path / "verl_cache")}
    )
    dataset = RLHFDataset([str(result.train_path)], processor.tokenizer, config, processor=processor)
    assert len(dataset) == kept  # verl's own length filter dropped nothing
    for i in range(len(dataset)):
        row = dataset[i]
        messages = row["raw_prompt"]
        parts = [p for m in messages if isinstance(m["content"], list) for p in m["content"]]
        assert [p["type"] for p in parts].count("image") == 2
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        images, _ = process_vision_info(messages, image_patch_size=14)
        length = len(processor(text=[text], images=images)["input_ids"][0])
        assert length == row["extra_info"]["prompt_tokens"] <= MAX_PROMPT
        assert row["reward_model"]["ground_truth"] == str(row["extra_info"]["label"])
