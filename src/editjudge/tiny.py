"""Build a tiny random Qwen2.5-VL offline, saved like a hub checkpoint (tests and the demo use it).

Everything real, nothing stubbed: a byte-level BPE tokenizer trained with ``tokenizers`` on the project's own prompt
text plus Qwen's special tokens, a Qwen-style chat template, a ``Qwen2VLImageProcessor`` with small pixel limits, a
``Qwen2_5_VLProcessor`` around them, and a ``Qwen2_5_VLForConditionalGeneration`` built from a small
``Qwen2_5_VLConfig``. It loads through ``AutoProcessor`` / ``from_pretrained`` exactly like Qwen2.5-VL-3B-Instruct.

:func:`build_qwen2_5_vl_3b` builds the real 3B architecture the same way, at random init, for GPU benchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from editjudge import prompts

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Tags become single tokens so that even a random model emits them now and then.
ADDED_TOKENS = [prompts.THINK_OPEN, prompts.THINK_CLOSE, prompts.ANSWER_OPEN, prompts.ANSWER_CLOSE]
# A pairwise tiny model (``build_tiny_model(..., answer_words=ANSWER_WORDS)``, ``tiny-model --pairwise``): answer
# words that the BPE leaves in pieces ("tie" is t + i + e) become single tokens too, matched as whole words only
# ("tied", "entities" keep their pieces), so every answer of the pairwise format is one token ("A", "B" are bytes of
# the alphabet). Added last, after the tags, so every earlier id is unchanged; the model gives them embedding rows
# equal to the mean of the others (:func:`_add_rows`). Off by default: one more token changes what a sampled
# (temperature 1) pointwise model draws, so the seed's tiny model stays exactly as it was.
ANSWER_WORDS = ["tie"]
# A dimensions tiny model (``build_tiny_model(..., answer_heads=fmt.entry_heads)``, ``tiny-model --dimensions SET``):
# each entry head of the answer ("following: ", :attr:`DimensionsFormat.entry_heads`) becomes one token, so the token
# right before a digit says which dimension the digit scores (spelt in pieces, "foll" "ow" "ing" ":" " ", both digits
# followed the same ": "), and a two-dimension answer is 11 tokens instead of 21. On their own they did not get the
# second dimension learnt (docs/demo.md). The heads' rows are drawn like the model's own (seeded apart from it): a
# row that is the mean of others (the "tie" rule) or of the head's pieces would give it the mean of their logits,
# never more than the best of them, and the warm start could not teach it.

# Qwen-style chat template: string contents or lists of {"type": "image"} / {"type": "text"} parts.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Pixel limits: 28x28 pixels per image token; 4..64 tokens per image keeps prompts short on CPU.
MIN_PIXELS = 4 * 28 * 28
MAX_PIXELS = 64 * 28 * 28


def _training_corpus() -> list[str]:
    lines: list[str] = []
    for template in prompts.BUILTIN_TEMPLATES.values():
        lines += [template.system, template.user]
    lines += [
        "make the circle red", "turn the square blue", "the edit follows the instruction", "the colour is wrong",
        "the shape is unchanged", "input image edited image score reasoning answer",
        " ".join(str(i) for i in range(100)), "0 1 2 3 4 5 6 7 8 9 . , : ; ! ? ( ) [ ] { } - + = / \\ ' \"",
        "assistant user system",
    ]
    return lines


def build_tokenizer(vocab_size: int = 600, answer_words: Sequence[str] = (), answer_heads: Sequence[str] = ()):
    """A byte-level BPE tokenizer with Qwen's special tokens, wrapped for transformers (``answer_words``: added
    whole-word tokens, see :data:`ANSWER_WORDS`; ``answer_heads``: a dimensions model's answer heads, added tokens
    matched anywhere, see the note on them below :data:`ANSWER_WORDS`)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.add_tokens(ADDED_TOKENS)
    if answer_words:
        fast.add_tokens([AddedToken(word, single_word=True) for word in answer_words])
    if answer_heads:  # "following: 7": a head ends before a digit, so it is no whole word
        fast.add_tokens([AddedToken(head, normalized=False) for head in answer_heads])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _add_rows(model, vocab_size: int, seed: int | None = None) -> None:
    """Grow the (tied) embedding to ``vocab_size`` rows; every earlier weight stays as the model drew it. Each new
    row is the mean of the existing ones (``seed`` None, :data:`ANSWER_WORDS`' rule: no random draw, and a new
    token's logit is the mean logit, never the greedy argmax of an untrained model), or drawn like the model's own
    rows, N(0, :data:`INITIALIZER_RANGE`), by a generator of its own seeded ``seed`` (the answer heads' rule)."""
    import torch

    old = model.get_input_embeddings().weight.shape[0]
    if vocab_size == old:
        return
    model.resize_token_embeddings(vocab_size, mean_resizing=False)
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        if seed is None:
            weight[old:] = weight[:old].mean(dim=0, keepdim=True)
        else:
            generator = torch.Generator().manual_seed(seed)
            weight[old:] = torch.randn(vocab_size - old, weight.shape[1], generator=generator) * INITIALIZER_RANGE


def build_processor(tokenizer, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS):
    """A real ``Qwen2_5_VLProcessor`` (small pixel limits by default)."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    image_processor = Qwen2VLImageProcessor(
        min_pixels=min_pixels, max_pixels=max_pixels, size={"shortest_edge": min_pixels, "longest_edge": max_pixels}
    )
    video_processor = Qwen2VLVideoProcessor()
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


# Weight init std of the text model. Far above Qwen's 0.02 on purpose: with hidden size 64 and tied embeddings, a
# 0.02 init caps the logits near 1 (entropy stays at log(vocab) whatever a LoRA learns), so sampled completions stay
# noise; at 0.2 a short LoRA warm start makes the answer format likely at temperature 1, as with a real model.
INITIALIZER_RANGE = 0.2


def build_config(tokenizer, hidden_size: int = 64, layers: int = 2, initializer_range: float = INITIALIZER_RANGE,
                 vocab_size: int | None = None):
    """A small ``Qwen2_5_VLConfig``; ``mrope_section`` sums to head_dim / 2; ``vocab_size`` defaults to the
    tokenizer's."""
    heads = 4
    head_dim = hidden_size // heads
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]
    text_config = {
        "vocab_size": len(tokenizer) if vocab_size is None else vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": hidden_size * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
        "tie_word_embeddings": True,
        "initializer_range": initializer_range,
    }
    vision_config = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": hidden_size,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [1],
        "in_channels": 3,
    }
    return _qwen2_5_vl_config(tokenizer, text_config, vision_config, initializer_range=initializer_range)


def _qwen2_5_vl_config(tokenizer, text_config: dict, vision_config: dict, **kwargs):
    """A ``Qwen2_5_VLConfig`` whose special-token ids are the offline tokenizer's."""
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text_config = dict(
        text_config, bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"]
    )
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
        **kwargs,
    )


# Qwen2.5-VL-3B-Instruct's architecture (the sizes of its config.json that matter for speed and memory), for GPU
# benchmarks at random init: no download needed.
QWEN2_5_VL_3B_TEXT = {
    "vocab_size": 151936,
    "hidden_size": 2048,
    "intermediate_size": 11008,
    "num_hidden_layers": 36,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128000,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
    "tie_word_embeddings": True,
}
QWEN2_5_VL_3B_VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 2048,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "in_channels": 3,
    "tokens_per_second": 2,
}
# Qwen2.5-VL's own default pixel limits (4 .. 16384 image tokens).
QWEN_MIN_PIXELS, QWEN_MAX_PIXELS = 4 * 28 * 28, 16384 * 28 * 28


def build_qwen2_5_vl_3b(device: str = "cuda", min_pixels: int = QWEN_MIN_PIXELS, max_pixels: int = QWEN_MAX_PIXELS):
    """(processor, model): the offline tokenizer and a real processor + Qwen2.5-VL-3B's architecture, random, bf16.

    ``device="meta"`` builds it without memory (3.75 B parameters, 0.67 B of them in the vision tower).
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer, min_pixels=min_pixels, max_pixels=max_pixels)
    config = _qwen2_5_vl_config(tokenizer, QWEN2_5_VL_3B_TEXT, QWEN2_5_VL_3B_VISION)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    text = config.text_config
    model.generation_config = GenerationConfig(eos_token_id=text.eos_token_id, pad_token_id=text.pad_token_id)
    return processor, model


def scale_attention_logits(model, qk_scale: float) -> None:
    """Multiply the language model's attention query/key projections (weights and biases) by ``qk_scale``.

    At the large init std a random model's attention is nearly one-hot (entropy ~0.4 nats), so whether the answer
    position sees the image tokens at all is luck of the seed; query and key each scaled by 0.3 scale the attention
    logits by 0.09 and spread attention (entropy ~4 nats, ~10% of it on the image tokens), which makes learning to
    read the images reliable across seeds. The vision tower is left as built.
    """
    import torch

    if qk_scale == 1.0:
        return
    with torch.no_grad():
        for name, module in model.named_modules():
            if "visual" in name or not name.endswith(("self_attn.q_proj", "self_attn.k_proj")):
                continue
            module.weight.mul_(qk_scale)
            if module.bias is not None:
                module.bias.mul_(qk_scale)


def build_tiny_model(out_dir: str | Path, seed: int = 0, hidden_size: int = 64, layers: int = 2,
                     qk_scale: float = 1.0, answer_words: Sequence[str] = (), answer_heads: Sequence[str] = ()) -> Path:
    """Write a tiny Qwen2.5-VL checkpoint (weights, config, processor) to ``out_dir`` atomically; return it.

    ``hidden_size`` 64 (tests: fastest) or 256 (the demo: tied embeddings wide enough to spread the answer over ten
    digits); ``qk_scale`` < 1 softens the LM's attention at build time (:func:`scale_attention_logits`). A folder
    that already holds a checkpoint is returned as is only when it was built with the same options.
    ``answer_words=ANSWER_WORDS``: a model for the pairwise format ("tie" one token, :data:`ANSWER_WORDS`);
    ``answer_heads=fmt.entry_heads``: one for a dimensions format (each ``name: `` one token, after the words).
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    out = Path(out_dir)
    options = {"seed": seed, "hidden_size": hidden_size, "layers": layers, "initializer_range": INITIALIZER_RANGE,
               "qk_scale": qk_scale, "answer_words": list(answer_words), "answer_heads": list(answer_heads)}
    if (out / "config.json").is_file() and (out / "processor_config.json").is_file():
        try:
            built = json.loads((out / "editjudge_tiny.json").read_text())
        except (OSError, ValueError):
            built = None
        if built is None or {"qk_scale": 1.0, "answer_words": [], "answer_heads": [], **built} == options:
            return out
        raise ValueError(f"{out} holds a tiny model built with {built}, not {options}: remove it or pick another folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        torch.manual_seed(seed)
        tokenizer = build_tokenizer(answer_words=answer_words, answer_heads=answer_heads)
        processor = build_processor(tokenizer)
        # the random init draws the rows of the tokens before ANSWER_WORDS only (the same weights as without them)
        added = len(answer_words) + len(answer_heads)
        config = build_config(tokenizer, hidden_size=hidden_size, layers=layers, vocab_size=len(tokenizer) - added)
        model = Qwen2_5_VLForConditionalGeneration(config)
        _add_rows(model, len(tokenizer) - len(answer_heads))
        _add_rows(model, len(tokenizer), seed=10_000 + seed)
        scale_attention_logits(model, qk_scale)
        model.generation_config = GenerationConfig(
            eos_token_id=config.text_config.eos_token_id, pad_token_id=config.text_config.pad_token_id, do_sample=False
        )
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / "editjudge_tiny.json").write_text(json.dumps(options, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def dimension_heads(set_name_or_path: str) -> tuple[str, ...]:
    """The answer heads of a dimension set's format (``ValueError`` naming the shipped sets when it is unknown)."""
    from editjudge.formats.dimensions import dimensions_format

    return dimensions_format(set_name_or_path).entry_heads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="tiny-qwen2_5-vl", help="directory to write the checkpoint to")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--hidden-size", type=int, default=64, help="text hidden size (multiple of 4)")
    parser.add_argument("--layers", type=int, default=2, help="text decoder layers")
    parser.add_argument("--qk-scale", type=float, default=1.0,
                        help="scale of the LM's attention query/key weights at build time (the demo uses 0.3)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--pairwise", action="store_true",
                      help="a model for the pairwise format: 'tie' as one token (off: the pointwise model as is)")
    kind.add_argument("--dimensions", metavar="SET", default=None,
                      help="a model for a dimensions format: each answer head of the set ('following: ') as one "
                           "token (a shipped set, e.g. follow_preserve, or a set file)")


def run(args: argparse.Namespace) -> int:
    try:
        heads = dimension_heads(args.dimensions) if args.dimensions else ()
        path = build_tiny_model(args.out, seed=args.seed, hidden_size=args.hidden_size, layers=args.layers,
                                qk_scale=args.qk_scale, answer_words=ANSWER_WORDS if args.pairwise else (),
                                answer_heads=heads)
    except ValueError as error:
        print(f"editjudge tiny-model: error: {error}")
        return 2
    print(f"tiny Qwen2.5-VL written to {path}")
    return 0
