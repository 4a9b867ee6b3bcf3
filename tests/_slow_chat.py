"""A chat-completions server on loopback that thinks for a while, then answers 6 (a judge with no model to load,
whose requests stay in flight long enough for a test to signal or kill what is waiting on them)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "<think>fine</think><answer>6</answer>"


class _SlowChat(BaseHTTPRequestHandler):
    delay_s = 3.0

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        time.sleep(self.delay_s)
        choices = [{"index": i, "finish_reason": "stop", "logprobs": None,
                    "message": {"role": "assistant", "content": ANSWER}} for i in range(int(body.get("n") or 1))]
        raw = json.dumps({"id": "c", "object": "chat.completion", "created": 0, "model": "judge", "choices": choices,
                          "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@contextmanager
def slow_chat_server(delay_s: float) -> Iterator[str]:
    """The server's ``/v1`` base URL while the block runs."""
    handler = type("SlowChat", (_SlowChat,), {"delay_s": delay_s})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
