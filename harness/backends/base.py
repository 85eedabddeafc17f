"""What every backend shares: hosts that run processes, a server host and a client host.

A backend is two hosts (they may be the same machine) and a way to run programs on each. The
behaviour suite only talks to this interface, so local processes, Docker containers and a Pi over
SSH slot in without touching a test. Concrete backends stay short; common work lives here.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from harness.agent import AgentLink
from harness.errors import CaptureUnavailableError, HarnessError
from harness.options import Options
from harness.process import COMMANDS, Completed, Process
from harness.procnet import Listener, listeners_from_proc, listeners_from_ss
from harness.wire.capture import Capture
from harness.wire.session import SessionCapture


class Host(ABC):
    """A machine that runs programs: this one, a container, a Pi.

    Every command goes through ``run`` or ``spawn``, which log it (host, argv, exit status,
    duration) at debug level on ``echolab.commands``, as pytest-testinfra does: a failing test's
    report carries the commands the harness ran for it.
    """

    #: How a peer on the backend's network reaches this host.
    address: str = "127.0.0.1"
    #: A short name for messages ("local", "server container", "pi@raspberrypi.local").
    label: str = "host"
    #: The harness's agent on this host (harness/remote/agent.py), once ``start_agent`` has started
    #: it: commands, probes and programs then go through it instead of a new process each.
    agent: AgentLink | None = None
    _capture: SessionCapture | None = None
    #: Given to every probe run here, e.g. a lossy link's patience (harness/net: ``idle_floor``).
    probe_params: dict[str, Any] = {}  # noqa: RUF012 - replaced whole, never mutated

    def start_agent(self) -> None:  # noqa: B027 - a host without an agent runs a process per request
        """Start the agent where this host can run it; without one, every request is a process."""

    def live_agent(self) -> AgentLink | None:
        """The host's agent, started again if its stream has ended since (the programs it ran are
        gone with it; later requests need not fail for that), with a warning in the command log."""
        agent = self.agent
        if agent is not None and agent.lost:
            COMMANDS.warning("%s: the harness's agent is gone (%s); starting another", self.label, agent.ended)
            self.agent = None
            with contextlib.suppress(Exception):  # it is gone already: whatever closing it says
                agent.close()
            self.start_agent()
            agent = self.agent
        return agent

    def spawn(self, argv: Sequence[str], env: dict[str, str] | None = None) -> Process:
        """Start a long-running program; its output is collected."""
        agent = self.live_agent()
        if agent is not None:
            return self._logged_spawn(argv, lambda: agent.spawn(argv, env))
        return self._logged_spawn(argv, lambda: self._spawn(argv, env))

    def _logged_spawn(self, argv: Sequence[str], start: Callable[[], Process]) -> Process:
        try:
            process = start()
        except OSError as exc:
            COMMANDS.debug("%s: %s -> cannot start: %s", self.label, shlex.join(argv), exc)
            raise
        process.where = self.label
        COMMANDS.debug("%s: %s -> started", self.label, shlex.join(argv))
        return process

    def run(self, argv: Sequence[str], input: bytes | None = None, timeout: float = 60.0) -> Completed:
        """Run a program to completion and return what it printed."""
        started = time.monotonic()
        command = shlex.join(argv)
        try:
            agent = self.live_agent()
            done = agent.run(argv, input, timeout) if agent is not None else self._run(argv, input, timeout)
        except Exception as exc:
            COMMANDS.debug("%s: %s -> %s after %.3f s", self.label, command, exc, time.monotonic() - started)
            raise
        COMMANDS.debug("%s: %s -> exit %d in %.3f s", self.label, command, done.returncode, time.monotonic() - started)
        return done

    @abstractmethod
    def _spawn(self, argv: Sequence[str], env: dict[str, str] | None) -> Process:
        """How this host starts a program (see ``spawn``)."""

    @abstractmethod
    def _run(self, argv: Sequence[str], input: bytes | None, timeout: float) -> Completed:
        """How this host runs a program to completion (see ``run``)."""

    @abstractmethod
    def echo_program(self, role: str, impl: str) -> list[str]:
        """argv prefix of the reference ``server`` or ``client`` in ``python`` or ``c`` on this host."""

    @abstractmethod
    def remote_argv(self, program: str) -> list[str]:
        """argv that runs harness/remote/<program>.py on this host (probe, drive, scripted_server)."""

    def free_port(self, pair: bool = False) -> int:
        """A port the server may use; hosts with a network namespace of their own can say 8888."""
        return 8888

    def read_proc_net(self) -> str:
        agent = self.live_agent()
        if agent is not None:
            return agent.read(["/proc/net/tcp", "/proc/net/tcp6"]).decode("ascii", "replace")
        return self.run(["cat", "/proc/net/tcp", "/proc/net/tcp6"], timeout=10.0).text

    def listeners(self, port: int) -> list[Listener]:
        """LISTEN sockets on ``port``; cheap, used to poll for readiness."""
        return listeners_from_proc(self.read_proc_net(), port)

    def listen_detail(self, port: int) -> list[Listener] | None:
        """LISTEN sockets with their backlog, from ``ss``; None where ss is not installed."""
        try:
            done = self.run(["ss", "-Hlnt", f"sport = :{port}"], timeout=10.0)
        except FileNotFoundError:
            return None
        if done.returncode != 0:
            return None
        return listeners_from_ss(done.text, port)

    def probe(self, op: str, **params: Any) -> dict[str, Any]:
        """Run one socket probe on this host (see harness/remote/probe.py) and return its result."""
        agent = self.live_agent()
        if agent is not None:
            result = agent.probe({"op": op, **self.probe_params, **params}, timeout=120.0)
            if "probe_error" in result:
                raise HarnessError(f"probe {op!r} on {self.label} failed: {result['probe_error']}")
            return result
        request = json.dumps({"op": op, **self.probe_params, **params}).encode()
        done = self.run(self.remote_argv("probe"), input=request, timeout=120.0)
        lines = done.stdout.decode("utf-8", "replace").splitlines()
        return self._probe_result(op, lines, f"status {done.returncode}: {done.stderr.decode()[-500:]}")

    def start_probe(self, op: str, **params: Any) -> Process:
        """Start a probe that reports as it goes (e.g. a held backlog probe); ``finish_probe`` reads it."""
        return self.spawn([*self.remote_argv("probe"), json.dumps({"op": op, **self.probe_params, **params})])

    def finish_probe(self, op: str, process: Process, timeout: float = 60.0) -> dict[str, Any]:
        status = process.wait(timeout)
        if status is None:
            process.kill()
        return self._probe_result(op, process.output(), process.describe_status())

    def _probe_result(self, op: str, lines: list[str], status: str) -> dict[str, Any]:
        try:
            result: dict[str, Any] = json.loads(lines[-1])
        except (IndexError, ValueError):
            raise HarnessError(f"probe {op!r} on {self.label} printed no result ({status}): {lines[-5:]}") from None
        if "probe_error" in result:
            raise HarnessError(f"probe {op!r} on {self.label} failed: {result['probe_error']}")
        return result

    def start_capture(self, port: int) -> Capture:
        """``port``'s packets on this host from now on: a slice of the host's one tcpdump for the run,
        started on first use (and again if it died)."""
        session = self._capture
        if session is None or not session.alive:
            self._capture = None
            if session is not None:
                session.close()
            self._capture = session = self.capture_session()
        return session.open(port)

    def stop_capture(self) -> None:
        """Stop this host's tcpdump for the run, if it runs, and remove its file."""
        session, self._capture = self._capture, None
        if session is not None:
            session.close()

    def capture_session(self) -> SessionCapture:
        """Start this host's tcpdump for the run (harness/wire/session.py), listening before this returns."""
        raise CaptureUnavailableError(f"packet capture is not available on {self.label}")

    def close(self) -> None:
        """Release what the host holds (its agent, which kills what it still runs); processes are
        stopped by their owners first."""
        self.stop_capture()
        agent, self.agent = self.agent, None
        if agent is not None:
            agent.close()


class Backend(ABC):
    """A server host and a client host, and everything needed to tear them down again."""

    name: ClassVar[str]

    def __init__(self, server_host: Host, client_host: Host) -> None:
        self.server_host = server_host
        self.client_host = client_host

    @classmethod
    @abstractmethod
    def create(cls, options: Options) -> Backend:
        """Bring the backend up from the run's options; BackendUnavailableError if it cannot be."""

    @classmethod
    def prepare(cls, options: Options, say: Callable[[str], None]) -> None:
        """Once per run, before any worker starts: slow shared work such as image builds, with
        progress through ``say``. Raise BackendUnavailableError when the backend cannot work."""
        return None  # most backends have nothing to prepare

    @classmethod
    def describe_target(cls, options: Options) -> str:
        """How test ids name this backend: ``local``, ``docker``, ``ssh://pi@raspberrypi.local``."""
        return cls.name

    @property
    def scripted_host(self) -> Host:
        """Where the harness's scripted server runs to judge a client: the server's host, or a host
        sharing its network namespace."""
        return self.server_host

    @property
    def server_address(self) -> str:
        """Where the client host reaches the server host."""
        return self.server_host.address

    def close(self) -> None:
        for host in _unique((self.client_host, self.server_host)):
            host.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unique(hosts: Iterable[Host]) -> list[Host]:
    seen: list[Host] = []
    for host in hosts:
        if all(host is not other for other in seen):
            seen.append(host)
    return seen
