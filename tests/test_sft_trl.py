"""The SFT stage on TRL (SFTTrainer + PEFT, one process) on the tiny model, then GRPO from its adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("trl")

from _sft_data import make_sft_data  # noqa: E402

from editjudge.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict:
    return make_sft_data(tmp_path_factory.mktemp("sft_trl"), tiny_model_dir)


def _state(model, select) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if select(n)}


@pytest.fixture(scope="module")
def sft_run(sft_data: dict, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Four SFT steps on the distilled traces; the base model's weights kept for comparison."""
    import torch

    from editjudge.train import sft_trl
    from editjudge.train.trl import load_model

    torch.manual_seed(0)
    processor, model = load_model(tiny_model_dir)
    base = _state(model, lambda n: True)
    settings = sft_trl.SftSettings(model=str(tiny_model_dir), output_dir=str(tmp_path_factory.mktemp("o") / "sft"),
                                   lora_rank=8, lora_alpha=16, learning_rate=5e-3, lr_scheduler_type="constant",
                                   max_steps=4, batch_size=2, micro_batch_size=1, seed=0)
    result = sft_trl.train(settings, sft_data["sft"], model=model, processor=processor)
    return {"result": result, "base": base, "settings": settings}


def test_sft_trains_the_lora_adapter_only_and_learns_the_traces(sft_run: dict, tiny_model_dir: Path) -> None:
    from safetensors.torch import load_file

    result, base = sft_run["result"], sft_run["base"]
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["exclude_modules"]) == (8, 16, ".*visual.*")
    assert Path(config["base_model_name_or_path"]).name == tiny_model_dir.name
    weights = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert weights and not any("visual" in n for n in weights)
    assert any(float(w.abs().sum()) > 0 for n, w in weights.items() if "lora_B" in n)  # B starts at zero
    for name, param in result.model.named_parameters():  # base and vision weights never change
        if "lora_" not in name:
            original = name.replace("base_model.model.", "", 1).replace(".base_layer", "")
            assert torch_equal(param, base[original]), name
    losses = [r["loss"] for r in result.records if "loss" in r]
    assert len(losses) == 4 and losses[-1] < losses[0]  # the traces are being learnt
    assert (result.adapter_dir / "processor_config.json").is_file()


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a.detach(), b)


def test_cli_refuses_unknown_keys_a_grpo_parquet_and_a_mismatched_adapter(
        sft_data: dict, sft_run: dict, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["train", "--stage", "sft", "--engine", "trl", "--model", str(tiny_model_dir), "--dry-run",
            "--output-dir", str(tmp_path / "o")]
    assert main(base + ["--train-files", str(sft_data["sft"]), "--", "optim.lrr=1"]) == 2
    assert "does not read optim.lrr" in capsys.readouterr().err
    assert main(base + ["--train-files", str(sft_data["grpo"])]) == 2
    assert "distil it first" in capsys.readouterr().err
    adapter = str(sft_run["result"].adapter_dir)
    assert main(base + ["--train-files", str(sft_data["sft"]), "--init-adapter", adapter]) == 2  # preset r128/a32
    err = capsys.readouterr().err
    assert "rank 8 in the adapter, model.lora_rank=128" in err and "set model.lora_rank=8" in err
    assert main(base + ["--train-files", str(sft_data["sft"]), "--init-adapter", adapter, "--",
                        "model.lora_rank=8", "model.lora_alpha=16"]) == 0
    assert f"{sft_data['rows']} SFT rows readable" in capsys.readouterr().out


def test_grpo_starts_from_the_sft_adapter_and_keeps_base_and_vision(sft_run: dict, sft_data: dict,
                                                                    tiny_model_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    from editjudge.train import trl as engine

    adapter_dir = sft_run["result"].adapter_dir
    processor, model = engine.load_model(tiny_model_dir)
    base = _state(model, lambda n: True)
    first: dict = {}

    class FirstStep(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
            if not first:
                first.update({n.replace(".default", ""): p.detach().clone()
                              for n, p in model.named_parameters() if "lora_" in n})

    settings = engine.TrlSettings(model=str(tiny_model_dir), output_dir=str(tmp_path / "grpo"), lora_rank=8,
                                  lora_alpha=16, num_generations=2, max_completion_length=8, max_steps=1,
                                  learning_rate=1e-2, seed=0, init_adapter=str(adapter_dir))
    result = engine.train(settings, sft_data["grpo"], model=model, processor=processor, callbacks=[FirstStep()])
    saved = load_file(adapter_dir / "adapter_model.safetensors")
    assert first and set(first) == set(saved)  # GRPO trains exactly the SFT adapter's LoRA weights ...
    assert all(torch_equal(first[n], saved[n]) for n in saved)  # ... starting from its values
    for name, param in result.model.named_parameters():
        if "lora_" not in name:
            assert torch_equal(param, base[name.replace("base_model.model.", "", 1).replace(".base_layer", "")]), name
    assert json.loads((result.adapter_dir / "adapter_config.json").read_text())["r"] == 8


def test_grpo_refuses_an_adapter_of_another_shape(sft_run: dict, sft_data: dict, tiny_model_dir: Path,
                                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--engine", "trl", "--model", str(tiny_model_dir), "--train-files", str(sft_data["grpo"]),
            "--init-adapter", str(sft_run["result"].adapter_dir), "--output-dir", str(tmp_path / "g"), "--dry-run"]
    assert main(argv) == 2  # the GRPO preset's LoRA is r128/alpha 32
    out = capsys.readouterr().out
    assert "rank 8 in the adapter" in out and "actor_rollout_ref.model.lora_rank=8" in out
    assert main(argv + ["--", "actor_rollout_ref.model.lora_rank=8", "actor_rollout_ref.model.lora_alpha=16"]) == 0


def test_cli_warns_a_batch_over_the_rows_and_a_loss_that_did_not_move(sft_data: dict, tiny_model_dir: Path,
                                                                       tmp_path: Path, capsys) -> None:
    base = ["train", "--stage", "sft", "--engine", "trl", "--model", str(tiny_model_dir), "--train-files",
            str(sft_data["sft"]), "--output-dir", str(tmp_path / "o")]
    lora = ["model.lora_rank=4", "model.lora_alpha=8"]
    assert main([*base, "--dry-run", "--", *lora, "data.train_batch_size=64"]) == 0
    rows = sft_data["rows"]
    assert f"data.train_batch_size=64 rows per optimiser step, but {rows} SFT rows" in capsys.readouterr().err
    # the new user's run: a batch over all the rows each step, too small a learning rate: "loss x -> x"
    assert main([*base, "--max-steps", "2", "--", *lora, "optim.lr=1e-12", "data.train_batch_size=64"]) == 0
    captured = capsys.readouterr()
    assert "warning: the loss did not move over 2 step(s)" in captured.err and "raise optim.lr" in captured.err
    assert "[sft] step 2/2: loss" in captured.out  # one line per step ...
    assert "{'loss'" not in captured.out + captured.err  # ... and no raw trainer dicts
