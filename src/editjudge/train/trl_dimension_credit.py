"""Per-dimension credit for the TRL engine: each dimension's digit learns from its own dimension's reward.

A dimension judge answers several digits in one completion (``following: 7`` / ``preservation: 3``), and GRPO gives
the whole completion one advantage, from one reward: the mean of the dimensions' ±2 credits. Every digit is then
pushed by every dimension's outcome — a right ``following`` digit is punished when ``preservation`` missed — so the
signal one dimension gets is diluted by the others' noise, and a dimension whose own group rewards are all equal is
still pushed around at random by the others (with two dimensions on the synthetic task one was learnt, the other
stayed at chance: docs/demo.md).

With ``trl.dimension_credit: true`` the advantage becomes per token (TRL's ``GRPOTrainer`` takes advantages of shape
``(B, T)`` from a subclass): the token that begins dimension *d*'s value gets the group-normalised advantage of
*d*'s own reward, ``format_weight · format + accuracy_weight · credit_d`` (the seed's reward had the set held *d*
alone); every other token keeps the sequence's advantage. With one dimension it is the sequence's advantage: nothing
changes. Normalisation follows the run's ``scale_rewards`` exactly as TRL's sequence advantage does. It is a
departure from the seed's one scalar reward per completion (token-level credit within the answer, as process
rewards give per step); the verl engine keeps the sequence advantage (its per-dimension accuracies are logged).

The rules (which token carries which dimension, each dimension's reward) are plain functions here, tested without a
model; :func:`token_advantages` is the one torch step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from editjudge.formats import DimensionsFormat, format_for_row
from editjudge.reward import RewardOptions, score_response


@dataclass(frozen=True)
class DimensionCredit:
    """One completion's dimensions: the token index that begins each one's value (None: not answered) and each
    one's own reward (the seed's reward had the set held that dimension alone)."""

    slots: tuple[int | None, ...]
    rewards: tuple[float, ...]


def completion_credit(token_texts: Sequence[str], text: str, ground_truth: Any, data_source: Any,
                      options: RewardOptions) -> DimensionCredit | None:
    """The credit of one completion (its decoded tokens and text) under its row's label; None for a row that is not
    a dimension judge's (pointwise, pairwise): it keeps the sequence's advantage."""
    fmt = format_for_row(data_source, ground_truth)
    if not isinstance(fmt, DimensionsFormat):
        return None
    parts = score_response(text, ground_truth, options, fmt)  # the reward's own terms, per dimension among them
    form = options.format_weight * parts["format"]
    rewards = tuple(form + options.accuracy_weight * parts[f"accuracy/{name}"] for name in fmt.names)
    slots: list[int | None] = [None] * len(fmt.names)
    if parts["parsed"]:  # only a well-formed answer's digits are credited: otherwise the sequence's advantage
        for i, slot in enumerate(fmt.answer_slots(list(token_texts))):
            slots[i] = slot.index
    return DimensionCredit(tuple(slots), rewards)


def token_advantages(sequence: Any, credits: Sequence[DimensionCredit | None], generations: int,
                     scale_rewards: str, length: int) -> Any:
    """Advantages of shape ``(B, length)``: ``sequence`` (B,) on every token, except each credited dimension's value
    token, which gets that dimension's reward normalised in its group (``scale_rewards``: ``group``, ``batch`` or
    ``none``, as TRL normalises the sequence's). Groups are ``generations`` consecutive completions."""
    import torch
    from trl.trainer.utils import nanstd

    out = sequence.detach().unsqueeze(1).repeat(1, length)
    dims = max((len(c.rewards) for c in credits if c is not None), default=0)
    if dims == 0:
        return out
    if len(credits) % generations:
        raise ValueError(f"{len(credits)} completions do not split into groups of {generations}")
    nan = float("nan")
    rewards = torch.tensor([list(c.rewards) + [nan] * (dims - len(c.rewards)) if c is not None else [nan] * dims
                            for c in credits], dtype=torch.float32)
    grouped = rewards.view(-1, generations, dims)
    mean = torch.nanmean(grouped, dim=1, keepdim=True)
    centred = (grouped - mean).view(-1, dims)
    if scale_rewards == "group":
        centred = centred / (nanstd(grouped, dim=1, keepdim=True).expand_as(grouped).reshape(-1, dims) + 1e-4)
    elif scale_rewards == "batch":
        centred = centred / (nanstd(rewards, dim=0, keepdim=True) + 1e-4)
    elif scale_rewards != "none":
        raise ValueError(f"scale_rewards must be 'group', 'batch' or 'none', got {scale_rewards!r}")
    centred = torch.nan_to_num(centred, nan=0.0).to(out.dtype).to(out.device)
    for row, credit in enumerate(credits):
        if credit is None:
            continue
        for d, index in enumerate(credit.slots):
            if index is not None and index < length:
                out[row, index] = centred[row, d]
    return out


__all__ = ["DimensionCredit", "completion_credit", "token_advantages"]
