"""A tiny Qwen2.5-VL taught (a few optimizer steps on CPU) to answer the pairwise format, ``<answer>A|B|tie``.

The random tiny model never writes a parsable answer; the pairwise verbs' tests (serve's /v1/compare, best-of-n
--pairwise, eval on pair rows) need one that does, so that preferences and p(A), p(B), p(tie) come from real
generations. Each example's answer follows the candidates' colours (the redder one, tie for two of one colour).
"""

from __future__ import annotations

from pathlib import Path

PAIRS = [("red", "blue", "A"), ("blue", "red", "B"), ("red", "red", "tie"), ("blue", "blue", "tie")]
INSTRUCTION = "make the square red"


def build_pair_answering_model(base: Path, out: Path, steps: int = 40, lr: float = 8e-3) -> Path:
    """Fine-tune a pairwise tiny model ('tie' one token; built beside ``out``, with ``base``'s seed and size: the
    defaults) into ``out`` (reused when it already exists)."""
    if (out / "config.json").is_file():
        return out
    from editjudge.tiny import ANSWER_WORDS, build_tiny_model

    base = build_tiny_model(out.parent / f"{out.name}-base", answer_words=ANSWER_WORDS)
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from _judge_models import fit_and_save
    from editjudge import prompts
    from editjudge.formats import PAIRWISE

    torch.manual_seed(0)
    processor = AutoProcessor.from_pretrained(base)
    model = AutoModelForImageTextToText.from_pretrained(base)
    processor.tokenizer.padding_side = "right"
    messages = prompts.to_content_parts(PAIRWISE.messages(INSTRUCTION, "demo"))
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    texts, images, prompt_lengths = [], [], []
    for a, b, choice in PAIRS:
        trio = [Image.new("RGB", (56, 56), "blue"), Image.new("RGB", (56, 56), a), Image.new("RGB", (56, 56), b)]
        texts.append(prompt + PAIRWISE.answer_text(choice, "r") + "<|im_end|>")
        images.append(trio)
        prompt_lengths.append(processor(text=[prompt], images=trio, return_tensors="pt")["input_ids"].shape[1])
    return fit_and_save(processor, model, texts, images, prompt_lengths, out, steps, lr)
