"""``editjudge serve`` and ``editjudge score --ray`` on a real local Ray (2 CPUs) with the tiny answering model.

One Ray start for the whole module (Ray starts are the expensive part): a judge app (2 replicas, dynamic batching,
a token, a shared folder, tight limits), a second app whose backend is down (the OpenAI backend pointed at a closed
port), and the Ray Data actor pool of ``score --ray``. HTTP is real and on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")
ray = pytest.importorskip("ray")
pytest.importorskip("ray.serve")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
pytestmark = pytest.mark.slow

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from _judge_models import build_answering_model  # noqa: E402
from editjudge.cli import build_parser  # noqa: E402
from editjudge.client import JudgeClient, RewardError, ServiceError, edit_reward_fn  # noqa: E402
from editjudge.judge import EditItem  # noqa: E402
from editjudge.judge.cli_common import judge_from_args  # noqa: E402
from editjudge.synthetic import write_synthetic_edits  # noqa: E402

TOKEN_VAR, TOKEN = "EDITJUDGE_TEST_SERVE_TOKEN", "tok-3f9a1c"
COLORS = ("red", "blue", "green", "yellow", "white", "black", "purple", "orange")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _png(color: str, size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else 0).save(buffer, "PNG")
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


ITEMS = [
    {"id": f"e{i}", "source": _png(COLORS[i % 8], (56 + 4 * (i % 3), 56)),
     "edited": _png(COLORS[(i + 3) % 8], (56, 60 + 4 * (i % 4))), "instruction": f"make it {COLORS[(i + 1) % 8]}"}
    for i in range(16)
]


def _serve_args(*extra: str) -> Any:
    return build_parser("serve").parse_args(["serve", *extra])


class Served:
    def __init__(self, url: str, args: Any, shared: Path) -> None:
        self.url, self.args, self.shared = url, args, shared
        self.auth = {"Authorization": f"Bearer {TOKEN}"}

    def post(self, path: str, **kwargs: Any) -> Any:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return httpx.post(self.url + path, headers=headers, timeout=60, **kwargs)


@pytest.fixture(scope="module")
def served(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from ray import serve

    from editjudge.serve.app import build_app
    from editjudge.serve.cli import settings_from_args, start

    model = build_answering_model(tiny_model_dir, tmp_path_factory.getbasetemp() / "judge-answering-model")
    shared = tmp_path_factory.mktemp("shared")
    (shared / "src.png").write_bytes(ITEMS[0]["source"])
    (shared / "edt.png").write_bytes(ITEMS[0]["edited"])
    os.environ[TOKEN_VAR] = TOKEN
    port = _free_port()
    args = _serve_args(
        "--model", str(model), "--max-new-tokens", "12", "--device", "cpu", "--replicas", "2",
        "--cpus-per-replica", "0.5", "--max-batch", "8", "--batch-wait-ms", "40", "--port", str(port),
        "--token-env", TOKEN_VAR, "--allow-paths", str(shared), "--max-items", "8", "--max-image-pixels", "200000",
        "--max-body-bytes", "1000000", "--drain-timeout", "2",
    )
    # A short temp folder of its own: Ray's socket paths under pytest's basetemp can pass AF_UNIX's 107 bytes.
    ray_tmp = tempfile.mkdtemp(prefix="ejray-")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=ray_tmp)
    try:
        url = start(settings_from_args(args), port=port)
        down = _serve_args("--model", "judge", "--backend", "openai", "--base-url", f"http://127.0.0.1:{_free_port()}/v1",
                           "--retries", "0", "--timeout", "2", "--cpus-per-replica", "0", "--max-batch", "4")
        serve.run(build_app(settings_from_args(down)), name="down", route_prefix="/down")
        yield Served(url, args, shared)
    finally:
        ray.shutdown()  # takes Serve down with it (a separate serve.shutdown() adds seconds of draining)
        shutil.rmtree(ray_tmp, ignore_errors=True)
        os.environ.pop(TOKEN_VAR, None)


@pytest.fixture(scope="module")
def reference(served: Served) -> dict[str, Any]:
    """In-process ``Judge.score_many`` on the same inputs with the same flags (greedy)."""
    args = build_parser("serve").parse_args(["serve", *_flags(served.args)])
    args.batch_size = 8
    judge = judge_from_args(args)
    results = judge.score_many([EditItem(i["source"], i["edited"], i["instruction"]) for i in ITEMS], progress=False)
    return {item["id"]: r for item, r in zip(ITEMS, results)}


def _flags(args: Any) -> list[str]:
    return ["--model", args.model, "--max-new-tokens", str(args.max_new_tokens), "--device", "cpu"]


def _same(answer: dict[str, Any], expected: Any) -> None:
    assert answer["error"] is None and expected.error is None
    assert answer["score"] == expected.score and answer["reasoning"] == expected.reasoning
    assert answer["expected_score"] == pytest.approx(expected.expected_score, abs=1e-5)  # batch padding: ~1e-7


def _payload(item: dict[str, Any]) -> dict[str, Any]:
    return {"id": item["id"], "source": _b64(item["source"]), "edited": _b64(item["edited"]),
            "instruction": item["instruction"]}


def _batch_counts(metrics: str) -> tuple[float, float]:
    le1 = float(re.search(r'^editjudge_batch_size_bucket\{le="1.0"\} (\S+)$', metrics, re.M).group(1))
    total = float(re.search(r"^editjudge_batch_size_count (\S+)$", metrics, re.M).group(1))
    return le1, total


def test_concurrent_clients_match_in_process_and_batch(served: Served, reference: dict[str, Any]) -> None:
    async def one_client(c: int) -> list[tuple[str, dict[str, Any]]]:
        client = JudgeClient(served.url, token=TOKEN, timeout=60, retries=2)
        answers = []
        for r in range(4):
            item = ITEMS[(c * 4 + r) % len(ITEMS)]
            (answer,) = await client.ascore([item])
            answers.append((item["id"], answer))
        return answers

    async def load() -> list[list[tuple[str, dict[str, Any]]]]:
        return await asyncio.gather(*(one_client(c) for c in range(32)))

    answers = [a for client in asyncio.run(load()) for a in client]
    assert len(answers) == 128
    for item_id, answer in answers:
        assert answer["id"] == item_id
        _same(answer, reference[item_id])
    metrics = httpx.get(served.url + "/metrics", headers=served.auth, timeout=30).text
    ones, batches = _batch_counts(metrics)
    assert batches > ones, f"every batch held one item ({batches} batches)"
    assert float(re.search(r'editjudge_requests_total\{code="200",route="/v1/score"\} (\S+)', metrics).group(1)) >= 128


def test_each_bad_request_gets_its_4xx_and_the_server_keeps_serving(served: Served, reference: dict[str, Any]) -> None:
    good = _payload(ITEMS[0])
    bomb = _b64(_png("", (1000, 1000), mode="L"))  # 1 M pixels > --max-image-pixels 200000 (a few KB of PNG)
    cases = [
        ({"headers": {"Authorization": "Bearer wrong"}, "json": {"items": [good]}}, 401, "unauthorized"),
        ({"headers": {"Authorization": ""}, "json": {"items": [good]}}, 401, "unauthorized"),
        ({"content": b'{"items": [', "headers": {"Content-Type": "application/json"}}, 400, "malformed_json"),
        ({"json": {"items": [{"source": good["source"], "edited": good["edited"]}]}}, 422, "invalid_request"),
        ({"json": {"items": [{**good, "source": "not*base64!"}]}}, 422, "bad_base64"),
        ({"json": {"items": [{**good, "edited": "data:image/png;base64,@@@"}]}}, 422, "bad_base64"),
        ({"json": {"items": [{**good, "edited": _b64(b"plain text, not an image")}]}}, 422, "not_an_image"),
        ({"json": {"items": [{**good, "edited": bomb}]}}, 413, "decompression_bomb"),
        ({"json": {"items": [good] * 9}}, 413, "too_many_items"),
        ({"content": b"x" * 1_100_000, "headers": {"Content-Type": "application/json"}}, 413, "body_too_large"),
        ({"json": {"items": [{**good, "source": {"path": "../../etc/passwd"}}]}}, 403, "path_not_allowed"),
        ({"json": {"items": [{**good, "source": {"path": "/etc/hostname"}}]}}, 403, "path_not_allowed"),
        ({"json": {"items": [{**good, "samples": 99}]}}, 422, "too_many_samples"),
    ]
    for kwargs, status, reason in cases:
        response = served.post("/v1/score", **kwargs)
        assert response.status_code == status, (reason, response.text)
        assert response.json()["error"]["reason"] == reason, response.text
    # one bad item never fails the others
    mixed = served.post("/v1/score", json={"items": [{**good, "edited": bomb, "id": "bad"}, good]})
    assert mixed.status_code == 200
    bad, fine = mixed.json()["results"]
    assert bad["id"] == "bad" and bad["score"] is None and bad["error"].startswith("input_error: decompression_bomb")
    _same(fine, reference[good["id"]])
    # files under --allow-paths are served
    by_path = served.post("/v1/score", json={"items": [{**good, "source": {"path": "src.png"},
                                                        "edited": {"path": str(served.shared / "edt.png")}}]})
    _same(by_path.json()["results"][0], reference[good["id"]])
    assert httpx.get(served.url + "/healthz", timeout=30).status_code == 200
    assert served.post("/v1/score", json={"items": [good]}).status_code == 200
    metrics = httpx.get(served.url + "/metrics", headers=served.auth, timeout=30).text
    assert re.search(r'editjudge_errors_total\{reason="decompression_bomb"\} [1-9]', metrics)
    assert httpx.get(served.url + "/metrics", timeout=30).status_code == 401


def test_rank_and_reward_fn(served: Served, reference: dict[str, Any]) -> None:
    source = ITEMS[0]["source"]
    candidates = [ITEMS[i]["edited"] for i in (1, 2, 3)]
    client = JudgeClient(served.url, token=TOKEN)
    ranking = client.rank(source, candidates, "make it blue", ids=["a", "b", "c"])
    judge_args = build_parser("serve").parse_args(["serve", *_flags(served.args)])
    expected = judge_from_args(judge_args).best_of_n(source, candidates, "make it blue")
    assert [c["index"] for c in ranking["candidates"]] == [c.index for c in expected.candidates]
    assert ranking["best"] == "abc"[expected.best.index] and [c["rank"] for c in ranking["candidates"]] == [1, 2, 3]

    avg = served.post("/v1/score", json={"items": [{**_payload(ITEMS[0]), "samples": 2}]}).json()["results"][0]
    assert len(avg["scores"]) == 2  # Avg@k per item: two sampled answers

    reward = edit_reward_fn(served.url, token=TOKEN)
    pil = Image.open(io.BytesIO(ITEMS[1]["edited"]))
    array = np.asarray(Image.open(io.BytesIO(ITEMS[2]["edited"])).convert("RGB"))
    values = reward([ITEMS[1]["source"], ITEMS[2]["source"]], [pil, array], [ITEMS[1]["instruction"], ITEMS[2]["instruction"]])
    assert values == pytest.approx([reference["e1"].expected_score, reference["e2"].expected_score], abs=1e-5)
    junk = [ITEMS[1]["source"], ITEMS[2]["source"]], [pil, b"junk"], "make it red"
    with pytest.raises(RewardError) as caught:
        reward(*junk)
    assert list(caught.value.failures) == [1] and "not_an_image" in caught.value.failures[1]
    loose = edit_reward_fn(served.url, token=TOKEN, on_failure="none")(*junk)
    assert isinstance(loose[0], float) and loose[1] is None
    assert edit_reward_fn(served.url, token=TOKEN, on_failure=-1.0)(*junk)[1] == -1.0


def test_backend_failure_answers_503_with_retry_after(served: Served) -> None:
    down = served.url + "/down"
    response = httpx.post(down + "/v1/score", json={"items": [_payload(ITEMS[0])]}, timeout=60)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json()["error"]["reason"] == "backend_error"
    with pytest.raises(ServiceError) as caught:
        JudgeClient(down, retries=1, backoff=0.01).score([ITEMS[0]])
    assert caught.value.status == 503
    args = ([ITEMS[0]["source"]], [ITEMS[0]["edited"]], ["make it red"])
    assert edit_reward_fn(down, retries=0, on_failure="none")(*args) == [None]
    assert edit_reward_fn(down, retries=0, on_failure=0.0)(*args) == [0.0]  # a 0 only when asked for
    with pytest.raises(ServiceError):
        edit_reward_fn(down, retries=0)(*args)
    assert served.post("/v1/score", json={"items": [_payload(ITEMS[0])]}).status_code == 200


def test_score_ray_equals_score_and_resumes_after_a_kill(served: Served, tmp_path: Path, capsys) -> None:
    """``score --ray`` killed mid-run (SIGKILL), then rerun with ``--resume``: the finished edits are kept, the rest
    are scored by 2 judge actors, and the output is the bytes single-process ``score`` writes."""
    import json
    import signal
    import subprocess
    import sys

    from editjudge.cli import main
    from editjudge.judge.ray_score import partial_path

    edits = tmp_path / "edits"
    write_synthetic_edits(edits, n_sources=12, candidates_per_source=4, size=48)
    (edits / "broken_input.jpg").write_bytes(b"")  # a sample without its edited image: rejected, still reported
    (edits / "broken_meta.json").write_text('{"instruction": "make it red"}')
    (edits / "broken_score.json").write_text('{"score": 0.5}')
    common = ["score", *_flags(served.args), "--batch-size", "2", "--manifest", str(edits)]
    single, distributed = tmp_path / "single.jsonl", tmp_path / "ray.jsonl"
    assert main([*common, "--out", str(single)]) == 0
    expected = single.read_bytes()
    assert len(expected.splitlines()) == 49 and b'"error": "input_error: missing_edited' in expected

    # A run on this Ray cluster (one actor), killed as soon as its first chunks have landed in OUT.partial.
    partial = partial_path(distributed)
    address = ray.get_runtime_context().gcs_address
    process = subprocess.Popen(
        [sys.executable, "-m", "editjudge.cli", *common, "--out", str(distributed), "--ray", "--ray-address", address,
         "--actors", "1", "--cpus-per-actor", "0.5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 600  # only a hang gets here: a busy machine takes long to start the actor
    while process.poll() is None and time.monotonic() < deadline:
        if partial.exists() and partial.read_bytes().count(b"\n") >= 3:  # the header + one chunk of two edits
            break
        time.sleep(0.005)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)  # as soon as the first chunks landed (or, hung, at the deadline)
    assert process.wait(timeout=600) == -signal.SIGKILL, "the run ended before it could be killed"
    assert partial.exists(), "no chunk landed before the deadline: the run hung"
    landed = partial.read_bytes().count(b"\n") - 1
    assert 2 <= landed < 49
    with open(partial, "a", encoding="utf-8") as handle:
        handle.write('{"i": 48, "record": {"id": "tor')  # and a line torn by the kill, for good measure
    capsys.readouterr()
    assert main([*common, "--out", str(distributed), "--ray", "--actors", "2", "--cpus-per-actor", "0.5"]) == 2
    assert "--resume" in capsys.readouterr().err  # a partial run is never silently overwritten
    assert main([*common, "--out", str(distributed), "--ray", "--actors", "2", "--cpus-per-actor", "0.5",
                 "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"49 edits, {landed} already scored (kept), " in err  # finished edits are not scored again
    assert distributed.read_bytes() == expected and not partial.exists()
    assert main([*common, "--out", str(distributed), "--ray"]) == 2  # a finished output needs --force
    assert sum(json.loads(line)["pred"] is not None for line in expected.splitlines()) == 48  # all judged


def test_score_ray_on_a_prepared_parquet_equals_score(served: Served, tmp_path: Path) -> None:
    """A prepared parquet (with a malformed row and a bad ground truth) through the actor pool into preds.parquet:
    the bytes single-process ``score`` writes."""
    from _prepared import write_prepared_with_bad_rows
    from editjudge.cli import main

    prepared = write_prepared_with_bad_rows(tmp_path)
    common = ["score", *_flags(served.args), "--batch-size", "2", "--manifest", str(prepared)]
    single, distributed = tmp_path / "single.parquet", tmp_path / "ray.parquet"
    assert main([*common, "--out", str(single)]) == 0
    assert main([*common, "--out", str(distributed), "--ray", "--actors", "1", "--cpus-per-actor", "0.5"]) == 0
    assert distributed.read_bytes() == single.read_bytes()


def test_replica_killed_under_load_every_request_is_carried(served: Served, reference: dict[str, Any]) -> None:
    answers: list[tuple[str, dict[str, Any]]] = []
    failures: list[BaseException] = []

    def worker(c: int) -> None:
        client = JudgeClient(served.url, token=TOKEN, timeout=60, retries=12, backoff=0.2, max_backoff=2)
        try:
            for r in range(6):
                item = ITEMS[(c * 6 + r) % len(ITEMS)]
                answers.append((item["id"], client.score([item])[0]))
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(12)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(answers) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    replicas = [a for a in ray.util.list_named_actors(all_namespaces=True)
                if "SERVE_REPLICA" in a["name"] and "editjudge#JudgeModel" in a["name"]]
    assert len(replicas) == 2
    ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)
    for t in threads:
        t.join(timeout=120)
    assert not failures and len(answers) == 72
    for item_id, answer in answers:
        _same(answer, reference[item_id])  # nothing lost, nothing answered twice with different scores
