"""What the behaviour suite asks of a client host, and how it words a failure.

Each helper runs a probe from the client host against a running server and returns its result;
the ``*_problem`` functions turn a result into the sentence a failure report leads with, or None.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.backends.base import Host
from harness.errors import HarnessError
from harness.evidence import describe_echo, describe_end
from harness.gate import NotJudged
from harness.procnet import Listener
from harness.remote.probe import make_payload
from harness.server import RunningServer
from harness.wait import WaitTimeoutError, until
from harness.wire.capture import Capture, NoCapture
from harness.wire.table import connection_table
from harness.wire.tcp import Connection, data_problem

Judge = Callable[[Connection], "str | None"]

Result = dict[str, Any]


def text(value: str) -> dict[str, str]:
    return {"text": value}


def raw(data: bytes) -> dict[str, str]:
    return {"hex": data.hex()}


def random_bytes(size: int, seed: int = 0) -> dict[str, int]:
    return {"random": size, "seed": seed}


def payload(*messages: dict[str, Any]) -> bytes:
    """The bytes behind payload specs, made the same way the probe makes them."""
    return b"".join(make_payload(m) for m in messages)


def exchange(client: Host, server: RunningServer, *messages: dict[str, Any], **options: Any) -> Result:
    """Send ``messages`` to the server from the client host; see harness/remote/probe.py op_exchange."""
    return client.probe("exchange", host=server.address, port=server.port, messages=list(messages), **options)


def connect(client: Host, address: str, port: int, timeout: float = 2.0) -> Result:
    return client.probe("connect", host=address, port=port, timeout=timeout)


def echo_problem(result: Result) -> str | None:
    """Why the bytes that came back are not the bytes sent, or None. How the stream ended is
    judged by the half-close checks, not here."""
    if result.get("connected") and result["first_diff"] is None:
        return None
    return describe_echo(result)


def ending_problem(result: Result) -> str | None:
    """Why the exchange did not end with every byte and then the server's FIN, or None."""
    problem = echo_problem(result)
    if problem is not None:
        return problem
    if result["end"] != "eof":
        instead = describe_end(result["end"], result.get("idle_limit"))
        return f"after the full echo and our FIN, expected the server's FIN; instead {instead}"
    return None


def failure(headline: str, server: RunningServer) -> str:
    return f"{headline}\n{server.evidence()}"


def echoed_exactly(sent: bytes) -> Judge:
    """Judge: the client's segments carry ``sent``, the server's carry it back, all acknowledged."""
    return lambda conn: data_problem(conn, sent, sent)


def captured(capture: Capture | NoCapture | None) -> Capture:
    """The capture a test about packets needs; without one the test is not judged."""
    if isinstance(capture, Capture):
        return capture
    raise NotJudged(capture.reason if capture is not None else "packet capture is off (--wire off)")


def headers_only(capture: Capture | NoCapture | None) -> None:
    """The test will judge only headers on this capture (flags, a reset): its large segments may be
    read cut to their headers (Capture.headers_only)."""
    if isinstance(capture, Capture):
        capture.headers_only()


def wire_problem(capture: Capture | NoCapture | None, client_port: int | None, *judges: Judge) -> str | None:
    """What the capture shows wrong about the connection from ``client_port``, with its packet
    table; None when it is right, or when capture is off (--wire off). A capture that failed or
    lost packets proves nothing either way: the test is then not judged (NotJudged)."""
    if capture is None:
        return None
    if isinstance(capture, NoCapture):
        raise NotJudged(capture.reason)
    capture.judged = True
    conn = capture.connection(client_port) if client_port is not None else None
    problem: str | None
    if conn is None:
        problem = f"on the wire: no packet of the connection from port {client_port}\n{capture.table()}"
    else:
        found = (judge(conn) for judge in judges)
        problem = next((f"on the wire: {p}\n{connection_table(conn)}" for p in found if p is not None), None)
    lost = capture.loss() if problem is not None else None
    if lost is not None:
        raise NotJudged(f"{lost}: a wire check on an incomplete capture proves nothing")
    return problem


#: A connect on a lossy link (--net): SYN sent at 0, 1, 2 and 3 s (Linux 6.5+'s linear backoffs),
#: so a loss of 5% each way leaves about one connect in 10,000 timing out for want of luck.
LOSSY_CONNECT = {"syn_tries": 3, "connect_timeout": 3.5}


@dataclass(frozen=True)
class BacklogObservation:
    """A filled accept queue seen from both ends: the client's probe and the server's kernel."""

    result: Result
    kernel: list[Listener] | None

    @property
    def completed(self) -> int:
        return int(self.result["completed"])

    def kernel_summary(self) -> str:
        if self.kernel is None:
            return "server side: ss is not available on the server host"
        if not self.kernel:
            return "server side: ss shows no LISTEN socket on the port"
        return "server side (ss, while full): " + "; ".join(
            f"accept queue {row.queued} (Recv-Q), backlog {row.backlog} (Send-Q)" for row in self.kernel
        )


def fill_backlog(
    client: Host, server_host: Host, server: RunningServer, limit: int, lossy: bool = False
) -> BacklogObservation:
    """Occupy the server with one client, queue connections until one fails, read the server's
    kernel while the queue is full, then let the queue drain (see harness/remote/probe.py op_backlog).
    ``lossy`` (--net): each connect tries its SYN four times, so only a full queue times it out."""
    patience = LOSSY_CONNECT if lossy else {}
    process = client.start_probe("backlog", host=server.address, port=server.port, limit=limit, hold=30.0, **patience)

    def filled() -> bool:
        if process.poll() is not None:
            return True
        return any('"filled"' in line for line in process.output())

    try:
        until(filled, timeout=limit * (4.0 if lossy else 1.0) + 30, what="the backlog probe reporting a full queue")
    except WaitTimeoutError:
        process.kill()
        raise HarnessError(f"the backlog probe never reported a full queue: {process.output()[-5:]}") from None
    kernel = server_host.listen_detail(server.port) if process.poll() is None else None
    process.signal(signal.SIGUSR1)
    result = client.finish_probe("backlog", process)
    return BacklogObservation(result, kernel)


def own_backlog(server_host: Host, server: RunningServer) -> int | None:
    """The backlog the server passed to listen(), as its kernel reports it (ss Send-Q)."""
    rows = server_host.listen_detail(server.port)
    return rows[0].backlog if rows else None
