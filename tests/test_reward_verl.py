"""The recipe's reward file through verl 0.9.1's own loader and reward loop (CPU, no Ray cluster, no GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("verl")

ROOT = Path(__file__).resolve().parents[1]
SHIM = ROOT / "recipe" / "tts_edit" / "tts_edit_reward.py"

pytestmark = pytest.mark.slow  # importing verl (and torch) costs several seconds once per session


def _config(*overrides: str, model_path: str | None = None):
    """verl's ppo_trainer config composed with Hydra, as `python -m verl.trainer.main_ppo …` would compose it."""
    import verl
    from hydra import compose, initialize_config_dir

    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    base = [f"reward.custom_reward_function.path={SHIM}", "reward.custom_reward_function.name=compute_score"]
    if model_path:
        base.append(f"actor_rollout_ref.model.path={model_path}")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose("ppo_trainer", overrides=base + list(overrides))


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's tokenizer (tags are single added tokens) saved where verl's hf_tokenizer can load it."""
    from editjudge.tiny import build_tokenizer

    path = tmp_path_factory.mktemp("tokenizer")
    build_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def config(tokenizer_dir: Path):
    """The recipe's reward settings with default options (composing takes ~1 s, so once per module)."""
    return _config(model_path=str(tokenizer_dir))


def test_get_custom_reward_fn_loads_the_shim_and_passes_reward_kwargs(config) -> None:
    from verl.trainer.ppo.reward import get_custom_reward_fn

    plain = get_custom_reward_fn(config)
    result = plain(data_source="tts_edit_score", solution_str="<think>r</think><answer>6</answer>", ground_truth="7",
                   extra_info={"num_turns": None, "rollout_reward_scores": {}})
    assert result == {"score": 2.0, "format": 1.0, "accuracy": 1.0, "parsed": 1.0, "pred": 6, "abs_error": 1}
    # verl's "remote" reward manager ships the loaded function to Ray workers: it must pickle (by reference).
    import pickle

    assert pickle.loads(pickle.dumps(plain))(data_source="d", solution_str="<answer>6</answer>", ground_truth="7") \
        == {"score": 1.0, "format": 0.0, "accuracy": 1.0, "parsed": 1.0, "pred": 6, "abs_error": 1}

    tuned = get_custom_reward_fn(_config(
        "+reward.custom_reward_function.reward_kwargs.tolerance=0",
        "+reward.custom_reward_function.reward_kwargs.graded=true",
        "+reward.custom_reward_function.reward_kwargs.format_weight=0.5",
    ))
    result = tuned(data_source="tts_edit_score", solution_str="<think>r</think><answer>6</answer>", ground_truth="7")
    assert (result["score"], result["accuracy"]) == (0.5, 0.0)

    # The graded miss (a departure from the seed, off by default) reaches the reward through the same kwargs.
    near_miss = get_custom_reward_fn(_config("+reward.custom_reward_function.reward_kwargs.miss_credit=0.3"))
    far, near = (near_miss(data_source="tts_edit_score", solution_str=f"<think>r</think><answer>{a}</answer>",
                           ground_truth="7")["accuracy"] for a in (0, 4))
    assert near == pytest.approx(0.3) and far == pytest.approx(0.3 * 2 / 6)


def test_the_package_path_form_loads_the_same_function(config) -> None:
    """`pkg://editjudge.reward` (what the training presets use: no file path to ship to Ray nodes) works too."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from editjudge.reward import compute_score

    pkg = config.copy()
    OmegaConf.update(pkg, "reward.custom_reward_function.path", "pkg://editjudge.reward")
    fn = get_custom_reward_fn(pkg)
    assert fn.args[0] is compute_score
    assert fn(data_source="tts_edit_score", solution_str="<answer>7</answer>", ground_truth="7")["score"] == 1.0


def test_a_typo_in_reward_kwargs_fails_on_the_first_call(config) -> None:
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    typo = config.copy()
    OmegaConf.update(typo, "reward.custom_reward_function.reward_kwargs", {"tolerence": 1}, force_add=True)
    fn = get_custom_reward_fn(typo)
    with pytest.raises(TypeError, match="unknown reward option.*tolerence"):
        fn(data_source="tts_edit_score", solution_str="<answer>7</answer>", ground_truth="7")


RESPONSES = [
    ("<think>the sky is purple</think>\n<answer>7</answer>", "7", 2.0),
    ("<think>close</think><answer>5</answer>", "7", 2.0),
    ("<answer>7</answer>", "7", 1.0),
    ("<think>hedging</think><answer>3 or 4</answer>", "4", 0.0),
    ("<think>r</think><answer>4</answer> actually 9", "4", 0.0),
]


def _batch(tokenizer, rows, response_length: int = 48):
    """A rollout batch as verl's agent loop hands it to the reward loop: left-padded prompts, right-padded
    responses, one attention mask over both, and the parquet's data_source / reward_model / extra_info columns."""
    import numpy as np
    import torch
    from verl import DataProto

    prompt = tokenizer.encode("rate the edit", add_special_tokens=False)
    prompts, responses, masks = [], [], []
    for text, _, _ in rows:
        ids = tokenizer.encode(text, add_special_tokens=False) + [tokenizer.convert_tokens_to_ids("<|im_end|>")]
        assert len(ids) <= response_length
        pad = response_length - len(ids)
        prompts.append(prompt)
        responses.append(ids + [tokenizer.pad_token_id] * pad)
        masks.append([1] * len(prompt) + [1] * len(ids) + [0] * pad)
    return DataProto.from_dict(
        tensors={
            "prompts": torch.tensor(prompts),
            "responses": torch.tensor(responses),
            "attention_mask": torch.tensor(masks),
        },
        non_tensors={
            "data_source": np.array(["tts_edit_score"] * len(rows), dtype=object),
            "reward_model": np.array([{"style": "rule", "ground_truth": gt} for _, gt, _ in rows], dtype=object),
            "extra_info": np.array([{"split": "test", "index": i} for i in range(len(rows))], dtype=object),
        },
    )


def test_verl_reward_loop_worker_scores_a_rollout_batch(config) -> None:
    """verl's RewardLoopWorker (what each Ray reward worker runs) with the default naive reward manager: it loads the
    shim through load_reward_manager → get_custom_reward_fn, decodes token ids and collects our sub-metrics."""
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.trainer.ppo.reward import extract_reward

    worker = RewardLoopWorker(config)
    assert isinstance(worker.reward_manager, NaiveRewardManager)
    data = _batch(worker.input_tokenizer, RESPONSES)
    outputs = worker.loop.run_until_complete(worker.compute_score_batch(data))

    assert [o["reward_score"] for o in outputs] == [expected for _, _, expected in RESPONSES]
    infos = [o["reward_extra_info"] for o in outputs]
    assert [i["pred"] for i in infos] == [7, 5, 7, -1, -1]
    assert [i["format"] for i in infos] == [1.0, 1.0, 0.0, 0.0, 0.0]

    # Assemble the batch as RewardLoopManager does and read it back the way the trainer does.
    import numpy as np
    from verl import DataProto

    scores = [o["reward_score"] for o in outputs]
    keys = list(infos[0])
    rewarded = DataProto.from_dict(
        tensors={"rm_scores": NaiveRewardManager.assemble_rm_scores(data, scores)},
        non_tensors={k: np.array([info[k] for info in infos]) for k in keys},
        meta_info={"reward_extra_keys": keys},
    )
    reward_tensor, extra = extract_reward(rewarded)
    assert reward_tensor.sum(dim=-1).tolist() == scores
    assert extra["parsed"].dtype.kind == "f" and extra["pred"].dtype.kind == "i"  # numeric: verl can average them
    assert float(extra["parsed"].mean()) == pytest.approx(3 / 5)

    # verl's validation metrics over our keys (two prompts, two samples each): means, and majority votes on `pred`.
    from verl.trainer.ppo.metric_utils import process_validation_metrics

    infos_dict = {"reward": scores[:4], **{k: extra[k].tolist()[:4] for k in keys}}
    metrics = process_validation_metrics(["tts_edit_score"] * 4, ["a", "a", "b", "b"], infos_dict)["tts_edit_score"]
    assert metrics["parsed"]["mean@2"] == pytest.approx((1.0 + 0.5) / 2)
    assert metrics["reward"]["mean@2"] == pytest.approx((2.0 + 0.5) / 2)
    assert "maj@2/mean" in metrics["accuracy"]


def test_legacy_naive_reward_manager_on_a_dataproto(config, tokenizer_dir: Path) -> None:
    """verl.workers.reward_manager's synchronous NaiveRewardManager (kept in 0.9.1) with the function verl loads."""
    from transformers import AutoTokenizer
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.workers.reward_manager.naive import NaiveRewardManager

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    manager = NaiveRewardManager(tokenizer, num_examine=0, compute_score=get_custom_reward_fn(config))
    out = manager(_batch(tokenizer, RESPONSES), return_dict=True)
    assert out["reward_tensor"].sum(dim=-1).tolist() == [expected for _, _, expected in RESPONSES]
    assert out["reward_extra_info"]["abs_error"] == [0, 2, 0, 9, 9]
