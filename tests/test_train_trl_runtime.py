"""The TRL engine as a person on a CPU meets it: no-signal warning, adapter at checkpoints and on Ctrl-C, bounded
validation, loggers, CPU threads. One short GRPO run on the tiny Qwen2.5-VL carries most of the checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from editjudge.train import trl as engine
from editjudge.train import trl_callbacks, trl_runtime
from test_train_trl import _row, write_parquet


def test_zero_signal_warning_fires_once_after_the_streak_and_says_what_to_change(capsys) -> None:
    settings = engine.TrlSettings(model="m", output_dir="o", zero_std_warn_steps=3, max_completion_length=8)
    callback = trl_callbacks.ZeroSignalWarning(settings)

    class State:
        global_step = 0

    state = State()
    for step, frac in enumerate([1.0, 1.0, 0.5, 1.0, 0.9, 1.0, 1.0, 1.0], start=1):  # the 0.5 breaks the streak
        state.global_step = step
        callback.on_log(None, state, None, logs={"frac_reward_zero_std": frac, "reward": 0.0})
        callback.on_log(None, state, None, logs={"eval_frac_reward_zero_std": 1.0})  # validation logs are ignored
    assert callback.warned_at == 6
    err = capsys.readouterr().err
    assert err.count("GRPO has almost no signal") == 1
    assert "--warm-start-steps" in err and "now 8 tokens" in err  # no reward at all: the format is the problem
    assert "actor_rollout_ref.rollout.temperature" in trl_callbacks.zero_signal_advice(1.0, settings)


def test_groups_alike_at_the_maximum_reward_are_converged_not_collapsed(capsys) -> None:
    settings = engine.TrlSettings(model="m", output_dir="o", zero_std_warn_steps=2)
    callback = trl_callbacks.ZeroSignalWarning(settings)

    class State:
        global_step = 0

    for step in (1, 2):
        State.global_step = step
        callback.on_log(None, State, None, logs={"frac_reward_zero_std": 0.9, "reward": 1.98})  # max 2.0
    err = capsys.readouterr().err
    assert "converged" in err and "no signal" not in err and "temperature" not in err


def test_validation_is_bounded_to_evenly_spaced_rows(tmp_path: Path, capsys) -> None:
    data = write_parquet(tmp_path / "val.parquet", [_row(i, good=i % 2 == 0) for i in range(10)])
    examples = engine.read_examples(data)
    settings = engine.TrlSettings(model="m", output_dir="o", eval_max_rows=4, eval_steps=5, num_generations=2)
    bounded = trl_runtime.bounded_validation(examples, settings)
    assert len(bounded) == 4 and bounded.images.to_pylist() == [examples.images.to_pylist()[i] for i in (0, 2, 5, 7)]
    assert "on 4 of 10 prompt(s) × 2 generations = 8 completions per pass" in capsys.readouterr().err
    assert len(trl_runtime.bounded_validation(examples, engine.TrlSettings(model="m", output_dir="o",
                                                                           eval_max_rows=0))) == 10


@pytest.mark.slow
def test_a_cpu_run_warns_saves_at_checkpoints_and_on_ctrl_c(tiny_model_dir: Path, tmp_path: Path, capsys,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from transformers import TrainerCallback

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the engine picks the threads itself
    threads_before = torch.get_num_threads()
    train = write_parquet(tmp_path / "train.parquet", [_row(i, good=i % 2 == 0) for i in range(8)])
    val = write_parquet(tmp_path / "val.parquet", [_row(i, good=i % 2 == 1) for i in range(6)])
    out = tmp_path / "run"
    seen: dict[int, bool] = {}
    threads: set[int] = set()

    class CtrlCAfterStep3(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            seen[state.global_step] = (out / "adapter" / "adapter_config.json").is_file()
            threads.add(torch.get_num_threads())
            if state.global_step == 3:  # 3 steps done: remove the step-2 adapter, then Ctrl-C
                import shutil

                shutil.rmtree(out / "adapter")
                raise KeyboardInterrupt

    # No warm start: the random tiny model never writes <answer>, every group's rewards are all 0.
    settings = engine.TrlSettings(
        model=str(tiny_model_dir), output_dir=str(out), lora_rank=4, lora_alpha=8, num_generations=2,
        learning_rate=1e-3, max_completion_length=8, max_steps=6, save_steps=2, eval_steps=2, eval_max_rows=2,
        zero_std_warn_steps=2, loggers=["console", "tensorboard"],
    )
    try:
        result = engine.train(settings, train, val_files=val, callbacks=[CtrlCAfterStep3()])
    finally:
        torch.set_num_threads(threads_before)
    err = capsys.readouterr().err
    # The adapter appeared with the step-2 checkpoint; Ctrl-C after step 3 stopped the run and wrote it again.
    assert result.interrupted and result.steps == 3
    assert seen == {0: False, 1: False, 2: True, 3: True}
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["r"] == 4 and (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    # Two steps with no reward spread: one warning saying what to change.
    assert err.count("GRPO has almost no signal") == 1 and "--warm-start-steps" in err
    # Validation: 2 of 6 prompts, announced, and its cost estimated after the first step.
    assert "on 2 of 6 prompt(s) × 2 generations = 4 completions per pass" in err
    assert "a validation pass (4 completions) will take about" in err
    validation = [r for r in result.records if r["phase"] == "validation"]
    assert [r["step"] for r in validation] == [2]
    # trainer.logger honoured: TensorBoard events under the output folder; one torch thread for a tiny model.
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert "TENSORBOARD_LOGGING_DIR" not in __import__("os").environ  # set for the run only
    assert threads == {1}


def test_cpu_threads_rule() -> None:
    import os

    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 4)

    before = torch.get_num_threads()
    saved = os.environ.pop("OMP_NUM_THREADS", None)
    try:
        settings = engine.TrlSettings(model="m", output_dir="o")
        assert trl_runtime.set_cpu_threads(settings, Tiny()) == 1  # a small model: one thread
        settings = engine.TrlSettings(model="m", output_dir="o", cpu_threads=2)
        assert trl_runtime.set_cpu_threads(settings, Tiny()) == 2  # trl.cpu_threads wins
        os.environ["OMP_NUM_THREADS"] = "3"
        assert trl_runtime.set_cpu_threads(engine.TrlSettings(model="m", output_dir="o"), Tiny()) is None
    finally:
        torch.set_num_threads(before)
        os.environ.pop("OMP_NUM_THREADS", None)
        if saved is not None:
            os.environ["OMP_NUM_THREADS"] = saved
