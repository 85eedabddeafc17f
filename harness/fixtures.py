"""The fixtures the behaviour suite uses: the backend per target, its hosts, the server under test
started fresh per test, and the test's packet captures."""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from harness.backends import backend_class
from harness.backends.base import Backend, Host
from harness.client import ClientSpec, ScriptedServer, free_pair, start_scripted
from harness.cmdline import OPTIONS, Target, in_ci
from harness.command import LAB_ADDRESS
from harness.errors import BackendUnavailableError, ServerStartError
from harness.gate import BOARD, SERVER_START, STARTED_NOTHING, NotJudged, needs_text
from harness.net.conditions import LOSSY_GATHER, Conditions
from harness.net.tally import RETRANSMISSIONS, count
from harness.options import Options
from harness.server import RunningServer, ServerSpec, start_server
from harness.wire.tap import WIRE, Wire


class BackendPool:
    """One backend of each kind per worker, created on first use and closed at the session's end."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._made: dict[str, Backend] = {}
        self._failed: dict[str, str] = {}

    def get(self, name: str) -> Backend:
        if name in self._failed:
            unavailable(self._failed[name])
        if name not in self._made:
            try:
                self._made[name] = backend_class(name).create(self.options)
            except BackendUnavailableError as exc:
                self._failed[name] = f"backend {name} unavailable: {exc}"
            if name in self._failed:  # outside the except block: one clean line in the report
                unavailable(self._failed[name])
        return self._made[name]

    def close(self) -> None:
        while self._made:
            _, backend = self._made.popitem()
            backend.close()


def unavailable(reason: str) -> None:
    """A missing capability skips with its reason on a workstation and fails loudly in CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing capability is a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def echolab_options(pytestconfig: pytest.Config) -> Options:
    return pytestconfig.stash[OPTIONS]


@pytest.fixture(scope="session")
def _backend_pool(echolab_options: Options) -> Iterator[BackendPool]:
    pool = BackendPool(echolab_options)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    param: Target = request.param
    return param


@pytest.fixture(scope="session")
def backend(target: Target, _backend_pool: BackendPool) -> Backend:
    return _backend_pool.get(target.backend)


@pytest.fixture(scope="session")
def server_spec(target: Target, echolab_options: Options) -> ServerSpec:
    if echolab_options.server_cmd is not None:
        return ServerSpec("custom", echolab_options.server_cmd, echolab_options.server_mode)
    return ServerSpec(target.impl)


@pytest.fixture
def server_host(backend: Backend) -> Host:
    return backend.server_host


@pytest.fixture
def client_host(backend: Backend) -> Host:
    return backend.client_host


@pytest.fixture
def lab_client(client_host: Host, target: Target) -> list[str]:
    """argv of the lab's interactive client on the client host."""
    return client_host.echo_program("client", target.impl)


StartServer = Callable[..., RunningServer]


@pytest.fixture
def wire(request: pytest.FixtureRequest, backend: Backend, echolab_options: Options) -> Iterator[Wire]:
    """The test's packet captures on the server host; servers started by ``start_server_on`` are
    watched from before their first packet. A failing test's report shows them as packet tables.
    A capture that lost packets makes the test not judged, never passed."""
    tap = Wire(backend.server_host, echolab_options.wire)
    request.node.stash[WIRE] = tap
    try:
        yield tap
    finally:
        tap.stop()
        if echolab_options.net is not None:
            request.node.user_properties.append((RETRANSMISSIONS, count(tap)))
        if echolab_options.keep_pcaps is not None:
            tap.keep(echolab_options.keep_pcaps, request.node.nodeid.split("::")[-1])
    lost = tap.lost()
    if lost is not None:
        raise NotJudged(f"its wire checks were judged on an incomplete capture: {lost}")


@pytest.fixture
def start_server_on(
    request: pytest.FixtureRequest,
    backend: Backend,
    server_spec: ServerSpec,
    echolab_options: Options,
    wire: Wire,
    pytestconfig: pytest.Config,
) -> Iterator[StartServer]:
    """Factory: ``start_server_on(backlog=3, mode="iterative")``; every server it starts is stopped.
    Once a server failed to start in this run, later tests are not judged at once: a server that
    never comes up costs one readiness timeout per worker, not one per test."""
    started: list[RunningServer] = []
    board = pytestconfig.stash[BOARD]

    def start(backlog: int | None = 3, mode: str | None = None) -> RunningServer:
        chosen = mode or server_spec.mode
        earlier = board.broken(SERVER_START)
        if earlier is not None:
            raise NotJudged(f"needs {needs_text(SERVER_START)}; earlier in this run: {earlier}", SERVER_START)
        try:
            server = start_server(
                backend.server_host,
                backend.server_address,
                server_spec,
                backlog=3 if backlog is None else backlog,
                mode=chosen,
                ready_timeout=echolab_options.ready_timeout,
            )
        except ServerStartError as exc:
            failed = str(exc)
        else:
            started.append(server)
            server.capture = wire.watch(server.port)
            if backlog is None:  # the server picked its own backlog: believe the kernel, not the flag
                server.backlog = None
            return server
        # The server's fault: its evidence, not the harness's stack (and outside the except block,
        # so the report does not repeat itself as "during handling of the above exception").
        request.node.user_properties.append((STARTED_NOTHING, True))
        pytest.fail(failed, pytrace=False)

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def net_conditions(echolab_options: Options) -> Conditions | None:
    """The run's --net conditions on the link between client and server hosts; None: a clean link."""
    return echolab_options.net


@pytest.fixture
def echo_server(start_server_on: StartServer) -> RunningServer:
    """The server under test, freshly started, iterative unless the user said otherwise."""
    return start_server_on()


@pytest.fixture(scope="session")
def client_spec(target: Target, echolab_options: Options) -> ClientSpec:
    """The client under test: the user's --client-cmd, or the reference client of the target's impl."""
    return ClientSpec(target.impl, echolab_options.client_cmd)


StartScripted = Callable[..., ScriptedServer]


@pytest.fixture
def scripted_server(
    backend: Backend, client_spec: ClientSpec, wire: Wire, pytestconfig: pytest.Config, echolab_options: Options
) -> Iterator[StartScripted]:
    """Factory: ``scripted_server(mode="echo")`` starts the harness's scripted echo server where the
    client under test will look for it, watched by the test's capture; stopped when the test ends."""
    started: list[ScriptedServer] = []
    with ExitStack() as stack:

        def start(mode: str = "echo") -> ScriptedServer:
            locks = pytestconfig.stash[BOARD].directory  # shared by the run's workers, removed with it
            host, address, port = where_the_client_looks(backend, client_spec, stack, locks)
            delay = LOSSY_GATHER if echolab_options.net is not None else None
            server = start_scripted(host, address, mode, port, delay=delay)
            started.append(server)
            server.capture = wire.watch(
                server.port, host=backend.client_host if client_spec.served_on_client_host else None
            )
            return server

        try:
            yield start
        finally:
            for server in started:
                server.stop()


def where_the_client_looks(
    backend: Backend, spec: ClientSpec, stack: ExitStack, locks: Path
) -> tuple[Host, str, int | None]:
    """(host, address, port) for the client's server: on the server host, any free pair of ports
    (None), or, for a client with the lab's hard-coded address, 127.0.0.1 on its own host, and 8888
    for a hard-coded port, one test at a time there (``stack`` releases it)."""
    fixed = spec.command is not None and spec.command.hard_coded_port
    if spec.served_on_client_host:
        host, address = backend.client_host, LAB_ADDRESS[0]
    else:
        host, address = backend.scripted_host, backend.server_address
    if not fixed:
        return host, address, None
    stack.enter_context(port_lock(locks, host, LAB_ADDRESS[1]))
    if host.listeners(LAB_ADDRESS[1]) or host.listeners(LAB_ADDRESS[1] + 1):
        raise NotJudged(
            f"port {LAB_ADDRESS[1]} (or {LAB_ADDRESS[1] + 1}) is in use on {host.label}: a client with a "
            f"hard-coded port needs it free (or put {{port}} in --client-cmd)"
        )
    return host, address, LAB_ADDRESS[1]


@contextlib.contextmanager
def port_lock(locks: Path, host: Host, port: int) -> Iterator[None]:
    """One test at a time on a fixed port of ``host``, across this run's workers."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"port-{port}-{host.label}")
    with open(locks / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture
def refused_address(
    backend: Backend, client_spec: ClientSpec, pytestconfig: pytest.Config
) -> Iterator[tuple[str, int]]:
    """Where the client under test would look for its server, with nothing listening there."""
    with ExitStack() as stack:
        host, address, port = where_the_client_looks(backend, client_spec, stack, pytestconfig.stash[BOARD].directory)
        yield address, port if port is not None else free_pair(host)
