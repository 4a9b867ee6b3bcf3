"""The SFT stage on verl: distill's parquet through verl's own MultiTurnSFTDataset with the tiny model's processor,
the SFT preset composed and validated with verl's SFT config, the pre-flight's failures and the torchrun command.

verl 0.9.1's SFT trainer does not run on a CPU: it has no CPU platform (``verl.plugin.platform`` registers nvidia,
npu and rocm and falls back to nvidia), so ``initialize_global_process_group`` asks for an NCCL group and torch
refuses ("ProcessGroupNCCL is only supported with GPUs"). The parts before the process group are tested here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("verl")

from _sft_data import REASONING as RESPONSE_REASONING  # noqa: E402
from _sft_data import make_sft_data  # noqa: E402

from editjudge.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict:
    return make_sft_data(tmp_path_factory.mktemp("sft"), tiny_model_dir)


def test_distilled_rows_load_in_verls_multiturn_sft_dataset(sft_data: dict, tiny_model_dir: Path) -> None:
    from omegaconf import OmegaConf
    from transformers import AutoProcessor
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    config = OmegaConf.create({"max_length": 512, "truncation": "error", "pad_mode": "no_padding"})
    dataset = MultiTurnSFTDataset([str(sft_data["sft"])], processor.tokenizer, config, processor=processor)
    assert len(dataset) == sft_data["rows"]
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merge = processor.image_processor.merge_size
    for i in range(len(dataset)):
        item = dataset[i]
        ids, mask = item["input_ids"], item["loss_mask"]
        grid = item["multi_modal_inputs"]["image_grid_thw"]
        assert grid.shape[0] == 2  # source and edited
        assert int((ids == pad).sum()) == int(grid.prod(dim=1).sum()) // merge**2  # placeholders == images
        learn = mask.nonzero().flatten().tolist()
        assert learn and learn == list(range(learn[0], len(ids)))  # one block at the end: prompt tokens masked
        label = dataset.dataframe.iloc[i]["distill"]["label"]
        learnt = processor.tokenizer.decode(ids[learn[0]:])
        assert learnt.startswith(f"<think>{RESPONSE_REASONING}</think><answer>{label}</answer>")
        assert "<image>" not in learnt and "system" not in learnt


def _train(*argv: str) -> list[str]:
    return ["train", "--stage", "sft", "--gpus", "1", "--dry-run", *argv]


def test_preset_composes_validates_and_prints_the_torchrun_command(sft_data: dict, tiny_model_dir: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rows = sft_data["rows"]
    assert main(_train("--train-files", str(sft_data["sft"]), "--model", str(tiny_model_dir), "--init-adapter",
                       str(tiny_model_dir), "--", f"data.train_batch_size={rows}", "data.max_length=512")) == 2
    err = capsys.readouterr().err
    assert "--init-adapter" in err and "adapter_config.json" in err  # a model folder is not an adapter
    assert main(_train("--train-files", str(sft_data["sft"]), "--model", str(tiny_model_dir), "--",
                       f"data.train_batch_size={rows}", "data.max_length=512")) == 0
    out, err = capsys.readouterr()
    assert "pre-flight passed" in err and "MultiTurnSFTDataset" in err
    lines = out.splitlines()
    assert lines[0].split()[1:] == ["--standalone", "--nnodes=1", "--nproc_per_node=1", "-m", "verl.trainer.sft_trainer", "\\"]
    assert lines[0].split()[0].endswith("torchrun")
    keys = {line.strip().rstrip(" \\").strip("'").split("=", 1)[0] for line in lines[1:]}
    assert {"model.path", "data.train_files", "model.lora_rank", "model.exclude_modules", "+data.image_key"} <= keys
    assert f"    model.path={tiny_model_dir}" in out.replace(" \\", "")


def test_preflight_failures_name_their_fix(sft_data: dict, tiny_model_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(_train("--train-files", str(sft_data["sft"]), str(sft_data["grpo"]), "--model", str(tiny_model_dir),
                       "--gpus", "4", "--", "data.train_batch_size=66", "data.max_length=200"))
    err = capsys.readouterr().err
    assert code == 2 and "pre-flight FAILED" in err
    assert "not a multiple of the 4 GPU(s)" in err and "data.train_batch_size=64" in err
    assert "longer than data.max_length=200" in err and "raise data.max_length to" in err
    assert "GRPO parquet from `prepare`: distil it first" in err
    assert "do not fill one global batch" in err
    assert main(_train("--train-files", str(sft_data["sft"]), "--", "data.max_lenght=3")) == 2
    assert "write `data.max_length=3`" in capsys.readouterr().err
    assert main(["train", "--stage", "sft", "--preset", "qwen2_5_vl_3b_lora", "--train-files", "x", "--dry-run"]) == 2
    assert "GRPO preset" in capsys.readouterr().err
    assert main(["train", "--preset", "qwen2_5_vl_3b_sft_lora", "--train-files", "x", "--dry-run"]) == 2
    assert "add --stage sft" in capsys.readouterr().err


def test_multi_node_command_uses_the_rendezvous_environment() -> None:
    from editjudge.train.sft_verl import torchrun_command

    argv = torchrun_command(["a=1"], 8, 2, env={"NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1"})
    assert argv[1:7] == ["--nnodes=2", "--nproc_per_node=8", "--node_rank=1", "--master_addr=10.0.0.1",
                         "--master_port=29500", "-m"]
    assert argv[-2:] == ["verl.trainer.sft_trainer", "a=1"]


def test_grpo_init_adapter_is_passed_to_verl_and_checked(sft_data: dict, tiny_model_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    config = {"r": 128, "lora_alpha": 32, "target_modules": ["q_proj", "v_proj"], "exclude_modules": ".*visual.*",
              "base_model_name_or_path": str(tiny_model_dir)}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    argv = ["train", "--train-files", str(sft_data["grpo"]), "--val-files", str(sft_data["grpo"]), "--model",
            str(tiny_model_dir), "--gpus", "1",
            "--init-adapter", str(adapter), "--dry-run", "--", "data.train_batch_size=4",
            "actor_rollout_ref.actor.ppo_mini_batch_size=4", "data.max_prompt_length=400"]
    assert main(argv) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert f"actor_rollout_ref.model.lora_adapter_path={adapter}" in out and "--init-adapter" in err
    config.update(r=64, base_model_name_or_path="/models/other-model")
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "rank 64 in the adapter" in err and "set actor_rollout_ref.model.lora_rank=64" in err
    assert "pass --model /models/other-model" in err
