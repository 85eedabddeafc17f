"""The echo servers the bench measures side by side, and how each one is started and stopped.

The reference servers (echo/, Python and C, both modes) run next to what a user would pick
instead (socat, ncat with cat), the machine's floor (a minimal C echo) and the yardsticks for the
concurrent target (asyncio and uvloop Protocol echo servers). Every server listens on loopback
only, runs in its own session (so its forked children are found and stopped with it), and dies
with the bench (``setpriv --pdeathsig``, as the harness's own servers do).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import echo
from harness.backends.local import LocalHost, LocalProcess
from harness.build import CFLAGS
from harness.procnet import listeners_from_proc
from harness.wait import WaitTimeoutError, until

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent
ECHO_DIR = Path(echo.__file__).resolve().parent
BENCH_CFLAGS = ("-O2", "-Wall", "-Wextra")
READY_TIMEOUT = 10.0
EXTERNAL_TOOLS = ("socat", "ncat", "iperf3")


@dataclass
class Toolbox:
    """Binaries compiled for this run (in a temporary directory) and the tools found on this machine."""

    bindir: Path
    found: dict[str, str] = field(default_factory=dict)  # tool -> path
    missing: dict[str, str] = field(default_factory=dict)  # tool -> why it is unavailable

    def binary(self, name: str) -> str:
        return str(self.bindir / name)


@contextmanager
def toolbox(say: Callable[[str], None]) -> Iterator[Toolbox]:
    """Compile the load generator, the minimal echo and the C reference server with ``cc``; the
    directory is removed on exit, whatever happens."""
    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        raise RuntimeError(f"no C compiler ({cc}): the load generator is C (apt-get install gcc)")
    with tempfile.TemporaryDirectory(prefix="echolab-bench-") as tmp:
        tools = Toolbox(Path(tmp))
        builds = [
            ("loadgen", HERE / "loadgen.c", BENCH_CFLAGS),
            ("minimal_echo", HERE / "minimal_echo.c", BENCH_CFLAGS),
            ("server", ECHO_DIR / "server.c", CFLAGS),  # as the lab and the harness build it
        ]
        for name, source, flags in builds:
            done = subprocess.run(
                [cc, *flags, "-o", tools.binary(name), str(source)], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"{cc} could not build {source}:\n{done.stderr.strip()}")
        say(f"compiled loadgen, minimal_echo and echo/server.c with {cc} into {tmp} (removed at the end)")
        for tool in EXTERNAL_TOOLS:
            path = shutil.which(tool)
            if path:
                tools.found[tool] = path
            else:
                tools.missing[tool] = f"{tool} is not installed (apt-get install {tool}, or ci/host-tools.sh)"
        if importlib.util.find_spec("uvloop") is None:
            tools.missing["uvloop"] = "uvloop is not installed (pip install -e '.[bench]')"
        yield tools


@dataclass(frozen=True)
class EchoServer:
    """One server in the line-up: its name in the table, what it is, and its command for a port."""

    name: str
    label: str
    #: "reference" (echo/), "alternative" (what a user picks instead), "floor", "yardstick"
    role: str
    concurrent: bool
    argv: Callable[[Toolbox, int], list[str]]
    #: A tool it needs (socat, ncat, uvloop); missing: the server's rows are skipped with the reason.
    needs: str | None = None


def _python_server(mode: str) -> Callable[[Toolbox, int], list[str]]:
    def argv(tools: Toolbox, port: int) -> list[str]:
        server = str(ECHO_DIR / "server.py")
        return [sys.executable, server, "--host", HOST, "--port", str(port), "--backlog", "128", "--mode", mode]

    return argv


def _c_server(mode: str) -> Callable[[Toolbox, int], list[str]]:
    def argv(tools: Toolbox, port: int) -> list[str]:
        return [tools.binary("server"), "--host", HOST, "--port", str(port), "--backlog", "128", "--mode", mode]

    return argv


def _aio(loop: str) -> Callable[[Toolbox, int], list[str]]:
    def argv(tools: Toolbox, port: int) -> list[str]:
        return [sys.executable, "-m", "harness.bench.aioecho", "--loop", loop, "--port", str(port)]

    return argv


SERVERS = (
    EchoServer("python-iterative", "Python reference, iterative", "reference", False, _python_server("iterative")),
    EchoServer("python-concurrent", "Python reference, concurrent", "reference", True, _python_server("concurrent")),
    EchoServer("c-iterative", "C reference, iterative", "reference", False, _c_server("iterative")),
    EchoServer("c-concurrent", "C reference, concurrent", "reference", True, _c_server("concurrent")),
    EchoServer("minimal-c", "minimal C echo (floor)", "floor", False, lambda t, p: [t.binary("minimal_echo"), str(p)]),
    EchoServer(
        "socat",
        "socat fork PIPE (default 8 KiB buffer)",
        "alternative",
        True,
        # PIPE echoes inside socat (no cat process per connection): the faster of socat's two echoes.
        lambda t, p: [t.found["socat"], f"TCP-LISTEN:{p},bind={HOST},fork,reuseaddr,backlog=128", "PIPE"],
        needs="socat",
    ),
    EchoServer(
        "ncat",
        "ncat -k -e /bin/cat",
        "alternative",
        True,
        lambda t, p: [t.found["ncat"], "-l", "-k", "--max-conns", "1000", HOST, str(p), "-e", "/bin/cat"],
        needs="ncat",
    ),
    EchoServer("uvloop", "uvloop Protocol echo", "yardstick", True, _aio("uvloop"), needs="uvloop"),
    EchoServer("asyncio", "asyncio Protocol echo", "yardstick", True, _aio("asyncio")),
)

QUICK = ("python-concurrent", "c-concurrent", "minimal-c", "socat", "ncat", "uvloop")


def free_port() -> int:
    return LocalHost().free_port()


@dataclass
class RunningEcho:
    server: EchoServer
    port: int
    process: LocalProcess

    @property
    def pid(self) -> int:
        return self.process.pid


def wait_listening(process: LocalProcess, port: int, what: str, timeout: float = READY_TIMEOUT) -> None:
    """Poll this machine's /proc/net/tcp for a LISTEN socket on ``port`` (no connection spent)."""

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited before it listened on {HOST}:{port}: {process.output()[-5:]}")
        text = "".join(Path(p).read_text() for p in ("/proc/net/tcp", "/proc/net/tcp6") if Path(p).exists())
        return bool(listeners_from_proc(text, port))

    try:
        until(listening, timeout=timeout, what=f"{what} listening on {HOST}:{port}", interval=0.005)
    except WaitTimeoutError as exc:
        raise RuntimeError(f"{exc}: {process.output()[-5:]}") from None


def start(stack: ExitStack, argv: list[str]) -> LocalProcess:
    """Start a program as a server on this machine; ``stack`` stops it (and its session)."""
    if shutil.which(argv[0]) is None:
        raise RuntimeError(f"{argv[0]}: no such program")
    process = LocalProcess(argv)
    stack.callback(process.stop, 1.0)
    return process


def start_all(
    stack: ExitStack, servers: list[EchoServer], tools: Toolbox, say: Callable[[str], None]
) -> tuple[list[RunningEcho], dict[str, str]]:
    """Start every server at once, each on its own free port, and wait until they listen; a server
    that does not come up is left out (name -> why), the others are measured all the same."""
    started, failed = [], {}
    for server in servers:
        port = free_port()
        try:
            started.append(RunningEcho(server, port, start(stack, server.argv(tools, port))))
        except (OSError, RuntimeError) as exc:
            failed[server.name] = f"did not start: {exc}"
    running = []
    for r in started:
        try:
            wait_listening(r.process, r.port, r.server.name)
            running.append(r)
        except RuntimeError as exc:
            failed[r.server.name] = str(exc)
    for name, why in failed.items():
        say(f"{name} left out: {why}")
    say("started " + ", ".join(f"{r.server.name} :{r.port}" for r in running))
    return running, failed
