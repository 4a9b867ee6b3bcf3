"""The TRL engine says before it starts how many steps and about how long, warns about a GPU-sized recipe on a CPU,
and says why a run stalled with the fix (train/trl_plan.py, train/trl_stall.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from editjudge.train import trl_plan, trl_stall
from editjudge.train.trl import TrlSettings
from test_train_trl import _row, write_parquet


def _settings(**fields) -> TrlSettings:
    base = dict(model="m", output_dir="o", lora_rank=4, lora_alpha=8, num_generations=2, max_completion_length=6)
    return TrlSettings(**{**base, **fields})


def test_steps_follow_max_steps_else_whole_prompt_batches_per_epoch() -> None:
    plan = trl_plan.count_steps(_settings(per_device_batch_size=8, epochs=3), rows=30)
    assert (plan.prompts_per_step, plan.grpo_steps, plan.epochs) == (4, 21, 3.0)  # 30 // 4 = 7 steps an epoch
    plan = trl_plan.count_steps(_settings(per_device_batch_size=8, max_steps=14, warm_start_steps=5), rows=30)
    assert (plan.grpo_steps, plan.warm_start_steps, plan.epochs) == (14, 5, 2.0)
    plan = trl_plan.count_steps(_settings(per_device_batch_size=8, max_steps=10, eval_steps=4), rows=30, val_rows=6)
    assert plan.validation_passes == 3 and plan.validation_step_cost == pytest.approx(6 * 2 / 8)  # steps 4, 8, end
    too_few = trl_plan.count_steps(_settings(per_device_batch_size=16, max_steps=5), rows=7)
    assert too_few.problem and "no GRPO step would run" in too_few.problem


@pytest.mark.slow  # builds TRL's GRPOTrainer
@pytest.mark.parametrize("fields", [dict(per_device_batch_size=4, epochs=2.0),
                                    dict(per_device_batch_size=4, gradient_accumulation_steps=2, epochs=1.0),
                                    dict(per_device_batch_size=2, epochs=1.5, grpo={"num_iterations": 2})])
def test_step_count_is_the_one_trls_trainer_computes(fields, tiny_model_dir: Path, tmp_path: Path) -> None:
    from trl import GRPOTrainer

    from editjudge.train import trl as engine

    rows = 11
    data = write_parquet(tmp_path / "train.parquet", [_row(i, good=i % 2 == 0) for i in range(rows)])
    settings = _settings(model=str(tiny_model_dir), output_dir=str(tmp_path / "o"), **fields)
    processor, model = engine.load_model(tiny_model_dir)
    trainer = GRPOTrainer(model=model, reward_funcs=engine.reward_functions(), processing_class=processor,
                          args=engine.grpo_config(settings, tmp_path / "o"),
                          train_dataset=engine.build_dataset(engine.read_examples(data)),
                          peft_config=engine.lora_config(settings))
    *_, max_steps = trainer.set_initial_training_values(trainer.args, trainer.get_train_dataloader())
    assert trl_plan.count_steps(settings, rows).grpo_steps == max_steps


def test_a_gpu_sized_recipe_on_a_cpu_is_warned_with_the_cpu_preset() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("the warning is for CPU machines")
    from editjudge.demo import preset_settings

    three_b = preset_settings("m", "o", "qwen2_5_vl_3b_lora")
    warning = trl_plan.gpu_sized_warning(three_b, "qwen2_5_vl_3b_lora", 3_750_000_000, 2440)
    assert warning and "--preset tiny_cpu" in warning and "LoRA rank 128" in warning and "512 tokens" in warning
    assert "3.8 B-parameter" in warning and "wandb" in warning
    assert trl_plan.gpu_sized_warning(preset_settings("m", "o", "tiny_cpu"), "tiny_cpu", 1_400_000, 60) is None


@pytest.mark.slow  # times a real warm-start step and GRPO step
def test_dry_run_says_steps_and_a_measured_time_and_warns_about_the_gpu_recipe(tiny_model_dir: Path, tmp_path: Path,
                                                                               capsys) -> None:
    from editjudge.cli import main

    data = write_parquet(tmp_path / "train.parquet", [_row(i, good=i % 2 == 0) for i in range(8)])
    common = ["train", "--engine", "trl", "--model", str(tiny_model_dir), "--train-files", str(data),
              "--output-dir", str(tmp_path / "run"), "--dry-run"]
    assert main([*common, "--preset", "tiny_cpu", "--max-steps", "7", "--per-device-batch-size", "16",
                 "--max-completion-length", "4"]) != 0  # 4 tokens cannot hold an answer (8 with this tokenizer)
    assert "Set data.max_response_length (or trl.max_completion_length) to at least 8" in "".join(capsys.readouterr())
    assert main([*common, "--preset", "tiny_cpu", "--max-steps", "7", "--per-device-batch-size", "16",
                 "--max-completion-length", "8"]) == 0
    captured = capsys.readouterr()
    assert "steps: 40 warm-start + 7 GRPO steps (2 prompts per step over 8 training rows: 1.8 epochs)" in captured.out
    assert "time: about" in captured.out and "estimated from one measured GRPO step of" in captured.out
    assert "warm-start step of" in captured.out and "GPU-sized" not in captured.err
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written

    assert main([*common, "--max-steps", "2", "--max-completion-length", "8"]) == 0  # the default preset: the 3B one
    captured = capsys.readouterr()
    assert "a GPU-sized recipe is about to run on a CPU (preset qwen2_5_vl_3b_lora" in captured.err
    assert "--preset tiny_cpu" in captured.err and "time: about" in captured.out


def _step(step: int, reward: float, zero_std: float, entropy: float) -> dict:
    return {"phase": "grpo", "step": step, "reward_mean": reward, "frac_reward_zero_std": zero_std,
            "entropy": entropy}


def test_a_stalled_run_gets_its_reasons_and_fixes() -> None:
    settings = _settings(temperature=1.0, learning_rate=5e-4, reward_kwargs={"graded": True})
    # the new user's run: entropy to 0.003, 69-81 % of groups tied, reward stuck well under the maximum of 2
    records = [_step(i, 1.2, 0.2, 1.1) for i in range(1, 6)] + \
              [_step(i, 1.3, 0.69 + 0.12 * (i % 2), 0.003) for i in range(6, 25)]
    findings = trl_stall.diagnose(records, settings)
    text = trl_stall.format_findings(findings)
    assert findings[0][0].startswith("GRPO stalled")
    assert "entropy collapse" in text and "0.003" in text and "temperature, now 1.0" in text and "trl.beta" in text
    assert "75% of prompt groups had all-equal rewards" in text and "actor_rollout_ref.rollout.n" in text
    assert "✗" in text and "fix:" in text

    healthy = [_step(i, 0.5 + i / 40, 0.2, 0.8) for i in range(1, 25)]
    assert trl_stall.diagnose(healthy, settings) == []
    converged = [_step(i, 1.99, 0.95, 0.01) for i in range(1, 25)]
    (note, fix), = trl_stall.diagnose(converged, settings)
    assert note.startswith("note: converged") and fix == ""


def test_entropy_collapse_is_warned_while_the_run_goes_on(capsys) -> None:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    watch = trl_stall.StallWatch(_settings())
    state, control = TrainerState(), TrainerControl()
    args = TrainingArguments(output_dir="unused", report_to="none")
    for step, entropy in enumerate([0.9, 0.01, 0.01, 0.01, 0.01], start=1):
        state.global_step = step
        watch.on_log(args, state, control, logs={"entropy": entropy, "reward": 1.0})
    assert watch.warned_at == 4
    err = capsys.readouterr().err
    assert err.count("warning: entropy collapse") == 1 and "temperature" in err
