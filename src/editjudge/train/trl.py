"""Single-process GRPO + LoRA with TRL's ``GRPOTrainer``: the CPU / one-GPU engine of ``editjudge train --engine trl``.

It reads the same prepared parquet as verl (contract: ``prompt`` messages with two ``<image>``, ``images`` as
``{"bytes"}`` dicts, ``reward_model.ground_truth``), the same reward (:func:`editjudge.reward.trl_reward_funcs`) and
the same preset keys where their meaning is shared (LoRA rank/alpha/targets with the vision tower excluded,
generations per prompt, learning rate, epochs, response length). Optionally a short supervised warm start teaches
the answer format first (cold start, as RL-trained judges do), on the same LoRA adapter.

Per logged step it writes ``metrics.jsonl`` in the output directory: mean/std reward, format rate, accuracy rate and
TRL's own per-reward-function means. The adapter and the processor are saved to ``<output_dir>/adapter`` at the
end, at every checkpoint and on Ctrl-C. Keys are checked by name in :mod:`editjudge.train.trl_settings`; the checks
before start, CPU threads, loggers and the validation subset are in :mod:`editjudge.train.trl_runtime`; the
no-signal warning and the adapter at checkpoints in :mod:`editjudge.train.trl_callbacks`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from editjudge.data.writer import atomic_write_text
from editjudge.train import trl_stop
from editjudge.train.trl_data import (  # noqa: F401 (re-exported: the engine's data seam)
    Examples,
    build_dataset,
    check_completion_budget,
    pair_batch_order,
    read_examples,
    warm_start_target,
)

# verl Hydra key -> TrlSettings field, for the keys whose meaning both engines share (contract 5).
PRESET_KEYS: dict[str, str] = {
    "actor_rollout_ref.model.lora_rank": "lora_rank",
    "actor_rollout_ref.model.lora_alpha": "lora_alpha",
    "actor_rollout_ref.model.target_modules": "target_modules",
    "actor_rollout_ref.model.exclude_modules": "exclude_modules",
    "actor_rollout_ref.rollout.n": "num_generations",
    "actor_rollout_ref.rollout.temperature": "temperature",
    "actor_rollout_ref.actor.optim.lr": "learning_rate",
    "actor_rollout_ref.actor.optim.lr_scheduler_type": "lr_scheduler_type",
    "trainer.total_epochs": "epochs",
    "data.max_prompt_length": "max_prompt_length",
    "data.max_response_length": "max_completion_length",
    "trainer.save_freq": "save_steps",
    "trainer.test_freq": "eval_steps",
    "actor_rollout_ref.rollout.top_p": "top_p",
    "trainer.logger": "loggers",
    "trainer.project_name": "project_name",
    "trainer.experiment_name": "run_name",
    "algorithm.filter_groups.enable": "filter_groups",
    "algorithm.filter_groups.metric": "filter_groups_metric",
}
REWARD_KWARGS_PREFIX = "reward.custom_reward_function.reward_kwargs."
METRICS_FILE = "metrics.jsonl"
WALL_CLOCK_KEYS = frozenset({"step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second",
                             "runtime", "samples_per_second", "steps_per_second"})
ADAPTER_DIR = "adapter"


@dataclass
class TrlSettings:
    """Everything the engine needs; built from a preset's verl keys plus the TRL-only flags."""

    model: str
    output_dir: str
    lora_rank: int = 128
    lora_alpha: int = 32
    target_modules: str | list[str] = "all-linear"
    exclude_modules: str | list[str] | None = r".*visual.*"
    num_generations: int = 4
    learning_rate: float = 1e-6
    # the GRPO learning-rate schedule; unset, each engine keeps its own default: TRL decays linearly to 0, verl's
    # actor optimiser is constant (a preset that sets actor_rollout_ref.actor.optim.lr_scheduler_type means the same
    # on both)
    lr_scheduler_type: str = "linear"
    epochs: float = 1.0
    max_prompt_length: int | None = None  # informational: TRL 1.16 never truncates multimodal prompts
    max_completion_length: int = 512
    per_device_batch_size: int | None = None  # completions per step; None -> num_generations (one prompt)
    gradient_accumulation_steps: int = 1
    max_steps: int = -1
    temperature: float = 1.0
    top_p: float = 1.0
    beta: float = 0.0
    seed: int = 42
    logging_steps: int = 1
    save_steps: int = 20  # checkpoint every N GRPO steps (0: none; SIGTERM writes one anyway)
    eval_steps: int = 0  # validate on --val-files every N steps (0: never)
    warm_start_steps: int = 0
    warm_start_lr: float = 1e-4
    gradient_checkpointing: bool | None = None  # None: on with a GPU (memory), off on CPU (speed)
    reward_kwargs: dict[str, Any] = field(default_factory=dict)
    loggers: list[str] = field(default_factory=lambda: ["console"])  # trainer.logger -> TRL's report_to
    project_name: str = "editjudge"  # W&B project (WANDB_PROJECT wins)
    run_name: str | None = None  # W&B / TensorBoard run name
    cpu_threads: int | None = None  # None: OMP_NUM_THREADS if set, else 1 for a model under 100 M parameters
    eval_max_rows: int = 64  # validation prompts per pass (evenly spaced over --val-files); 0: all
    zero_std_warn_steps: int = 3  # warn after this many logged steps with most groups' rewards all equal
    grpo: dict[str, Any] = field(default_factory=dict)  # other TRL GRPOConfig fields (trl.<name> keys), as given
    init_adapter: str | None = None  # --init-adapter: GRPO continues this LoRA adapter (e.g. the SFT stage's)
    # pair rows (prepare --pairs): a pair's two orders in one GRPO step, so a position bias gains nothing in any
    # update (trl_data.pair_batch_order); no effect on other rows
    pair_batches: bool = True
    # DAPO dynamic sampling (train/trl_groups.py): drop groups whose rewards are all equal, draw more prompts
    filter_groups: bool = False  # algorithm.filter_groups.enable
    filter_groups_metric: str = "reward"  # algorithm.filter_groups.metric: reward, format or accuracy
    filter_groups_max_extra: float = 1.0  # extra prompts per step, at most this multiple of the step's prompts
    # dimension rows: each dimension's digit gets the advantage of its own dimension's reward (train/
    # trl_dimension_credit.py); no effect on other rows
    dimension_credit: bool = False

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ValueError(f"GRPO needs at least 2 generations per prompt (actor_rollout_ref.rollout.n), got "
                             f"{self.num_generations}")
        batch = self.batch_size
        if batch % self.num_generations:
            raise ValueError(
                f"--per-device-batch-size ({batch}) counts completions and must be a multiple of the generations "
                f"per prompt (actor_rollout_ref.rollout.n = {self.num_generations}); try {self.num_generations}"
            )
        if self.lora_rank <= 0:
            raise ValueError("the TRL engine trains a LoRA adapter: actor_rollout_ref.model.lora_rank must be > 0")
        from editjudge.train.trl_groups import dynamic_sampling

        dynamic_sampling(self)  # checks the filter_groups settings (ValueError naming the key)

    @property
    def batch_size(self) -> int:
        """Completions per device per optimizer micro-step."""
        return self.per_device_batch_size or self.num_generations


def _coerce(name: str, value: Any) -> Any:
    """Hydra values come as strings from the command line; give them the field's type."""
    # Regexes stay strings (".*visual.*" is not YAML to parse); a module list like "[q_proj,v_proj]" is parsed.
    if isinstance(value, str) and (name not in ("target_modules", "exclude_modules") or value.startswith("[")):
        import yaml

        value = yaml.safe_load(value)
    if name in ("lora_rank", "lora_alpha", "num_generations", "max_completion_length", "max_prompt_length"):
        return None if value is None else int(value)
    if name == "filter_groups":
        if not isinstance(value, bool):
            raise ValueError(f"algorithm.filter_groups.enable must be true or false, got {value!r}")
        return value
    if name in ("save_steps", "eval_steps"):
        return max(int(value), 0)
    if name in ("learning_rate", "epochs", "temperature", "top_p"):
        return float(value)
    if name == "loggers":
        return [str(v) for v in ([value] if isinstance(value, str) else list(value or []))]
    return value


def settings_from_overrides(overrides: Mapping[str, Any], **fields: Any) -> TrlSettings:
    """TrlSettings from verl Hydra keys (a preset's ``overrides``); unrelated keys are ignored."""
    mapped: dict[str, Any] = {}
    reward_kwargs: dict[str, Any] = {}
    for key, value in overrides.items():
        key = key.lstrip("+")
        name = PRESET_KEYS.get(key)
        if name is not None:
            mapped[name] = _coerce(name, value)
        elif key.startswith(REWARD_KWARGS_PREFIX):
            import yaml

            reward_kwargs[key[len(REWARD_KWARGS_PREFIX) :]] = yaml.safe_load(value) if isinstance(value, str) else value
    if reward_kwargs:
        mapped["reward_kwargs"] = reward_kwargs
    mapped.update({k: v for k, v in fields.items() if v is not None})
    return TrlSettings(**mapped)


def parse_cli_overrides(items: Iterable[str]) -> dict[str, str]:
    """``key=value`` strings (what follows ``--`` on the train command line) as a dict."""
    out: dict[str, str] = {}
    for item in items:
        if item.startswith("~"):
            continue  # a Hydra deletion: nothing for TRL to set
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        out[key.lstrip("+")] = value
    return out


# ----------------------------------------------------------------------------------------------------- configs
def lora_config(settings: TrlSettings):
    """The PEFT LoRA of the preset: all LM linears, the vision tower excluded (PEFT full-matches the regex). Reads only
    ``lora_rank``, ``lora_alpha``, ``target_modules`` and ``exclude_modules`` (the SFT stage's settings share them)."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_rank,
        lora_alpha=settings.lora_alpha,
        target_modules=settings.target_modules,
        exclude_modules=settings.exclude_modules,
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )


def _device_kwargs(settings: TrlSettings) -> dict[str, Any]:
    import torch

    gpu = torch.cuda.is_available()
    checkpointing = gpu if settings.gradient_checkpointing is None else settings.gradient_checkpointing
    return {
        "use_cpu": not gpu,
        "bf16": gpu and torch.cuda.is_bf16_supported(),
        "gradient_checkpointing": checkpointing,
    }


def grpo_config(settings: TrlSettings, output_dir: str | Path, validate: bool = False, ordered: bool = False):
    """TRL's GRPOConfig for these settings (the batch counts completions; it holds whole prompt groups).

    ``validate``: evaluate every ``eval_steps`` steps (rewards of ``num_generations`` samples per validation prompt).
    ``ordered``: the dataset is already in its training order (pair batches): TRL must not shuffle it.
    """
    from trl import GRPOConfig

    from editjudge.reward import trl_reward_weights

    return GRPOConfig(
        output_dir=str(output_dir),
        num_generations=settings.num_generations,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        max_completion_length=settings.max_completion_length,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler_type,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        temperature=settings.temperature,
        top_p=settings.top_p,
        beta=settings.beta,
        reward_weights=trl_reward_weights(**settings.reward_kwargs),
        seed=settings.seed,
        data_seed=settings.seed,
        logging_steps=settings.logging_steps,
        save_strategy="steps" if settings.save_steps > 0 else "no",
        save_steps=max(settings.save_steps, 1),
        save_total_limit=2,
        eval_strategy="steps" if validate and settings.eval_steps > 0 else "no",
        eval_steps=max(settings.eval_steps, 1),
        per_device_eval_batch_size=settings.batch_size,
        report_to=report_to(settings.loggers),
        run_name=settings.run_name,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        **({"shuffle_dataset": False} if ordered else {}),
        **_device_kwargs(settings),
        **settings.grpo,
    )


def report_to(loggers: Sequence[str]) -> list[str] | str:
    """verl's ``trainer.logger`` names as TRL's ``report_to`` (console is TRL's own progress output)."""
    from editjudge.train.trl_runtime import report_to as names

    return names(loggers)


def sft_config(settings: TrlSettings, output_dir: str | Path):
    """TRL's SFTConfig of the warm start: loss on the completion only, no truncation of multimodal prompts."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=max(1, settings.batch_size // settings.num_generations),
        learning_rate=settings.warm_start_lr,
        max_steps=settings.warm_start_steps,
        max_length=None,
        completion_only_loss=True,
        seed=settings.seed,
        data_seed=settings.seed,
        logging_steps=settings.logging_steps,
        save_strategy="no",
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        **_device_kwargs(settings),
    )


# ----------------------------------------------------------------------------------------------------- metrics
def _rate_key(name: str) -> str | None:
    lowered = name.lower()
    if "format" in lowered:
        return "format_rate"
    if "accura" in lowered:
        return "accuracy_rate"
    return None


def summarize_log(logs: Mapping[str, Any], step: int, phase: str) -> dict[str, Any]:
    """One metrics.jsonl record from a TRL log dict: reward mean/std, format and accuracy rates, the rest as is.

    An evaluation log (TRL prefixes its keys with ``eval_``) becomes a ``validation`` record with the same names.
    """
    if any(key.startswith("eval_") for key in logs):
        phase = "validation"
        logs = {key.removeprefix("eval_"): value for key, value in logs.items()}
    record: dict[str, Any] = {"phase": phase, "step": step}
    if "reward" in logs:
        record["reward_mean"] = logs["reward"]
        record["reward_std"] = logs.get("reward_std")
    # share of prompt groups whose rewards were all equal (no gradient from them): the exact count of trl_groups
    # (``groups/flat``) where logged, since TRL's own isclose(std, 0) misses groups flat at a graded reward; TRL's
    # figure is kept beside it as ``trl/frac_reward_zero_std``
    if "groups/flat" in logs:
        record["frac_reward_zero_std"] = logs["groups/flat"]
        if "frac_reward_zero_std" in logs:
            record["trl/frac_reward_zero_std"] = logs["frac_reward_zero_std"]
    elif "frac_reward_zero_std" in logs:
        record["frac_reward_zero_std"] = logs["frac_reward_zero_std"]
    for key, value in logs.items():
        if key.startswith("rewards/") and key.endswith("/mean"):
            rate = _rate_key(key[len("rewards/") : -len("/mean")])
            if rate is not None:
                record[rate] = value
    for key, value in logs.items():
        if key in WALL_CLOCK_KEYS or (isinstance(value, float) and math.isnan(value)):
            continue  # wall-clock figures would make the file differ between identical runs
        if isinstance(value, (int, float)):
            record.setdefault(key, value)
    return record


def _use_quiet_progress(trainer) -> None:
    """Keep the trainer's tqdm bar but not its raw log dicts (metrics.jsonl and one line per step tell more); no bar
    at all when stderr is not a terminal (a log file): its redraws would interleave with the step lines there."""
    import sys

    from transformers.trainer_callback import ProgressCallback

    class QuietProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            return None

    if trainer.pop_callback(ProgressCallback) is not None and sys.stderr.isatty():
        trainer.add_callback(QuietProgress())


def _metrics_callback(path: Path, phase: str, records: list[dict[str, Any]]):
    """A TrainerCallback that appends each log to ``records`` and rewrites ``path`` atomically."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class MetricsJsonl(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, D401
            if not logs or "train_runtime" in logs:
                return
            records.append(summarize_log(logs, state.global_step, phase))
            atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
            r = records[-1]
            of = f"/{state.max_steps}" if state.max_steps and r["phase"] != "validation" else ""
            if "reward_mean" in r:
                tqdm.write(
                    f"[{r['phase']}] step {r['step']}{of}: reward {r['reward_mean']:.3f} ± {r.get('reward_std') or 0:.3f}"
                    + (f", format {r['format_rate']:.2f}" if "format_rate" in r else "")
                    + (f", accuracy {r['accuracy_rate']:.2f}" if "accuracy_rate" in r else "")
                )
            elif "loss" in r:
                tqdm.write(f"[{phase}] step {r['step']}{of}: loss {r['loss']:.3f}")

    return MetricsJsonl()


# ----------------------------------------------------------------------------------------------------- training
@dataclass
class TrainResult:
    """Where the run left its outputs, the logged records and the trained model (a PEFT model)."""

    adapter_dir: Path
    metrics_path: Path
    records: list[dict[str, Any]]
    seconds: float
    model: Any = None
    interrupted: bool = False  # Ctrl-C: the adapter holds the weights of the last finished step
    steps: int = 0  # GRPO steps done
    terminated: bool = False  # SIGTERM: stopped after a finished step, checkpoint-N written (train/trl_stop.py)

    def grpo_records(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["phase"] == "grpo" and "reward_mean" in r]


def load_model(model: str | Path):
    """Processor and model through the same ``from_pretrained`` path as a hub checkpoint (bf16 on a GPU)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from editjudge.model_path import recorded_path

    model = recorded_path(model)  # PEFT records it as the adapter's base: it must resolve from any folder
    dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    processor = AutoProcessor.from_pretrained(model)
    loaded = AutoModelForImageTextToText.from_pretrained(model, dtype=dtype)
    if torch.cuda.is_available():
        loaded = loaded.to("cuda")
    return processor, loaded


def reward_functions(reward_kwargs: Mapping[str, Any] | None = None) -> list:
    """The project's reward, split into TRL reward functions (their sum is verl's ``compute_score``)."""
    from editjudge.reward import trl_reward_funcs

    return list(trl_reward_funcs(**dict(reward_kwargs or {})))


def warm_start(model, processor, examples: Examples, settings: TrlSettings, work_dir: Path,
               records: list[dict[str, Any]], metrics_path: Path, callbacks: Sequence[Any] = ()):
    """Supervised steps on ``format_answer(label, …)`` targets; returns the model with its trained LoRA adapter."""
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=model,
        args=sft_config(settings, work_dir),
        train_dataset=build_dataset(examples, with_completion=True),
        processing_class=processor,
        peft_config=lora_config(settings),
        callbacks=[_metrics_callback(metrics_path, "warm_start", records), *callbacks],
    )
    _use_quiet_progress(trainer)
    trainer.train()
    _remove_if_empty(work_dir)
    return trainer.model


def _checkpoint_to_resume(resume: str | None, checkpoints: Path) -> str | None:
    """``"auto"``: the newest ``checkpoint-N`` folder, if any; a path: that folder (it must exist); else None."""
    from transformers.trainer_utils import get_last_checkpoint

    if resume == "auto":
        return get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if resume:
        if not Path(resume).is_dir():
            raise FileNotFoundError(f"--resume {resume}: no such checkpoint folder (TRL writes checkpoint-N folders)")
        return str(resume)
    return None


def _records_before(metrics_path: Path, checkpoint: str) -> list[dict[str, Any]]:
    """The metrics.jsonl records a resumed run keeps: the warm start and every step up to the checkpoint's."""
    if not metrics_path.is_file():
        return []
    step = int(Path(checkpoint).name.rsplit("-", 1)[-1]) if Path(checkpoint).name.startswith("checkpoint-") else 0
    records = [json.loads(line) for line in metrics_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records if r.get("phase") == "warm_start" or r.get("step", 0) <= step]


def _remove_if_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


@trl_stop.sigterm_checkpoints  # SIGTERM: finish the step, checkpoint, stop (exit 143 in the CLI)
def train(settings: TrlSettings, train_files: str | Path | Sequence[str | Path], resume: str | None = None,
          model=None, processor=None, callbacks: Sequence[Any] = (),
          val_files: str | Path | Sequence[str | Path] | None = None) -> TrainResult:
    """Run (warm start +) GRPO; save the adapter and processor to ``<output_dir>/adapter`` atomically.

    ``resume``: ``"auto"`` continues from the newest ``<output_dir>/checkpoints/checkpoint-N`` (if any), a path from
    that checkpoint. ``model``/``processor`` may be passed already loaded (tests, benchmarks); ``callbacks`` are
    extra ``TrainerCallback``s of the GRPO phase. With ``val_files`` and ``eval_steps > 0`` the GRPO phase validates
    every ``eval_steps`` steps (``validation`` records in metrics.jsonl) on at most ``eval_max_rows`` prompts.
    The adapter is also written at every checkpoint (``save_steps``) and on Ctrl-C (then ``interrupted`` is set).
    """
    from editjudge.train import trl_callbacks, trl_groups, trl_runtime

    started = time.perf_counter()
    out = Path(settings.output_dir)
    examples = read_examples(train_files)
    validation = read_examples(val_files) if val_files and settings.eval_steps > 0 else None
    if validation is not None:
        validation = trl_runtime.bounded_validation(validation, settings)
    if processor is None or model is None:
        processor, model = load_model(settings.model)
    check_completion_budget(examples, getattr(processor, "tokenizer", processor), settings.max_completion_length)
    trl_runtime.set_cpu_threads(settings, model)
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = out / METRICS_FILE
    checkpoint = _checkpoint_to_resume(resume, out / "checkpoints")
    records: list[dict[str, Any]] = _records_before(metrics_path, checkpoint) if checkpoint else []
    atomic_write_text(out / "trl_settings.json", json.dumps(asdict(settings), indent=2, sort_keys=True) + "\n")

    peft_config = lora_config(settings)
    if settings.init_adapter and checkpoint is None:  # the adapter's weights are GRPO's starting point
        from editjudge.train.sft_trl import with_adapter

        print(f"[init adapter] GRPO continues {settings.init_adapter} (no warm start)", flush=True)
        model, peft_config = with_adapter(model, settings.init_adapter), None
    elif settings.warm_start_steps > 0 and checkpoint is not None:
        print("[warm start] skipped: resuming GRPO from a checkpoint that holds the adapter", flush=True)
    elif settings.warm_start_steps > 0:
        print(f"[warm start] {settings.warm_start_steps} supervised steps on the answer format", flush=True)
        model = warm_start(model, processor, examples, settings, out / "warm_start", records, metrics_path,
                           callbacks=[trl_stop.active().callback(save=False)])
        peft_config = None  # GRPO continues training the same adapter
        if trl_stop.active().requested:  # SIGTERM in the warm start: keep its adapter, no GRPO
            return TrainResult(save_adapter(model, processor, out / ADAPTER_DIR), metrics_path, records,
                               time.perf_counter() - started, model, terminated=True)
    engine_callbacks = trl_callbacks.engine_callbacks(  # no-signal warning, adapter at checkpoints, validation cost
        settings, out / ADAPTER_DIR, processor, save_adapter, validation_rows=len(validation) if validation else 0)
    order = pair_batch_order(examples, settings) if settings.pair_batches else None
    with trl_runtime.logging_environment(settings):  # read by the loggers' callbacks as the trainer starts
        trainer = trl_groups.trainer_class()(  # TRL's GRPOTrainer + flat-group metrics and dynamic sampling
            model=model,
            reward_funcs=reward_functions(settings.reward_kwargs),
            args=grpo_config(settings, out / "checkpoints", validate=validation is not None, ordered=order is not None),
            train_dataset=build_dataset(examples, order=order),
            eval_dataset=build_dataset(validation) if validation is not None else None,
            processing_class=processor,
            peft_config=peft_config,
            callbacks=[_metrics_callback(metrics_path, "grpo", records), *engine_callbacks, *callbacks,
                       trl_stop.active().callback(save=True)],
            **trl_groups.trainer_kwargs(settings),
        )
        _use_quiet_progress(trainer)
        interrupted = False
        try:
            trainer.train(resume_from_checkpoint=checkpoint)
        except KeyboardInterrupt:  # Ctrl-C: keep what the finished steps learnt
            interrupted = True
    _remove_if_empty(out / "checkpoints")
    adapter_dir = save_adapter(trainer.model, processor, out / ADAPTER_DIR)
    return TrainResult(adapter_dir, metrics_path, records, time.perf_counter() - started, trainer.model,
                       interrupted=interrupted, steps=int(trainer.state.global_step),
                       terminated=trl_stop.active().step is not None and not interrupted)


def save_adapter(model, processor, adapter_dir: Path) -> Path:
    """Write the LoRA adapter and the processor to ``adapter_dir`` atomically (a sibling temp folder, renamed)."""
    from peft import PeftModel

    from editjudge.model_path import absolute_adapter_base

    adapter_dir = Path(adapter_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{adapter_dir.name}.", dir=adapter_dir.parent))
    try:
        if not isinstance(model, PeftModel):
            raise RuntimeError("the trained model carries no LoRA adapter")
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        absolute_adapter_base(tmp)  # base_model_name_or_path resolves from any folder
        if adapter_dir.exists():
            shutil.rmtree(adapter_dir)
        os.replace(tmp, adapter_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return adapter_dir


__all__ = [
    "PRESET_KEYS", "Examples", "TrainResult", "TrlSettings", "build_dataset", "grpo_config", "load_model",
    "lora_config", "read_examples", "save_adapter", "settings_from_overrides", "train", "warm_start",
    "warm_start_target",
]
