"""TrainerCallbacks of the TRL engine's GRPO phase: the no-signal warning, the adapter at every checkpoint, the
measured cost of a validation pass.

- :class:`ZeroSignalWarning`: GRPO learns only from prompts whose samples score differently. When most groups have
  zero reward spread (``groups/flat``, else TRL's ``frac_reward_zero_std``; see :mod:`editjudge.train.trl_groups`)
  for ``zero_std_warn_steps`` logged steps in a row, it warns once, saying what to change for the case at hand (no
  reward at all, or all samples alike); groups alike at nearly the maximum reward have converged: a note instead.
- :class:`AdapterOnSave`: at each ``save_steps`` checkpoint, also ``<output_dir>/adapter`` (what the judge loads).
- :class:`ValidationCost`: after the first timed step, the estimated seconds of one validation pass.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

# "most groups": the share of prompt groups whose rewards are all equal above which GRPO has little to learn from
ZERO_STD_SHARE = 0.75
# groups scoring alike at this share of the maximum reward have converged rather than collapsed
CONVERGED_SHARE = 0.95


def _say(text: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(text, file=sys.stderr)


def max_reward(settings: Any) -> float:
    """The most a completion can earn under the run's reward options (format + accuracy weights)."""
    from editjudge.reward import trl_reward_weights

    return sum(trl_reward_weights(**dict(settings.reward_kwargs or {})))


def zero_signal_advice(reward_mean: float, settings: Any) -> str:
    """What to change when most groups' rewards are all equal, given the mean reward of those steps."""
    if reward_mean <= 0:
        return ("no completion earns any reward (no <answer>…</answer> in the generated tokens): teach the format "
                f"first with a warm start (--warm-start-steps 50, or trl.warm_start_steps), and give the answer room "
                f"(--max-completion-length, now {settings.max_completion_length} tokens)")
    return ("all samples of a prompt score alike: sample more varied answers (actor_rollout_ref.rollout.temperature, "
            f"now {settings.temperature}; trl.top_p, now {settings.top_p}), draw more of them "
            f"(actor_rollout_ref.rollout.n, now {settings.num_generations}), or check that the labels vary; "
            "a higher learning rate (actor_rollout_ref.actor.optim.lr) moves a collapsed policy sooner")


class ZeroSignalWarning(TrainerCallback):
    """Warn once when most GRPO groups give no gradient for several logged steps in a row."""

    def __init__(self, settings: Any, share: float = ZERO_STD_SHARE) -> None:
        self.settings, self.share = settings, share
        self.streak: list[tuple[float, float]] = []  # (share of flat groups, reward) of the current run of steps
        self.warned_at: int | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        logs = logs or {}
        frac = logs.get("groups/flat", logs.get("frac_reward_zero_std"))  # the exact count first (trl_groups)
        if frac is None or any(key.startswith("eval_") for key in logs):
            return
        if frac < self.share:
            self.streak = []
            return
        self.streak.append((float(frac), float(logs.get("reward", 0.0))))
        needed = max(1, int(self.settings.zero_std_warn_steps or 0))
        if self.warned_at is None and len(self.streak) >= needed:
            self.warned_at = state.global_step
            frac_mean = sum(f for f, _ in self.streak) / len(self.streak)
            reward_mean = sum(r for _, r in self.streak) / len(self.streak)
            ceiling = max_reward(self.settings)
            if reward_mean >= CONVERGED_SHARE * ceiling:  # alike because all right: nothing is wrong
                _say(f"note: GRPO has converged on the training prompts: over the last {len(self.streak)} logged "
                     f"steps {frac_mean:.0%} of prompt groups scored alike at reward {reward_mean:.3f} of "
                     f"{ceiling:g}; further steps teach little (check held-out accuracy with --val-files or "
                     "`editjudge eval`)")
                return
            _say(f"warning: GRPO has almost no signal: over the last {len(self.streak)} logged steps "
                 f"{frac_mean:.0%} of prompt groups had rewards all equal (reward {reward_mean:.3f}), so their "
                 f"advantages and gradients are zero. {zero_signal_advice(reward_mean, self.settings)}")


class AdapterOnSave(TrainerCallback):
    """At every checkpoint, write the adapter where the judge loads it (``<output_dir>/adapter``, atomically)."""

    def __init__(self, adapter_dir: Path, processor: Any, save: Callable[[Any, Any, Path], Path]) -> None:
        self.adapter_dir, self.processor, self.save = Path(adapter_dir), processor, save
        self.saved_steps: list[int] = []

    def on_save(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        if model is not None:
            self.save(model, self.processor, self.adapter_dir)
            self.saved_steps.append(state.global_step)


class ValidationCost(TrainerCallback):
    """After the first training step: the estimated seconds of a validation pass (completions × seconds each)."""

    def __init__(self, settings: Any, rows: int) -> None:
        self.settings, self.rows = settings, rows
        self.started: float | None = None
        self.estimate: float | None = None

    def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.estimate is None:
            self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.estimate is not None or self.started is None:
            return
        seconds = time.perf_counter() - self.started
        completions = self.rows * self.settings.num_generations
        self.estimate = seconds * completions / self.settings.batch_size
        _say(f"note: a training step took {seconds:.1f} s; a validation pass ({completions} completions) will take "
             f"about {self.estimate:.0f} s, every {self.settings.eval_steps} step(s)")


def engine_callbacks(settings: Any, adapter_dir: Path, processor: Any, save: Callable[[Any, Any, Path], Path],
                     *, validation_rows: int = 0) -> list[TrainerCallback]:
    """The callbacks every GRPO phase of the engine gets."""
    callbacks: list[TrainerCallback] = [ZeroSignalWarning(settings)]
    if settings.save_steps > 0:
        callbacks.append(AdapterOnSave(adapter_dir, processor, save))
    if validation_rows:
        callbacks.append(ValidationCost(settings, validation_rows))
    return callbacks


__all__ = ["AdapterOnSave", "ValidationCost", "ZERO_STD_SHARE", "ZeroSignalWarning", "engine_callbacks",
           "zero_signal_advice"]
