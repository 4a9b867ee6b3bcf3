"""The judgment-format seam: the registry, the protocol, and the pointwise format equal to the seed's pieces."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from editjudge import prompts
from editjudge.answer import parse_response
from editjudge.formats import POINTWISE, JudgmentFormat, format_for_data_source, get_format
from editjudge.formats.slots import choices_from_top, normalised, tag_follows
from editjudge.reward import DEFAULT_OPTIONS, RewardOptions, compute_score, score_response


def test_the_registry_round_trips_specs_and_names_the_known_formats() -> None:
    assert get_format() is POINTWISE and get_format("pointwise") is POINTWISE
    assert get_format(POINTWISE.spec) is POINTWISE and get_format(POINTWISE) is POINTWISE
    assert isinstance(POINTWISE, JudgmentFormat)
    with pytest.raises(ValueError, match="unknown judgment format 'pairs'.*pointwise"):
        get_format("pairs")
    with pytest.raises(TypeError):
        get_format(3)  # type: ignore[arg-type]
    hash(POINTWISE)  # formats key caches and fingerprints


def test_the_reward_routes_by_data_source_and_keeps_the_seed_default() -> None:
    assert format_for_data_source(prompts.DATA_SOURCE) is POINTWISE
    for other in ("some_other_source", None, 7):
        assert format_for_data_source(other) is POINTWISE  # the seed's reward ignored data_source
    text = "<think>r</think><answer>6</answer>"
    assert compute_score("any", text, "7") == compute_score(prompts.DATA_SOURCE, text, "7")


def test_pointwise_messages_are_the_seed_prompts_byte_for_byte() -> None:
    for name in prompts.BUILTIN_TEMPLATES:
        assert POINTWISE.messages("make it red", name) == prompts.build_messages("make it red", name)
    user = POINTWISE.messages("make it red")[1]["content"]
    assert user.count(prompts.IMAGE_PLACEHOLDER) == len(POINTWISE.image_roles()) == 2
    with pytest.raises(ValueError, match="one source image, got 2"):
        POINTWISE.image_roles(2)


def test_pointwise_labels_and_answers() -> None:
    assert [POINTWISE.encode_label(v) for v in (0, 7, 7.0, "9")] == ["0", "7", "7", "9"]
    for bad in ("x", 10, -1, math.nan, True, None, "7.5.1"):
        with pytest.raises(ValueError, match="ground_truth must be a score 0..9"):
            POINTWISE.parse_label(bad)
    assert POINTWISE.warm_start_values() == tuple(range(10))
    for value in POINTWISE.warm_start_values():
        verdict = POINTWISE.parse(POINTWISE.answer_text(value, "ok"))
        assert verdict.answer == value and verdict.has_think


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.integers(0, 9), st.sampled_from([0, 1, 2, 3]), st.booleans())
def test_the_accuracy_term_is_the_seed_rule(text: str, label: int, tolerance: int, graded: bool) -> None:
    text = f"<think>t</think><answer>{text}</answer>" if len(text) % 2 else text
    options = RewardOptions(tolerance=tolerance, graded=graded)
    parsed = parse_response(text)
    part = POINTWISE.accuracy(POINTWISE.parse(text), label, options)
    if parsed.score is None:
        assert part == {"accuracy": 0.0, "pred": -1, "abs_error": 9}
    else:
        distance = abs(parsed.score - label)
        binary = 1.0 if distance <= tolerance else 0.0
        expected = binary * (1 - distance / (tolerance + 1)) if graded else binary
        assert part == {"accuracy": expected, "pred": parsed.score, "abs_error": distance}
    assert score_response(text, label, options)["accuracy"] == part["accuracy"]


def test_the_answer_slot_is_the_first_digit_after_the_answer_tag() -> None:
    assert POINTWISE.answer_slots(["<think>", "7", "</think>", "<answer>", " ", "3", "</answer>"]) == [5]
    assert POINTWISE.answer_slots(["<", "answer", ">", "x", "<answer>", "4"]) == [5]
    assert POINTWISE.answer_slots(["<answer>", "x", "7"]) == []  # a digit that does not follow the tag
    assert POINTWISE.answer_slots(["7", "<answer>"]) == []
    assert tag_follows(["<ans", "wer>", "\n", "A", "<answer>", "B"], "<answer>") == [3, 5]


def test_slot_probabilities_are_read_over_the_choices_only() -> None:
    logprobs = {"3": math.log(0.25), "7": math.log(0.75), "x": 0.0}
    assert POINTWISE.read_slots([logprobs]) == pytest.approx(6.0)
    assert POINTWISE.read_slots([]) is None and POINTWISE.read_slots([None]) is None
    assert normalised({"A": math.log(0.2), "B": math.log(0.6), "C": 0.0}, ("A", "B", "tie")) == pytest.approx(
        {"A": 0.25, "B": 0.75, "tie": 0.0})
    assert normalised({"A": -math.inf}, ("A", "B")) is None
    assert choices_from_top([("A", -1.0), ("A", -0.5), ("x", 0.0)], ("A", "B")) == {"A": -0.5}


def test_score_response_keeps_its_keys_in_order() -> None:
    keys = ["score", "format", "accuracy", "parsed", "pred", "abs_error"]
    assert list(score_response("<think>r</think><answer>7</answer>", "7", DEFAULT_OPTIONS)) == keys
    assert list(score_response("nothing", "7", DEFAULT_OPTIONS)) == keys


def test_judge_verbs_refuse_an_unknown_format_before_loading_anything(tmp_path) -> None:
    import subprocess
    import sys

    manifest = tmp_path / "m.jsonl"
    manifest.write_text("")
    out = subprocess.run(
        [sys.executable, "-m", "editjudge.cli", "score", "--model", str(tmp_path / "no-model"), "--format", "pairz",
         "--manifest", str(manifest), "--out", str(tmp_path / "p.jsonl")],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 2, out.stderr
    assert "unknown judgment format 'pairz'" in out.stderr and "pointwise" in out.stderr
