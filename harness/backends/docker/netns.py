"""A container's network namespace entered from this machine (``nsenter -n``): where the daemon runs here
and we are root, the harness's own helpers (tcpdump, the scripted server) run on this machine inside the
container's network, through this machine's agent, instead of in a sidecar container started for them.

Like a sidecar, it works whatever the container's image holds (--server-image, --client-image), and
nothing runs with privileges inside the student's container; unlike one, it costs no container start.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import socket
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from harness.agent import AgentLink
from harness.backends.docker.host import DockerHost
from harness.backends.local import LocalHost, read_from
from harness.errors import HarnessError
from harness.process import Completed, Process
from harness.remote import marker
from harness.wire.capture import tcpdump_argv
from harness.wire.session import SessionCapture

NSENTER = shutil.which("nsenter")
CLONE_NEWNET = 0x40000000
#: Set to 1 to use sidecar containers even where nsenter would do (as with a daemon on another machine).
SIDECAR_ENV = "ECHOLAB_DOCKER_SIDECARS"


def socket_in(pid: int) -> socket.socket:
    """A UDP socket in process ``pid``'s network namespace: made by a thread that enters it
    (setns(2) moves only the calling thread), which then ends; the socket stays in that namespace."""
    made: list[socket.socket] = []
    failed: list[OSError] = []

    def enter() -> None:
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            try:
                _setns(fd, CLONE_NEWNET)
                made.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            finally:
                os.close(fd)
        except OSError as exc:
            failed.append(exc)

    thread = threading.Thread(target=enter, name="echolab setns")
    thread.start()
    thread.join()
    if failed or not made:
        raise HarnessError(
            f"cannot enter the network namespace of process {pid}: {failed[0] if failed else 'no socket'}"
        )
    return made[0]


def _setns(fd: int, kind: int) -> None:
    """os.setns from Python 3.12 on; before, the C library's through ctypes (one system call: pyroute2 would be a
    dependency for it)."""
    if hasattr(os, "setns"):
        os.setns(fd, kind)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, kind) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def usable(container: DockerHost) -> bool:
    """Whether this machine can enter the container's network namespace: the daemon runs here, and we
    may (root), with nsenter and tcpdump installed here."""
    if os.environ.get(SIDECAR_ENV) == "1":
        return False
    return bool(container.host_visible and NSENTER and shutil.which("tcpdump") and os.geteuid() == 0)


class NamespaceHost(LocalHost):
    """This machine, inside ``container``'s network namespace; programs start through ``outside``'s agent."""

    def __init__(self, outside: LocalHost, container: DockerHost, role: str) -> None:
        self.outside = outside
        self.container = container
        self.address = container.address
        self.label = f"{container.label}'s network, from this machine ({role})"
        self._enter = [str(NSENTER), "-t", str(container.init_pid), "-n", "--"]

    # Through the outside host's agent, not its spawn() and run(): the command log names each
    # program once, as this host's (Host.spawn and Host.run log it).
    def _spawn(self, argv: Sequence[str], env: dict[str, str] | None) -> Process:
        return self._carrier().spawn([*self._enter, *argv], env)

    def _run(self, argv: Sequence[str], input: bytes | None, timeout: float) -> Completed:
        done = self._carrier().run([*self._enter, *argv], input, timeout)
        return Completed(argv, done.returncode, done.stdout, done.stderr)

    def _carrier(self) -> AgentLink:
        agent = self.outside.live_agent()
        if agent is None:
            raise HarnessError(f"no agent on this machine to enter {self.container.label}'s network namespace")
        return agent

    def free_port(self, pair: bool = False) -> int:
        return self.container.free_port(pair)

    def read_proc_net(self) -> str:
        return self.container.read_proc_net()

    def capture_session(self) -> SessionCapture:
        """tcpdump on every interface of the namespace; its file in the outside agent's directory, the
        markers sent through the namespace's loopback to its own address (from a socket made in the
        namespace: its loopback carries a marker's 64 KiB filler whole, where the bridge would not)."""
        agent = self.outside.agent
        assert agent is not None, "the outside host starts its agent first"
        path = Path(agent.tempdir()) / f"netns-{secrets.token_hex(4)}.pcap"
        sock = socket_in(self.container.init_pid)
        process = self.spawn(tcpdump_argv("any", "tcp", str(path)))

        def cleanup() -> None:
            sock.close()
            path.unlink(missing_ok=True)

        return SessionCapture.start(
            self.label,
            process,
            fetch=partial(read_from, path),
            mark=lambda token, flush: marker.send(self.address, token, flush, sock),
            cleanup=cleanup,
        )

    def close(self) -> None:
        self.stop_capture()  # the outside host and its agent belong to the backend
