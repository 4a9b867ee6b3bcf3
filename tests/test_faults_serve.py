"""The fault suite, service side: a real ``editjudge serve`` subprocess on loopback, hostile requests, then a real
signal with requests in flight.

The judge behind the service is the OpenAI backend pointed at a fake chat-completions server in this process that
answers after a delay (no model to load, and requests stay in flight long enough to be caught by the signal). Each
hostile request must get its 4xx (or 5xx) with a named reason while ``/healthz`` keeps answering; then SIGTERM, or
Ctrl-C (SIGINT to the whole process group, as a terminal sends it), with six requests in flight: every one of them
is answered, the service exits 0 and leaves no Ray process behind.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray.serve")
pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="signals, FIFOs")

from PIL import Image  # noqa: E402

from _ray_session import kill_session, session_processes  # noqa: E402
from _slow_chat import slow_chat_server  # noqa: E402

ANSWER_DELAY_S = 3.0
IN_FLIGHT = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chat_server():
    with slow_chat_server(ANSWER_DELAY_S) as url:
        yield url


def _b64(color: str) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _item(i: int | str, **changes: Any) -> dict[str, Any]:
    return {"id": str(i), "source": _b64("red"), "edited": _b64("blue"), "instruction": "make it blue", **changes}


class Service:
    def __init__(self, chat_url: str, tmp: Path) -> None:
        self.shared = tmp / "shared"
        self.shared.mkdir()
        os.mkfifo(self.shared / "fifo.png")
        (self.shared / "zero.png").symlink_to("/dev/zero")
        (self.shared / "dir.png").mkdir()
        self.ray_tmp = Path(f"/tmp/ejfs-{os.getpid()}-{_free_port()}")  # short: AF_UNIX paths stay < 108 bytes
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        src = str(Path(__file__).resolve().parents[1] / "src")
        env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1",
               "RAY_TMPDIR": str(self.ray_tmp), "RAY_AUTH_MODE": "disabled"}
        self.log = tmp / "serve.err"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "editjudge.cli", "serve", "--model", "judge", "--backend", "openai", "--base-url",
             chat_url, "--no-logprobs", "--retries", "0", "--timeout", "60", "--port", str(self.port), "--num-cpus", "2",
             "--cpus-per-replica", "0", "--allow-paths", str(self.shared), "--drain-timeout", "30", "--max-items", "8"],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"),
        )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"editjudge serve exited {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        pytest.fail("editjudge serve did not come up in 240 s")

    def post(self, path: str, **kwargs: Any) -> Any:
        return httpx.post(self.url + path, timeout=60, **kwargs)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        kill_session(self.ray_tmp)  # only this test's own Ray session
        import shutil

        shutil.rmtree(self.ray_tmp, ignore_errors=True)


def _raw_samples(token: str) -> bytes:
    """A body whose item's ``samples`` is ``token`` written as is (NaN, 1e999, … which json.dumps would not write)."""
    return json.dumps({"items": [_item(0, samples="@SAMPLES@")]}).replace('"@SAMPLES@"', token).encode()


# body -> (status, reason): every hostile body gets its 4xx and a named reason, never a bare 500
HOSTILE_BODIES: dict[str, tuple[bytes, int, str]] = {
    "nested_100k_deep": (b"[" * 100_000 + b"]" * 100_000, 400, "json_too_deep"),
    "nested_deep_in_items": (b'{"items": [' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"]}", 400, "json_too_deep"),
    "nested_deep_in_an_image": (json.dumps({"items": [_item(0, source="X")]}).replace('"X"', "[" * 64 + "]" * 64)
                                .encode(), 400, "json_too_deep"),
    "duplicate_key": (b'{"items": [], "items": []}', 400, "duplicate_key"),
    "nan_samples": (_raw_samples("NaN"), 400, "non_finite_number"),
    "infinity_samples": (_raw_samples("-Infinity"), 400, "non_finite_number"),
    "float_overflow": (_raw_samples("1e999"), 400, "non_finite_number"),
    "integer_of_5000_digits": (_raw_samples("9" * 5000), 400, "number_too_long"),
    "not_utf8": (b'{"items": "\xff\xfe"}', 400, "malformed_json"),
    "not_json": (b"<html>hello</html>", 400, "malformed_json"),
    "lone_surrogate_instruction": (json.dumps({"items": [_item(0, instruction="make it \ud800 red")]}).encode(), 400,
                                   "malformed_json"),
    "lone_surrogate_key": (b'{"items": [], "\\udfff": 1}', 400, "malformed_json"),
    "empty_body": (b"", 400, "malformed_json"),
    "a_list": (b"[1, 2]", 422, "invalid_request"),
    "items_not_a_list": (b'{"items": {"a": 1}}', 422, "invalid_request"),
    "samples_true": (json.dumps({"items": [_item(0, samples=True)]}).encode(), 422, "invalid_request"),
    "samples_text": (json.dumps({"items": [_item(0, samples="3")]}).encode(), 422, "invalid_request"),
    "instruction_number": (json.dumps({"items": [_item(0, instruction=5)]}).encode(), 422, "invalid_request"),
    "unknown_field": (json.dumps({"items": [_item(0, extra=1)]}).encode(), 422, "invalid_request"),
    "too_many_items": (json.dumps({"items": [_item(i) for i in range(9)]}).encode(), 413, "too_many_items"),
    "huge_samples": (json.dumps({"items": [_item(0, samples=10**30)]}).encode(), 422, "too_many_samples"),
    "fifo_path": (json.dumps({"items": [_item(0, source={"path": "fifo.png"})]}).encode(), 422, "not_a_regular_file"),
    "dev_zero_path": (json.dumps({"items": [_item(0, edited={"path": "zero.png"})]}).encode(), 403, "path_not_allowed"),
    "folder_path": (json.dumps({"items": [_item(0, edited={"path": "dir.png"})]}).encode(), 422, "not_a_regular_file"),
    "path_of_5000_chars": (json.dumps({"items": [_item(0, edited={"path": "a/" * 2500})]}).encode(), 422,
                           "unreadable_file"),
    "nul_in_path": (json.dumps({"items": [_item(0, edited={"path": "a\u0000b"})]}).encode(), 422, "invalid_request"),
}


def _check_hostile_requests(service: Service) -> None:
    for name, (body, status, reason) in HOSTILE_BODIES.items():
        started = time.monotonic()
        answer = service.post("/v1/score", content=body, headers={"Content-Type": "application/json"})
        assert (answer.status_code, answer.json()["error"]["reason"]) == (status, reason), (name, answer.text[:300])
        assert len(answer.content) < 4000 and time.monotonic() - started < 30, name
    # the rank route reads its source once: a FIFO there is refused as fast, and the service stays up meanwhile
    rank = service.post("/v1/rank", json={"source": {"path": "fifo.png"}, "instruction": "x", "candidates": [_b64("blue")]})
    assert (rank.status_code, rank.json()["error"]["reason"]) == (422, "not_a_regular_file")
    assert httpx.get(service.url + "/healthz", timeout=10).status_code == 200
    mixed = service.post("/v1/score", json={"items": [_item("good"), _item("bad", source={"path": "fifo.png"})]})
    results = {r["id"]: r for r in mixed.json()["results"]}
    assert mixed.status_code == 200 and results["good"]["score"] == 6
    assert results["bad"]["error"].startswith("input_error: not_a_regular_file")


def _in_flight_then(service: Service, send_signal: Any) -> list[tuple[str, Any]]:
    answers: list[tuple[str, Any]] = []

    def one(i: int) -> None:
        try:
            response = service.post("/v1/score", json={"items": [_item(f"f{i}")]})
            answers.append((f"f{i}", response.json()["results"][0]["score"] if response.status_code == 200
                            else (response.status_code, response.text[:200])))
        except httpx.HTTPError as exc:
            answers.append((f"f{i}", repr(exc)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(IN_FLIGHT)]
    for t in threads:
        t.start()
    time.sleep(ANSWER_DELAY_S / 3)  # all six are waiting on the (slow) judge
    send_signal()
    for t in threads:
        t.join(timeout=120)
    return sorted(answers)


@pytest.mark.parametrize("how", ["sigterm", "ctrl_c_to_the_process_group"])
def test_hostile_requests_then_a_signal_with_requests_in_flight(chat_server: str, tmp_path: Path, how: str) -> None:
    service = Service(chat_server, tmp_path)
    try:
        if how == "sigterm":
            _check_hostile_requests(service)
            answers = _in_flight_then(service, lambda: service.process.send_signal(signal.SIGTERM))
        else:
            answers = _in_flight_then(service, lambda: os.killpg(service.process.pid, signal.SIGINT))
        assert answers == [(f"f{i}", 6) for i in range(IN_FLIGHT)], answers  # every request in flight was answered
        assert service.process.wait(timeout=120) == 0
        log = service.log.read_text()
        assert "draining the requests in flight" in log and "stopped" in log and "Traceback" not in log
        deadline = time.monotonic() + 30
        while session_processes(service.ray_tmp) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not session_processes(service.ray_tmp), "Ray processes were left behind"
    finally:
        service.stop()


def test_the_suite_has_many_hostile_bodies() -> None:
    assert len(HOSTILE_BODIES) >= 20
