"""The demos' learning curve: the held-out set judged when GRPO begins and every ``eval_every`` GRPO steps."""

from __future__ import annotations

from typing import Any, Callable

Point = dict[str, Any]


def held_out_curve(curve: list[Point], eval_every: int, begin: Callable[[Any], Point],
                   evaluate: Callable[[Any], Point], describe: Callable[[Point], str]) -> Any:
    """A TRL ``TrainerCallback`` that appends ``{"step": …, **figures}`` to ``curve``.

    ``begin(model)`` gives the figures when GRPO starts (step 0, after the warm start), ``evaluate(model)`` those at
    every ``eval_every``-th GRPO step before the last (0: never); ``describe(point)`` is the line printed for each.
    The model is put back in training mode after each evaluation.
    """
    from transformers import TrainerCallback

    class HeldOutCurve(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
            curve.append({"step": 0, **begin(model)})
            model.train()

        def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
            step = state.global_step
            if eval_every > 0 and step % eval_every == 0 and step < state.max_steps:
                point = {"step": step, **evaluate(model)}
                curve.append(point)
                print(f"      held-out at step {step}: {describe(point)}", flush=True)
                model.train()

    return HeldOutCurve()


__all__ = ["held_out_curve"]
