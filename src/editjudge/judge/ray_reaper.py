"""The watchdog of :func:`editjudge.judge.ray_cluster.start_reaper`: ``python -m editjudge.judge.ray_reaper TOKEN``.

Waits until its stdin (a pipe whose write end only the driver holds) reaches end of file — the driver has exited or
was killed — then gives Ray a moment to stop by itself and ends (SIGTERM, then SIGKILL) every process of this user
whose environment carries ``EDITJUDGE_RAY_SESSION=TOKEN``.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from editjudge.judge.ray_cluster import SESSION_MARK

GRACE_S = 1.0  # Ray's own fate-sharing usually ends its daemons in that time
DEADLINE_S = 15.0


def _marked(token: str) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "uids"]):
        if proc.info["pid"] == os.getpid():
            continue
        try:
            if proc.environ().get(SESSION_MARK) == token:
                found.append(proc.info["pid"])
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def main(token: str) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the driver is not ours
    while sys.stdin.buffer.read(1 << 16):
        pass
    time.sleep(GRACE_S)
    deadline = time.monotonic() + DEADLINE_S
    sent: dict[int, int] = {}
    while time.monotonic() < deadline:
        left = _marked(token)
        if not left:
            return 0
        for pid in left:
            kind = signal.SIGKILL if sent.get(pid) else signal.SIGTERM
            try:
                os.kill(pid, kind)
                sent[pid] = sent.get(pid, 0) + 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.5)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
