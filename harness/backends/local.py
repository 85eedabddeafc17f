"""Local backend: server and client are processes on this machine, talking over loopback."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from subprocess import PIPE

import echo
from harness import build, remote
from harness.agent import start_piped
from harness.backends.base import Backend, Host
from harness.errors import CaptureUnavailableError, HarnessError
from harness.options import Options
from harness.process import Completed, OutputLog, Process
from harness.procnet import ports_in_use
from harness.remote import marker, pcaptrim
from harness.wire.capture import tcpdump_argv
from harness.wire.session import SessionCapture

ECHO_DIR = Path(echo.__file__).resolve().parent
REMOTE_DIR = Path(remote.__file__).resolve().parent
# With util-linux's setpriv the kernel kills the server if the harness dies outright (SIGKILL),
# so not even a killed run leaves a process behind (prctl PR_SET_PDEATHSIG survives exec).
SETPRIV = shutil.which("setpriv")


class LocalProcess(Process):
    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        super().__init__(argv)
        prefix = [SETPRIV, "--pdeathsig", "KILL", "--"] if SETPRIV else []
        self._popen = subprocess.Popen(
            [*prefix, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own process group: a shell wrapper's children die with it
        )
        assert self._popen.stdout is not None
        self._log = OutputLog(self._popen.stdout)

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> int | None:
        return self._popen.poll()

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, signum)

    def wait(self, timeout: float) -> int | None:
        try:
            status = self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._log.drain()
        return status

    def stop(self, grace: float = 2.0) -> int | None:
        status = super().stop(grace)
        self.signal(signal.SIGKILL)  # whatever the program left in its group goes too
        return status

    def output(self) -> list[str]:
        return self._log.lines()


class LocalHost(Host):
    address = "127.0.0.1"
    label = "this machine"

    def start_agent(self) -> None:
        # Its own session, and no death signal: when the harness dies, even by SIGKILL, the agent reads
        # the end of its stdin and then kills what it started and removes its directory.
        argv = [sys.executable, str(REMOTE_DIR / "agent.py")]
        self.agent = start_piped(
            self.label,
            lambda: subprocess.Popen(argv, stdin=PIPE, stdout=PIPE, stderr=PIPE, start_new_session=True),
        )

    def _spawn(self, argv: Sequence[str], env: dict[str, str] | None) -> Process:
        if shutil.which(argv[0]) is None:  # setpriv would exec it, so say it here, as Popen would
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0])
        return LocalProcess(argv, env)

    def _run(self, argv: Sequence[str], input: bytes | None, timeout: float) -> Completed:
        try:
            done = subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"{argv[0]} did not finish within {timeout:g} s") from None
        return Completed(argv, done.returncode, done.stdout, done.stderr)

    def echo_program(self, role: str, impl: str) -> list[str]:
        if impl == "c":
            return [str(build.compile_program(role))]
        return [sys.executable, str(ECHO_DIR / f"{role}.py")]

    def remote_argv(self, program: str) -> list[str]:
        return [sys.executable, str(REMOTE_DIR / f"{program}.py")]

    def free_port(self, pair: bool = False) -> int:
        """A random free port below the ephemeral range (and its successor free too, for ``pair``):
        a port from bind(0) is an ephemeral one, which any connect() on this machine may take before
        the server binds it (seen under load as the server's "Address already in use"). Each xdist
        worker draws from a share of its own, so its capture filters out the others' traffic."""
        used = ports_in_use(self.read_proc_net())
        ports = worker_ports()
        for port in random.sample(ports[:-1], min(200, len(ports) - 1)):
            wanted = (port, port + 1) if pair else (port,)
            if not used.intersection(wanted) and all(_bindable(p) for p in wanted):
                return port
        raise HarnessError(f"no free port between {ports.start} and {ports.stop} on this machine")

    def capture_session(self) -> SessionCapture:
        """tcpdump on lo for this worker's ports (see free_port) and the lab client's 8888; its file in
        the agent's directory, which the agent removes even when the harness is killed."""
        if shutil.which("tcpdump") is None:
            raise CaptureUnavailableError("tcpdump is not installed on this machine (apt-get install tcpdump)")
        if self.agent is not None:
            directory, remove = self.agent.tempdir(), False
        else:
            directory, remove = tempfile.mkdtemp(prefix="echolab-capture-"), True
        path = Path(directory) / f"session-{secrets.token_hex(4)}.pcap"
        ports = worker_ports()
        tcp = f"tcp portrange {ports.start}-{ports.stop - 1} or tcp port {LAB_PORT}"
        process = self.spawn(tcpdump_argv("lo", tcp, str(path), as_root=os.geteuid() == 0))

        def cleanup() -> None:
            path.unlink(missing_ok=True)
            if remove:
                shutil.rmtree(directory, ignore_errors=True)

        return SessionCapture.start(
            self.label, process, fetch=partial(read_from, path), mark=send_mark, cleanup=cleanup
        )

    def read_proc_net(self) -> str:
        return "".join(Path(p).read_text() for p in ("/proc/net/tcp", "/proc/net/tcp6") if Path(p).exists())


PORTS_FROM = 20000
LAB_PORT = 8888  # where a client with the lab's hard-coded address is served (harness/fixtures.py)
EPHEMERAL_FROM = 32768  # Linux's default start of net.ipv4.ip_local_port_range


def _ephemeral_low() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return EPHEMERAL_FROM


BLOCK = 512  # ports per block: a run's worker holds one for its servers (see worker_ports)
_held: list[tuple[socket.socket, range]] = []


def worker_ports() -> range:
    """A block of ports below the ephemeral range that this process holds alone, for its servers: its
    capture (one tcpdump on lo for the run) then filters out every other run's and worker's traffic.

    The block is held by binding an abstract unix socket named for it: the kernel frees the name when
    the process ends, however it ends, and nothing is left on disk. With every block taken, the
    whole range is shared (the capture then sees other runs' packets too, and filters them per test)."""
    if _held:
        return _held[0][1]
    first = min(EPHEMERAL_FROM, _ephemeral_low())
    blocks = [range(start, start + BLOCK) for start in range(PORTS_FROM, first - BLOCK + 1, BLOCK)]
    for block in random.sample(blocks, len(blocks)):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(f"\0echolab-ports-{block.start}")
        except OSError:
            sock.close()
            continue
        _held.append((sock, block))
        return block
    return range(PORTS_FROM, first)


def read_from(path: Path, offset: int, snap: int | None = None) -> tuple[bytes, int]:
    """The pcap that tcpdump is writing, from ``offset`` on (harness/remote/pcaptrim.py)."""
    return pcaptrim.read(str(path), offset, snap)


def send_mark(token: bytes, flush: bool) -> None:
    """A capture marker (harness/wire/session.py) through lo (harness/remote/marker.py)."""
    marker.send("127.0.0.1", token, flush)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


class LocalBackend(Backend):
    name = "local"

    @classmethod
    def create(cls, options: Options) -> LocalBackend:
        host = _warm.adopt() or LocalHost()
        if host.agent is None:
            host.start_agent()
        return cls(server_host=host, client_host=host)


class _WarmHost:
    """This process's local host, started in the background while pytest collects: its agent, and
    with capture on its tcpdump for the run, whose ring alone takes up to 0.4 s to set up (see
    harness/wire/capture.py's RING_KIB). The local backend adopts it; if nothing does,
    ``discard`` stops it at the session's end."""

    def __init__(self) -> None:
        self._host: LocalHost | None = None
        self._thread: threading.Thread | None = None

    def start(self, capture: bool) -> None:
        host = self._host = LocalHost()

        def start() -> None:
            with contextlib.suppress(Exception):  # whatever fails here fails again, and says so, when used
                host.start_agent()
                if capture:
                    host.start_capture(PORTS_FROM).stop()  # the slice itself is not wanted

        self._thread = threading.Thread(target=start, daemon=True, name="echolab warm-up")
        self._thread.start()

    def adopt(self) -> LocalHost | None:
        host, self._host = self._host, None
        if host is not None and self._thread is not None:
            self._thread.join()
        return host

    def discard(self) -> None:
        host = self.adopt()
        if host is not None:
            host.close()


_warm = _WarmHost()
warm_up, discard_warm = _warm.start, _warm.discard
