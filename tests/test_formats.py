"""The judgment-format seam: the registry, the protocol, and the pointwise format equal to the seed's pieces."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from editjudge import prompts
from editjudge.answer import parse_response
from editjudge.formats import PAIRWISE, POINTWISE, JudgmentFormat, format_for_row, get_format
from editjudge.formats.slots import Slot, choice_logprobs, normalised, values_after
from editjudge.reward import DEFAULT_OPTIONS, RewardOptions, compute_score, score_response


def test_the_registry_round_trips_specs_and_names_the_known_formats() -> None:
    assert get_format() is POINTWISE and get_format("pointwise") is POINTWISE
    assert get_format(POINTWISE.spec) is POINTWISE and get_format(POINTWISE) is POINTWISE
    assert isinstance(POINTWISE, JudgmentFormat)
    with pytest.raises(ValueError, match="unknown judgment format 'pairs'.*pointwise"):
        get_format("pairs")
    assert get_format("pairwise") is PAIRWISE and get_format("dimensions:seed") is POINTWISE
    editscore = get_format("dimensions:editscore")
    assert get_format(editscore.spec) == editscore and isinstance(editscore, JudgmentFormat)
    with pytest.raises(ValueError, match="needs a dimension set"):
        get_format("dimensions")
    with pytest.raises(ValueError, match="unknown dimension set 'nope'"):
        get_format("dimensions:nope")
    with pytest.raises(TypeError):
        get_format(3)  # type: ignore[arg-type]
    hash(POINTWISE)  # formats key caches and fingerprints


def test_the_reward_routes_by_data_source_and_keeps_the_seed_default() -> None:
    assert format_for_row(prompts.DATA_SOURCE, "7") is POINTWISE
    for other in ("some_other_source", None, 7):
        assert format_for_row(other, "7") is POINTWISE  # the seed's reward ignored data_source
    assert format_for_row("editjudge_pairwise", "A") is PAIRWISE
    assert format_for_row("editjudge_dimensions", '{"a":1,"b":null}').names == ("a", "b")
    text = "<think>r</think><answer>6</answer>"
    assert compute_score("any", text, "7") == compute_score(prompts.DATA_SOURCE, text, "7")


def test_pointwise_messages_are_the_seed_prompts_byte_for_byte() -> None:
    for name in prompts.BUILTIN_TEMPLATES:
        assert POINTWISE.messages("make it red", name) == prompts.build_messages("make it red", name)
    user = POINTWISE.messages("make it red")[1]["content"]
    assert user.count(prompts.IMAGE_PLACEHOLDER) == len(POINTWISE.image_roles()) == 2
    assert POINTWISE.image_roles(2) == ("source 1", "source 2", "edited")  # multi-source edits: issue 22


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
    assert POINTWISE.answer_slots(["<think>", "7", "</think>", "<answer>", " ", "3", "</answer>"]) == [Slot(5, "")]
    assert POINTWISE.answer_slots(["<", "answer", ">", "x", "<answer>", "4"]) == [Slot(5, "")]
    assert POINTWISE.answer_slots(["<answer>", "x", "7"]) == []  # a digit that does not follow the tag
    assert POINTWISE.answer_slots(["7", "<answer>"]) == []
    assert values_after(["<ans", "wer>", "\n", "A", "<answer>", "B"], "<answer>") == [Slot(3, ""), Slot(5, "")]
    # Qwen's byte-level BPE merges the tag's '>' with a letter (and sometimes a space with a digit): the slot keeps
    # the token and the prefix before the value, and the value's probability is read over the texts that begin it
    assert POINTWISE.answer_slots(["<answer", ">", "7"]) == [Slot(2, "")]
    assert POINTWISE.answer_slots(["<answer", "> 7"]) == [Slot(1, "> ")]
    assert PAIRWISE.answer_slots(["<think>", "r", "</think>", "<answer", ">A", "</answer>"]) == [Slot(4, ">")]
    assert PAIRWISE.answer_slots(["<answer>", "t", "ie", "</answer>"]) == [Slot(1, "")]


def test_slot_probabilities_are_read_over_the_choices_only() -> None:
    logprobs = {"3": math.log(0.25), "7": math.log(0.75), "x": 0.0}
    assert POINTWISE.read_slots([logprobs]) == pytest.approx(6.0)
    assert POINTWISE.read_slots([]) is None and POINTWISE.read_slots([None]) is None
    assert normalised({"A": math.log(0.2), "B": math.log(0.6), "C": 0.0}, ("A", "B", "tie")) == pytest.approx(
        {"A": 0.25, "B": 0.75, "tie": 0.0})
    assert normalised({"A": -math.inf}, ("A", "B")) is None
    assert choice_logprobs([("A", -1.0), ("A", -0.5), ("x", 0.0)], "", ("A", "B")) == {"A": -0.5}  # repeats: best
    merged = choice_logprobs([(">A", math.log(0.5)), (">t", math.log(0.1)), (">tie", math.log(0.2)), ("A", 0.0)],
                             ">", ("A", "B", "tie"))
    assert merged == pytest.approx({"A": math.log(0.5), "tie": math.log(0.3)})  # ">t" and ">tie" both begin tie


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


# ------------------------------------------------------------------------------------------ dimensions
EDITSCORE = "dimensions:editscore"


def _dims(body: str, think: str = "r") -> str:
    return f"<think>{think}</think><answer>{body}</answer>"


@pytest.mark.parametrize("body, scores", [
    ("prompt_following: 7\nconsistency: 3\nperceptual_quality: 8", (7, 3, 8)),
    (" prompt_following:7, consistency : 3 ; perceptual_quality: 8 \n", (7, 3, 8)),
    ("prompt_following: 0\n\nconsistency: 9\nperceptual_quality: 0\n", (0, 9, 0)),
])
def test_a_dimension_answer_is_read_in_order(body: str, scores: tuple[int, ...]) -> None:
    verdict = get_format(EDITSCORE).parse(_dims(body))
    assert verdict.answer == scores and verdict.error is None and verdict.has_think


@pytest.mark.parametrize("text, reason", [
    (_dims("prompt_following: 7\nconsistency: 3"), "missing_dimension"),
    (_dims("prompt_following: 7\nconsistency: 3\nconsistency: 4\nperceptual_quality: 8"), "repeated_dimension"),
    (_dims("consistency: 3\nprompt_following: 7\nperceptual_quality: 8"), "dimension_order"),
    (_dims("prompt_following: 7\nconsistency: 3\nquality: 8"), "unknown_dimension"),
    (_dims("prompt_following: 3-5\nconsistency: 3\nperceptual_quality: 8"), "non_digit_value"),
    (_dims("prompt_following: 3 or 4\nconsistency: 3\nperceptual_quality: 8"), "non_digit_value"),
    (_dims("prompt_following: 7.5\nconsistency: 3\nperceptual_quality: 8"), "non_digit_value"),
    (_dims("prompt_following: \u0663\nconsistency: 3\nperceptual_quality: 8"), "non_digit_value"),
    (_dims("prompt_following: 10\nconsistency: 3\nperceptual_quality: 8"), "out_of_range"),
    (_dims("prompt following is 7"), "malformed_entry"),
    (_dims(""), "malformed_entry"),
    (_dims("7"), "malformed_entry"),
    ("prompt_following: 7\nconsistency: 3\nperceptual_quality: 8", "no_answer"),
    ("so " + _dims("prompt_following: 7\nconsistency: 3\nperceptual_quality: 8"), "text_outside_tags"),
])
def test_a_bad_dimension_answer_gets_a_named_reason_and_no_credit(text: str, reason: str) -> None:
    fmt = get_format(EDITSCORE)
    verdict = fmt.parse(text)
    assert verdict.error == reason and verdict.answer is None
    label = fmt.parse_label('{"prompt_following":7,"consistency":3,"perceptual_quality":8}')
    assert fmt.accuracy(verdict, label, DEFAULT_OPTIONS)["accuracy"] == 0.0


def test_dimension_labels_round_trip_and_bad_ones_are_named() -> None:
    fmt = get_format(EDITSCORE)
    stored = fmt.encode_label({"consistency": 3, "prompt_following": 7})
    assert stored == '{"prompt_following":7,"consistency":3,"perceptual_quality":null}'
    assert fmt.parse_label(stored) == {"prompt_following": 7, "consistency": 3, "perceptual_quality": None}
    for bad, match in [("{}", "JSON object"), ("[1]", "JSON object"), ('{"x":1}', "unknown dimension"),
                       ('{"consistency":10}', "integer 0..9"), ('{"consistency":true}', "integer 0..9"),
                       ('{"consistency":null}', "labels no dimension"), ("7", "JSON object"),
                       ("{" * 5000, "characters")]:
        with pytest.raises(ValueError, match=match):
            fmt.parse_label(bad)


def test_the_dimension_reward_is_the_mean_seed_rule_over_labelled_dimensions_on_the_seed_scale() -> None:
    truth = '{"prompt_following":7,"consistency":3,"perceptual_quality":null}'
    good = _dims("prompt_following: 6\nconsistency: 9\nperceptual_quality: 0")  # PF within 2, C off by 6, PQ unlabelled
    out = compute_score("editjudge_dimensions", good, truth)
    assert out["score"] == 1.5 and out["format"] == 1.0 and out["accuracy"] == 0.5
    assert out["accuracy/prompt_following"] == 1.0 and out["accuracy/consistency"] == 0.0
    assert out["labelled/perceptual_quality"] == 0.0
    assert compute_score("editjudge_dimensions", _dims("prompt_following: 7\nconsistency: 3\nperceptual_quality: 1"),
                         truth)["score"] == 2.0
    bad = compute_score("editjudge_dimensions", _dims("prompt_following: 7"), truth)
    assert bad["score"] == 0.0 and list(bad) == list(out)  # the same keys on every call (verl collects them)


def test_dimension_slots_and_expected_scores_and_the_overall_rule() -> None:
    fmt = get_format(EDITSCORE)
    tokens = ["<think>", "consistency", ":", " 5", "</think>", "<answer>", "prompt", "_following", ":", " ", "7",
              "\n", "consistency", ":", "3", "\n", "perceptual_quality", ":", " ", "8", "</answer>"]
    assert [s.index for s in fmt.answer_slots(tokens)] == [10, 14, 19]  # the reasoning's 'consistency: 5' is not one
    certain = [{"7": 0.0}, {"3": 0.0}, {"8": 0.0}]
    read = fmt.read_slots(certain)
    assert read["prompt_following"] == 7 and read["overall"] == pytest.approx(math.sqrt(3 * 8))  # EditScore's rule
    assert fmt.read_slots(certain[:2])["overall"] is None
    assert get_format("dimensions:instruct_quality").read_slots([{"2": 0.0}, {"6": 0.0}])["overall"] == 4.0


def test_dimension_prompts_name_every_dimension_and_keep_two_images() -> None:
    fmt = get_format(EDITSCORE)
    for template in ("en", "demo"):
        system, user = (m["content"] for m in fmt.messages("make it red", template))
        assert user.count(prompts.IMAGE_PLACEHOLDER) == 2 and "make it red" in user
        assert all(name in system + user for name in fmt.names)
    values = fmt.warm_start_values()
    # label-free and balanced: every dimension takes every digit 10 times, every two dimensions every pair once (a
    # dimension's digit tells nothing of another's, so GRPO can score them apart)
    assert len(values) == 100 and all(sorted(col) == sorted(list(range(10)) * 10) for col in zip(*values))
    assert all(len({(v[i], v[j]) for v in values}) == 100 for i in range(3) for j in range(i + 1, 3))
    assert all(fmt.parse(fmt.answer_text(v, "ok")).answer == v for v in values)


@pytest.mark.parametrize("content, match", [
    ("name: x\ndimensions: [{name: a, prompt: p}, {name: a, prompt: q}]", "more than once"),
    ("dimensions: [{name: A, prompt: p}]", "lower-case"),
    ("dimensions: []", "no dimensions"),
    ("dimensions: [{name: a, prompt: 'p <image>'}]", "special tokens"),
    ("dimensions: [{name: a, prompt: '{instruction}'}]", "braces"),
    ("overall: max\ndimensions: [{name: a, prompt: p}]", "overall must be one of"),
    ("dimensions: [" + ", ".join(f"{{name: d{i}, prompt: p}}" for i in range(100)) + "]", "at most 8"),
    ("dimensions: [" + ", ".join(f"{{name: d{i}, prompt: p}}" for i in range(10000)) + "]", "larger than"),
    ("dimensions: 3", "'dimensions' list"),
    ("[", "not readable YAML"),
])
def test_a_bad_dimension_set_file_is_refused_with_its_reason(tmp_path, content: str, match: str) -> None:
    path = tmp_path / "set.yaml"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        get_format(f"dimensions:{path}")


# ------------------------------------------------------------------------------------------ pairwise
def test_pairwise_answers_labels_reward_and_probabilities() -> None:
    for choice in ("A", "B", "tie"):
        assert PAIRWISE.parse(PAIRWISE.answer_text(choice, "r")).answer == choice
        assert compute_score("editjudge_pairwise", PAIRWISE.answer_text(choice, "r"), choice)["score"] == 2.0
    for bad in ("a", "A or B", "both", "AB", "1", ""):
        assert PAIRWISE.parse(f"<think>r</think><answer>{bad}</answer>").error == "non_choice_answer"
    assert compute_score("editjudge_pairwise", PAIRWISE.answer_text("A", "r"), "tie")["score"] == 1.0  # format only
    with pytest.raises(ValueError, match="one of"):
        PAIRWISE.parse_label("C")
    assert PAIRWISE.read_slots([{"A": math.log(0.6), "B": math.log(0.2), "tie": math.log(0.2)}]) == pytest.approx(
        {"A": 0.6, "B": 0.2, "tie": 0.2})
    user = PAIRWISE.messages("make it red")[1]["content"]
    assert user.count(prompts.IMAGE_PLACEHOLDER) == len(PAIRWISE.image_roles()) == 3
