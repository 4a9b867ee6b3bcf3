"""A tiny Qwen2.5-VL taught (a few optimizer steps on CPU) to answer ``<think></think><answer>N</answer>``.

The random tiny model almost never emits a parsable answer; the judge's tests need one that does, so that the
expected score (digit probabilities at the answer step) is exercised on real generations. Half the examples answer
6 and half 7, so the answer-step distribution is spread over two digits and depends on the images.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

COLORS = ("red", "blue", "green", "yellow")
INSTRUCTIONS = ("make it {c}", "turn the square {c}", "change the colour of the circle to {c}", "make the triangle {c}")


def build_answering_model(base: Path, out: Path, steps: int = 30, lr: float = 8e-3) -> Path:
    """Fine-tune the tiny model at ``base`` into ``out`` (reused when it already exists)."""
    if (out / "config.json").is_file():
        return out
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from editjudge import prompts

    torch.manual_seed(0)
    processor = AutoProcessor.from_pretrained(base)
    model = AutoModelForImageTextToText.from_pretrained(base)
    processor.tokenizer.padding_side = "right"
    texts, images, prompt_lengths = [], [], []
    for i, color in enumerate(COLORS):
        messages = prompts.to_content_parts(prompts.build_messages(INSTRUCTIONS[i].format(c=color)))
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        pair = [Image.new("RGB", (56, 56), color), Image.new("RGB", (56, 84), COLORS[(i + 1) % len(COLORS)])]
        texts.append(prompt + prompts.format_answer(7 if i % 2 else 6) + "<|im_end|>")
        images.append(pair)
        prompt_lengths.append(processor(text=[prompt], images=pair, return_tensors="pt")["input_ids"].shape[1])
    return fit_and_save(processor, model, texts, images, prompt_lengths, out, steps, lr)


def fit_and_save(processor, model, texts: list[str], images: list, prompt_lengths: list[int], out: Path, steps: int,
                 lr: float) -> Path:
    """A few full-batch AdamW steps on the answers (prompt tokens masked), then the model saved into ``out``
    atomically (a concurrent build's copy is kept)."""
    import torch

    batch = processor(text=texts, images=images, padding=True, return_tensors="pt")
    labels = batch["input_ids"].clone()
    for row, length in enumerate(prompt_lengths):
        labels[row, :length] = -100
    labels[batch["attention_mask"] == 0] = -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steady on a shared 2-core machine; several threads thrash when other jobs run
    try:
        for _ in range(steps):
            model(**batch, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.eval()  # saved with right padding: the judge must ask for left padding itself
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    try:
        os.replace(tmp, out)
    except OSError:  # built concurrently by another fixture: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return out
