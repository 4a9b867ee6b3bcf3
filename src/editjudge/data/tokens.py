"""Count a prompt's text tokens the way Qwen2.5-VL's processor will see them. Imports no torch.

A prompt's length in tokens is ``text_tokens(messages) + sum(image tokens)``, where ``text_tokens`` counts the chat
template's rendering with each image as ``<|vision_start|><|image_pad|><|vision_end|>`` minus the one
``<|image_pad|>`` per image (the processor replaces it by the image's ``(h/28)*(w/28)`` tokens).

Two counters:

* :class:`TokenizerCounter` — exact: the model's ``tokenizer.json`` (``tokenizers`` library) and its chat template
  (rendered with jinja2 the way transformers does). Built with :func:`load_counter` from a model/processor folder.
* :class:`EstimateCounter` — without a model: the Qwen chat layout, each special token as 1 token, ASCII text at
  3 characters per token (Qwen's tokenizer averages about 4 on English), every other character as 1 token
  (Chinese averages about 1.4 characters per token), plus a margin of 16 tokens. It errs on the long side.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from editjudge import prompts

__all__ = ["VISION_START", "IMAGE_PAD", "VISION_END", "TextCounter", "EstimateCounter", "TokenizerCounter", "load_counter"]

VISION_START, IMAGE_PAD, VISION_END = "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
_SPECIAL = re.compile(r"<\|[a-z_]+\|>|" + "|".join(re.escape(t) for t in (prompts.THINK_OPEN, prompts.THINK_CLOSE, prompts.ANSWER_OPEN, prompts.ANSWER_CLOSE)))


class TextCounter(Protocol):
    """Anything that counts the text tokens of verl-style messages (string contents with ``<image>``)."""

    name: str

    def text_tokens(self, messages: list[dict[str, Any]]) -> int: ...


def _qwen_layout(messages: list[dict[str, Any]]) -> str:
    """Qwen2.5-VL's chat layout of string-content messages, images expanded to vision tags, generation prompt on."""
    vision = f"{VISION_START}{IMAGE_PAD}{VISION_END}"
    parts = [f"{IM_START}{m['role']}\n{str(m['content']).replace(prompts.IMAGE_PLACEHOLDER, vision)}{IM_END}\n" for m in messages]
    return "".join(parts) + f"{IM_START}assistant\n"


@dataclass(frozen=True)
class EstimateCounter:
    """A documented, deliberately generous estimate for when no tokenizer is given (see the module docstring)."""

    chars_per_ascii_token: float = 3.0
    margin: int = 16
    name: str = "estimate"

    def text_tokens(self, messages: list[dict[str, Any]]) -> int:
        text = _qwen_layout(messages)
        specials = _SPECIAL.findall(text)
        rest = _SPECIAL.sub("", text)
        ascii_chars = sum(1 for c in rest if ord(c) < 128)
        other = len(rest) - ascii_chars
        images = text.count(IMAGE_PAD)
        return len(specials) - images + math.ceil(ascii_chars / self.chars_per_ascii_token) + other + self.margin


@dataclass
class TokenizerCounter:
    """Exact counts from a model's ``tokenizer.json`` and chat template (no transformers, no torch)."""

    tokenizer: Any  # tokenizers.Tokenizer
    chat_template: str
    image_pad_id: int
    name: str = "tokenizer"
    _template: Any = field(default=None, repr=False)

    def render(self, messages: list[dict[str, Any]]) -> str:
        """The chat template's text for ``messages``, as ``processor.apply_chat_template(..., tokenize=False)``."""
        if self._template is None:
            self._template = _compile(self.chat_template)
        return self._template.render(messages=prompts.to_content_parts(messages), add_generation_prompt=True)

    def text_tokens(self, messages: list[dict[str, Any]]) -> int:
        ids = self.tokenizer.encode(self.render(messages), add_special_tokens=False).ids
        return len(ids) - ids.count(self.image_pad_id)


def _compile(source: str) -> Any:
    """Compile a chat template like transformers does (sandboxed, trim/lstrip blocks, loop controls, tojson)."""
    try:
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as exc:  # pragma: no cover - jinja2 ships with transformers
        raise ImportError("counting tokens with a model's chat template needs jinja2: pip install 'editjudge[tokens]'") from exc

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda value, indent=None, **_: json.dumps(value, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source)


def _find_chat_template(folder: Path) -> str:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name in ("chat_template.json", "processor_config.json", "tokenizer_config.json"):
        file = folder / name
        if file.is_file():
            template = json.loads(file.read_text(encoding="utf-8")).get("chat_template")
            if isinstance(template, str) and template:
                return template
    raise FileNotFoundError(f"{folder}: no chat template (chat_template.jinja / chat_template.json / tokenizer_config.json)")


def load_counter(path: str | Path) -> TokenizerCounter:
    """An exact counter from a model or processor folder holding ``tokenizer.json`` and a chat template."""
    folder = Path(path)
    file = folder / "tokenizer.json"
    if not file.is_file():
        raise FileNotFoundError(f"{folder}: no tokenizer.json; pass the folder of a Qwen2.5-VL model or processor")
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:  # pragma: no cover - tokenizers ships with transformers
        raise ImportError("exact token counts need the 'tokenizers' library: pip install 'editjudge[tokens]'") from exc
    tokenizer = Tokenizer.from_file(str(file))
    pad = tokenizer.token_to_id(IMAGE_PAD)
    if pad is None:
        raise ValueError(f"{file}: the tokenizer has no {IMAGE_PAD} token; is this a Qwen2.5-VL model?")
    return TokenizerCounter(tokenizer=tokenizer, chat_template=_find_chat_template(folder), image_pad_id=pad, name=f"tokenizer:{folder}")
