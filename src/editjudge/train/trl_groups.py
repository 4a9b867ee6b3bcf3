"""GRPO's prompt groups in the TRL engine: how many carry no signal each step, and DAPO's dynamic sampling.

GRPO learns from a prompt only when its sampled completions score differently: a group whose rewards are all equal
has zero advantage for every completion and moves nothing. :class:`GroupAwareGRPOTrainer` is TRL's ``GRPOTrainer``
with two additions, both on TRL's own step that generates and scores a batch (``_generate_and_score_completions``,
the method TRL's GRPO variants override too):

- every step it logs what the flat groups are: ``groups/flat`` (their share), split into ``groups/flat_stuck`` (all
  completions alike **below** the best reward: GRPO is stuck there) and ``groups/flat_solved`` (all at the best
  reward: nothing left to learn). TRL's own ``frac_reward_zero_std`` tests ``isclose(std, 0)`` on float32 rewards,
  which misses flat groups whose equal rewards are not exact in binary (a graded reward's 1⅔: std 1.3e-7 > the 1e-8
  tolerance), so it under-counts them; ``groups/flat`` compares the rewards themselves (:func:`group_is_flat`);
- with :class:`DynamicSampling` (DAPO, Yu et al. 2025, arXiv:2503.14476 §3.2; verl's ``algorithm.filter_groups``) it
  draws extra prompts into the step's generation, keeps the groups whose rewards differ and drops flat ones until the
  batch has its usual size (flat groups fill it only when too few differ), logging ``groups/flat_trained`` (flat
  share of what is trained on) and ``groups/extra_prompts``. How many extra prompts: enough to replace the flat
  groups at the previous step's flat share, at most ``max_extra`` × the batch's prompts (one generation call per
  step: no second round, so the cost is bounded and known).

The pure parts (:func:`group_stats`, :func:`extra_prompt_count`, :func:`select_groups`) hold the rules and are tested
without a model.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from editjudge.reward import FLAT_ATOL, group_is_flat

FILTER_METRICS = ("reward", "format", "accuracy")  # what a group must vary in to be kept


@dataclass(frozen=True)
class GroupStats:
    """The groups of one step: how many, which are flat (all rewards equal), and whether flat below or at the best."""

    flat: tuple[bool, ...]
    flat_stuck: float  # share of groups flat below the best reward
    flat_solved: float  # share of groups flat at the best reward

    @property
    def flat_share(self) -> float:
        return sum(self.flat) / len(self.flat) if self.flat else 0.0


def group_stats(rewards: Sequence[float], generations: int, max_reward: float,
                metric: Sequence[float] | None = None) -> GroupStats:
    """Statistics of consecutive groups of ``generations`` rewards (TRL's order: a prompt's completions adjoin).

    ``metric`` (default: the rewards) is what a group must vary in to count as not flat (DAPO's filter metric);
    stuck/solved compare a flat group's reward with ``max_reward``. NaN rewards (unscorable completions) are ignored.
    """
    if generations < 1 or len(rewards) % generations:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {generations}")
    values = list(rewards if metric is None else metric)
    if len(values) != len(rewards):
        raise ValueError("the filter metric needs one value per completion")
    flat, stuck, solved = [], 0, 0
    for start in range(0, len(rewards), generations):
        is_flat = group_is_flat(values[start:start + generations])
        flat.append(is_flat)
        if is_flat:
            scored = [r for r in rewards[start:start + generations] if not math.isnan(r)]
            if scored and min(scored) >= max_reward - FLAT_ATOL:
                solved += 1
            else:
                stuck += 1
    count = max(1, len(flat))
    return GroupStats(tuple(flat), stuck / count, solved / count)


@dataclass(frozen=True)
class DynamicSampling:
    """DAPO's dynamic sampling for the TRL engine (off unless given).

    ``max_extra``: at most this many extra prompts per step, as a multiple of the step's prompts (1.0: the
    generation of a step costs up to twice as much). ``metric``: what a kept group must vary in — ``reward`` (the
    weighted sum), or one reward term, ``format`` / ``accuracy`` (verl's ``algorithm.filter_groups.metric``).
    """

    max_extra: float = 1.0
    metric: str = "reward"

    def __post_init__(self) -> None:
        if isinstance(self.max_extra, bool) or not isinstance(self.max_extra, int | float) \
                or not math.isfinite(self.max_extra) or self.max_extra <= 0:
            raise ValueError(f"trl.filter_groups_max_extra must be a number > 0, got {self.max_extra!r}")
        if self.metric not in FILTER_METRICS:
            raise ValueError(f"algorithm.filter_groups.metric={self.metric!r}: the TRL engine filters on one of "
                             f"{list(FILTER_METRICS)}")


def extra_prompt_count(prompts: int, flat_share: float | None, max_extra: float) -> int:
    """Extra prompts to draw so that, at ``flat_share`` (the previous step's; None at the first step: 1/2), about
    ``prompts`` groups differ: ``prompts · r / (1 − r)``, at most ``max_extra · prompts``."""
    cap = math.ceil(max_extra * prompts)
    share = 0.5 if flat_share is None else min(max(flat_share, 0.0), 1.0)
    if share >= 1.0:
        return cap
    return min(cap, math.ceil(prompts * share / (1.0 - share) - 1e-9))


def select_groups(flat: Sequence[bool], wanted: int) -> list[int]:
    """``wanted`` group indices: every group that differs, in order, then flat groups (in order) if too few differ."""
    informative = [i for i, f in enumerate(flat) if not f]
    chosen = informative[:wanted]
    if len(chosen) < wanted:
        chosen += [i for i, f in enumerate(flat) if f][: wanted - len(chosen)]
    return chosen


def take_rows(batch: dict[str, Any], rows: Sequence[int]) -> dict[str, Any]:
    """The completions ``rows`` of TRL's generated batch (tensors and lists per completion, images per completion),
    with ``num_items_in_batch`` (the loss's token count) recomputed for them."""
    import torch
    from trl.trainer.utils import split_pixel_values_by_grid, unsplit_pixel_values_by_grid

    split = split_pixel_values_by_grid(batch)
    total = len(split["completion_ids"])
    index = torch.tensor(list(rows), dtype=torch.long, device=split["completion_ids"].device)
    out: dict[str, Any] = {}
    for key, value in split.items():
        if key == "num_items_in_batch" or value is None:
            out[key] = value
        elif isinstance(value, torch.Tensor) and value.ndim == 0:
            out[key] = value
        elif isinstance(value, torch.Tensor | list):
            if len(value) != total:
                raise RuntimeError(f"dynamic sampling cannot select rows of {key!r}: {len(value)} entries for "
                                   f"{total} completions (a TRL version this engine does not know?)")
            out[key] = value[index] if isinstance(value, torch.Tensor) else [value[i] for i in rows]
        else:
            out[key] = value
    mask = out["completion_mask"] if out.get("tool_mask") is None else out["completion_mask"] * out["tool_mask"]
    if batch.get("num_items_in_batch") is not None:
        out["num_items_in_batch"] = mask.sum().to(batch["num_items_in_batch"].dtype)
    return unsplit_pixel_values_by_grid(out)


def dynamic_sampling(settings: Any) -> DynamicSampling | None:
    """The run's dynamic sampling (``algorithm.filter_groups.*`` / ``trl.filter_groups_*``), or None when off."""
    if not settings.filter_groups:
        return None
    return DynamicSampling(max_extra=settings.filter_groups_max_extra, metric=settings.filter_groups_metric)


def trainer_kwargs(settings: Any) -> dict[str, Any]:
    """What :class:`GroupAwareGRPOTrainer` takes beyond ``GRPOTrainer``'s arguments, from the run's settings."""
    from editjudge.reward import reward_options, trl_reward_weights

    kwargs = dict(settings.reward_kwargs or {})
    return {"max_reward": sum(trl_reward_weights(**kwargs)), "dynamic_sampling": dynamic_sampling(settings),
            "dimension_credit": reward_options(**kwargs) if settings.dimension_credit else None}


def trainer_class():
    """:class:`GroupAwareGRPOTrainer` (built on first use: importing this module does not import TRL)."""
    global _TRAINER
    if _TRAINER is None:
        _TRAINER = _build_trainer_class()
    return _TRAINER


_TRAINER: Any = None


def _build_trainer_class():
    import torch
    from trl import GRPOTrainer

    class GroupAwareGRPOTrainer(GRPOTrainer):
        """TRL's GRPOTrainer, logging flat groups every step; with ``dynamic_sampling``, DAPO's group filter; with
        ``dimension_credit`` (the run's reward options), per-dimension advantages (:mod:`.trl_dimension_credit`)."""

        def __init__(self, *args: Any, max_reward: float, dynamic_sampling: DynamicSampling | None = None,
                     dimension_credit: Any = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.max_reward = float(max_reward)
            self.dynamic_sampling = dynamic_sampling
            self.dimension_credit = dimension_credit
            for name, on in (("dynamic sampling (algorithm.filter_groups.enable)", dynamic_sampling),
                             ("per-dimension credit (trl.dimension_credit)", dimension_credit)):
                if on is not None and self.accelerator.num_processes > 1:
                    raise ValueError(f"{name} runs in one process; the TRL engine is single-process (use --engine "
                                     "verl for several GPUs)")
            self._scored: torch.Tensor | None = None  # rewards per function of the last scored batch
            self._flat_share: float | None = None  # the previous training step's, for the extra-prompt estimate
            self._extra_order: list[int] = []
            self._extra_rng = random.Random(self.args.seed)

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # noqa: ANN001
            scored = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            self._scored = scored
            return scored

        def _extra_inputs(self, generations: int, count: int) -> list[dict[str, Any]]:
            """``count`` prompts from the training set (a seeded shuffled cycle), each ``generations`` times."""
            out: list[dict[str, Any]] = []
            for _ in range(count):
                if not self._extra_order:
                    self._extra_order = list(range(len(self.train_dataset)))
                    self._extra_rng.shuffle(self._extra_order)
                example = self.train_dataset[self._extra_order.pop()]
                out += [example] * generations
            return out

        def _generate_and_score_completions(self, inputs):  # noqa: ANN001
            mode = "train" if self.model.training else "eval"
            generations = self.num_generations if mode == "train" else self.num_generations_eval
            wanted = len(inputs) // generations
            extra: list[dict[str, Any]] = []
            if mode == "train" and self.dynamic_sampling is not None:
                count = extra_prompt_count(wanted, self._flat_share, self.dynamic_sampling.max_extra)
                extra = self._extra_inputs(generations, count)
            everything = list(inputs) + extra
            output = super()._generate_and_score_completions(everything)
            if mode == "train" and self.dimension_credit is not None:
                output["advantages"] = self._dimension_advantages(everything, output, generations)
            scored = self._scored.detach().float().cpu()
            weights = self.reward_weights.detach().float().cpu()
            rewards = (scored * weights).nansum(dim=1)
            rewards[torch.isnan(scored).all(dim=1)] = float("nan")
            metric = None
            if self.dynamic_sampling is not None and self.dynamic_sampling.metric != "reward":
                metric = scored[:, self.reward_func_names.index(self.dynamic_sampling.metric)].tolist()
            stats = group_stats(rewards.tolist(), generations, self.max_reward, metric)
            self._metrics[mode]["groups/flat"].append(stats.flat_share)
            self._metrics[mode]["groups/flat_stuck"].append(stats.flat_stuck)
            self._metrics[mode]["groups/flat_solved"].append(stats.flat_solved)
            if mode != "train" or self.dynamic_sampling is None:
                return output
            self._flat_share = stats.flat_share
            keep = select_groups(stats.flat, wanted)
            self._metrics[mode]["groups/extra_prompts"].append(float(len(extra) // generations))
            self._metrics[mode]["groups/flat_trained"].append(sum(stats.flat[g] for g in keep) / max(1, wanted))
            rows = [g * generations + k for g in keep for k in range(generations)]
            return take_rows(output, rows)

        def _dimension_advantages(self, inputs, output, generations: int):  # noqa: ANN001
            """Per-token advantages: each dimension's value token from its own reward (:mod:`.trl_dimension_credit`)."""
            from editjudge.train.trl_dimension_credit import completion_credit, token_advantages

            tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
            ids, mask = output["completion_ids"], output["completion_mask"]
            credits = []
            for row, example in enumerate(inputs):
                kept = ids[row][mask[row].bool()].tolist()
                pieces = tokenizer.batch_decode([[t] for t in kept], skip_special_tokens=False)
                text = tokenizer.decode(kept, skip_special_tokens=True)
                credits.append(completion_credit(pieces, text, example.get("ground_truth"), example.get("data_source"),
                                                 self.dimension_credit))
            answered = [c for c in credits if c is not None]
            if answered:
                self._metrics["train"]["dimensions/credited"].append(
                    sum(all(s is not None for s in c.slots) for c in answered) / len(answered))
            return token_advantages(output["advantages"], credits, generations, str(self.scale_rewards), ids.shape[1])

    return GroupAwareGRPOTrainer


__all__ = ["DynamicSampling", "FILTER_METRICS", "GroupStats", "dynamic_sampling", "extra_prompt_count", "group_stats",
           "select_groups", "take_rows", "trainer_class", "trainer_kwargs"]
