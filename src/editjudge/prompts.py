"""The judge's prompt and answer format: the single source of truth for the whole project.

Data preparation, both training engines, every judge backend and evaluation build their prompts here, and the
answer parser (:mod:`editjudge.answer`) reads the tags defined here. Imports no torch.

A prompt is two chat messages in verl's dataset form: a system message that asks for reasoning inside
``<think>…</think>`` followed by an integer 0–9 inside ``<answer>…</answer>``, and a user message that carries the
edit instruction and exactly two ``<image>`` placeholders — the source image first, then the edited image.

An edit of several source images ("put the cat from image 2 into image 1") gets one image line per source, in
order, written from the template's own source line (:func:`expand_sources`: ``input image: <image>`` becomes
``input image 1: <image>``, ``input image 2: <image>``, …); a prompt holds at most :data:`MAX_IMAGES_PER_PROMPT`
images (:class:`TooManyImages` beyond). One source keeps every template byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
IMAGE_PLACEHOLDER = "<image>"
SCORE_MIN, SCORE_MAX = 0, 9
IMAGES_PER_PROMPT = 2
# The most images one prompt may hold (sources + candidates): UnifiedReward-Edit's 16; each costs at least
# min_pixels' tokens, and vLLM's limit_mm_per_prompt is sized from it.
MAX_IMAGES_PER_PROMPT = 16
DATA_SOURCE = "tts_edit_score"
ABILITY = "image_editing_evaluation"
# Text an instruction must not hold: verl's image/video placeholders (RLHFDataset splits the prompt on them, so a third
# one asks for an image the row does not have) and Qwen's special tokens (``<|image_pad|>``, ``<|vision_start|>``,
# ``<|im_start|>``, …: the tokenizer reads them as control tokens, which breaks the processor's image expansion).
SPECIAL_TOKEN_RE = re.compile(r"<\|[^|<>\s]{1,40}\|>|<image>|<video>")


def special_tokens_in(text: str) -> list[str]:
    """The placeholders / special tokens found in ``text``, in order (empty when the text is safe in a prompt)."""
    return SPECIAL_TOKEN_RE.findall(text)


def check_instruction(instruction: str) -> str:
    """``instruction`` when it can go into a prompt; ``ValueError`` naming the tokens otherwise.

    The one rule for every place that builds a prompt (prepare rejects such a sample as ``special_token``, the
    judge answers it with an ``input_error``): rejecting keeps the text the annotators wrote, where escaping would
    silently change what the model reads.
    """
    found = special_tokens_in(instruction)
    if found:
        shown = ", ".join(dict.fromkeys(found))
        raise ValueError(
            f"the instruction holds {shown}: placeholders and the model's special tokens cannot appear in a prompt's "
            "text (remove them or write them differently, e.g. 'image tag')"
        )
    return instruction


class TooManyImages(ValueError):
    """A prompt that would hold more than :data:`MAX_IMAGES_PER_PROMPT` images; ``reason`` is ``too_many_images``."""

    reason = "too_many_images"


def check_image_count(n_images: int, what: str = "the prompt") -> int:
    """``n_images`` when one prompt may hold that many images (at least one), else :class:`TooManyImages` /
    ``ValueError`` naming the limit."""
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        raise ValueError(f"{what} needs at least one image, got {n_images!r}")
    if n_images > MAX_IMAGES_PER_PROMPT:
        raise TooManyImages(f"{what} would hold {n_images} images; a prompt holds at most {MAX_IMAGES_PER_PROMPT} "
                            "(sources and candidates together)")
    return n_images


def source_roles(n_sources: int) -> tuple[str, ...]:
    """The roles of an edit's source images in prompt order: ``("source",)`` for one, ``("source 1", …)`` for
    several."""
    if isinstance(n_sources, bool) or not isinstance(n_sources, int) or n_sources < 1:
        raise ValueError(f"an edit has at least one source image, got {n_sources!r}")
    return ("source",) if n_sources == 1 else tuple(f"source {i}" for i in range(1, n_sources + 1))


def expand_sources(user: str, n_sources: int) -> str:
    """A user template whose first ``<image>`` (the source's) stands for ``n_sources`` images, one line each.

    The source's line gives the wording: ``input image: <image>`` becomes ``input image 1: <image>``,
    ``input image 2: <image>``, …, each numbered as :func:`source_roles` names it. A placeholder with no label
    of its own before it on its line becomes ``source 1: <image> source 2: <image> …``. One source: ``user`` as is.
    """
    roles = source_roles(n_sources)
    if n_sources == 1:
        return user
    at = user.find(IMAGE_PLACEHOLDER)
    if at < 0:
        raise ValueError("the user template holds no <image> placeholder for the source")
    start = user.rfind("\n", 0, at) + 1
    label = user[start:at]
    stripped = label.rstrip()
    if stripped.endswith(":") and stripped[:-1].strip():
        name, separator = stripped[:-1].rstrip(), label[len(stripped) - 1 :]
        lines = "\n".join(f"{name} {i}{separator}{IMAGE_PLACEHOLDER}" for i in range(1, n_sources + 1))
        return user[:start] + lines + user[at + len(IMAGE_PLACEHOLDER) :]
    inline = " ".join(f"{role}: {IMAGE_PLACEHOLDER}" for role in roles)
    return user[:at] + inline + user[at + len(IMAGE_PLACEHOLDER) :]


@dataclass(frozen=True)
class PromptTemplate:
    """A named pair of templates; ``user`` holds ``{instruction}`` and exactly ``images`` ``<image>`` placeholders
    (two for the seed's pointwise format: source, then edited; a format's ``image_roles`` give the order)."""

    name: str
    system: str
    user: str
    images: int = IMAGES_PER_PROMPT

    def __post_init__(self) -> None:
        count = self.user.count(IMAGE_PLACEHOLDER)
        if count != self.images:
            order = " (source, then edited)" if self.images == IMAGES_PER_PROMPT else ""
            raise ValueError(
                f"prompt template {self.name!r}: the user template must contain exactly {self.images} "
                f"{IMAGE_PLACEHOLDER} placeholders{order}; found {count}"
            )
        if "{instruction}" not in self.user:
            raise ValueError(f"prompt template {self.name!r}: the user template must contain '{{instruction}}'")
        if self.system.count(IMAGE_PLACEHOLDER):
            raise ValueError(f"prompt template {self.name!r}: the system template must not contain {IMAGE_PLACEHOLDER}")

    def user_text(self, instruction: str, n_sources: int = 1) -> str:
        """The user message for one edit instruction (placeholders kept as ``<image>``; several source images:
        one line each, :func:`expand_sources`)."""
        # str.replace rather than str.format: instructions and user templates may contain braces.
        return expand_sources(self.user, n_sources).replace("{instruction}", check_instruction(instruction.strip()))


EN = PromptTemplate(
    name="en",
    system=(
        "You are a helpful assistant. You first think about the reasoning process in your mind and then give the "
        f"user the answer. The reasoning process is enclosed within {THINK_OPEN} {THINK_CLOSE} tags and the answer "
        f"within {ANSWER_OPEN} {ANSWER_CLOSE} tags, i.e. {THINK_OPEN} reasoning here {THINK_CLOSE}"
        f"{ANSWER_OPEN} answer here {ANSWER_CLOSE}."
    ),
    user=(
        "You are an expert judge of image edits. Compare the input image with the edited image and rate how well "
        "the edit follows the instruction while keeping the image natural and free of artifacts. "
        f"Answer with a single integer from {SCORE_MIN} to {SCORE_MAX} inside {ANSWER_OPEN}{ANSWER_CLOSE}, where "
        f"{SCORE_MIN} means very bad and {SCORE_MAX} means very good.\n"
        "Edit instruction: {instruction}\n"
        f"input image: {IMAGE_PLACEHOLDER}\n"
        f"edited image: {IMAGE_PLACEHOLDER}"
    ),
)

ZH = PromptTemplate(
    name="zh",
    system=(
        "你是一个乐于助人的助手。你先在脑海中思考推理过程，然后给出答案。推理过程放在"
        f"{THINK_OPEN} {THINK_CLOSE} 标签内，答案放在 {ANSWER_OPEN} {ANSWER_CLOSE} 标签内，即 "
        f"{THINK_OPEN} 推理过程 {THINK_CLOSE}{ANSWER_OPEN} 答案 {ANSWER_CLOSE}。"
    ),
    user=(
        "你是一名图像编辑评分专家。请比较输入图像和编辑后的图像，评价编辑是否遵循指令、画面是否自然。"
        f"请在 {ANSWER_OPEN}{ANSWER_CLOSE} 中给出 {SCORE_MIN} 到 {SCORE_MAX} 之间的整数分数，"
        f"{SCORE_MIN} 表示非常差，{SCORE_MAX} 表示非常好。\n"
        "编辑指令：{instruction}\n"
        f"input image: {IMAGE_PLACEHOLDER}\n"
        f"edited image: {IMAGE_PLACEHOLDER}"
    ),
)

# A short template for the CPU demo (a tiny model trains ~2.5x faster on short prompts); same tags, same answer.
DEMO = PromptTemplate(
    name="demo",
    system=f"Reason in {THINK_OPEN}{THINK_CLOSE}, then rate {SCORE_MIN}-{SCORE_MAX} in {ANSWER_OPEN}{ANSWER_CLOSE}.",
    user=f"Edit instruction: {{instruction}}\ninput image: {IMAGE_PLACEHOLDER}\nedited image: {IMAGE_PLACEHOLDER}",
)

BUILTIN_TEMPLATES: dict[str, PromptTemplate] = {t.name: t for t in (EN, ZH, DEMO)}
DEFAULT_TEMPLATE = "en"


def load_template(name_or_path: str | Path = DEFAULT_TEMPLATE, images: int = IMAGES_PER_PROMPT) -> PromptTemplate:
    """A built-in template by name (``en``, ``zh``, ``demo``) or a user file (YAML or JSON with ``system`` and
    ``user``); ``images`` is the placeholder count the user template must hold (the built-ins hold two)."""
    if isinstance(name_or_path, str) and name_or_path in BUILTIN_TEMPLATES and images == IMAGES_PER_PROMPT:
        return BUILTIN_TEMPLATES[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(
            f"unknown prompt template {str(name_or_path)!r}: use one of {sorted(BUILTIN_TEMPLATES)} "
            "or a YAML/JSON file with 'system' and 'user' keys"
        )
    import yaml  # JSON is YAML too

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"prompt template file {path}: not readable YAML/JSON ({reason})") from None
    if not isinstance(data, dict) or not isinstance(data.get("system"), str) or not isinstance(data.get("user"), str):
        raise ValueError(f"prompt template file {path}: expected a mapping with string keys 'system' and 'user'")
    return PromptTemplate(name=str(data.get("name", path.stem)), system=data["system"], user=data["user"], images=images)


def build_messages(instruction: str, template: PromptTemplate | str = DEFAULT_TEMPLATE,
                   n_sources: int = 1) -> list[dict[str, str]]:
    """verl's dataset form: string contents, the user message holding one ``<image>`` placeholder per image (two
    for one source: source, edited)."""
    tpl = template if isinstance(template, PromptTemplate) else load_template(template)
    return [
        {"role": "system", "content": tpl.system},
        {"role": "user", "content": tpl.user_text(instruction, n_sources)},
    ]


def to_content_parts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hugging Face multimodal form: each ``<image>`` becomes a ``{"type": "image"}`` part, in order.

    This is what processors' chat templates, TRL's GRPOTrainer and OpenAI-style clients consume.
    """
    converted: list[dict[str, Any]] = []
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            converted.append(dict(message))
            continue
        parts: list[dict[str, Any]] = []
        for i, chunk in enumerate(content.split(IMAGE_PLACEHOLDER)):
            if i:
                parts.append({"type": "image"})
            if chunk:
                parts.append({"type": "text", "text": chunk})
        converted.append({"role": message["role"], "content": parts})
    return converted


def format_answer(score: int, reasoning: str = "") -> str:
    """A well-formed response, e.g. for supervised warm starts and tests."""
    if not SCORE_MIN <= int(score) <= SCORE_MAX:
        raise ValueError(f"score must be in {SCORE_MIN}..{SCORE_MAX}, got {score}")
    return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{ANSWER_OPEN}{int(score)}{ANSWER_CLOSE}"
