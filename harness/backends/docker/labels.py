"""Labels on every container and network the docker backend creates, and the sweep of stale ones.

Everything carries ``org.echolab.run`` (the run's id) and its owner: host name, pid and that
process's start time. Cleanup never needs Ryuk: a run removes what it made, and a later run
removes what a run that was killed outright left, judged by its owner being dead, so another
live run's containers are never touched.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

RUN = "org.echolab.run"
HOST = "org.echolab.host"
PID = "org.echolab.pid"
PID_START = "org.echolab.pid-start"
CREATED = "org.echolab.created"
#: How the controlling pytest hands its run id to its xdist workers (they inherit its environment).
RUN_ENV = "ECHOLAB_RUN"


def new_run() -> str:
    """A fresh run id, exported so that processes started from now on share it."""
    run = secrets.token_hex(4)
    os.environ[RUN_ENV] = run
    return run


def current_run() -> str:
    return os.environ.get(RUN_ENV) or new_run()


def _stat(pid: int) -> list[str]:
    """Fields 3 on of /proc/PID/stat (state, ppid, ...); empty where there is no such process or /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    # The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    return stat.rsplit(")", 1)[1].split()


def process_start(pid: int) -> str:
    """When ``pid`` started (clock ticks since boot, field 22): a reused pid has another one."""
    fields = _stat(pid)
    return fields[19] if fields else ""


def owner_labels(run: str) -> dict[str, str]:
    """The labels for something this process creates for run ``run``."""
    pid = os.getpid()
    return {
        RUN: run,
        HOST: socket.gethostname(),
        PID: str(pid),
        PID_START: process_start(pid),
        CREATED: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def owner_alive(labels: Mapping[str, str]) -> bool:
    """False only when the owner certainly is gone: same host, and its pid dead, a zombie or reused."""
    pid = labels.get(PID, "")
    if labels.get(HOST) != socket.gethostname() or not pid.isdigit():
        return True  # another machine's, or a hand-made one (`make up`): not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    fields = _stat(int(pid))
    if not fields:
        return True  # no /proc here: the pid exists, believe it
    return fields[19] == labels.get(PID_START) and fields[0] != "Z"


def sweep(client: Any, say: Callable[[str], None]) -> list[str]:
    """Remove containers, then networks, whose owner is dead; return their names."""
    import docker.errors

    removed: list[str] = []
    # The low-level list: the SDK's containers.list() inspects each container after listing them all,
    # and fails with NotFound for one that a live run removed in between.
    for container in client.api.containers(all=True, filters={"label": RUN}):
        if not owner_alive(container.get("Labels") or {}):
            try:
                client.api.remove_container(container["Id"], force=True, v=True)
            except docker.errors.NotFound:
                continue  # another run's sweep was faster
            removed.append((container.get("Names") or [container["Id"][:12]])[0].lstrip("/"))
    for network in client.networks.list(filters={"label": RUN}):
        if not owner_alive(network.attrs.get("Labels") or {}):
            try:
                network.remove()
            except docker.errors.NotFound:
                continue
            removed.append(network.name)
    if removed:
        say(f"removed {len(removed)} leftovers of runs that were killed: {', '.join(removed)}")
    return removed
