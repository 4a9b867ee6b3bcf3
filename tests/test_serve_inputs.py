"""The service's input checks, usage errors and client helpers without Ray (fast)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from editjudge.cli import main
from editjudge.client import EditReward, JudgeClient, encode_image
from editjudge.serve.inputs import (InputError, Limits, check_token, decode_image, is_loopback, parse_json,
                                    token_digest)


def _png(size: tuple[int, int] = (8, 8), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


def _reason(value: object, limits: Limits = Limits()) -> str:
    with pytest.raises(InputError) as caught:
        decode_image(value, limits, "source")
    return caught.value.reason


def test_images_decode_from_base64_data_urls_and_allowed_paths(tmp_path: Path) -> None:
    data = _png()
    text = base64.b64encode(data).decode()
    assert decode_image(text, Limits()) == data
    assert decode_image(text[:10] + "\n" + text[10:], Limits()) == data  # wrapped base64
    assert decode_image("data:image/png;base64," + text, Limits()) == data
    (tmp_path / "a.png").write_bytes(data)
    allowed = Limits(allow_paths=str(tmp_path))
    assert decode_image({"path": "a.png"}, allowed) == data
    assert decode_image({"path": str(tmp_path / "a.png")}, allowed) == data


def test_each_bad_image_has_its_reason_and_status(tmp_path: Path) -> None:
    (tmp_path / "inner").mkdir()
    (tmp_path / "secret.png").write_bytes(_png())
    (tmp_path / "inner" / "link.png").symlink_to(tmp_path / "secret.png")
    inner = Limits(allow_paths=str(tmp_path / "inner"))
    assert _reason("###") == "bad_base64"
    assert _reason("data:image/png,abc") == "bad_base64"  # not base64-encoded
    assert _reason("") == "bad_base64"
    assert _reason(base64.b64encode(b"hello").decode()) == "not_an_image"
    assert _reason(base64.b64encode(_png((600, 600), "L")).decode(), Limits(max_image_pixels=100_000)) == "decompression_bomb"
    assert _reason({"path": "a.png"}) == "path_not_allowed"  # paths are off without --allow-paths
    assert _reason({"path": "../secret.png"}, inner) == "path_not_allowed"
    assert _reason({"path": str(tmp_path / "secret.png")}, inner) == "path_not_allowed"
    assert _reason({"path": "link.png"}, inner) == "path_not_allowed"  # a symlink out of the folder
    assert _reason({"path": "missing.png"}, inner) == "missing_file"
    assert _reason(42) == "invalid_request"
    assert InputError("decompression_bomb", "").status == 413 and InputError("path_not_allowed", "").status == 403


def test_token_check() -> None:
    digest = token_digest("s3cret")
    assert check_token(None, None) and check_token("anything", None)
    assert check_token("Bearer s3cret", digest) and check_token("bearer s3cret", digest)
    assert not check_token("Bearer s3cre", digest) and not check_token("s3cret", digest)
    assert not check_token(None, digest) and not check_token("Basic s3cret", digest)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_usage_mistakes_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("EDITJUDGE_NO_SUCH_VAR", raising=False)
    model_dir = tmp_path / "model"  # checked for existence only: every mistake is caught before a model loads
    model_dir.mkdir()
    model = ["serve", "--model", str(model_dir)]
    cases = {
        "--insecure-no-token": [*model, "--host", "0.0.0.0"],
        "unset or empty": [*model, "--token-env", "EDITJUDGE_NO_SUCH_VAR"],
        "neither a local directory": ["serve", "--model", str(tmp_path / "nope")],
        "--max-batch 0: must be at least 1": [*model, "--max-batch", "0"],
        "--allow-paths": [*model, "--allow-paths", str(tmp_path / "nope")],
    }
    for expected, argv in cases.items():
        assert main(argv) == 2
        assert expected in capsys.readouterr().err
    # score --ray refuses to overwrite a partial run silently
    out = tmp_path / "p.jsonl"
    Path(str(out) + ".partial").write_text("{}\n")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"source": "a.png", "edited": "b.png", "instruction": "x"}) + "\n")
    assert main(["score", "--model", str(model_dir), "--manifest", str(manifest), "--out", str(out), "--ray"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_openapi_schema_lists_the_api(tmp_path: Path) -> None:
    pytest.importorskip("ray.serve")
    out = tmp_path / "openapi.json"
    assert main(["serve", "--model", "m", "--openapi", str(out)]) == 0
    document = json.loads(out.read_text())
    assert {"/v1/score", "/v1/rank", "/healthz", "/metrics"} <= set(document["paths"])
    body = document["paths"]["/v1/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ScoreRequest"}
    assert {"ScoreItem", "ScoreRequest", "ScoreResponse", "RankRequest", "ErrorResponse"} <= set(document["components"]["schemas"])
    doc = (Path(__file__).parents[1] / "docs" / "serve.md").read_text(encoding="utf-8")
    embedded = doc.split("<!-- openapi:begin -->\n```json\n", 1)[1].split("```\n<!-- openapi:end -->", 1)[0]
    assert embedded == out.read_text(), "docs/serve.md's schema is stale: regenerate it with `editjudge serve --openapi`"


def test_client_encodes_arrays_and_checks_its_policy() -> None:
    chw = np.zeros((3, 6, 5), dtype=np.float32)
    chw[0] = 1.0  # red, as floats in 0..1, channels first
    image = Image.open(io.BytesIO(base64.b64decode(encode_image(chw))))
    assert image.size == (5, 6) and image.getpixel((0, 0)) == (255, 0, 0)
    assert encode_image("data:image/png;base64,AAAA") == "data:image/png;base64,AAAA"
    assert encode_image("x.png", send_paths=True) == {"path": "x.png"}
    with pytest.raises(ValueError):
        EditReward(JudgeClient("http://127.0.0.1:9"), on_failure="zero")
    with pytest.raises(ValueError, match="2 sources"):
        EditReward(JudgeClient("http://127.0.0.1:9"))([b"a", b"b"], [b"c"], "make it red")


@pytest.mark.parametrize("body", [b'{"instruction": "make it \\ud800 red"}', b'{"\\udc00": 1}',
                                  b'{"items": [{"id": ["x", "\\udfff"]}]}'])
def test_a_lone_surrogate_escape_is_a_malformed_body(body: bytes) -> None:
    with pytest.raises(InputError) as refused:
        parse_json(body)
    assert refused.value.reason == "malformed_json" and "lone surrogate" in refused.value.detail


def test_an_escaped_surrogate_pair_is_text() -> None:
    assert parse_json(b'{"instruction": "add a \\ud83d\\ude00"}') == {"instruction": "add a \U0001F600"}
