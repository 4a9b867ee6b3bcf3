"""The Ray Serve application: a FastAPI ingress in front of a deployment of judge replicas.

``Ingress`` (one replica, no CPU reserved) reads and checks requests (token, body size, JSON, item count, each
image's header), fans the items out to ``JudgeModel`` replicas through a deployment handle and keeps the metrics.
Everything that reads or decodes a request (JSON, base64, image files and headers) runs in a worker thread, never
on the event loop, so one slow or hostile request cannot stall the others or ``/healthz``; whatever a request does,
it gets an answer with a reason (an unforeseen failure is a 500 ``internal_error`` naming the exception type).
``JudgeModel`` replicas each hold one judge; Serve's ``serve.batch`` gathers items from concurrent requests into
dynamic batches that go to ``Judge.score_many`` in one ``generate`` call. A replica that dies, a full queue or a
backend that fails every item answers 503 with ``Retry-After``; Serve restarts dead replicas. Shutdown drains:
:meth:`Ingress.drain` makes new requests answer 503 ``shutting_down`` and waits (up to ``--drain-timeout``) until
the requests in flight have their answers; only then does ``editjudge serve`` shut Serve down.
"""

# No `from __future__ import annotations` here: FastAPI reads the route methods' annotations (Request) at runtime.
import argparse
import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from ray import serve
from ray.serve.handle import DeploymentHandle

from editjudge import __version__
from editjudge.judge.ranking import build_ranking
from editjudge.judge.result import JudgeResult
from editjudge.serve import schema
from editjudge.serve.inputs import InputError, Limits, check_token, decode_image, decode_sources, parse_json
from editjudge.serve.metrics import CONTENT_TYPE, ServiceMetrics

APP_NAME = "editjudge"


@dataclass(frozen=True)
class ServeSettings:
    """Everything the deployments need, built by ``editjudge serve`` from its flags."""

    judge_args: argparse.Namespace
    limits: Limits = field(default_factory=Limits)
    replicas: int = 1
    max_batch: int = 32
    batch_wait_ms: float = 20.0
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    token_digest: bytes | None = None
    retry_after_s: int = 1
    request_timeout_s: float = 300.0
    max_queued_items: int = 4096
    drain_timeout_s: float = 30.0


class Unavailable(Exception):
    """The judge cannot answer now (replica gone, queue full, backend failing): 503 + Retry-After."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _AllItemsRefused(Exception):
    def __init__(self, first: InputError, items: list[dict[str, Any]]) -> None:
        super().__init__(first.detail)
        self.first = first
        self.items = items


def _cancel(calls: list[Any]) -> None:
    for call in calls:
        try:
            call.cancel()
        except Exception:  # noqa: BLE001 - already finished or gone
            pass


# ------------------------------------------------------------------------------------------------ judge replicas


@serve.deployment(name="JudgeModel")
class JudgeModel:
    """One judge per replica; concurrent items are batched by ``serve.batch`` and scored off the event loop."""

    def __init__(self, settings: ServeSettings) -> None:
        from editjudge.serve.worker import JudgeWorker

        self.worker = JudgeWorker(settings.judge_args, settings.max_batch)
        for batched in (self.score, self.compare):
            batched.set_max_batch_size(settings.max_batch)
            batched.set_batch_wait_timeout_s(settings.batch_wait_ms / 1000.0)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge")
        self._replica = uuid.uuid4().hex[:12]
        self._batches = 0

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.02)
    async def score(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Called with one item per request; Serve hands the method the list it gathered."""
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self._executor, self.worker.score, items)
        self._batches += 1
        batch = [self._replica, self._batches, len(items)]
        return [{**result, "batch": batch} for result in results]

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.02)
    async def compare(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A pairwise judge's comparisons, batched like :meth:`score`."""
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self._executor, self.worker.compare, items)
        self._batches += 1
        batch = [self._replica, self._batches, len(items)]
        return [{**result, "batch": batch} for result in results]

    async def ready(self) -> bool:
        return True


# ------------------------------------------------------------------------------------------------ HTTP ingress

api = FastAPI(
    title="editjudge",
    version=__version__,
    description="Judge image edits: scores 0-9 with reasoning, and best-of-N ranking. Images: base64, data URLs, "
    "or {\"path\": …} under the server's --allow-paths folder.",
)

_ERRORS = {401: {"model": schema.ErrorResponse}, 400: {"model": schema.ErrorResponse}, 403: {"model": schema.ErrorResponse},
           413: {"model": schema.ErrorResponse}, 422: {"model": schema.ErrorResponse}, 503: {"model": schema.ErrorResponse}}


def _body_of(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def openapi_schema() -> dict[str, Any]:
    """The API's OpenAPI document (request bodies are read by hand to enforce the size limit first)."""
    if api.openapi_schema:
        return api.openapi_schema
    document = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (schema.ScoreRequest, schema.RankRequest, schema.CompareRequest):
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[model.__name__] = body
    api.openapi_schema = document
    return document


api.openapi = openapi_schema  # type: ignore[method-assign]


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise InputError("body_too_large", f"the body has {declared} bytes; the limit is {limit} (--max-body-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InputError("body_too_large", f"the body exceeds {limit} bytes (--max-body-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes, model: type[BaseModel]) -> Any:
    data = parse_json(body)  # strict: NaN, duplicate keys, deep nesting and endless numbers are 400s with a reason
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))[:120] or 'body'}: {e['msg'][:200]}"
                             for e in exc.errors()[:5])
        raise InputError("invalid_request", problems) from None


def _error(status: int, reason: str, detail: str, items: list[dict[str, Any]] | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"reason": reason, "detail": detail}
    if items:
        body["items"] = items
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _image_payload(value: Any) -> Any:
    if isinstance(value, list):  # an edit's several source images
        return [_image_payload(v) for v in value]
    return value.model_dump() if isinstance(value, BaseModel) else value


def _score_failure(error: InputError) -> dict[str, Any]:
    return {"score": None, "expected_score": None, "mean_score": None, "scores": None, "reasoning": None,
            "error": f"input_error: {error.reason}: {error.detail}"}


def _compare_failure(error: InputError) -> dict[str, Any]:
    return {"preference": None, "probabilities": None, "consistent": None, "reasoning": None,
            "error": f"input_error: {error.reason}: {error.detail}"}


@serve.deployment(name="Ingress")
@serve.ingress(api)
class Ingress:
    """Checks requests, fans items out to the judge replicas, answers JSON, keeps ``/metrics``."""

    def __init__(self, model: DeploymentHandle, settings: ServeSettings) -> None:
        self.model = model
        self.settings = settings
        self.limits = settings.limits
        self.metrics = ServiceMetrics()
        self._in_flight = 0
        self._draining = False
        from editjudge.formats import PairwiseFormat
        from editjudge.judge.cli_common import judgment_format

        self.pairwise = isinstance(judgment_format(settings.judge_args), PairwiseFormat)

    # -- plumbing

    async def _answer(self, route: str, request: Request, handler: Callable[[], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        self.metrics.in_flight.inc()
        self._in_flight += 1
        try:
            if self._draining:
                raise Unavailable("shutting_down", "the service is shutting down; retry against another replica")
            if not check_token(request.headers.get("authorization"), self.settings.token_digest):
                raise InputError("unauthorized", "missing or wrong bearer token (Authorization: Bearer …)")
            response = await handler()
        except InputError as exc:
            self.metrics.errors.labels(exc.reason).inc()
            response = _error(exc.status, exc.reason, exc.detail)
        except Unavailable as exc:
            self.metrics.errors.labels(exc.reason).inc()
            response = _error(503, exc.reason, exc.detail, headers={"Retry-After": str(self.settings.retry_after_s)})
        except Exception as exc:  # noqa: BLE001 - whatever a request does, it gets an answer with a reason
            logging.getLogger("editjudge.serve").exception("request failed on %s", route)
            self.metrics.errors.labels("internal_error").inc()
            response = _error(500, "internal_error", f"the request failed unexpectedly ({type(exc).__name__})")
        finally:
            self.metrics.in_flight.dec()
            self._in_flight -= 1
        self.metrics.requests.labels(route, str(response.status_code)).inc()
        self.metrics.latency.labels(route).observe(time.perf_counter() - start)
        return response

    async def _request(self, request: Request, model: type[BaseModel]) -> Any:
        body = await _read_body(request, self.limits.max_body_bytes)
        return await asyncio.to_thread(_parse, body, model)  # large bodies do not stall the event loop

    def _check_samples(self, samples: int | None) -> None:
        if samples is not None and samples > self.limits.max_samples:
            raise InputError("too_many_samples", f"samples={samples} exceeds the limit of {self.limits.max_samples}")

    def _check_judge(self, pairwise: bool) -> None:
        """``wrong_judge`` when the route needs the other kind of judge than the server holds."""
        if pairwise and not self.pairwise:
            raise InputError("wrong_judge", "/v1/compare needs a pairwise judge (serve --format pairwise, or the "
                             "prepare report of `prepare --pairs`); this server scores one edit: use /v1/score")
        if self.pairwise and not pairwise:
            raise InputError("wrong_judge", "this server's judge is pairwise: compare two candidates with /v1/compare")

    def _decode_pair(self, item: schema.CompareItem) -> dict[str, Any] | InputError:
        try:
            return {
                "source": decode_sources(_image_payload(item.source), self.limits),
                "a": decode_image(_image_payload(item.a), self.limits, "candidate A"),
                "b": decode_image(_image_payload(item.b), self.limits, "candidate B"),
                "instruction": item.instruction, "both_orders": item.both_orders, "samples": item.samples,
            }
        except InputError as exc:
            self.metrics.errors.labels(exc.reason).inc()
            return exc

    def _decode(self, source: Any, edited: Any, instruction: str, samples: int | None) -> dict[str, Any] | InputError:
        try:
            return {
                "source": source if isinstance(source, bytes) else decode_sources(_image_payload(source), self.limits),
                "edited": decode_image(_image_payload(edited), self.limits, "edited"),
                "instruction": instruction,
                "samples": samples,
            }
        except InputError as exc:
            self.metrics.errors.labels(exc.reason).inc()
            return exc

    async def _judge(self, prepared: list[dict[str, Any] | InputError], call: Any = None,
                     failure: Callable[[InputError], dict[str, Any]] = _score_failure) -> list[dict[str, Any]]:
        """Results for every item: input errors as they are, the rest from the replicas (503 when they cannot);
        ``call``: the replicas' method (default ``score``; ``compare`` for pairs)."""
        bad = [p for p in prepared if isinstance(p, InputError)]
        if len(bad) == len(prepared):  # nothing to judge: the request itself is refused, with every item's reason
            first = bad[0]
            items = [{"index": i, **e.to_dict()} for i, e in enumerate(bad)]
            raise _AllItemsRefused(first, items)
        good = [p for p in prepared if not isinstance(p, InputError)]
        calls = [(call or self.model.score).remote(item) for item in good]
        try:
            outputs = await asyncio.wait_for(asyncio.gather(*calls), timeout=self.settings.request_timeout_s)
        except asyncio.TimeoutError:
            _cancel(calls)
            raise Unavailable("timeout", f"no answer within {self.settings.request_timeout_s:g} s") from None
        except Exception as exc:  # noqa: BLE001 - a dead replica, a full queue, a crashed batch: retry later
            _cancel(calls)
            kind = "overloaded" if type(exc).__name__ == "BackPressureError" else "backend_unavailable"
            raise Unavailable(kind, f"the judge could not answer ({type(exc).__name__}); retry") from None
        if all((o.get("error") or "").startswith("backend_error") for o in outputs):
            raise Unavailable("backend_error", f"the judge backend failed: {outputs[0]['error']}")
        answers = iter(outputs)
        results = []
        for p in prepared:
            if isinstance(p, InputError):
                results.append(failure(p))
            else:
                output = next(answers)
                self.metrics.observe_batch(*output.pop("batch"))
                results.append(output)
        for r in results:
            self.metrics.item_outcome(r["error"], r.get("score", r.get("preference")))
        return results

    # -- routes

    @api.post("/v1/score", response_model=schema.ScoreResponse, responses=_ERRORS, openapi_extra=_body_of(schema.ScoreRequest))
    async def score(self, request: Request) -> Response:
        """Judge edits: each item gets a score 0-9, the expected score, the reasoning, or an error."""

        async def handle() -> Response:
            self._check_judge(pairwise=False)
            body: schema.ScoreRequest = await self._request(request, schema.ScoreRequest)
            if len(body.items) > self.limits.max_items:
                raise InputError("too_many_items", f"{len(body.items)} items; the limit is {self.limits.max_items} (--max-items)")
            for item in body.items:
                self._check_samples(item.samples)
            prepared = await asyncio.to_thread(
                lambda: [self._decode(i.source, i.edited, i.instruction, i.samples) for i in body.items])
            try:
                results = await self._judge(prepared)
            except _AllItemsRefused as exc:
                return _error(exc.first.status, exc.first.reason, exc.first.detail, exc.items)
            ids = [item.id if item.id is not None else str(i) for i, item in enumerate(body.items)]
            return JSONResponse({"results": [{"id": i, **r} for i, r in zip(ids, results)]})

        return await self._answer("/v1/score", request, handle)

    @api.post("/v1/rank", response_model=schema.RankResponse, responses=_ERRORS, openapi_extra=_body_of(schema.RankRequest))
    async def rank(self, request: Request) -> Response:
        """Best-of-N: judge N candidate edits of one source and order them (the rule of ``editjudge best-of-n``)."""

        async def handle() -> Response:
            self._check_judge(pairwise=False)
            body: schema.RankRequest = await self._request(request, schema.RankRequest)
            n = len(body.candidates)
            if n > self.limits.max_items:
                raise InputError("too_many_items", f"{n} candidates; the limit is {self.limits.max_items} (--max-items)")
            if body.ids is not None and len(body.ids) != n:
                raise InputError("invalid_request", f"ids: {len(body.ids)} names for {n} candidates")
            self._check_samples(body.samples)
            ids = body.ids or [str(i) for i in range(n)]
            # the source once (off the event loop): when it is bad no candidate can be judged, the request gets its 4xx
            source = await asyncio.to_thread(decode_image, _image_payload(body.source), self.limits, "source")
            prepared = await asyncio.to_thread(
                lambda: [self._decode(source, c, body.instruction, body.samples) for c in body.candidates])
            try:
                payloads = await self._judge(prepared)
            except _AllItemsRefused as exc:
                return _error(exc.first.status, exc.first.reason, exc.first.detail, exc.items)
            results = [JudgeResult(score=p["score"], expected_score=p["expected_score"], mean_score=p["mean_score"],
                                   reasoning=p["reasoning"], error=p["error"], dimensions=p.get("dimensions"))
                       for p in payloads]
            try:
                ranking = build_ranking("source", body.instruction, ids, results, rank_by=body.rank_by)
            except ValueError as exc:  # rank_by names no dimension of this judge
                raise InputError("invalid_request", f"rank_by: {exc}") from None
            candidates = [{"rank": c.rank, "index": c.index, "id": c.candidate, **payloads[c.index]}
                          for c in ranking.candidates]
            best = ranking.best
            return JSONResponse({
                "best": best.candidate if best else None, "best_index": best.index if best else None,
                "instruction": body.instruction, "candidates": candidates,
            })

        return await self._answer("/v1/rank", request, handle)

    @api.post("/v1/compare", response_model=schema.CompareResponse, responses=_ERRORS,
              openapi_extra=_body_of(schema.CompareRequest))
    async def compare(self, request: Request) -> Response:
        """A pairwise judge: which of candidates A and B of each item is better, or a tie, with p(A), p(B), p(tie)."""

        async def handle() -> Response:
            self._check_judge(pairwise=True)
            body: schema.CompareRequest = await self._request(request, schema.CompareRequest)
            if len(body.items) > self.limits.max_items:
                raise InputError("too_many_items", f"{len(body.items)} items; the limit is {self.limits.max_items} (--max-items)")
            for item in body.items:
                self._check_samples(item.samples)
            prepared = await asyncio.to_thread(lambda: [self._decode_pair(i) for i in body.items])
            try:
                results = await self._judge(prepared, self.model.compare, _compare_failure)
            except _AllItemsRefused as exc:
                return _error(exc.first.status, exc.first.reason, exc.first.detail, exc.items)
            ids = [item.id if item.id is not None else str(i) for i, item in enumerate(body.items)]
            return JSONResponse({"results": [{"id": i, **r} for i, r in zip(ids, results)]})

        return await self._answer("/v1/compare", request, handle)

    @api.get("/healthz", response_model=schema.Health, responses={503: {"model": schema.ErrorResponse}})
    async def healthz(self) -> Response:
        """200 when a judge replica answers within 5 s (no token needed); 503 while the service drains."""
        if self._draining:
            return _error(503, "shutting_down", "the service is shutting down",
                          headers={"Retry-After": str(self.settings.retry_after_s)})
        try:
            await asyncio.wait_for(self.model.ready.remote(), timeout=5.0)
        except Exception as exc:  # noqa: BLE001
            return _error(503, "not_ready", f"no judge replica is ready ({type(exc).__name__})",
                          headers={"Retry-After": str(self.settings.retry_after_s)})
        return JSONResponse({"status": "ok", "replicas": self.settings.replicas})

    async def drain(self, timeout_s: float) -> int:
        """Refuse new requests (503 ``shutting_down``) and wait up to ``timeout_s`` for the ones in flight; returns
        how many were still unanswered when the time ran out (0: drained)."""
        self._draining = True
        deadline = time.monotonic() + max(0.0, timeout_s)
        while self._in_flight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self._in_flight

    @api.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics(self, request: Request) -> Response:
        """Prometheus text format: requests, items by outcome, batch sizes, latency, errors by reason."""
        if not check_token(request.headers.get("authorization"), self.settings.token_digest):
            return _error(401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer …)")
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)


def build_app(settings: ServeSettings) -> Any:
    """The bound Serve application: ``serve.run(build_app(settings))``. With ``--backend vllm`` the replicas run
    vLLM's async engine (continuous batching, :mod:`editjudge.serve.vllm_replica`) instead of ``serve.batch``."""
    replica = JudgeModel
    if settings.judge_args.backend == "vllm":
        from editjudge.serve.vllm_replica import VLLMJudgeModel as replica  # noqa: N813
    model = replica.options(
        num_replicas=settings.replicas,
        ray_actor_options={"num_cpus": settings.cpus_per_replica, "num_gpus": settings.gpus_per_replica},
        max_ongoing_requests=max(2 * settings.max_batch, 16),  # items queue in the replica's batcher, not the router
        max_queued_requests=settings.max_queued_items,
        graceful_shutdown_timeout_s=settings.drain_timeout_s,
        health_check_period_s=5.0,
    ).bind(settings)
    return Ingress.options(
        num_replicas=1,
        ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=256,  # with --max-body-bytes, bounds the memory of bodies being read
        graceful_shutdown_timeout_s=settings.drain_timeout_s,
    ).bind(model, settings)
