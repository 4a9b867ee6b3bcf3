"""Per-dimension credit (``trl.dimension_credit``): which token carries which dimension, each dimension's reward,
and the per-token advantages handed to TRL's loss."""

from __future__ import annotations

import json
import math

import pytest

from editjudge.formats import DIMENSIONS_DATA_SOURCE
from editjudge.reward import reward_options
from editjudge.train.trl_dimension_credit import DimensionCredit, completion_credit, token_advantages

LABEL = json.dumps({"following": 7, "preservation": 1}, separators=(",", ":"))
# the tiny tokenizer's pieces of a two-dimension answer (tags are added tokens; digits single tokens)
PIECES = ["<think>", "ok", "</think>", "<answer>", "following", ":", " ", "7", "\n", "pres", "ervation", ":", " ", "3",
          "</answer>", "<|im_end|>"]
TEXT = "".join(PIECES[:-1])


def test_each_dimension_is_credited_on_its_own_digit_with_its_own_reward() -> None:
    credit = completion_credit(PIECES, TEXT, LABEL, DIMENSIONS_DATA_SOURCE, reward_options())
    assert credit is not None
    assert credit.slots == (7, 13)  # the tokens "7" and "3"
    # format 1 + following's ±2 hit (7 vs 7) = 2; format 1 + preservation's miss (3 vs 1 is within 2: a hit) = 2
    assert credit.rewards == (2.0, 2.0)
    missed = completion_credit(PIECES[:13] + ["9"] + PIECES[14:], TEXT.replace(": 3", ": 9"), LABEL,
                               DIMENSIONS_DATA_SOURCE, reward_options())
    assert missed.rewards == (2.0, 1.0)  # only preservation missed (9 vs 1)
    graded = completion_credit(PIECES, TEXT, LABEL, DIMENSIONS_DATA_SOURCE, reward_options(graded=True))
    assert graded.rewards == pytest.approx((2.0, 1.0 + 1 / 3))  # exact: full credit; 2 away: 1 - 2/3


def test_a_malformed_answer_credits_no_digit_and_other_formats_keep_the_sequence_advantage() -> None:
    broken = completion_credit(PIECES, TEXT.replace("preservation", "quality"), LABEL, DIMENSIONS_DATA_SOURCE,
                               reward_options())
    assert broken.slots == (None, None) and broken.rewards == (0.0, 0.0)  # as the sequence reward: no format credit
    assert completion_credit(["<answer>", "7", "</answer>"], "<think>x</think><answer>7</answer>", "7",
                             "tts_edit_score", reward_options()) is None
    unlabelled = completion_credit(PIECES, TEXT, '{"following":7,"preservation":null}', DIMENSIONS_DATA_SOURCE,
                                   reward_options())
    assert unlabelled.rewards == (2.0, 1.0)  # an unlabelled dimension earns no accuracy term


def test_token_advantages_put_each_dimensions_group_advantage_on_its_digit() -> None:
    torch = pytest.importorskip("torch")
    sequence = torch.tensor([0.5, -0.5, 1.0, -1.0])
    credits = [DimensionCredit((1, 3), (2.0, 1.0)), DimensionCredit((1, 3), (1.0, 1.0)),
               DimensionCredit((0, None), (2.0, 2.0)), None]
    out = token_advantages(sequence, credits, generations=2, scale_rewards="none", length=5)
    assert out.shape == (4, 5)
    # group 1: following 2 vs 1 -> +0.5 / -0.5; preservation flat -> 0 on its digit; the rest keeps the sequence's
    assert out[0].tolist() == [0.5, 0.5, 0.5, 0.0, 0.5]
    assert out[1].tolist() == [-0.5, -0.5, -0.5, 0.0, -0.5]
    # group 2: the second completion is not a dimension row (NaN rewards): the first is alone in its group -> 0
    assert out[2].tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert out[3].tolist() == [-1.0] * 5
    scaled = token_advantages(sequence, credits, generations=2, scale_rewards="group", length=5)
    assert scaled[0, 1].item() == pytest.approx(0.5 / (math.sqrt(0.5) + 1e-4))  # TRL's (r - mean) / (std + 1e-4)
    with pytest.raises(ValueError, match="scale_rewards"):
        token_advantages(sequence, credits, 2, "median", 5)
    with pytest.raises(ValueError, match="groups of 3"):
        token_advantages(sequence, credits, 3, "none", 5)


def test_one_dimension_credit_equals_the_sequence_advantage() -> None:
    """With one dimension, its reward is the sequence's: the digit's advantage is the sequence's (nothing changes)."""
    torch = pytest.importorskip("torch")
    rewards = [2.0, 1.0, 1.5, 1.0]
    mean = sum(rewards) / 4
    std = torch.tensor(rewards).std().item()
    sequence = torch.tensor([(r - mean) / (std + 1e-4) for r in rewards])
    credits = [DimensionCredit((2,), (r,)) for r in rewards]
    out = token_advantages(sequence, credits, generations=4, scale_rewards="group", length=4)
    assert torch.allclose(out, sequence.unsqueeze(1).expand(4, 4), atol=1e-6)
