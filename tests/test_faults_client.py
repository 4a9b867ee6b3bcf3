"""The fault suite, client side: ``JudgeClient`` and ``edit_reward_fn`` against a real HTTP server on loopback that
misbehaves on purpose (no Ray, no model: fast).

An RL loop calls the reward thousands of times; whatever the server (or a proxy in front of it) answers, the reward
must never lie: every answer is checked (JSON, one result per item, ids in order, finite numbers in 0..9) before it
becomes a reward, every failure goes through the ``on_failure`` policy, a 4xx is never retried, waits are capped.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

httpx = pytest.importorskip("httpx")

from editjudge.client import EditReward, JudgeClient, RewardError, ServiceError, edit_reward_fn  # noqa: E402
from editjudge.client_checks import retry_after  # noqa: E402

CASE_SECONDS = 20


def _png(color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, "PNG")
    return buffer.getvalue()


SRC, EDT = _png("red"), _png("blue")


def _good(item: dict[str, Any], score: int = 7) -> dict[str, Any]:
    return {"id": item["id"], "score": score, "expected_score": score - 0.25, "mean_score": float(score), "scores": None,
            "reasoning": "fine", "error": None}


def _answer(mode: str, items: list[dict[str, Any]], attempt: int) -> tuple[int, dict[str, str], bytes]:
    """What the server says in ``mode`` to a request for ``items`` (``attempt``: how many came before it)."""
    json_type = {"Content-Type": "application/json"}
    ok = [_good(i) for i in items]

    def body(obj: Any) -> bytes:
        return json.dumps(obj).encode()

    if mode == "ok":
        return 200, json_type, body({"results": ok})
    if mode == "html200":
        return 200, {"Content-Type": "text/html"}, b"<html><body>Sign in to the proxy</body></html>"
    if mode == "text403":
        return 403, {"Content-Type": "text/plain"}, b"Forbidden"
    if mode == "bare400":
        return 400, {}, b""
    if mode == "bare500":
        return 500, {"Content-Type": "text/plain"}, b"Internal Server Error"
    if mode == "empty200":
        return 200, json_type, b""
    if mode == "short":
        return 200, json_type, body({"results": ok[:-1]})
    if mode == "long":
        return 200, json_type, body({"results": ok + ok[:1]})
    if mode == "reversed":
        return 200, json_type, body({"results": ok[::-1]})
    if mode == "no_results":
        return 200, json_type, body({"answers": ok})
    if mode == "list_body":
        return 200, json_type, body(ok)
    if mode in ("nan", "inf", "score12", "score_bool", "score_text", "score_float", "scores_junk", "not_object"):
        bad = dict(ok[0])
        if mode == "nan":
            raw = json.dumps({"results": [{**bad, "expected_score": "NAN"}, *ok[1:]]}).replace('"NAN"', "NaN")
            return 200, json_type, raw.encode()
        if mode == "inf":
            raw = json.dumps({"results": [{**bad, "expected_score": "INF"}, *ok[1:]]}).replace('"INF"', "Infinity")
            return 200, json_type, raw.encode()
        bad = {"score12": {**bad, "score": 12, "expected_score": None}, "score_bool": {**bad, "score": True, "expected_score": None},
               "score_text": {**bad, "expected_score": "7"}, "score_float": {**bad, "score": 6.5, "expected_score": None},
               "scores_junk": {**bad, "scores": "7,7"}, "not_object": "7"}[mode]
        return 200, json_type, body({"results": [bad, *ok[1:]]})
    if mode == "retry_after_huge":
        if attempt == 0:
            return 503, {"Retry-After": "999999999", **json_type}, body({"error": {"reason": "overloaded", "detail": "x"}})
        return 200, json_type, body({"results": ok})
    if mode == "retry_after_junk":
        if attempt < 3:
            value = ["nan", "-5", "Wed, 21 Oct 2015 07:28:00 GMT"][attempt]
            return 503, {"Retry-After": value, **json_type}, body({"error": {"reason": "overloaded", "detail": "x"}})
        return 200, json_type, body({"results": ok})
    if mode == "bad_gzip":
        return 200, {"Content-Encoding": "gzip", **json_type}, b"this is not gzip"
    if mode == "gzip_ok":
        return 200, {"Content-Encoding": "gzip", **json_type}, gzip.compress(body({"results": ok}))
    if mode == "redirect":
        return 302, {"Location": "/redirect/v1/score"}, b""
    if mode == "all_refused":
        items_err = [{"index": k, "reason": "not_an_image", "detail": "no"} for k in range(len(items))]
        return 422, json_type, body({"error": {"reason": "not_an_image", "detail": "no", "items": items_err}})
    if mode == "refused_wrong_count":
        return 422, json_type, body({"error": {"reason": "not_an_image", "detail": "no", "items": [{"index": 0}]}})
    raise AssertionError(mode)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802
        mode = self.path.strip("/").split("/")[0]
        length = int(self.headers.get("content-length") or 0)
        payload = json.loads(self.rfile.read(length) or b"{}")
        server: Any = self.server
        with server.lock:
            attempt = server.calls[mode]
            server.calls[mode] += 1
        status, headers, raw = _answer(mode, payload.get("items", []), attempt)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture(scope="module")
def hostile() -> Any:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.calls = Counter()  # type: ignore[attr-defined]
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: Any, mode: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{mode}"


ITEMS = [(SRC, EDT, "make it blue"), (EDT, SRC, "make it red"), (SRC, SRC, "keep it")]

# mode -> the reason the whole answer is refused with (ServiceError.reason)
WHOLE_ANSWER = {
    "html200": "not_json", "empty200": "not_json", "short": "invalid_response", "long": "invalid_response",
    "reversed": "invalid_response", "no_results": "invalid_response", "list_body": "invalid_response",
    "bad_gzip": "invalid_response", "text403": "http_error", "bare400": "http_error", "redirect": "http_error",
    "refused_wrong_count": "not_an_image",
}
# mode -> the first item's error (the other items keep their rewards)
ONE_ITEM = {"nan": "expected_score", "inf": "expected_score", "score12": "score 12", "score_bool": "score True",
            "score_text": "expected_score '7'", "score_float": "score 6.5", "scores_junk": "scores",
            "not_object": "not an object"}


@pytest.mark.parametrize("mode", sorted(WHOLE_ANSWER))
def test_an_unusable_answer_goes_through_the_failure_policy(hostile: Any, mode: str, time_limit) -> None:
    url = _url(hostile, mode)
    with pytest.raises(ServiceError) as caught:
        JudgeClient(url, retries=2, backoff=0.01).score(ITEMS)
    assert caught.value.reason == WHOLE_ANSWER[mode], caught.value
    assert "Traceback" not in str(caught.value) and len(str(caught.value)) < 800
    assert edit_reward_fn(url, retries=0, on_failure=0.0)(*zip(*ITEMS)) == [0.0, 0.0, 0.0]
    assert edit_reward_fn(url, retries=0, on_failure="none")(*zip(*ITEMS)) == [None, None, None]
    with pytest.raises(ServiceError):
        edit_reward_fn(url, retries=0)(*zip(*ITEMS))


@pytest.mark.parametrize("mode", sorted(ONE_ITEM))
def test_a_bad_value_fails_its_own_item_only(hostile: Any, mode: str, time_limit) -> None:
    url = _url(hostile, mode)
    results = JudgeClient(url, retries=0).score(ITEMS)
    assert len(results) == 3 and results[0]["score"] is None and results[0]["expected_score"] is None
    assert results[0]["error"].startswith("invalid_response") and ONE_ITEM[mode] in results[0]["error"]
    assert [r["score"] for r in results[1:]] == [7, 7]
    values = edit_reward_fn(url, retries=0, on_failure="none")(*zip(*ITEMS))
    assert values == [None, 6.75, 6.75] and all(v is None or math.isfinite(v) for v in values)
    assert edit_reward_fn(url, retries=0, on_failure=-1.0)(*zip(*ITEMS))[0] == -1.0
    with pytest.raises(RewardError) as caught:
        edit_reward_fn(url, retries=0)(*zip(*ITEMS))
    assert list(caught.value.failures) == [0]


def test_4xx_is_never_retried_and_5xx_is(hostile: Any, time_limit) -> None:
    for mode, expected_calls in (("text403", 1), ("bare400", 1), ("bare500", 3)):
        before = hostile.calls[mode]
        with pytest.raises(ServiceError) as caught:
            JudgeClient(_url(hostile, mode), retries=2, backoff=0.01).score(ITEMS[:1])
        assert hostile.calls[mode] - before == expected_calls, mode
        assert caught.value.status in (403, 400, 500)
    assert "Forbidden" in str(caught.value) or caught.value.status == 500


def test_retry_after_is_capped_and_junk_headers_fall_back_to_backoff(hostile: Any, time_limit) -> None:
    start = time.monotonic()
    client = JudgeClient(_url(hostile, "retry_after_huge"), retries=2, backoff=0.01, max_retry_after=0.3)
    assert [r["score"] for r in client.score(ITEMS[:1])] == [7]
    assert time.monotonic() - start < 10  # 999999999 s asked for, 0.3 s waited
    start = time.monotonic()
    assert JudgeClient(_url(hostile, "retry_after_junk"), retries=3, backoff=0.01).score(ITEMS[:1])[0]["score"] == 7
    assert time.monotonic() - start < 10
    assert retry_after("999999999", 30) == 30 and retry_after("nan", 30) is None and retry_after("-1", 30) is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 30) is None and retry_after("2", 30) == 2.0
    assert retry_after("1e999", 30) is None and retry_after(None, 30) is None


def test_gzip_answers_and_refused_items_still_work(hostile: Any, time_limit) -> None:
    assert [r["score"] for r in JudgeClient(_url(hostile, "gzip_ok")).score(ITEMS)] == [7, 7, 7]
    refused = JudgeClient(_url(hostile, "all_refused")).score(ITEMS)
    assert [r["error"].split(":")[0] for r in refused] == ["input_error"] * 3
    assert edit_reward_fn(_url(hostile, "all_refused"), on_failure="none")(*zip(*ITEMS)) == [None, None, None]


def test_one_missing_or_hostile_image_path_fails_only_its_item(hostile: Any, tmp_path: Path, time_limit) -> None:
    good = tmp_path / "a.png"
    good.write_bytes(SRC)
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    sources = [str(good), str(tmp_path / "missing.png"), str(tmp_path / "fifo.png"), str(tmp_path / "zero.png"),
               str(tmp_path)]
    edited = [str(good)] * len(sources)
    reward = edit_reward_fn(_url(hostile, "ok"), on_failure="none")
    start = time.monotonic()
    assert reward(sources, edited, "make it blue") == [6.75, None, None, None, None]
    assert time.monotonic() - start < 5  # the FIFO was not waited on, /dev/zero not read
    results = JudgeClient(_url(hostile, "ok")).score([{"id": "m", "source": sources[1], "edited": edited[1],
                                                       "instruction": "x"}, (good, good, "y")])
    assert results[0]["id"] == "m" and results[0]["error"].startswith("input_error: missing_file")
    assert results[1]["score"] == 7
    with pytest.raises(RewardError) as caught:
        edit_reward_fn(_url(hostile, "ok"))(sources[:3], edited[:3], "x")
    assert sorted(caught.value.failures) == [1, 2] and "not_a_regular_file" in caught.value.failures[2]


def test_an_instruction_that_is_not_text_fails_only_its_item(hostile: Any, tmp_path: Path, time_limit) -> None:
    """A lone surrogate would make the service refuse the whole request (400 malformed_json): the client fails that
    item alone, before sending, and the others get their rewards."""
    good = tmp_path / "a.png"
    good.write_bytes(SRC)
    reward = edit_reward_fn(_url(hostile, "ok"), on_failure="none")
    assert reward([str(good)] * 3, [str(good)] * 3, ["make it blue", "make it \ud800 red", "a \U0001F600"]) == \
        [6.75, None, 6.75]
    results = JudgeClient(_url(hostile, "ok")).score([{"id": "x\udcff", "source": SRC, "edited": EDT,
                                                       "instruction": "y"}], raise_errors=False)
    assert results[0]["error"].startswith("input_error: malformed_json: the id holds a lone surrogate")


def test_async_reward_follows_the_same_policy(hostile: Any, time_limit) -> None:
    import asyncio

    reward = EditReward(JudgeClient(_url(hostile, "nan"), retries=0), on_failure=0.0)
    assert asyncio.run(reward.acall(*zip(*ITEMS))) == [0.0, 6.75, 6.75]
    down = EditReward(JudgeClient(_url(hostile, "html200"), retries=0), on_failure="none")
    assert asyncio.run(down.acall(*zip(*ITEMS))) == [None, None, None]
    with pytest.raises(ServiceError):
        asyncio.run(EditReward(JudgeClient(_url(hostile, "short"), retries=0)).acall(*zip(*ITEMS)))


def test_a_dead_port_is_a_named_failure_not_a_crash(time_limit) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    assert edit_reward_fn(url, retries=1, backoff=0.01, on_failure="none")(*zip(*ITEMS)) == [None, None, None]
    with pytest.raises(ServiceError) as caught:
        JudgeClient(url, retries=0).score(ITEMS)
    assert caught.value.reason == "connection_error"


@pytest.mark.parametrize("on_failure", [math.nan, math.inf, -math.inf, True, False, "zero", None, "0.0", [0.0]])
def test_a_policy_that_is_not_one_is_refused_at_construction(on_failure: Any) -> None:
    with pytest.raises(ValueError, match="on_failure"):
        edit_reward_fn("http://127.0.0.1:9", on_failure=on_failure)


@pytest.mark.parametrize("options", [{"timeout": -1}, {"timeout": math.nan}, {"timeout": 0}, {"retries": -1},
                                     {"retries": 1.5}, {"retries": True}, {"backoff": math.inf}, {"concurrency": 0},
                                     {"items_per_request": 0}, {"max_retry_after": -1}, {"max_backoff": math.nan}])
def test_client_options_that_make_no_sense_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        JudgeClient("http://127.0.0.1:9", **options)


def test_the_suite_covers_every_mode() -> None:
    modes = set(WHOLE_ANSWER) | set(ONE_ITEM)
    assert len(modes) >= 20 and sys.platform != "win32"
