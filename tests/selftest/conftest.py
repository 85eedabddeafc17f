"""Running the behaviour suite (a pytest inside this pytest) against deliberately broken servers, on
the local backend and on docker, and reading its verdict the way a student would."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BROKEN = HERE / "broken_server.py"
IN_IMAGE = "/opt/selftest/broken_server.py"
SUITE_TIMEOUT = 300.0
VERDICT_LINE = re.compile(r"^  (BROKEN|ok|not judged) +(.+?) +(\d+ (?:failed|passed|not judged).*)$")


@dataclass
class Run:
    """A finished child run: its exit status, wall time, output, and its verdict, parsed."""

    status: int
    seconds: float
    report: str
    states: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for line in self.report.splitlines():
            match = VERDICT_LINE.match(line)
            if match:
                self.states[match[2]] = match[1]

    def with_state(self, state: str) -> set[str]:
        return {behaviour for behaviour, seen in self.states.items() if seen == state}

    @property
    def broken(self) -> set[str]:
        return self.with_state("BROKEN")

    @property
    def not_judged(self) -> set[str]:
        return self.with_state("not judged")

    @property
    def last_line(self) -> str:
        return next((line for line in reversed(self.report.splitlines()) if line.startswith("VERDICT:")), "")

    def failures(self) -> list[str]:
        """The names of the failures pytest printed, in the order printed."""
        return re.findall(r"^_+ (test_\S+) _+$", self.report, re.MULTILINE)

    def __str__(self) -> str:
        return f"exit {self.status} after {self.seconds:.1f} s:\n{self.report[-6000:]}"


def run_pytest(argv: list[str], timeout: float = SUITE_TIMEOUT) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, time.monotonic() - started, done.stdout + done.stderr)


class Suite:
    """The behaviour suite against ``broken_server.py DEFECT`` (or the reference server) on a backend."""

    def __init__(self, backend: str, image: str | None) -> None:
        self.backend = backend
        self.image = image

    def command(self, defect: str) -> str:
        program = IN_IMAGE if self.backend == "docker" else str(BROKEN)
        python = "python3" if self.backend == "docker" else sys.executable
        return shlex.join([python, program, defect]) + " --port {port} --backlog {backlog}"

    def run(self, defect: str | None, *args: str) -> Run:
        argv = [str(ROOT / "tests" / "behaviour"), "--backend", self.backend, *args]
        if defect is not None:
            argv += ["--server-cmd", self.command(defect)]
            if self.image is not None:
                argv += ["--server-image", self.image]
        return run_pytest(argv)


@contextlib.contextmanager
def student_image(role: str, name: str, files: dict[str, Path]) -> Iterator[str]:
    """echolab's ``role`` image plus ``files``: a student's own image (--server-image, --client-image)."""
    from harness.backends.docker.backend import DockerBackend
    from harness.backends.docker.containers import connect
    from harness.backends.docker.images import BuildContext, derived_image
    from harness.fixtures import unavailable
    from harness.options import Options

    try:
        client = connect()
    except Exception as exc:
        unavailable(f"backend docker unavailable: {exc}")
    with contextlib.closing(client):
        DockerBackend.prepare(Options(backends=("docker",), rootdir=ROOT), lambda line: None)
        base = BuildContext.of(ROOT).tag(role)
        tag = f"echolab-selftest-{name}:{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}"
        with derived_image(client.api, base, files, tag, {"org.echolab.run": "test-image"}):
            yield tag


@pytest.fixture(scope="session")
def broken_image() -> Iterator[str]:
    """echolab's server image plus broken_server.py, as a student builds a --server-image."""
    with student_image("server", "broken", {IN_IMAGE: BROKEN}) as tag:
        yield tag


@pytest.fixture(params=["local", "docker"])
def suite(request: pytest.FixtureRequest) -> Suite:
    """The suite runner on each backend; docker runs the broken server from an image of its own."""
    if request.param == "docker":
        return Suite("docker", request.getfixturevalue("broken_image"))
    return Suite("local", None)


CLIENTS = HERE / "clients"
CLIENTS_IN_IMAGE = "/opt/selftest/clients"


@pytest.fixture(scope="session")
def built_clients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C clients of tests/selftest/clients, compiled static (they run in any container too)."""
    out = tmp_path_factory.mktemp("clients")
    for source in sorted(CLIENTS.glob("*.c")):
        done = subprocess.run(
            ["cc", "-Wall", "-Wextra", "-Werror", "-O2", "-static", "-o", str(out / source.stem), str(source)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"{source.name} does not compile warning-free: {done.stderr}"
    for script in sorted(CLIENTS.glob("*.py")):
        shutil.copy(script, out / script.name)
    return out


class ClientSuite:
    """The client suite against one of tests/selftest/clients (or a command) on a backend."""

    def __init__(self, backend: str, where: Path | str, image: str | None) -> None:
        self.backend = backend
        self.where = where
        self.image = image

    def command(self, client: str) -> str:
        program = f"{self.where}/{client}"
        if client.endswith(".py"):
            return shlex.join(["python3", program]) + " {host} {port}"
        return shlex.quote(program) + " {host} {port}"

    def run(self, client: str, *args: str, command: str | None = None) -> Run:
        argv = [str(ROOT / "tests" / "client"), "--backend", self.backend, *args]
        argv += ["--client-cmd", command or self.command(client)]
        if self.image is not None:
            argv += ["--client-image", self.image]
        return run_pytest(argv)


@pytest.fixture(scope="session")
def clients_image(built_clients: Path) -> Iterator[str]:
    """echolab's client image plus the student clients, as a student builds a --client-image."""
    files = {f"{CLIENTS_IN_IMAGE}/{path.name}": path for path in sorted(built_clients.iterdir())}
    with student_image("client", "clients", files) as tag:
        yield tag


@pytest.fixture(params=["local", "docker"])
def client_suite(request: pytest.FixtureRequest, built_clients: Path) -> ClientSuite:
    """The client suite runner on each backend; on docker the clients come in an image of their own."""
    if request.param == "docker":
        return ClientSuite("docker", CLIENTS_IN_IMAGE, request.getfixturevalue("clients_image"))
    return ClientSuite("local", built_clients, None)
