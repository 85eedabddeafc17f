"""A Docker container as a host: programs run in it with ``docker exec`` (harness/backends/docker/exec.py),
its kernel's sockets read from this machine where the daemon runs here, captures from a sidecar."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import docker.errors

from harness import remote
from harness.agent import AgentLink, AgentLostError
from harness.backends.base import Host
from harness.backends.docker.exec import Exec, ExecOutput, run_to_end
from harness.errors import ConfigError, HarnessError
from harness.process import COMMANDS, Completed, OutputLog, Process
from harness.procnet import Listener, listeners_from_ss, ports_in_use
from harness.remote import pcaptrim
from harness.wire.capture import MARK_SCRIPT, tcpdump_argv
from harness.wire.session import SessionCapture

_CAPTURES = itertools.count(1)
REMOTE_DIR = Path(remote.__file__).resolve().parent
PID_MARK = "echolab-exec-pid "


class DockerProcess(Process):
    """A program run with ``docker exec`` in its own session, so a signal reaches all it started."""

    def __init__(self, host: DockerHost, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        super().__init__(argv)
        self._host = host
        # sh prints its pid, then becomes the program; every exec is a session leader (runc calls
        # setsid), so that pid is also the process group of whatever the program starts. stderr
        # goes into stdout's pipe: the engine copies two pipes separately and would reorder lines.
        wrapper = ["sh", "-c", f'echo "{PID_MARK}$$"; exec "$@" 2>&1', "sh", *argv]
        try:
            self._job = Exec(host.api, host.container_id, wrapper, env=env)
        except docker.errors.APIError as exc:  # e.g. the container is not running
            raise OSError(exc.explanation or str(exc)) from None
        stream = io.BufferedReader(ExecOutput(self._job))
        self._job.sock.settimeout(30.0)
        first = stream.readline().decode("utf-8", "replace").rstrip("\r\n")
        self._job.sock.settimeout(None)
        self._host_pid = self._job.host_pid() if host.host_visible else None
        said = first.removeprefix(PID_MARK)
        if first.startswith(PID_MARK) and said.isdigit():
            self.pid = int(said)  # in the container's pid namespace
            first = ""
        else:
            # The engine can lose an exec's first output (moby/moby#27289): the pid then comes
            # from the engine, and the line read is the program's own.
            pid = _namespace_pid(self._host_pid) if self._host_pid is not None else None
            if pid is None:
                stream.close()
                raise OSError(f"{first or 'nothing'} instead of its pid from sh (the container needs sh)")
            self.pid = pid
        self._log = OutputLog(stream, first=[first] if first else [])

    def poll(self) -> int | None:
        return self._job.poll()

    def signal(self, signum: int) -> None:
        self._host.signal_group(signum, host_pid=self._host_pid, pid=self.pid)

    def wait(self, timeout: float) -> int | None:
        status = self._job.wait(timeout)
        if status is not None:
            self._log.drain()
        return status

    def stop(self, grace: float = 2.0) -> int | None:
        status = super().stop(grace)
        if self._host_pid is not None:  # whatever the program left in its group goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._host_pid, signal.SIGKILL)
        return status

    def output(self) -> list[str]:
        return self._log.lines()


class DockerHost(Host):
    """A running container; programs run in it with ``docker exec``."""

    def __init__(self, api: Any, container: Any, network: str | None, label: str) -> None:
        container.reload()
        self.api = api
        self.container_id: str = container.id
        self.name: str = container.name
        self.label = f"{label} {self.name}"
        if network is not None:
            self.address = container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
            self.label += f" ({self.address})"
        self.init_pid = int(container.attrs["State"]["Pid"])
        self.host_visible = _runs_here(self.init_pid, self.container_id)
        #: Makes (once) a host in this one's network namespace that has tcpdump; None: no capture.
        self.capture_host: Callable[[], Host] | None = None
        #: For a sidecar: the container whose network namespace it shares.
        self.sidecar_of: DockerHost | None = None

    def start_agent(self) -> None:
        """The agent over one ``docker exec -i``: a probe or a start is then a message on its attach
        socket, not an exec of its own (some 80 ms each). An image without python3 (--server-image)
        keeps the exec per program."""
        try:
            job = Exec(self.api, self.container_id, self.remote_argv("agent"), stdin=True)
        except docker.errors.APIError as exc:
            COMMANDS.debug("%s: no agent: %s", self.label, exc.explanation or exc)
            return

        def close() -> None:
            with contextlib.suppress(OSError):
                job.sock.shutdown(socket.SHUT_WR)  # its stdin ends: the agent kills what it runs and exits

        try:
            self.agent = AgentLink(self.label, job.sock.sendall, job.frames(), close)
        except AgentLostError as exc:
            job.close()
            COMMANDS.debug("%s: no agent, an exec per program: %s", self.label, exc)

    def _spawn(self, argv: Sequence[str], env: dict[str, str] | None) -> Process:
        return DockerProcess(self, argv, env)

    def _run(self, argv: Sequence[str], input: bytes | None, timeout: float) -> Completed:
        job = Exec(self.api, self.container_id, argv, stdin=input is not None)
        try:
            stdout, stderr, status = run_to_end(job, input, timeout)
        except TimeoutError:
            if self.host_visible:  # else it lives on until the container is removed
                self.signal_group(signal.SIGKILL, host_pid=job.host_pid())
            raise HarnessError(f"{argv[0]} did not finish within {timeout:g} s in {self.label}") from None
        return Completed(argv, status, stdout, stderr)

    def signal_group(self, signum: int, *, host_pid: int | None, pid: int | None = None) -> None:
        """Signal a process group in this container: from this machine when the daemon runs here
        and we may, else with kill inside it (``pid`` as the container sees it)."""
        if host_pid is not None:
            try:
                os.killpg(host_pid, signum)
                return
            except ProcessLookupError:
                return  # gone already
            except PermissionError:  # the container's root is not us
                pid = pid or _namespace_pid(host_pid)
        if pid is not None:
            self.run(["sh", "-c", 'kill -s "$1" -- "-$2"', "sh", signal.Signals(signum).name[3:], str(pid)])

    def echo_program(self, role: str, impl: str) -> list[str]:
        if impl == "c":
            return [f"/opt/echolab/bin/{role}"]
        return ["python3", "-m", f"echo.{role}"]  # the image sets PYTHONPATH=/opt/echolab

    def install_remote(self) -> None:
        """Put harness/remote/*.py where remote_argv finds them, in a user's own image (--client-image),
        and check it has the python3 they need."""
        files = io.BytesIO()
        with tarfile.open(fileobj=files, mode="w") as archive:
            for path in sorted(REMOTE_DIR.glob("*.py")):
                archive.add(path, arcname=f"remote/{path.name}")
        self.run(["mkdir", "-p", "/opt/echolab"], timeout=30.0)
        if not self.api.put_archive(self.container_id, "/opt/echolab", files.getvalue()):
            raise HarnessError(f"cannot copy the harness's client driver into {self.label}")
        if self.run(["sh", "-c", "command -v python3"], timeout=30.0).returncode != 0:
            raise ConfigError(
                f"{self.label}: your image has no python3; the harness drives your client at a terminal with "
                "a small Python program in the container (harness/remote/drive.py): add python3 to the image"
            )

    def remote_argv(self, program: str) -> list[str]:
        return ["python3", f"/opt/echolab/remote/{program}.py"]

    def free_port(self, pair: bool = False) -> int:
        """8888 as in the lab, unless a socket of an earlier test (even in TIME_WAIT) still holds it."""
        used = ports_in_use(self.read_proc_net())
        return next(port for port in range(8888, 65535) if port not in used and not (pair and port + 1 in used))

    def read_proc_net(self) -> str:
        if self.host_visible:  # the container's network namespace, read from here: no exec
            with contextlib.suppress(OSError):
                return "".join(Path(f"/proc/{self.init_pid}/net/{name}").read_text() for name in ("tcp", "tcp6"))
        return super().read_proc_net()

    def capture_session(self) -> SessionCapture:
        """tcpdump on every interface of this container's namespace (eth0 to the other container, lo
        where a client's hard-coded 127.0.0.1 is served), run from outside the container: from this
        machine through nsenter where it can (harness/backends/docker/netns.py), else from a sidecar
        container that shares the namespace. Either works whatever the container's image holds
        (--server-image, --client-image). Nothing but the lab's traffic crosses that namespace:
        every TCP packet is kept."""
        if self.sidecar_of is not None:
            return self._tcpdump_here()
        if self.capture_host is None:
            return super().capture_session()
        return self.capture_host().capture_session()

    def _tcpdump_here(self) -> SessionCapture:
        """As a sidecar: tcpdump in this container, for the namespace it shares."""
        path = f"/tmp/echolab-session-{next(_CAPTURES)}.pcap"
        # With the daemon here, the sidecar's files are in reach through /proc: no request needed.
        local = Path(f"/proc/{self.init_pid}/root{path}") if self.host_visible else None
        agent = self.agent

        def fetch(offset: int, snap: int | None) -> tuple[bytes, int]:
            if local is not None:
                with contextlib.suppress(OSError):
                    return pcaptrim.read(str(local), offset, snap)
            if agent is not None:
                return agent.read_pcap(path, offset, snap)
            data = self.run(["tail", "-c", f"+{offset + 1}", path]).stdout  # uncut: no agent to cut it
            return data, len(data)

        def mark(token: bytes, flush: bool) -> None:  # from inside the namespace: to its own address, through lo
            if agent is not None:
                agent.mark(self.address, token, flush)
            else:
                self.run(["python3", "-c", MARK_SCRIPT, self.address, token.decode(), *(["flush"] if flush else [])])

        def cleanup() -> None:  # the file goes with the sidecar in any case
            with contextlib.suppress(HarnessError, OSError, docker.errors.APIError):
                self.run(["rm", "-f", path], timeout=10.0)

        process = self.spawn(tcpdump_argv("any", "tcp", path))
        return SessionCapture.start(self.label, process, fetch=fetch, mark=mark, cleanup=cleanup)

    def listen_detail(self, port: int) -> list[Listener] | None:
        """From this machine's ss inside the container's namespace, so an image without ss works too."""
        nsenter, ss = shutil.which("nsenter"), shutil.which("ss")
        if self.host_visible and nsenter and ss:
            argv = [nsenter, "-t", str(self.init_pid), "-n", ss, "-Hlnt", f"sport = :{port}"]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            if done.returncode == 0:
                return listeners_from_ss(done.stdout, port)
        return super().listen_detail(port)


def _namespace_pid(host_pid: int) -> int | None:
    """The pid a process has in its container, from its NSpid line (innermost namespace last)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    return None


def _runs_here(pid: int, container_id: str) -> bool:
    """Whether the daemon runs on this machine: the container's init is then one of our processes."""
    try:
        return container_id in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
