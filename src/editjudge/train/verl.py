"""The verl engine: preset + flags + extra overrides -> one ``python -m verl.trainer.main_ppo`` command.

Order of precedence (later wins): the preset, the flags (files, model, GPUs, nodes, resume, output dir), batch
settings rescaled for the GPU count, then the user's extra ``key=value`` overrides. The CPU pre-flight
(:mod:`editjudge.train.preflight`) composes the result with verl's own Hydra config before anything starts.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from editjudge.train import preflight
from editjudge.train.overrides import OverrideSet, format_value, split_override  # noqa: F401 (re-exported)
from editjudge.train.preflight_batches import _largest_divisor_at_most, _round_up, batch_problems  # noqa: F401
from editjudge.train.presets import Preset

VERL_MODULE = "verl.trainer.main_ppo"
# Driver environment handed to every Ray worker (a cluster started with `ray start` does not see the driver's).
FORWARDED_ENV = ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "TENSORBOARD_DIR", "HF_HUB_OFFLINE")
RUNTIME_ENV_VARS = "+ray_kwargs.ray_init.runtime_env.env_vars"
# Output folders that must not depend on a Ray worker's working directory.
_OUTPUT_KEYS = ("trainer.default_local_dir", "trainer.rollout_data_dir", "trainer.validation_data_dir")


def _absolute(path: str) -> str:
    """An absolute local path: Ray workers do not share the driver's working directory."""
    return os.path.abspath(os.path.expanduser(path))


def _model_ref(path: str) -> str:
    """A local model directory made absolute; a hub id (``org/name`` that is not a local path) kept as it is."""
    expanded = os.path.expanduser(path)
    if os.path.exists(expanded) or expanded.startswith((".", "/")) or expanded.count("/") != 1:
        return os.path.abspath(expanded)
    return path


def launch_basics(ov: OverrideSet, preset: Preset, args: argparse.Namespace, model_key: str) -> None:
    """What every verl launch takes from the flags: the model (at ``model_key``), the data files, GPUs and nodes."""
    ov.set(model_key, _model_ref(args.model or preset.model))
    for flag, key in (("train_files", "data.train_files"), ("val_files", "data.val_files")):
        files = getattr(args, flag, None)
        if files:
            paths = [_absolute(f) for f in files]
            ov.set(key, paths[0] if len(paths) == 1 else paths)
    if args.gpus is not None:
        ov.set("trainer.n_gpus_per_node", args.gpus)
    if args.nodes is not None:
        ov.set("trainer.nnodes", args.nodes)


def check_counts(args: argparse.Namespace) -> None:
    """``--gpus`` / ``--nodes`` are at least 1 (``ValueError`` otherwise)."""
    for flag in ("gpus", "nodes"):
        if getattr(args, flag, None) is not None and getattr(args, flag) < 1:
            raise ValueError(f"--{flag} must be at least 1, got {getattr(args, flag)}")


def build_overrides(preset: Preset, args: argparse.Namespace) -> OverrideSet:
    """The preset's overrides, then the flags, then the user's extras (which win).

    Relative output folders of the preset become absolute (resolved here, where the command is launched), and
    the W&B / TensorBoard environment is passed to the Ray workers through verl's ``ray_kwargs.ray_init``.
    """
    check_counts(args)
    ov = OverrideSet()
    env = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
    for key, value in preset.overrides.items():
        if key in _OUTPUT_KEYS and isinstance(value, str) and "${" not in value:
            value = _absolute(value)
        ov.set(key, value)
    launch_basics(ov, preset, args, "actor_rollout_ref.model.path")
    if args.output_dir:
        out = os.path.abspath(os.path.expanduser(args.output_dir))
        ov.set("trainer.default_local_dir", os.path.join(out, "checkpoints"))
        ov.set("trainer.rollout_data_dir", os.path.join(out, "rollout_generations"))
        ov.set("trainer.validation_data_dir", os.path.join(out, "validation_generations"))
        env["TENSORBOARD_DIR"] = os.path.join(out, "tensorboard")
        env["WANDB_DIR"] = out
    if ov.get("trainer.default_local_dir") is None:  # verl's default, anchored here rather than in a Ray worker
        ov.set("trainer.default_local_dir", _absolute("checkpoints") + "/${trainer.project_name}/${trainer.experiment_name}")
    for name, value in sorted(env.items()):
        ov.set(f"{RUNTIME_ENV_VARS}.{name}", value)
    if args.resume == "auto":
        ov.set("trainer.resume_mode", "auto")
    elif args.resume:
        ov.set("trainer.resume_mode", "resume_path")
        ov.set("trainer.resume_from_path", os.path.abspath(os.path.expanduser(args.resume)))
    if getattr(args, "init_adapter", None):  # GRPO from an adapter (e.g. the SFT stage's), checked in the pre-flight
        ov.set("actor_rollout_ref.model.lora_adapter_path", _absolute(args.init_adapter))
    for item in args.overrides or []:
        prefix, key, value = split_override(item)
        if key.startswith("trl."):
            raise ValueError(f"{item!r} is a TRL engine setting: pass it with --engine trl (verl has no trl.* keys)")
        ov.set(key, value, prefix=prefix or None, raw=True)
        ov.explicit.add(key)
    return ov


# --------------------------------------------------------------------------------------------------------------
# Batch settings for a GPU count


def scale_batches(cfg: Any, explicit: Iterable[str] = ()) -> dict[str, int]:
    """Batch settings that keep verl valid for ``n_gpus_per_node × nnodes``; keys the user set are kept.

    verl needs (non-dynamic batch): ``train_batch_size × n`` divisible by the GPU count (``validate_config``);
    ``ppo_mini_batch_size × n`` divisible by the data-parallel size, and that per-GPU mini batch divisible by the
    micro batch (the actor's mini-batch split); log-prob micro batches dividing the per-GPU share. Mini and global
    batch are rounded up to the nearest valid value; micro batches come down to the largest valid divisor;
    the rollout tensor-parallel size comes down to a divisor of the GPUs per node.
    """
    explicit = set(explicit)
    arr = cfg.actor_rollout_ref
    gpus_per_node, nodes = int(cfg.trainer.n_gpus_per_node), int(cfg.trainer.nnodes)
    world = gpus_per_node * nodes
    n = int(arr.rollout.n)
    changes: dict[str, int] = {}

    tp_key = "actor_rollout_ref.rollout.tensor_model_parallel_size"
    tp = int(arr.rollout.get("tensor_model_parallel_size") or 1)
    if tp_key not in explicit and gpus_per_node % tp:
        changes[tp_key] = math.gcd(tp, gpus_per_node)

    if arr.actor.get("use_dynamic_bsz", False):
        return changes
    sp = int(arr.actor.get("ulysses_sequence_parallel_size") or 1)
    dp = max(1, world // sp)
    batch = int(cfg.data.train_batch_size)
    mini = int(arr.actor.ppo_mini_batch_size)

    mini_key, batch_key = "actor_rollout_ref.actor.ppo_mini_batch_size", "data.train_batch_size"
    mini_step = dp // math.gcd(n, dp)  # keeps mini × n divisible by the data-parallel GPUs
    if mini_key not in explicit:
        if batch_key in explicit and mini > batch:  # the user's smaller global batch caps the mini batch
            mini = max(mini_step, batch // mini_step * mini_step)
        else:
            mini = _round_up(mini, mini_step)
        changes[mini_key] = mini
    if batch_key not in explicit:
        batch = _round_up(max(batch, mini), math.lcm(mini, world // math.gcd(n, world)))
        changes[batch_key] = batch

    per_gpu_mini = mini * n // dp if (mini * n) % dp == 0 else 0
    if per_gpu_mini:
        for key, node in (
            ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", arr.actor),
            ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", arr.rollout),
            ("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu", arr.ref),
        ):
            leaf = key.rsplit(".", 1)[1]
            value = node.get(leaf)
            if key not in explicit and value is not None:
                changes[key] = _largest_divisor_at_most(per_gpu_mini, int(value))
    return {k: v for k, v in changes.items() if v != _current(cfg, k)}


def _current(cfg: Any, dotted: str) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, dotted)


# --------------------------------------------------------------------------------------------------------------
# Command and launch


def verl_command(overrides: list[str], python: str | None = None) -> list[str]:
    """The argv that starts verl's PPO trainer with these overrides."""
    return [python or sys.executable, "-m", VERL_MODULE, *overrides]


def format_command(argv: list[str]) -> str:
    """Shell form of the command: the interpreter and module, then one ``key=value`` per line."""
    lines = [" ".join(shlex.quote(a) for a in argv[:3])]
    lines.extend(shlex.quote(a) for a in argv[3:])
    return " \\\n    ".join(lines)


@dataclass
class Plan:
    """Everything needed to launch: the final overrides, the composed config, notes for the user."""

    overrides: list[str]
    config: Any
    notes: list[str]


def plan(preset: Preset, args: argparse.Namespace) -> Plan:
    """Build overrides, compose with verl's config, rescale batches for the GPU count, compose again."""
    ov = build_overrides(preset, args)
    cfg = preflight.compose(ov.as_list())
    preflight.check_values(cfg)  # before scaling divides by them
    notes = []
    loggers = cfg.trainer.get("logger") or []
    offline = preflight.wandb_offline_if_no_login([loggers] if isinstance(loggers, str) else list(loggers))
    if offline:
        notes.append(offline)
        ov.set(f"{RUNTIME_ENV_VARS}.WANDB_MODE", "offline")  # the Ray workers run W&B, not this process
    changes = scale_batches(cfg, ov.explicit)
    if changes:
        world = int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)
        for key, value in changes.items():
            notes.append(f"scaled for {world} GPU(s): {key} {_current(cfg, key)} -> {value}")
            ov.set(key, value)
    if changes or offline:
        cfg = preflight.compose(ov.as_list())
    return Plan(overrides=ov.as_list(), config=cfg, notes=notes)


def run(args: argparse.Namespace, preset: Preset) -> int:
    """``editjudge train --engine verl``: plan, pre-flight, then print (``--dry-run``) or launch."""
    try:
        the_plan = plan(preset, args)
    except preflight.PreflightError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"editjudge train: error: {exc}", file=sys.stderr)
        return 2
    for note in the_plan.notes:
        print(f"note: {note}", file=sys.stderr)
    if not args.skip_preflight:
        report = preflight.run_checks(
            the_plan.config, launching=not args.dry_run, max_rows=getattr(args, "preflight_rows", None)
        )
        from editjudge.train.init_adapter import check_into

        check_into(report, getattr(args, "init_adapter", None), the_plan.config.actor_rollout_ref.model,
                   "actor_rollout_ref.model.")
        print(report.render(), file=sys.stderr)
        if not report.ok:
            return 2
    argv = verl_command(the_plan.overrides)
    if args.dry_run:
        print(format_command(argv))
        return 0
    if int(the_plan.config.trainer.nnodes) > 1 and not os.environ.get("RAY_ADDRESS"):
        print(
            "note: multi-node run without RAY_ADDRESS: verl's ray.init() joins the Ray cluster this machine belongs "
            "to (`ray start --head` here, `ray start --address=HEAD:6379` on the others); see docs/training.md",
            file=sys.stderr,
        )
    print(format_command(argv), file=sys.stderr)
    return subprocess.call(argv)


__all__ = [
    "OverrideSet", "Plan", "batch_problems", "build_overrides", "format_command", "format_value", "plan", "run",
    "scale_batches", "split_override", "verl_command",
]
