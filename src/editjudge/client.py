"""Client of ``editjudge serve``: :class:`JudgeClient` (sync and async) and :func:`edit_reward_fn` for RL trainers.

Light: httpx, Pillow and numpy only (no torch). Images may be paths, bytes, PIL images or HxWxC arrays; they are
sent as base64 (or as ``{"path": …}`` with ``send_paths=True`` when the server shares a folder, ``--allow-paths``).
Requests are split into chunks of ``items_per_request``, sent ``concurrency`` at a time, each with a timeout, and
retried with exponential backoff (and the server's ``Retry-After``, capped at ``max_retry_after``) on 5xx answers and
connection errors — scoring is idempotent, so a retried request gets the same answer; a 4xx is never retried.
Every answer is checked before it is used (:mod:`editjudge.client_checks`: JSON, one result per item, ids in order,
finite scores in 0..9); an image path that cannot be read fails its own item (``input_error``), not the request.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from editjudge.client_checks import (
    InvalidAnswer, check_number, check_text, decode_json, failed_result, finite_number, retry_after, score_results,
)

RETRY_STATUS = frozenset({500, 502, 503, 504})  # 500: Serve's proxy when a replica died mid-request


class ServiceError(RuntimeError):
    """The service refused a request (4xx) or stayed unavailable through every retry."""

    def __init__(self, status: int | None, reason: str, detail: str) -> None:
        super().__init__(f"{status or 'no answer'} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail


class RewardError(RuntimeError):
    """Some items got no reward (``on_failure="raise"``); ``failures`` maps item index to the reason."""

    def __init__(self, failures: dict[int, str]) -> None:
        shown = "; ".join(f"#{i}: {why}" for i, why in list(failures.items())[:5])
        super().__init__(f"{len(failures)} item(s) got no reward: {shown}")
        self.failures = failures


def encode_image(image: Any, send_paths: bool = False) -> str | dict[str, str]:
    """An image as the API takes it: base64 (paths are read here), a data URL as given, or ``{"path": …}``."""
    if isinstance(image, str) and image.startswith("data:"):
        return image
    if isinstance(image, (str, os.PathLike)):
        if send_paths:
            return {"path": os.fspath(image)}
        from editjudge.data.files import read_file

        data = read_file(image)  # regular files only, bounded, never blocking (FileRejected names the problem)
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    else:
        data = _png_bytes(image)
    return base64.b64encode(data).decode("ascii")


def _png_bytes(image: Any) -> bytes:
    from PIL import Image

    if not isinstance(image, Image.Image):
        import numpy as np

        array = np.asarray(image)
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
            array = np.moveaxis(array, 0, -1)  # CHW -> HWC
        if array.dtype != np.uint8:
            scale = 255.0 if array.size and float(array.max()) <= 1.0 else 1.0
            array = np.clip(np.rint(array.astype(np.float64) * scale), 0, 255).astype(np.uint8)
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        image = Image.fromarray(array)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _item_payload(item: Any, index: int, send_paths: bool) -> dict[str, Any]:
    if isinstance(item, Mapping):
        source, edited, instruction = item["source"], item["edited"], item["instruction"]
        extra = {k: item[k] for k in ("id", "samples") if item.get(k) is not None}
    elif hasattr(item, "source") and hasattr(item, "edited") and hasattr(item, "instruction"):
        source, edited, instruction, extra = item.source, item.edited, item.instruction, {}
    else:
        source, edited, instruction = item
        extra = {}
    from editjudge.client_compare import encode_sources

    return check_text({
        "id": str(extra.pop("id", index)), "source": encode_sources(source, send_paths),
        "edited": encode_image(edited, send_paths), "instruction": instruction, **extra,
    })


def _local_payload(item: Any, index: int, send_paths: bool) -> dict[str, Any]:
    """The item's payload, or (a path that cannot be read, an image that cannot be encoded) a failed result."""
    try:
        return _item_payload(item, index, send_paths)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        named = item.get("id") if isinstance(item, Mapping) else None
        return failed_result(str(named if named is not None else index),
                             f"input_error: {reason}: {getattr(exc, 'detail', None) or exc}")


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return decode_json(response.content, response.headers.get("content-type"))
    except InvalidAnswer:
        return None


def _refused_items(status: int, body: Any, size: int) -> list[dict[str, Any]] | None:
    """Per-item errors when the server refused a request only because every item was bad."""
    error = body.get("error") if isinstance(body, dict) else None
    items = error.get("items") if isinstance(error, dict) else None
    if isinstance(items, list) and len(items) == size and 400 <= status < 500 and all(isinstance(i, dict) for i in items):
        return [{"score": None, "expected_score": None, "mean_score": None, "scores": None, "reasoning": None,
                 "error": f"input_error: {i.get('reason')}: {i.get('detail')}"} for i in items]
    return None


def _error_of(response: httpx.Response) -> ServiceError:
    body = _json_or_none(response)
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    text = response.content[:200].decode("utf-8", "replace")
    return ServiceError(response.status_code, str(error.get("reason", "http_error"))[:100],
                        str(error.get("detail", text))[:500])


class JudgeClient:
    """Talk to ``editjudge serve`` at ``url``.

    ``score(items)`` / ``await ascore(items)``: items are mappings (``source``, ``edited``, ``instruction``,
    optional ``id``, ``samples``), ``EditItem`` objects or ``(source, edited, instruction)`` triples; returns one
    result dict per item, in order (``id``, ``score``, ``expected_score``, ``reasoning``, ``error``…). A bad item
    gets its ``error``; the others are scored. ``rank(source, candidates, instruction)`` returns the best-of-N
    ranking. Raises :class:`ServiceError` for refused requests (4xx) or when retries are exhausted.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 120.0,
        retries: int = 5,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        concurrency: int = 8,
        items_per_request: int = 16,
        send_paths: bool = False,
        max_retry_after: float = 30.0,
    ) -> None:
        check_number("timeout", timeout, 0, low_open=True)
        check_number("retries", retries, 0, integer=True)
        check_number("backoff", backoff, 0)
        check_number("max_backoff", max_backoff, 0)
        check_number("concurrency", concurrency, 1, integer=True)
        check_number("items_per_request", items_per_request, 1, integer=True)
        check_number("max_retry_after", max_retry_after, 0)
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self.items_per_request = items_per_request
        self.send_paths = send_paths
        self.max_retry_after = float(max_retry_after)
        self._sync: httpx.Client | None = None
        self._lock = threading.Lock()

    # -- plumbing

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        """The wait before retry ``attempt``: jittered exponential backoff, or the server's ``Retry-After`` when it
        asks for longer — never more than ``max_retry_after`` (a huge or hostile header cannot stall the caller)."""
        delay = min(self.max_backoff, self.backoff * 2 ** min(attempt, 32)) * (0.5 + random.random() / 2)
        after = retry_after(response.headers.get("retry-after") if response is not None else None, self.max_retry_after)
        return min(max(delay, after or 0.0), max(self.max_retry_after, self.max_backoff))

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._sync is None:
                limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
                self._sync = httpx.Client(timeout=self.timeout, headers=self.headers, limits=limits)
            return self._sync

    def _post(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        last: ServiceError | None = None
        for attempt in range(self.retries + 1):
            response = None
            try:
                response = self._client().post(self.url + path, json=payload)
                if response.status_code not in RETRY_STATUS:
                    return response
                last = _error_of(response)
            except httpx.TransportError as exc:  # connection refused/reset, timeouts
                last = ServiceError(None, "connection_error", f"{type(exc).__name__}: {exc}")
            except httpx.HTTPError as exc:  # a broken answer (bad encoding, redirects): retrying will not mend it
                raise ServiceError(None, "invalid_response", f"{type(exc).__name__}: {exc}") from None
            if attempt < self.retries:
                time.sleep(self._delay(attempt, response))
        assert last is not None
        raise last

    async def _apost(self, client: httpx.AsyncClient, path: str, payload: dict[str, Any]) -> httpx.Response:
        last: ServiceError | None = None
        for attempt in range(self.retries + 1):
            response = None
            try:
                response = await client.post(self.url + path, json=payload)
                if response.status_code not in RETRY_STATUS:
                    return response
                last = _error_of(response)
            except httpx.TransportError as exc:
                last = ServiceError(None, "connection_error", f"{type(exc).__name__}: {exc}")
            except httpx.HTTPError as exc:
                raise ServiceError(None, "invalid_response", f"{type(exc).__name__}: {exc}") from None
            if attempt < self.retries:
                await asyncio.sleep(self._delay(attempt, response))
        assert last is not None
        raise last

    def _plan(self, items: Iterable[Any]) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
        """Every item's payload or failed result (in order), and the payloads to send in chunks."""
        payloads = [_local_payload(item, i, self.send_paths) for i, item in enumerate(items)]
        sendable = [p for p in payloads if "error" not in p]
        n = self.items_per_request
        return payloads, [sendable[i : i + n] for i in range(0, len(sendable), n)]

    @staticmethod
    def _merge(payloads: list[dict[str, Any]], parts: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """One result per item, in order: the service's for the items sent, the local failure for the others."""
        answered = iter(r for part in parts for r in part)
        return [p if "error" in p else next(answered) for p in payloads]

    def _chunk_results(self, chunk: list[dict[str, Any]], raise_errors: bool) -> list[dict[str, Any]]:
        try:
            return self._results(self._post("/v1/score", {"items": chunk}), chunk)
        except ServiceError as exc:
            if raise_errors:
                raise
            return [failed_result(item["id"], f"service_error: {exc}") for item in chunk]

    @staticmethod
    def _results(response: httpx.Response, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The checked results for ``chunk``; :class:`ServiceError` when the answer cannot be used at all."""
        ids = [item["id"] for item in chunk]
        if response.status_code == 200:
            try:
                return score_results(decode_json(response.content, response.headers.get("content-type")), ids)
            except InvalidAnswer as exc:
                raise ServiceError(200, exc.reason, exc.detail) from None
        refused = _refused_items(response.status_code, _json_or_none(response), len(chunk))
        if refused is None:
            raise _error_of(response)
        return [{"id": item_id, **r} for item_id, r in zip(ids, refused)]

    @staticmethod
    def _ranking(response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise _error_of(response)
        try:
            body = decode_json(response.content, response.headers.get("content-type"))
        except InvalidAnswer as exc:
            raise ServiceError(200, exc.reason, exc.detail) from None
        if not isinstance(body, dict) or not isinstance(body.get("candidates"), list):
            raise ServiceError(200, "invalid_response", "the ranking has no 'candidates' list")
        return body

    # -- sync

    def score(self, items: Iterable[Any], *, raise_errors: bool = True) -> list[dict[str, Any]]:
        """One result per item, in order (see the class docstring). ``raise_errors=False``: a request the service
        refused or never answered fails only its own items (``error`` = ``service_error: …``) instead of raising."""
        payloads, chunks = self._plan(items)
        if len(chunks) <= 1:
            return self._merge(payloads, [self._chunk_results(c, raise_errors) for c in chunks])
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            parts = list(pool.map(lambda c: self._chunk_results(c, raise_errors), chunks))
        return self._merge(payloads, parts)

    def rank(self, source: Any, candidates: Sequence[Any], instruction: str, ids: Sequence[str] | None = None,
             samples: int | None = None) -> dict[str, Any]:
        """The best-of-N ranking: ``best``, ``best_index`` and ``candidates`` best first."""
        return self._ranking(self._post("/v1/rank", self._rank_payload(source, candidates, instruction, ids, samples)))

    def _rank_payload(self, source: Any, candidates: Sequence[Any], instruction: str, ids: Sequence[str] | None,
                      samples: int | None) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "source": encode_image(source, self.send_paths), "instruction": instruction,
            "candidates": [encode_image(c, self.send_paths) for c in candidates],
        }
        if ids is not None:
            payload["ids"] = list(ids)
        if samples is not None:
            payload["samples"] = samples
        return payload

    # -- a pairwise judge (``POST /v1/compare``)

    def _pair_chunks(self, items: Iterable[Any], both_orders: bool) -> list[list[dict[str, Any]]]:
        from editjudge.client_compare import pair_payload

        payloads = [pair_payload(item, i, self.send_paths, both_orders) for i, item in enumerate(items)]
        n = self.items_per_request
        return [payloads[i : i + n] for i in range(0, len(payloads), n)]

    @staticmethod
    def _pair_results(response: httpx.Response, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from editjudge.client_compare import checked_results, refused_pairs

        try:
            body = response.json() if response.content else None
        except ValueError:
            raise ServiceError(response.status_code, "bad_answer", "the answer is not JSON") from None
        if response.status_code == 200:
            try:
                return checked_results(body.get("results") if isinstance(body, dict) else None, chunk)
            except ValueError as exc:
                raise ServiceError(response.status_code, "bad_answer", str(exc)) from None
        refused = refused_pairs(response.status_code, body, len(chunk))
        if refused is None:
            raise _error_of(response)
        return [{"id": item["id"], **r} for item, r in zip(chunk, refused)]

    def compare(self, items: Iterable[Any], both_orders: bool = False) -> list[dict[str, Any]]:
        """A pairwise judge's verdict per item ``(source, a, b, instruction)`` (or a mapping with those keys):
        ``preference`` (A, B, tie), ``probabilities``, with ``both_orders`` ``consistent``; in order."""
        chunks = self._pair_chunks(items, both_orders)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            parts = pool.map(lambda c: self._pair_results(self._post("/v1/compare", {"items": c}), c), chunks)
            return [r for part in parts for r in part]

    async def acompare(self, items: Iterable[Any], both_orders: bool = False) -> list[dict[str, Any]]:
        """Like :meth:`compare`, on the running event loop."""
        chunks = self._pair_chunks(items, both_orders)
        gate = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, headers=self.headers) as client:

            async def one(chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
                async with gate:
                    return self._pair_results(await self._apost(client, "/v1/compare", {"items": chunk}), chunk)

            parts = await asyncio.gather(*(one(c) for c in chunks))
        return [r for part in parts for r in part]

    def health(self) -> bool:
        """True when the service answers ``/healthz`` with 200."""
        try:
            return self._client().get(self.url + "/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    def __enter__(self) -> JudgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- async

    async def ascore(self, items: Iterable[Any], *, raise_errors: bool = True) -> list[dict[str, Any]]:
        """Like :meth:`score`, on the running event loop."""
        payloads, chunks = self._plan(items)
        gate = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, headers=self.headers) as client:

            async def one(chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
                async with gate:
                    try:
                        return self._results(await self._apost(client, "/v1/score", {"items": chunk}), chunk)
                    except ServiceError as exc:
                        if raise_errors:
                            raise
                        return [failed_result(item["id"], f"service_error: {exc}") for item in chunk]

            parts = await asyncio.gather(*(one(c) for c in chunks))
        return self._merge(payloads, parts)

    async def arank(self, source: Any, candidates: Sequence[Any], instruction: str, ids: Sequence[str] | None = None,
                    samples: int | None = None) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=self.timeout, headers=self.headers) as client:
            payload = self._rank_payload(source, candidates, instruction, ids, samples)
            response = await self._apost(client, "/v1/rank", payload)
        return self._ranking(response)


class EditReward:
    """``reward(sources, edited_images, instructions) -> list[float | None]`` over a running ``editjudge serve``.

    ``value``: ``"expected_score"`` (Σ k·p(k), smooth; falls back to the parsed score when the backend gave no
    probabilities) or ``"score"`` (the parsed 0–9 answer); for a dimension judge also ``"overall"``, a dimension's
    name, or ``{dimension: weight}`` (:mod:`editjudge.client_value`). ``on_failure`` says what an item that got no value
    becomes (bad image, unparsable answer, service down after retries): ``"raise"`` (default: :class:`RewardError`,
    or :class:`ServiceError`), ``"none"`` (``None`` for that item), or a number the caller chooses (e.g. ``0.0``).
    """

    def __init__(self, client: JudgeClient, value: str | Mapping[str, float] = "expected_score",
                 on_failure: str | float = "raise") -> None:
        from editjudge.client_value import value_picker

        self._pick = value_picker(value)
        if not (isinstance(on_failure, str) and on_failure in ("raise", "none")) and not finite_number(on_failure):
            raise ValueError(f"on_failure must be 'raise', 'none' or a finite number (e.g. 0.0), got {on_failure!r}")
        self.client = client
        self.value = value
        self.on_failure = on_failure

    def _items(self, sources: Sequence[Any], edited: Sequence[Any], instructions: Sequence[str] | str) -> list[Any]:
        if isinstance(instructions, str):
            instructions = [instructions] * len(edited)
        if not len(sources) == len(edited) == len(instructions):
            raise ValueError(f"got {len(sources)} sources, {len(edited)} edited images, {len(instructions)} instructions")
        return list(zip(sources, edited, instructions))

    def _values(self, results: list[dict[str, Any]], n: int) -> list[float | None]:
        if len(results) != n:  # never a shorter or longer list of rewards than items
            return self._down(n, ServiceError(None, "invalid_response", f"{len(results)} results for {n} items"))
        values: list[float | None] = []
        failures: dict[int, str] = {}
        for i, r in enumerate(results):  # results were checked by JudgeClient: finite numbers 0..9 or None
            v = self._pick(r)
            if not finite_number(v):
                failures[i] = r.get("error") or "no score"
                v = None
            values.append(None if v is None else float(v))
        return self._apply(values, failures)

    def _apply(self, values: list[float | None], failures: dict[int, str]) -> list[float | None]:
        if failures and self.on_failure == "raise":
            raise RewardError(failures)
        fill = None if self.on_failure == "none" else float(self.on_failure) if failures else None
        return [fill if i in failures else v for i, v in enumerate(values)]

    def _down(self, n: int, exc: ServiceError) -> list[float | None]:
        if self.on_failure == "raise":
            raise exc
        return self._apply([None] * n, {i: str(exc) for i in range(n)})

    def __call__(self, sources: Sequence[Any], edited_images: Sequence[Any],
                 instructions: Sequence[str] | str) -> list[float | None]:
        items = self._items(sources, edited_images, instructions)
        try:
            return self._values(self.client.score(items, raise_errors=self.on_failure == "raise"), len(items))
        except ServiceError as exc:
            return self._down(len(items), exc)

    async def acall(self, sources: Sequence[Any], edited_images: Sequence[Any],
                    instructions: Sequence[str] | str) -> list[float | None]:
        items = self._items(sources, edited_images, instructions)
        try:
            return self._values(await self.client.ascore(items, raise_errors=self.on_failure == "raise"), len(items))
        except ServiceError as exc:
            return self._down(len(items), exc)


def edit_reward_fn(
    url: str,
    *,
    token: str | None = None,
    value: str | Mapping[str, float] = "expected_score",
    on_failure: str | float = "raise",
    **client_options: Any,
) -> Callable[[Sequence[Any], Sequence[Any], Sequence[str] | str], list[float | None]]:
    """A reward callable for RL of image-editing models: ``(sources, edited_images, instructions) -> list``.

    Images: PIL images, HxWxC (or CxHxW) arrays (uint8, or floats in 0..1), bytes or paths. See
    :class:`EditReward` for ``value`` and the failure policy ``on_failure`` (``"raise"`` | ``"none"`` | a number);
    ``client_options`` go to :class:`JudgeClient` (``timeout``, ``retries``, ``concurrency``…).
    """
    return EditReward(JudgeClient(url, token, **client_options), value=value, on_failure=on_failure)
