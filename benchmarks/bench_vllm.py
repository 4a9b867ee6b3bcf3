"""The judge through vLLM against transformers: items/s and p50/p99 latency at concurrency 1 / 8 / 32, in one run.

Four ways to run the same judge on the same edits (one-edit requests, ``concurrency`` clients at once):

* ``transformers in-process``: ``JudgeWorker`` behind bench_serve's in-process dynamic batcher (max batch 32) —
  the baseline every ratio is taken against;
* ``vllm in-process``: :class:`~editjudge.judge.backends.vllm_async.AsyncVLLMEngine` (``AsyncLLM``, continuous
  batching), each client's request handed to the engine as it comes;
* ``transformers serve`` / ``vllm serve``: ``editjudge serve`` on a local Ray over real HTTP on loopback
  (``serve.batch`` replica against the ``AsyncLLM`` replica).

Run it in vLLM's environment (``bash scripts/setup_vllm.sh``):

    .venv-vllm/bin/python benchmarks/bench_vllm.py --tiny --out bench_vllm.json          # CPU: the demo's tiny model
    python benchmarks/bench_vllm.py --model Qwen2.5-VL-3B-Instruct --out bench_vllm_gpu.json   # a GPU box with vLLM

On 2 CPU cores and a ~10M-parameter model, vLLM's per-step scheduling and engine overhead dominate and the
transformers path can win; the comparison that matters is the GPU one (the 3B architecture), see docs/gpu.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

from bench_serve import CONCURRENCY, MicroBatcher, _edits, _free_port, _load  # noqa: E402  (same load, same stats)


def _judge_flags(args: argparse.Namespace, model: str) -> list[str]:
    flags = ["--model", model, "--max-new-tokens", str(args.max_new_tokens)]
    if args.tiny:
        flags += ["--device", "cpu"]
    return flags


def _transformers_in_process(model: str, items: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    from editjudge.cli import build_parser
    from editjudge.serve.worker import JudgeWorker

    worker = JudgeWorker(build_parser("serve").parse_args(["serve", *_judge_flags(args, model)]), args.max_batch)
    worker.score(items[:4])  # warm-up

    async def level(c: int) -> dict[str, float]:
        batcher = MicroBatcher(worker, args.max_batch, args.batch_wait_ms / 1000)
        try:
            return await _load(batcher.submit, items, c, args.requests)
        finally:
            batcher.close()

    return {str(c): asyncio.run(level(c)) for c in CONCURRENCY}


def _vllm_in_process(model: str, items: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    from editjudge.judge import Judge
    from editjudge.judge.backends.vllm_async import AsyncVLLMEngine

    async def run() -> dict[str, Any]:
        engine = AsyncVLLMEngine(model, **args.engine_args)
        await engine.start()
        judge = Judge.from_backend(engine, max_new_tokens=args.max_new_tokens)

        async def send(item: dict[str, Any]) -> None:
            request = await asyncio.to_thread(judge.request, item["source"], item["edited"], item["instruction"])
            output = await engine.generate(request, judge.sampling)
            assert output.error is None, output.error

        for item in items[:4]:
            await send(item)
        try:
            return {str(c): await _load(send, items, c, args.requests) for c in CONCURRENCY}
        finally:
            engine.shutdown()

    return asyncio.run(run())


def _through_serve(backend: str, model: str, items: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    import httpx
    import ray
    from ray import serve

    from editjudge.cli import build_parser
    from editjudge.serve.app import APP_NAME, build_app
    from editjudge.serve.cli import settings_from_args

    payloads = [{"source": base64.b64encode(i["source"]).decode(), "edited": base64.b64encode(i["edited"]).decode(),
                 "instruction": i["instruction"]} for i in items]
    port = _free_port()
    ray_tmp = tempfile.mkdtemp(prefix="ejbench-")
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False, _temp_dir=ray_tmp)
    flags = ["serve", "--backend", backend, *_judge_flags(args, model), "--max-batch", str(args.max_batch),
             "--batch-wait-ms", str(args.batch_wait_ms), "--max-items", "64"]
    if backend == "vllm":
        flags = [f for f in flags if f not in ("--device", "cpu")]
        flags += [x for k, v in args.engine_args.items() for x in ("--engine-arg", f"{k}={json.dumps(v)}")]
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(settings_from_args(build_parser("serve").parse_args(flags))), name=APP_NAME, route_prefix="/")

        async def levels() -> dict[str, Any]:
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            async with httpx.AsyncClient(timeout=600, limits=limits) as client:
                async def send(payload: dict[str, Any]) -> None:
                    (await client.post(f"http://127.0.0.1:{port}/v1/score", json={"items": [payload]})).raise_for_status()

                for payload in payloads[:4]:
                    await send(payload)
                return {str(c): await _load(send, payloads, c, args.requests) for c in CONCURRENCY}

        return asyncio.run(levels())
    finally:
        serve.shutdown()
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the demo's tiny offline model on CPU")
    parser.add_argument("--model", help="a model folder (GPU: e.g. Qwen2.5-VL-3B-Instruct)")
    parser.add_argument("--out", help="write the figures to this JSON file")
    parser.add_argument("--edits", type=int, default=32, help="distinct edits (requests cycle over them)")
    parser.add_argument("--requests", type=int, default=64, help="one-edit requests per concurrency level")
    parser.add_argument("--max-batch", type=int, default=32, help="transformers: the dynamic batch")
    parser.add_argument("--batch-wait-ms", type=float, default=20.0, help="transformers: how long a batch waits")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="tokens generated per edit")
    parser.add_argument("--image-size", type=int, default=None, help="side of the synthetic images (64 tiny, 448 3B)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--skip-serve", action="store_true", help="in-process figures only")
    args = parser.parse_args(argv)
    if bool(args.tiny) == bool(args.model):
        parser.error("give --tiny or --model")
    args.engine_args = {"max_model_len": 4096}
    with tempfile.TemporaryDirectory() as work:
        if args.tiny:
            from editjudge import demo
            from editjudge.tiny import build_tiny_model

            model = str(build_tiny_model(os.path.join(work, "tiny"), hidden_size=demo.HIDDEN_SIZE, qk_scale=demo.QK_SCALE))
        else:
            model = args.model
        items = _edits(work, args.edits, args.image_size or (64 if args.tiny else 448))
        runs: dict[str, Any] = {"transformers in-process": _transformers_in_process(model, items, args)}
        gc.collect()
        runs["vllm in-process"] = _vllm_in_process(model, items, args)
        gc.collect()
        if not args.skip_serve:
            runs["transformers serve"] = _through_serve("transformers", model, items, args)
            runs["vllm serve"] = _through_serve("vllm", model, items, args)
    base = runs["transformers in-process"]
    figures = {"model": "demo tiny (hidden 256)" if args.tiny else model, "requests_per_level": args.requests,
               "max_new_tokens": args.max_new_tokens, "runs": runs,
               "items_per_s_over_transformers_in_process": {
                   name: {c: round(f["items_per_s"] / base[c]["items_per_s"], 2) for c, f in run.items()}
                   for name, run in runs.items()}}
    print(f"{'path':<24} {'conc.':>5} {'items/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'x base':>7}")
    for name, run in runs.items():
        for c, f in run.items():
            ratio = figures["items_per_s_over_transformers_in_process"][name][c]
            print(f"{name:<24} {c:>5} {f['items_per_s']:>8.2f} {f['p50_ms']:>8.1f} {f['p99_ms']:>8.1f} {ratio:>7.2f}")
    if args.out:
        from editjudge.data.writer import atomic_write_text

        atomic_write_text(args.out, json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
