"""``POST /v1/compare`` on a real local Ray with a pairwise tiny judge, the client's compare, and the routes that
need the other kind of judge; multi-source items on ``/v1/score`` of a pointwise app beside it.

One Ray start for the module: the pairwise judge app at ``/`` and a pointwise judge app at ``/point``.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")
ray = pytest.importorskip("ray")
pytest.importorskip("ray.serve")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
pytestmark = pytest.mark.slow

from PIL import Image  # noqa: E402

from _judge_models import build_answering_model  # noqa: E402
from _pair_models import INSTRUCTION, build_pair_answering_model  # noqa: E402
from editjudge.cli import build_parser  # noqa: E402
from editjudge.client import JudgeClient  # noqa: E402
from editjudge.judge import PairItem  # noqa: E402
from editjudge.judge.cli_common import judge_from_args  # noqa: E402

TOKEN_VAR, TOKEN = "EDITJUDGE_TEST_COMPARE_TOKEN", "tok-compare-7"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (56, 56), color).save(buffer, "PNG")
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BLUE, RED = _png("blue"), _png("red")
PAIRS = [("p0", RED, BLUE), ("p1", BLUE, RED), ("p2", RED, RED), ("p3", BLUE, BLUE)]


@pytest.fixture(scope="module")
def apps(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from ray import serve

    from editjudge.serve.app import build_app
    from editjudge.serve.cli import settings_from_args, start

    base = tmp_path_factory.getbasetemp()
    pair_model = build_pair_answering_model(tiny_model_dir, base / "judge-pair-answering-model")
    point_model = build_answering_model(tiny_model_dir, base / "judge-answering-model")
    os.environ[TOKEN_VAR] = TOKEN
    port = _free_port()
    args = build_parser("serve").parse_args([
        "serve", "--model", str(pair_model), "--format", "pairwise", "--template", "demo", "--max-new-tokens", "12",
        "--device", "cpu", "--cpus-per-replica", "0.5", "--max-batch", "8", "--port", str(port),
        "--token-env", TOKEN_VAR, "--max-items", "8", "--drain-timeout", "2"])
    point = build_parser("serve").parse_args(["serve", "--model", str(point_model), "--max-new-tokens", "12",
                                              "--device", "cpu", "--cpus-per-replica", "0.5", "--max-batch", "4",
                                              "--token-env", TOKEN_VAR])
    ray_tmp = tempfile.mkdtemp(prefix="ejray-")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=ray_tmp)
    try:
        url = start(settings_from_args(args), port=port)
        serve.run(build_app(settings_from_args(point)), name="point", route_prefix="/point")
        yield {"url": url, "args": args, "point_args": point}
    finally:
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
        os.environ.pop(TOKEN_VAR, None)


def _post(url: str, path: str, body: dict[str, Any]) -> Any:
    return httpx.post(url + path, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)


def _items(both: bool = False) -> list[dict[str, Any]]:
    return [{"id": i, "source": _b64(BLUE), "a": _b64(a), "b": _b64(b), "instruction": INSTRUCTION,
             "both_orders": both} for i, a, b in PAIRS]


def test_compare_answers_as_the_judge_in_process(apps) -> None:
    judge = judge_from_args(apps["args"])
    expected = judge.compare_many([PairItem(BLUE, a, b, INSTRUCTION) for _, a, b in PAIRS], both_orders=True,
                                  progress=False)
    assert [c.preference for c in expected] == ["A", "B", "tie", "tie"]  # the answering model reads the colours
    answer = _post(apps["url"], "/v1/compare", {"items": _items(both=True)})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["id"] for r in results] == ["p0", "p1", "p2", "p3"]
    for got, want in zip(results, expected):
        assert got["preference"] == want.preference and got["consistent"] is True and got["error"] is None
        assert got["probabilities"]["A"] == pytest.approx(want.probabilities["A"], abs=1e-5)
    client = JudgeClient(apps["url"], token=TOKEN)
    viaclient = client.compare([(BLUE, a, b, INSTRUCTION) for _, a, b in PAIRS])
    assert [r["preference"] for r in viaclient] == ["A", "B", "tie", "tie"]
    several = client.compare([([BLUE, BLUE], RED, BLUE, INSTRUCTION)])  # an edit of two source images
    assert not (several[0]["error"] or "").startswith("input_error")  # judged (4 images), not refused


def test_hostile_compare_bodies_get_their_reason_and_one_bad_pair_fails_alone(apps) -> None:
    url = apps["url"]
    missing = _post(url, "/v1/compare", {"items": [{"source": _b64(BLUE), "a": _b64(RED), "instruction": "x"}]})
    assert missing.status_code == 422 and missing.json()["error"]["reason"] == "invalid_request"
    mixed = _items()[:1] + [{**_items()[1], "b": "not base64 !!"}]
    answer = _post(url, "/v1/compare", {"items": mixed})
    assert answer.status_code == 200
    first, second = answer.json()["results"]
    assert first["preference"] == "A" and second["error"].startswith("input_error: bad_base64")
    many = _post(url, "/v1/compare", {"items": [{**_items()[0], "source": [_b64(BLUE)] * 16}]})
    assert many.status_code == 413 and many.json()["error"]["reason"] == "too_many_images"
    wrong = _post(url, "/v1/score", {"items": [{"source": _b64(BLUE), "edited": _b64(RED), "instruction": "x"}]})
    assert wrong.status_code == 422 and wrong.json()["error"]["reason"] == "wrong_judge"
    spec = httpx.get(url + "/openapi.json", timeout=30).json()
    assert "/v1/compare" in spec["paths"] and "CompareRequest" in spec["components"]["schemas"]


def test_a_pointwise_app_refuses_compare_and_scores_several_sources(apps) -> None:
    url = apps["url"] + "/point"
    wrong = _post(url, "/v1/compare", {"items": _items()[:1]})
    assert wrong.status_code == 422 and wrong.json()["error"]["reason"] == "wrong_judge"
    judged = _post(url, "/v1/score", {"items": [{"source": [_b64(BLUE), _b64(RED)], "edited": _b64(RED),
                                                 "instruction": "put image 2 into image 1"}]})
    assert judged.status_code == 200 and not (judged.json()["results"][0]["error"] or "").startswith("input_error")
