"""``editjudge train --engine trl``: the engine's flags, settings from preset + overrides + flags, and the run."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from editjudge.model_path import absolute_path
from editjudge.train.trl import TrlSettings, read_examples, settings_from_overrides, train

def add_trl_arguments(parser: argparse.ArgumentParser) -> None:
    """The "TRL engine" argument group of ``editjudge train``."""
    group = parser.add_argument_group("TRL engine", "only used with --engine trl (single process, CPU or one GPU)")
    group.add_argument("--max-steps", type=int, default=None,
                       help="stop after this many GRPO steps (default: the preset's trl.max_steps, else run the "
                       "epochs)")
    group.add_argument("--per-device-batch-size", type=int, default=None,
                       help="completions per step, a multiple of rollout.n (default: rollout.n, i.e. one prompt)")
    group.add_argument("--max-completion-length", type=int, default=None,
                       help="max new tokens per completion (default: the preset's data.max_response_length)")
    group.add_argument("--warm-start-steps", type=int, default=None,
                       help="supervised steps on the answer format before GRPO (cold start; default: the preset's "
                       "trl.warm_start_steps, else 0)")
    group.add_argument("--warm-start-lr", type=float, default=None,
                       help="learning rate of the warm start (default: the preset's trl.warm_start_lr, else 1e-4)")
    group.add_argument("--seed", type=int, default=None,
                       help="seed of sampling, data order and LoRA init (default: the preset's trl.seed, else 42)")
    group.add_argument("--force", action="store_true",
                       help="train into an --output-dir that already holds files (replaces the adapter and metrics)")


def settings_from_args(args: argparse.Namespace, preset) -> TrlSettings:
    """The preset's keys, its ``trl:`` mapping, then ``-- key=value`` overrides, then the TRL flags.

    Every key is checked by name (:mod:`editjudge.train.trl_settings`): one the engine does not read is refused.
    """
    from editjudge.train import trl_settings

    verl_keys, trl_keys = trl_settings.resolve(
        dict(getattr(preset, "overrides", {}) or {}), dict(getattr(preset, "trl", {}) or {}),
        trl_settings.parse_items(getattr(args, "overrides", None) or []),
    )
    model = getattr(args, "model", None) or getattr(preset, "model", None)
    if not model:
        raise ValueError("no model: pass --model PATH_OR_HUB_ID (or use a preset that names one)")
    flags = {
        "max_steps": getattr(args, "max_steps", None),
        "per_device_batch_size": getattr(args, "per_device_batch_size", None),
        "max_completion_length": getattr(args, "max_completion_length", None),
        "warm_start_steps": getattr(args, "warm_start_steps", None),
        "warm_start_lr": getattr(args, "warm_start_lr", None),
        "seed": getattr(args, "seed", None),
        "init_adapter": absolute_path(args.init_adapter) if getattr(args, "init_adapter", None) else None,
    }
    return settings_from_overrides(
        verl_keys,
        model=str(model),
        output_dir=absolute_path(getattr(args, "output_dir", None) or "outputs/trl"),  # trl_settings.json: absolute
        **{**trl_keys, **{k: v for k, v in flags.items() if v is not None}},
    )


def _check_init_adapter(settings: TrlSettings) -> None:
    """``ValueError`` naming each way ``--init-adapter`` does not fit this run (rank, alpha, modules, base model)."""
    if not settings.init_adapter:
        return
    from editjudge.train.init_adapter import adapter_problems

    problems = adapter_problems(
        settings.init_adapter, rank=settings.lora_rank, alpha=settings.lora_alpha,
        target_modules=settings.target_modules, exclude_modules=settings.exclude_modules, base_model=settings.model,
        keys={k: f"actor_rollout_ref.model.{v}" for k, v in (("rank", "lora_rank"), ("alpha", "lora_alpha"),
              ("target_modules", "target_modules"), ("exclude_modules", "exclude_modules"))},
    )
    if problems:
        raise ValueError("; ".join(f"{problem} (fix: {fix})" for problem, fix in problems))


def _check_budget(settings: TrlSettings, examples: object) -> None:
    """The dry run's check that a completion can hold one whole answer (``train`` makes it too, after loading)."""
    from transformers import AutoTokenizer

    from editjudge.train.trl_data import check_completion_budget

    check_completion_budget(examples, AutoTokenizer.from_pretrained(settings.model), settings.max_completion_length)


def run(args: argparse.Namespace, preset) -> int:
    """``editjudge train --engine trl``: returns the exit code (2 for bad settings or data)."""
    try:
        settings = settings_from_args(args, preset)
        train_files = getattr(args, "train_files", None)
        print("TRL engine settings:\n" + json.dumps(asdict(settings), indent=2, sort_keys=True), flush=True)
        val_files = getattr(args, "val_files", None)
        if val_files and settings.eval_steps <= 0:
            print("note: trainer.test_freq <= 0, so --val-files is not used; evaluate with `editjudge eval`")
        from editjudge.data.writer import check_output  # the one output rule (OutputExists is a ValueError)
        from editjudge.train.trl_runtime import check_before_start

        if not getattr(args, "dry_run", False):  # a previous run in the way is said first: nothing else matters then
            check_output(settings.output_dir, force=bool(getattr(args, "force", False)),
                         resume=bool(getattr(args, "resume", None)), flag="--output-dir", can_resume=True)
        settings = check_before_start(args, settings, train_files, val_files)  # verl flags, model, leaks, W&B
        _check_init_adapter(settings)
        from editjudge.train import trl_plan

        # the steps; a GPU-sized recipe about to run on a CPU is said here, before the model loads
        plan, parameters = trl_plan.plan_run(settings, getattr(preset, "name", None) or str(args.preset),
                                             train_files, val_files)
        if getattr(args, "dry_run", False):
            examples = read_examples(train_files)  # the data must be readable even for a dry run
            checked = len(read_examples(val_files)) if val_files else 0
            _check_budget(settings, examples)
            print(f"dry run: settings valid, {len(examples)} training and {checked} validation rows readable")
            for line in trl_plan.estimate_lines(settings, plan, parameters, train_files):
                print(line)
            print("nothing trained")
            return 0
        from editjudge.train.trl_stall import StallWatch

        result = train(settings, train_files, resume=getattr(args, "resume", None), val_files=val_files,
                       callbacks=[StallWatch(settings)])
    except (FileNotFoundError, ValueError) as error:
        print(f"editjudge train: error: {error}")
        return 2
    except OSError as error:  # transformers' "not a model folder / not on the hub" errors
        print(f"editjudge train: error: cannot load the model {settings.model!r} ({error}); pass --model with a "
              "local Qwen2.5-VL folder (or build one with `editjudge tiny-model`)")
        return 2
    grpo = result.grpo_records()
    from editjudge.train.trl_stall import diagnose, format_findings

    findings = diagnose(result.records, settings)  # why the run stalled, with the fix (or that it converged)
    if findings:
        print(format_findings(findings))
    if result.terminated:
        from editjudge.train.trl_stop import EXIT_CODE

        where = (f"checkpoint {_newest_checkpoint(settings)} and " if result.steps else "")
        print(f"terminated (SIGTERM) after {'GRPO step ' + str(result.steps) if result.steps else 'the warm start'}: "
              f"{where}adapter {result.adapter_dir} saved; continue with the same command and --resume")
        return EXIT_CODE
    if result.interrupted:
        print(f"interrupted (Ctrl-C) after GRPO step {result.steps}: adapter saved to {result.adapter_dir}; "
              "continue with the same command and --resume (from the newest checkpoint, if save_steps wrote one)")
        return 130
    print(f"adapter saved to {result.adapter_dir}; per-step metrics in {result.metrics_path}"
          + (f"; last mean reward {grpo[-1]['reward_mean']:.3f}" if grpo else ""))
    return 0


def _newest_checkpoint(settings: TrlSettings) -> str:
    from transformers.trainer_utils import get_last_checkpoint

    return str(get_last_checkpoint(str(Path(settings.output_dir) / "checkpoints")))


__all__ = ["add_trl_arguments", "run", "settings_from_args"]
