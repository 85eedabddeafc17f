"""``docker exec`` over the Engine API: a program in a running container, its stdin and its output.

The low-level exec calls are used because they give what the backend needs and the high-level
``exec_run`` does not: stdin on the attach socket (closed with a half-close, as the docker CLI
does), output as it comes, and the exit code and host pid afterwards (``exec_inspect``).
"""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.wait import WaitTimeoutError, until

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

# Without a tty the stream is multiplexed: each frame is a header (stream 1 = stdout, 2 = stderr,
# 3 bytes of padding, payload size) and the payload (Engine API, "Attach to a container").
HEADER = struct.Struct(">BxxxL")
STDOUT, STDERR = 1, 2


def exit_status(code: int) -> int:
    """The exit code as subprocess reports it: a signal death (128 + n, as a shell shows it) is -n."""
    return -(code - 128) if 128 < code <= 128 + 64 else code


class Exec:
    """One program started in a container with ``docker exec``."""

    def __init__(
        self, api: Any, container: str, argv: Sequence[str], *, env: dict[str, str] | None = None, stdin: bool = False
    ) -> None:
        self.api = api
        self.argv = list(argv)
        self.id: str = api.exec_create(container, self.argv, stdin=stdin, environment=env)["Id"]
        attached = api.exec_start(self.id, socket=True)
        # On a unix socket the SDK hands back a SocketIO; timeouts and the half-close need the socket.
        self.sock: socket.socket = getattr(attached, "_sock", attached)
        # The SDK hangs the HTTP response on that SocketIO so that it lives as long as the stream
        # ("if the response is garbage collected, it will close ... sockets", docker/api/client.py):
        # kept here, for an agent's stream that lasts the whole run.
        self._attached = attached
        self._status: int | None = None

    def feed(self, data: bytes) -> None:
        """Write all of stdin, then close it: the program reads EOF. Written before any output is
        read, which is fine for what the harness sends (a probe request, a few typed lines)."""
        with contextlib.suppress(OSError):  # the program may have exited without reading it
            self.sock.sendall(data)
            self.sock.shutdown(socket.SHUT_WR)

    def frames(self, deadline: float | None = None) -> Iterator[tuple[int, bytes]]:
        """(stream, payload) as the program writes them, until it ends; TimeoutError at ``deadline``."""
        while True:
            header = self._receive(HEADER.size, deadline)
            if len(header) < HEADER.size:
                return
            stream, size = HEADER.unpack(header)
            yield stream, self._receive(size, deadline)

    def _receive(self, size: int, deadline: float | None) -> bytes:
        data = bytearray()
        while len(data) < size:
            if deadline is not None:
                self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                chunk = self.sock.recv(size - len(data))
            except OSError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError from None
                chunk = b""  # the container went away under us: the stream is over
            if not chunk:
                break
            data.extend(chunk)
        return bytes(data)

    def inspect(self) -> dict[str, Any]:
        state: dict[str, Any] = self.api.exec_inspect(self.id)
        return state

    def host_pid(self) -> int | None:
        """The program's pid as the daemon's machine sees it, or None if the engine has none (yet)."""
        found: list[int | None] = []

        def known() -> bool:
            state = self.inspect()
            # The output can arrive before the engine records the pid: 0 until then. Never hand
            # out 0 (or 1): os.killpg(0, ...) would signal the harness's own process group.
            pid = int(state.get("Pid") or 0)
            if pid > 1 or not state["Running"]:
                found.append(pid if pid > 1 else None)
            return bool(found)

        with contextlib.suppress(WaitTimeoutError):
            until(known, timeout=2.0, what="the engine recording the exec's pid", interval=0.005)
        return found[0] if found else None

    def poll(self) -> int | None:
        """The exit status, or None while it runs; a removed container counts as killed."""
        import docker.errors

        if self._status is None:
            try:
                state = self.inspect()
            except docker.errors.NotFound:
                self._status = -9  # the exec went with its container (removed): SIGKILL
            else:
                if not state["Running"] and state["ExitCode"] is not None:
                    self._status = exit_status(int(state["ExitCode"]))
        return self._status

    def wait(self, timeout: float) -> int | None:
        """Poll until it exits or ``timeout`` seconds pass: the engine has no blocking wait for execs."""
        with contextlib.suppress(WaitTimeoutError):
            until(lambda: self.poll() is not None, timeout=timeout, what="the exec's exit", interval=(0.005, 0.1))
        return self.poll()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class ExecOutput(io.RawIOBase):
    """stdout and stderr of an exec as one byte stream, interleaved as written (for OutputLog)."""

    def __init__(self, job: Exec) -> None:
        super().__init__()
        self._job = job
        self._frames = job.frames()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self._pending:
            try:
                _, self._pending = next(self._frames)
            except StopIteration:
                return 0
        view = memoryview(buffer).cast("B")
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        self._job.close()
        super().close()


def run_to_end(job: Exec, input: bytes | None, timeout: float) -> tuple[bytes, bytes, int]:
    """Feed stdin, collect stdout and stderr apart, and return them with the exit status."""
    output = {STDOUT: bytearray(), STDERR: bytearray()}
    deadline = time.monotonic() + timeout
    try:
        if input is not None:
            job.feed(input)
        for stream, data in job.frames(deadline):
            output.setdefault(stream, bytearray()).extend(data)
    finally:
        job.close()
    # The stream can end a moment before the engine records the exit code.
    status = job.wait(max(deadline - time.monotonic(), 5.0))
    if status is None:
        raise HarnessError(f"{job.argv[0]} closed its output but did not exit within {timeout:g} s")
    return bytes(output[STDOUT]), bytes(output[STDERR]), status
