"""`editjudge demo`: GRPO teaches the tiny judge to read the images (held-out accuracy from chance to near 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("trl")

# The learning test: the demo's recipe (preset tiny_cpu) at reduced size, on seed 0 and on seed 5, a seed that did not
# learn before the recipe's entropy bonus (its answer collapsed onto one digit by GRPO step 5 and never moved: held-out
# ±2 stayed 0.50; with the bonus 0.12 -> 1.00). docs/demo.md has the sweep over seeds.
SMALL = {"sources": 32, "candidates": 4, "warm_start_steps": 30, "grpo_steps": 30, "eval_every": 0}


def test_warm_start_targets_teach_the_format_and_carry_no_label() -> None:
    import pyarrow as pa

    from editjudge.answer import parse_response
    from editjudge.train import trl as engine

    prompt = [{"role": "user", "content": [{"type": "text", "text": "x"}]}]
    images = pa.chunked_array([pa.array([[{"bytes": bytes([i])}, {"bytes": b"e"}] for i in range(4)])])
    a = engine.build_dataset(engine.Examples([prompt] * 4, images, ["1", "1", "7", "7"]), with_completion=True)
    b = engine.build_dataset(engine.Examples([prompt] * 4, images, ["7", "7", "1", "1"]), with_completion=True)
    # Every prompt (here: every source image byte) is paired with every digit once, whatever its label.
    assert a["completion"] == b["completion"] and len(a) == 4 * 10
    targets = [c[0]["content"] for c in a["completion"]]
    parsed = [parse_response(t) for t in targets]
    assert all(p.score is not None and p.error is None for p in parsed)
    assert a["ground_truth"] == [label for label in ["1", "1", "7", "7"] for _ in range(10)]
    per_row = [sorted(p.score for p in parsed[r * 10:(r + 1) * 10]) for r in range(4)]
    assert per_row == [list(range(10))] * 4  # uniform answers per prompt: nothing to memorise, nothing learnt
    assert len({t.split("</think>")[0] for t in targets}) == 1  # one constant short reasoning


def test_tiny_cpu_preset_trains_the_vision_merger_not_the_vision_blocks(tmp_path) -> None:
    from peft import get_peft_model

    from editjudge.demo import preset_settings
    from editjudge.tiny import build_tiny_model
    from editjudge.train import trl as engine

    settings = preset_settings(tmp_path / "m", tmp_path / "out", max_steps=7)
    assert (settings.lora_rank, settings.num_generations, settings.batch_size, settings.max_steps) == (16, 8, 128, 7)
    assert settings.warm_start_steps > 0 and settings.reward_kwargs == {"graded": True}
    assert settings.grpo == {"entropy_coef": 0.1}  # the entropy bonus that keeps the answer from collapsing early
    _, model = engine.load_model(build_tiny_model(tmp_path / "m", hidden_size=64))
    wrapped = get_peft_model(model, engine.lora_config(settings))
    adapted = {n.split(".lora_A")[0] for n, _ in wrapped.named_parameters() if ".lora_A" in n}
    assert any("visual.merger" in n for n in adapted)
    assert not any("visual.blocks" in n or "visual.patch_embed" in n for n in adapted)
    assert any("language_model" in n and "q_proj" in n for n in adapted)


def test_the_demo_trains_with_what_train_preset_tiny_cpu_resolves() -> None:
    """`editjudge train --engine trl --preset tiny_cpu` reproduces the demo's training: the same settings, one reader."""
    import argparse

    from editjudge.demo import preset_settings
    from editjudge.train import trl_cli
    from editjudge.train.presets import load_preset

    flags = dict.fromkeys(("max_steps", "per_device_batch_size", "max_completion_length", "warm_start_steps",
                           "warm_start_lr", "seed"))
    args = argparse.Namespace(model="m", output_dir="o", overrides=[], **flags)
    from_cli = trl_cli.settings_from_args(args, load_preset("tiny_cpu"))
    assert from_cli == preset_settings("m", "o")
    assert (from_cli.warm_start_steps, from_cli.max_steps, from_cli.seed) == (40, 60, 0)  # the trl: mapping is read


@pytest.mark.slow
@pytest.mark.parametrize("seed, sampled_floor", [(0, 0.8), (5, None)])
def test_grpo_teaches_the_judge_to_read_the_images(tmp_path: Path, capsys, seed: int,
                                                  sampled_floor: float | None) -> None:
    """The warm start answers at chance (its targets carry no label); GRPO lifts held-out ±2 accuracy far above it.

    Fails when learning stops: a broken reward, a warm start that leaks the label into the answers' order, LoRA that
    cannot reach the image, a model that cannot spread its answers, an answer that collapses onto one digit (seed 5
    without the entropy bonus). Seed 5's greedy answer is right on every held-out edit by step 30 while its sampled
    answers are still spread (sampled ±2 0.53: the entropy bonus at work); the full demo's 60 steps lift them to 1.00.
    """
    from editjudge.demo import print_summary, run_demo

    summary = run_demo(tmp_path / "demo", seed=seed, progress=False, **SMALL)
    print_summary(summary)
    printed = capsys.readouterr().out
    assert "[6/6]" in printed and "within ±2" in printed
    stages = summary["stages"]
    untrained, warm, grpo = stages["untrained"], stages["warm start"], stages["after GRPO"]
    assert untrained["format_rate"] == 0 and warm["format_rate"] >= 0.9
    assert warm["accuracy_within_2"] <= 0.6  # chance: labels 1 and 7, a constant answer scores 1/2
    assert grpo["accuracy_within_2"] >= warm["accuracy_within_2"] + 0.3 and grpo["accuracy_within_2"] >= 0.85
    if sampled_floor is not None:
        assert grpo["sampled_within_2"] >= sampled_floor
    assert grpo["pairwise_accuracy"] >= 0.8 and grpo["n_heldout"] == summary["n_heldout"] >= 16

    # Leak-free: no held-out source image is in the training parquet.
    import pyarrow.parquet as pq

    def sources(split: str) -> set[bytes]:
        return {row[0]["bytes"] for row in pq.read_table(tmp_path / "demo" / "data" / f"{split}.parquet")["images"]
                .to_pylist()}

    assert not sources("train") & sources("test")
    saved = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert saved["stages"] == stages
    report = Path(summary["report"])
    for plot in ("compare", "training", "learning_curve"):
        assert (report.parent / "plots" / f"{plot}.png").is_file()


def test_demo_rejects_bad_sizes(tmp_path: Path, capsys) -> None:
    from editjudge.cli import main

    assert main(["demo", "--out", str(tmp_path / "d"), "--grpo-steps", "0"]) == 2
    assert "--grpo-steps 0: must be at least 1" in capsys.readouterr().err  # the one numeric-flag rule


def test_the_command_line_takes_a_second_thread_only_on_an_idle_machine() -> None:
    from editjudge.demo_run import default_threads

    assert default_threads(cores=2, load=0.1) == 2
    assert default_threads(cores=2, load=1.7) == 1  # busy: a second thread slows the step
    assert default_threads(cores=1, load=0.0) == 1
    assert default_threads() in (1, 2)  # this machine's own count and load
