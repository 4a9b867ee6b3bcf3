"""The TRL engine's keys, checked by name: the preset's `trl:` mapping, `-- trl.<name>=…`, refusals, flags, model."""

from __future__ import annotations

from pathlib import Path

import pytest

from editjudge.cli import build_parser, main
from editjudge.train import trl as engine
from editjudge.train import trl_cli
from editjudge.train import trl_settings
from editjudge.train.presets import load_preset
from test_train_trl import _row, write_parquet


def _args(*argv: str):
    return build_parser("train").parse_args(["train", "--engine", "trl", "--model", "m", *argv])


def _preset(tmp_path: Path, trl_block: str) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nmodel: m\noverrides:\n  actor_rollout_ref.rollout.n: 4\n"
                    "  actor_rollout_ref.actor.ppo_mini_batch_size: 8\n" + trl_block, encoding="utf-8")
    return path


def test_preset_trl_mapping_then_command_line_then_flags(tmp_path: Path) -> None:
    preset = load_preset(str(_preset(tmp_path, "trl:\n  max_steps: 7\n  warm_start_steps: 3\n  warm_start_lr: 0.01\n"
                                               "  cpu_threads: 2\n  eval_max_rows: 16\n")))
    settings = trl_cli.settings_from_args(_args(), preset)  # flags left at their defaults do not mask the preset
    assert (settings.max_steps, settings.warm_start_steps, settings.warm_start_lr) == (7, 3, 0.01)
    assert (settings.cpu_threads, settings.eval_max_rows) == (2, 16)
    settings = trl_cli.settings_from_args(_args("--", "trl.max_steps=9", "trl.beta=0.04"), preset)
    assert (settings.max_steps, settings.beta) == (9, 0.04)  # the command line wins over the preset
    settings = trl_cli.settings_from_args(_args("--max-steps", "11", "--", "trl.max_steps=9"), preset)
    assert settings.max_steps == 11  # and a flag over both
    # the verl keys both engines share, trainer.logger included (TRL's report_to)
    settings = trl_cli.settings_from_args(_args("--", "trainer.logger=[console,tensorboard]",
                                               "actor_rollout_ref.rollout.top_p=0.9"), preset)
    assert settings.loggers == ["console", "tensorboard"] and settings.top_p == 0.9
    assert engine.report_to(settings.loggers) == ["tensorboard"] and engine.report_to(["console"]) == "none"


def test_keys_the_engine_does_not_read_are_refused_with_the_nearest(tmp_path: Path) -> None:
    preset = load_preset("qwen2_5_vl_3b_lora")  # its verl-only keys (FSDP, vLLM …) are skipped, not refused
    for typo, meant in (("actor_rollout_ref.actor.optim.lrr=1e-5", "actor_rollout_ref.actor.optim.lr"),
                        ("trainer.total_epoch=3", "trainer.total_epochs")):
        with pytest.raises(ValueError) as info:
            trl_cli.settings_from_args(_args("--", typo), preset)
        message = str(info.value)
        assert f"did you mean {meant}" in message and "It reads: " in message and "trl.warm_start_steps" in message
    with pytest.raises(ValueError, match="does not read 'actor_rollout_ref.actor.kl_loss_coef'"):
        trl_cli.settings_from_args(_args("--", "actor_rollout_ref.actor.kl_loss_coef=0.1"), preset)  # verl-only
    with pytest.raises(ValueError, match=r"trl.max_steps='x' is not a valid int"):
        trl_cli.settings_from_args(_args("--", "trl.max_steps=x"), preset)
    with pytest.raises(ValueError, match="the preset's trl: mapping"):
        trl_cli.settings_from_args(_args(), load_preset(str(_preset(tmp_path, "trl:\n  warm_start_step: 3\n"))))


@pytest.mark.slow  # imports TRL for GRPOConfig's fields
def test_grpo_config_fields_pass_through_checked(tmp_path: Path) -> None:
    preset = load_preset(str(_preset(tmp_path, "trl:\n  top_k: 5\n  loss_type: grpo\n")))
    settings = trl_cli.settings_from_args(_args("--", "trl.epsilon=0.3", "trl.top_p=0.9",
                                               "trainer.logger=[console,tensorboard]"), preset)
    assert settings.grpo == {"top_k": 5, "loss_type": "grpo", "epsilon": 0.3}
    config = engine.grpo_config(settings, tmp_path)
    assert (config.top_k, config.loss_type, config.epsilon, config.top_p) == (5, "grpo", 0.3, 0.9)
    assert config.report_to == ["tensorboard"]
    with pytest.raises(ValueError, match=r"trl.top_k='abc' must be a number"):
        trl_cli.settings_from_args(_args("--", "trl.top_k=abc"), preset)
    with pytest.raises(ValueError, match="set by the engine from trainer.total_epochs"):
        trl_cli.settings_from_args(_args("--", "trl.num_train_epochs=3"), preset)
    with pytest.raises(ValueError, match=r"did you mean trl.epsilon"):
        trl_cli.settings_from_args(_args("--", "trl.epsilonn=0.3"), preset)
    with pytest.raises(ValueError, match=r"did you mean trl.max_steps.*It reads: "):
        trl_cli.settings_from_args(_args("--", "trl.max_stepss=3"), preset)
    assert "trl.<any TRL GRPOConfig field" in trl_settings.read_keys()[-1]


def test_verl_flags_and_a_missing_model_fail_before_anything_loads(tmp_path: Path, tiny_model_dir: Path,
                                                                  capsys) -> None:
    data = write_parquet(tmp_path / "train.parquet", [_row(i, good=i % 2 == 0) for i in range(4)])
    base = ["train", "--engine", "trl", "--train-files", str(data), "--output-dir", str(tmp_path / "out"), "--dry-run"]
    assert main([*base, "--model", str(tiny_model_dir), "--gpus", "2"]) == 2  # was silently ignored
    assert "--gpus is a verl engine flag" in capsys.readouterr().out
    for missing in (str(tmp_path / "no-model"), "nobody/nothing"):  # the dry run passed; a hub id retried minutes
        assert main([*base, "--model", missing]) == 2
        assert "neither a local directory nor in the Hugging Face cache" in capsys.readouterr().out
    assert main([*base, "--model", str(tiny_model_dir), "--", "trainer.total_epoch=3"]) == 2
    assert "did you mean trainer.total_epochs" in capsys.readouterr().out
    assert main([*base, "--model", str(tiny_model_dir), "--val-files", str(data)]) == 0
    assert "is also a training file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
