"""The system under test: how to start an echo server on a host, and when it counts as ready."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from harness.backends.base import Host
from harness.command import ServerCommand
from harness.errors import ServerNeverListenedError, ServerStartError
from harness.evidence import tail_block
from harness.process import Process
from harness.procnet import ports_in_use
from harness.wait import WaitTimeoutError, until
from harness.wire.capture import Capture, NoCapture

REPORT_LINES = 15
PORT_TRIES = 3


@dataclass(frozen=True)
class ServerSpec:
    """Which server to run: a reference implementation, or the user's ``--server-cmd``."""

    impl: str
    command: ServerCommand | None = None
    #: How the server serves clients; the user declares it for their own server (--server-mode).
    mode: str = "iterative"

    @property
    def is_reference(self) -> bool:
        return self.command is None

    def argv(self, host: Host, *, port: int, backlog: int, mode: str) -> list[str]:
        if self.command is not None:
            return self.command.argv(port=port, backlog=backlog)
        program = host.echo_program("server", self.impl)
        return [*program, "--port", str(port), "--backlog", str(backlog), "--mode", mode]

    def describe(self) -> str:
        if self.command is not None:
            return f"--server-cmd {self.command.template!r} ({self.mode})"
        return f"reference {self.impl} server"


class RunningServer:
    """A started server: where it listens, its process, and its output as evidence."""

    def __init__(
        self, host: Host, address: str, port: int, *, backlog: int | None, mode: str, process: Process
    ) -> None:
        self.host = host
        self.address = address
        self.port = port
        self.backlog = backlog
        self.mode = mode
        self.process = process
        #: Its packets, when the test's wire capture is on (see harness/wire/capture.py).
        self.capture: Capture | NoCapture | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    def tail(self, lines: int = REPORT_LINES) -> list[str]:
        return self.process.output()[-lines:]

    def evidence(self) -> str:
        """The block every failure message ends with: command, state, last output."""
        return (
            f"server {shlex.join(self.process.argv)} on {self.endpoint}: {self.process.describe_status()}\n"
            + tail_block("server output (last lines)", self.tail())
        )

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        self.process.stop()


def start_server(
    host: Host, address: str, spec: ServerSpec, *, backlog: int, mode: str, ready_timeout: float
) -> RunningServer:
    """Start the server and wait until its port is in LISTEN state; stop it again if it never is.

    A server that exits early because another program took its port between our choice and its
    bind() is not at fault: seen so (the port is held by someone else now), it gets another port."""
    for attempt in range(1, PORT_TRIES + 1):
        port = host.free_port()
        argv = spec.argv(host, port=port, backlog=backlog, mode=mode)
        try:
            process = host.spawn(argv)
        except OSError as exc:
            raise ServerStartError(f"cannot start {shlex.join(argv)} on {host.label}: {exc.strerror or exc}") from None
        server = RunningServer(host, address, port, backlog=backlog, mode=mode, process=process)
        try:
            wait_until_listening(server, ready_timeout)
        except ServerStartError:
            process.stop()
            if attempt < PORT_TRIES and process.poll() is not None and port_taken(host, port):
                continue
            raise
        except BaseException:
            process.stop()
            raise
        return server
    raise AssertionError("unreachable")  # pragma: no cover - the last attempt returns or raises


def port_taken(host: Host, port: int) -> bool:
    """Whether some socket other than the (exited) server's holds ``port`` on ``host``."""
    return port in ports_in_use(host.read_proc_net())


def wait_until_listening(server: RunningServer, timeout: float) -> None:
    """Poll the server host's kernel for a LISTEN socket on the port: no connection is spent on it,
    so a one-client-at-a-time server is not disturbed, and a slow starter simply takes longer."""

    def listening() -> bool:
        if server.process.poll() is not None:
            said = next((line.strip() for line in reversed(server.tail()) if line.strip()), "")
            words = f"; its last words: {said[-200:]!r}" if said else "; it printed nothing"
            raise ServerStartError(
                f"the server exited before it listened on port {server.port}: {server.process.describe_status()}"
                f"{words}\n{server.evidence()}"
            )
        return bool(server.host.listeners(server.port))

    try:  # cheap polls from 2 ms: a late look costs every test
        until(listening, timeout=timeout, what=f"the server listening on port {server.port}")
    except WaitTimeoutError:
        message = (
            f"the server never listened on port {server.port} of {server.host.label} within {timeout:g} s "
            f"(--ready-timeout sets the limit)\n{server.evidence()}"
        )
        server.process.stop()
        raise ServerNeverListenedError(message) from None
