"""Pre-flight, batch seam: the batch splits verl checks only on the GPUs, and one joint fix that itself passes.

verl's ``validate_config`` (run as ``main_ppo`` runs it) is here too: a suggested fix is only printed after the
config with it passes both.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import math
from typing import Any


def lora_rank(cfg: Any) -> int:
    """The LoRA rank verl will use (``model.lora.rank`` wins over ``model.lora_rank``, as in verl)."""
    model = cfg.actor_rollout_ref.model
    rank = int((model.get("lora") or {}).get("rank", 0) or 0)
    return rank if rank > 0 else int(model.get("lora_rank", 0) or 0)


def _validate_error(cfg: Any) -> str | None:
    """verl's ``validate_config`` as ``main_ppo`` calls it: ``None`` when it passes, else its message on one line.

    With a vLLM rollout and LoRA, verl's check imports vllm to round the rank; without vllm (a laptop) a copy with
    rank 0 is validated and :func:`check_verl_config` checks the rank itself.
    """
    from omegaconf import open_dict

    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    if lora_rank(cfg) > 0 and cfg.actor_rollout_ref.rollout.name == "vllm" and importlib.util.find_spec("vllm") is None:
        cfg = copy.deepcopy(cfg)
        with open_dict(cfg):
            cfg.actor_rollout_ref.model.lora_rank = 0
            if cfg.actor_rollout_ref.model.get("lora") is not None:
                cfg.actor_rollout_ref.model.lora.rank = 0
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    except Exception as exc:
        return " ".join(str(exc).split())
    return None


def passes_with(cfg: Any, changes: dict[str, int]) -> bool:
    """Whether ``cfg`` with ``changes`` passes ``validate_config`` and :func:`batch_problems`."""
    from omegaconf import OmegaConf

    trial = copy.deepcopy(cfg)
    for key, value in changes.items():
        OmegaConf.update(trial, key, value)
    return _validate_error(trial) is None and not batch_problems(trial)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _largest_divisor_at_most(number: int, limit: int) -> int:
    return max(d for d in range(1, max(1, min(number, limit)) + 1) if number % d == 0)


def batch_problems(cfg: Any) -> list[tuple[str, str]]:
    """Runtime batch constraints verl checks only on the GPUs (``validate_config`` covers the rest)."""
    arr = cfg.actor_rollout_ref
    if arr.actor.get("use_dynamic_bsz", False):
        return []
    world = int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)
    dp = max(1, world // int(arr.actor.get("ulysses_sequence_parallel_size") or 1))
    n, mini = int(arr.rollout.n), int(arr.actor.ppo_mini_batch_size)
    found: list[tuple[str, str]] = []
    if (mini * n) % dp:
        good = _round_up(mini, dp // math.gcd(n, dp))
        found.append((
            f"actor_rollout_ref.actor.ppo_mini_batch_size={mini} × rollout.n={n} is not divisible by the "
            f"{dp} data-parallel GPUs (verl's actor splits each mini batch evenly)",
            f"set actor_rollout_ref.actor.ppo_mini_batch_size={good} (or drop your override and let editjudge scale it)",
        ))
        return found
    per_gpu = mini * n // dp
    for key, node in (
        ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", arr.actor),
        ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", arr.rollout),
        ("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu", arr.ref),
    ):
        value = node.get(key.rsplit(".", 1)[1])
        if value and per_gpu % int(value):
            found.append((
                f"{key}={value} does not divide the per-GPU mini batch ({per_gpu} sequences)",
                f"set {key}={_largest_divisor_at_most(per_gpu, int(value))}",
            ))
    tp = int(arr.rollout.get("tensor_model_parallel_size") or 1)
    if int(cfg.trainer.n_gpus_per_node) % tp:
        found.append((
            f"actor_rollout_ref.rollout.tensor_model_parallel_size={tp} does not divide the "
            f"{cfg.trainer.n_gpus_per_node} GPUs per node",
            f"set actor_rollout_ref.rollout.tensor_model_parallel_size={math.gcd(tp, int(cfg.trainer.n_gpus_per_node))}",
        ))
    return found


_BATCH_KEYS = ("data.train_batch_size", "actor_rollout_ref.actor.ppo_mini_batch_size")
_MICRO_KEYS = ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu",
               "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu",
               "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu")


def consistent_batches(cfg: Any, *, batch: int | None = None, limit: int | None = None) -> dict[str, int]:
    """Every batch setting made valid together for the GPU count, as close to the current values as possible.

    The global batch (``batch`` if given) caps the mini batch; the mini batch rounds up to whole data-parallel
    shares, the global batch up to whole mini batches (down to at most ``limit`` rows when given), the micro
    batches down to divisors of the per-GPU mini batch, the rollout tensor-parallel size to a divisor of the GPUs
    per node. Returns the keys whose value changes, with their new values.
    """
    from omegaconf import OmegaConf

    arr = cfg.actor_rollout_ref
    gpus_per_node, world = int(cfg.trainer.n_gpus_per_node), int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)
    n = int(arr.rollout.n)
    dp = max(1, world // int(arr.actor.get("ulysses_sequence_parallel_size") or 1))
    out: dict[str, int] = {}
    tp = int(arr.rollout.get("tensor_model_parallel_size") or 1)
    if gpus_per_node % tp:
        out["actor_rollout_ref.rollout.tensor_model_parallel_size"] = math.gcd(tp, gpus_per_node)
    if not arr.actor.get("use_dynamic_bsz", False):
        wanted = max(1, int(batch if batch is not None else cfg.data.train_batch_size))
        mini_step, batch_step = dp // math.gcd(n, dp), world // math.gcd(n, world)
        cap = min(int(arr.actor.ppo_mini_batch_size), wanted)
        # (a) keep the mini batch (rounded up to whole data-parallel shares), round the batch up to whole minis
        mini = _round_up(max(1, cap), mini_step)
        batch = _round_up(max(wanted, mini), math.lcm(mini, batch_step))
        if batch > 1.25 * wanted or (limit is not None and batch > limit):
            # (b) keep the batch near what was asked; the largest mini batch of whole shares dividing it
            step = math.lcm(mini_step, batch_step)
            batch = _round_up(wanted, step)
            if limit is not None and batch > limit:
                batch = max(step, limit // step * step)
            mini = max(mini_step, min(cap, batch) // mini_step * mini_step)
            while batch % mini:
                mini -= mini_step
        out["data.train_batch_size"], out["actor_rollout_ref.actor.ppo_mini_batch_size"] = batch, mini
        per_gpu = mini * n // dp
        for key in _MICRO_KEYS:
            value = OmegaConf.select(cfg, key)
            if value:
                out[key] = _largest_divisor_at_most(per_gpu, int(value))
    return {k: v for k, v in out.items() if OmegaConf.select(cfg, k) != v}
