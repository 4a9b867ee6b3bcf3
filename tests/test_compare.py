"""Judge.compare and the tournaments: preference + p(A), p(B), p(tie), both orders and position consistency,
knockout / round-robin best-of-N with their cost in comparisons, and multi-source pairs."""

from __future__ import annotations

import math

import pytest

from _pair_judges import OracleBackend, answer, write_reds
from editjudge import prompts
from editjudge.judge import Judge
from editjudge.judge.backends import ItemOutput
from editjudge.judge.comparison import Comparison, both_orders, combine_comparison, position_consistency
from editjudge.judge.tournament import bradley_terry, comparisons_needed, knockout, round_robin

INSTRUCTION = "make the square red"


def _judge(backend, **options) -> Judge:
    return Judge.from_backend(backend, format="pairwise", template="demo", **options)


def test_compare_reads_the_preference_and_the_answer_probabilities(tmp_path) -> None:
    source, (blue, half, red) = write_reds(tmp_path, [0.0, 0.5, 1.0])
    judge = _judge(OracleBackend())
    c = judge.compare(source, red, blue, INSTRUCTION)
    assert c.preference == "A" and c.ok and c.error is None
    assert c.probabilities == pytest.approx({"A": 0.8, "B": 0.1, "tie": 0.1}) and c.margin == pytest.approx(0.7)
    assert judge.compare(source, blue, red, INSTRUCTION).preference == "B"
    assert judge.compare(source, half, half, INSTRUCTION).preference == "tie"
    request = judge.backend.requests[0]
    assert len(request.images) == 3 and request.messages[1]["content"].count(prompts.IMAGE_PLACEHOLDER) == 3


def test_both_orders_combine_and_catch_a_judge_that_always_says_a(tmp_path) -> None:
    source, (blue, red) = write_reds(tmp_path, [0.0, 1.0])
    fair = _judge(OracleBackend()).compare(source, red, blue, INSTRUCTION, both_orders=True)
    assert fair.preference == "A" and fair.consistent is True and fair.swapped.preference == "B"
    biased = _judge(OracleBackend(bias_a=True))
    c = biased.compare(source, red, blue, INSTRUCTION, both_orders=True)
    # the biased judge says A both times: the orders disagree; the mean probabilities tie A and B, and tie
    # (0.1) loses to them: the combination keeps the first maximum, A (p = 0.45)
    assert c.consistent is False and c.probabilities == pytest.approx({"A": 0.45, "B": 0.45, "tie": 0.1})
    many = biased.compare_many([(source, red, blue, INSTRUCTION), (source, blue, red, INSTRUCTION)], both_orders=True)
    assert position_consistency(many) == {"rate": 0.0, "n": 2, "n_undecided": 0}
    assert position_consistency([fair]) == {"rate": 1.0, "n": 1, "n_undecided": 0}


def test_disagreeing_orders_without_probabilities_are_a_tie() -> None:
    plain = [Generation_text("A")]
    first, second = combine_comparison(plain), combine_comparison(plain)
    assert both_orders(first, second).preference == "tie"
    failed = Comparison(error="backend_error: down")
    assert both_orders(first, failed).preference == "A" and both_orders(first, failed).consistent is None
    assert both_orders(failed, first).preference == "B"  # the second order's A is the first's B


def Generation_text(choice: str):  # noqa: N802 - a tiny factory
    from editjudge.judge.result import Generation

    return Generation(text=f"<think>r</think><answer>{choice}</answer>")


def test_avg_at_k_votes_and_bad_answers_are_named(tmp_path) -> None:
    votes = [answer("A"), answer("B"), answer("A"), Generation_text("C")]
    c = combine_comparison(votes)
    assert c.preference == "A" and c.preferences == ("A", "B", "A", None) and len(c.samples) == 4
    bad = combine_comparison([Generation_text("A or B")])
    assert bad.preference is None and bad.error == "non_choice_answer" and not bad.is_failure


def test_a_bad_pair_gets_its_reason_and_the_others_are_judged(tmp_path) -> None:
    source, (blue, red) = write_reds(tmp_path, [0.0, 1.0])
    judge = _judge(OracleBackend())
    out = judge.compare_many([(source, red, blue, INSTRUCTION), (source, red, tmp_path / "nope.png", INSTRUCTION),
                              {"source": source, "a": blue}], both_orders=True)
    assert out[0].preference == "A"
    assert out[1].is_failure and "candidate B image" in out[1].error and "no such file" in out[1].error
    assert out[2].error.startswith("input_error") and "lacks b, instruction" in out[2].error


def test_the_verbs_refuse_the_other_kind_of_judge(tmp_path) -> None:
    source, (blue, red) = write_reds(tmp_path, [0.0, 1.0])
    with pytest.raises(ValueError, match="compare needs a pairwise judge"):
        Judge.from_backend(OracleBackend()).compare(source, red, blue, INSTRUCTION)
    with pytest.raises(ValueError, match="a pairwise judge compares two candidate edits"):
        _judge(OracleBackend()).score(source, red, INSTRUCTION)


def test_several_source_images_go_first_in_order(tmp_path) -> None:
    source, (blue, red) = write_reds(tmp_path, [0.0, 1.0])
    judge = _judge(OracleBackend())
    c = judge.compare([source, blue], red, blue, "put the red square from image 2 into image 1")
    assert c.preference == "A"
    request = judge.backend.requests[-1]
    user = request.messages[1]["content"]
    assert len(request.images) == 4 and "input image 1: <image>\ninput image 2: <image>\nedit A:" in user
    many = judge.compare([source] * 15, red, blue, INSTRUCTION)
    assert many.is_failure and "too_many_images" in many.error and "at most 16" in many.error


# ---------------------------------------------------------------------------------------------- tournaments
LEVELS = [0.2, 0.9, 0.0, 0.5, 1.0, 0.7, 0.35]


@pytest.mark.parametrize("mode, aggregate", [("knockout", "bt"), ("round-robin", "bt"), ("round-robin", "wins")])
@pytest.mark.parametrize("both", [False, True])
def test_tournaments_find_the_best_and_count_their_comparisons(tmp_path, mode, aggregate, both) -> None:
    source, candidates = write_reds(tmp_path, LEVELS)
    backend = OracleBackend(tie_margin=1.0)
    result = _judge(backend).tournament(source, candidates, INSTRUCTION, mode=mode, aggregate=aggregate,
                                        both_orders=both)
    n = len(LEVELS)
    assert result.best == str(candidates[LEVELS.index(1.0)])
    assert result.comparisons == comparisons_needed(n, mode, both) == len(backend.requests)
    assert result.comparisons == (n - 1 if mode == "knockout" else n * (n - 1) // 2) * (2 if both else 1)
    if mode == "round-robin":  # every pair judged: the whole order is the true one
        assert [LEVELS[i] for i in result.order] == sorted(LEVELS, reverse=True)
    data = result.to_dict()
    assert data["comparisons"] == result.comparisons and data["candidates"][0]["rank"] == 1
    assert data["position_consistency"] == (1.0 if both else None)
    # A and B alternate by a seeded coin: both positions are used
    shown_first = {m.shown[0] == m.first for m in result.matches}
    assert len(result.matches) < 3 or shown_first == {True, False}


def test_an_unreadable_candidate_is_ranked_last_and_never_compared(tmp_path) -> None:
    source, candidates = write_reds(tmp_path, [0.3, 1.0, 0.6])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    backend = OracleBackend()
    result = _judge(backend).tournament(source, [candidates[0], broken, *candidates[1:]], INSTRUCTION,
                                        mode="round-robin")
    assert result.best == str(candidates[1]) and result.order[-1] == 1 and result.comparisons == 3
    assert "not_an_image" in result.errors[1] and result.to_dict()["candidates"][-1]["points"] is None
    single = _judge(OracleBackend()).tournament(source, candidates[:1], INSTRUCTION)
    assert single.best == str(candidates[0]) and single.comparisons == 0


def test_knockout_byes_and_ties_are_deterministic() -> None:
    def always(choice):
        return lambda shown: [combine_comparison([answer(choice)]) for _ in shown]

    matches, order, reached = knockout(always("tie"), 5)
    assert len(matches) == 4 and order[0] == 0  # every tie at equal p(A), p(B) goes to the earlier candidate
    assert [m.round for m in matches] == [1, 1, 2, 3]
    again = knockout(always("tie"), 5)
    assert [m.shown for m in again[0]] == [m.shown for m in matches]  # the seeded orders repeat


def test_bradley_terry_orders_by_strength_and_stays_finite() -> None:
    def by_index(shown):  # the lower index always wins
        return [combine_comparison([answer("A" if a < b else "B")]) for a, b in shown]

    matches, order, points = round_robin(by_index, 4, aggregate="bt")
    assert order == [0, 1, 2, 3] and all(math.isfinite(p) for p in points) and points[0] > points[1] > points[3]
    assert bradley_terry(3, []) == [0.0, 0.0, 0.0]
    assert round_robin(by_index, 4, aggregate="wins")[2] == [3.0, 2.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="unknown aggregate"):
        round_robin(by_index, 3, aggregate="elo")


def test_a_failed_backend_leaves_no_best(tmp_path) -> None:
    class Down(OracleBackend):
        def generate(self, requests, sampling):
            return [ItemOutput(error="backend_error: down") for _ in requests]

    source, candidates = write_reds(tmp_path, [0.1, 0.9])
    result = _judge(Down()).tournament(source, candidates, INSTRUCTION)
    assert result.best is None and result.matches[0].comparison.is_failure
