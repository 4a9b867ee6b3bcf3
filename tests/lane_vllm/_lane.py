"""The vLLM lane's judge and checks: the demo's tiny Qwen2.5-VL with a LoRA adapter shaped like the demo's, built offline.

The demo trains with TRL's GRPO in the main environment; this lane runs in vLLM's own environment (no TRL), so the
adapter is trained here with PEFT and a few supervised steps, but with the *same* LoRA the TRL engine builds from the
``tiny_cpu`` preset (:func:`editjudge.train.trl.lora_config`: rank 16, all LM linears **and the vision merger**). It
learns to answer ``<think></think><answer>1</answer>`` when the edited image is a warm colour and ``7`` otherwise (the demo's
two kinds of edit), so its answer depends on the pixels through the vision merger: the LoRA vLLM drops without
``enable_tower_connector_lora``. Training stops early enough that the answer digit keeps some spread, so expected
scores are not all exactly 1 or 7.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

MAX_NEW_TOKENS = 16  # "<think></think><answer>N</answer><|im_end|>" is 6 tokens of the tiny model
COLORS = ("red", "blue", "green", "yellow", "white", "purple", "orange", "black")


def png(color: str, size: tuple[int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


WARM = ("red", "orange", "yellow", "purple")  # edited to one of these: label 1; to the others: label 7


def label_of(edited_color: str) -> int:
    return 1 if edited_color in WARM else 7


def edits(n: int, offset: int = 0) -> list[dict]:
    """``n`` edits (source, edited PNG bytes, instruction, the taught label); ``offset`` shifts colours and sizes."""
    out = []
    for i in range(offset, offset + n):
        src, edt = COLORS[(i * 3) % len(COLORS)], COLORS[i % len(COLORS)]
        out.append({
            "id": f"e{i}", "source": png(src, (56 + 28 * (i % 2), 56)), "edited": png(edt, (56, 56 + 28 * (i % 3 == 0))),
            "instruction": f"make the square {COLORS[(i + 1) % len(COLORS)]}", "label": label_of(edt), "color": edt,
        })
    return out


def build_demo_like_adapter(base: Path, out: Path, steps: int = 12, lr: float = 1e-2) -> Path:
    """Train the tiny_cpu-shaped LoRA on ``base`` into ``out`` (reused when present)."""
    if (out / "adapter_config.json").is_file():
        return out
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from editjudge import prompts
    from editjudge.judge.request import ImageSizing, build_request
    from editjudge.train.presets import load_preset
    from editjudge.train.trl import lora_config, settings_from_overrides

    torch.manual_seed(0)
    processor = AutoProcessor.from_pretrained(base)
    model = get_peft_model(AutoModelForImageTextToText.from_pretrained(base),
                           lora_config(settings_from_overrides(load_preset("tiny_cpu").overrides, model=str(base), output_dir=str(out))))
    train = edits(8, offset=96)  # one edit per colour, none of them an evaluation edit
    texts, images, prompt_lengths = [], [], []
    for e in train:
        request = build_request(e["source"], e["edited"], e["instruction"], prompts.DEFAULT_TEMPLATE, ImageSizing())
        prompt = processor.apply_chat_template(request.content_parts(), add_generation_prompt=True, tokenize=False)
        texts.append(prompt + prompts.format_answer(e["label"]) + "<|im_end|>")
        images.append(list(request.images))
        prompt_lengths.append(processor(text=[prompt], images=list(request.images), return_tensors="pt")["input_ids"].shape[1])
    processor.tokenizer.padding_side = "right"
    batch = processor(text=texts, images=images, padding=True, return_tensors="pt")
    labels = batch["input_ids"].clone()
    for row, length in enumerate(prompt_lengths):
        labels[row, :length] = -100
    labels[batch["attention_mask"] == 0] = -100
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    model.save_pretrained(tmp)
    try:
        os.replace(tmp, out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def assert_agree(results: list[Any], expected: list[Any], tolerance: float) -> float:
    """Greedy labels equal and expected scores within ``tolerance``; returns the largest difference."""
    assert len(results) == len(expected)
    worst = 0.0
    for got, want in zip(results, expected):
        got_error = got["error"] if isinstance(got, dict) else got.error
        got_score = got["score"] if isinstance(got, dict) else got.score
        got_expected = got["expected_score"] if isinstance(got, dict) else got.expected_score
        assert got_error is None and want.error is None
        assert got_score == want.score
        assert got_expected is not None and want.expected_score is not None
        worst = max(worst, abs(got_expected - want.expected_score))
    assert worst <= tolerance, f"expected scores differ by up to {worst:.2e} (tolerance {tolerance:.0e})"
    return worst


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(process: Any, url: str, log: Path, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200; fail with the log's end when the process exits or ``timeout_s`` passes
    (a hang catcher, not a speed limit)."""
    import time

    import httpx
    import pytest

    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            pytest.fail(f"{process.args} exited ({process.returncode}):\n" + log.read_text(errors="replace")[-4000:])
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not come up in {timeout_s:g} s:\n" + log.read_text(errors="replace")[-4000:])
        time.sleep(2)
