"""Serving throughput and latency: dynamic batching against ``--max-batch 1``, and HTTP against in-process.

All in one run, on the same edits and the same model:

* **dynamic batching**: items/s and p50/p99 latency at concurrency 1 / 8 / 32 (one edit per request), with
  ``--max-batch`` against ``--max-batch 1``. With Ray (default) this is ``editjudge serve`` over real HTTP on
  loopback (Ray Serve replicas, ``serve.batch``); with ``--no-ray`` it is the same judge worker behind a small
  in-process asyncio batcher (for machines without Ray: the figure is what dynamic batching buys the judge).
* **HTTP vs in-process** (Ray only): requests of 8 edits, one at a time, through ``editjudge serve --max-batch 8``
  against ``Judge.score_many`` with batch size 8 in this process.

Targets on the tiny model on 2 cores: batching >= 2x the items/s of batch 1 at concurrency 32; HTTP within 15% of
in-process at batch 8.

    python benchmarks/bench_serve.py --tiny --out bench_serve.json          # CPU, the tiny offline model, Ray
    python benchmarks/bench_serve.py --no-ray --out bench_serve_gpu.json    # GPU: Qwen2.5-VL-3B architecture, random init
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import glob
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from editjudge.synthetic import write_synthetic_edits

CONCURRENCY = (1, 8, 32)


def _edits(work: str, n: int, size: int) -> list[dict[str, Any]]:
    write_synthetic_edits(os.path.join(work, "edits"), n_sources=max(1, n // 4), candidates_per_source=4, size=size)
    items = []
    for edited in sorted(glob.glob(os.path.join(work, "edits", "**", "*_output.jpg"), recursive=True))[:n]:
        with open(edited.replace("_output.jpg", "_meta.json"), encoding="utf-8") as handle:
            instruction = json.load(handle)["instruction"]
        with open(edited.replace("_output.jpg", "_input.jpg"), "rb") as s, open(edited, "rb") as e:
            items.append({"source": s.read(), "edited": e.read(), "instruction": instruction, "samples": None})
    return items


def _stats(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"items_per_s": round(len(latencies) / seconds, 2), "p50_ms": round(1000 * statistics.median(ordered), 1),
            "p99_ms": round(1000 * p99, 1), "requests": len(latencies)}


async def _load(send: Any, items: list[dict[str, Any]], concurrency: int, requests: int) -> dict[str, float]:
    """``concurrency`` clients send ``requests`` one-edit requests in all; per-request latency and items/s."""
    latencies: list[float] = []
    counter = iter(range(requests))

    async def client() -> None:
        for k in counter:
            start = time.perf_counter()
            await send(items[k % len(items)])
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return _stats(latencies, time.perf_counter() - start)


class MicroBatcher:
    """In-process dynamic batching for ``--no-ray``: gather up to ``max_batch`` items or ``wait_s``, score together."""

    def __init__(self, worker: Any, max_batch: int, wait_s: float) -> None:
        self.worker, self.max_batch, self.wait_s = worker, max_batch, wait_s
        self.queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[Any]]] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1)
        self.task: asyncio.Task[None] | None = None

    async def submit(self, item: dict[str, Any]) -> Any:
        if self.task is None:
            self.task = asyncio.create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((item, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.wait_s
            while len(batch) < self.max_batch and (left := deadline - loop.time()) > 0:
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except asyncio.TimeoutError:
                    break
            results = await loop.run_in_executor(self.executor, self.worker.score, [item for item, _ in batch])
            for (_, future), result in zip(batch, results):
                future.set_result(result)

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.executor.shutdown()


def _build_judge(args: argparse.Namespace, work: str, batch_size: int) -> Any:
    from editjudge.judge import Judge
    from editjudge.judge.backends.transformers import TransformersBackend

    if args.tiny:
        backend = TransformersBackend(str(_tiny_path(work)), batch_size=batch_size, device="cpu")
    else:
        from editjudge import tiny

        processor, model = tiny.build_qwen2_5_vl_3b(args.device)
        backend = TransformersBackend.from_loaded(model, processor, batch_size=batch_size)
    return Judge.from_backend(backend, max_new_tokens=args.max_new_tokens)


def _tiny_path(work: str) -> Any:
    from editjudge.tiny import build_tiny_model

    return build_tiny_model(os.path.join(work, "tiny"))


def _in_process_batch(judge: Any, items: list[dict[str, Any]], batch: int, repeat: int) -> dict[str, float]:
    from editjudge.judge import EditItem

    judge.backend.batch_size = batch
    edits = [EditItem(i["source"], i["edited"], i["instruction"]) for i in items]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        judge.score_many(edits, progress=False)
        best = min(best, time.perf_counter() - start)
    return {"items_per_s": round(len(edits) / best, 2), "batch_size": batch}


def _dynamic_in_process(judge: Any, items: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    from editjudge.serve.worker import JudgeWorker

    worker = JudgeWorker.from_judge(judge)
    figures: dict[str, Any] = {}
    for max_batch in (args.max_batch, 1):
        judge.backend.batch_size = max_batch

        async def level(c: int, mb: int = max_batch) -> dict[str, float]:
            batcher = MicroBatcher(worker, mb, args.batch_wait_ms / 1000)
            try:
                return await _load(batcher.submit, items, c, args.requests)
            finally:
                batcher.close()

        figures[f"max_batch_{max_batch}"] = {str(c): asyncio.run(level(c)) for c in CONCURRENCY}
    return figures


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dynamic_http(model_path: str, items: list[dict[str, Any]], args: argparse.Namespace) -> tuple[dict[str, Any], float]:
    import httpx
    import ray
    from ray import serve

    from editjudge.cli import build_parser
    from editjudge.serve.app import APP_NAME, build_app
    from editjudge.serve.cli import settings_from_args

    payloads = [{"source": base64.b64encode(i["source"]).decode(), "edited": base64.b64encode(i["edited"]).decode(),
                 "instruction": i["instruction"]} for i in items]
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})

    def deploy(max_batch: int) -> None:
        flags = ["serve", "--model", model_path, "--max-new-tokens", str(args.max_new_tokens), "--replicas",
                 str(args.replicas), "--max-batch", str(max_batch), "--batch-wait-ms", str(args.batch_wait_ms),
                 "--cpus-per-replica", str(args.cpus_per_replica), "--max-items", "64"]
        if args.tiny:
            flags += ["--device", "cpu"]
        serve.run(build_app(settings_from_args(build_parser("serve").parse_args(flags))), name=APP_NAME, route_prefix="/")

    async def run_levels(levels: tuple[int, ...]) -> dict[str, Any]:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:
            async def send(payload: dict[str, Any]) -> None:
                response = await client.post(url + "/v1/score", json={"items": [payload]})
                response.raise_for_status()

            for payload in payloads[:4]:  # warm-up
                await send(payload)
            return {str(c): await _load(send, payloads, c, args.requests) for c in levels}

    async def eight_at_a_time() -> float:
        async with httpx.AsyncClient(timeout=300) as client:
            chunks = [payloads[k : k + 8] for k in range(0, len(payloads), 8)]
            await client.post(url + "/v1/score", json={"items": chunks[0]})
            best = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                for chunk in chunks:
                    (await client.post(url + "/v1/score", json={"items": chunk})).raise_for_status()
                best = min(best, time.perf_counter() - start)
            return len(payloads) / best

    figures: dict[str, Any] = {}
    try:
        deploy(8)
        http_b8 = asyncio.run(eight_at_a_time())
        for max_batch in (args.max_batch, 1):
            deploy(max_batch)
            figures[f"max_batch_{max_batch}"] = asyncio.run(run_levels(CONCURRENCY))
    finally:
        serve.shutdown()
        ray.shutdown()
    return figures, http_b8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tiny offline model on CPU (default: the 3B on GPU)")
    parser.add_argument("--no-ray", action="store_true", help="in-process dynamic batching only (no Ray, no HTTP)")
    parser.add_argument("--out", help="write the figures to this JSON file")
    parser.add_argument("--edits", type=int, default=32, help="distinct edits (requests cycle over them)")
    parser.add_argument("--requests", type=int, default=96, help="one-edit requests per concurrency level")
    parser.add_argument("--max-batch", type=int, default=32, help="the dynamic batch compared with batch 1")
    parser.add_argument("--batch-wait-ms", type=float, default=20.0, help="how long a batch waits to fill")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="tokens generated per edit")
    parser.add_argument("--image-size", type=int, default=None, help="side of the synthetic images (64 tiny, 448 3B)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of the batch-8 comparison; the best counts")
    parser.add_argument("--replicas", type=int, default=1, help="judge replicas (Ray)")
    parser.add_argument("--cpus-per-replica", type=float, default=1.0, help="CPUs per replica (Ray)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--device", default="cuda", help="device of the 3B model")
    args = parser.parse_args(argv)
    if not args.tiny and not args.no_ray:
        parser.error("the 3B model runs in process only: add --no-ray (or use --tiny)")

    with tempfile.TemporaryDirectory() as work:
        items = _edits(work, args.edits, args.image_size or (64 if args.tiny else 448))
        judge = _build_judge(args, work, 8)
        judge.score_many([(i["source"], i["edited"], i["instruction"]) for i in items[:8]], progress=False)  # warm-up
        figures: dict[str, Any] = {
            "model": "tiny" if args.tiny else "qwen2.5-vl-3b-random", "device": str(judge.backend.model.device),
            "mode": "in-process" if args.no_ray else "ray-serve-http", "edits": len(items),
            "requests_per_level": args.requests, "max_new_tokens": args.max_new_tokens, "max_batch": args.max_batch,
            "batch_wait_ms": args.batch_wait_ms,
        }
        in_process_b8 = _in_process_batch(judge, items, 8, args.repeat)["items_per_s"]
        if args.no_ray:
            figures["dynamic"] = _dynamic_in_process(judge, items, args)
            figures["in_process_batch8_items_per_s"] = in_process_b8
        else:
            figures["dynamic"], http_b8 = _dynamic_http(str(_tiny_path(work)), items, args)
            # in-process again after the HTTP runs: the best of both, so a busy spell on a shared machine does not
            # favour one side
            in_process_b8 = max(in_process_b8, _in_process_batch(judge, items, 8, args.repeat)["items_per_s"])
            figures["http_vs_in_process_batch8"] = {
                "http_items_per_s": round(http_b8, 2), "in_process_items_per_s": in_process_b8,
                "http_over_in_process": round(http_b8 / in_process_b8, 3),
            }
        if judge_on_cuda(figures):
            import torch

            figures["max_memory_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    batched, single = figures["dynamic"][f"max_batch_{args.max_batch}"], figures["dynamic"]["max_batch_1"]
    figures["batching_speedup_at_32"] = round(batched["32"]["items_per_s"] / single["32"]["items_per_s"], 2)
    _print(figures, args.max_batch)
    if args.out:
        from editjudge.data.writer import atomic_write_text

        atomic_write_text(args.out, json.dumps(figures, indent=2) + "\n")
    return 0


def judge_on_cuda(figures: dict[str, Any]) -> bool:
    return str(figures.get("device", "")).startswith("cuda")


def _print(figures: dict[str, Any], max_batch: int) -> None:
    print(f"{figures['model']} on {figures['device']}, {figures['mode']}, {figures['max_new_tokens']} new tokens/edit")
    print(f"{'max batch':>9} {'conc.':>5} {'items/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name in (f"max_batch_{max_batch}", "max_batch_1"):
        for c, f in figures["dynamic"][name].items():
            print(f"{name.split('_')[-1]:>9} {c:>5} {f['items_per_s']:>8.2f} {f['p50_ms']:>8.1f} {f['p99_ms']:>8.1f}")
    print(f"dynamic batching / batch 1 at concurrency 32: {figures['batching_speedup_at_32']}x")
    if "http_vs_in_process_batch8" in figures:
        h = figures["http_vs_in_process_batch8"]
        print(f"batch 8: HTTP {h['http_items_per_s']} items/s vs in-process {h['in_process_items_per_s']} items/s "
              f"-> {h['http_over_in_process']}")
    if "max_memory_allocated_gib" in figures:
        print(f"peak GPU memory: {figures['max_memory_allocated_gib']} GiB")


if __name__ == "__main__":
    sys.exit(main())
