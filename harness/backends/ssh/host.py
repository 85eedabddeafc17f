"""A Linux host reached over SSH (a Raspberry Pi): a directory of echolab's programs for the run, every
program under harness/remote/supervise.py, captures with sudo tcpdump."""

from __future__ import annotations

import contextlib
import functools
import io
import re
import secrets
import signal
import subprocess
import tarfile
import threading
from collections.abc import Sequence
from pathlib import Path

import echo
from harness import build, remote
from harness.agent import start_piped
from harness.backends.base import Host
from harness.backends.ssh.connection import Connection, Destination, close_quietly, last_line, peer_address
from harness.errors import BackendUnavailableError, CaptureUnavailableError, HarnessError
from harness.process import Completed, OutputLog, Process
from harness.procnet import listeners_from_ss
from harness.remote import supervise
from harness.wire.capture import tcpdump_argv
from harness.wire.session import SessionCapture

# Created first thing, removed when the session's stdin closes: at the end of the run, or when the
# connection drops. Nothing from the user reaches this script; it runs as ``sh -c SCRIPT``.
WORKDIR_SESSION = 'dir=$(mktemp -d /tmp/echolab.XXXXXX) || exit 1; echo "$dir"; cat >/dev/null; rm -rf "$dir"'
# One look at the host: the address the connection arrived at (what we reach it by), then each
# missing tool's name.
SURVEY = (
    'echo "$SSH_CONNECTION"; for t in python3 cc tar ss tcpdump; do command -v "$t" >/dev/null 2>&1 || echo "$t"; done'
)
SESSION_LOST = 255  # what ssh exits with when the connection fails


def deploy_archive() -> bytes:
    """The files a host needs, as a tar archive: echo/*.py, echo/*.c, remote/*.py, bin/."""
    files = {f"echo/{p.name}": p for p in sorted(Path(echo.__file__).parent.iterdir()) if p.suffix in (".py", ".c")}
    files.update({f"remote/{p.name}": p for p in sorted(Path(remote.__file__).parent.glob("*.py"))})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, path in files.items():
            archive.add(path, arcname=name)
        binaries = tarfile.TarInfo("bin")
        binaries.type, binaries.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(binaries)
    return buffer.getvalue()


class SshProcess(Process):
    """A program on an SSH host, run by harness/remote/supervise.py in an SSH session of its own: the session
    streams its output, carries signals to its process group, and kills the group when it closes."""

    def __init__(
        self, host: SshHost, argv: Sequence[str], env: dict[str, str] | None = None, *, as_root: bool = False
    ) -> None:
        super().__init__(argv)
        self.host = host
        # As root, the supervisor too: it must be able to kill what it runs when the session ends.
        sudo = ["sudo", "-n"] if as_root and host.dest.user != "root" else []
        prefix = ["env", *(f"{key}={value}" for key, value in (env or {}).items())] if env else []
        self._ssh = host.connection.popen([*sudo, *prefix, "python3", f"{host.workdir}/remote/supervise.py", *argv])
        assert self._ssh.stdout is not None and self._ssh.stderr is not None
        self._log = OutputLog(self._ssh.stdout)
        self.pid: int | None = None  # the remote program's pid, which is also its process group
        self._status: int | None = None
        self._ssh_said: list[str] = []
        self._reports = threading.Thread(target=self._read_reports, args=(self._ssh.stderr,), daemon=True)
        self._reports.start()
        self.exit_hint = functools.partial(host.busy_ports_hint, self.argv)

    def _read_reports(self, stream: io.BufferedReader) -> None:
        tag = supervise.TAG + " "
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith(tag + "pid "):
                self.pid = int(line.rsplit(" ", 1)[1])
            elif line.startswith(tag + "exit "):
                self._status = int(line.rsplit(" ", 1)[1])
            elif line:
                self._ssh_said.append(line)
        stream.close()

    def poll(self) -> int | None:
        if self._ssh.poll() is None:
            return None
        close_quietly(self._ssh.stdin)
        self._reports.join(1.0)
        return self._status if self._status is not None else self._ssh.returncode

    def signal(self, signum: int) -> None:
        with contextlib.suppress(OSError, ValueError):  # the session has ended: nothing left to signal
            assert self._ssh.stdin is not None
            self._ssh.stdin.write(f"{signal.Signals(signum).name}\n".encode())
            self._ssh.stdin.flush()

    def wait(self, timeout: float) -> int | None:
        try:
            self._ssh.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._log.drain()
        return self.poll()

    def output(self) -> list[str]:
        return self._log.lines() + self._ssh_said

    def describe_status(self) -> str:
        status = self.poll()
        if status is not None and self._status is None:  # the supervisor never said how it ended
            said = self._ssh_said[-1] if self._ssh_said else "no message"
            return f"unknown: its SSH session to {self.host.label} ended with status {status} ({said})"
        return super().describe_status()

    def release(self) -> None:
        """Stop the program if it still runs and close the session."""
        if self.poll() is None:
            self.stop()
        close_quietly(self._ssh.stdin)  # end of stdin: the supervisor kills whatever is left
        try:
            self._ssh.wait(10.0)
        except subprocess.TimeoutExpired:
            self._ssh.kill()
            self._ssh.wait()


class SshHost(Host):
    """A Linux host reached over SSH, with a directory of echolab's programs for the run."""

    def __init__(self, dest: Destination) -> None:
        self.dest = dest
        self.label = dest.label
        self.address = dest.hostname
        #: This machine's address as the host sees it (where the SSH connection comes from).
        self.seen_from: str | None = None
        self.connection = Connection(dest)
        self.workdir = ""
        self.missing: set[str] = set()
        self._workdir_session: subprocess.Popen[bytes] | None = None
        self._processes: list[SshProcess] = []
        self._built: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, dest: Destination, *, needs_cc: bool, deploy: bool = True) -> SshHost:
        """Connect, check the tools the run needs, and deploy; everything is undone if a step fails."""
        host = cls(dest)
        try:
            host.connection.open()
            host.survey(needs_cc)
            if deploy:
                host.deploy()
                host.start_agent()
        except BaseException:
            host.close()
            raise
        return host

    def survey(self, needs_cc: bool) -> None:
        done = self.run(["sh", "-c", SURVEY], timeout=30.0)
        connection, *missing = done.text.splitlines() or [""]
        self.missing = set(missing)
        # SSH_CONNECTION is "client-ip client-port server-ip server-port": the address ssh reached.
        fields = connection.split()
        self.address = (peer_address(fields[2]) if len(fields) == 4 else None) or self.dest.hostname
        self.seen_from = peer_address(fields[0]) if len(fields) == 4 else None
        if "python3" in self.missing:
            raise BackendUnavailableError(
                f"no python3 on {self.label}: the harness runs its programs there with it; "
                "install it (sudo apt-get install python3)"
            )
        if "tar" in self.missing:
            raise BackendUnavailableError(f"no tar on {self.label}: install it (sudo apt-get install tar)")
        if needs_cc and "cc" in self.missing:
            raise BackendUnavailableError(self._no_cc())

    def _no_cc(self) -> str:
        return (
            f"no C compiler (cc) on {self.label} for --impl c: install one there (sudo apt-get install gcc) "
            "or use --impl python"
        )

    def deploy(self) -> None:
        """Make the run's directory (see WORKDIR_SESSION) and unpack the programs into it."""
        session = self.connection.popen(["sh", "-c", WORKDIR_SESSION], stderr=subprocess.STDOUT)
        self._workdir_session = session
        assert session.stdout is not None
        line = session.stdout.readline().decode("utf-8", "replace").strip()
        if not line.startswith("/tmp/echolab."):
            raise BackendUnavailableError(f"cannot make a directory under /tmp on {self.label}: {line or 'no answer'}")
        self.workdir = line
        done = self.run(["tar", "-x", "-C", self.workdir], input=deploy_archive(), timeout=60.0)
        if done.returncode != 0:
            raise BackendUnavailableError(
                f"cannot unpack echolab into {self.workdir} on {self.label}: {last_line(done.stderr.decode())}"
            )

    def start_agent(self) -> None:
        """The agent in one SSH session over the master: a probe is then a message on it, not a session
        and a Python start of its own (which a Pi over Wi-Fi pays in round trips)."""
        remote = ["python3", f"{self.workdir}/remote/agent.py"]
        self.agent = start_piped(self.label, lambda: self.connection.popen(remote))

    def spawn(self, argv: Sequence[str], env: dict[str, str] | None = None, *, as_root: bool = False) -> Process:
        if not as_root:
            process = super().spawn(argv, env)
            process.exit_hint = functools.partial(self.busy_ports_hint, argv)
            return process
        return self._logged_spawn(argv, lambda: self._start(argv, env, as_root))

    def _spawn(self, argv: Sequence[str], env: dict[str, str] | None) -> Process:
        return self._start(argv, env, as_root=False)

    def _start(self, argv: Sequence[str], env: dict[str, str] | None, as_root: bool) -> Process:
        self._processes = [process for process in self._processes if process.poll() is None]
        process = SshProcess(self, argv, env, as_root=as_root)
        self._processes.append(process)
        return process

    def _run(self, argv: Sequence[str], input: bytes | None, timeout: float) -> Completed:
        try:
            done = self.connection.run(argv, input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"{argv[0]} on {self.label} did not finish within {timeout:g} s") from None
        if done.returncode == SESSION_LOST and self.connection.is_lost:
            raise BackendUnavailableError(f"lost the SSH connection to {self.label}: {last_line(done.stderr.decode())}")
        return Completed(argv, done.returncode, done.stdout, done.stderr)

    def echo_program(self, role: str, impl: str) -> list[str]:
        if impl == "c":
            return [self._compiled(role)]
        return ["python3", f"{self.workdir}/echo/{role}.py"]

    def _compiled(self, role: str) -> str:
        """``bin/<role>`` built from ``echo/<role>.c`` with the host's cc, on first use."""
        with self._lock:
            if role not in self._built:
                if "cc" in self.missing:
                    raise BackendUnavailableError(self._no_cc())
                binary = f"{self.workdir}/bin/{role}"
                done = self.run(["cc", *build.CFLAGS, "-o", binary, f"{self.workdir}/echo/{role}.c"], timeout=120.0)
                if done.returncode != 0:
                    raise BackendUnavailableError(
                        f"cc on {self.label} could not build echo/{role}.c: {last_line(done.stderr.decode())}"
                    )
                self._built[role] = binary
            return self._built[role]

    def remote_argv(self, program: str) -> list[str]:
        return ["python3", f"{self.workdir}/remote/{program}.py"]

    def free_port(self, pair: bool = False) -> int:
        # Each xdist worker picks its own; bind(0) hands out ports at random, so they rarely meet. A
        # request to the agent: a Python started for it cost 20-30 ms per server start.
        agent = self.live_agent()
        if agent is None:
            raise HarnessError(f"no free port from {self.label}: the harness's agent does not run there")
        return agent.free_port(pair)

    def capture_session(self) -> SessionCapture:
        """tcpdump on all of the host's interfaces, as root through ``sudo -n`` (Raspberry Pi OS lets
        its first user sudo without a password), every TCP packet but the SSH session's own; the pcap
        is written into the run's directory and read on through the agent."""
        if "tcpdump" in self.missing:
            raise CaptureUnavailableError(f"tcpdump is not installed on {self.label} (sudo apt-get install tcpdump)")
        agent = self.agent
        if agent is None:
            raise CaptureUnavailableError(f"the harness's agent does not run on {self.label}")
        path = f"{self.workdir}/capture-{secrets.token_hex(4)}.pcap"
        tcp = f"tcp and not port {self.dest.effective_port}"
        process = self.spawn(tcpdump_argv("any", tcp, path), as_root=True)

        def cleanup() -> None:  # the directory is the login's own: it may remove what root wrote there
            with contextlib.suppress(HarnessError, OSError):
                self.run(["rm", "-f", path], timeout=10.0)

        return SessionCapture.start(
            self.label,
            process,
            fetch=functools.partial(agent.read_pcap, path),
            mark=functools.partial(agent.mark, self.address),
            cleanup=cleanup,
        )

    def busy_ports_hint(self, argv: Sequence[str]) -> str:
        """After a server failed to start: '; port N is already in use on HOST' for each number in its
        argv that something else listens on now (the server itself is gone), else ''."""
        numbers = {int(word) for word in re.findall(r"\d+", " ".join(argv)) if 0 < int(word) < 65536}
        done = self.run(["ss", "-Hlnt"], timeout=10.0)
        busy = sorted(port for port in numbers if listeners_from_ss(done.text, port)) if done.returncode == 0 else []
        return "".join(f"; port {port} is already in use on {self.label} (ss -lnt shows a listener)" for port in busy)

    def close(self) -> None:
        """Stop what still runs, remove the directory, close the connection; each step even if one fails."""
        try:
            super().close()  # the agent, and what it runs
            for process in self._processes:
                process.release()
        finally:
            session, self._workdir_session = self._workdir_session, None
            if session is not None:
                close_quietly(session.stdin)  # the session removes the directory and ends
                try:
                    session.wait(15.0)
                except subprocess.TimeoutExpired:
                    session.kill()
                    session.wait()
            self.connection.close()
