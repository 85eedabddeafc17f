"""The echolab pytest plugin: options, fixtures, markers and the verdict (entry point ``pytest11``)."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.backends import REGISTRY, backend_class
from harness.backends.base import Backend, Host
from harness.capture import Wire
from harness.errors import BackendUnavailableError, ConfigError, ServerNeverListenedError, ServerStartError
from harness.options import IMPLS, MODES, Options
from harness.server import RunningServer, ServerSpec, start_server
from harness.servercmd import EXAMPLE, ServerCommand

OPTIONS = pytest.StashKey[Options]()
BEHAVIOUR = "behaviour"
WIRE = pytest.StashKey[Wire]()
PCAPS = "pcaps"  # under the rootdir: where a failing test's captures are kept
SERVER_START = "server_start_failed"


@dataclass(frozen=True)
class Target:
    """One combination the suite runs against: a backend and a reference implementation."""

    backend: str
    impl: str
    label: str

    def __str__(self) -> str:
        return self.label


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("echolab", "echolab: judge a TCP echo server")
    group.addoption(
        "--backend",
        default="local",
        help=f"where server and client run, comma-separated for several: {', '.join(REGISTRY)} (default local)",
    )
    group.addoption(
        "--impl",
        default="python",
        help="reference programs to use, comma-separated for both: python, c (default python); "
        "with --server-cmd it picks the lab client only",
    )
    group.addoption(
        "--server-cmd",
        default=None,
        metavar="TEMPLATE",
        help="run this echo server instead of the reference one; {port} and {backlog} are filled in, "
        f"e.g. {EXAMPLE}",
    )
    group.addoption(
        "--server-mode",
        choices=MODES,
        default="iterative",
        help="how the --server-cmd server serves clients: one at a time (iterative, like the lab) or "
        "all at once (concurrent); picks the backlog or the concurrency checks",
    )
    group.addoption(
        "--wire",
        choices=("on", "off"),
        default="on",
        help="capture each test's packets with tcpdump and check the TCP exchange (default on)",
    )
    group.addoption(
        "--keep-pcaps",
        default=None,
        metavar="DIR",
        help=f"keep every test's capture in DIR (a failing test's capture is always kept, in {PCAPS}/)",
    )
    group.addoption(
        "--server-image",
        default=None,
        metavar="IMAGE",
        help="docker: run --server-cmd inside this image of yours instead of echolab's server image",
    )
    group.addoption("--ssh-host", default=None, metavar="HOST", help="ssh: the server's host, e.g. raspberrypi.local")
    group.addoption(
        "--ssh-user", default=None, metavar="USER", help="ssh: login user (default: ssh config's User, else pi)"
    )
    group.addoption("--ssh-port", type=int, default=None, metavar="PORT", help="ssh: port of the server's sshd")
    group.addoption(
        "--ssh-client-host",
        default=None,
        metavar="HOST",
        help="ssh: run the client side on this SSH host too, instead of this workstation",
    )
    group.addoption(
        "--ssh-config", default=None, metavar="FILE", help="ssh: use this ssh_config instead of ~/.ssh/config"
    )
    group.addoption(
        "--ready-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long a server may take to start listening (default 10)",
    )


def _split(value: str, valid: tuple[str, ...] | None, what: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if not names:
        raise ConfigError(f"--{what} is empty")
    for name in names:
        if valid is not None and name not in valid:
            raise ConfigError(f"unknown --{what} {name!r}; choose from {', '.join(valid)}")
    return names


def parse_options(config: pytest.Config) -> Options:
    template = config.getoption("--server-cmd")
    return Options(
        backends=_split(config.getoption("--backend"), tuple(REGISTRY), "backend"),
        impls=_split(config.getoption("--impl"), IMPLS, "impl"),
        server_cmd=ServerCommand.parse(template) if template is not None else None,
        server_mode=config.getoption("--server-mode"),
        ready_timeout=config.getoption("--ready-timeout"),
        rootdir=Path(str(config.rootpath)),
        wire=config.getoption("--wire") == "on",
        keep_pcaps=Path(config.getoption("--keep-pcaps")) if config.getoption("--keep-pcaps") else None,
        server_image=config.getoption("--server-image"),
        ssh_host=config.getoption("--ssh-host"),
        ssh_user=config.getoption("--ssh-user"),
        ssh_port=config.getoption("--ssh-port"),
        ssh_client_host=config.getoption("--ssh-client-host"),
        ssh_config=config.getoption("--ssh-config"),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "behaviour(name): the lab behaviour a test belongs to, for the verdict")
    config.addinivalue_line("markers", "serves(mode): only for servers that serve clients this way")
    config.addinivalue_line("markers", "backlogs(*n): run with each listen backlog (or the server's own)")
    try:
        config.stash[OPTIONS] = parse_options(config)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Shared slow work (image builds) once, in the controlling process, with visible progress."""
    config = session.config
    if hasattr(config, "workerinput"):  # an xdist worker: the controller has done it
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"echolab: {line}")

    options = config.stash[OPTIONS]
    for name in options.backends:
        try:
            backend_class(name).prepare(options, say)
        except BackendUnavailableError as exc:
            # Each test that needs it reports the same reason (skip locally, failure in CI).
            say(f"backend {name} unavailable: {exc}")


def targets(options: Options) -> list[Target]:
    return [
        Target(backend, impl, f"{backend_class(backend).describe_target(options)}-{impl}")
        for backend in options.backends
        for impl in options.impls
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    options = metafunc.config.stash[OPTIONS]
    if "target" in metafunc.fixturenames:
        found = targets(options)
        metafunc.parametrize("target", found, ids=[t.label for t in found], indirect=True, scope="session")
    marker = metafunc.definition.get_closest_marker("backlogs")
    if marker is not None and "backlog" in metafunc.fixturenames:
        command = options.server_cmd
        if command is None or command.takes_backlog:
            metafunc.parametrize("backlog", marker.args, ids=[f"backlog{n}" for n in marker.args])
        else:
            # The server chose its own listen() backlog; the test reads it off the kernel (ss).
            metafunc.parametrize("backlog", [None], ids=["own-backlog"])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("behaviour")
        if marker is not None:
            item.user_properties.append((BEHAVIOUR, marker.args[0]))


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


@pytest.fixture(scope="session")
def _never_listened() -> dict[str, str]:
    """Per target, the report of a server that never listened: later tests fail at once with it,
    so a server that never comes up costs one readiness timeout per worker, not one per test."""
    return {}


@pytest.fixture(scope="session")
def _capture_unavailable() -> dict[str, str]:
    return {}


@pytest.fixture
def wire(
    request: pytest.FixtureRequest,
    backend: Backend,
    target: Target,
    echolab_options: Options,
    _capture_unavailable: dict[str, str],
) -> Iterator[Wire]:
    """The test's packet captures on the server host; servers started by ``start_server_on`` are
    watched from before their first packet. A failing test's report shows them as packet tables."""
    tap = Wire(backend.server_host, echolab_options.wire, _capture_unavailable, target.label)
    request.node.stash[WIRE] = tap
    try:
        yield tap
    finally:
        tap.stop()
        if echolab_options.keep_pcaps is not None:
            tap.keep(echolab_options.keep_pcaps, request.node.nodeid.split("::")[-1])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    tap = item.stash.get(WIRE, None)
    if report.when == "call" and report.failed and tap is not None and tap.captures:
        options = item.config.stash[OPTIONS]
        directory = options.keep_pcaps or options.rootdir / PCAPS
        report.sections.append(("echolab packet capture", tap.report(directory, item.nodeid.split("::")[-1])))
    return report


@pytest.fixture
def start_server_on(
    request: pytest.FixtureRequest,
    backend: Backend,
    target: Target,
    server_spec: ServerSpec,
    echolab_options: Options,
    wire: Wire,
    _never_listened: dict[str, str],
) -> Iterator[StartServer]:
    """Factory: ``start_server_on(backlog=3, mode="iterative")``; every server it starts is stopped."""
    started: list[RunningServer] = []
    gate = request.node.get_closest_marker("serves")
    if gate is not None and not server_spec.is_reference and server_spec.mode != gate.args[0]:
        pytest.skip(f"for {gate.args[0]} servers; the server under test is {server_spec.mode} (--server-mode)")

    def start(backlog: int | None = 3, mode: str | None = None) -> RunningServer:
        chosen = mode or server_spec.mode
        if target.label in _never_listened:
            request.node.user_properties.append((SERVER_START, True))
            pytest.fail(f"not started again; earlier in this run:\n{_never_listened[target.label]}", pytrace=False)
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
            if isinstance(exc, ServerNeverListenedError):
                _never_listened[target.label] = failed
        else:
            started.append(server)
            server.capture = wire.watch(server.port)
            if backlog is None:  # the server picked its own backlog: believe the kernel, not the flag
                server.backlog = None
            return server
        # The server's fault: its evidence, not the harness's stack (and outside the except block,
        # so the report does not repeat itself as "during handling of the above exception").
        request.node.user_properties.append((SERVER_START, True))
        pytest.fail(failed, pytrace=False)

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def echo_server(start_server_on: StartServer) -> RunningServer:
    """The server under test, freshly started, iterative unless the user said otherwise."""
    return start_server_on()


def _outcomes(stats: dict[str, list[Any]]) -> dict[str, dict[str, list[str]]]:
    """Test names by behaviour and outcome; a test whose server never came up, or whose fixtures
    failed, is filed under that instead: it is no evidence about the behaviour it checks."""
    outcome: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for kind in ("passed", "failed", "error", "skipped"):
        for report in stats.get(kind, []):
            props = dict(getattr(report, "user_properties", []))
            if BEHAVIOUR not in props or (report.when != "call" and kind == "passed"):
                continue
            if props.get(SERVER_START):
                behaviour = "server start"
            elif kind == "error":
                behaviour = "setup (harness/env)"
            else:
                behaviour = props[BEHAVIOUR]
            outcome[behaviour][kind].append(report.nodeid.split("::")[-1])
    return outcome


def _verdict(broken: list[str], checked: int, exitstatus: int) -> tuple[str, dict[str, bool]]:
    if broken:
        return f"VERDICT: FAIL - broken: {', '.join(broken)}", {"red": True}
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return "VERDICT: INCOMPLETE - the run was interrupted", {"yellow": True}
    if not checked:
        return "VERDICT: NOT JUDGED - every check was skipped (reasons in the summary)", {"yellow": True}
    return "VERDICT: PASS - every behaviour checked holds", {"green": True}


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """A verdict per lab behaviour, readable without scrolling through the test log."""
    outcome = _outcomes(terminalreporter.stats)
    if not outcome:
        return
    options = config.stash[OPTIONS]
    subject = f"--server-cmd {options.server_cmd.template!r}" if options.server_cmd else "the reference server"
    terminalreporter.section("echolab verdict")
    terminalreporter.write_line(f"system under test: {subject} ({', '.join(t.label for t in targets(options))})")
    broken = []
    for behaviour in sorted(outcome):
        kinds = outcome[behaviour]
        bad = kinds["failed"] + kinds["error"]
        state = "BROKEN" if bad else ("ok" if kinds["passed"] else "skipped")
        line = f"  {state:<7} {behaviour:<22} {len(kinds['passed'])} passed"
        if bad:
            broken.append(behaviour)
            line += f", {len(bad)} failed: " + ", ".join(bad[:4]) + (" ..." if len(bad) > 4 else "")
        if kinds["skipped"]:
            line += f", {len(kinds['skipped'])} skipped"
        terminalreporter.write_line(line, red=bool(bad), green=not bad and bool(kinds["passed"]))
    checked = sum(len(kinds["passed"]) for kinds in outcome.values())
    text, colour = _verdict(broken, checked, exitstatus)
    terminalreporter.write_line(text, bold=True, **colour)
