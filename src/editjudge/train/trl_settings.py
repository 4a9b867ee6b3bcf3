"""The TRL engine's keys, checked by name: which preset / command-line keys it reads, and their types.

Three kinds of key reach :class:`~editjudge.train.trl.TrlSettings`:

- the verl keys whose meaning both engines share (:data:`~editjudge.train.trl.PRESET_KEYS`, the reward's
  ``reward.custom_reward_function.reward_kwargs.*``);
- ``trl.<name>`` where ``name`` is a ``TrlSettings`` field (``trl.max_steps``, ``trl.warm_start_steps`` …);
- ``trl.<name>`` where ``name`` is any other field of TRL's ``GRPOConfig`` (``trl.top_k``, ``trl.loss_type`` …),
  handed to ``GRPOConfig`` as given.

A preset holds the first kind under ``overrides`` (shared with verl: keys only verl reads are skipped there) and the
``trl.`` keys under a top-level ``trl:`` mapping; the command line takes all three after ``--``
(``-- trl.beta=0.04 actor_rollout_ref.rollout.n=8``). A key the engine does not read is refused, with the
nearest ones it does read. Imports TRL only to check a name that is not a ``TrlSettings`` field.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from editjudge.train.trl import PRESET_KEYS, REWARD_KWARGS_PREFIX, TrlSettings

TRL_PREFIX = "trl."
# TrlSettings fields a user does not set through trl.<name>: they have their own flag.
_FLAG_FIELDS = {"model": "--model", "output_dir": "--output-dir", "grpo": "trl.<GRPOConfig field>, one key each"}
# GRPOConfig fields the engine derives from the settings: the key that sets each.
ENGINE_SET = {
    "output_dir": "--output-dir", "num_train_epochs": "trainer.total_epochs (or trl.epochs)",
    "per_device_train_batch_size": "--per-device-batch-size (or trl.per_device_batch_size)",
    "per_device_eval_batch_size": "--per-device-batch-size (or trl.per_device_batch_size)",
    "report_to": "trainer.logger (e.g. -- 'trainer.logger=[console,tensorboard]')",
    "reward_weights": "reward.custom_reward_function.reward_kwargs.*", "data_seed": "trl.seed (or --seed)",
    "save_strategy": "trainer.save_freq (or trl.save_steps)", "eval_strategy": "trainer.test_freq (or trl.eval_steps)",
    "use_cpu": "the machine (CUDA_VISIBLE_DEVICES)", "bf16": "the machine (bf16 on a GPU that supports it)",
    "run_name": "trainer.experiment_name (or trl.run_name)", "remove_unused_columns": "the engine (always False)",
    "dataloader_num_workers": "the engine (0: images decode in the main process)",
}


def settings_fields() -> dict[str, Any]:
    """``TrlSettings`` field name -> its type (resolved annotations)."""
    hints = typing.get_type_hints(TrlSettings)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrlSettings) if f.name not in _FLAG_FIELDS}


def grpo_fields() -> dict[str, dataclasses.Field]:
    """TRL's ``GRPOConfig`` fields by name (imports TRL)."""
    from trl import GRPOConfig

    return {f.name: f for f in dataclasses.fields(GRPOConfig)}


def read_keys() -> list[str]:
    """Every key the engine reads, for error messages (GRPOConfig's fields summarised as one entry)."""
    return [*PRESET_KEYS, REWARD_KWARGS_PREFIX + "<name>", *(TRL_PREFIX + n for n in settings_fields()),
            TRL_PREFIX + "<any TRL GRPOConfig field, e.g. beta, top_k, loss_type, epsilon, scale_rewards>"]


def _parse(value: Any) -> Any:
    if isinstance(value, str):
        import yaml

        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def coerce(key: str, hint: Any, value: Any) -> Any:
    """``value`` (a YAML value, or text from the command line) as type ``hint``; ``ValueError`` naming ``key``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) > 1:
        # str | list[str] and the like: a list when it looks like one, else the text (regexes are not YAML)
        parsed = _parse(value) if isinstance(value, str) and value.startswith("[") else value
        if parsed is None and optional:
            return None
        if isinstance(parsed, list):
            return [str(v) for v in parsed]
        return parsed if not isinstance(parsed, str) else str(parsed)
    base = args[0] if args else hint
    parsed = _parse(value)
    if parsed is None and optional:
        return None
    kind = typing.get_origin(base) or base
    try:
        if kind is bool:
            if not isinstance(parsed, bool):
                raise ValueError
            return parsed
        if kind is int:
            if isinstance(parsed, bool) or float(parsed) != int(float(parsed)):
                raise ValueError
            return int(float(parsed))
        if kind is float:
            if isinstance(parsed, bool):
                raise ValueError
            return float(parsed)
        if kind is list:
            items = parsed if isinstance(parsed, list) else [parsed]
            return [str(v) for v in items]
        if kind is dict:
            if not isinstance(parsed, dict):
                raise ValueError
            return parsed
        if kind is str:
            return str(parsed) if parsed is not None else value
    except (TypeError, ValueError):
        name = getattr(kind, "__name__", str(kind))
        raise ValueError(f"{key}={value!r} is not a valid {name}"
                         + (" (or null)" if optional else "")) from None
    return parsed


def _grpo_value(key: str, field: dataclasses.Field, value: Any) -> Any:
    """A GRPOConfig value: parsed YAML, checked against the type of the field's default where that is plain."""
    parsed = _parse(value)
    default = field.default
    if parsed is None or default is dataclasses.MISSING or default is None:
        return parsed
    if isinstance(default, bool):
        if not isinstance(parsed, bool):
            raise ValueError(f"{key}={value!r} must be true or false")
    elif isinstance(default, int | float):
        if isinstance(parsed, bool) or not isinstance(parsed, int | float):
            raise ValueError(f"{key}={value!r} must be a number (TRL's default: {default!r})")
        if isinstance(default, float):
            return float(parsed)
    return parsed


def unknown_key_error(key: str, where: str) -> ValueError:
    """The refusal of a key the engine does not read: the nearest keys it reads, then all of them."""
    pool = [*PRESET_KEYS, *(TRL_PREFIX + n for n in settings_fields())]
    if key.startswith(TRL_PREFIX):
        try:
            pool += [TRL_PREFIX + n for n in grpo_fields()]
        except ImportError:
            pass
    near = difflib.get_close_matches(key, list(dict.fromkeys(pool)), n=3, cutoff=0.75)
    hint = f" (did you mean {' or '.join(near)}?)" if near else ""
    return ValueError(
        f"{where}: the TRL engine does not read {key!r}{hint}. It reads: {', '.join(read_keys())}. "
        "verl-only keys (FSDP, vLLM, Ray, batch splits) have no meaning in one process"
    )


def resolve(preset_overrides: Mapping[str, Any], preset_trl: Mapping[str, Any], cli: Mapping[str, Any]) \
        -> tuple[dict[str, Any], dict[str, Any]]:
    """The preset's keys, then its ``trl:`` mapping, then the command line's: (verl-named keys, trl keys).

    Returns the verl-named keys the engine reads (for :func:`~editjudge.train.trl.settings_from_overrides`) and
    the ``trl.`` settings as ``{name: typed value}``; raises ``ValueError`` for a key the engine does not read.
    """
    verl_keys: dict[str, Any] = {}
    trl_keys: dict[str, Any] = {}
    for key, value in preset_overrides.items():
        bare = key.lstrip("+")
        if bare in PRESET_KEYS or bare.startswith(REWARD_KWARGS_PREFIX):
            verl_keys[bare] = value
        elif bare.startswith(TRL_PREFIX):
            trl_keys[bare[len(TRL_PREFIX):]] = ("preset overrides", value)
        # any other key of a preset is verl's (the preset is shared; verl's pre-flight checks those)
    for name, value in preset_trl.items():
        trl_keys[str(name).removeprefix(TRL_PREFIX)] = ("the preset's trl: mapping", value)
    for key, value in cli.items():
        bare = key.lstrip("+")
        if bare.startswith(TRL_PREFIX):
            trl_keys[bare[len(TRL_PREFIX):]] = ("the command line", value)
        elif bare in PRESET_KEYS or bare.startswith(REWARD_KWARGS_PREFIX):
            verl_keys[bare] = value
        else:
            raise unknown_key_error(bare, "the command line")
    return verl_keys, check_trl_keys(trl_keys)


def check_trl_keys(items: Mapping[str, tuple[str, Any]]) -> dict[str, Any]:
    """``{name: (where, value)}`` -> ``{name: typed value}``: TrlSettings fields typed, GRPOConfig fields under
    ``"grpo"``; refuses unknown names and GRPOConfig fields that the engine sets from another key."""
    fields = settings_fields()
    out: dict[str, Any] = {}
    grpo: dict[str, Any] = {}
    for name, (where, value) in items.items():
        key = TRL_PREFIX + name
        if name in _FLAG_FIELDS:
            raise ValueError(f"{where}: {key} is set with {_FLAG_FIELDS[name]}")
        if name in fields:
            out[name] = coerce(key, fields[name], value)
            continue
        if name in ENGINE_SET:
            raise ValueError(f"{where}: {key} is set by the engine from {ENGINE_SET[name]}")
        available = grpo_fields()
        if name not in available:
            raise unknown_key_error(key, where)
        grpo[name] = _grpo_value(key, available[name], value)
    if grpo:
        out["grpo"] = {**dict(out.get("grpo") or {}), **grpo}
    return out


def parse_items(items: Iterable[str]) -> dict[str, str]:
    """``key=value`` strings (after ``--``) as a dict; ``ValueError`` for anything else."""
    out: dict[str, str] = {}
    for item in items:
        if item.startswith("~"):
            raise ValueError(f"{item!r}: the TRL engine has no keys to delete; set the value instead (key=value)")
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        out[key.strip().lstrip("+")] = value
    return out


__all__ = ["ENGINE_SET", "TRL_PREFIX", "check_trl_keys", "coerce", "grpo_fields", "parse_items", "read_keys",
           "resolve", "settings_fields", "unknown_key_error"]
