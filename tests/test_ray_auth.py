"""`serve` and `score --ray` start a local Ray with token authentication said explicitly: Ray's default, without
its warning at every start; a mode the user set and a cluster being joined are left alone."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(("env", "address", "expected"), [
    ({}, None, "token"),
    ({"RAY_AUTH_MODE": "disabled"}, None, "disabled"),
    ({}, "10.0.0.1:6379", None),
    ({"RAY_ADDRESS": "auto"}, None, None),
])
def test_local_token_auth(env: dict, address: str | None, expected: str | None) -> None:
    code = ("import os, sys; from editjudge.ray_auth import local_token_auth; "
            f"local_token_auth({address!r}); print(os.environ.get('RAY_AUTH_MODE'))")
    clean = {k: v for k, v in __import__("os").environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    done = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == str(expected)


def test_nothing_changes_once_ray_is_imported() -> None:
    """Ray reads the mode at import: setting it later would split the driver from its cluster."""
    code = ("import os, sys; sys.modules.setdefault('ray', object()); from editjudge.ray_auth import local_token_auth; "
            "local_token_auth(None); print(os.environ.get('RAY_AUTH_MODE'))")
    clean = {k: v for k, v in __import__("os").environ.items() if k != "RAY_AUTH_MODE"}
    done = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=120,
                          check=True)
    assert done.stdout.strip() == "None"
