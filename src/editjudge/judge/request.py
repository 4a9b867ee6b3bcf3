"""The backend-independent request: prompt messages from :mod:`editjudge.prompts` + the two sized images.

Built once per edit and consumed by every backend, so transformers, vLLM and OpenAI-compatible servers all see the
same prompt and the same pixels as training did: images go through :mod:`editjudge.data.images` exactly as
``editjudge prepare`` sends them into the parquet (header probe, token-budget plan for the pair, reduced-scale
decode, EXIF transpose, RGB, resize, JPEG at prepare's quality), then are decoded like the trainer decodes them.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from editjudge import prompts
from editjudge.data import images as imgs
from editjudge.data.prepare import PrepareConfig
from editjudge.formats import POINTWISE, JudgmentFormat

if TYPE_CHECKING:
    from PIL import Image

    from editjudge.data.tokens import TextCounter

ImageInput = Union[str, "os.PathLike[str]", bytes, "Image.Image"]


@dataclass(frozen=True)
class ImageSizing:
    """The image settings ``prepare`` used; pass the same values to size images at inference as in training.

    Fields and defaults mirror ``editjudge prepare``'s flags: ``--max-prompt-length``, ``--max-image-tokens``,
    ``--processor`` (a model/processor folder: its pixel limits and exact token counts), ``--min-pixels``,
    ``--max-pixels``, ``--jpeg-quality``, ``--max-image-pixels``.
    """

    max_prompt_length: int = PrepareConfig.max_prompt_length
    max_image_tokens: int | None = PrepareConfig.max_image_tokens
    processor: str | None = PrepareConfig.processor
    min_pixels: int | None = PrepareConfig.min_pixels
    max_pixels: int | None = PrepareConfig.max_pixels
    jpeg_quality: int = PrepareConfig.jpeg_quality
    max_image_pixels: int = PrepareConfig.max_image_pixels

    @classmethod
    def from_prepare_report(cls, path: str | os.PathLike[str], **overrides: Any) -> ImageSizing:
        """The settings recorded in ``prepare_report.json`` (``settings``), with ``overrides`` that are not None;
        ``ValueError`` naming the file when it is not one (:func:`editjudge.data.report.read_report`)."""
        from editjudge.data.report import read_report

        try:
            settings = read_report(path)["settings"]
        except ValueError as exc:
            raise ValueError(f"{exc}; pass the image flags instead") from None
        names = [f for f in cls.__dataclass_fields__ if f in settings]
        values = {name: settings[name] for name in names}
        if values.get("processor") and overrides.get("processor") is None:
            values["processor"] = str(recorded_processor(values["processor"], path))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @cached_property
    def limits(self) -> imgs.PixelLimits:
        """The processor's pixel limits with prepare's overrides applied."""
        return imgs.PixelLimits.resolve(self.processor, self.min_pixels, self.max_pixels)

    @cached_property
    def counter(self) -> TextCounter:
        """Exact text-token counts with ``processor``, prepare's documented estimate without."""
        from editjudge.data.tokens import EstimateCounter, load_counter

        return load_counter(self.processor) if self.processor else EstimateCounter()

    def size_pair(self, source: bytes, edited: bytes, messages: list[dict[str, str]]) -> tuple[Image.Image, Image.Image]:
        """Both images as the trainer sees them; :class:`~editjudge.data.images.ImageRejected` when unusable."""
        source_image, edited_image = self.size_images((source, edited), ("source", "edited"), messages)
        return source_image, edited_image

    def size_images(self, images: Sequence[bytes], roles: Sequence[str], messages: list[dict[str, str]]) \
            -> tuple[Image.Image, ...]:
        """Every image of one prompt (named by its format's ``roles``, in order) as the trainer sees them, sized
        together within the prompt's budget (:func:`~editjudge.data.images.plan_images`, as ``prepare`` does);
        :class:`~editjudge.data.images.ImageRejected` naming the image when one is unusable."""
        infos = [_probe(data, role_name(role), self.max_image_pixels) for data, role in zip(images, roles)]
        budget = self.max_prompt_length - self.counter.text_tokens(messages)
        plan = imgs.plan_images([info.upright_hw for info in infos], budget, self.limits, self.max_image_tokens)
        return tuple(self._sized(data, hw, info, role_name(role))
                     for data, hw, info, role in zip(images, plan, infos, roles))

    def _sized(self, data: bytes, hw: tuple[int, int], info: imgs.ImageInfo, role: str) -> Image.Image:
        from PIL import Image

        try:
            sized = imgs.size_image(data, hw, info, self.jpeg_quality, self.max_image_pixels, self.limits.factor)
        except imgs.ImageRejected as exc:
            raise imgs.ImageRejected(exc.reason, f"{role} image: {exc.detail}") from None
        image = Image.open(io.BytesIO(sized.bytes))
        image.load()
        return imgs.to_rgb(image)


def recorded_processor(value: str, report: str | os.PathLike[str]) -> Path:
    """The processor folder a prepare report records (absolute, or relative to the report), checked now: a folder
    holding ``tokenizer.json``; ``FileNotFoundError`` naming the fix otherwise, before any model is loaded."""
    from editjudge.model_path import resolve_recorded

    folder = resolve_recorded(value, report)
    if not (folder / "tokenizer.json").is_file():
        where = "no such folder" if not folder.is_dir() else "no tokenizer.json there"
        raise FileNotFoundError(
            f"{os.fspath(report)} records the processor {value!r} ({folder}: {where}): pass --processor with the "
            "folder `editjudge prepare --processor` was given, or rerun prepare (it records absolute paths)"
        )
    return folder


def role_name(role: str) -> str:
    """How an image role reads in a message: ``source``, ``source 2``, ``edited``, ``candidate A``."""
    return f"candidate {role}" if role in ("A", "B") else role


def _probe(data: bytes, role: str, bomb_pixels: int) -> imgs.ImageInfo:
    try:
        return imgs.probe(data, bomb_pixels)
    except imgs.ImageRejected as exc:
        raise imgs.ImageRejected(exc.reason, f"{role} image: {exc.detail}") from None


def image_bytes(image: ImageInput, role: str = "image") -> bytes:
    """The encoded bytes of a path, bytes or PIL image (PIL images are encoded as lossless PNG)."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        from editjudge.data.files import FileRejected, read_file

        try:  # regular files only, within the size cap: a FIFO must not hang the run, /dev/zero not eat the memory
            return read_file(image)
        except FileRejected as exc:
            if exc.reason == "missing_file":
                raise FileNotFoundError(f"{role} image {exc.detail}") from None
            raise imgs.ImageRejected(exc.reason, f"{role} image {exc.detail}") from None
    from PIL import Image

    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    raise TypeError(f"{role} image: expected a path, bytes or a PIL image, got {type(image).__name__}")


@dataclass(frozen=True)
class JudgeRequest:
    """Messages in verl's form (one ``<image>`` placeholder per image) and the sized images in the format's order
    (pointwise: source, edited); ``format`` tells backends where the answer slots are."""

    messages: list[dict[str, str]]
    images: tuple[Any, ...]
    format: JudgmentFormat = POINTWISE

    def content_parts(self) -> list[dict[str, Any]]:
        """The messages in the Hugging Face multimodal form (``{"type": "image"}`` parts)."""
        return prompts.to_content_parts(self.messages)


Sources = Union[ImageInput, Sequence[ImageInput]]  # one source image, or an edit's several, in order


def as_sources(source: Sources) -> tuple[ImageInput, ...]:
    """An edit's source images in order: one image, or a list/tuple of them (``ValueError`` when empty)."""
    if isinstance(source, (list, tuple)):
        if not source:
            raise ValueError("the edit has no source image")
        return tuple(source)
    return (source,)


def build_request(
    source: Sources,
    edited: ImageInput,
    instruction: str,
    template: prompts.PromptTemplate | str = prompts.DEFAULT_TEMPLATE,
    sizing: ImageSizing | None = None,
    fmt: JudgmentFormat = POINTWISE,
) -> JudgeRequest:
    """The request for one edit (``source``: one image, or a list of an edit's source images). Raises
    ``ValueError`` (incl. ``ImageRejected`` and ``TooManyImages``), ``FileNotFoundError`` or ``TypeError`` naming
    the image and the problem when the edit cannot be judged."""
    sources = as_sources(source)
    return images_request((*sources, edited), len(sources), instruction, template, sizing, fmt)


def images_request(
    images: Sequence[ImageInput],
    n_sources: int,
    instruction: str,
    template: prompts.PromptTemplate | str = prompts.DEFAULT_TEMPLATE,
    sizing: ImageSizing | None = None,
    fmt: JudgmentFormat = POINTWISE,
) -> JudgeRequest:
    """The request for one prompt of ``fmt`` holding ``images`` in its roles' order (``n_sources`` sources first:
    pointwise then the edit, pairwise the candidates A and B)."""
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError("the edit instruction is empty")
    roles = fmt.image_roles(n_sources)
    if len(roles) != len(images):
        raise ValueError(f"a {fmt.name} prompt holds {len(roles)} images ({', '.join(roles)}), got {len(images)}")
    messages = fmt.messages(instruction, template, n_sources)
    data = [image_bytes(image, role_name(role)) for image, role in zip(images, roles)]
    sized = (sizing or ImageSizing()).size_images(data, roles, messages)
    return JudgeRequest(messages=messages, images=sized, format=fmt)
