"""The shared answer parser: one named reason per rule, a fast path that agrees with the full rules, linear time."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from editjudge import answer
from editjudge.answer import REASONS, ParsedResponse, parse_response

T, A = "<think>reasoning</think>", "<answer>{}</answer>"

# Fragments that build tag-heavy strings: hypothesis' plain text almost never spells a tag.
FRAGMENTS = ["<think>", "</think>", "<answer>", "</answer>", "<", ">", "/", "7", "3", "12", "-", ".", "+", " or ",
             "3-5", " ", "\n", "\t", "x", "nan", "1e1", "\u00a0", "\u0663", "9.5", "8.5", "<think", "answer>"]
taggy = st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join)
any_text = st.one_of(st.text(max_size=60), taggy)


@pytest.mark.parametrize(
    "text, score, think",
    [
        ("<think>r</think><answer>7</answer>", 7, "r"),
        ("  \n<think>\nr\n</think>\n\n<answer> 7 </answer>\n", 7, "\nr\n"),  # whitespace tolerated
        ("<answer>7</answer>", 7, None),  # parsed, without reasoning
        ("<think></think><answer>0</answer>", 0, ""),  # empty reasoning still counts, as in the seed
        ("<think>r</think><answer>+7</answer>", 7, "r"),
        ("<think>r</think><answer>007</answer>", 7, "r"),
        ("<think>r</think><answer>7.</answer>", 7, "r"),
        ("<think>r</think><answer>.5</answer>", 0, "r"),  # round(0.5) == 0: half to even, like the seed
        ("<think>r</think><answer>8.5</answer>", 8, "r"),
        ("<think>r</think><answer>6.6</answer>", 7, "r"),
        ("<think>r</think><answer>-0.4</answer>", 0, "r"),
        ("<think>a < b and c > d</think><answer>7</answer>", 7, "a < b and c > d"),  # stray '<' in reasoning
    ],
)
def test_well_formed(text: str, score: int, think: str | None) -> None:
    parsed = parse_response(text)
    assert (parsed.score, parsed.think, parsed.error) == (score, think, None)
    assert parsed.parsed and parsed.has_think == (think is not None)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "no_answer"),
        ("<think>r</think>7", "no_answer"),
        ("<think>r</think><answer>7", "no_answer"),  # unclosed
        ("<think>r</think></answer>7<answer>", "no_answer"),  # closed before opened
        ("<think>r</think><answer>3</answer><answer>5</answer>", "multiple_answers"),
        ("<think>r</think><answer>3<answer>5</answer>", "multiple_answers"),
        ("<think>r</think><think>s</think><answer>7</answer>", "malformed_think"),
        ("<think>r<answer>7</answer>", "malformed_think"),  # unclosed think
        ("r</think><answer>7</answer>", "malformed_think"),  # unopened think
        ("</think>r<think><answer>7</answer>", "malformed_think"),
        ("<answer>7</answer><think>r</think>", "answer_before_think"),
        ("<think>r<answer>7</answer></think>", "answer_before_think"),  # answer inside the reasoning
        ("<answer><think>r</think>7</answer>", "nested_tags"),
        ("<think>r<answer>7</think></answer>", "nested_tags"),
        ("Sure. <think>r</think><answer>7</answer>", "text_outside_tags"),
        ("<think>r</think>so:<answer>7</answer>", "text_outside_tags"),
        ("<think>r</think><answer>7</answer> or maybe 3", "text_outside_tags"),
        ("score <answer>7</answer>", "text_outside_tags"),
        ("<think>r</think><answer>3-5</answer>", "non_numeric_answer"),
        ("<think>r</think><answer>3 or 4</answer>", "non_numeric_answer"),
        ("<think>r</think><answer>3, 4</answer>", "non_numeric_answer"),
        ("<think>r</think><answer>seven</answer>", "non_numeric_answer"),
        ("<think>r</think><answer>7/9</answer>", "non_numeric_answer"),
        ("<think>r</think><answer>1e1</answer>", "non_numeric_answer"),
        ("<think>r</think><answer>nan</answer>", "non_numeric_answer"),
        ("<think>r</think><answer>inf</answer>", "non_numeric_answer"),
        ("<think>r</think><answer></answer>", "non_numeric_answer"),
        ("<think>r</think><answer>\u0663</answer>", "non_numeric_answer"),  # Arabic-Indic 3: ASCII digits only
        ("<think>r</think><answer>" + "0" * 40 + "7</answer>", "non_numeric_answer"),  # over 32 characters
        ("<think>r</think><answer>12</answer>", "out_of_range"),
        ("<think>r</think><answer>9.5</answer>", "out_of_range"),  # round(9.5) == 10
        ("<think>r</think><answer>-1</answer>", "out_of_range"),
    ],
)
def test_rejections_name_their_reason(text: str, reason: str) -> None:
    parsed = parse_response(text)
    assert parsed.error == reason and reason in REASONS
    assert parsed.score is None and not parsed.parsed and not parsed.has_think


def test_rejections_keep_what_was_read() -> None:
    parsed = parse_response("<think>r</think><answer>3 or 4</answer>")
    assert (parsed.think, parsed.answer_text) == ("r", "3 or 4")
    assert parse_response("<think>r</think><answer>12</answer>").value == 12.0


@pytest.mark.parametrize("value", [None, 7, b"<answer>7</answer>", ["<answer>7</answer>"]])
def test_non_strings_are_no_answer(value: object) -> None:
    assert parse_response(value).error == "no_answer"  # type: ignore[arg-type]


@settings(max_examples=600, deadline=None)
@given(any_text)
def test_never_raises_and_the_fast_path_agrees_with_the_full_rules(text: str) -> None:
    parsed = parse_response(text)
    fast = answer._well_formed_envelope(text)
    assert fast is None or fast == answer._classify(text)  # the fast path never disagrees with the full rules
    envelope = answer.parse_envelope(text)
    assert envelope == answer._classify(text)
    assert (parsed.think, parsed.answer_text) == (envelope.think, envelope.answer_text)
    assert envelope.error is None or parsed.error == envelope.error
    assert isinstance(parsed, ParsedResponse)
    assert (parsed.error is None) == parsed.parsed
    assert parsed.error is None or parsed.error in REASONS
    if parsed.parsed:
        assert 0 <= parsed.score <= 9 and parsed.score == round(float(parsed.answer_text))


def _cpu_seconds(text: str, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(20):
            parse_response(text)
        best = min(best, time.process_time() - start)
    return best


@pytest.mark.parametrize(
    "unit",
    ["<answer>", "<think>", "<", "<answe", "</think>", "<answer>7</answer>", " ", "7"],
)
def test_time_grows_linearly_with_the_input(unit: str) -> None:
    """8x the text costs ~8x the time (a quadratic scan would cost 64x); the bound is loose so it cannot flake."""
    small = "<think>" + unit * (8192 // len(unit)) + "</think><answer>7</answer>"
    large = "<think>" + unit * (8 * 8192 // len(unit)) + "</think><answer>7</answer>"
    ratio = _cpu_seconds(large) / max(_cpu_seconds(small), 1e-6)
    assert ratio < 30, f"parse time grew {ratio:.0f}x for 8x the input"
