"""The TRL engine: preset mapping, the parquet -> TRL dataset step, and real GRPO steps on the tiny Qwen2.5-VL."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

from editjudge import prompts
from editjudge.train import trl as engine


def _png(colour: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (56, 56), colour).save(buffer, "PNG")
    return buffer.getvalue()


def _row(i: int, good: bool, images: int = 2) -> dict:
    instruction = "make the square red"
    return {
        "data_source": prompts.DATA_SOURCE,
        "prompt": prompts.build_messages(instruction),
        "images": [{"bytes": _png("blue")}, {"bytes": _png("red" if good else "blue")}][:images],
        "ability": prompts.ABILITY,
        "reward_model": {"style": "rule", "ground_truth": "8" if good else "1"},
        "extra_info": {"split": "train", "index": i, "instruction": instruction, "score": 1.0 if good else 0.7,
                       "label": 8 if good else 1, "group": f"g{i // 2}"},
    }


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.fixture
def train_parquet(tmp_path: Path) -> Path:
    """A small parquet in the contract-3 schema that `editjudge prepare` writes."""
    return write_parquet(tmp_path / "train.parquet", [_row(i, good=i % 2 == 0) for i in range(8)])


@pytest.fixture
def one_thread():
    """Tiny models run fastest (and steadiest on a shared CPU) on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------- settings


def test_settings_follow_the_preset_keys_shared_with_verl() -> None:
    from editjudge.train.presets import load_preset

    preset = load_preset("qwen2_5_vl_3b_lora")
    settings = engine.settings_from_overrides(preset.overrides, model="m", output_dir="o")
    assert (settings.lora_rank, settings.lora_alpha) == (
        preset.get("actor_rollout_ref.model.lora_rank"), preset.get("actor_rollout_ref.model.lora_alpha"))
    assert settings.target_modules == "all-linear"
    assert settings.exclude_modules == ".*visual.*"
    assert settings.num_generations == preset.get("actor_rollout_ref.rollout.n")
    assert settings.learning_rate == pytest.approx(float(preset.get("actor_rollout_ref.actor.optim.lr")))
    assert settings.epochs == preset.get("trainer.total_epochs")
    assert settings.max_completion_length == preset.get("data.max_response_length")
    assert settings.lr_scheduler_type == "linear"  # unset: TRL's own schedule
    dims = load_preset("tiny_cpu_dimensions")
    settings = engine.settings_from_overrides(dims.overrides, model="m", output_dir="o")
    assert settings.lr_scheduler_type == dims.get("actor_rollout_ref.actor.optim.lr_scheduler_type") == "constant"
    assert engine.grpo_config(settings, "o").lr_scheduler_type == "constant"


def test_command_line_overrides_win_and_are_typed() -> None:
    overrides = {"actor_rollout_ref.model.lora_rank": 128}
    overrides.update(engine.parse_cli_overrides([
        "actor_rollout_ref.model.lora_rank=8", "actor_rollout_ref.rollout.n=2", "actor_rollout_ref.actor.optim.lr=1e-3",
        "+reward.custom_reward_function.reward_kwargs.tolerance=1", "trainer.logger=[console]",
        "actor_rollout_ref.model.target_modules=[q_proj,v_proj]",
    ]))
    settings = engine.settings_from_overrides(overrides, model="m", output_dir="o", per_device_batch_size=4)
    assert (settings.lora_rank, settings.num_generations, settings.learning_rate) == (8, 2, 1e-3)
    assert settings.reward_kwargs == {"tolerance": 1}
    assert settings.target_modules == ["q_proj", "v_proj"] and settings.exclude_modules == ".*visual.*"
    with pytest.raises(ValueError, match="key=value"):
        engine.parse_cli_overrides(["lora_rank"])


def test_batch_must_hold_whole_prompt_groups() -> None:
    with pytest.raises(ValueError, match="multiple of the generations per prompt"):
        engine.TrlSettings(model="m", output_dir="o", num_generations=4, per_device_batch_size=6)
    with pytest.raises(ValueError, match="at least 2 generations"):
        engine.TrlSettings(model="m", output_dir="o", num_generations=1)
    assert engine.TrlSettings(model="m", output_dir="o", num_generations=4).batch_size == 4


@pytest.mark.slow  # imports TRL, peft and torch
def test_trl_configs_carry_the_settings(tmp_path: Path) -> None:
    settings = engine.TrlSettings(model="m", output_dir=str(tmp_path), num_generations=2, per_device_batch_size=4,
                                  learning_rate=3e-4, max_completion_length=17, temperature=0.5)
    lora = engine.lora_config(settings)
    assert (lora.r, lora.lora_alpha, lora.exclude_modules) == (128, 32, ".*visual.*")
    assert lora.target_modules == "all-linear"
    config = engine.grpo_config(settings, tmp_path)
    assert (config.num_generations, config.per_device_train_batch_size) == (2, 4)
    assert (config.max_completion_length, config.learning_rate, config.temperature) == (17, 3e-4, 0.5)
    assert config.generation_batch_size % config.num_generations == 0
    assert config.reward_weights == [1.0, 1.0]  # TRL's weighted sum = compute_score's score


# ------------------------------------------------------------------------------------------- data


def test_rows_become_trl_examples(train_parquet: Path) -> None:
    examples = engine.read_examples([train_parquet, train_parquet])
    assert len(examples) == 16 and examples.ground_truth[:3] == ["8", "1", "8"]
    user = examples.prompts[0][1]["content"]
    assert [part["type"] for part in user].count("image") == 2
    dataset = engine.build_dataset(examples, with_completion=True)
    assert len(dataset) == 16 * 10  # the format-only warm start pairs every row with every digit
    example = dataset[0]
    assert [image.size for image in example["images"]] == [(56, 56), (56, 56)]
    assert example["images"][1].getpixel((0, 0)) == (255, 0, 0)  # edited image second, decoded losslessly
    from editjudge.answer import parse_response

    parsed = parse_response(example["completion"][0]["content"])
    assert parsed.score == 0 and parsed.has_think  # digit 0 of 0..9 for row 0, never the label (8)


def test_bad_parquet_gets_a_clear_error(tmp_path: Path) -> None:
    bad = write_parquet(tmp_path / "bad.parquet", [_row(0, True), _row(1, False, images=1)])
    with pytest.raises(ValueError, match=r"bad.parquet row 1: 2 <image> placeholders but 1 images"):
        engine.read_examples(bad)
    with pytest.raises(FileNotFoundError, match="editjudge prepare"):
        engine.read_examples(tmp_path / "missing.parquet")
    out_of_range = _row(1, True)
    out_of_range["reward_model"] = {"style": "rule", "ground_truth": "12"}
    bad_label = write_parquet(tmp_path / "label.parquet", [_row(0, True), out_of_range])
    with pytest.raises(ValueError, match=r"label.parquet row 1: ground_truth must be a score 0..9"):
        engine.read_examples(bad_label)
    decimal = _row(0, True)
    decimal["reward_model"] = {"style": "rule", "ground_truth": "8.0"}  # a label the reward accepts is accepted
    examples = engine.read_examples(write_parquet(tmp_path / "decimal.parquet", [decimal]))
    targets = [c[0]["content"] for c in engine.build_dataset(examples, with_completion=True)["completion"]]
    assert targets == [f"<think>ok</think><answer>{d}</answer>" for d in range(10)]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["x"]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match=r"missing column\(s\)"):
        engine.read_examples(tmp_path / "other.parquet")


def test_log_summary_names_the_rates() -> None:
    logs = {"reward": 1.25, "reward_std": 0.5, "rewards/format/mean": 0.75, "rewards/accuracy/mean": 0.5,
            "loss": 0.1, "kl": float("nan"), "step_time": 0.3}
    record = engine.summarize_log(logs, step=3, phase="grpo")
    assert record["reward_mean"] == 1.25 and record["reward_std"] == 0.5
    assert (record["format_rate"], record["accuracy_rate"]) == (0.75, 0.5)
    assert record["step"] == 3 and "kl" not in record and "step_time" not in record


# ------------------------------------------------------------------------------------------- CLI


def test_cli_dry_run_and_errors(train_parquet: Path, tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    from editjudge.cli import main

    base = ["train", "--engine", "trl", "--model", str(tiny_model_dir), "--train-files", str(train_parquet),
            "--output-dir", str(tmp_path / "out")]
    assert main([*base, "--dry-run", "--", "actor_rollout_ref.model.lora_rank=8"]) == 0
    out = capsys.readouterr().out
    assert '"lora_rank": 8' in out and "nothing trained" in out
    assert main([*base, "--dry-run", "--per-device-batch-size", "3"]) == 2
    assert "multiple of the generations per prompt" in capsys.readouterr().out
    assert main([*base[:-4], "--train-files", str(tmp_path / "nope.parquet"), "--dry-run"]) == 2
    assert "no such parquet file" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # imports transformers to try the model
def test_cli_model_that_cannot_load(train_parquet: Path, tmp_path: Path, capsys) -> None:
    from editjudge.cli import main

    code = main(["train", "--engine", "trl", "--model", str(tmp_path / "no-model"), "--train-files",
                 str(train_parquet), "--output-dir", str(tmp_path / "out")])
    assert code == 2
    assert "neither a local directory nor in the Hugging Face cache" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()  # a failed start leaves nothing behind


# ------------------------------------------------------------------------------------------- GRPO steps


@pytest.mark.slow
def test_grpo_trains_lora_only_and_logs_rewards(tiny_model_dir: Path, train_parquet: Path, tmp_path: Path,
                                                 one_thread) -> None:
    import torch
    from safetensors import safe_open
    from transformers import TrainerCallback

    processor, model = engine.load_model(tiny_model_dir)
    base_before = {name: p.detach().clone() for name, p in model.named_parameters()}
    lora_at_grpo_start: dict[str, torch.Tensor] = {}

    class SnapshotLora(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            lora_at_grpo_start.update({n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n})

    settings = engine.TrlSettings(
        model=str(tiny_model_dir), output_dir=str(tmp_path / "run"), lora_rank=8, lora_alpha=16, num_generations=4,
        per_device_batch_size=8, learning_rate=1e-2, max_completion_length=12, max_steps=3, temperature=1.0,
        warm_start_steps=8, warm_start_lr=2e-2,
    )
    result = engine.train(settings, train_parquet, model=model, processor=processor, callbacks=[SnapshotLora()])

    # Rewards are logged per GRPO step, in metrics.jsonl, with the seed's sum: reward = format + accuracy.
    lines = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    grpo = [r for r in lines if r["phase"] == "grpo"]
    assert [r["step"] for r in grpo] == [1, 2, 3]
    assert [r["phase"] for r in lines].count("warm_start") == 8
    for record in grpo:
        for key in ("reward_mean", "reward_std", "format_rate", "accuracy_rate"):
            assert math.isfinite(record[key]), key
        assert 0 <= record["format_rate"] <= 1 and 0 <= record["accuracy_rate"] <= 1
        assert record["reward_mean"] == pytest.approx(record["format_rate"] + record["accuracy_rate"], abs=1e-6)
    assert any(r["reward_std"] > 0 for r in grpo), "the warm start should leave rewards that differ"

    # LoRA weights moved during GRPO; every base weight, the vision tower included, stayed put.
    trained = {n: p.detach() for n, p in result.model.named_parameters()}
    moved = [n for n, before in lora_at_grpo_start.items() if not torch.equal(before, trained[n])]
    assert moved, "no LoRA weight changed during the GRPO steps"
    assert not any("visual" in n for n in lora_at_grpo_start), "the vision tower must carry no LoRA"
    base_after = {n.replace("base_model.model.", "").replace(".base_layer", ""): p
                  for n, p in trained.items() if "lora_" not in n}
    assert set(base_after) == set(base_before)
    changed = [n for n, p in base_before.items() if not torch.equal(p, base_after[n])]
    assert changed == []
    assert any(n.startswith("model.visual.") for n in base_before)

    # The adapter (and the processor) are saved where the judge loads them.
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (8, 16)
    with safe_open(str(result.adapter_dir / "adapter_model.safetensors"), "pt") as handle:
        keys = list(handle.keys())
    assert keys and not any("visual" in k for k in keys)
    assert (result.adapter_dir / "processor_config.json").is_file()



@pytest.mark.slow
def test_same_inputs_and_seed_give_identical_bytes(tiny_model_dir: Path, train_parquet: Path, tmp_path: Path,
                                                   one_thread) -> None:
    outputs = []
    for run in ("a", "b"):
        settings = engine.TrlSettings(
            model=str(tiny_model_dir), output_dir=str(tmp_path / run), lora_rank=4, lora_alpha=8, num_generations=2,
            learning_rate=1e-2, max_completion_length=8, max_steps=2, warm_start_steps=2, warm_start_lr=2e-2, seed=7,
        )
        result = engine.train(settings, train_parquet)
        outputs.append([(result.adapter_dir / "adapter_model.safetensors").read_bytes(),
                        result.metrics_path.read_bytes()])
    assert outputs[0] == outputs[1]


@pytest.mark.slow
def test_cli_trains_with_the_preset_and_saves_the_adapter(tiny_model_dir: Path, train_parquet: Path,
                                                          tmp_path: Path, capsys, one_thread) -> None:
    from editjudge.cli import main

    out = tmp_path / "run"
    code = main(["train", "--engine", "trl", "--model", str(tiny_model_dir), "--train-files", str(train_parquet),
                 "--output-dir", str(out), "--max-steps", "2", "--max-completion-length", "8",
                 "--warm-start-steps", "2", "--warm-start-lr", "1e-2", "--val-files", str(train_parquet),
                 "--", "actor_rollout_ref.model.lora_rank=4", "actor_rollout_ref.model.lora_alpha=8",
                 "trainer.test_freq=1", "trainer.logger=[console]"])
    assert code == 0
    assert f"adapter saved to {out / 'adapter'}" in capsys.readouterr().out
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (4, 8)  # the override won over the preset's r128 / alpha 32
    settings = json.loads((out / "trl_settings.json").read_text())
    assert settings["num_generations"] == 4 and settings["max_completion_length"] == 8  # preset n, flag length
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in records] == ["warm_start", "warm_start", "grpo", "validation", "grpo", "validation"]
    validation = [r for r in records if r["phase"] == "validation"]
    assert [r["step"] for r in validation] == [1, 2]  # trainer.test_freq=1: validated after every step
    assert all(0 <= r["format_rate"] <= 1 and math.isfinite(r["reward_mean"]) for r in validation)


@pytest.mark.slow
def test_resume_continues_from_the_newest_checkpoint(tiny_model_dir: Path, train_parquet: Path, tmp_path: Path,
                                                     one_thread) -> None:
    def settings(max_steps: int) -> engine.TrlSettings:
        return engine.TrlSettings(
            model=str(tiny_model_dir), output_dir=str(tmp_path / "run"), lora_rank=4, lora_alpha=8, num_generations=2,
            learning_rate=1e-2, max_completion_length=8, max_steps=max_steps, warm_start_steps=2,
            warm_start_lr=2e-2, save_steps=1, seed=3,
        )

    engine.train(settings(1), train_parquet)
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-1").is_dir()
    result = engine.train(settings(3), train_parquet, resume="auto")
    records = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    # The warm start is not repeated; GRPO goes on from step 1 and the earlier records are kept.
    assert [(r["phase"], r["step"]) for r in records] == [
        ("warm_start", 1), ("warm_start", 2), ("grpo", 1), ("grpo", 2), ("grpo", 3)]
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
        engine.train(settings(3), train_parquet, resume=str(tmp_path / "nope"))
