"""What a host's kernel says about listening sockets: ``/proc/net/tcp*`` rows and ``ss -lnt`` lines.

Pure parsing, no I/O, so every backend can fetch the text its own way (a file read, ``docker exec``,
``ssh``) and share one reading of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

TCP_LISTEN = "0A"  # include/net/tcp_states.h: TCP_LISTEN == 10


@dataclass(frozen=True)
class Listener:
    """A LISTEN socket: ``queued`` connections wait in its accept queue; ``backlog`` if ss told us."""

    port: int
    queued: int
    backlog: Optional[int] = None


def listeners_from_proc(text: str, port: int) -> list[Listener]:
    """LISTEN rows for ``port`` in the text of /proc/net/tcp and /proc/net/tcp6.

    For a listener the kernel reports the accept-queue length as rx_queue (net/ipv4/tcp_ipv4.c,
    get_tcp4_sock); the maximum is not there, only ss (inet_diag) shows it.
    """
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or ":" not in fields[1] or fields[0] == "sl":
            continue
        local, state, queues = fields[1], fields[3], fields[4]
        if state != TCP_LISTEN or int(local.rsplit(":", 1)[1], 16) != port:
            continue
        rx_queue = queues.split(":")[1]
        found.append(Listener(port=port, queued=int(rx_queue, 16)))
    return found


def listeners_from_ss(text: str, port: int) -> list[Listener]:
    """LISTEN lines for ``port`` in ``ss -Hlnt`` output: Recv-Q is the queue, Send-Q the backlog."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0] != "LISTEN":
            continue
        if not fields[3].rsplit(":", 1)[-1].isdigit() or int(fields[3].rsplit(":", 1)[1]) != port:
            continue
        found.append(Listener(port=port, queued=int(fields[1]), backlog=int(fields[2])))
    return found


def ports_in_use(text: str) -> set[int]:
    """Every local port a socket holds (any state) in the text of /proc/net/tcp and /proc/net/tcp6."""
    used = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 1 and ":" in fields[1] and fields[0] != "sl":
            used.add(int(fields[1].rsplit(":", 1)[1], 16))
    return used
