"""Pre-flight, config seam: compose with verl's Hydra config, then check keys, values, batches, reward, loggers, resume.

Nothing here reads data or loads a model; the data and model seams are :mod:`preflight_data` and
:mod:`preflight_model`, and :mod:`editjudge.train.preflight` runs them all.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, get_args

from editjudge.prompts import DATA_SOURCE, format_answer
from editjudge.train.overrides import format_value
from editjudge.train.preflight_batches import (  # noqa: F401  (lora_rank, batch_problems: re-exported)
    _validate_error, batch_problems, consistent_batches, lora_rank, passes_with,
)
from editjudge.train.preflight_report import PreflightError, Report

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
        match = re.search(r"Could not override '([^']+)'", message)
        near = nearest_keys(match.group(1), config_name) if match else []
        if match and near:
            value = next((o.split("=", 1)[1] for o in overrides
                          if "=" in o and o.split("=", 1)[0].lstrip("+") == match.group(1)), "...")
            raise PreflightError(
                f"verl's config has no key {match.group(1)!r} (a typo?)",
                f"write `{near[0]}={value}`" + (f" (or one of {near[1:]})" if len(near) > 1 else "")
                + "; '+key=value' is only for a key verl's YAML does not declare at all",
            ) from exc
        raise PreflightError(
            f"verl's config rejects the overrides: {message}",
            "check the key's spelling against `python -m verl.trainer.main_ppo --cfg job`; write '+key=value' "
            "only for keys verl's YAML does not declare; quote values with spaces or ':' ('...')",
        ) from exc


@functools.lru_cache(maxsize=2)
def base_config(config_name: str = "ppo_trainer") -> Any:
    """verl's config with no overrides (its declared keys and their default values)."""
    return compose([], config_name)


def config_keys(config_name: str = "ppo_trainer") -> list[str]:
    """Every dotted key verl's config declares (nodes and leaves)."""
    from omegaconf import OmegaConf

    keys: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            keys.append(dotted)
            if isinstance(value, dict):
                walk(value, dotted + ".")

    walk(OmegaConf.to_container(base_config(config_name), resolve=False), "")
    return keys


def nearest_keys(key: str, config_name: str = "ppo_trainer", candidates: Iterable[str] | None = None) -> list[str]:
    """Declared keys closest to a misspelt ``key``: the same parent first, then anywhere (difflib's ratio)."""
    import difflib

    pool = list(candidates) if candidates is not None else config_keys(config_name)
    parent, _, leaf = key.rpartition(".")
    prefix = parent + "." if parent else ""
    siblings = [k[len(prefix):] for k in pool if k.startswith(prefix) and "." not in k[len(prefix):]]
    near = [prefix + k for k in difflib.get_close_matches(leaf, siblings, n=3, cutoff=0.6)]
    return near or difflib.get_close_matches(key, pool, n=3, cutoff=0.85)


# Keys that count things: 0 or less would divide by zero or run nothing.
POSITIVE_KEYS = (
    "data.train_batch_size", "data.max_prompt_length", "data.max_response_length",
    "actor_rollout_ref.actor.ppo_mini_batch_size", "actor_rollout_ref.rollout.n", "trainer.n_gpus_per_node",
    "trainer.nnodes", "trainer.total_epochs", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu",
    "actor_rollout_ref.rollout.tensor_model_parallel_size",
)


def value_problems(cfg: Any, config_name: str = "ppo_trainer") -> list[tuple[str, str]]:
    """Values verl would only choke on later: text where verl's default is a number or a bool, counts below 1.

    Checked before anything computes with them (batch scaling divides by these numbers).
    """
    from omegaconf import OmegaConf

    found: list[tuple[str, str]] = []
    base = OmegaConf.to_container(base_config(config_name), resolve=False)
    mine = OmegaConf.to_container(cfg, resolve=False)

    def walk(default: Any, value: Any, prefix: str) -> None:
        if isinstance(default, dict) and isinstance(value, dict):
            for key, sub in value.items():
                if key in default:
                    walk(default[key], sub, f"{prefix}{key}.")
            return
        key = prefix[:-1]
        if not isinstance(value, str) or "${" in value or isinstance(default, str) or default is None:
            return
        if isinstance(default, bool):
            if value.lower() not in ("true", "false"):
                found.append((f"{key}={value!r} is not true/false", f"pass `-- {key}={str(default).lower()}` "
                              "(or the value you meant: true / false)"))
            return
        if isinstance(default, int | float):
            try:
                float(value)
            except ValueError:
                kind = "an integer" if isinstance(default, int) else "a number"
                found.append((f"{key}={value!r} is not {kind} (verl would fail on it mid-start, or train with it "
                              "as text)", f"pass `-- {key}=<{kind}>`, e.g. `-- {key}={default}` (verl's default)"))

    walk(base, mine, "")
    for key in POSITIVE_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, bool) or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue  # reported above
        if number < 1:
            found.append((f"{key}={value} must be at least 1 (it counts sequences, GPUs, epochs or tokens)",
                          f"pass `-- {key}=<a positive integer>`, or drop the override to keep the preset's value"))
    return found


def check_values(cfg: Any) -> None:
    """Raise :class:`PreflightError` listing every :func:`value_problems` (before batch scaling divides by them)."""
    found = value_problems(cfg)
    if found:
        raise PreflightError(found[0][0], found[0][1], found[1:])


def wandb_logged_in() -> bool:
    """A W&B login this process can use: ``WANDB_API_KEY`` or an api.wandb.ai entry in ``~/.netrc``."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    try:
        return "api.wandb.ai" in netrc.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def wandb_offline_if_no_login(loggers: Iterable[str]) -> str | None:
    """With W&B among ``loggers``, no login and no ``WANDB_MODE``: set ``WANDB_MODE=offline``; return the note."""
    if "wandb" not in list(loggers) or os.environ.get("WANDB_MODE") or wandb_logged_in():
        return None
    os.environ["WANDB_MODE"] = "offline"
    return ("W&B has no login here (no WANDB_API_KEY, no api.wandb.ai in ~/.netrc): set WANDB_MODE=offline; "
            "the run is logged locally, `wandb sync <dir>/wandb/offline-run-*` uploads it later "
            "(`wandb login` first, or export WANDB_MODE=online to insist)")


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


def check_verl_config(cfg: Any, report: Report) -> None:
    """verl's own ``validate_config``, the LoRA rank against vLLM, runtime batch splits, interpolations."""
    from omegaconf import OmegaConf

    rank = lora_rank(cfg)
    rollout = cfg.actor_rollout_ref.rollout.name
    error = _validate_error(cfg)
    found: list[tuple[str, str]] = []
    if error is None:
        report.passed.append("verl's validate_config passed")
    else:  # verl raises AssertionError / ValueError with the offending keys in the text
        found.append((
            f"verl's validate_config: {error}",
            "change the keys it names after `--` (e.g. `-- data.train_batch_size=128`), or drop your batch "
            "overrides so editjudge scales them for the GPU count",
        ))
    found += batch_problems(cfg)
    if found:
        # One joint fix for every batch problem, itself checked: fixing one key at a time leads from one
        # failure into the next (a larger mini batch then exceeds the global batch, ...).
        joint = consistent_batches(cfg)
        if joint and passes_with(cfg, joint):
            fix = (f"pass `-- {' '.join(f'{k}={v}' for k, v in joint.items())}` (checked: verl's validate_config "
                   "and the batch splits pass with these), or drop your batch overrides so editjudge scales them")
            found = [(problem, fix if "batch" in problem or "tensor_model_parallel" in problem else old_fix)
                     for problem, old_fix in found]
    for problem, fix in found:
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
    check_filter_groups(cfg, result, report)


def check_filter_groups(cfg: Any, reward_result: Any, report: Report) -> None:
    """DAPO's dynamic sampling (``algorithm.filter_groups``): verl's v1 trainer reads it, with a metric the reward
    returns (``reward`` or one of ``compute_score``'s keys); anything else fails in the replay buffer mid-run."""
    groups = cfg.algorithm.get("filter_groups") or {}
    if not groups.get("enable", False):
        return
    metric = groups.get("metric")
    known = ["reward", *(k for k in (reward_result if isinstance(reward_result, dict) else {}) if k != "score")]
    if not cfg.trainer.get("use_v1", True):
        report.fail("algorithm.filter_groups.enable=true with trainer.use_v1=false: verl 0.9.1's legacy trainer "
                    "ignores group filtering (only the v1 trainer's replay buffer filters groups)",
                    "drop trainer.use_v1=false (the v1 trainer is verl's default), or algorithm.filter_groups.enable")
    elif metric not in known:
        report.fail(f"algorithm.filter_groups.metric={metric!r} is not a value the reward returns: verl's replay "
                    "buffer would stop at the first finished group ('missing DAPO metric')",
                    f"use one of {known} (reward = the score; the others are compute_score's keys)")
    else:
        if int(groups.get("max_num_gen_batches") or 0) > 0:
            report.warnings.append("algorithm.filter_groups.max_num_gen_batches is ignored by verl 0.9.1's v1 trainer; "
                        "algorithm.filter_groups.max_inflight_gen_batches bounds the extra generation")
        report.passed.append(f"dynamic sampling: groups whose {metric} is equal for every sample are dropped and "
                             "refilled (algorithm.filter_groups)")


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
        if not wandb_logged_in():
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

def check_steps(cfg: Any, train_rows: int, report: Report) -> None:
    """verl drops the last incomplete batch: fewer rows than ``data.train_batch_size`` means no step at all."""
    batch = int(cfg.data.train_batch_size)
    if not train_rows:
        return
    if train_rows < batch:
        world = int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)
        step = world // math.gcd(int(cfg.actor_rollout_ref.rollout.n), world)  # keeps batch × n divisible by GPUs
        fitting = train_rows // step * step
        joint = consistent_batches(cfg, batch=fitting, limit=train_rows) if fitting else {}
        if joint and not passes_with(cfg, joint):
            joint = {}
        report.fail(
            f"the training files hold {train_rows} rows, fewer than data.train_batch_size={batch}: verl drops the "
            "incomplete batch, so no training step would run",
            "prepare more data"
            + (f", or pass `-- {' '.join(f'{k}={v}' for k, v in joint.items())}` (checked: verl's validate_config and "
               "the batch splits pass with these)" if joint else f" (at least {step} rows for {world} GPUs)"),
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
    if cfg.actor_rollout_ref.model.get("use_liger", False):
        needs["liger_kernel"] = ("pip install liger-kernel on every GPU node (actor_rollout_ref.model.use_liger=true), "
                                 "or pass `-- actor_rollout_ref.model.use_liger=false`")
    for module, fix in needs.items():
        if importlib.util.find_spec(module) is None:
            report.fail(f"{module} is not importable here, and the launch needs it", fix)
