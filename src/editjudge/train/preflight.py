"""CPU pre-flight for verl runs: everything that can be checked before Ray and the GPUs start.

The config is composed with verl's own Hydra config (``verl/trainer/config/ppo_trainer.yaml``) and checked with
verl's ``validate_config``; on top of that come the checks verl only makes on the GPUs, or never: ignored legacy
keys, the reward function, the model's config and processor, the parquet schema, the ``<image>`` placeholder
counts, prompt lengths measured with verl's own multimodal path, and the LoRA rank vLLM accepts.
Every problem carries its fix.
"""

from __future__ import annotations

import contextlib
import copy
import heapq
import importlib.util
import inspect
import io
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from editjudge.prompts import DATA_SOURCE, IMAGE_PLACEHOLDER, format_answer

# vLLM's allowed ``max_lora_rank`` values (``MaxLoRARanks`` in vllm/config/lora.py, the same list in vLLM v0.26.0
# and in verl 0.9.1's own fallback). Used when vllm is not importable on this machine.
VLLM_LORA_RANKS_FALLBACK = (1, 8, 16, 32, 64, 128, 256, 320, 512)

# Legacy top-level reward keys: verl 0.9's main_ppo composes them but never reads them.
_LEGACY_ROOTS = ("custom_reward_function", "reward_model", "sandbox_fusion")
_LEGACY_RENAMES = {
    "reward_model.num_workers": "reward.num_workers",
    "reward_model.reward_manager": "reward.reward_manager.name",
    "reward_model.reward_loop_source": "reward.reward_manager.source",
    "reward_model.reward_loop_module_path": "reward.reward_manager.module.path",
    "reward_model.reward_loop_class_name": "reward.reward_manager.module.name",
    "reward_model.model.path": "reward.reward_model.model_path",
    "reward_model.reward_kwargs": "reward.reward_kwargs",
}


class PreflightError(Exception):
    """The overrides do not even compose with verl's config."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix

    def render(self) -> str:
        return f"pre-flight FAILED\n  ✗ {self.problem}\n    fix: {self.fix}"


@dataclass
class Report:
    """Problems (each with a fix), warnings and passed checks, in the order they were found."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, problem: str, fix: str) -> None:
        self.problems.append((problem, fix))

    def render(self) -> str:
        lines = [f"pre-flight {'passed' if self.ok else 'FAILED'} ({len(self.problems)} problem(s))"]
        lines += [f"  ✓ {p}" for p in self.passed]
        lines += [f"  ! {w}" for w in self.warnings]
        for problem, fix in self.problems:
            lines += [f"  ✗ {problem}", f"    fix: {fix}"]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# Composition


def verl_config_dir() -> str:
    """The folder of verl's trainer YAML (the one ``main_ppo`` composes)."""
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        raise PreflightError("verl is not installed", "pip install 'editjudge[verl]' (pins verl==0.9.1)")
    return os.path.join(list(spec.submodule_search_locations)[0], "trainer", "config")


def compose(overrides: list[str], config_name: str = "ppo_trainer") -> Any:
    """Compose ``overrides`` with verl's Hydra config exactly as ``python -m verl.trainer.main_ppo`` would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=verl_config_dir(), version_base=None):
            return hydra_compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        message = " ".join(str(exc).split())
        raise PreflightError(
            f"verl's config rejects the overrides: {message}",
            "check the key's spelling against `python -m verl.trainer.main_ppo --cfg job`; write '+key=value' "
            "only for keys verl's YAML does not declare; quote values with spaces or ':' ('...')",
        ) from exc


# --------------------------------------------------------------------------------------------------------------
# Config checks


def legacy_replacement(key: str, cfg: Any = None) -> str:
    """The verl 0.9 key that replaces a legacy top-level reward key."""
    if key in _LEGACY_RENAMES:
        new = _LEGACY_RENAMES[key]
    elif key.startswith("custom_reward_function."):
        new = "reward." + key
    elif key.startswith("sandbox_fusion."):
        new = "reward." + key
    elif key.startswith("reward_model."):
        new = "reward.reward_model." + key.split(".", 1)[1]
    else:
        return key
    if cfg is not None:
        from omegaconf import OmegaConf

        parent = new.rsplit(".", 1)[0]
        if OmegaConf.select(cfg, new, default="__missing__") == "__missing__" and OmegaConf.select(
            cfg, parent, default=None
        ) is not None:
            new = "+" + new
    return new


def _leaves(node: Any, prefix: str) -> Iterable[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}")
    else:
        yield prefix, node


def check_legacy_keys(cfg: Any, report: Report) -> None:
    """Refuse legacy top-level reward keys: they compose, verl 0.9 ignores them."""
    from omegaconf import OmegaConf

    found = []
    for root in _LEGACY_ROOTS:
        node = cfg.get(root)
        if node is None:
            continue
        found += [(k, v) for k, v in _leaves(OmegaConf.to_container(node, resolve=False), root) if v is not None]
    from editjudge.train.verl import format_value

    for key, value in found:
        report.fail(
            f"{key}={format_value(value)} is a legacy key: verl 0.9.1's main_ppo composes it but IGNORES it "
            + ("(the reward would fall back to verl's default scorer and fail on data_source)"
               if key.startswith("custom_reward_function") else "(the setting would silently not apply)"),
            f"use {legacy_replacement(key, cfg)}={format_value(value)} instead",
        )
    if not found:
        report.passed.append("no ignored legacy keys (custom_reward_function.*, reward_model.*)")


def vllm_lora_ranks() -> tuple[tuple[int, ...], str]:
    """vLLM's allowed ``max_lora_rank`` values, read from vllm when importable."""
    try:
        from vllm.config.lora import MaxLoRARanks  # type: ignore[import-not-found]

        return tuple(sorted(get_args(MaxLoRARanks))), "vllm.config.lora.MaxLoRARanks"
    except Exception:  # vllm absent (CPU machine) or its layout changed
        return VLLM_LORA_RANKS_FALLBACK, "vLLM's MaxLoRARanks in vllm/config/lora.py, as listed in verl 0.9.1's fallback"


def lora_rank(cfg: Any) -> int:
    """The LoRA rank verl will use (``model.lora.rank`` wins over ``model.lora_rank``, as in verl)."""
    model = cfg.actor_rollout_ref.model
    rank = int((model.get("lora") or {}).get("rank", 0) or 0)
    return rank if rank > 0 else int(model.get("lora_rank", 0) or 0)


def check_verl_config(cfg: Any, report: Report) -> None:
    """verl's own ``validate_config``, the LoRA rank against vLLM, runtime batch splits, interpolations."""
    from omegaconf import OmegaConf, open_dict

    from editjudge.train.verl import batch_problems
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    rank = lora_rank(cfg)
    rollout = cfg.actor_rollout_ref.rollout.name
    checked = cfg
    if rank > 0 and rollout == "vllm" and importlib.util.find_spec("vllm") is None:
        # validate_config imports vllm to round the rank; check the rank below instead and validate the rest.
        checked = copy.deepcopy(cfg)
        with open_dict(checked):
            checked.actor_rollout_ref.model.lora_rank = 0
            if checked.actor_rollout_ref.model.get("lora") is not None:
                checked.actor_rollout_ref.model.lora.rank = 0
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            validate_config(
                checked, use_reference_policy=need_reference_policy(checked), use_critic=need_critic(checked)
            )
        report.passed.append("verl's validate_config passed")
    except Exception as exc:  # verl raises AssertionError / ValueError with the offending keys in the text
        report.fail(
            f"verl's validate_config: {' '.join(str(exc).split())}",
            "change the keys it names after `--` (e.g. `-- data.train_batch_size=128`), or drop your batch "
            "overrides so editjudge scales them for the GPU count",
        )
    for problem, fix in batch_problems(cfg):
        report.fail(problem, fix)

    if rank > 0 and rollout == "vllm":
        ranks, source = vllm_lora_ranks()
        if rank > ranks[-1]:
            report.fail(
                f"actor_rollout_ref.model.lora_rank={rank} is above vLLM's largest LoRA rank {ranks[-1]} ({source})",
                f"use one of {list(ranks)}",
            )
        elif rank not in ranks:
            upper = min(r for r in ranks if r >= rank)
            report.warnings.append(
                f"lora_rank={rank} is not one of vLLM's ranks {list(ranks)}: verl reserves rank-{upper} LoRA "
                f"buffers in vLLM; a listed rank wastes no memory"
            )
            report.passed.append(f"LoRA rank {rank} fits vLLM (max_lora_rank {upper})")
        else:
            report.passed.append(f"LoRA rank {rank} is one vLLM accepts")
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:
        report.fail(
            f"the config does not resolve: {' '.join(str(exc).split())}",
            "fix the ${...} interpolation it names (an override may have removed the key it points to)",
        )


def check_reward(cfg: Any, report: Report) -> None:
    """The reward function loads the way verl loads it and takes verl's keyword arguments."""
    fn_cfg = cfg.reward.get("custom_reward_function") or {}
    path, name = fn_cfg.get("path"), fn_cfg.get("name")
    if not path:
        report.fail(
            "reward.custom_reward_function.path is not set: verl would use its default scorer, which raises "
            "'Reward function is not implemented for data_source=tts_edit_score'",
            "set reward.custom_reward_function.path=pkg://editjudge.reward reward.custom_reward_function.name=compute_score",
        )
        return
    from verl.utils.import_utils import load_extern_object

    try:
        fn = load_extern_object(module_path=path, object_name=name)
    except Exception as exc:
        report.fail(
            f"reward function {name!r} does not load from {path!r}: {exc}",
            "point reward.custom_reward_function.path at pkg://editjudge.reward (installed package, every node) "
            "or an existing .py file, and .name at a function in it",
        )
        return
    kwargs = dict(fn_cfg.get("reward_kwargs") or {})
    try:
        inspect.signature(fn).bind(data_source="x", solution_str="", ground_truth="0", extra_info={}, **kwargs)
    except (TypeError, ValueError) as exc:
        report.fail(
            f"reward function {path}:{name} does not accept verl's arguments and reward_kwargs {kwargs} ({exc})",
            "define compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) and pass only "
            "the options it takes in +reward.custom_reward_function.reward_kwargs.*",
        )
        return
    try:  # one call as verl's reward manager makes it, on a well-formed answer
        result = fn(data_source=DATA_SOURCE, solution_str=format_answer(5, "a sample"), ground_truth="5",
                    extra_info={}, **kwargs)
        score = result["score"] if isinstance(result, dict) else result
        float(score)
    except Exception as exc:
        report.fail(
            f"reward function {path}:{name} fails on a well-formed answer with reward_kwargs {kwargs}: "
            f"{type(exc).__name__}: {exc}",
            "fix the reward options in +reward.custom_reward_function.reward_kwargs.* (see docs/reward.md); the "
            "function must return a number or a dict with a numeric 'score'",
        )
        return
    report.passed.append(f"reward function {path}:{name} loads")


def check_loggers(cfg: Any, report: Report) -> None:
    """Each configured logger is importable; W&B without a login runs only offline."""
    loggers = cfg.trainer.get("logger") or []
    loggers = [loggers] if isinstance(loggers, str) else list(loggers)
    modules = {"wandb": "wandb", "tensorboard": "tensorboard", "mlflow": "mlflow", "swanlab": "swanlab"}
    for name in loggers:
        module = modules.get(name)
        if module and importlib.util.find_spec(module) is None:
            report.fail(f"trainer.logger has {name!r} but {module} is not installed", f"pip install {module}")
    if "wandb" in loggers and os.environ.get("WANDB_MODE") not in ("offline", "disabled"):
        if not os.environ.get("WANDB_API_KEY") and not (Path.home() / ".netrc").is_file():
            report.warnings.append(
                "W&B is a logger but there is no login: export WANDB_MODE=offline (sync later with `wandb sync`) "
                "or run `wandb login`"
            )


def check_resume(cfg: Any, report: Report) -> None:
    """verl's resume keys point at something that exists."""
    mode = cfg.trainer.get("resume_mode")
    if mode == "resume_path":
        path = str(cfg.trainer.get("resume_from_path") or "")
        if "global_step_" not in os.path.basename(path.rstrip("/")) or not os.path.isdir(os.path.join(path, "actor")):
            report.fail(
                f"trainer.resume_from_path={path!r} is not a verl checkpoint folder (global_step_N with actor/ inside)",
                "pass `--resume <checkpoints>/global_step_N`, or `--resume` alone for the newest one",
            )
    elif mode == "auto":
        root = str(cfg.trainer.default_local_dir)
        tracker = os.path.join(root, "latest_checkpointed_iteration.txt")
        if not os.path.isfile(tracker):
            report.warnings.append(f"--resume: no checkpoint tracker at {tracker} yet; verl will start from step 0")
        else:
            report.passed.append(f"resume from {root} step {Path(tracker).read_text().strip()}")


# --------------------------------------------------------------------------------------------------------------
# Model and data checks


def resolve_model_dir(model: str) -> Path | None:
    """A local model directory, or the cached snapshot of a hub id (never downloads)."""
    path = Path(os.path.expanduser(model))
    if path.is_dir():
        return path
    if path.exists() or model.count("/") != 1:
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception:
        return None


def check_model(cfg: Any, report: Report, *, needs_vision: bool) -> Any:
    """Config and processor are there and load with verl's loader; returns the processor (or ``None``)."""
    model = str(cfg.actor_rollout_ref.model.path)
    folder = resolve_model_dir(model)
    if folder is None:
        report.fail(
            f"model {model!r} is neither a local directory nor in the Hugging Face cache",
            f"download it once (e.g. `hf download {model if model.count('/') == 1 else 'Qwen/Qwen2.5-VL-3B-Instruct'} "
            "--local-dir /models/qwen2_5_vl_3b`) to a path every node sees, and pass --model /models/qwen2_5_vl_3b",
        )
        return None
    config_path = folder / "config.json"
    if not config_path.is_file():
        report.fail(f"model folder {folder} has no config.json", "pass --model the folder of a Hugging Face model")
        return None
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if needs_vision and "vision_config" not in config:
        report.fail(
            f"model {folder} has no vision tower (config.json lacks vision_config) but the data has images",
            "use a vision-language model such as Qwen2.5-VL-3B-Instruct",
        )
        return None
    missing = [
        what for what, names in (
            ("image processor (preprocessor_config.json / processor_config.json)",
             ("preprocessor_config.json", "processor_config.json")),
            ("tokenizer (tokenizer.json / tokenizer_config.json)", ("tokenizer.json", "tokenizer_config.json")),
        ) if not any((folder / n).is_file() for n in names)
    ]
    if missing:
        report.fail(
            f"model folder {folder} lacks its {' and '.join(missing)}",
            "copy the processor files from the base model (AutoProcessor.from_pretrained(base).save_pretrained(dir))",
        )
        return None
    import warnings

    from verl.utils import hf_processor

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        processor = hf_processor(str(folder), trust_remote_code=bool(cfg.data.get("trust_remote_code", False)))
    if processor is None and needs_vision:
        reason = "; ".join(str(w.message) for w in caught if "processor" in str(w.message).lower()) or "unknown"
        report.fail(
            f"verl's hf_processor returned no processor for {folder} ({reason}): verl would silently train "
            "text-only and the images would never reach the model",
            "install torchvision matching torch (transformers needs it for Qwen2.5-VL processors) and check "
            "the model's processor files",
        )
        return None
    report.passed.append(f"model {folder}: config + {type(processor).__name__ if processor else 'tokenizer'}")
    return processor


def _field_names(arrow_type: Any) -> set[str]:
    return {arrow_type.field(i).name for i in range(arrow_type.num_fields)}


def _schema_problems(schema: Any, prompt_key: str, image_key: str) -> list[str]:
    import pyarrow as pa

    issues = []
    for column in (prompt_key, image_key, "data_source", "reward_model"):
        if column not in schema.names:
            issues.append(f"column {column!r} is missing")
    if issues:
        return issues
    prompt = schema.field(prompt_key).type
    if not (pa.types.is_list(prompt) or pa.types.is_large_list(prompt)) or not pa.types.is_struct(
        prompt.value_type
    ) or not {"role", "content"} <= _field_names(prompt.value_type):
        issues.append(f"column {prompt_key!r} must be a list of {{role, content}} messages, got {prompt}")
    images = schema.field(image_key).type
    ok_images = (pa.types.is_list(images) or pa.types.is_large_list(images)) and (
        (pa.types.is_struct(images.value_type) and "bytes" in _field_names(images.value_type))
        or pa.types.is_string(images.value_type)
        or pa.types.is_large_string(images.value_type)
    )
    if not ok_images:
        issues.append(f"column {image_key!r} must be a list of {{bytes}} structs or path strings, got {images}")
    reward = schema.field("reward_model").type
    if not pa.types.is_struct(reward) or "ground_truth" not in _field_names(reward):
        issues.append(f"column 'reward_model' must be a struct with 'ground_truth', got {reward}")
    return issues


def _verl_messages(prompt: list[dict], images: list[Any]) -> list[dict]:
    """verl's RLHFDataset._build_messages for string contents: each <image> becomes an image part, in order."""
    from io import BytesIO

    from PIL import Image

    pending = list(images)
    messages = []
    for message in prompt:
        content = message["content"]
        if not isinstance(content, str) or IMAGE_PLACEHOLDER not in content:
            messages.append({"role": message["role"], "content": content})
            continue
        parts: list[dict] = []
        for i, chunk in enumerate(content.split(IMAGE_PLACEHOLDER)):
            if i:
                image = pending.pop(0)
                if isinstance(image, dict):
                    image = Image.open(BytesIO(image["bytes"]))
                parts.append({"type": "image", "image": image})
            if chunk:
                parts.append({"type": "text", "text": chunk})
        messages.append({"role": message["role"], "content": parts})
    return messages


def prompt_length(processor: Any, prompt: list[dict], images: list[Any], data_cfg: Any) -> int:
    """Prompt tokens as verl counts them (chat template + qwen_vl_utils sizing + processor), images included."""
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl.utils.tokenizer import build_multimodal_processor_inputs

    messages = _verl_messages(prompt, images)
    kwargs = dict(data_cfg.get("apply_chat_template_kwargs") or {})
    raw = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **kwargs)
    patch = data_cfg.get("image_patch_size") or getattr(processor.image_processor, "patch_size", 14)
    pil_images, videos, audios = RLHFDataset._process_multi_modal_info(messages, patch, data_cfg)
    inputs = build_multimodal_processor_inputs(
        processor, text=[raw], images=pil_images, videos=videos, audio=audios,
        mm_processor_kwargs=dict(data_cfg.get("mm_processor_kwargs") or {}),
    )
    return int(len(inputs["input_ids"][0]))


FAST_CHECK_ROWS = 8


@dataclass(frozen=True)
class FastLength:
    """Prompt tokens without decoding images: the chat template through the tokenizer, plus each image's tokens
    from its header size after the two resizes verl's path applies (``qwen_vl_utils.fetch_image``'s
    ``smart_resize``, then the processor's). Only for Qwen2-VL-style processors; always checked against
    :func:`prompt_length` on the longest rows before it is trusted.
    """

    processor: Any
    template_kwargs: dict
    patch: int
    processor_patch: int
    merge: int
    min_pixels: int
    max_pixels: int

    @classmethod
    def build(cls, processor: Any, data_cfg: Any) -> FastLength | None:
        image_processor = getattr(processor, "image_processor", None)
        size = getattr(image_processor, "size", None)
        needed = (getattr(image_processor, "patch_size", None), getattr(image_processor, "merge_size", None))
        if None in needed or size is None or data_cfg.get("mm_processor_kwargs"):
            return None
        get = size.get if hasattr(size, "get") else lambda key: getattr(size, key, None)
        min_pixels = getattr(image_processor, "min_pixels", None) or get("shortest_edge")
        max_pixels = getattr(image_processor, "max_pixels", None) or get("longest_edge")
        if not (min_pixels and max_pixels):
            return None
        patch = int(data_cfg.get("image_patch_size") or image_processor.patch_size)
        return cls(processor, dict(data_cfg.get("apply_chat_template_kwargs") or {}), patch,
                   int(image_processor.patch_size), int(image_processor.merge_size), int(min_pixels), int(max_pixels))

    def __call__(self, prompt: list[dict], images: list[Any]) -> int:
        from io import BytesIO

        from PIL import Image
        from qwen_vl_utils import vision_process
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        messages = [
            {"role": m["role"], "content": [
                part for i, chunk in enumerate(str(m["content"]).split(IMAGE_PLACEHOLDER))
                for part in ([{"type": "image"}] if i else []) + ([{"type": "text", "text": chunk}] if chunk else [])
            ]} if IMAGE_PLACEHOLDER in str(m["content"]) else dict(m)
            for m in prompt
        ]
        raw = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                                 **self.template_kwargs)
        total = len(self.processor.tokenizer(raw, add_special_tokens=False)["input_ids"]) - len(images)
        factor = self.patch * vision_process.SPATIAL_MERGE_SIZE
        for image in images:
            source = BytesIO(image["bytes"]) if isinstance(image, dict) else image
            with Image.open(source) as opened:
                width, height = opened.size
            height, width = vision_process.smart_resize(
                height, width, factor=factor, min_pixels=vision_process.IMAGE_MIN_TOKEN_NUM * factor**2,
                max_pixels=vision_process.IMAGE_MAX_TOKEN_NUM * factor**2,
            )
            height, width = smart_resize(height, width, factor=self.processor_patch * self.merge,
                                         min_pixels=self.min_pixels, max_pixels=self.max_pixels)
            total += (height // self.processor_patch) * (width // self.processor_patch) // self.merge**2
        return total


def check_data_file(path: str, cfg: Any, processor: Any, report: Report, *, max_rows: int | None = None) -> int:
    """Schema, ``<image>`` placeholders = images per row, prompt lengths within ``data.max_prompt_length``.

    Returns the file's row count (0 when it cannot be read).
    """
    import pyarrow.parquet as pq
    from tqdm import tqdm

    name = os.path.basename(path)
    if not os.path.isfile(path):
        report.fail(
            f"data file {path} does not exist",
            "run `editjudge prepare <folders or manifests> -o <dir>` and pass <dir>/train.parquet and "
            "<dir>/test.parquet with --train-files / --val-files",
        )
        return 0
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:
        report.fail(f"data file {path} is not a readable parquet file ({exc})", "re-create it with `editjudge prepare`")
        return 0
    prompt_key, image_key = str(cfg.data.prompt_key), str(cfg.data.image_key)
    issues = _schema_problems(parquet.schema_arrow, prompt_key, image_key)
    if issues:
        report.fail(
            f"{path}: {'; '.join(issues)}",
            f"write it with `editjudge prepare` (verl's format: {prompt_key}, {image_key}, data_source, reward_model)",
        )
        return 0
    rows = parquet.metadata.num_rows
    if rows == 0:
        report.fail(f"{path} has no rows", "check the input of `editjudge prepare` (no scored edits were found)")
        return 0
    limit = int(cfg.data.max_prompt_length)
    step = max(1, rows // max_rows) if max_rows else 1
    fast = FastLength.build(processor, cfg.data) if processor is not None else None

    def full(prompt: list[dict], images: list[Any]) -> int:
        return prompt_length(processor, prompt, images, cfg.data)

    mismatched: list[str] = []
    head: list[tuple[int, int, list[dict], list[Any]]] = []  # (fast length, -index, prompt, images): first rows
    top: list[tuple[int, int, list[dict], list[Any]]] = []  # min-heap of the longest rows

    def rows_of() -> Iterable[tuple[int, list[dict], list[Any]]]:
        index = 0
        with tqdm(total=rows, desc=f"pre-flight {name}", unit="row", disable=None) as bar:
            for batch in parquet.iter_batches(batch_size=64, columns=[prompt_key, image_key]):
                for row in batch.to_pylist():
                    yield index, row[prompt_key] or [], row[image_key] or []
                    index += 1
                bar.update(batch.num_rows)

    def measure(counter: Any, first_pass: bool) -> tuple[int, list[tuple[int, int]], list[str]]:
        longest, overlong, unreadable = 0, [], []
        for index, prompt, images in rows_of():
            placeholders = sum(str(m.get("content") or "").count(IMAGE_PLACEHOLDER) for m in prompt)
            if placeholders != len(images):
                if first_pass:
                    mismatched.append(f"row {index}: {placeholders} {IMAGE_PLACEHOLDER} vs {len(images)} images")
                continue
            if counter is None or index % step:
                continue
            try:
                length = counter(prompt, images)
            except Exception as exc:
                unreadable.append(f"row {index}: {type(exc).__name__}: {exc}")
                continue
            longest = max(longest, length)
            if length > limit:
                overlong.append((index, length))
            if first_pass and counter is fast:  # keep the first and the longest rows to check against verl
                item = (length, -index, prompt, images)
                if len(head) < FAST_CHECK_ROWS:
                    head.append(item)
                if len(top) < FAST_CHECK_ROWS:
                    heapq.heappush(top, item)
                elif length > top[0][0]:
                    heapq.heapreplace(top, item)
        return longest, overlong, unreadable

    longest, overlong, unreadable = measure(fast or (full if processor is not None else None), True)
    how = "verl's processor path"
    if fast is not None and not unreadable:
        sample = {-neg: (n, pr, im) for n, neg, pr, im in head + top}
        disagree = [(i, n, full(pr, im)) for i, (n, pr, im) in sorted(sample.items())]
        disagree = [(i, n, f) for i, n, f in disagree if n != f]
        if disagree:
            i, n, f = disagree[0]
            report.warnings.append(
                f"{name}: the fast length count disagrees with verl's processor path on row {i} ({n} vs {f}); "
                "measured every row with verl's path"
            )
            longest, overlong, unreadable = measure(full, False)
        else:
            how = f"fast count, equal to verl's processor path on {len(sample)} rows incl. the longest"
    if mismatched:
        report.fail(
            f"{path}: {len(mismatched)} row(s) whose {IMAGE_PLACEHOLDER} placeholders differ from their images "
            f"({'; '.join(mismatched[:3])}) — verl would stop mid-run",
            "re-create the file with `editjudge prepare` (prompts from editjudge.prompts hold exactly two "
            "<image>, images = [source, edited])",
        )
    if unreadable:
        report.fail(
            f"{path}: {len(unreadable)} row(s) the processor cannot read ({'; '.join(unreadable[:3])})",
            "re-create the file with `editjudge prepare` (it re-encodes images and drops unreadable ones)",
        )
    if overlong:
        worst = max(length for _, length in overlong)
        report.fail(
            f"{path}: {len(overlong)} prompt(s) longer than data.max_prompt_length={limit} tokens "
            f"(longest {worst}; rows {[i for i, _ in overlong[:5]]})"
            + (" — filter_overlong_prompts would drop them" if cfg.data.get("filter_overlong_prompts") else ""),
            f"pass `-- data.max_prompt_length={_round_up_pow2(worst)}`, or re-run `editjudge prepare ... "
            f"--max-prompt-length {limit} --processor <model>` so the images are sized to fit",
        )
    if not (mismatched or unreadable or overlong):
        measured = f"longest prompt {longest}/{limit} tokens ({how})" if processor is not None else "lengths not measured"
        sampled = f", lengths on 1 row in {step}" if step > 1 else ""
        report.passed.append(f"{name}: {rows} rows, 2-image prompts match their images, {measured}{sampled}")
    return rows


def _round_up_pow2(value: int) -> int:
    return 1 << (int(value) - 1).bit_length()


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def check_steps(cfg: Any, train_rows: int, report: Report) -> None:
    """verl drops the last incomplete batch: fewer rows than ``data.train_batch_size`` means no step at all."""
    batch = int(cfg.data.train_batch_size)
    if not train_rows:
        return
    if train_rows < batch:
        world = int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)
        step = world // math.gcd(int(cfg.actor_rollout_ref.rollout.n), world)  # keeps batch × n divisible by GPUs
        fitting = train_rows // step * step
        report.fail(
            f"the training files hold {train_rows} rows, fewer than data.train_batch_size={batch}: verl drops the "
            "incomplete batch, so no training step would run",
            "prepare more data"
            + (f", or pass `-- data.train_batch_size={fitting} actor_rollout_ref.actor.ppo_mini_batch_size={fitting}`"
               if fitting else f" (at least {step} rows for {world} GPUs)"),
        )
        return
    steps = train_rows // batch
    report.passed.append(
        f"{steps} step(s) per epoch × {cfg.trainer.total_epochs} epochs "
        f"({train_rows} rows, batch {batch}{f', {train_rows - steps * batch} rows left out each epoch' if train_rows % batch else ''})"
    )


def check_environment(cfg: Any, report: Report) -> None:
    """What the launch itself needs on this machine (skipped for --dry-run)."""
    needs = {"ray": "pip install 'ray[default]' (a verl dependency)"}
    if cfg.actor_rollout_ref.rollout.name == "vllm":
        needs["vllm"] = "pip install 'verl[vllm]==0.9.1' on every GPU node"
    if cfg.trainer.get("use_v1", False):
        needs["transfer_queue"] = "pip install 'verl[verl-core]==0.9.1' (or pass `-- trainer.use_v1=false`)"
    needs["qwen_vl_utils"] = "pip install qwen-vl-utils (verl's image path needs it)"
    for module, fix in needs.items():
        if importlib.util.find_spec(module) is None:
            report.fail(f"{module} is not importable here, and the launch needs it", fix)


def run_checks(cfg: Any, *, launching: bool, max_rows: int | None = None) -> Report:
    """All pre-flight checks on a composed config; ``launching`` adds the checks of the launch environment."""
    report = Report()
    check_legacy_keys(cfg, report)
    check_verl_config(cfg, report)
    check_reward(cfg, report)
    check_loggers(cfg, report)
    check_resume(cfg, report)
    files = {"train": _as_list(cfg.data.get("train_files")), "val": _as_list(cfg.data.get("val_files"))}
    default_data = "~/data/rlhf/gsm8k/"
    for split, paths in files.items():
        if not paths or any(p.startswith(default_data) for p in paths):
            report.fail(
                f"no {split} files given (verl would read its example {default_data}…)",
                f"pass --{split}-files <prepared>/{'train' if split == 'train' else 'test'}.parquet",
            )
            files[split] = []
    processor = check_model(cfg, report, needs_vision=True)
    rows = {split: sum(check_data_file(os.path.expanduser(p), cfg, processor, report, max_rows=max_rows) for p in paths)
            for split, paths in files.items()}
    check_steps(cfg, rows["train"], report)
    if launching:
        check_environment(cfg, report)
    return report
