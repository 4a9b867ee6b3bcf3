"""The tiny offline Qwen2.5-VL loads like a hub checkpoint and sees both images."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")


def test_tiny_model_loads_and_generates_with_two_images(tiny_model_dir) -> None:
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from editjudge import prompts

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    text = processor.apply_chat_template(
        prompts.to_content_parts(prompts.build_messages("make it red")), add_generation_prompt=True, tokenize=False
    )
    images = [Image.new("RGB", (200, 150), "red"), Image.new("RGB", (90, 300), "blue")]
    inputs = processor(text=[text], images=images, return_tensors="pt")
    assert inputs["image_grid_thw"].shape[0] == 2
    image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    merge = model.config.vision_config.spatial_merge_size ** 2
    assert image_tokens == int(inputs["image_grid_thw"].prod(dim=1).sum()) // merge
    torch.manual_seed(0)
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    for digit in "0123456789":  # single tokens: the judge reads digit probabilities at the answer position
        assert len(processor.tokenizer.encode(digit, add_special_tokens=False)) == 1


def test_cli_builds_tiny_model(tmp_path) -> None:
    from editjudge.cli import main

    assert main(["tiny-model", "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "model.safetensors").is_file()


@pytest.mark.slow  # builds the 3B architecture on the meta device (no memory), ~10 s
def test_qwen2_5_vl_3b_architecture_matches_the_real_model_and_the_preset_lora() -> None:
    from peft import LoraConfig, get_peft_model

    from editjudge import tiny
    from editjudge.train.presets import load_preset

    processor, model = tiny.build_qwen2_5_vl_3b("meta")
    total = sum(p.numel() for p in model.parameters())
    vision = sum(p.numel() for name, p in model.named_parameters() if "visual" in name)
    assert round(total / 1e9, 2) == 3.75 and round(vision / 1e9, 2) == 0.67  # Qwen2.5-VL-3B-Instruct's sizes
    keys = load_preset("qwen2_5_vl_3b_lora").overrides
    lora = LoraConfig(
        r=keys["actor_rollout_ref.model.lora_rank"], lora_alpha=keys["actor_rollout_ref.model.lora_alpha"],
        target_modules=keys["actor_rollout_ref.model.target_modules"],
        exclude_modules=keys["actor_rollout_ref.model.exclude_modules"],
    )
    peft_model = get_peft_model(model, lora)
    trainable = {name: p.numel() for name, p in peft_model.named_parameters() if p.requires_grad}
    assert sum(trainable.values()) == 239_468_544  # r128 on every linear layer of the language model
    assert not [name for name in trainable if "visual" in name]
    assert processor.image_processor.size["longest_edge"] == tiny.QWEN_MAX_PIXELS


def test_qk_scale_softens_only_the_language_model_attention(tmp_path) -> None:
    from safetensors.torch import load_file

    from editjudge.tiny import build_tiny_model

    plain = load_file(build_tiny_model(tmp_path / "a", seed=3, hidden_size=64) / "model.safetensors")
    soft = load_file(build_tiny_model(tmp_path / "b", seed=3, hidden_size=64, qk_scale=0.3) / "model.safetensors")
    scaled = [k for k in plain if "visual" not in k and ("q_proj" in k or "k_proj" in k)]
    assert scaled and all(soft[k].allclose(plain[k] * 0.3) for k in scaled)
    assert all(soft[k].equal(plain[k]) for k in plain if k not in scaled)  # vision tower, v/o, MLP untouched
    # A folder built with other options is not silently reused.
    with pytest.raises(ValueError, match="qk_scale"):
        build_tiny_model(tmp_path / "b", seed=3, hidden_size=64, qk_scale=1.0)
    assert build_tiny_model(tmp_path / "b", seed=3, hidden_size=64, qk_scale=0.3) == tmp_path / "b"


def test_dimension_heads_are_single_tokens_with_rows_of_their_own(tmp_path) -> None:
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from editjudge.cli import main
    from editjudge.formats.dimensions import dimensions_format
    from editjudge.tiny import build_tiny_model

    fmt = dimensions_format("follow_preserve")
    assert fmt.entry_heads == ("following: ", "preservation: ")
    plain_dir = build_tiny_model(tmp_path / "plain", seed=3, hidden_size=64)
    assert main(["tiny-model", "--out", str(tmp_path / "dims"), "--seed", "3", "--dimensions", "follow_preserve"]) == 0
    heads_dir = tmp_path / "dims"
    tokenizer = AutoTokenizer.from_pretrained(heads_dir)
    answer = fmt.answer_text((7, 3), "ok")
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(answer, add_special_tokens=False)["input_ids"])
    assert tokens[-6:] == ["following: ", "7", "Ċ", "preservation: ", "3", "</answer>"]
    assert tokenizer.decode(tokenizer(answer, add_special_tokens=False)["input_ids"]) == answer
    # the prompt's own mentions ("rate each of following, preservation") keep their pieces
    assert "following: " not in tokenizer.tokenize("rate each of following, preservation 0-9")

    plain, heads = load_file(plain_dir / "model.safetensors"), load_file(heads_dir / "model.safetensors")
    key = next(k for k in plain if "embed_tokens" in k)
    old = plain[key].shape[0]
    assert heads[key].shape[0] == old + 2 and heads[key][:old].equal(plain[key])  # every earlier row as drawn
    new = heads[key][old:]
    assert not new[0].allclose(new[1]) and not new[0].allclose(plain[key].mean(0))
    assert all(heads[k].equal(plain[k]) for k in plain if k != key and "lm_head" not in k)
    with pytest.raises(ValueError, match="answer_heads"):  # a folder built without the heads is not reused as one
        build_tiny_model(tmp_path / "plain", seed=3, hidden_size=64, answer_heads=fmt.entry_heads)


def test_an_unknown_dimension_set_is_a_usage_error_naming_the_shipped_sets(tmp_path, capsys) -> None:
    from editjudge.cli import main

    assert main(["tiny-model", "--out", str(tmp_path / "m"), "--dimensions", "nosuchset"]) == 2
    assert "unknown dimension set 'nosuchset'" in capsys.readouterr().out and not (tmp_path / "m").exists()
