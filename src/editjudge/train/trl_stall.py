"""Why a GRPO run stalled, with the fix: read from the step records (``metrics.jsonl``), as the pre-flight reads a
config.

A GRPO step learns only from prompt groups whose samples score differently. Two figures say when that stops:

- ``frac_reward_zero_std`` (TRL): the share of groups whose rewards are all equal — their advantages are zero;
- ``entropy`` (TRL): the policy's mean token entropy — near 0, every sample of a prompt is the same answer, so
  every group ties (entropy collapse).

:func:`diagnose` looks at the last :data:`WINDOW` logged steps and returns ``(problem, fix)`` pairs; ``editjudge
train --engine trl`` prints them when the run ends (``✗ problem`` / ``fix: …``, as the pre-flight does).
:class:`StallWatch` says the entropy collapse while the run goes on (the zero-variance streak has its own warning in
:mod:`editjudge.train.trl_callbacks`). Groups that tie because every answer earns the maximum have converged: that
gets a note, not a fix.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback

from editjudge.train.trl_callbacks import CONVERGED_SHARE, max_reward, zero_signal_advice

WINDOW = 10  # logged GRPO steps the diagnosis reads (all of them when fewer)
ZERO_STD_STALL = 0.5  # share of all-equal groups above which half the batch or more teaches nothing
ENTROPY_FLOOR = 0.05  # nats per token: below it, samples of a prompt are (nearly) always the same answer
ENTROPY_WARN_STEPS = 3


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _grpo(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("phase") == "grpo" and "reward_mean" in r]


def entropy_fix(settings: Any) -> str:
    return (f"sample wider (actor_rollout_ref.rollout.temperature, now {settings.temperature}; trl.top_p, now "
            f"{settings.top_p}), take smaller steps (actor_rollout_ref.actor.optim.lr, now {settings.learning_rate:g}), "
            f"or keep the policy near where it started with a KL term (trl.beta=0.04, now {settings.beta:g})")


def diagnose(records: Sequence[dict[str, Any]], settings: Any, window: int = WINDOW) -> list[tuple[str, str]]:
    """``(problem, fix)`` for each reason the run's last ``window`` GRPO steps stopped teaching; empty when none.

    A run whose groups tie at (nearly) the maximum reward has converged: one ``(note, "")`` pair says so."""
    steps = _grpo(records)
    if not steps:
        return []
    last = steps[-window:]
    ceiling = max_reward(settings)
    reward = _mean([float(r["reward_mean"]) for r in last]) or 0.0
    shares = [float(r["frac_reward_zero_std"]) for r in last if r.get("frac_reward_zero_std") is not None]
    share = _mean(shares)
    span = f"the last {len(last)} logged step(s) (steps {last[0]['step']}-{last[-1]['step']})"
    if reward >= CONVERGED_SHARE * ceiling:
        if share is not None and share >= ZERO_STD_STALL:
            return [(f"note: converged on the training prompts: over {span} mean reward {reward:.3f} of "
                     f"{ceiling:g} and {share:.0%} of groups tie at it; check held-out accuracy (`editjudge eval`)", "")]
        return []
    found: list[tuple[str, str]] = []
    entropies = [float(r["entropy"]) for r in last if r.get("entropy") is not None]
    entropy = _mean(entropies)
    if entropy is not None and entropy < ENTROPY_FLOOR:
        first = next((float(r["entropy"]) for r in steps if r.get("entropy") is not None), entropy)
        found.append((f"entropy collapse: the policy's mean token entropy is {entropy:.3g} over {span} (step "
                      f"{steps[0]['step']}: {first:.3g}): the samples of a prompt are all but the same answer, so "
                      "GRPO groups tie and teach nothing", entropy_fix(settings)))
    if share is not None and share >= ZERO_STD_STALL:
        found.append((f"{share:.0%} of prompt groups had all-equal rewards over {span} (mean reward {reward:.3f} of "
                      f"{ceiling:g}): their advantages are zero, so most of each batch gives no gradient",
                      zero_signal_advice(reward, settings)))
    if found:
        start = _mean([float(r["reward_mean"]) for r in steps[:window]]) or 0.0
        found.insert(0, (f"GRPO stalled: mean reward {start:.3f} over the first {min(window, len(steps))} step(s), "
                         f"{reward:.3f} over the last {len(last)}", "the reasons and their fixes follow"))
    return found


def format_findings(findings: Sequence[tuple[str, str]]) -> str:
    """The pre-flight's format: ``✗ problem`` / ``fix: …`` (a note on its own line)."""
    lines = []
    for problem, fix in findings:
        lines.append(problem if not fix else f"  ✗ {problem}\n    fix: {fix}")
    return "\n".join(lines)


class StallWatch(TrainerCallback):
    """Warn once, while the run goes on, when the entropy stays under :data:`ENTROPY_FLOOR` for
    :data:`ENTROPY_WARN_STEPS` logged steps without the reward being near its maximum."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.streak = 0
        self.warned_at: int | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        logs = logs or {}
        entropy = logs.get("entropy")
        if entropy is None or any(key.startswith("eval_") for key in logs) or self.warned_at is not None:
            return
        converged = float(logs.get("reward", 0.0)) >= CONVERGED_SHARE * max_reward(self.settings)
        self.streak = self.streak + 1 if float(entropy) < ENTROPY_FLOOR and not converged else 0
        if self.streak >= ENTROPY_WARN_STEPS:
            self.warned_at = state.global_step
            from tqdm.auto import tqdm

            tqdm.write(f"warning: entropy collapse: the policy's token entropy has been under {ENTROPY_FLOOR} for "
                       f"{self.streak} logged steps (now {float(entropy):.3g}, reward {float(logs.get('reward', 0)):.3f})"
                       f": samples of a prompt are all but identical, so GRPO has little to compare. "
                       f"{entropy_fix(self.settings)}", file=sys.stderr)


__all__ = ["ENTROPY_FLOOR", "StallWatch", "WINDOW", "ZERO_STD_STALL", "diagnose", "format_findings"]
