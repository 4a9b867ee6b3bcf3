"""Shared, backend-independent pieces: answer-step lookup, expected score, Avg@k aggregation, best-of-N order."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from editjudge.judge.logprobs import DIGITS, answer_digit_index, digit_logprobs_from_top, expected_score
from editjudge.prompts import ANSWER_OPEN
from editjudge.judge.ranking import build_ranking, rank
from editjudge.judge.result import Generation, JudgeResult, combine


def test_answer_digit_index_single_and_multi_token_tags() -> None:
    assert answer_digit_index(["<think>", "ok", "</think>", "<answer>", "7", "</answer>"]) == 4
    # real Qwen tokenizers split the tag; whitespace may sit between tag and digit
    assert answer_digit_index(["<think>", "5", " is", "</think>", "<", "answer", ">", " ", "3", "</", "answer", ">"]) == 8
    assert answer_digit_index(["<think>", "a 7", "</think>", "<answer>", "seven", "</answer>"]) is None
    assert answer_digit_index(["7", "<answer>"]) is None  # a digit before the tag is not the answer


def test_expected_score_renormalises_over_digits() -> None:
    assert expected_score({"7": 0.0}) == pytest.approx(7.0)
    assert expected_score({"2": math.log(0.25), "6": math.log(0.25)}) == pytest.approx(4.0)  # mass elsewhere ignored
    assert expected_score({"3": math.log(0.1), "4": math.log(0.3), "x": 0.0}) == pytest.approx(3.75)
    assert expected_score({"1": -1e6, "9": -1e6 - math.log(3)}) == pytest.approx(3.0)  # no underflow to 0/0
    assert expected_score({"5": float("-inf"), "8": -2.0}) == pytest.approx(8.0)
    assert expected_score({}) is None and expected_score(None) is None and expected_score({"a": 0.0}) is None


@given(st.dictionaries(st.sampled_from("0123456789"), st.floats(-50, 0), min_size=1), st.floats(-20, 20))
def test_expected_score_is_a_mean_and_shift_invariant(logprobs: dict[str, float], shift: float) -> None:
    value = expected_score(logprobs)
    digits = [int(d) for d in logprobs]
    assert min(digits) - 1e-9 <= value <= max(digits) + 1e-9
    assert expected_score({d: lp + shift for d, lp in logprobs.items()}) == pytest.approx(value, abs=1e-9)


def test_digit_logprobs_from_top_keeps_digits_and_the_best_duplicate() -> None:
    assert digit_logprobs_from_top([("7", -0.1), ("7", -3.0), (" 7", -0.5), ("</", -1.0), ("3", -2.0)]) == {
        "7": -0.1, "3": -2.0,
    }
    assert digit_logprobs_from_top({"9": -1.0, "nine": -0.1}) == {"9": -1.0}


def test_combine_one_sample_uses_the_shared_parser() -> None:
    good = combine([Generation("<think>fine</think><answer>8</answer>", {"8": math.log(0.5), "9": math.log(0.5)})])
    assert (good.score, good.reasoning, good.error, good.mean_score) == (8, "fine", None, 8.0)
    assert good.expected_score == pytest.approx(8.5)
    bad = combine([Generation("<answer>3 or 4</answer>", {"3": 0.0})])
    assert bad.score is None and bad.error == "non_numeric_answer" and bad.expected_score is None
    assert combine([]).error.startswith("backend_error")


def test_combine_avg_at_k() -> None:
    result = combine([
        Generation("<think>a</think><answer>6</answer>", {"6": 0.0}),
        Generation("junk", {"9": 0.0}),  # unparsable: neither its score nor its probabilities count
        Generation("<think>b</think><answer>9</answer>", {"8": 0.0}),
    ])
    assert result.scores == (6, None, 9) and result.mean_score == pytest.approx(7.5) and result.score == 8
    assert result.expected_score == pytest.approx(7.0)
    assert result.reasoning == "a" and result.error is None and len(result.samples) == 3


def test_rank_orders_by_score_then_expected_then_input_order_failures_last() -> None:
    results = [
        JudgeResult(score=7, mean_score=7.0, expected_score=6.6),
        JudgeResult(error="input_error: not_an_image: edited image: …"),
        JudgeResult(score=7, mean_score=7.0, expected_score=6.9),
        JudgeResult(score=8, mean_score=8.0, expected_score=None),
        JudgeResult(score=7, mean_score=7.0, expected_score=6.6),
        JudgeResult(score=7, mean_score=7.0, expected_score=None),
    ]
    assert rank(results) == [3, 2, 0, 4, 5, 1]
    ranking = build_ranking("src.jpg", "make it red", [f"c{i}.jpg" for i in range(6)], results)
    assert ranking.best.candidate == "c3.jpg" and [c.rank for c in ranking.candidates] == [1, 2, 3, 4, 5, 6]
    failed = build_ranking("src.jpg", "x", ["a.jpg"], [JudgeResult(error="no_answer")])
    assert failed.best is None and failed.to_dict()["best"] is None


def test_backend_choice_errors_are_clear() -> None:
    import importlib.util

    from editjudge.judge import Judge

    with pytest.raises(ValueError, match="unknown judge backend 'tgi'.*openai"):
        Judge("m", backend="tgi")
    if importlib.util.find_spec("vllm") is None:  # CPU machines: vLLM is an optional GPU import
        with pytest.raises(ImportError, match="pip install vllm.*backend='openai'"):
            Judge("m", backend="vllm")


def _answer_digit_index_by_definition(tokens: list[str]) -> int | None:
    """The definition, quadratic: a digit token whose whole prefix, right-stripped, ends with ``<answer>``."""
    prefix = ""
    for i, token in enumerate(tokens):
        if token in DIGITS and prefix.rstrip().endswith(ANSWER_OPEN):
            return i
        prefix += token
    return None


_TOKEN_PIECES = ["<answer>", "<ans", "wer>", "<", ">", "answer", " ", "\n", "  ", "7", "3", "x", "</answer>", "er> ", "r>"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_TOKEN_PIECES), max_size=30))
def test_answer_digit_index_matches_its_definition(tokens: list[str]) -> None:
    assert answer_digit_index(tokens) == _answer_digit_index_by_definition(tokens)


def test_a_missing_local_model_path_is_named_not_taken_for_a_hub_id(tmp_path) -> None:
    from editjudge.judge.backends import check_local_paths

    check_local_paths(model=str(tmp_path), adapter=None, processor=str(tmp_path))  # folders pass
    # a hub-like id that is not in the (isolated, empty) cache fails at once too: no minutes of hub retries
    for missing in (str(tmp_path / "nope"), "./nope", "~/nope-editjudge", "runs/x/adapter", "runs/nope"):
        with pytest.raises(FileNotFoundError, match=r"--adapter .*nope.* neither a local directory nor in the Hugging Face cache|--adapter 'runs/x/adapter'"):
            check_local_paths(model=str(tmp_path), adapter=missing)


def test_score_with_a_missing_model_folder_says_so(tmp_path, capsys) -> None:
    from editjudge.cli import main

    image = tmp_path / "a.png"
    image.write_bytes(b"")
    argv = ["score", "--model", str(tmp_path / "no-model"), "--source", str(image), "--edited", str(image),
            "--instruction", "x"]
    assert main(argv) == 2
    assert f"--model '{tmp_path / 'no-model'}' is neither a local directory" in capsys.readouterr().err
