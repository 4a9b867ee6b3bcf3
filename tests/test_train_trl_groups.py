"""The TRL engine's prompt groups: flat-group figures every step, and DAPO dynamic sampling (group filtering)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from editjudge.train import trl as engine
from editjudge.train import trl_groups as groups

# ------------------------------------------------------------------------------------------- the rules


def test_group_stats_split_flat_groups_into_stuck_and_solved() -> None:
    rewards = [1.0, 1.0, 1.0, 1.0,   # flat below the best (2.0): stuck
               2.0, 2.0, 2.0, 2.0,   # flat at the best: solved
               1.0, 2.0, 1.0, 1.0,   # differs: signal
               0.0, math.nan, 0.0, 0.0]  # an unscorable completion is ignored: flat, stuck
    stats = groups.group_stats(rewards, 4, max_reward=2.0)
    assert stats.flat == (True, True, False, True)
    assert (stats.flat_stuck, stats.flat_solved, stats.flat_share) == (0.5, 0.25, 0.75)
    # the filter metric decides flatness (here: the accuracy term alone), the reward decides stuck vs solved
    accuracy = [0.0, 1.0, 0.0, 0.0] + [1.0] * 4 + [1.0] * 4 + [0.0] * 4
    assert groups.group_stats(rewards, 4, 2.0, metric=accuracy).flat == (False, True, True, True)
    with pytest.raises(ValueError, match="groups of 3"):
        groups.group_stats(rewards, 3, 2.0)


def test_group_stats_count_what_trl_counts_as_zero_std() -> None:
    """The flat share equals TRL's frac_reward_zero_std for the same rewards (isclose(std, 0) per group)."""
    import torch
    from trl.trainer.utils import nanstd

    generator = torch.Generator().manual_seed(0)
    rewards = torch.randint(0, 2, (64, 4), generator=generator).float() + 1.0  # many groups flat by chance
    std = nanstd(rewards, dim=1)
    trl_share = torch.isclose(std, torch.zeros_like(std)).float().mean().item()
    assert groups.group_stats(rewards.flatten().tolist(), 4, 2.0).flat_share == pytest.approx(trl_share)


def test_group_stats_count_groups_flat_at_a_graded_reward_that_trls_isclose_misses() -> None:
    """Eight equal rewards of 1⅔ (a graded answer one away from its label, float32) have a float32 std of ~1.3e-7,
    which TRL's isclose(std, 0) does not call zero: its frac_reward_zero_std under-counts such groups. group_stats
    compares the rewards themselves, and the engine logs that count (groups/flat) as frac_reward_zero_std."""
    import torch
    from trl.trainer.utils import nanstd

    rewards = torch.tensor([[1 + 2 / 3] * 8, [1 + 1 / 3] * 8, [2.0] * 8, [1.0] * 7 + [2.0]], dtype=torch.float32)
    std = nanstd(rewards, dim=1)
    assert torch.isclose(std, torch.zeros_like(std)).tolist() == [False, False, True, False]  # TRL: 1 of 4 flat
    stats = groups.group_stats(rewards.flatten().tolist(), 8, max_reward=2.0)
    assert stats.flat == (True, True, True, False)
    assert (stats.flat_stuck, stats.flat_solved) == (0.5, 0.25)
    record = engine.summarize_log({"frac_reward_zero_std": 0.25, "groups/flat": 0.75, "reward": 1.5}, 3, "grpo")
    assert (record["frac_reward_zero_std"], record["trl/frac_reward_zero_std"]) == (0.75, 0.25)
    assert engine.summarize_log({"frac_reward_zero_std": 0.25}, 3, "grpo")["frac_reward_zero_std"] == 0.25


@pytest.mark.parametrize(
    "prompts, flat_share, max_extra, expected",
    [
        (16, None, 1.0, 16),   # first step: assume half flat
        (16, 0.0, 1.0, 0),     # nothing flat: nothing extra
        (16, 0.25, 1.0, 6),    # 16 * 0.25 / 0.75 = 5.33 -> 6
        (16, 0.5, 1.0, 16),
        (16, 0.9, 1.0, 16),    # capped at max_extra x prompts
        (16, 1.0, 0.5, 8),
        (4, 0.5, 2.0, 4),
    ],
)
def test_extra_prompts_replace_the_expected_flat_groups_within_the_cap(prompts, flat_share, max_extra,
                                                                       expected) -> None:
    assert groups.extra_prompt_count(prompts, flat_share, max_extra) == expected


def test_select_groups_keeps_signal_first_and_fills_with_flat_only_when_short() -> None:
    flat = [True, False, True, False, False, True]
    assert groups.select_groups(flat, 2) == [1, 3]
    assert groups.select_groups(flat, 3) == [1, 3, 4]
    assert groups.select_groups(flat, 5) == [1, 3, 4, 0, 2]  # too few differ: flat groups fill, in order
    assert groups.select_groups([True] * 3, 2) == [0, 1]


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, True, "2"])
def test_dynamic_sampling_settings_are_checked_by_name(bad) -> None:
    with pytest.raises(ValueError, match="filter_groups_max_extra"):
        engine.TrlSettings(model="m", output_dir="o", filter_groups=True, filter_groups_max_extra=bad)
    with pytest.raises(ValueError, match="algorithm.filter_groups.metric='acc'.*reward"):
        engine.TrlSettings(model="m", output_dir="o", filter_groups=True, filter_groups_metric="acc")
    assert groups.dynamic_sampling(engine.TrlSettings(model="m", output_dir="o")) is None  # off by default


def test_verl_filter_groups_keys_drive_the_trl_engine_too() -> None:
    """One preset key for both engines: verl's algorithm.filter_groups.enable / .metric."""
    from editjudge.train import trl_settings

    verl_keys, trl_keys = trl_settings.resolve({}, {}, trl_settings.parse_items([
        "algorithm.filter_groups.enable=true", "algorithm.filter_groups.metric=accuracy",
        "trl.filter_groups_max_extra=0.5"]))
    settings = engine.settings_from_overrides(verl_keys, model="m", output_dir="o", **trl_keys)
    assert groups.dynamic_sampling(settings) == groups.DynamicSampling(max_extra=0.5, metric="accuracy")
    with pytest.raises(ValueError, match="algorithm.filter_groups.enable must be true or false"):
        engine.settings_from_overrides({"algorithm.filter_groups.enable": "maybe"}, model="m", output_dir="o")


def test_take_rows_selects_completions_with_their_images_and_recounts_the_loss_tokens() -> None:
    import torch

    # 3 completions, two images each; image grids of 4 and 2 patches: pixel rows 0-5, 6-11, 12-17
    batch = {
        "prompt_ids": torch.arange(6).view(3, 2), "completion_ids": torch.arange(9).view(3, 3),
        "completion_mask": torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1]]), "advantages": torch.tensor([1., 2., 3.]),
        "num_items_in_batch": torch.tensor(6), "pixel_values": torch.arange(18).float().view(18, 1),
        "image_grid_thw": torch.tensor([[1, 2, 2], [1, 1, 2]] * 3), "num_images": [2, 2, 2], "old_per_token_logps": None,
    }
    out = groups.take_rows(batch, [2, 0])
    assert out["advantages"].tolist() == [3.0, 1.0] and out["num_images"] == [2, 2]
    assert out["pixel_values"].flatten().tolist() == [*range(12, 18), *range(0, 6)]
    assert out["image_grid_thw"].shape == (4, 3) and int(out["num_items_in_batch"]) == 3 + 2
    with pytest.raises(RuntimeError, match="cannot select rows of 'advantages'"):
        groups.take_rows({**batch, "advantages": torch.tensor([1.0, 2.0])}, [0])


# ------------------------------------------------------------------------------------------- real GRPO steps


@pytest.mark.slow
def test_dynamic_sampling_trains_on_groups_that_differ(tiny_model_dir: Path, tmp_path: Path) -> None:
    """GRPO steps on the tiny Qwen2.5-VL with DAPO's filter: extra prompts are drawn into each generation, the trained
    batch keeps its size, and it holds fewer flat groups than were sampled; without it the figures are logged too."""
    import torch

    from test_train_trl import _row, write_parquet

    data = write_parquet(tmp_path / "train.parquet", [_row(i, good=i % 2 == 0) for i in range(8)])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        records = {}
        for name, filtering in (("plain", False), ("dapo", True)):
            settings = engine.TrlSettings(
                model=str(tiny_model_dir), output_dir=str(tmp_path / name), lora_rank=8, lora_alpha=16,
                num_generations=4, per_device_batch_size=8, learning_rate=1e-2, max_completion_length=12, max_steps=3,
                warm_start_steps=6, warm_start_lr=2e-2, seed=3, filter_groups=filtering, filter_groups_max_extra=1.0)
            result = engine.train(settings, data)
            lines = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
            records[name] = [r for r in lines if r["phase"] == "grpo"]
    finally:
        torch.set_num_threads(threads)
    for record in records["plain"]:
        assert record["frac_reward_zero_std"] == record["groups/flat"]
        assert record["groups/flat"] == pytest.approx(record["groups/flat_stuck"] + record["groups/flat_solved"])
        assert record["trl/frac_reward_zero_std"] <= record["groups/flat"] + 1e-9  # TRL's isclose can only miss some
        assert "groups/extra_prompts" not in record
    dapo = records["dapo"]
    assert dapo[0]["groups/extra_prompts"] == 2  # first step: half of the 2 prompts assumed flat -> 2 extra (the cap)
    for record in dapo:
        assert 0 <= record["groups/extra_prompts"] <= 2
        assert record["groups/flat_trained"] <= record["frac_reward_zero_std"] + 1e-9
