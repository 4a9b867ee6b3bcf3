"""The OpenAI-compatible backend against a local chat-completions server (stdlib http.server, 127.0.0.1)."""

from __future__ import annotations

import base64
import io
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

pytest.importorskip("openai")

from editjudge.judge import Judge  # noqa: E402

# A Qwen-like tokenisation: the tags are split into several tokens, digits are single tokens.
TOKENS = ["<think>", "looks", " fine", "</think>", "<", "answer", ">", "7", "</", "answer", ">"]
ANSWER_TOP = [("7", math.log(0.6)), ("8", math.log(0.2)), ("6", math.log(0.1)), ("</", math.log(0.1))]
EXPECTED = (7 * 0.6 + 8 * 0.2 + 6 * 0.1) / 0.9


def _choice(index: int, text: str, with_logprobs: bool) -> dict:
    choice = {"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if with_logprobs:
        content = [
            {"token": t, "logprob": math.log(0.6) if t == "7" else -0.01, "bytes": None,
             "top_logprobs": [{"token": a, "logprob": b, "bytes": None} for a, b in (ANSWER_TOP if t == "7" else [])]}
            for t in TOKENS
        ]
        choice["logprobs"] = {"content": content}
    return choice


class ChatServer(ThreadingHTTPServer):
    """Canned chat completions; the edit instruction picks the behaviour (slow, flaky, malformed, …)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.calls: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        # Optional script: (behaviour, n, request body) -> the n response texts; the reply also reports token usage.
        self.script: Callable[[str, int, dict], list[str]] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, payload: object) -> None:
        body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        user_text = "".join(p.get("text", "") for p in body["messages"][1]["content"])
        behaviour = user_text.split("Edit instruction: ")[1].split("\n")[0]
        with server.lock:
            server.requests.append(body)
            server.calls[behaviour] = server.calls.get(behaviour, 0) + 1
            calls = server.calls[behaviour]
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            if behaviour == "slow":
                time.sleep(1.5)
            if behaviour == "busy":
                time.sleep(0.2)
            if behaviour == "flaky" and calls == 1:
                return self._send(500, {"error": {"message": "try again"}})
            if behaviour == "broken":
                return self._send(500, {"error": {"message": "always down"}})
            if behaviour == "malformed":
                return self._send(200, {"unexpected": True})
            if behaviour == "no content":
                return self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                        "choices": [{"index": 0, "message": {"role": "assistant", "content": None},
                                                     "finish_reason": "stop"}]})
            if server.script is not None:
                texts = server.script(behaviour, body.get("n", 1), body)
                choices = [_choice(i, text, False) for i, text in enumerate(texts)]
                completion = sum(len(text.split()) for text in texts)
                usage = {"prompt_tokens": 100, "completion_tokens": completion, "total_tokens": 100 + completion}
                return self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                        "choices": choices, "usage": usage})
            texts = ["<think>looks fine</think><answer>7</answer>", "<think>meh</think><answer>4</answer>", "no tags"]
            choices = [_choice(i, texts[i % 3], body.get("logprobs", False)) for i in range(body.get("n", 1))]
            return self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                    "choices": choices})
        finally:
            with server.lock:
                server.in_flight -= 1


@pytest.fixture()
def server() -> Iterator[ChatServer]:
    srv = ChatServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _judge(server: ChatServer, **options: object) -> Judge:
    options = {"timeout": 5.0, "max_retries": 0, "api_key": "test", **options}
    return Judge("served-judge", backend="openai", base_url=server.url, max_new_tokens=64, **options)


def _image(color: str, size: tuple[int, int] = (120, 80)) -> Image.Image:
    return Image.new("RGB", size, color)


def test_scores_with_images_as_data_urls_and_expected_score_from_logprobs(server: ChatServer) -> None:
    judge = _judge(server)
    source, edited = _image("red", (300, 200)), _image("blue", (90, 150))
    result = judge.score(source, edited, "make it blue")
    assert (result.score, result.reasoning, result.error) == (7, "looks fine", None)
    assert result.expected_score == pytest.approx(EXPECTED)
    body = server.requests[0]
    assert body["model"] == "served-judge" and body["logprobs"] is True and body["top_logprobs"] == 20
    assert body["max_tokens"] == 64 and body["n"] == 1 and body["temperature"] == 0.0
    system, user = body["messages"]
    assert system["role"] == "system" and "<answer>" in system["content"]
    urls = [p["image_url"]["url"] for p in user["content"] if p["type"] == "image_url"]
    assert len(urls) == 2 and all(u.startswith("data:image/png;base64,") for u in urls)
    sent = [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))) for u in urls]
    expected_images = judge.request(source, edited, "make it blue").images  # the shared, training-sized images
    assert [s.size for s in sent] == [e.size for e in expected_images] and sent[0].size != sent[1].size
    texts = [p["text"] for p in user["content"] if p["type"] == "text"]
    assert texts[-2].rstrip().endswith("input image:") and texts[-1].strip() == "edited image:"


def test_without_logprobs_there_is_no_expected_score(server: ChatServer) -> None:
    result = _judge(server, logprobs=False).score(_image("red"), _image("blue"), "make it blue")
    assert result.score == 7 and result.expected_score is None
    assert "logprobs" not in server.requests[0]


def test_retries_a_500_then_succeeds(server: ChatServer) -> None:
    result = _judge(server, max_retries=2).score(_image("red"), _image("blue"), "flaky")
    assert result.score == 7 and server.calls["flaky"] == 2


def test_server_errors_timeouts_and_malformed_responses_are_per_item(server: ChatServer) -> None:
    judge = _judge(server, timeout=0.5, max_retries=0)
    items = [(_image("red"), _image("blue"), text) for text in ("fine", "slow", "malformed", "no content", "broken")]
    fine, slow, malformed, empty, broken = judge.score_many(items)
    assert fine.score == 7 and fine.error is None
    assert slow.score is None and slow.error.startswith("backend_error: timed out after 0.5s")
    assert malformed.error.startswith("backend_error: malformed response") and "choices" in malformed.error
    assert empty.error.startswith("backend_error: malformed response") and "message.content" in empty.error
    assert broken.error.startswith("backend_error: HTTP 500") and "always down" in broken.error


def test_concurrency_limit_and_input_order(server: ChatServer) -> None:
    judge = _judge(server, concurrency=2)
    items = [(_image("red"), _image(c), "busy") for c in ("blue", "green", "white", "black", "yellow", "gray")]
    results = judge.score_many(items)
    assert [r.score for r in results] == [7] * 6
    assert server.max_in_flight == 2


def test_avg_at_k_asks_for_n_samples(server: ChatServer) -> None:
    judge = _judge(server, num_samples=3, temperature=0.7)
    result = judge.score(_image("red"), _image("blue"), "make it blue")
    assert server.requests[0]["n"] == 3 and server.requests[0]["temperature"] == 0.7
    assert result.scores == (7, 4, None) and result.mean_score == pytest.approx(5.5) and result.score == 6
    assert result.expected_score == pytest.approx(EXPECTED)  # mean over the parsed samples


def test_unreachable_server_and_adapter_are_clear_errors() -> None:
    judge = Judge("m", backend="openai", base_url="http://127.0.0.1:9/v1", api_key="x", max_retries=0, timeout=2)
    result = judge.score(_image("red"), _image("blue"), "make it blue")
    assert result.error.startswith("backend_error: cannot reach http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="--lora-modules"):
        Judge("m", adapter="some/adapter", backend="openai", base_url="http://127.0.0.1:9/v1", api_key="x")
