"""`editjudge train --engine verl` on CPU: the preset against the installed verl, scaling, dry run, pre-flight."""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("verl")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from editjudge import prompts  # noqa: E402
from editjudge.cli import build_parser, main  # noqa: E402
from editjudge.train import preflight  # noqa: E402
from editjudge.train import verl as engine  # noqa: E402
from editjudge.train.presets import load_preset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PRESET = load_preset("qwen2_5_vl_3b_lora")


def _png(color: tuple[int, int, int], size: tuple[int, int] = (56, 84)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def _rows(n: int, split: str) -> list[dict]:
    """Rows in the contract-3 schema (what `editjudge prepare` writes)."""
    rows = []
    for i in range(n):
        instruction = f"make the sky {['red', 'green', 'blue'][i % 3]}"
        rows.append({
            "data_source": prompts.DATA_SOURCE,
            "prompt": prompts.build_messages(instruction),
            "images": [{"bytes": _png((10 * i, 0, 0))}, {"bytes": _png((0, 10 * i, 0))}],
            "ability": prompts.ABILITY,
            "reward_model": {"style": "rule", "ground_truth": str(i % 10)},
            "extra_info": {"split": split, "index": i, "instruction": instruction, "score": 0.1 * i, "label": i % 10},
        })
    return rows


def _write(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tts_edit")
    _write(folder / "train.parquet", _rows(256, "train"))  # one global batch of the preset
    _write(folder / "test.parquet", _rows(3, "test"))
    return folder


def _args(data_dir: Path, model: Path, *extra: str):
    argv = ["train", "--train-files", str(data_dir / "train.parquet"), "--val-files", str(data_dir / "test.parquet"),
            "--model", str(model), *extra]
    return build_parser("train").parse_args(argv)


@pytest.fixture(scope="module")
def default_plan(data_dir: Path, tiny_model_dir: Path) -> engine.Plan:
    """The preset composed once with verl's Hydra config (4 GPUs, the seed's layout)."""
    return engine.plan(PRESET, _args(data_dir, tiny_model_dir))


def _compose_with(plan: engine.Plan, *extra: str):
    return preflight.compose([*plan.overrides, *extra])


# ---------------------------------------------------------------------------------------------- the preset


def test_preset_holds_the_seed_settings() -> None:
    get = PRESET.get
    assert PRESET.model == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert (get("actor_rollout_ref.model.lora_rank"), get("actor_rollout_ref.model.lora_alpha")) == (128, 32)
    assert get("actor_rollout_ref.model.target_modules") == "all-linear"
    assert get("actor_rollout_ref.model.exclude_modules") == ".*visual.*"
    assert get("data.train_batch_size") == 256 and get("actor_rollout_ref.actor.optim.lr") == pytest.approx(1e-6)
    assert get("trainer.total_epochs") == 10 and get("actor_rollout_ref.rollout.n") == 4
    assert get("algorithm.adv_estimator") == "grpo"
    assert get("actor_rollout_ref.rollout.gpu_memory_utilization") == 0.5
    assert get("actor_rollout_ref.actor.fsdp_config.param_offload") is True
    assert (get("trainer.n_gpus_per_node"), get("trainer.nnodes")) == (4, 1)
    assert get("actor_rollout_ref.rollout.limit_images") >= 2 and "+actor_rollout_ref.rollout.limit_images" in PRESET.overrides
    assert set(get("trainer.logger")) == {"console", "wandb", "tensorboard"}
    assert get("trainer.rollout_data_dir") == "./rollout_generations"
    assert get("trainer.validation_data_dir") == "./validation_generations"
    assert get("reward.custom_reward_function.path") == "pkg://editjudge.reward"
    # the five settings of the seed's launch script that change behaviour (all compose on verl 0.9.1)
    assert (get("actor_rollout_ref.rollout.temperature"), get("actor_rollout_ref.rollout.top_p")) == (0.7, 0.9)
    assert get("actor_rollout_ref.model.use_liger") is True
    assert get("actor_rollout_ref.actor.fsdp_config.model_dtype") == "bfloat16"
    assert get("actor_rollout_ref.rollout.free_cache_engine") is False
    assert not any(k.lstrip("+").startswith(("custom_reward_function", "reward_model.")) for k in PRESET.overrides)


def test_preset_composes_into_the_values_verl_will_read(default_plan: engine.Plan) -> None:
    cfg = default_plan.config
    for key, value in PRESET.overrides.items():
        got = OmegaConf.select(cfg, key.lstrip("+"))
        got = OmegaConf.to_container(got) if OmegaConf.is_config(got) else got
        if key in ("trainer.rollout_data_dir", "trainer.validation_data_dir"):
            value = os.path.abspath(value)  # made absolute where the command is launched
        assert got == value, key  # every value survives Hydra formatting unchanged
    assert cfg.reward.custom_reward_function.name == "compute_score"
    assert cfg.custom_reward_function.path is None  # the legacy node stays empty
    assert default_plan.notes == []  # 4 GPUs: the preset's batches are already valid


@pytest.mark.parametrize("name", ["tiny_cpu", "tiny_cpu_pairwise", "tiny_cpu_dimensions"])
def test_the_cpu_demo_presets_compose_in_verl_too(name: str, data_dir: Path, tiny_model_dir: Path) -> None:
    """The demos' presets are written in verl's keys: each composes with verl's config, every value as given
    (reward options need the `+` of keys verl's YAML does not declare)."""
    preset = load_preset(name)
    cfg = engine.plan(preset, _args(data_dir, tiny_model_dir)).config
    for key, value in preset.overrides.items():
        got = OmegaConf.select(cfg, key.lstrip("+"))
        assert (OmegaConf.to_container(got) if OmegaConf.is_config(got) else got) == value, key


def test_preset_passes_the_whole_preflight(default_plan: engine.Plan) -> None:
    report = preflight.run_checks(default_plan.config, launching=False, max_rows=8)
    assert report.ok, report.render()
    text = "\n".join(report.passed)
    assert "validate_config passed" in text and "LoRA rank 128" in text
    assert "train.parquet: 256 rows" in text and "lengths on 1 row in 32" in text and "test.parquet: 3 rows" in text
    assert "1 step(s) per epoch × 10 epochs (256 rows, batch 256)" in text


def test_preflight_refuses_data_smaller_than_one_batch(default_plan: engine.Plan) -> None:
    report = preflight.Report()
    preflight.check_steps(default_plan.config, 200, report)
    problem, fix = _only(report.problems, "fewer than data.train_batch_size=256")
    assert "no training step" in problem and "data.train_batch_size=200" in fix


def test_user_presets_are_files(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nmodel: /models/x\noverrides:\n  trainer.total_epochs: 2\n")
    mine = load_preset(str(path))
    assert (mine.name, mine.model, mine.overrides) == ("mine", "/models/x", {"trainer.total_epochs": 2})
    with pytest.raises(ValueError, match="unknown preset"):
        load_preset("no_such_preset")
    path.write_text("model: m\noverrides:\n  trainer:\n    total_epochs: 2\n")
    with pytest.raises(ValueError, match="flat dotted keys"):
        load_preset(str(path))


# ---------------------------------------------------------------------------------------------- overrides


@pytest.mark.parametrize("value", ["pkg://editjudge.reward", ".*visual.*", "/a dir/x.parquet", "it's", "a,b", "1e-6",
                                   "true", "null", "~/data", "x=y", 3, 1e-6, True, None, ["console", "wandb"]])
def test_format_value_reads_back_as_the_same_value(value) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(f"k={engine.format_value(value)}").value()
    assert parsed == value


def test_extra_overrides_win_and_keep_plus_form(data_dir: Path, tiny_model_dir: Path) -> None:
    args = _args(data_dir, tiny_model_dir, "--", "trainer.total_epochs=3", "actor_rollout_ref.rollout.limit_images=4")
    overrides = engine.build_overrides(PRESET, args)
    items = overrides.as_list()
    assert [i for i in items if i.startswith("trainer.total_epochs")] == ["trainer.total_epochs=3"]
    assert "+actor_rollout_ref.rollout.limit_images=4" in items  # still added with '+': verl's YAML lacks it
    assert overrides.explicit == {"trainer.total_epochs", "actor_rollout_ref.rollout.limit_images"}
    with pytest.raises(ValueError, match="TRL engine setting"):
        engine.build_overrides(PRESET, _args(data_dir, tiny_model_dir, "--", "trl.beta=0.04"))


def test_resume_and_output_dir_use_verls_keys(data_dir: Path, tiny_model_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    ov = engine.build_overrides(PRESET, _args(data_dir, tiny_model_dir, "--resume", "--output-dir", str(tmp_path)))
    assert ov.get("trainer.resume_mode") == "auto"
    assert ov.get("trainer.default_local_dir") == str(tmp_path / "checkpoints")
    assert ov.get("trainer.rollout_data_dir") == str(tmp_path / "rollout_generations")
    items = ov.as_list()  # the Ray workers get the logging environment through verl's ray_init runtime_env
    assert f"+ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR={tmp_path / 'tensorboard'}" in items
    assert "+ray_kwargs.ray_init.runtime_env.env_vars.WANDB_MODE=offline" in items
    cfg = preflight.compose(items)
    assert cfg.ray_kwargs.ray_init.runtime_env.env_vars.WANDB_DIR == str(tmp_path)
    ov = engine.build_overrides(PRESET, _args(data_dir, tiny_model_dir, "--resume", "ck/global_step_7"))
    assert ov.get("trainer.resume_mode") == "resume_path"
    assert ov.get("trainer.resume_from_path") == os.path.abspath("ck/global_step_7")
    ov = engine.build_overrides(PRESET, _args(data_dir, tiny_model_dir))
    assert ov.get("trainer.resume_mode") == "disable"
    assert ov.get("trainer.rollout_data_dir") == os.path.abspath("rollout_generations")
    cfg = preflight.compose(ov.as_list())
    assert cfg.trainer.default_local_dir == os.path.abspath("checkpoints/editjudge/qwen2_5_vl_3b_lora")


# ---------------------------------------------------------------------------------------------- GPU scaling


@pytest.mark.parametrize(("gpus", "nodes"), [(1, 1), (3, 1), (8, 2), (7, 3)])
def test_batches_stay_valid_for_any_gpu_count(default_plan: engine.Plan, gpus: int, nodes: int) -> None:
    base = [o for o in default_plan.overrides if not o.startswith(("trainer.n_gpus_per_node", "trainer.nnodes"))]
    ov = engine.OverrideSet()
    for item in [*base, f"trainer.n_gpus_per_node={gpus}", f"trainer.nnodes={nodes}"]:
        prefix, key, value = engine.split_override(item)
        ov.set(key, value, prefix=prefix or None, raw=True)
    cfg = preflight.compose(ov.as_list())
    for key, value in engine.scale_batches(cfg).items():
        OmegaConf.update(cfg, key, value)  # what plan() composes in a second pass
    report = preflight.Report()
    preflight.check_verl_config(cfg, report)
    assert report.ok, report.render()
    world, n = gpus * nodes, cfg.actor_rollout_ref.rollout.n
    mini, batch = cfg.actor_rollout_ref.actor.ppo_mini_batch_size, cfg.data.train_batch_size
    assert (batch * n) % world == 0 and (mini * n) % world == 0 and batch % mini == 0
    assert (mini * n // world) % cfg.actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu == 0
    assert gpus % cfg.actor_rollout_ref.rollout.tensor_model_parallel_size == 0
    assert 256 <= batch < 256 + 2 * world * mini  # the global batch is kept, or rounded up just enough


def test_explicit_batch_overrides_are_kept_and_checked(default_plan: engine.Plan) -> None:
    cfg = _compose_with(default_plan, "trainer.n_gpus_per_node=3", "actor_rollout_ref.actor.ppo_mini_batch_size=100")
    changes = engine.scale_batches(cfg, explicit={"actor_rollout_ref.actor.ppo_mini_batch_size"})
    assert "actor_rollout_ref.actor.ppo_mini_batch_size" not in changes
    problems = engine.batch_problems(cfg)
    assert problems and "ppo_mini_batch_size=102" in problems[0][1]
    cfg = _compose_with(default_plan, "data.train_batch_size=64")  # a smaller global batch caps the mini batch
    changes = engine.scale_batches(cfg, explicit={"data.train_batch_size"})
    assert changes == {"actor_rollout_ref.actor.ppo_mini_batch_size": 64}
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value)
    assert _run(preflight.check_verl_config, cfg).ok


# ---------------------------------------------------------------------------------------------- pre-flight failures


def test_legacy_reward_keys_are_refused_with_the_right_key(default_plan: engine.Plan) -> None:
    cfg = _compose_with(
        default_plan, "custom_reward_function.path=./tts_edit_reward.py", "custom_reward_function.name=compute_score",
        "reward_model.enable=false", "reward_model.reward_manager=dapo",
    )
    assert cfg.reward.custom_reward_function.path == "pkg://editjudge.reward"  # composed, yet ignored by verl
    report = preflight.Report()
    preflight.check_legacy_keys(cfg, report)
    fixes = {problem.split("=")[0]: fix for problem, fix in report.problems}
    assert fixes["custom_reward_function.path"] == "use reward.custom_reward_function.path=./tts_edit_reward.py instead"
    assert fixes["custom_reward_function.name"] == "use reward.custom_reward_function.name=compute_score instead"
    assert fixes["reward_model.enable"] == "use reward.reward_model.enable=false instead"
    assert fixes["reward_model.reward_manager"] == "use reward.reward_manager.name=dapo instead"
    assert all("IGNORES" in problem for problem, _ in report.problems)


def _with(plan: engine.Plan, **values):
    """A copy of the composed config with some values changed (for checks that only read those values)."""
    import copy

    cfg = copy.deepcopy(plan.config)
    for key, value in values.items():
        OmegaConf.update(cfg, key.replace("__", "."), value)
    return cfg


def _only(problems: list[tuple[str, str]], needle: str) -> tuple[str, str]:
    found = [p for p in problems if needle in p[0]]
    assert len(found) == 1, problems
    return found[0]


def _run(check, *args, **kwargs) -> preflight.Report:
    report = preflight.Report()
    check(*args, report, **kwargs)
    return report


def test_preflight_lora_rank_vllm_cannot_serve(default_plan: engine.Plan) -> None:
    assert preflight.vllm_lora_ranks()[0] == (1, 8, 16, 32, 64, 128, 256, 320, 512)
    cfg = _compose_with(default_plan, "actor_rollout_ref.model.lora_rank=600")
    problem, fix = _only(_run(preflight.check_verl_config, cfg).problems, "lora_rank=600")
    assert "512" in problem and "[1, 8, 16, 32, 64, 128, 256, 320, 512]" in fix
    report = _run(preflight.check_verl_config, _with(default_plan, actor_rollout_ref__model__lora_rank=100))
    assert report.ok and any("rank-128" in w for w in report.warnings)


def test_preflight_verl_validate_config_failure_is_reported(default_plan: engine.Plan) -> None:
    cfg = _compose_with(default_plan, "actor_rollout_ref.actor.ppo_mini_batch_size=512")  # > train batch 256
    problem, fix = _only(_run(preflight.check_verl_config, cfg).problems, "validate_config")
    assert "train_batch_size (256) must be >=" in problem and "--" in fix


def test_preflight_data_problems_each_name_their_fix(default_plan: engine.Plan, tmp_path: Path) -> None:
    bad_count = _rows(2, "train")
    bad_count[1]["images"] = bad_count[1]["images"][:1]
    _write(tmp_path / "count.parquet", bad_count)
    _write(tmp_path / "schema.parquet", [{k: v for k, v in r.items() if k != "reward_model"} for r in _rows(2, "x")])
    report = preflight.Report()
    for name in ("count.parquet", "schema.parquet", "missing.parquet"):
        preflight.check_data_file(str(tmp_path / name), default_plan.config, None, report)
    problem, fix = _only(report.problems, "placeholders differ")
    assert "row 1: 2 <image> vs 1 images" in problem and "editjudge prepare" in fix
    problem, fix = _only(report.problems, "schema.parquet")
    assert "'reward_model' is missing" in problem and "editjudge prepare" in fix
    problem, fix = _only(report.problems, "does not exist")
    assert "missing.parquet" in problem and "--train-files" in fix
    cfg = _with(default_plan, data__val_files="~/data/rlhf/gsm8k/test.parquet")  # verl's example default
    problem, fix = _only(preflight.run_checks(cfg, launching=False, max_rows=1).problems, "no val files")
    assert "--val-files" in fix


def test_preflight_prompt_length_uses_verls_processor_path(
    default_plan: engine.Plan, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from verl.utils import hf_processor

    processor = hf_processor(str(tiny_model_dir))
    longest = max(preflight.prompt_length(processor, r["prompt"], r["images"], default_plan.config.data)
                  for r in _rows(6, "train"))
    assert longest > 2 * 2 * 3  # two images of 2x3 merged patches each, plus the text
    data = default_plan.config.data
    fast = preflight.FastLength.build(processor, data)
    for size in [(56, 84), (30, 30), (300, 200), (1000, 40), (640, 480)]:  # both resizes of verl's path at work
        row = _rows(1, "x")[0]
        row["images"] = [{"bytes": _png((1, 2, 3), size)}, {"bytes": _png((3, 2, 1), size[::-1])}]
        assert fast(row["prompt"], row["images"]) == preflight.prompt_length(processor, row["prompt"], row["images"], data)
    assert preflight.FastLength.build(processor, _compose_with(default_plan, "+data.mm_processor_kwargs.max_pixels=1").data) is None
    train = str(_write(tmp_path / "train.parquet", _rows(6, "train")))
    report = _run(preflight.check_data_file, train, _with(default_plan, data__max_prompt_length=longest - 1), processor)
    problem, fix = _only(report.problems, "train.parquet: ")
    assert f"longer than data.max_prompt_length={longest - 1} tokens (longest {longest};" in problem
    assert "data.max_prompt_length=" in fix and "--max-prompt-length" in fix
    report = _run(preflight.check_data_file, train, _with(default_plan, data__max_prompt_length=longest), processor)
    assert report.ok and f"longest prompt {longest}/{longest} tokens (fast count, equal to verl's" in report.passed[0]


def test_preflight_model_without_processor_or_vision(default_plan: engine.Plan, tiny_model_dir: Path, tmp_path: Path) -> None:
    no_processor = tmp_path / "no_processor"
    shutil.copytree(tiny_model_dir, no_processor)
    for name in ("preprocessor_config.json", "processor_config.json"):
        (no_processor / name).unlink(missing_ok=True)
    report = _run(preflight.check_model, _with(default_plan, actor_rollout_ref__model__path=str(no_processor)),
                  needs_vision=True)
    assert "save_pretrained" in _only(report.problems, "lacks its image processor")[1]
    text_only = tmp_path / "text_only"
    shutil.copytree(tiny_model_dir, text_only)
    config = json.loads((text_only / "config.json").read_text())
    config.pop("vision_config")
    (text_only / "config.json").write_text(json.dumps(config))
    report = _run(preflight.check_model, _with(default_plan, actor_rollout_ref__model__path=str(text_only)),
                  needs_vision=True)
    assert "Qwen2.5-VL" in _only(report.problems, "no vision tower")[1]
    report = _run(preflight.check_model, _with(default_plan, actor_rollout_ref__model__path="nobody/nothing"),
                  needs_vision=True)
    assert "--model" in _only(report.problems, "neither a local directory")[1]


def test_preflight_reward_and_resume_problems(default_plan: engine.Plan, tmp_path: Path) -> None:
    cfg = _with(default_plan, reward__custom_reward_function__path=f"{tmp_path}/nope.py")
    assert "pkg://editjudge.reward" in _only(_run(preflight.check_reward, cfg).problems, "does not load")[1]
    cfg = _compose_with(default_plan, "+reward.custom_reward_function.reward_kwargs.tolerence=1")
    problem, fix = _only(_run(preflight.check_reward, cfg).problems, "fails on a well-formed answer")
    assert "tolerence" in problem and "reward_kwargs" in fix
    cfg = _compose_with(default_plan, "+reward.custom_reward_function.reward_kwargs.tolerance=1")
    assert _run(preflight.check_reward, cfg).ok
    cfg = _with(default_plan, reward__custom_reward_function__path=None)
    assert "pkg://editjudge.reward" in _only(_run(preflight.check_reward, cfg).problems, "is not set")[1]
    cfg = _with(default_plan, trainer__resume_mode="resume_path", trainer__resume_from_path=f"{tmp_path}/global_step_3")
    assert "--resume" in _only(_run(preflight.check_resume, cfg).problems, "resume_from_path")[1]
    (tmp_path / "global_step_3" / "actor").mkdir(parents=True)
    assert _run(preflight.check_resume, cfg).ok


# The field's tools against a stall (docs/training.md, "When GRPO stalls"), as verl 0.9.1 keys.
FIELD_TOOLS = (
    "algorithm.filter_groups.enable=true",  # DAPO dynamic sampling: drop groups with equal rewards, refill
    "algorithm.filter_groups.metric=reward",
    "actor_rollout_ref.actor.clip_ratio_high=0.28",  # DAPO clip-higher
    "algorithm.norm_adv_by_std_in_grpo=false",  # Dr. GRPO: no division by the group's std
    "actor_rollout_ref.actor.entropy_coeff=0.001",  # an entropy bonus
    "actor_rollout_ref.rollout.n=8",  # more samples per prompt
    "actor_rollout_ref.rollout.temperature=1.0",
    "+reward.custom_reward_function.reward_kwargs.miss_credit=0.3",  # the graded miss (docs/reward.md)
)


def test_the_fields_tools_against_a_stall_compose_and_validate(default_plan: engine.Plan) -> None:
    cfg = _compose_with(default_plan, *FIELD_TOOLS)
    assert (cfg.algorithm.filter_groups.enable, cfg.algorithm.filter_groups.metric) == (True, "reward")
    assert cfg.actor_rollout_ref.actor.clip_ratio_high == 0.28 and cfg.algorithm.norm_adv_by_std_in_grpo is False
    verl_report = _run(preflight.check_verl_config, cfg)
    assert verl_report.ok and any("validate_config passed" in p for p in verl_report.passed), verl_report.render()
    reward_report = _run(preflight.check_reward, cfg)
    assert reward_report.ok, reward_report.render()
    assert any("dynamic sampling" in p for p in reward_report.passed)
    # the reward got the option: a near miss earns part of the accuracy term
    from verl.trainer.ppo.reward import get_custom_reward_fn

    near = get_custom_reward_fn(cfg)(data_source=prompts.DATA_SOURCE,
                                     solution_str=prompts.format_answer(4, "r"), ground_truth="7")
    assert near["accuracy"] == pytest.approx(0.3)


def test_filter_groups_that_verl_would_not_apply_are_refused(default_plan: engine.Plan) -> None:
    """A metric the reward does not return stops verl's replay buffer at the first finished group; the legacy
    trainer ignores the filter; the v1 trainer ignores max_num_gen_batches — each said before anything starts."""
    cfg = _compose_with(default_plan, "algorithm.filter_groups.enable=true", "algorithm.filter_groups.metric=acc")
    problem, fix = _only(_run(preflight.check_reward, cfg).problems, "filter_groups.metric='acc'")
    assert "missing DAPO metric" in problem and "'accuracy'" in fix and "'reward'" in fix
    cfg = _compose_with(default_plan, "algorithm.filter_groups.enable=true", "trainer.use_v1=false")
    problem, fix = _only(_run(preflight.check_reward, cfg).problems, "legacy trainer ignores group filtering")
    assert "trainer.use_v1" in fix
    cfg = _compose_with(default_plan, "algorithm.filter_groups.enable=true", "algorithm.filter_groups.max_num_gen_batches=4")
    report = _run(preflight.check_reward, cfg)
    assert report.ok and any("max_num_gen_batches is ignored" in w for w in report.warnings)
    assert not any("dynamic sampling" in p for p in _run(preflight.check_reward, default_plan.config).passed)


def test_bad_overrides_fail_to_compose_with_a_fix(default_plan: engine.Plan) -> None:
    with pytest.raises(preflight.PreflightError) as info:
        _compose_with(default_plan, "trainer.total_epoch=3")
    # a typo gets the key it meant, not verl's advice to add it with '+'
    assert "'trainer.total_epoch'" in info.value.problem and "write `trainer.total_epochs=3`" in info.value.fix
    with pytest.raises(preflight.PreflightError) as info:
        _compose_with(default_plan, "actor_rollout_ref.actor.optim.lrr=1e-5")
    assert info.value.fix.startswith("write `actor_rollout_ref.actor.optim.lr=1e-5`")
    with pytest.raises(preflight.PreflightError) as info:  # nothing near: the generic advice
        _compose_with(default_plan, "trainer.zzzzzz=1")
    assert "'+key=value'" in info.value.fix


def test_values_verl_would_choke_on_name_their_key(data_dir: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(preflight.PreflightError) as info:  # was a ZeroDivisionError in the batch scaling
        engine.plan(PRESET, _args(data_dir, tiny_model_dir, "--", "data.train_batch_size=0"))
    assert "data.train_batch_size=0 must be at least 1" in info.value.problem
    with pytest.raises(preflight.PreflightError) as info:  # both passed the dry run
        engine.plan(PRESET, _args(data_dir, tiny_model_dir, "--", "trainer.total_epochs=abc",
                                  "actor_rollout_ref.actor.optim.lr=abc"))
    rendered = info.value.render()
    assert "trainer.total_epochs='abc' is not an integer" in rendered
    assert "actor_rollout_ref.actor.optim.lr='abc' is not a number" in rendered
    assert "-- actor_rollout_ref.actor.optim.lr=" in rendered


def test_labels_the_reward_refuses_fail_the_preflight(default_plan: engine.Plan, tmp_path: Path) -> None:
    rows = _rows(4, "train")
    rows[1]["reward_model"]["ground_truth"] = "12"
    rows[3]["reward_model"]["ground_truth"] = "good"
    path = str(_write(tmp_path / "labels.parquet", rows))
    problem, fix = _only(_run(preflight.check_data_file, path, default_plan.config, None).problems, "ground_truth")
    assert "2 row(s)" in problem and "row 1: '12'" in problem and "row 3: 'good'" in problem
    assert "0..9" in fix


@pytest.mark.parametrize("extra", [
    ("actor_rollout_ref.actor.ppo_mini_batch_size=100",),
    ("data.train_batch_size=128", "actor_rollout_ref.actor.ppo_mini_batch_size=64"),
    ("data.train_batch_size=64", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8"),
])
def test_each_batch_fix_on_3_gpus_itself_passes(data_dir: Path, tiny_model_dir: Path, extra: tuple[str, ...]) -> None:
    the_plan = engine.plan(PRESET, _args(data_dir, tiny_model_dir, "--gpus", "3", "--", *extra))
    report = _run(preflight.check_verl_config, the_plan.config)
    steps = _run(preflight.check_steps, the_plan.config, 200)  # fewer rows than the batch: that fix passes too
    fixes = {fix for _, fix in report.problems + steps.problems}
    assert report.problems and len(fixes) <= 2, "one joint fix, not one per key leading into the next"
    for fix in fixes:
        suggested = fix.split("`-- ", 1)[1].split("`", 1)[0].split()
        cfg = _compose_with(the_plan, *suggested)  # the user's overrides plus the suggestion
        assert _run(preflight.check_verl_config, cfg).ok, fix
        if fix in {f for _, f in steps.problems}:
            assert _run(preflight.check_steps, cfg, 200).ok, fix


def test_train_and_validation_overlap_is_warned(tmp_path: Path) -> None:
    def grouped(groups: list[str], split: str) -> list[dict]:
        rows = _rows(len(groups), split)
        for row, group in zip(rows, groups):
            row["extra_info"]["group"] = group
        return rows

    train = str(_write(tmp_path / "train.parquet", grouped(["a", "a", "b", "c"], "train")))
    leaky = str(_write(tmp_path / "leaky.parquet", grouped(["c", "d"], "test")))
    clean = str(_write(tmp_path / "clean.parquet", grouped(["d", "e"], "test")))
    report = _run(preflight.check_train_val_overlap, [train], [leaky])
    assert any("1 of 2 validation source group(s) also appear in training (e.g. c)" in w for w in report.warnings)
    report = _run(preflight.check_train_val_overlap, [train], [train])
    assert any("is also a training file" in w for w in report.warnings)
    report = _run(preflight.check_train_val_overlap, [train], [clean])
    assert not report.warnings and "share no source group" in report.passed[0]


def test_wandb_without_login_runs_offline_and_says_so(data_dir: Path, tiny_model_dir: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    the_plan = engine.plan(PRESET, _args(data_dir, tiny_model_dir))
    assert os.environ["WANDB_MODE"] == "offline"
    assert any("WANDB_MODE=offline" in note and "wandb sync" in note for note in the_plan.notes)
    assert "+ray_kwargs.ray_init.runtime_env.env_vars.WANDB_MODE=offline" in the_plan.overrides
    monkeypatch.setenv("WANDB_MODE", "online")  # the user's choice stands
    assert not any("WANDB_MODE" in note for note in engine.plan(PRESET, _args(data_dir, tiny_model_dir)).notes)


# ---------------------------------------------------------------------------------------------- the command


@pytest.mark.slow
def test_dry_run_prints_the_exact_verl_command(data_dir: Path, tiny_model_dir: Path, capsys) -> None:
    code = main(["train", "--train-files", str(data_dir / "train.parquet"), "--val-files", str(data_dir / "test.parquet"),
                 "--model", str(tiny_model_dir), "--gpus", "2", "--dry-run", "--preflight-rows", "8", "--",
                 "trainer.total_epochs=3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "pre-flight passed" in err
    lines = out.strip().splitlines()
    assert lines[0] == f"{shlex.quote(sys.executable)} -m verl.trainer.main_ppo \\"
    assert all(line.endswith(" \\") for line in lines[:-1])
    argv = shlex.split(out.replace("\\\n", " "))  # the shell's line continuations
    overrides = argv[3:]
    assert len(overrides) == len(lines) - 1  # one key=value per line
    assert "trainer.total_epochs=3" in overrides and "trainer.n_gpus_per_node=2" in overrides
    assert "reward.custom_reward_function.path=pkg://editjudge.reward" in overrides
    assert "+actor_rollout_ref.rollout.limit_images=2" in overrides
    cfg = preflight.compose(overrides)  # the printed command composes as printed
    assert cfg.trainer.total_epochs == 3 and cfg.data.train_files == str(data_dir / "train.parquet")


@pytest.mark.slow
def test_failed_preflight_exits_non_zero(data_dir: Path, tiny_model_dir: Path, capsys) -> None:
    code = main(["train", "--train-files", str(data_dir / "train.parquet"), "--val-files", str(data_dir / "test.parquet"),
                 "--model", str(tiny_model_dir), "--dry-run", "--preflight-rows", "8", "--",
                 "custom_reward_function.path=./r.py"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "pre-flight FAILED" in err and "use reward.custom_reward_function.path=./r.py instead" in err


@pytest.mark.slow
def test_recipe_script_dry_run(data_dir: Path, tiny_model_dir: Path) -> None:
    env = {**os.environ, "DATA_DIR": str(data_dir), "MODEL": str(tiny_model_dir), "N_GPUS": "8", "DRY_RUN": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["bash", str(REPO / "recipe/tts_edit/run_qwen2_5_vl-3b_lora.sh"), "--preflight-rows", "8", "--",
                             "trainer.total_epochs=2"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    argv = shlex.split(result.stdout.replace("\\\n", " "))
    assert argv[1:3] == ["-m", "verl.trainer.main_ppo"]
    assert f"data.train_files={data_dir / 'train.parquet'}" in argv and f"actor_rollout_ref.model.path={tiny_model_dir}" in argv
    assert "trainer.n_gpus_per_node=8" in argv and "trainer.total_epochs=2" in argv


def test_pinned_verl_version_matches_the_installed_one() -> None:
    from importlib.metadata import version

    pin = (REPO / "recipe/tts_edit/verl_version.txt").read_text().split()[0]
    assert pin == f"verl=={version('verl')}"
    assert f'"{pin}"' in (REPO / "pyproject.toml").read_text()


@pytest.mark.slow
def test_launch_stops_before_ray_when_the_machine_cannot_run_verl(data_dir: Path, tiny_model_dir: Path, capsys) -> None:
    import importlib.util

    missing = [m for m in ("vllm", "transfer_queue") if importlib.util.find_spec(m) is None]
    if not missing:
        pytest.skip("this machine has vLLM and TransferQueue: a launch would really start verl")
    code = main(["train", "--train-files", str(data_dir / "train.parquet"), "--val-files", str(data_dir / "test.parquet"),
                 "--model", str(tiny_model_dir), "--preflight-rows", "4"])
    out, err = capsys.readouterr()
    assert code == 2 and "-m verl.trainer.main_ppo" not in out + err  # nothing was started
    for module in missing:
        assert f"✗ {module} is not importable here, and the launch needs it" in err
    assert "fix: pip install 'verl[vllm]==0.9.1'" in err or "vllm" not in missing
