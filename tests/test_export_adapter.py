"""`editjudge export --adapter DIR --merge`: a PEFT adapter (the TRL engine's) folded into its base with peft's
``merge_and_unload``, saved as a model transformers loads; without --merge, the answer that none is needed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from editjudge.cli import main

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def trained_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter on the tiny model as the TRL engine saves it, with B moved off zero (as if trained)."""
    import torch
    from peft import get_peft_model

    from editjudge.train.trl import TrlSettings, load_model, lora_config, save_adapter

    processor, model = load_model(tiny_model_dir)
    settings = TrlSettings(model=str(tiny_model_dir), output_dir="unused", lora_rank=4, lora_alpha=8,
                           exclude_modules=r".*visual\.(blocks|patch_embed).*")  # the demo's: LM + vision merger
    model = get_peft_model(model, lora_config(settings))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    return save_adapter(model, processor, tmp_path_factory.mktemp("run") / "adapter")


def test_merge_folds_the_adapter_into_its_recorded_base(trained_adapter: Path, tiny_model_dir: Path,
                                                         tmp_path: Path, monkeypatch, capsys) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText, AutoProcessor

    monkeypatch.chdir(tmp_path)  # another folder: the base comes from the adapter's absolute record
    assert main(["export", "--adapter", os.path.relpath(trained_adapter, tmp_path), "--out", "judge-merged",
                 "--merge"]) == 0
    out = tmp_path / "judge-merged"
    assert "exported merged model" in capsys.readouterr().out
    info = json.loads((out / "editjudge_export.json").read_text())
    assert info["base_model"] == str(tiny_model_dir) and info["adapter"] == str(trained_adapter)

    merged = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32)
    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32)
    adapter = load_file(str(trained_adapter / "adapter_model.safetensors"))
    config = json.loads((trained_adapter / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    weights = dict(merged.named_parameters())
    base_weights = dict(base.named_parameters())
    checked = 0
    for key, a in adapter.items():
        if ".lora_A." not in key:
            continue
        b = adapter[key.replace(".lora_A.", ".lora_B.")]
        name = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
        expected = base_weights[name] + scale * (b @ a)
        assert torch.allclose(weights[name], expected, atol=2e-2, rtol=2e-2), name  # bf16 export
        assert not torch.allclose(weights[name], base_weights[name], atol=1e-3), name  # it did move
        checked += 1
    assert checked and any("visual.merger" in k for k in adapter)  # the vision merger's LoRA is folded too
    blocks = [n for n in weights if "visual.blocks" in n]
    assert blocks and all(torch.allclose(weights[n], base_weights[n], atol=1e-2) for n in blocks)
    assert not any("lora" in n for n in weights)
    AutoProcessor.from_pretrained(out)  # the processor travels with the model


def test_without_merge_there_is_nothing_to_export(trained_adapter: Path, tmp_path: Path, capsys) -> None:
    for flag in ("--adapter", "--checkpoint"):  # a PEFT adapter given as --checkpoint is recognised too
        assert main(["export", flag, str(trained_adapter), "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert "nothing to export" in err and "--adapter" in err and "--merge" in err
    assert not (tmp_path / "x").exists()


def test_a_base_that_does_not_resolve_is_refused_before_anything_loads(trained_adapter: Path, tmp_path: Path,
                                                                      capsys) -> None:
    import shutil

    copy = tmp_path / "adapter"
    shutil.copytree(trained_adapter, copy)
    config = json.loads((copy / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "models/gone"  # relative: read against the adapter folder, not found
    (copy / "adapter_config.json").write_text(json.dumps(config))
    assert main(["export", "--adapter", str(copy), "--out", str(tmp_path / "m"), "--merge"]) == 2
    assert "--base-model" in capsys.readouterr().err
    assert main(["export", "--adapter", str(copy), "--out", str(tmp_path / "m"), "--merge",
                 "--base-model", str(tmp_path / "nope")]) == 2
    assert "not a local model folder" in capsys.readouterr().err and not (tmp_path / "m").exists()
