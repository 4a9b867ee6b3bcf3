"""Arguments shared by ``editjudge score`` and ``editjudge best-of-n``: which judge, which backend, how to sample."""

from __future__ import annotations

import argparse
import os
from typing import Any

from editjudge import prompts
from editjudge.data.prepare import PrepareConfig
from editjudge.formats import format_names
from editjudge.judge.backends import BACKENDS


def add_judge_arguments(parser: argparse.ArgumentParser) -> None:
    """The model, backend, prompt, sampling and server options."""
    model = parser.add_argument_group("judge")
    model.add_argument(
        "--model", required=True,
        help="model folder (a merged model, or the base model of --adapter); with --backend openai: the served model name",
    )
    model.add_argument("--adapter", help="LoRA adapter folder (as written by `editjudge export`) to load on --model")
    model.add_argument("--backend", choices=sorted(BACKENDS), default="transformers", help="how to run the judge")
    model.add_argument(
        "--format", default=None, metavar="SPEC",
        help=f"judgment format the judge was trained in: {', '.join(format_names())} (default: the prepare report's, "
        "else pointwise)",
    )
    model.add_argument(
        "--template", default=None,
        help=f"prompt template used in training: {', '.join(sorted(prompts.BUILTIN_TEMPLATES))} or a YAML/JSON file "
        f"(default: the prepare report's, else {prompts.DEFAULT_TEMPLATE})",
    )
    images = parser.add_argument_group(
        "images: size them exactly as in training by giving --prepare-report, or the flags you gave `editjudge prepare`"
    )
    images.add_argument(
        "--prepare-report", metavar="JSON",
        help="prepare_report.json of the training data: its image settings, template and label median/MAD are used",
    )
    images.add_argument(
        "--max-prompt-length", type=int, default=None, help=f"prompt token budget (prepare's default: {PrepareConfig.max_prompt_length})"
    )
    images.add_argument(
        "--processor", default=None, metavar="PATH",
        help="prepare's --processor/--model folder (exact token counts and its pixel limits); default: none, like prepare",
    )
    images.add_argument("--min-pixels", type=int, default=None, help="prepare's --min-pixels")
    images.add_argument("--max-pixels", type=int, default=None, help="prepare's --max-pixels")
    images.add_argument("--max-image-tokens", type=int, default=None, help="prepare's --max-image-tokens")
    images.add_argument("--jpeg-quality", type=int, default=None, help="prepare's --jpeg-quality")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--samples", type=int, default=1, help="responses per edit; >1 averages them (Avg@k)")
    sampling.add_argument(
        "--temperature", type=float, default=None, help="sampling temperature (default: greedy for 1 sample, 1.0 for Avg@k)"
    )
    sampling.add_argument("--max-new-tokens", type=int, default=512, help="longest response")
    sampling.add_argument("--seed", type=int, default=0, help="sampling seed")
    sampling.add_argument("--batch-size", type=int, default=8, help="edits per generate call (transformers, vllm)")
    local = parser.add_argument_group("transformers backend")
    local.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    local.add_argument("--dtype", default=None, help="torch dtype, e.g. bfloat16 (default: bfloat16 on GPU, float32 on CPU)")
    local.add_argument("--merge-adapter", action="store_true", help="fold --adapter into the weights after loading")
    engine = parser.add_argument_group("vllm backend")
    engine.add_argument("--tensor-parallel-size", type=int, default=None, help="GPUs per model (vLLM's default: 1)")
    engine.add_argument("--gpu-memory-utilization", type=float, default=None, help="vLLM's GPU memory fraction")
    add_engine_arg(engine)
    server = parser.add_argument_group("openai backend (OpenAI-compatible server, e.g. `vllm serve`)")
    server.add_argument("--base-url", default=None, help="server URL, e.g. http://localhost:8000/v1")
    server.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    server.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    server.add_argument("--retries", type=int, default=3, help="retries on timeouts, connection errors, 429 and 5xx")
    server.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    server.add_argument("--no-logprobs", action="store_true", help="do not ask for logprobs (servers that reject them)")


def engine_arg(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` → ``(key, value)``: dashes in KEY become underscores (vLLM's CLI spelling works too), VALUE is
    read as a YAML scalar or flow collection (``true``, ``4``, ``0.5``, ``'{"image": 2}'``; a bare word stays text)."""
    import yaml

    key, sep, value = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. max_model_len=4096")
    try:
        return key, yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not JSON/YAML: {exc}") from None


def add_engine_arg(group: Any) -> None:
    """The repeatable ``--engine-arg KEY=VALUE`` (vLLM engine options, e.g. ``vllm.LLM``'s keyword arguments)."""
    group.add_argument(
        "--engine-arg", action="append", type=engine_arg, default=[], metavar="KEY=VALUE",
        help="a vLLM engine option (an `vllm.LLM` / `AsyncEngineArgs` keyword), repeatable; VALUE is read as JSON/YAML, "
        "e.g. --engine-arg max_model_len=4096 --engine-arg enforce_eager=true --engine-arg "
        "'limit_mm_per_prompt={\"image\": 2}'. The adapter's needs (enable_lora, max_lora_rank, "
        "enable_tower_connector_lora) are set from the adapter itself",
    )


def vllm_engine_args(args: argparse.Namespace) -> dict[str, Any]:
    """The vLLM engine options of the command line: the named flags, then every ``--engine-arg`` (later wins).

    ``ValueError`` when engine options are given to a backend that runs no vLLM engine."""
    named = {"tensor_parallel_size": getattr(args, "tensor_parallel_size", None),
             "gpu_memory_utilization": getattr(args, "gpu_memory_utilization", None)}
    options = {k: v for k, v in named.items() if v is not None}
    options.update(dict(getattr(args, "engine_arg", None) or []))
    if options and args.backend != "vllm":
        raise ValueError(f"vLLM engine options ({', '.join(sorted(options))}) need --backend vllm, not {args.backend}")
    return options


# folder names that say what a folder holds, not which judge it is: reports name such a judge by the folder above too
GENERIC_FOLDERS = frozenset({"adapter", "lora_adapter", "actor", "huggingface", "model", "merged", "final", "output",
                             "outputs", "checkpoints"})


def judge_name(model: str | os.PathLike[str] | None, adapter: str | os.PathLike[str] | None = None) -> str:
    """A judge's default name in reports: its adapter's (else its model's) folder name, prefixed with the folder
    above while the name alone says nothing (``runs/trl/adapter`` -> ``trl-adapter``, ``global_step_40/actor`` ->
    ``judge1-global_step_40-actor``); ``judge`` when neither is given."""
    from pathlib import Path

    value = adapter if adapter else model
    if not value:
        return "judge"
    parts = [p for p in Path(os.path.abspath(os.path.expanduser(os.fspath(value)))).parts if p not in ("/", "")]
    if not Path(os.path.expanduser(os.fspath(value))).exists() and not adapter:
        return Path(os.fspath(value)).name or "judge"  # a hub id or served model name: its own name
    name: list[str] = []
    while parts:
        name.insert(0, parts.pop())
        last = name[0].lower()
        if last not in GENERIC_FOLDERS and not last.startswith(("checkpoint-", "global_step_")):
            break
    return "-".join(name) or "judge"


def prepare_report(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--prepare-report`` JSON (empty without the flag); ``ValueError`` naming the file when unreadable."""
    if not args.prepare_report:
        return {}
    from editjudge.data.report import read_report

    try:
        return read_report(args.prepare_report)
    except (ValueError, FileNotFoundError) as exc:  # each names the file and the problem
        raise ValueError(f"--prepare-report {exc}") from None


def prepare_setting(args: argparse.Namespace, name: str) -> Any:
    """One of prepare's recorded settings, or None."""
    return prepare_report(args).get("settings", {}).get(name)


def judgment_format(args: argparse.Namespace) -> Any:
    """The judge's format: ``--format``, else the one prepare recorded, else the default (pointwise)."""
    from editjudge.formats import get_format

    return get_format(getattr(args, "format", None) or prepare_setting(args, "format"))


def recorded_template(args: argparse.Namespace) -> str | None:
    """The prepare report's template: a built-in name, or its file resolved as the report records it."""
    template = prepare_setting(args, "template")
    if not template or template in prompts.BUILTIN_TEMPLATES:
        return template
    from editjudge.model_path import resolve_recorded

    return str(resolve_recorded(template, args.prepare_report))


def image_sizing(args: argparse.Namespace) -> Any:
    """Prepare's image settings: the report's, overridden by explicit flags, else prepare's defaults."""
    from editjudge.judge.request import ImageSizing

    flags = {
        "max_prompt_length": args.max_prompt_length,
        "max_image_tokens": args.max_image_tokens,
        "processor": args.processor,
        "min_pixels": args.min_pixels,
        "max_pixels": args.max_pixels,
        "jpeg_quality": args.jpeg_quality,
    }
    if args.prepare_report:
        prepare_report(args)  # clear error first
        return ImageSizing.from_prepare_report(args.prepare_report, **flags)
    return ImageSizing(**{k: v for k, v in flags.items() if v is not None})


def judge_from_args(args: argparse.Namespace) -> Any:
    """A :class:`~editjudge.judge.Judge` configured from the command line."""
    from editjudge.judge import Judge
    from editjudge.model_path import check_model_paths

    judgment_format(args)  # a misspelt format fails before anything loads
    if args.backend != "openai":  # there --model is the served model's name
        check_model_paths(model=args.model, adapter=args.adapter)  # at once, no hub retries
    if args.processor and not os.path.isdir(os.path.expanduser(args.processor)):
        raise FileNotFoundError(f"--processor {args.processor}: no such folder (give prepare's --processor folder)")
    options: dict[str, Any] = {}
    if args.backend == "openai":
        options.update(
            base_url=args.base_url,
            api_key=os.environ.get(args.api_key_env),
            timeout=args.timeout,
            max_retries=args.retries,
            concurrency=args.concurrency,
            logprobs=not args.no_logprobs,
        )
    else:
        options["batch_size"] = args.batch_size
    if args.backend == "transformers":
        options.update(device=args.device, dtype=args.dtype, merge_adapter=args.merge_adapter)
    options.update(vllm_engine_args(args))
    return Judge(args.model, adapter=args.adapter, backend=args.backend, progress=True, **judge_settings(args), **options)


def judge_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~editjudge.judge.Judge` settings every backend shares: judgment format, prompt template, image
    sizing, sampling."""
    return {
        "format": judgment_format(args),
        "template": args.template or recorded_template(args) or prompts.DEFAULT_TEMPLATE,
        "sizing": image_sizing(args),
        "num_samples": args.samples,
        "temperature": args.temperature,
        "max_new_tokens": args.max_new_tokens,
        "seed": args.seed,
    }
