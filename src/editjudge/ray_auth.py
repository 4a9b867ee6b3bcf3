"""Ray's token authentication for the local clusters editjudge starts (``serve``, ``score --ray``), said explicitly.

Ray 2.60 turns token authentication on for a new local cluster when ``RAY_AUTH_MODE`` is unset, and warns about it
at every start ("Token authentication is enabled for this Ray cluster …"). :func:`local_token_auth` sets that same
mode explicitly (``RAY_AUTH_MODE=token``: Ray generates ``~/.ray/auth_token`` when missing), which Ray respects without
the warning; a mode the user set, or a cluster being joined (``--address`` / ``RAY_ADDRESS``), is left alone. Ray
reads the mode when it is imported, so this runs before ``import ray`` (once Ray is imported it does nothing).
"""

from __future__ import annotations

import os
import sys

AUTH_MODE = "RAY_AUTH_MODE"


def local_token_auth(address: str | None) -> None:
    """Before ``import ray`` and ``ray.init(address=address)``: token auth, explicitly, for a new local cluster."""
    if address or os.environ.get("RAY_ADDRESS") or AUTH_MODE in os.environ or "ray" in sys.modules:
        return
    os.environ[AUTH_MODE] = "token"


__all__ = ["local_token_auth"]
