"""`editjudge export` on a real verl FSDP checkpoint written on CPU by verl's own checkpoint manager."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("verl")
pytest.importorskip("peft")

from editjudge.cli import main  # noqa: E402
from editjudge.train.export import ExportError, export, resolve_actor_dir  # noqa: E402

# One process, gloo, FSDP2 wrapped by verl's apply_fsdp2 on a ("fsdp",) mesh as verl's FSDP engine does, saved by
# verl's FSDPCheckpointManager: the same files a GPU run writes to <checkpoints>/global_step_N/actor.
MAKE_CHECKPOINT = r"""
import sys, torch, torch.distributed as dist
from safetensors.torch import save_file
import peft
from transformers import AutoModelForImageTextToText, AutoProcessor
from torch.distributed.device_mesh import init_device_mesh
from verl.utils.fsdp_utils import apply_fsdp2
from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager

model_dir, actor_dir, lora_only_dir, reference = sys.argv[1:5]
dist.init_process_group("gloo", rank=0, world_size=1)
torch.manual_seed(0)
model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                                    exclude_modules=r".*visual.*"))
with torch.no_grad():
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.normal_(std=0.5)  # as if trained: B starts at zero
save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, reference)
apply_fsdp2(model, {"mesh": init_device_mesh("cpu", (1,), mesh_dim_names=["fsdp"])}, {})
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
for folder, lora_only in ((actor_dir, False), (lora_only_dir, True)):
    manager = FSDPCheckpointManager(model=model, optimizer=optimizer, lr_scheduler=None,
                                    processing_class=AutoProcessor.from_pretrained(model_dir),
                                    checkpoint_config={"save_contents": ["model", "optimizer", "extra"],
                                                       "load_contents": ["model", "optimizer", "extra"],
                                                       "save_lora_only": lora_only})
    manager.save_checkpoint(folder, global_step=1)
dist.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def verl_checkpoint(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(<checkpoints>/global_step_1/actor, the same saved with save_lora_only, reference weights before sharding)."""
    root = tmp_path_factory.mktemp("verl_ckpt")
    actor, reference = root / "global_step_1" / "actor", root / "reference.safetensors"
    lora_only = root / "lora_only" / "global_step_1" / "actor"
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "RANK": "0",
           "WORLD_SIZE": "1", "LOCAL_RANK": "0"}
    result = subprocess.run(
        [sys.executable, "-c", MAKE_CHECKPOINT, str(tiny_model_dir), str(actor), str(lora_only), str(reference)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return actor, lora_only, reference


def _reference(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.slow
def test_export_adapter_holds_the_trained_lora_weights(verl_checkpoint, tmp_path: Path, capsys) -> None:
    import torch
    from safetensors.torch import load_file

    actor, _, reference = verl_checkpoint
    out = tmp_path / "adapter"
    assert main(["export", "--checkpoint", str(actor.parent), "--out", str(out), "--base-model", "/models/base"]) == 0
    assert f"exported LoRA adapter to {out}" in capsys.readouterr().out
    config = json.loads((out / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (8, 16)  # from verl's lora_train_meta.json
    assert config["exclude_modules"] == ".*visual.*" and config["base_model_name_or_path"] == "/models/base"
    weights = load_file(str(out / "adapter_model.safetensors"))
    expected = {k.replace(".default.weight", ".weight"): v for k, v in _reference(reference).items() if "lora_" in k}
    assert set(weights) == set(expected) and not any(".visual." in k for k in weights)
    for key, value in expected.items():
        torch.testing.assert_close(weights[key].float(), value.bfloat16().float())  # the merger stores bf16
    assert (out / "processor_config.json").is_file() or (out / "preprocessor_config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


@pytest.mark.slow
@pytest.mark.parametrize("lora_only", [False, True])
def test_export_merge_gives_a_model_transformers_loads(
    verl_checkpoint, tiny_model_dir: Path, tmp_path: Path, lora_only: bool
) -> None:
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from editjudge import prompts

    actor, lora_only_actor, reference = verl_checkpoint
    if lora_only:  # only the adapter was saved: merging needs the base model the run started from
        with pytest.raises(ExportError, match="pass --base-model"):
            export(lora_only_actor, tmp_path / "nope", merge=True)
        assert not (tmp_path / "nope").exists()
        out = export(lora_only_actor, tmp_path / "merged", merge=True, base_model=str(tiny_model_dir))
        adapter = export(lora_only_actor, tmp_path / "adapter")  # the adapter alone needs no base
        assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8
        assert (adapter / "adapter_model.safetensors").stat().st_size > 0
    else:
        out = export(actor, tmp_path / "merged", merge=True)
    model = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(out)
    assert not any("lora" in name for name, _ in model.named_parameters())
    ref = _reference(reference)
    prefix = "base_model.model.model.language_model.layers.0.self_attn.q_proj"
    delta = ref[f"{prefix}.lora_B.default.weight"] @ ref[f"{prefix}.lora_A.default.weight"] * (16 / 8)
    expected = ref[f"{prefix}.base_layer.weight"] + delta
    merged = model.state_dict()["model.language_model.layers.0.self_attn.q_proj.weight"]
    assert delta.abs().max() > 0.1
    torch.testing.assert_close(merged, expected, atol=0.05, rtol=0.02)  # bf16 export
    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32)
    vision = "model.visual.blocks.0.mlp.gate_proj.weight"
    torch.testing.assert_close(model.state_dict()[vision], base.state_dict()[vision].bfloat16().float())
    messages = prompts.to_content_parts(prompts.build_messages("make the sky red"))
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    images = [Image.new("RGB", (56, 56), "red"), Image.new("RGB", (56, 56), "blue")]
    inputs = processor(text=[text], images=images, return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 3


def test_export_refuses_what_it_cannot_export(tmp_path: Path, capsys) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        resolve_actor_dir(tmp_path / "nope")
    (tmp_path / "global_step_2" / "actor").mkdir(parents=True)
    with pytest.raises(ExportError, match="not a verl FSDP actor checkpoint"):
        resolve_actor_dir(tmp_path / "global_step_2")
    actor = tmp_path / "global_step_2" / "actor"
    (actor / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": 2}))
    (actor / "model_world_size_2_rank_0.pt").write_bytes(b"x")
    (actor / "huggingface").mkdir()
    (actor / "huggingface" / "config.json").write_text("{}")
    with pytest.raises(ExportError, match=r"rank\(s\) \[1\] are missing"):
        resolve_actor_dir(actor)
    (actor / "model_world_size_2_rank_1.pt").write_bytes(b"x")
    assert resolve_actor_dir(tmp_path / "global_step_2") == actor
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", "--checkpoint", str(actor), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"
