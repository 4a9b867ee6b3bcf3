"""What the server accepts: limits, image decoding and the 4xx reason of every refusal. Imports no torch, no Ray.

Bodies are read by :func:`parse_json`, stricter than ``json.loads``: no ``NaN``/``Infinity``, no duplicate keys, no
nesting deeper than :data:`MAX_JSON_DEPTH`, no number too long to convert — each refusal a 400 with its reason.
Images arrive as base64 strings, ``data:`` URLs, or ``{"path": "…"}`` objects that name a file under the folder the
server was started with (``--allow-paths DIR``; refused otherwise). A named file is opened the way ``prepare`` opens
files (:func:`editjudge.data.files.read_file`: non-blocking open, regular files only, a bounded read), so a FIFO or a
device under that folder is refused at once instead of blocking. Every image's header is probed against the pixel
limit before anything is decoded (decompression bombs), with :func:`editjudge.data.images.probe` — the same check as
``prepare`` and the judge.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from editjudge.data import images as imgs
from editjudge.data.files import FileRejected, read_file
from editjudge.data.sources import LONE_SURROGATE, lone_surrogate

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_ITEMS = 64
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000  # a 40-megapixel photo; larger headers are refused before decoding
DEFAULT_MAX_SAMPLES = 8
MAX_JSON_DEPTH = 32  # the API's bodies nest 4 deep; anything far deeper is an attack, not a request

# reason -> HTTP status. Request-level reasons fail the request; image reasons fail only their item (the request
# answers 4xx only when none of its items could be judged).
STATUS: dict[str, int] = {
    "unauthorized": 401,
    "malformed_json": 400,
    "json_too_deep": 400,
    "duplicate_key": 400,
    "non_finite_number": 400,
    "number_too_long": 400,
    "invalid_request": 422,
    "body_too_large": 413,
    "too_many_items": 413,
    "too_many_samples": 422,
    "bad_base64": 422,
    "not_an_image": 422,
    "truncated_image": 422,
    "bad_aspect_ratio": 422,
    "decompression_bomb": 413,
    "path_not_allowed": 403,
    "missing_file": 422,
    "too_many_images": 413,  # an edit of more source images than one prompt holds
    "wrong_judge": 422,  # /v1/compare on a pointwise judge, /v1/score or /v1/rank on a pairwise one
    "not_a_regular_file": 422,
    "unreadable_file": 422,
    "file_too_large": 413,
    "internal_error": 500,
}


class InputError(ValueError):
    """A refused request or item: ``reason`` (a key of :data:`STATUS`), the HTTP ``status`` and a ``detail``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    @property
    def status(self) -> int:
        return STATUS.get(self.reason, 422)

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class Limits:
    """The server's input limits (``editjudge serve --max-body-bytes/--max-items/--max-image-pixels/…``)."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_items: int = DEFAULT_MAX_ITEMS
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_samples: int = DEFAULT_MAX_SAMPLES
    allow_paths: str | None = None  # a folder: {"path": …} images must resolve inside it


def _from_base64(text: str, role: str) -> bytes:
    compact = "".join(text.split())
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError("bad_base64", f"{role} image: not valid base64 ({exc})") from None
    if not data:
        raise InputError("bad_base64", f"{role} image: empty")
    return data


def _from_data_url(url: str, role: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise InputError("bad_base64", f"{role} image: a data URL must be 'data:<mime>;base64,<payload>'")
    return _from_base64(payload, role)


class _Refused(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _reject_constant(name: str) -> Any:
    raise _Refused("non_finite_number", f"{name} is not a JSON number (JSON has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise _Refused("non_finite_number", f"the number {text[:40]} overflows a float")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _Refused("duplicate_key", f"the key {key[:80]!r} appears twice in one object")
        obj[key] = value
    return obj


def _depth_problem(data: Any, limit: int) -> str | None:
    """Why ``data`` nests deeper than ``limit`` (an iterative walk: no recursion of its own)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return f"the body nests deeper than {limit} levels"
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return None


def parse_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value of a request body; :class:`InputError` (400) naming why it is not acceptable JSON."""
    try:
        text = body.decode("utf-8")
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                          object_pairs_hook=_unique_keys)
    except _Refused as exc:
        raise InputError(exc.reason, str(exc)) from None
    except RecursionError:
        raise InputError("json_too_deep", f"the body nests deeper than {max_depth} levels") from None
    except UnicodeDecodeError as exc:
        raise InputError("malformed_json", f"the body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InputError("malformed_json", f"the body is not JSON: {exc}") from None
    except ValueError as exc:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise InputError("number_too_long", f"a number in the body is too long ({str(exc)[:120]})") from None
    problem = _depth_problem(data, max_depth)
    if problem:
        raise InputError("json_too_deep", problem)
    if lone_surrogate(data, text):  # legal JSON syntax, but not text: no answer or prompt could hold it
        raise InputError("malformed_json", f"the body: {LONE_SURROGATE}")
    return data


def _from_path(value: Any, limits: Limits, role: str) -> bytes:
    if not limits.allow_paths:
        raise InputError("path_not_allowed", f"{role} image: file paths are off (start the server with --allow-paths DIR)")
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InputError("invalid_request", f"{role} image: 'path' must be a non-empty string")
    shown = value if len(value) <= 200 else value[:200] + "…"
    root = Path(limits.allow_paths).resolve()
    try:
        path = (root / value).resolve()  # an absolute value replaces root; '..' and symlinks are resolved first
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name longer than the system allows
        raise InputError("unreadable_file", f"{role} image: {shown}: {type(exc).__name__}") from None
    if not path.is_relative_to(root):
        raise InputError("path_not_allowed", f"{role} image: {shown} is outside the allowed folder")
    try:  # prepare's way: O_NONBLOCK (a FIFO never waits for a writer), fstat S_ISREG, at most max_body_bytes read
        return read_file(path, limits.max_body_bytes)
    except FileRejected as exc:
        detail = exc.detail.replace(str(path), shown, 1).replace("(--max-file-bytes)", "(--max-body-bytes)")
        raise InputError(exc.reason, f"{role} image: {detail}") from None


def decode_image(value: Any, limits: Limits, role: str = "image") -> bytes:
    """The encoded bytes of one image field; :class:`InputError` naming the reason when it cannot be used."""
    if isinstance(value, str):
        data = _from_data_url(value, role) if value.startswith("data:") else _from_base64(value, role)
    elif isinstance(value, dict) and set(value) == {"path"}:
        data = _from_path(value["path"], limits, role)
    else:
        raise InputError("invalid_request", f"{role} image: give a base64 string, a data URL or {{\"path\": …}}")
    check_image(data, limits, role)
    return data


def decode_sources(value: Any, limits: Limits) -> bytes | list[bytes]:
    """An item's source image(s): one image, or a list of an edit's source images (``too_many_images`` beyond what
    one prompt holds, ``invalid_request`` for an empty list)."""
    if not isinstance(value, list):
        return decode_image(value, limits, "source")
    from editjudge.data.sources import MAX_SOURCES

    if not value:
        raise InputError("invalid_request", "source: an empty list (give one image, or a list of images)")
    if len(value) > MAX_SOURCES:
        raise InputError("too_many_images", f"source: {len(value)} images; an edit has at most {MAX_SOURCES}")
    return [decode_image(v, limits, f"source {i}") for i, v in enumerate(value, start=1)]


def check_image(data: bytes, limits: Limits, role: str = "image") -> None:
    """Probe the header only: refuse non-images and images above ``limits.max_image_pixels`` before decoding."""
    try:
        imgs.probe(data, limits.max_image_pixels)
    except imgs.ImageRejected as exc:
        raise InputError(exc.reason, f"{role} image: {exc.detail}") from None


def check_token(given: str | None, expected_digest: bytes | None) -> bool:
    """True when no token is required, or ``given`` ("Bearer …" header value) matches; compared in constant time."""
    import hashlib
    import hmac

    if expected_digest is None:
        return True
    scheme, _, token = (given or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(hashlib.sha256(token.strip().encode()).digest(), expected_digest)


def token_digest(token: str) -> bytes:
    """What the server keeps of its token: a SHA-256 digest (the token itself is not shipped to the replicas)."""
    import hashlib

    return hashlib.sha256(token.encode()).digest()


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = [
    "STATUS", "InputError", "Limits", "parse_json", "MAX_JSON_DEPTH", "decode_image", "decode_sources", "check_image", "check_token", "token_digest", "is_loopback",
    "DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_ITEMS", "DEFAULT_MAX_IMAGE_PIXELS", "DEFAULT_MAX_SAMPLES",
]
