"""Dimension rows through both engines: verl's RLHFDataset, reward loader and reward managers on CPU (the
per-dimension accuracies reach verl's validation metrics), TRL's reward functions and logs, and the pre-flight."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from editjudge.cli import main
from editjudge.formats import get_format
from editjudge.synthetic import write_synthetic_edits

FP = get_format("dimensions:follow_preserve")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("dims")
    write_synthetic_edits(folder / "edits", n_sources=3, candidates_per_source=4, size=64, task="red_square_dims")
    assert main(["prepare", str(folder / "edits"), "-o", str(folder / "data"), "--dimensions", "follow_preserve",
                 "--score-median", "0.9", "--score-mad", "0.1", "--train-split", "1", "--workers", "1", "-q",
                 "--processor", str(tiny_model_dir), "--template", "demo"]) == 0
    return folder / "data"


def test_trl_reward_functions_route_dimension_rows_and_log_each_dimension() -> None:
    from editjudge.reward import trl_reward_funcs

    fmt_fn, acc_fn = trl_reward_funcs()
    truth = FP.encode_label({"following": 7, "preservation": 1})
    completions = [[{"role": "assistant", "content": FP.answer_text((7, 1), "r")}],
                   [{"role": "assistant", "content": FP.answer_text((7, 7), "r")}],
                   [{"role": "assistant", "content": "<think>r</think><answer>7</answer>"}]]
    logged: dict[str, float] = {}
    kwargs = {"data_source": ["editjudge_dimensions"] * 3, "log_metric": logged.__setitem__}
    assert fmt_fn(completions, [truth] * 3, **kwargs) == [1.0, 1.0, 0.0]
    assert acc_fn(completions, [truth] * 3, **kwargs) == [1.0, 0.5, 0.0]
    assert logged["judge/accuracy/following"] == 1.0 and logged["judge/accuracy/preservation"] == 0.5
    assert logged["judge/parse_rate"] == pytest.approx(2 / 3)


@pytest.mark.slow
def test_dimension_rows_load_in_verl_rlhf_dataset(prepared: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from transformers import AutoProcessor
    from verl.utils.dataset.rl_dataset import RLHFDataset

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    config = OmegaConf.create({"max_prompt_length": 1024, "filter_overlong_prompts": True,
                               "filter_overlong_prompts_workers": None, "cache_dir": str(tmp_path / "cache")})
    dataset = RLHFDataset([str(prepared / "train.parquet")], processor.tokenizer, config, processor=processor)
    assert len(dataset) == 12
    for i in range(len(dataset)):
        row = dataset[i]
        parts = [p for m in row["raw_prompt"] if isinstance(m["content"], list) for p in m["content"]]
        assert [p["type"] for p in parts].count("image") == 2
        assert row["data_source"] == "editjudge_dimensions"
        labels = json.loads(row["reward_model"]["ground_truth"])
        assert set(labels) == {"following", "preservation"} and set(row["extra_info"]["scores"]) == set(labels)


@pytest.mark.slow
def test_verl_reward_loop_gives_per_dimension_extras_to_validation_metrics(tmp_path: Path) -> None:
    pytest.importorskip("verl")
    import numpy as np
    import torch
    from hydra import compose, initialize_config_dir
    from verl import DataProto
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.trainer.ppo.metric_utils import process_validation_metrics

    import verl
    from editjudge.tiny import build_tokenizer

    build_tokenizer().save_pretrained(tmp_path / "tok")
    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        config = compose("ppo_trainer", overrides=[
            "reward.custom_reward_function.path=pkg://editjudge.reward",
            "reward.custom_reward_function.name=compute_score", f"actor_rollout_ref.model.path={tmp_path / 'tok'}"])
    worker = RewardLoopWorker(config)
    tok = worker.input_tokenizer
    truth = FP.encode_label({"following": 7, "preservation": 1})
    texts = [FP.answer_text((7, 1), "r"), FP.answer_text((7, 7), "r"), FP.answer_text((1, 1), "r"), "no answer"]
    prompt = tok.encode("rate", add_special_tokens=False)
    ids = [tok.encode(t, add_special_tokens=False) + [tok.convert_tokens_to_ids("<|im_end|>")] for t in texts]
    width = max(map(len, ids))
    data = DataProto.from_dict(
        tensors={"prompts": torch.tensor([prompt] * 4),
                 "responses": torch.tensor([i + [tok.pad_token_id] * (width - len(i)) for i in ids]),
                 "attention_mask": torch.tensor([[1] * len(prompt) + [1] * len(i) + [0] * (width - len(i))
                                                 for i in ids])},
        non_tensors={"data_source": np.array(["editjudge_dimensions"] * 4, dtype=object),
                     "reward_model": np.array([{"style": "rule", "ground_truth": truth}] * 4, dtype=object),
                     "extra_info": np.array([{"index": i} for i in range(4)], dtype=object)})
    outputs = worker.loop.run_until_complete(worker.compute_score_batch(data))
    assert [o["reward_score"] for o in outputs] == [2.0, 1.5, 1.5, 0.0]
    infos = [o["reward_extra_info"] for o in outputs]
    assert [i["accuracy/following"] for i in infos] == [1.0, 1.0, 0.0, 0.0]
    assert [i["accuracy/preservation"] for i in infos] == [1.0, 0.0, 1.0, 0.0]
    keys = list(infos[0])
    metrics = process_validation_metrics(
        ["editjudge_dimensions"] * 4, ["a", "a", "b", "b"],
        {"reward": [o["reward_score"] for o in outputs], **{k: [i[k] for i in infos] for k in keys}},
    )["editjudge_dimensions"]
    assert metrics["accuracy/following"]["mean@2"] == pytest.approx(0.5)  # (1 + 1) / 2 and (0 + 0) / 2
    assert metrics["accuracy/preservation"]["mean@2"] == pytest.approx(0.5)


def test_the_preflight_checks_every_dimension_label(prepared: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from editjudge.train.preflight_data import label_problems

    assert label_problems(pq.ParquetFile(prepared / "train.parquet")) == []
    table = pq.read_table(prepared / "train.parquet")
    rows = table.to_pylist()
    rows[1]["reward_model"]["ground_truth"] = '{"following": 12, "preservation": 1}'
    rows[2]["reward_model"]["ground_truth"] = '{"following": null, "preservation": null}'
    rows[3]["reward_model"]["ground_truth"] = "7"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), tmp_path / "bad.parquet")
    problems = label_problems(pq.ParquetFile(tmp_path / "bad.parquet"))
    assert len(problems) == 3
    assert "ground_truth['following'] must be an integer 0..9" in problems[0]
    assert "labels no dimension" in problems[1] and "JSON object" in problems[2]


@pytest.mark.slow
def test_trl_trains_on_dimension_rows_and_logs_each_dimension(prepared: Path, tiny_model_dir: Path,
                                                               tmp_path: Path) -> None:
    """TRL end to end on a dimension parquet: warm start on the format's answers, GRPO steps, per-dimension logs."""
    pytest.importorskip("trl")
    from editjudge.demo import preset_settings
    from editjudge.train import trl as engine

    settings = preset_settings(tiny_model_dir, tmp_path / "out", "tiny_cpu", max_steps=2, warm_start_steps=2,
                               per_device_batch_size=16, max_completion_length=32)  # two entries: ~22 tokens
    result = engine.train(settings, prepared / "train.parquet")
    grpo = [r for r in result.records if r["phase"] == "grpo" and "reward_mean" in r]
    assert len(grpo) == 2
    assert all("judge/accuracy/following" in r and "judge/accuracy/preservation" in r for r in grpo) or \
        all(r.get("judge/parse_rate", 0) == 0 for r in grpo)  # logged over parsed answers, when any parse
    assert (result.adapter_dir / "adapter_config.json").is_file()
    warm = engine.build_dataset(engine.read_examples(prepared / "train.parquet"), with_completion=True)
    assert len(warm) == 12 * 100  # every row with each of the format's 100 label-free answers
    assert {FP.parse(c[0]["content"]).error for c in warm["completion"][:100]} == {None}


def test_trl_refuses_a_completion_budget_that_cannot_hold_one_answer(prepared: Path, tiny_model_dir: Path) -> None:
    """A two-dimension answer is 21 tokens with the tiny tokenizer: 16-token completions (the pointwise demo's budget)
    would cut every answer before it closes and learn nothing, silently; the engine says so and names the key."""
    from transformers import AutoProcessor

    from editjudge.train.trl_data import Examples, check_completion_budget, read_examples

    tokenizer = AutoProcessor.from_pretrained(tiny_model_dir).tokenizer
    dims = read_examples(prepared / "train.parquet")
    with pytest.raises(ValueError, match="cannot hold an answer") as error:
        check_completion_budget(dims, tokenizer, 16)
    assert "data.max_response_length" in str(error.value) and "at least 22" in str(error.value)
    check_completion_budget(dims, tokenizer, 22)  # fits: no error
    pointwise = Examples(prompts=[[]], images=None, ground_truth=["7"])
    check_completion_budget(pointwise, tokenizer, 16)  # the pointwise demo's budget holds its answers
    with pytest.raises(ValueError, match="at least 8"):
        check_completion_budget(pointwise, tokenizer, 7)


def test_the_preflight_refuses_a_response_budget_that_cannot_hold_one_answer(prepared: Path,
                                                                             tiny_model_dir: Path) -> None:
    """verl's side of the same check: `data.max_response_length` too short for a two-dimension answer fails the
    pre-flight naming the override to pass; enough room passes with a line saying how much an answer takes."""
    from omegaconf import OmegaConf
    from transformers import AutoProcessor

    from editjudge.train.preflight_data import check_answer_room
    from editjudge.train.preflight_report import Report

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    short = Report()
    check_answer_room(OmegaConf.create({"data": {"max_response_length": 16}}), [str(prepared / "train.parquet")],
                      processor, short)
    assert len(short.problems) == 1
    problem, fix = short.problems[0]
    assert "data.max_response_length=16 cannot hold an answer" in problem and "take 22 tokens" in problem
    assert "-- data.max_response_length=22" in fix
    room = Report()
    check_answer_room(OmegaConf.create({"data": {"max_response_length": 24}}), [str(prepared / "train.parquet")],
                      processor, room)
    assert room.problems == [] and any("holds a whole answer (22 tokens" in line for line in room.passed)


def test_the_dimensions_preset_composes_in_verl_and_its_budget_fits_the_tiny_model_with_answer_heads(
        prepared: Path, tmp_path: Path) -> None:
    """`tiny_cpu_dimensions` through verl's Hydra config (every value as given, validate_config on CPU), and its
    14-token responses: enough for the demo's tiny model (answer heads as single tokens, 12 tokens an answer), too
    few for the plain tiny tokenizer (22), which the pre-flight names."""
    from omegaconf import OmegaConf
    from transformers import AutoProcessor

    from editjudge.cli import build_parser
    from editjudge.formats import get_format
    from editjudge.tiny import build_tiny_model
    from editjudge.train import verl
    from editjudge.train.preflight_data import check_answer_room
    from editjudge.train.preflight_report import Report
    from editjudge.train.presets import load_preset

    preset = load_preset("tiny_cpu_dimensions")
    heads = build_tiny_model(tmp_path / "heads", answer_heads=get_format("dimensions:follow_preserve").entry_heads)
    args = build_parser("train").parse_args(["train", "--train-files", str(prepared / "train.parquet"), "--model",
                                             str(heads)])
    cfg = verl.plan(preset, args).config  # composed, values checked, validate_config on CPU
    assert OmegaConf.select(cfg, "actor_rollout_ref.actor.optim.lr_scheduler_type") == "constant"
    assert OmegaConf.select(cfg, "reward.custom_reward_function.reward_kwargs.miss_credit") == 0.3
    budget = OmegaConf.create({"data": {"max_response_length": preset.get("data.max_response_length")}})
    fits = Report()
    check_answer_room(budget, [str(prepared / "train.parquet")], AutoProcessor.from_pretrained(heads), fits)
    assert fits.problems == [] and any("holds a whole answer (12 tokens" in line for line in fits.passed)
