"""``editjudge serve``: the judge as an HTTP service on Ray Serve (replicas, dynamic batching, FastAPI)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from editjudge.judge.cli_common import add_judge_arguments
from editjudge.serve.inputs import (
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_ITEMS, DEFAULT_MAX_SAMPLES, Limits, is_loopback,
    token_digest,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Serve the judge over HTTP with Ray Serve: POST /v1/score, POST /v1/rank, GET /healthz, GET /metrics "
        "(docs/serve.md). Starts a local Ray, or joins a cluster with --address. Each replica holds one judge; "
        "concurrent requests are batched (--max-batch, --batch-wait-ms). Binds 127.0.0.1 unless told otherwise."
    )
    add_judge_arguments(parser)
    svc = parser.add_argument_group("service")
    svc.add_argument("--replicas", type=int, default=1, help="judge replicas (one GPU each on GPU machines)")
    svc.add_argument("--max-batch", type=int, default=32, help="largest dynamic batch (replaces --batch-size)")
    svc.add_argument("--batch-wait-ms", type=float, default=20.0, help="how long a batch waits to fill up")
    svc.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    svc.add_argument("--port", type=int, default=8000, help="HTTP port")
    svc.add_argument("--token-env", metavar="VAR", help="environment variable holding the bearer token clients must send")
    svc.add_argument(
        "--insecure-no-token", action="store_true",
        help="allow a non-loopback --host without --token-env (anyone who reaches the port can use the judge)",
    )
    svc.add_argument("--allow-paths", metavar="DIR", help="let requests name image files under DIR ({\"path\": …})")
    svc.add_argument("--address", metavar="RAY", help="join this Ray cluster (e.g. auto, or ray://host:10001)")
    svc.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    svc.add_argument("--cpus-per-replica", type=float, default=1.0, help="CPUs reserved per judge replica")
    svc.add_argument(
        "--gpus-per-replica", type=float, default=None,
        help="GPUs per judge replica (default: 1 when the local machine has CUDA and the backend runs a model, else 0)",
    )
    lim = parser.add_argument_group("limits (each refusal answers a 4xx with a reason)")
    lim.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="largest request body")
    lim.add_argument("--max-items", type=int, default=DEFAULT_MAX_ITEMS, help="items (or candidates) per request")
    lim.add_argument("--max-image-pixels", type=int, default=DEFAULT_MAX_IMAGE_PIXELS,
                     help="largest image (width x height, read from the header before decoding)")
    lim.add_argument("--max-samples", type=int, default=DEFAULT_MAX_SAMPLES, help="largest per-item 'samples'")
    lim.add_argument("--max-queued", type=int, default=4096, help="items waiting for a replica before 503s")
    lim.add_argument("--request-timeout", type=float, default=300.0, help="seconds before a request answers 503")
    lim.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds on 503")
    lim.add_argument("--drain-timeout", type=float, default=30.0, help="seconds replicas get to finish on shutdown")
    parser.add_argument("--openapi", metavar="FILE", help="write the API's OpenAPI schema (JSON) to FILE and exit")


def _usage_problem(args: argparse.Namespace) -> str | None:
    """What the numbers alone cannot say (each number's own bound is checked for every verb by editjudge.cli)."""
    if args.samples > args.max_samples:
        return f"--samples {args.samples} exceeds --max-samples {args.max_samples}"
    if args.token_env and not os.environ.get(args.token_env):
        return f"--token-env {args.token_env}: the variable is unset or empty; export it first"
    if not is_loopback(args.host) and not args.token_env and not args.insecure_no_token:
        return (f"--host {args.host} is reachable from other machines: set --token-env VAR (a bearer token), "
                "or pass --insecure-no-token")
    from editjudge.judge.cli_common import vllm_engine_args

    try:
        vllm_engine_args(args)  # engine options only with --backend vllm
    except ValueError as exc:
        return str(exc)
    if args.allow_paths and not Path(args.allow_paths).is_dir():
        return f"--allow-paths {args.allow_paths}: no such folder"
    if args.backend != "openai":
        from editjudge.judge.backends import check_local_paths

        try:
            check_local_paths(model=args.model, adapter=args.adapter)
        except FileNotFoundError as exc:
            return str(exc)
    if getattr(args, "prepare_report", None):  # its recorded processor is checked here, not in a replica later
        from editjudge.judge.cli_common import image_sizing

        try:
            image_sizing(args)
        except (OSError, ValueError) as exc:
            return str(exc)
    return None


def settings_from_args(args: argparse.Namespace) -> Any:
    """:class:`~editjudge.serve.app.ServeSettings` from the parsed flags."""
    from editjudge.serve.app import ServeSettings

    gpus = args.gpus_per_replica
    if gpus is None:
        gpus = 1.0 if args.backend != "openai" and _local_cuda() else 0.0
    limits = Limits(
        max_body_bytes=args.max_body_bytes, max_items=args.max_items, max_image_pixels=args.max_image_pixels,
        max_samples=args.max_samples, allow_paths=str(Path(args.allow_paths).resolve()) if args.allow_paths else None,
    )
    judge_args = argparse.Namespace(**{k: v for k, v in vars(args).items() if not k.startswith("_")})
    return ServeSettings(
        judge_args=judge_args, limits=limits, replicas=args.replicas, max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms, cpus_per_replica=args.cpus_per_replica, gpus_per_replica=gpus,
        token_digest=token_digest(os.environ[args.token_env]) if args.token_env else None,
        retry_after_s=args.retry_after, request_timeout_s=args.request_timeout, max_queued_items=args.max_queued,
        drain_timeout_s=args.drain_timeout,
    )


def _local_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join ``address`` (or ``RAY_ADDRESS``), or start a local Ray that cannot outlive this process (see
    :func:`editjudge.judge.ray_cluster.init_local_ray`); nothing when Ray is already up."""
    import ray

    from editjudge.judge.ray_cluster import init_local_ray

    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    else:
        init_local_ray(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def deploy(settings: Any, host: str = "127.0.0.1", port: int = 8000) -> str:
    """Start Serve's HTTP proxy on ``host:port`` and deploy the app (waits until it runs); returns its URL."""
    from ray import serve

    from editjudge.serve.app import APP_NAME, build_app

    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app(settings), name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{host}:{port}"


def start(settings: Any, host: str = "127.0.0.1", port: int = 8000, address: str | None = None,
          num_cpus: int | None = None) -> str:
    """:func:`init_ray` then :func:`deploy`; returns the service's URL."""
    init_ray(address, num_cpus)
    return deploy(settings, host, port)


def drain(timeout_s: float) -> int:
    """New requests answer 503 ``shutting_down``; wait up to ``timeout_s`` for the ones in flight to be answered.
    Returns how many were left unanswered (0: all answered)."""
    from ray import serve

    from editjudge.serve.app import APP_NAME

    try:
        ingress = serve.get_deployment_handle("Ingress", app_name=APP_NAME)
        return int(ingress.drain.remote(timeout_s).result(timeout_s=timeout_s + 10))
    except Exception as exc:  # noqa: BLE001 - the app is gone already, or never came up: nothing to wait for
        print(f"editjudge serve: could not drain ({type(exc).__name__}); stopping", file=sys.stderr)
        return -1


def stop() -> None:
    """Shut Serve down (after :func:`drain`: nothing is in flight any more)."""
    from ray import serve

    serve.shutdown()


def run(args: argparse.Namespace) -> int:
    if args.openapi:
        from editjudge.serve.app import openapi_schema

        Path(args.openapi).write_text(json.dumps(openapi_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {args.openapi}", file=sys.stderr)
        return 0
    problem = _usage_problem(args)
    if problem:
        print(f"editjudge serve: error: {problem}", file=sys.stderr)
        return 2
    from editjudge.ray_auth import local_token_auth

    local_token_auth(args.address)  # Ray's default for a local cluster, said explicitly: no warning at each start

    from editjudge.judge.ray_cluster import address_problem

    unreachable = address_problem(args.address or os.environ.get("RAY_ADDRESS"), 15.0, "--address")
    if unreachable:
        print(f"editjudge serve: error: cannot reach Ray: {unreachable}", file=sys.stderr)
        return 1
    settings = settings_from_args(args)
    done = threading.Event()

    def on_signal(*_: Any) -> None:
        if done.is_set():  # the second Ctrl-C: stop now, without waiting for the requests in flight
            print("editjudge serve: stopping now", file=sys.stderr)
            os._exit(130)
        done.set()

    try:
        init_ray(args.address, args.num_cpus)
        for sig in (signal.SIGINT, signal.SIGTERM):  # after ray.init (it sets its own); a signal while deploying still drains
            signal.signal(sig, on_signal)
        url = deploy(settings, args.host, args.port)
    except Exception as exc:  # noqa: BLE001 - a replica that cannot load the judge, a port in use…
        print(f"editjudge serve: error: the service did not start: {exc}", file=sys.stderr)
        return 1
    print(f"editjudge serve: {args.replicas} replica(s) of {args.model} at {url} "
          f"(POST /v1/score, /v1/rank; GET /healthz, /metrics). Ctrl-C drains and stops.", file=sys.stderr)
    while not done.wait(0.5):  # a timed wait: signals are handled while waiting
        pass
    print(f"editjudge serve: draining the requests in flight (up to --drain-timeout {args.drain_timeout:g} s; "
          "Ctrl-C again stops now)", file=sys.stderr)
    left = drain(settings.drain_timeout_s)
    if left > 0:
        print(f"editjudge serve: {left} request(s) still unanswered after {args.drain_timeout:g} s; stopping",
              file=sys.stderr)
    stop()
    print("editjudge serve: stopped", file=sys.stderr)
    return 0
