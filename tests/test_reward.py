"""The reward: seed-exact on well-formed responses, never more generous, options, TRL adapter, light core."""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from editjudge.reward import (
    UNPARSED_ABS_ERROR,
    UNPARSED_PRED,
    compute_score,
    parse_label,
    reward_options,
    trl_reward_funcs,
    trl_reward_weights,
)

ROOT = Path(__file__).resolve().parents[1]
SHIM = ROOT / "recipe" / "tts_edit" / "tts_edit_reward.py"
KEYS = ("score", "format", "accuracy", "parsed", "pred", "abs_error")
TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def seed_parts(solution_str: str, ground_truth: str) -> tuple[float, float]:
    """Reference oracle of the seed recipe's reward, written from its rules: (format, accuracy).

    No ``<answer>(.*?)</answer>`` → nothing; +1 format if ``<think>.*?</think>`` exists anywhere; +1 accuracy if the
    first answer, stripped, parses with ``float``, rounds into 0..9 and lies within 2 of the label.
    (The seed itself crashed on "inf" — ``round`` raises OverflowError; the oracle scores it 0.)
    """
    answer = re.search(r"<answer>(.*?)</answer>", solution_str, re.DOTALL)
    if answer is None:
        return 0.0, 0.0
    fmt = 1.0 if re.search(r"<think>.*?</think>", solution_str, re.DOTALL) else 0.0
    try:
        pred = round(float(answer.group(1).strip()))
    except (ValueError, OverflowError):
        return fmt, 0.0
    acc = 1.0 if 0 <= pred <= 9 and abs(pred - int(ground_truth)) <= 2 else 0.0
    return fmt, acc


def seed_reward(solution_str: str, ground_truth: str) -> float:
    return sum(seed_parts(solution_str, ground_truth))


# ------------------------------------------------------------------ strategies

labels = st.integers(0, 9).map(str)
space = st.sampled_from(["", " ", "\n", "\n\n", " \t", "\r\n"])
reasoning = st.text(max_size=80).filter(lambda s: not any(tag in s for tag in TAGS))


@st.composite
def numbers(draw) -> str:
    """Answers the parser accepts: plain decimals rounding into 0..9, in the spellings a model might use."""
    kind = draw(st.sampled_from(["int", "signed", "zeros", "decimal", "trailing_dot", "leading_dot"]))
    n = draw(st.integers(0, 9))
    if kind == "int":
        return str(n)
    if kind == "signed":
        return "+" + str(n) if n else draw(st.sampled_from(["+0", "-0"]))
    if kind == "zeros":
        return "0" * draw(st.integers(1, 3)) + str(n)
    if kind == "trailing_dot":
        return f"{n}."
    if kind == "leading_dot":
        return "." + str(draw(st.integers(0, 9999)))
    value = draw(st.floats(-0.49, 9.49, allow_nan=False))
    text = f"{value:.{draw(st.integers(1, 4))}f}"
    return text if 0 <= round(float(text)) <= 9 else str(n)  # "9.50" rounds to 10: out of range


@st.composite
def well_formed(draw) -> str:
    number = draw(space) + draw(numbers()) + draw(space)
    body = f"<answer>{number}</answer>"
    if draw(st.booleans()):
        body = f"<think>{draw(reasoning)}</think>" + draw(space) + body
    return draw(space) + body + draw(space)


FRAGMENTS = ["<think>", "</think>", "<answer>", "</answer>", "<answer", "think>", "7", "3", "9.5", "12", "-1", " ",
             "\n", "3-5", " or ", "inf", "nan", "1e1", "x", "<", "+", ".", "\u0663"]
adversarial = st.one_of(st.text(max_size=80), st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join))


# ------------------------------------------------------------------ seed equality and the hardened bound


@settings(max_examples=300, deadline=None)
@given(well_formed(), labels)
def test_identical_to_the_seed_on_every_well_formed_response(text: str, label: str) -> None:
    result = compute_score("tts_edit_score", text, label)
    assert result["parsed"] == 1.0
    assert (result["format"], result["accuracy"]) == seed_parts(text, label)
    assert result["score"] == seed_reward(text, label)


@settings(max_examples=400, deadline=None)
@given(adversarial, labels)
def test_never_more_than_the_seed_and_never_raises(text: str, label: str) -> None:
    result = compute_score("tts_edit_score", text, label, extra_info={"index": 0})
    fmt, acc = seed_parts(text, label)
    assert result["format"] <= fmt and result["accuracy"] <= acc and result["score"] <= fmt + acc
    assert tuple(result) == KEYS and all(isinstance(v, (int, float)) for v in result.values())
    graded = compute_score("tts_edit_score", text, label, graded=True, format_weight=0.5, accuracy_weight=3)
    assert graded["score"] <= 0.5 * fmt + 3 * acc


@pytest.mark.parametrize(
    "text, label, expected",
    [
        ("<think>r</think><answer>7</answer>", "7", (2.0, 1.0, 1.0, 1.0, 7, 0)),
        ("<think>r</think><answer>7</answer>", "5", (2.0, 1.0, 1.0, 1.0, 7, 2)),  # ±2 inclusive
        ("<think>r</think><answer>7</answer>", "4", (1.0, 1.0, 0.0, 1.0, 7, 3)),
        ("<answer>7</answer>", "7", (1.0, 0.0, 1.0, 1.0, 7, 0)),  # no reasoning: accuracy only (seed: same)
        ("<think>r</think><answer>6.6</answer>", "9", (2.0, 1.0, 1.0, 1.0, 7, 2)),
        ("<think>r</think>\n<answer> 7 </answer>\n", "7", (2.0, 1.0, 1.0, 1.0, 7, 0)),
    ],
)
def test_parts(text: str, label: str, expected: tuple) -> None:
    assert tuple(compute_score("tts_edit_score", text, label).values()) == expected


# Each hardened rule, with what the seed would have paid for it.
@pytest.mark.parametrize(
    "text, seed",
    [
        ("<think>r</think><answer>4</answer><answer>9</answer>", 2.0),  # several answers: the seed took the first
        ("<think>r</think><answer>3-5</answer>", 1.0),  # a range
        ("<think>r</think><answer>3 or 4</answer>", 1.0),  # a list
        ("<think>r</think><answer>four</answer>", 1.0),  # non-numeric
        ("<think>r</think><answer>12</answer>", 1.0),  # out of range
        ("<answer>4</answer><think>r</think>", 2.0),  # the answer before the reasoning
        ("<think>r</think><answer>4</answer> no wait, 9", 2.0),  # text after </answer>
        ("Let me see. <think>r</think><answer>4</answer>", 2.0),  # text before the reasoning
        ("<think>r<answer>4</answer>", 1.0),  # unclosed think
        ("<think>r</think><answer>4", 0.0),  # unclosed answer
        ("<think>r<answer>4</answer></think>", 2.0),  # the answer nested in the reasoning
        ("<answer><think>r</think>4</answer>", 1.0),  # the reasoning nested in the answer
        ("<think>a</think><think>b</think><answer>4</answer>", 2.0),  # two reasoning blocks
        ("<think>r</think><answer>inf</answer>", None),  # the seed crashed here (OverflowError)
    ],
)
def test_hardened_rules_pay_nothing(text: str, seed: float | None) -> None:
    if seed is not None:
        assert seed_reward(text, "4") == seed
    result = compute_score("tts_edit_score", text, "4")
    assert result == {"score": 0.0, "format": 0.0, "accuracy": 0.0, "parsed": 0.0,
                      "pred": UNPARSED_PRED, "abs_error": UNPARSED_ABS_ERROR}


def test_sentinels_keep_means_recoverable() -> None:
    """Unparsed responses count as pred -1 and the worst error 9, so the error over parsed ones can be recovered."""
    texts = ["<think>r</think><answer>5</answer>", "<think>r</think><answer>8</answer>", "nothing"]
    results = [compute_score("tts_edit_score", t, "7") for t in texts]
    parse_rate = sum(r["parsed"] for r in results) / 3
    mean_error = sum(r["abs_error"] for r in results) / 3
    assert parse_rate == pytest.approx(2 / 3)
    assert (mean_error - UNPARSED_ABS_ERROR * (1 - parse_rate)) / parse_rate == pytest.approx((2 + 1) / 2)
    assert UNPARSED_PRED not in range(10)


# ------------------------------------------------------------------ options


@pytest.mark.parametrize(
    "kwargs, label, expected_accuracy",
    [
        ({"tolerance": 0}, "6", 0.0),
        ({"tolerance": 0}, "7", 1.0),
        ({"tolerance": 1}, "6", 1.0),
        ({"tolerance": 1.5}, "5", 0.0),
        ({"tolerance": 4}, "3", 1.0),
        ({"graded": True}, "7", 1.0),
        ({"graded": True}, "6", 2 / 3),
        ({"graded": True}, "5", 1 / 3),
        ({"graded": True}, "4", 0.0),
        ({"graded": True, "tolerance": 0}, "7", 1.0),
        ({"graded": True, "tolerance": 0}, "6", 0.0),
    ],
)
def test_tolerance_and_graded_accuracy(kwargs: dict, label: str, expected_accuracy: float) -> None:
    result = compute_score("tts_edit_score", "<think>r</think><answer>7</answer>", label, **kwargs)
    assert result["accuracy"] == pytest.approx(expected_accuracy)
    assert result["score"] == pytest.approx(1.0 + expected_accuracy)


def test_weights() -> None:
    result = compute_score("d", "<think>r</think><answer>7</answer>", "6", format_weight=0.25, accuracy_weight=3)
    assert result["score"] == pytest.approx(3.25) and (result["format"], result["accuracy"]) == (1.0, 1.0)


@settings(max_examples=100, deadline=None)
@given(well_formed(), labels, st.integers(0, 9))
def test_graded_accuracy_never_exceeds_binary_and_rewards_closeness(text: str, label: str, tolerance: int) -> None:
    binary = compute_score("d", text, label, tolerance=tolerance)
    graded = compute_score("d", text, label, tolerance=tolerance, graded=True)
    assert 0.0 <= graded["accuracy"] <= binary["accuracy"]
    if binary["accuracy"]:
        assert graded["accuracy"] == pytest.approx(1 - binary["abs_error"] / (tolerance + 1))


@pytest.mark.parametrize(
    "kwargs, answer, expected_accuracy",
    [
        ({"miss_credit": 0.3}, "0", 1.0),  # hits keep the seed's credit
        ({"miss_credit": 0.3}, "2", 1.0),
        ({"miss_credit": 0.3}, "3", 0.3),  # the first miss beyond ±2 earns miss_credit ...
        ({"miss_credit": 0.3}, "4", 0.25),  # ... falling by miss_credit / 6 per step ...
        ({"miss_credit": 0.3}, "7", 0.1),  # a miss by 7 earns a third of a miss by 3
        ({"miss_credit": 0.3}, "9", 0.0),  # ... to 0 at the largest distance
        ({"miss_credit": 0.3, "graded": True}, "2", 1 / 3),
        ({"miss_credit": 0.3, "graded": True}, "3", 0.3),
        ({"miss_credit": 0.5, "tolerance": 0}, "1", 0.5),
        ({"miss_credit": 0.5, "tolerance": 0}, "9", 0.0),
        ({"miss_credit": 0.5, "tolerance": 8}, "9", 0.0),  # no miss but the largest one
    ],
)
def test_miss_credit_pays_near_misses_more_than_far_ones(kwargs: dict, answer: str, expected_accuracy: float) -> None:
    result = compute_score("d", f"<think>r</think><answer>{answer}</answer>", "0", **kwargs)
    assert result["accuracy"] == pytest.approx(expected_accuracy)
    assert result["score"] == pytest.approx(1.0 + expected_accuracy)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 9), st.integers(0, 9), st.integers(0, 9), st.booleans(), st.floats(0.0, 0.3))
def test_miss_credit_is_monotone_in_distance_and_below_every_hit(label: int, a: int, b: int, graded: bool,
                                                                  credit: float) -> None:
    """A closer answer never earns less; a miss never earns as much as a hit; 0 is the seed's rule."""
    def acc(pred: int, **kw) -> float:
        return compute_score("d", f"<answer>{pred}</answer>", str(label), graded=graded, **kw)["accuracy"]

    near, far = sorted((a, b), key=lambda p: abs(p - label))
    assert acc(near, miss_credit=credit) >= acc(far, miss_credit=credit)
    hits = [acc(p) for p in range(10) if abs(p - label) <= 2]
    misses = [acc(p, miss_credit=credit) for p in range(10) if abs(p - label) > 2]
    assert not misses or max(misses) < min(hits)
    assert acc(a, miss_credit=0.0) == acc(a)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"tolerence": 1}, TypeError, r"unknown reward option\(s\) \['tolerence'\].*'tolerance'"),
        ({"miss_credit": 1.0}, ValueError, "'miss_credit' must be below 1, the least a hit"),
        ({"miss_credit": 0.34, "graded": True}, ValueError, "'miss_credit' must be below 0.3333"),
        ({"miss_credit": -0.1}, ValueError, "'miss_credit' must be a finite number >= 0"),
        ({"miss_credit": math.nan}, ValueError, "'miss_credit' must be a finite number >= 0"),
        ({"tolerance": -1}, ValueError, "'tolerance' must be a finite number >= 0"),
        ({"tolerance": "2"}, ValueError, "'tolerance' must be a finite number >= 0"),
        ({"tolerance": [2]}, ValueError, "'tolerance' must be a finite number >= 0"),  # unhashable: not cached
        ({"format_weight": math.inf}, ValueError, "'format_weight'"),
        ({"accuracy_weight": True}, ValueError, "'accuracy_weight'"),
        ({"graded": "yes"}, ValueError, "'graded' must be true or false"),
    ],
)
def test_bad_options_fail_clearly(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        compute_score("d", "<answer>7</answer>", "7", **kwargs)
    with pytest.raises(error, match=message):
        trl_reward_funcs(**kwargs)


def test_validation_is_not_bypassed_by_the_options_cache() -> None:
    """True == 1 for Python's hashing; a cached tolerance=1 must not let tolerance=True through."""
    assert compute_score("d", "<answer>7</answer>", "6", tolerance=1)["accuracy"] == 1.0
    with pytest.raises(ValueError, match="'tolerance'"):
        compute_score("d", "<answer>7</answer>", "6", tolerance=True)


def test_verl_runtime_kwargs_are_accepted() -> None:
    """verl's reward managers add these when a reward-model router runs; they must not count as unknown options."""
    result = compute_score("d", "<answer>7</answer>", "7", reward_router_address="127.0.0.1:1",
                           reward_model_tokenizer=object(), tolerance=0)
    assert result["accuracy"] == 1.0
    assert reward_options(reward_router_address=None).tolerance == 2


@pytest.mark.parametrize("ground_truth, label", [("7", 7), (7, 7), (7.0, 7), ("7.0", 7), (" 7 ", 7), ("8.5", 8)])
def test_labels(ground_truth: object, label: int) -> None:
    assert parse_label(ground_truth) == label


def test_numpy_labels() -> None:
    np = pytest.importorskip("numpy")
    assert parse_label(np.str_("3")) == 3 and parse_label(np.int64(3)) == 3 and parse_label(np.array("3")) == 3


@pytest.mark.parametrize("ground_truth", [None, "", "seven", "nan", "10", -1, True, [7]])
def test_bad_labels_fail_clearly(ground_truth: object) -> None:
    with pytest.raises(ValueError, match=r"ground_truth must be a score 0..9 .*got"):
        compute_score("d", "<think>r</think><answer>7</answer>", ground_truth)


# ------------------------------------------------------------------ TRL adapter


def test_trl_functions_have_names_and_weights() -> None:
    funcs = trl_reward_funcs(format_weight=0.5, accuracy_weight=2)
    assert [f.__name__ for f in funcs] == ["format", "accuracy"]
    assert trl_reward_weights(format_weight=0.5, accuracy_weight=2) == [0.5, 2.0] == [f.weight for f in funcs]
    assert trl_reward_weights() == [1.0, 1.0]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.one_of(well_formed(), adversarial), labels, st.booleans()), min_size=1, max_size=6),
    st.sampled_from([{}, {"tolerance": 1}, {"graded": True, "format_weight": 0.5, "accuracy_weight": 2.0}]),
)
def test_trl_weighted_sum_equals_compute_score(rows: list, kwargs: dict) -> None:
    """What TRL optimizes (Σ weight · function) is exactly compute_score's score, in both completion forms."""
    texts = [t for t, _, _ in rows]
    truths = [gt for _, gt, _ in rows]
    completions = [[{"role": "assistant", "content": t}] if chat else t for t, _, chat in rows]
    funcs, weights = trl_reward_funcs(**kwargs), trl_reward_weights(**kwargs)
    # TRL passes its own keywords and every dataset column besides ground_truth.
    columns = {"prompts": [None] * len(rows), "completion_ids": [[]] * len(rows), "trainer_state": None,
               "images": [None] * len(rows)}
    outputs = [f(completions=completions, ground_truth=truths, **columns) for f in funcs]
    for i, (text, truth) in enumerate(zip(texts, truths)):
        expected = compute_score("tts_edit_score", text, truth, **kwargs)
        assert sum(w * out[i] for w, out in zip(weights, outputs)) == pytest.approx(expected["score"])
        assert (outputs[0][i], outputs[1][i]) == (expected["format"], expected["accuracy"])


def test_trl_logs_parse_rate_and_error() -> None:
    logged: dict[str, list[float]] = {}
    accuracy = trl_reward_funcs()[1]
    accuracy(completions=["<answer>5</answer>", "<answer>9</answer>", "?"], ground_truth=["7", "7", "7"],
             log_metric=lambda name, value: logged.setdefault(name, []).append(value))
    assert logged == {"judge/parse_rate": [pytest.approx(2 / 3)], "judge/abs_error": [2.0]}


def test_trl_content_parts_and_odd_completions() -> None:
    fmt, acc = trl_reward_funcs()
    parts = [[{"role": "assistant", "content": [{"type": "text", "text": "<think>r</think>"},
                                                 {"type": "text", "text": "<answer>7</answer>"}]}]]
    assert fmt(parts, ["7"]) == [1.0] and acc(parts, ["7"]) == [1.0]
    assert acc([None, 7, [{"role": "assistant"}]], ["7"] * 3) == [0.0, 0.0, 0.0]


def test_trl_needs_the_ground_truth_column() -> None:
    with pytest.raises(ValueError, match="'ground_truth' column"):
        trl_reward_funcs()[1](completions=["<answer>7</answer>"], prompts=[None])
    with pytest.raises(ValueError, match="2 completions but 1 ground truths"):
        trl_reward_funcs()[0](completions=["a", "b"], ground_truth=["7"])


def test_trl_functions_pickle() -> None:
    """TRL and accelerate may pickle reward functions; ours are plain module-level class instances."""
    import pickle

    restored = pickle.loads(pickle.dumps(trl_reward_funcs(tolerance=0)))
    assert restored[1](["<answer>6</answer>"], ["7"]) == [0.0] and restored[1].__name__ == "accuracy"


# ------------------------------------------------------------------ the shim and the light core


def test_shim_loaded_by_path_is_the_package_function() -> None:
    spec = importlib.util.spec_from_file_location("custom_module_test", SHIM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.compute_score is compute_score


def test_shim_works_from_a_bare_checkout_without_torch() -> None:
    """`python -S`: no site-packages at all (no editable install, no numpy, no torch) — the shim finds src/."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('custom_module_x', {str(SHIM)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print(m.compute_score('tts_edit_score', '<think>r</think><answer>6</answer>', '7')['score'])\n"
        "print(sorted(name for name in ('torch', 'numpy', 'verl', 'transformers') if name in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.split("\n")[:2] == ["2.0", "[]"]
