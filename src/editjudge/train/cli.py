"""``editjudge train``: GRPO + LoRA from a preset, on verl (GPU cluster, CPU pre-flight) or TRL (one process).

Engines are imported only when chosen: ``editjudge.train.verl.run(args, preset)`` or
``editjudge.train.trl_cli.run(args, preset)``; both return an exit code.
"""

from __future__ import annotations

import argparse
import sys

from editjudge.train.presets import DEFAULT_PRESET, builtin_presets, load_preset

SFT_PRESET = "qwen2_5_vl_3b_sft_lora"

EPILOG = """\
examples:
  editjudge train --preset qwen2_5_vl_3b_lora --train-files data/train.parquet --val-files data/test.parquet \\
      --model /models/Qwen2.5-VL-3B-Instruct --dry-run
  editjudge train --train-files data/train.parquet --val-files data/test.parquet --gpus 8 \\
      -- trainer.total_epochs=3 actor_rollout_ref.actor.optim.lr=2e-6
  editjudge train ... --resume                      # continue from the newest checkpoint in the output dir
  editjudge train ... --resume ckpt/global_step_40  # continue from that checkpoint
  editjudge train --engine trl --model /models/tiny --train-files data/train.parquet --max-steps 50 \\
      -- trl.beta=0.04 'trainer.logger=[console,tensorboard]'   # TRL: shared verl keys and trl.<name> keys

verl keys after `--` are checked against verl's own config (a typo gets the nearest key). The TRL engine reads the
verl keys both engines share plus `trl.<name>` (a TrlSettings field or any TRL GRPOConfig field) and refuses any
other key, listing the ones it reads; see docs/training.md.

when GRPO stalls (most groups' rewards all equal: frac_reward_zero_std, groups/flat_stuck in the step metrics),
the field's tools, as keys of both engines (cost in docs/training.md, "When GRPO stalls"):
  algorithm.filter_groups.enable=true        DAPO dynamic sampling: drop groups with equal rewards, draw more
                                             prompts (both engines; TRL: trl.filter_groups_max_extra=1.0 caps the
                                             extra prompts per step, i.e. up to 2x the generation)
  +reward.custom_reward_function.reward_kwargs.miss_credit=0.3
                                             a graded miss: an answer 3 away earns more than one 7 away (departs
                                             from the seed's binary +-2 rule; off by default)
  actor_rollout_ref.rollout.n=8 / .temperature=1.2    more, or more varied, samples per prompt
  verl: actor_rollout_ref.actor.entropy_coeff=0.1 | TRL: trl.entropy_coef=0.1
                                             an entropy bonus: keeps answers varied (the demo's tiny_cpu uses 0.1);
                                             TRL's floor: trl.use_adaptive_entropy=true trl.entropy_target=0.2
  verl: actor_rollout_ref.actor.clip_ratio_high=0.28 | TRL: trl.epsilon_high=0.28     DAPO clip-higher
  verl: algorithm.norm_adv_by_std_in_grpo=false | TRL: trl.scale_rewards=none         Dr. GRPO
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train`` verb's flags; extra verl Hydra overrides go after ``--``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument(
        "--engine", choices=("verl", "trl"), default="verl",
        help="verl: Ray + FSDP + vLLM on GPUs (checked on CPU first); trl: TRL's GRPOTrainer in one process",
    )
    parser.add_argument(
        "--stage", choices=("grpo", "sft"), default="grpo",
        help="grpo: GRPO + LoRA (the default); sft: supervised LoRA on `editjudge distill`'s sft.parquet "
        f"(verl: torchrun -m verl.trainer.sft_trainer; default preset {SFT_PRESET})",
    )
    parser.add_argument(
        "--init-adapter", metavar="DIR",
        help="start from this LoRA adapter (e.g. the SFT stage's) instead of a fresh one; checked against the run's "
        "rank, alpha, target modules and base model",
    )
    parser.add_argument(
        "--preset", default=None,
        help=f"built-in preset ({', '.join(builtin_presets())}) or the path of your own preset YAML "
        f"(default: {DEFAULT_PRESET}; with --stage sft: {SFT_PRESET})",
    )
    parser.add_argument("--train-files", nargs="+", metavar="PARQUET", help="training parquet file(s) from `prepare`")
    parser.add_argument("--val-files", nargs="+", metavar="PARQUET", help="validation parquet file(s) from `prepare`")
    parser.add_argument("--model", help="local model directory or hub id (default: the preset's model)")
    parser.add_argument("--gpus", type=int, metavar="N", help="GPUs per node (default: the preset's)")
    parser.add_argument("--nodes", type=int, metavar="M", help="nodes of the Ray cluster (default: the preset's)")
    parser.add_argument(
        "--resume", nargs="?", const="auto", metavar="CHECKPOINT",
        help="resume with verl's resume: alone = the newest checkpoint under the output dir; "
        "or the path of a global_step_N folder",
    )
    parser.add_argument(
        "--output-dir", metavar="DIR",
        help="put checkpoints, rollout/validation dumps and TensorBoard logs under DIR "
        "(default: the preset's ./rollout_generations, ./validation_generations and verl's checkpoints/)",
    )
    parser.add_argument(
        "--dry-run", action="store_true",
        help="run the CPU pre-flight, print the exact verl command (one key=value per line) and exit",
    )
    parser.add_argument(
        "--preflight-rows", type=int, metavar="N",
        help="measure prompt lengths on about N evenly spaced rows per file (default: every row)",
    )
    parser.add_argument(
        "--skip-preflight", action="store_true",
        help="launch without the CPU pre-flight (not recommended: it catches ignored keys and bad data)",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="extra overrides after `--`: verl Hydra keys (verl engine; they win over the preset and the flags), "
        "or the shared verl keys and trl.<name> keys (TRL engine)",
    )
    from editjudge.train.trl_cli import add_trl_arguments  # light: the engine imports TRL only when it runs

    add_trl_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Load the preset and hand over to the chosen engine."""
    if args.preset is None:
        args.preset = SFT_PRESET if getattr(args, "stage", "grpo") == "sft" else DEFAULT_PRESET
    try:
        preset = load_preset(args.preset)
    except ValueError as exc:
        print(f"editjudge train: error: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "stage", "grpo") == "sft":
        if args.engine == "trl":
            from editjudge.train import sft_trl as engine
        else:
            from editjudge.train import sft_verl as engine  # type: ignore[no-redef]
        return int(engine.run(args, preset) or 0)
    from editjudge.train.sft_verl import preset_stage

    if preset_stage(preset) == "sft":
        print(f"editjudge train: error: preset {preset.name!r} is an SFT preset: add --stage sft, or pick a GRPO "
              f"preset such as {DEFAULT_PRESET}", file=sys.stderr)
        return 2
    if args.engine == "trl":
        from editjudge.train import trl_cli as engine
    else:
        from editjudge.train import verl as engine  # type: ignore[no-redef]
    return int(engine.run(args, preset) or 0)
