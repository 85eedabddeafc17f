"""The system's OpenSSH client as the harness uses it: one multiplexed connection, argv in, errors named.

Everything goes through ``ssh`` itself, so ``~/.ssh/config``, agents, keys and ``ProxyJump`` work as
they do for the user's own ``ssh raspberrypi.local``. One ControlMaster connection per host carries
every command (no handshake per command); its socket lives in a private directory removed at close.
Remote commands are argv lists, quoted with ``shlex.join`` only here, where they meet the remote shell.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness.errors import BackendUnavailableError
from harness.wait import WaitTimeoutError, until

SSH = "ssh"
DEFAULT_USER = "pi"
DEFAULT_PORT = 22
CONNECT_TIMEOUT = 10  # seconds for TCP connect and key exchange: a Pi on Wi-Fi may be slow to answer
# A User that no one configures: ssh -G prints it only when no config file names a user for the host.
UNSET_USER = "echolab-user-not-configured"
# With util-linux's setpriv the kernel kills the master if the harness dies outright (SIGKILL); the
# Pi then sees the connection drop, which stops what runs there (harness/remote/supervise.py).
SETPRIV = shutil.which("setpriv")

OPTIONS = (
    "BatchMode=yes",  # never prompt for a password or passphrase: a test run has nobody to answer
    f"ConnectTimeout={CONNECT_TIMEOUT}",
    "ServerAliveInterval=15",  # notice a Pi that vanished within a minute instead of hanging
    "ServerAliveCountMax=4",
    "LogLevel=ERROR",  # no "Permanently added ..." in the output of commands; errors still show
    # The user's config may carry forwardings or a RemoteCommand meant for interactive logins; a second
    # connection (another xdist worker) would fail to bind a forwarded port, and a RemoteCommand
    # would replace ours.
    "ClearAllForwardings=yes",
    "RemoteCommand=none",
    "PermitLocalCommand=no",
)


@dataclass(frozen=True)
class Destination:
    """An SSH host as the user named it, with the user and port ssh will use for it."""

    host: str
    user: str
    #: The port given on the command line, None for whatever the ssh config says (usually 22).
    port: int | None
    config: str | None
    #: What ssh connects to after its config: the HostName, else the host itself.
    hostname: str
    effective_port: int = DEFAULT_PORT
    #: ssh's StrictHostKeyChecking for the host after its config ("ask" unless the user set it).
    host_key_checking: str = "ask"

    @property
    def label(self) -> str:
        """``pi@raspberrypi.local``, with ``:PORT`` when not 22."""
        suffix = f":{self.effective_port}" if self.effective_port != DEFAULT_PORT else ""
        return f"{self.user}@{self.host}{suffix}"

    def option_args(self) -> list[str]:
        """The ssh options shared by every connection to this destination."""
        args = ["-F", self.config] if self.config else []
        for option in OPTIONS:
            args += ["-o", option]
        args += ["-l", self.user]
        if self.port is not None:
            args += ["-p", str(self.port)]
        return args


def split_user(host: str) -> tuple[str | None, str]:
    """``pi@raspberrypi.local`` -> ("pi", "raspberrypi.local"), as ssh reads a destination."""
    if "@" in host:
        user, _, name = host.rpartition("@")
        return user, name
    return None, host


@functools.lru_cache(maxsize=32)
def resolve(host: str, *, user: str | None = None, port: int | None = None, config: str | None = None) -> Destination:
    """Ask ssh (``ssh -G``) how it would connect to ``host``: the user wins if given, else the User
    the ssh config names for the host, else ``pi``. ``ssh -G`` always prints a user, falling back to
    the local login name, so it reads a wrapper config that includes the user's own and then sets a
    marker User: ssh takes the first value it finds, so the marker shows only where none is set."""
    named_user, name = split_user(host)
    if not name or name.startswith("-"):
        raise BackendUnavailableError(f"--ssh-host {host!r} is not a host name")
    if config and not Path(config).is_file():
        raise BackendUnavailableError(f"--ssh-config {config}: no such file")
    with tempfile.TemporaryDirectory(prefix="echolab-ssh-") as scratch:
        wrapper = Path(scratch) / "config"
        includes = [config] if config else ["~/.ssh/config", "/etc/ssh/ssh_config"]
        wrapper.write_text(
            "".join(f"Include {_config_word(path)}\n" for path in includes) + f"Host *\n  User {UNSET_USER}\n"
        )
        argv = [SSH, "-G", "-F", str(wrapper)] + (["-p", str(port)] if port is not None else []) + ["--", name]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL, check=False
            )
        except FileNotFoundError:
            raise BackendUnavailableError(
                "no ssh client on this machine: install OpenSSH (apt-get install openssh-client)"
            ) from None
    if done.returncode != 0:
        raise BackendUnavailableError(f"ssh cannot read its config for {name}: {last_line(done.stderr)}")
    settings = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    configured = settings.get("user")
    chosen = user or named_user or (configured if configured and configured != UNSET_USER else DEFAULT_USER)
    return Destination(
        host=name,
        user=chosen,
        port=port,
        config=config,
        hostname=settings.get("hostname", name),
        effective_port=int(settings.get("port", DEFAULT_PORT)),
        host_key_checking=settings.get("stricthostkeychecking", "ask"),
    )


def _config_word(path: str) -> str:
    """One ssh_config argument, double-quoted so a path with spaces stays one word."""
    if '"' in path:
        raise BackendUnavailableError(f"--ssh-config {path!r}: ssh cannot include a file whose name has a double quote")
    return f'"{path}"'


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


def ssh_said(stderr: str) -> str:
    """ssh's last line without what the message around it says already."""
    line = last_line(stderr).removeprefix("ssh: ")
    return re.sub(r"^connect to host \S+ port \d+: ", "", line).rstrip(".")


def explain_failure(dest: Destination, stderr: str) -> str:
    """One line saying why ssh could not connect, from what ssh printed (OpenSSH 8-9 wording)."""
    where = f"{dest.label} ({dest.hostname} port {dest.effective_port})"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr or "has changed and you have requested strict" in stderr:
        remove = re.search(r'ssh-keygen -f "[^"\n]+" -R "[^"\n]+"', stderr)
        how = remove.group(0) if remove else f"ssh-keygen -R {dest.hostname}"
        return (
            f"host key for {dest.hostname} has CHANGED since it was recorded in known_hosts: refusing to connect "
            f"(a reinstalled Pi gets new keys; so does an impostor); remove the old key with {how} "
            "if the change is expected"
        )
    if "Host key verification failed" in stderr:
        return (
            f"host key for {dest.hostname} is not known and your ssh config says StrictHostKeyChecking yes: "
            f"connect once with ssh {dest.user}@{dest.host} to check the key and record it"
        )
    if "Could not resolve hostname" in stderr:
        return f"cannot resolve {dest.hostname} (DNS or mDNS failure): {ssh_said(stderr)}"
    denied = re.search(r"Permission denied \([^)]*\)|Too many authentication failures", stderr)
    if denied:
        return (
            f"authentication refused by {where}: {denied.group(0)}; install your public key there "
            f"(ssh-copy-id {dest.user}@{dest.host}) or pick the user with USER=/--ssh-user"
        )
    unreachable = ("Connection refused", "No route to host", "Network is unreachable", "timed out")
    if any(why in stderr for why in unreachable):
        return f"host unreachable: {where}: {ssh_said(stderr)}"
    return f"ssh to {where} failed: {ssh_said(stderr)}"


class Connection:
    """One ControlMaster connection to a destination; every command and session rides on it."""

    def __init__(self, dest: Destination) -> None:
        self.dest = dest
        self._dir = Path(tempfile.mkdtemp(prefix="echolab-ssh-"))
        if len(str(self._dir)) > 80:  # a socket path must fit sockaddr_un (108 bytes)
            self._dir.rmdir()
            self._dir = Path(tempfile.mkdtemp(prefix="echolab-ssh-", dir="/tmp"))
        self.control_path = str(self._dir / "cm")
        self._master: subprocess.Popen[bytes] | None = None
        # The directory goes even if this process is killed outright (SIGKILL) before close(): this
        # shell waits for the end of a pipe only we hold, then removes it. Its own session: a Ctrl-C
        # to the run's process group must not stop it first.
        self._reaper = subprocess.Popen(
            ["sh", "-c", 'cat >/dev/null; rm -rf "$0"', str(self._dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def open(self, timeout: float = CONNECT_TIMEOUT + 20) -> None:
        """Connect and authenticate once; BackendUnavailableError with ssh's reason if it fails."""
        log = self._dir / "master.log"
        prefix = [SETPRIV, "--pdeathsig", "KILL", "--"] if SETPRIV else []
        argv = [
            *prefix,
            SSH,
            *self.dest.option_args(),
            *self.host_key_args(),
            "-o",
            "ControlMaster=yes",
            "-o",
            "ControlPersist=no",
            "-S",
            self.control_path,
            "-N",
            "--",
            self.dest.host,
        ]
        with open(log, "wb") as err:
            # Its own session: Ctrl-C in the terminal must not kill it before the run has cleaned up.
            self._master = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
            )
        master = self._master

        def authenticated() -> bool:
            if master.poll() is not None:
                raise BackendUnavailableError(explain_failure(self.dest, log.read_text(errors="replace")))
            return os.path.exists(self.control_path)  # ssh creates the socket once it has authenticated

        try:
            until(authenticated, timeout=timeout, what=f"an SSH session with {self.dest.label}", interval=(0.005, 0.1))
        except WaitTimeoutError:
            self.close()
            raise BackendUnavailableError(
                f"host unreachable: {self.dest.label}: no SSH session within {timeout:g} s"
            ) from None
        except BaseException:
            self.close()
            raise

    def host_key_args(self) -> list[str]:
        """accept-new where ssh would ask (it cannot, in batch mode): a first contact records the key
        and a changed key is refused. A policy the user's config sets (yes, no) is theirs to keep."""
        return ["-o", "StrictHostKeyChecking=accept-new"] if self.dest.host_key_checking == "ask" else []

    def argv(self, remote: Sequence[str]) -> list[str]:
        """ssh argv that runs ``remote`` (an argv list) over the master; quoted here and only here."""
        return [SSH, *self.dest.option_args(), "-S", self.control_path, "-o", "ControlMaster=no", "-T", "--",
                self.dest.host, shlex.join(remote)]  # fmt: skip

    def run(
        self, remote: Sequence[str], input: bytes | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.argv(remote),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )

    def popen(self, remote: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """A session that stays open: its stdin, stdout and stderr are pipes unless ``kwargs`` say otherwise."""
        streams: dict[str, Any] = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        return subprocess.Popen(self.argv(remote), **{**streams, **kwargs}, start_new_session=True)

    @property
    def is_lost(self) -> bool:
        """The master was open and has gone (the Pi rebooted, the network dropped)."""
        return self._master is not None and self._master.poll() is not None

    def close(self) -> None:
        """``ssh -O exit`` the master, then remove the socket's directory; safe to call twice."""
        master, self._master = self._master, None
        if master is not None:
            if master.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    subprocess.run(
                        [SSH, *self.dest.option_args(), "-S", self.control_path, "-O", "exit", "--", self.dest.host],
                        stdin=subprocess.DEVNULL,
                        capture_output=True,
                        timeout=10,
                        check=False,
                    )
            _reap(master)
        shutil.rmtree(self._dir, ignore_errors=True)
        close_quietly(self._reaper.stdin)
        _reap(self._reaper)


def _reap(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def close_quietly(stream: IO[bytes] | None) -> None:
    if stream is not None:
        with contextlib.suppress(OSError):
            stream.close()


def peer_address(address: str) -> str | None:
    """``address`` as a peer can connect to it: a v4-mapped IPv6 address as IPv4, and None for a
    link-local one (it needs the peer's own scope id) or anything that is not an address."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return None if parsed.is_link_local else str(parsed)
