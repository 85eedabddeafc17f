"""The echolab pytest plugin: options, fixtures, markers and the verdict (entry point ``pytest11``)."""

from __future__ import annotations

import logging
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
from harness.errors import BackendUnavailableError, ConfigError, ServerStartError
from harness.gate import SERVER_START, Board, NotJudged, needs_text, transitive
from harness.options import IMPLS, MODES, Options
from harness.server import RunningServer, ServerSpec, start_server
from harness.servercmd import EXAMPLE, ServerCommand
from harness.verdict import BEHAVIOUR, GATED_BY, NEEDS, NOT_JUDGED, STARTED_NOTHING, Reporter, headline

OPTIONS = pytest.StashKey[Options]()
BOARD = pytest.StashKey[Board]()
WIRE = pytest.StashKey[Wire]()
PCAPS = "pcaps"  # under the rootdir: where a failing test's captures are kept
BOARD_KEY = "echolab_board"  # how xdist workers learn where the run's board is


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
    """The run's options, checked together: whatever cannot work is one line now, not a failure
    (or a skip) in every test later."""
    options = _read_options(config)
    options.check()
    return options


def _read_options(config: pytest.Config) -> Options:
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
    config.addinivalue_line("markers", "behaviour(name): the lab behaviour a test judges, for the verdict")
    config.addinivalue_line(
        "markers", "needs(*behaviours): what the test relies on; if one is broken, the test is not judged"
    )
    config.addinivalue_line("markers", "serves(mode): only for servers that serve clients this way")
    config.addinivalue_line("markers", "backlogs(*n): run with each listen backlog (or the server's own)")
    # The command log (harness/backends/base.py) is captured with every test: a failing test's
    # report shows the commands the harness ran for it. pytest's --log-level still rules if given.
    if config.getoption("log_level") is None:
        logging.getLogger("echolab").setLevel(logging.DEBUG)
    try:
        options = config.stash[OPTIONS] = parse_options(config)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    workerinput = getattr(config, "workerinput", None)
    board = config.stash[BOARD] = Board(Path(workerinput[BOARD_KEY])) if workerinput else Board.create()
    config.pluginmanager.register(Gate(board), "echolab-gate")
    if workerinput is None and config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(BoardToWorkers(board), "echolab-board")
    if workerinput is None:  # the process that prints
        config.pluginmanager.register(Reporter(_subject(options), _notes(options)), "echolab-verdict")


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and BOARD in config.stash:
        config.stash[BOARD].remove()


def _subject(options: Options) -> str:
    subject = f"--server-cmd {options.server_cmd.template!r}" if options.server_cmd else "the reference server"
    return f"{subject} ({', '.join(t.label for t in targets(options))})"


def _notes(options: Options) -> list[str]:
    notes = []
    if not options.wire:
        notes.append("wire: not checked (--wire off)")
    if options.server_cmd is not None:
        other = "concurrent" if options.server_mode == "iterative" else "iterative"
        notes.append(f"checks for {other} servers: not run (the server is {options.server_mode}: --server-mode)")
    return notes


def pytest_sessionstart(session: pytest.Session) -> None:
    """Shared slow work (image builds) once, in the controlling process, with visible progress. A
    backend the user named that cannot be used ends the run here, in one line, before any test."""
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
        except (BackendUnavailableError, ConfigError) as exc:
            raise pytest.UsageError(f"--backend {name} cannot be used: {exc}") from None


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tag each behaviour test with what it judges and everything it needs (directly, or through
    what those need); deselect what does not apply to the server under test; run the behaviours
    others need first, so a broken one is known before the tests that need it start."""
    options = config.stash[OPTIONS]
    keep, dropped = [], []
    direct: dict[pytest.Item, tuple[str, list[str]]] = {}
    for item in items:
        marker = item.get_closest_marker("behaviour")
        if marker is not None and not _applies(item, marker.args[0], options):
            dropped.append(item)
            continue
        keep.append(item)
        if marker is not None:
            needs = [name for mark in item.iter_markers("needs") for name in mark.args]
            if "start_server_on" in getattr(item, "fixturenames", ()):
                needs.append(SERVER_START)
            direct[item] = (marker.args[0], needs)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    graph: dict[str, set[str]] = defaultdict(set)
    for behaviour, needs in direct.values():
        graph[behaviour].update(needs)
    try:
        every = transitive(graph)
    except ValueError as exc:
        raise pytest.UsageError(f"echolab: {exc}") from None
    for item, (behaviour, needs) in direct.items():
        closed = dict.fromkeys([*needs, *(far for need in needs for far in sorted(every.get(need, ())))])
        item.user_properties.append((BEHAVIOUR, behaviour))
        item.user_properties.append((NEEDS, list(closed)))
    keep.sort(key=lambda item: len(every.get(direct[item][0], ())) if item in direct else 0)
    items[:] = keep


def _applies(item: pytest.Item, behaviour: str, options: Options) -> bool:
    if behaviour == "wire" and not options.wire:
        return False
    gate = item.get_closest_marker("serves")
    return gate is None or options.server_cmd is None or gate.args[0] == options.server_mode


def props_of(node: pytest.Item | pytest.TestReport) -> dict[str, Any]:
    return dict(node.user_properties)


class Gate:
    """Runs in every process: ends a test whose needs are known broken at once, as not judged, and
    puts a behaviour that failed on its own checks on the run's board for the tests that need it."""

    def __init__(self, board: Board) -> None:
        self.board = board

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        for need in props_of(item).get(NEEDS, ()):
            evidence = self.board.broken(need)
            if evidence is not None:
                raise NotJudged(f"needs {needs_text(need)}: {need} is broken ({evidence})", gated_by=need)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = props_of(report)
        if not report.failed or BEHAVIOUR not in props or GATED_BY in props:
            return
        behaviour = SERVER_START if props.get(STARTED_NOTHING) else props[BEHAVIOUR]
        if report.when != "call" and behaviour != SERVER_START:
            return  # the harness's own trouble in a fixture says nothing about the server
        if not any(self.board.broken(need) for need in props.get(NEEDS, ()) if need != behaviour):
            self.board.mark_broken(behaviour, f"{report.nodeid.split('::')[-1]}: {headline(report)}")


class BoardToWorkers:
    """xdist, in the controller: every worker gets the run's board."""

    def __init__(self, board: Board) -> None:
        self.board = board

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[BOARD_KEY] = str(self.board.directory)


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
        if echolab_options.keep_pcaps is not None:
            tap.keep(echolab_options.keep_pcaps, request.node.nodeid.split("::")[-1])
    lost = tap.lost()
    if lost is not None:
        raise NotJudged(f"its wire checks were judged on an incomplete capture: {lost}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(NotJudged):
        exc: NotJudged = call.excinfo.value  # type: ignore[assignment]  # checked just above
        report.user_properties.append((NOT_JUDGED, exc.reason))
        if exc.gated_by is not None:
            report.user_properties.append((GATED_BY, exc.gated_by))
    if report.when != "call" or not report.failed or BEHAVIOUR not in props_of(item):
        return report
    if call.excinfo is not None and call.excinfo.errisinstance(AssertionError) and _plain(item.config):
        report.longrepr = evidence_of(call.excinfo.value)
    tap = item.stash.get(WIRE, None)
    if tap is not None and tap.captures:
        options = item.config.stash[OPTIONS]
        directory = options.keep_pcaps or options.rootdir / PCAPS
        report.sections.append(("echolab packet capture", tap.report(directory, item.nodeid.split("::")[-1])))
    return report


def _plain(config: pytest.Config) -> bool:
    """Whether a failed check is shown as its evidence alone (no traceback of the test's code)."""
    return config.option.tbstyle == "auto" and config.get_verbosity() < 2


def evidence_of(error: BaseException) -> str:
    """A failed check's message without what pytest's assertion rewriting appends to it (the
    ``assert ...`` line and the two-space indent of continuation lines)."""
    text = str(error)
    head, sep, tail = text.rpartition("\nassert ")
    if sep and "\n" not in tail.strip():
        text = head
    first, *rest = text.split("\n")
    return "\n".join([first, *(line[2:] if line.startswith("  ") else line for line in rest)])


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


@pytest.fixture
def echo_server(start_server_on: StartServer) -> RunningServer:
    """The server under test, freshly started, iterative unless the user said otherwise."""
    return start_server_on()
