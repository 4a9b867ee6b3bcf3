"""Processes of one Ray session, found by the RAY_TMPDIR their environment carries (Ray renames its workers and
agents — ``ray::IDLE``, ``ray::DashboardAgent`` — so their command lines no longer say which session they serve)."""

from __future__ import annotations

import os
from pathlib import Path


def session_processes(ray_tmp: str | Path) -> list[int]:
    """Pids (other than this process) whose environment has ``RAY_TMPDIR=ray_tmp`` or whose command line names it."""
    import psutil

    wanted = str(ray_tmp)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.info["pid"] == os.getpid():
            continue
        try:
            if proc.environ().get("RAY_TMPDIR") == wanted or any(wanted in p for p in proc.info["cmdline"] or []):
                found.append(proc.info["pid"])
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def kill_session(ray_tmp: str | Path) -> None:
    """SIGKILL every process of that session (a test cleaning up after itself only)."""
    import signal

    for pid in session_processes(ray_tmp):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
