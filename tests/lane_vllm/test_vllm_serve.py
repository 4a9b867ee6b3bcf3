"""``editjudge serve --backend vllm`` end to end: the CLI in a subprocess, a real local Ray, HTTP on loopback.

The replica runs vLLM's async engine (continuous batching); 16 concurrent one-edit requests must come back equal to
the transformers backend (float32 engine: the backend test's tolerance), and ``/metrics`` must show requests that
joined a running batch (more than one request in the engine at once). Ctrl-C (SIGINT) drains and exits 0.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from _lane import MAX_NEW_TOKENS, assert_agree, free_port, wait_until_up

pytestmark = pytest.mark.vllm
FLOAT32_TOLERANCE = 5e-4  # see test_vllm_backend.py
START_TIMEOUT_S = 900  # Ray + engine start; only catches a hang


@pytest.fixture(scope="module")
def service(demo_model: Path, demo_adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    env = {**os.environ, "RAY_TMPDIR": str(tmp_path_factory.mktemp("ray"))}
    command = [sys.executable, "-m", "editjudge.cli", "serve", "--backend", "vllm", "--model", str(demo_model),
               "--adapter", str(demo_adapter), "--port", str(port), "--num-cpus", "2", "--cpus-per-replica", "1",
               "--max-new-tokens", str(MAX_NEW_TOKENS), "--engine-arg", "dtype=float32",
               "--engine-arg", "max_model_len=2048", "--drain-timeout", "30"]
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(process, url + "/healthz", log, START_TIMEOUT_S)
        yield url, process, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _payload(edit: dict[str, Any]) -> dict[str, Any]:
    return {"id": edit["id"], "source": base64.b64encode(edit["source"]).decode(),
            "edited": base64.b64encode(edit["edited"]).decode(), "instruction": edit["instruction"]}


def test_concurrent_requests_join_the_running_batch_and_equal_transformers(
        service: Any, eval_edits: list[dict[str, Any]], reference: list[Any]) -> None:
    import httpx

    url, _, _ = service

    def one(edit: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(url + "/v1/score", json={"items": [_payload(edit)]}, timeout=300)
        assert response.status_code == 200, response.text
        return response.json()["results"][0]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, eval_edits))
    worst = assert_agree(results, reference, FLOAT32_TOLERANCE)
    print(f"serve --backend vllm vs transformers: {len(results)} labels equal, max |diff| {worst:.2e}")
    metrics = httpx.get(url + "/metrics", timeout=30).text
    sizes = [line for line in metrics.splitlines() if line.startswith("editjudge_batch_size_sum")]
    counts = [line for line in metrics.splitlines() if line.startswith("editjudge_batch_size_count")]
    assert sizes and counts
    total, requests = float(sizes[0].split()[-1]), float(counts[0].split()[-1])
    assert requests >= len(eval_edits) and total / requests > 1.0  # requests ran together in the engine


def test_a_bad_item_gets_its_reason_and_the_rest_are_judged(service: Any, eval_edits: list[dict[str, Any]]) -> None:
    import httpx

    url, _, _ = service
    bad = {**_payload(eval_edits[0]), "id": "bad", "edited": base64.b64encode(b"not an image").decode()}
    response = httpx.post(url + "/v1/score", json={"items": [bad, _payload(eval_edits[1])]}, timeout=300)
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert first["error"].startswith("input_error") and second["error"] is None and second["score"] is not None


def test_sigint_drains_and_exits_0(service: Any) -> None:
    _, process, log = service
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=300) == 0, log.read_text(errors="replace")[-3000:]
