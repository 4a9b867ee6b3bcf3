"""Joining or starting the Ray a verb runs on: a bounded wait for a cluster address, and no orphans after a kill.

* :func:`address_problem` checks that something answers at ``--ray-address`` / ``--address`` (host:port, ray://…)
  within a timeout before ``ray.init`` is called: against an address where nothing listens ``ray.init`` retries for
  minutes without saying why; here the verb stops with a named error instead.
* :func:`start_reaper` is for a driver that starts its own local Ray: a small watchdog process (its own session)
  waits on a pipe from the driver; when the driver is gone — finished, or SIGKILLed, which no handler sees — it ends
  every process that carries this driver's session mark in its environment (Ray's daemons, agents and workers
  inherit the driver's environment), so nothing of that Ray is left behind. Other Rays on the machine never carry
  the mark and are never touched.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

__all__ = ["SESSION_MARK", "address_problem", "init_local_ray", "start_reaper"]

SESSION_MARK = "EDITJUDGE_RAY_SESSION"
_REAPERS: list[int] = []  # write ends of the reapers' pipes, open for the driver's lifetime


def address_problem(address: str | None, timeout_s: float, flag: str = "--ray-address") -> str | None:
    """Why nothing usable answers at ``address`` within ``timeout_s`` (None: go on with ``ray.init``)."""
    if not address or address in ("auto", "local"):
        return None  # a local Ray, or the one this machine's `ray start` recorded: Ray answers at once
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"{flag} {address}: expected host:port (the head's GCS, e.g. 10.0.0.5:6379), ray://host:port or auto"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return None
    except socket.gaierror as exc:
        return f"{flag} {address}: cannot resolve {host} ({exc.strerror or exc})"
    except TimeoutError:
        return (f"{flag} {address}: no answer within {timeout_s:g} s (a firewall, or the wrong host?); start the "
                "cluster with `ray start --head` there, or raise --ray-connect-timeout")
    except OSError as exc:
        return (f"{flag} {address}: nothing listens there ({exc.strerror or exc}); start the cluster with "
                "`ray start --head` on that machine, or drop the flag to start a local Ray")


def init_local_ray(**init_options: object) -> None:
    """``ray.init`` of a local Ray that cannot outlive this process: :func:`start_reaper` first, and the session
    mark is taken off this process's environment once Ray's daemons carry it (later children of the driver are not
    Ray's)."""
    import ray

    start_reaper()
    try:
        ray.init(**init_options)
    finally:
        os.environ.pop(SESSION_MARK, None)


def start_reaper() -> str:
    """Mark this process's environment with a fresh session token and start the watchdog that ends every process
    carrying it once this process is gone; call it before ``ray.init`` starts a local Ray. Returns the token."""
    token = uuid.uuid4().hex
    os.environ[SESSION_MARK] = token
    read_end, write_end = os.pipe()  # not inherited by Ray's children: only the driver holds the write end
    try:
        subprocess.Popen([sys.executable, "-m", "editjudge.judge.ray_reaper", token], stdin=read_end,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    finally:
        os.close(read_end)
    _REAPERS.append(write_end)
    return token
