"""``editjudge train --stage sft`` on verl: preset + flags + extras -> one ``torchrun -m verl.trainer.sft_trainer``.

verl's SFT trainer is an SPMD program started by torchrun (no Ray): one process per GPU, ``--nnodes`` machines
rendezvousing at ``MASTER_ADDR:MASTER_PORT`` with ``NODE_RANK`` set on each, as verl's SFT examples do. The CPU
pre-flight (:mod:`editjudge.train.sft_preflight`) checks the composed config, the model and every row first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from editjudge.train.presets import Preset
from editjudge.train.overrides import OverrideSet, split_override
from editjudge.train.verl import check_counts, launch_basics

SFT_MODULE = "verl.trainer.sft_trainer"


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def check_stage(preset: Preset) -> None:
    """``ValueError`` when the preset is not an SFT preset (its keys would not compose with the SFT config)."""
    stage = preset_stage(preset)
    if stage != "sft":
        raise ValueError(
            f"preset {preset.name!r} is a GRPO preset (keys actor_rollout_ref.*): pass --preset qwen2_5_vl_3b_sft_lora "
            "or your own preset with 'stage: sft'"
        )


def preset_stage(preset: Preset) -> str:
    """``sft`` or ``grpo``: the preset file's ``stage`` key, else guessed from its keys (SFT keys are model.*, optim.*)."""
    import yaml

    if preset.path is not None:
        data = yaml.safe_load(Path(preset.path).read_text(encoding="utf-8")) or {}
        if isinstance(data, dict) and data.get("stage"):
            return str(data["stage"])
    return "sft" if any(k.lstrip("+").startswith(("model.", "optim.", "engine.")) for k in preset.overrides) else "grpo"


def build_sft_overrides(preset: Preset, args: argparse.Namespace) -> OverrideSet:
    """The preset's overrides, then the flags, then the user's extras (which win)."""
    check_counts(args)
    ov = OverrideSet()
    for key, value in preset.overrides.items():
        ov.set(key, value)
    launch_basics(ov, preset, args, "model.path")
    if args.output_dir:
        ov.set("trainer.default_local_dir", os.path.join(_absolute(args.output_dir), "checkpoints"))
    elif ov.get("trainer.default_local_dir") is None:
        ov.set("trainer.default_local_dir", _absolute("checkpoints") + "/${trainer.project_name}/${trainer.experiment_name}")
    if getattr(args, "init_adapter", None):
        ov.set("model.lora_adapter_path", _absolute(args.init_adapter))
    if args.resume == "auto":
        ov.set("trainer.resume_mode", "auto")
    elif args.resume:
        ov.set("trainer.resume_mode", "resume_path")
        ov.set("trainer.resume_from_path", _absolute(args.resume))
    for item in args.overrides or []:
        prefix, key, value = split_override(item)
        ov.set(key, value, prefix=prefix or None, raw=True)
        ov.explicit.add(key)
    return ov


def torchrun_command(overrides: list[str], gpus: int, nodes: int, env: dict[str, str] | None = None) -> list[str]:
    """torchrun for ``gpus`` processes per node on ``nodes`` nodes (multi-node: NODE_RANK, MASTER_ADDR, MASTER_PORT)."""
    env = os.environ if env is None else env
    runner = Path(sys.executable).with_name("torchrun")
    head = [str(runner)] if runner.is_file() else [shutil.which("torchrun") or "torchrun"]
    if nodes == 1:
        head += ["--standalone", "--nnodes=1", f"--nproc_per_node={gpus}"]
    else:
        head += [
            f"--nnodes={nodes}", f"--nproc_per_node={gpus}", f"--node_rank={env.get('NODE_RANK', '$NODE_RANK')}",
            f"--master_addr={env.get('MASTER_ADDR', '$MASTER_ADDR')}", f"--master_port={env.get('MASTER_PORT', '29500')}",
        ]
    return head + ["-m", SFT_MODULE, *overrides]


@dataclass
class SftPlan:
    overrides: list[str]
    config: Any
    argv: list[str]


def plan(preset: Preset, args: argparse.Namespace) -> SftPlan:
    """Overrides composed with verl's SFT config, and the torchrun command that runs them."""
    from editjudge.train.sft_preflight import compose_sft

    check_stage(preset)
    ov = build_sft_overrides(preset, args)
    cfg = compose_sft(ov.as_list())
    argv = torchrun_command(ov.as_list(), int(cfg.trainer.n_gpus_per_node), int(cfg.trainer.nnodes))
    return SftPlan(overrides=ov.as_list(), config=cfg, argv=argv)


def run(args: argparse.Namespace, preset: Preset) -> int:
    """Plan, pre-flight, then print (``--dry-run``) or launch."""
    from editjudge.train.preflight import PreflightError
    from editjudge.train.sft_preflight import run_sft_checks

    try:
        the_plan = plan(preset, args)
    except PreflightError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"editjudge train: error: {exc}", file=sys.stderr)
        return 2
    if not args.skip_preflight:
        report = run_sft_checks(the_plan.config, max_rows=getattr(args, "preflight_rows", None),
                                init_adapter=getattr(args, "init_adapter", None))
        print(report.render(), file=sys.stderr)
        if not report.ok:
            return 2
    text = " \\\n    ".join(_shell_lines(the_plan.argv))
    if args.dry_run:
        print(text)
        return 0
    nodes = int(the_plan.config.trainer.nnodes)
    missing = [v for v in ("NODE_RANK", "MASTER_ADDR") if nodes > 1 and not os.environ.get(v)]
    if missing:
        print(f"editjudge train: error: a {nodes}-node SFT run needs {' and '.join(missing)} in the environment: run "
              "the same command on every node with NODE_RANK=0..N-1 and MASTER_ADDR=<node 0's address>",
              file=sys.stderr)
        return 2
    print(text, file=sys.stderr)
    return subprocess.call(the_plan.argv)


def _shell_lines(argv: list[str]) -> list[str]:
    """The launcher and module on one line, then one quoted ``key=value`` per line."""
    import shlex

    split = argv.index(SFT_MODULE) + 1
    return [" ".join(shlex.quote(a) for a in argv[:split]), *(shlex.quote(a) for a in argv[split:])]
