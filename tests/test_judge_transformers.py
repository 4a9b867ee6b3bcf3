"""The transformers backend on a real (tiny) Qwen2.5-VL: generation, answer-step probabilities, batching, LoRA."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")
# The session fixture teaches the tiny model to answer (~5 s alone, more on a busy machine).
pytestmark = pytest.mark.slow

from PIL import Image  # noqa: E402

from _judge_models import build_answering_model  # noqa: E402
from editjudge.judge import Judge  # noqa: E402
from editjudge.judge.ranking import rank_key  # noqa: E402

INSTRUCTION = "make it red"


@pytest.fixture(scope="session")
def answering_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_answering_model(tiny_model_dir, tmp_path_factory.getbasetemp() / "judge-answering-model")


@pytest.fixture(scope="module")
def judge(answering_model_dir: Path) -> Judge:
    return Judge(answering_model_dir, max_new_tokens=12, batch_size=4, device="cpu")


def _images() -> list[Image.Image]:
    return [Image.new("RGB", (56 + 28 * (i % 2), 56), c) for i, c in enumerate(["red", "blue", "green", "white", "black"])]


def _reference_expected_score(judge: Judge, source, edited, instruction: str, response: str) -> float:
    """Teacher-force prompt + response in one forward pass and read the digit distribution after <answer>."""
    import torch

    backend = judge.backend
    request = judge.request(source, edited, instruction)
    prompt = backend.processor.apply_chat_template(request.content_parts(), add_generation_prompt=True, tokenize=False)
    inputs = backend.processor(text=[prompt + response], images=list(request.images), return_tensors="pt")
    ids = inputs["input_ids"][0].tolist()
    answer_id = backend.processor.tokenizer.convert_tokens_to_ids("<answer>")
    position = len(ids) - 1 - ids[::-1].index(answer_id)  # the digit follows the (only) <answer> of the response
    with torch.no_grad():
        logits = backend.model(**inputs).logits[0, position]
    probs = torch.softmax(logits.double(), dim=-1)[backend.digit_ids]
    return float((probs * torch.arange(10, dtype=torch.float64)).sum() / probs.sum())


def test_expected_score_comes_from_the_answer_step_of_a_real_generation(judge: Judge) -> None:
    source, edited = _images()[:2]
    result = judge.score(source, edited, INSTRUCTION)
    assert result.error is None, result.raw
    assert result.raw == f"<think>{result.reasoning}</think><answer>{result.score}</answer>"
    assert result.reasoning is not None and result.score in (6, 7)
    assert 5.5 < result.expected_score < 7.5 and result.expected_score not in (6.0, 7.0)  # taught both 6 and 7
    reference = _reference_expected_score(judge, source, edited, INSTRUCTION, result.raw)
    assert result.expected_score == pytest.approx(reference, abs=1e-5)


def test_batched_left_padded_generation_matches_one_at_a_time(answering_model_dir: Path, judge: Judge) -> None:
    images = _images()
    items = [(images[0], images[i], f"make it {'very ' * i}red") for i in range(5)]  # prompts of different lengths
    batched = judge.score_many(items)
    single = Judge(answering_model_dir, max_new_tokens=12, batch_size=1, device="cpu")
    alone = [single.score(*item) for item in items]
    for b, a in zip(batched, alone):
        assert b.raw == a.raw and b.score == a.score
        assert b.expected_score == pytest.approx(a.expected_score, abs=1e-4)
    assert len({round(r.expected_score, 6) for r in batched}) > 1  # the images matter


def test_avg_at_k_samples_and_averages(answering_model_dir: Path) -> None:
    judge = Judge(answering_model_dir, num_samples=4, temperature=1.0, max_new_tokens=12, seed=3, device="cpu")
    source, edited = _images()[:2]
    result = judge.score(source, edited, INSTRUCTION)
    assert len(result.samples) == len(result.scores) == 4
    parsed = [s for s in result.scores if s is not None]
    assert parsed and result.mean_score == pytest.approx(sum(parsed) / len(parsed))
    assert result.score == round(result.mean_score)
    again = judge.score(source, edited, INSTRUCTION)
    assert again.samples == result.samples  # same seed -> same samples
    with pytest.raises(ValueError, match="temperature"):
        Judge(answering_model_dir, num_samples=2, temperature=0.0)


def test_best_of_n_breaks_score_ties_by_expected_score(judge: Judge) -> None:
    images = _images()
    candidates = images[1:]
    ranking = judge.best_of_n(images[0], candidates, INSTRUCTION)
    results = [c.result for c in ranking.candidates]
    scores = [r.score for r in results]
    assert len(set(scores)) < len(scores), "need tied scores to exercise the tie-break"
    keys = [(-r.score, -r.expected_score) for r in results]
    assert keys == sorted(keys)
    assert ranking.best is ranking.candidates[0] and ranking.best.rank == 1
    assert [rank_key(c.result, c.index) for c in ranking.candidates] == sorted(
        rank_key(c.result, c.index) for c in ranking.candidates
    )


def test_bad_items_get_errors_and_the_batch_goes_on(judge: Judge, tmp_path: Path) -> None:
    images = _images()
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    items = [
        (images[0], images[1], INSTRUCTION),
        (images[0], corrupt, INSTRUCTION),
        (tmp_path / "missing.png", images[1], INSTRUCTION),
        (images[0], images[2], INSTRUCTION),
        {"source": images[0], "edited": images[1]},
    ]
    results = judge.score_many(items)
    assert results[4].error == "input_error: the item lacks instruction"
    assert results[1].error.startswith("input_error: not_an_image: edited image")
    assert results[2].error.startswith("input_error: source image") and "missing.png" in results[2].error
    assert results[1].score is None and results[2].score is None
    for i in (0, 3):
        alone = judge.score(*items[i])
        assert results[i].ok and results[i].raw == alone.raw
        assert results[i].expected_score == pytest.approx(alone.expected_score, abs=1e-6)


def test_lora_adapter_loads_through_peft(answering_model_dir: Path, judge: Judge, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    source, edited = _images()[:2]
    base = judge.score(source, edited, INSTRUCTION)

    def adapter(name: str, random_b: bool) -> Path:
        import torch

        torch.manual_seed(0)  # the adapter's weights must not depend on what ran before in this process
        model = AutoModelForImageTextToText.from_pretrained(answering_model_dir)
        config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj", "down_proj"],
                            exclude_modules=r".*visual.*", init_lora_weights=not random_b)
        peft_model = get_peft_model(model, config)
        if random_b:  # a "trained" adapter whose effect is well above float noise (PEFT's own random B is tiny)
            with torch.no_grad():
                for param_name, param in peft_model.named_parameters():
                    if "lora_B" in param_name:
                        param.normal_(0.0, 2.0)
        peft_model.save_pretrained(tmp_path / name)
        return tmp_path / name

    identity = Judge(answering_model_dir, adapter=adapter("zero", False), max_new_tokens=12, device="cpu")
    assert type(identity.backend.model).__name__ == "PeftModel"
    same = identity.score(source, edited, INSTRUCTION)
    assert same.raw == base.raw and same.expected_score == pytest.approx(base.expected_score, abs=1e-6)

    trained = adapter("random", True)
    changed = Judge(answering_model_dir, adapter=trained, max_new_tokens=12, device="cpu").score(source, edited, INSTRUCTION)
    assert changed.raw != base.raw or abs((changed.expected_score or 0) - base.expected_score) > 1e-3
    merged = Judge(answering_model_dir, adapter=trained, merge_adapter=True, max_new_tokens=12, device="cpu")
    assert type(merged.backend.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    merged_result = merged.score(source, edited, INSTRUCTION)
    assert merged_result.raw == changed.raw
    if changed.expected_score is not None:
        assert merged_result.expected_score == pytest.approx(changed.expected_score, abs=1e-4)


def test_a_request_that_fails_inside_generate_does_not_sink_its_batch(judge: Judge) -> None:
    from editjudge.judge.request import JudgeRequest

    images = _images()
    good = judge.request(images[0], images[1], INSTRUCTION)
    broken = JudgeRequest(messages=good.messages, images=(good.images[0],))  # two <image> tags, one image
    outputs = judge.backend.generate([good, broken, good], judge.sampling)
    assert outputs[1].error.startswith("backend_error: ") and not outputs[1].generations
    assert outputs[0].generations[0].text == outputs[2].generations[0].text == judge.score(images[0], images[1], INSTRUCTION).raw
