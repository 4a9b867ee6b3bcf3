"""Prompt token counts: the exact counter agrees with the real processor; the estimate errs long."""

from __future__ import annotations

import pytest

from editjudge import prompts
from editjudge.data.tokens import EstimateCounter, load_counter


@pytest.mark.parametrize("template", ["en", "zh"])
def test_exact_counter_matches_the_processor_and_the_estimate_is_not_shorter(tiny_model_dir, template):
    transformers = pytest.importorskip("transformers")
    from PIL import Image

    processor = transformers.AutoProcessor.from_pretrained(tiny_model_dir)
    counter = load_counter(tiny_model_dir)
    messages = prompts.build_messages("make the circle red {not a field}", template)
    rendered = processor.apply_chat_template(prompts.to_content_parts(messages), add_generation_prompt=True, tokenize=False)
    assert counter.render(messages) == rendered
    images = [Image.new("RGB", (224, 168)), Image.new("RGB", (112, 56))]
    ids = processor(text=[rendered], images=images)["input_ids"][0]
    assert len(ids) == counter.text_tokens(messages) + 6 * 8 + 2 * 4
    assert EstimateCounter().text_tokens(messages) >= counter.text_tokens(messages)


def test_load_counter_explains_a_wrong_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        load_counter(tmp_path)
