"""The harness's end of a host's agent (harness/remote/agent.py): requests out, answers and events in.

One stream per host and worker, whatever carries it (a pipe to a local process, a ``docker exec``
attach socket, an SSH session): commands, probes, spawns and signals become JSON lines on it instead
of a new process each. A reader thread hands each answer to the request waiting for it and each
event to its ``AgentProcess``. If the agent dies, every wait ends at once with what it said.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

from harness.errors import HarnessError
from harness.process import OUTPUT_LINES, Completed, Process

#: How the harness reads the agent: (channel, bytes) as they come, 1 = its protocol, 2 = its stderr.
Chunks = Iterator[tuple[int, bytes]]
START_TIMEOUT = 30.0
LOST = "lost"


class AgentLostError(HarnessError):
    """The agent's stream ended: it died, or its host went away."""


class AgentLink:
    """A running agent: ``request`` sends one and waits for its answer."""

    def __init__(
        self,
        label: str,
        write: Callable[[bytes], None],
        chunks: Chunks,
        close: Callable[[], None],
        stderr: IO[bytes] | None = None,
    ) -> None:
        self.label = label
        self._write = write
        self._close = close
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._pending: dict[int, _Answer] = {}
        self._processes: dict[int, AgentProcess] = {}
        self._stderr: deque[str] = deque(maxlen=20)
        self._ended: str | None = None
        self._ready = _Answer()
        self._reader = threading.Thread(target=self._read, args=(chunks,), daemon=True, name=f"agent {label}")
        self._reader.start()
        if stderr is not None:
            threading.Thread(target=self._read_stderr, args=(stderr,), daemon=True).start()
        hello = self._ready.get(START_TIMEOUT)
        if hello is None or LOST in hello:
            self.close()
            raise AgentLostError(f"the harness's agent did not start on {label}: {self.said()}")
        #: The agent's Python, as (major, minor, micro), and its pid on its host.
        self.python: tuple[int, ...] = tuple(hello.get("python", ()))
        self.pid = int(hello.get("ready", 0))

    def _read(self, chunks: Chunks) -> None:
        buffer = b""
        errors = b""
        try:
            for channel, data in chunks:
                if channel != 1:
                    errors += data
                    *lines, errors = errors.split(b"\n")
                    self._stderr.extend(line.decode("utf-8", "replace") for line in lines)
                    continue
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    self._dispatch(json.loads(line))
        except (OSError, ValueError) as exc:
            self._stderr.append(f"(the harness could not read the agent: {exc})")
        else:
            self._stderr.append("(its stream ended)")
        finally:
            if errors:
                self._stderr.append(errors.decode("utf-8", "replace"))
            self._lost()

    def _read_stderr(self, stream: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for raw in iter(stream.readline, b""):
                self._stderr.append(raw.decode("utf-8", "replace").rstrip("\r\n"))

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "proc" in message:
            with self._lock:
                process = self._processes.get(message["proc"])
            if process is not None:
                process.event(message)
        elif "ready" in message:
            self._ready.set(message)
        else:
            with self._lock:
                answer = self._pending.pop(message.get("id", -1), None)
            if answer is not None:
                answer.set(message)

    def _lost(self) -> None:
        with self._lock:
            self._ended = self.said()
            pending, self._pending = self._pending, {}
            processes = list(self._processes.values())
        gone = {LOST: True}
        self._ready.set(gone)
        for answer in pending.values():
            answer.set(gone)
        for process in processes:
            process.event({"exit": None})

    @property
    def lost(self) -> bool:
        """Its stream has ended: every request now fails at once."""
        return self._ended is not None

    @property
    def ended(self) -> str:
        return self._ended or ""

    def said(self) -> str:
        return " | ".join(line for line in self._stderr if line.strip())[-600:] or "nothing on its stderr"

    def request(self, op: str, within: float, **params: Any) -> dict[str, Any]:
        """Send a request and wait up to ``within`` seconds for its answer; OSError as the host
        raised it, AgentLostError if the agent went away, HarnessError on no answer."""
        ident = next(self._ids)
        answer = _Answer()
        with self._lock:
            if self._ended is not None:
                raise AgentLostError(f"the harness's agent on {self.label} is gone: {self._ended}")
            self._pending[ident] = answer
        self.send({"id": ident, "op": op, **params})
        reply = answer.get(within)
        if reply is None:
            with self._lock:
                self._pending.pop(ident, None)
            raise HarnessError(f"the harness's agent on {self.label} did not answer {op!r} within {within:g} s")
        if LOST in reply:
            raise AgentLostError(f"the harness's agent on {self.label} went away during {op!r}: {self._ended}")
        if "error" in reply:
            if reply.get("errno") is not None:
                raise OSError(reply["errno"], reply.get("strerror") or reply["error"], reply.get("filename"))
            raise HarnessError(f"{op} on {self.label}: {reply['error']}")
        return reply

    def send(self, message: dict[str, Any]) -> None:
        line = (json.dumps(message) + "\n").encode()
        try:
            with self._write_lock:
                self._write(line)
        except OSError as exc:
            raise AgentLostError(f"cannot reach the harness's agent on {self.label}: {exc}") from None

    def run(self, argv: Sequence[str], input: bytes | None, timeout: float) -> Completed:
        given = base64.b64encode(input).decode() if input is not None else None
        reply = self.request("run", timeout + 10.0, argv=list(argv), input=given, timeout=timeout)
        return Completed(argv, reply["status"], base64.b64decode(reply["stdout"]), base64.b64decode(reply["stderr"]))

    def spawn(self, argv: Sequence[str], env: dict[str, str] | None) -> AgentProcess:
        ident = next(self._ids)
        process = AgentProcess(self, ident, argv)
        with self._lock:
            self._processes[ident] = process
        answer = _Answer()
        with self._lock:
            if self._ended is not None:
                raise AgentLostError(f"the harness's agent on {self.label} is gone: {self._ended}")
            self._pending[ident] = answer
        self.send({"id": ident, "op": "spawn", "argv": list(argv), "env": env or {}})
        reply = answer.get(START_TIMEOUT)
        if reply is None or LOST in reply or "error" in reply:
            with self._lock:
                self._processes.pop(ident, None)
            if reply is not None and reply.get("errno") is not None:
                raise OSError(reply["errno"], reply.get("strerror") or reply["error"], reply.get("filename"))
            raise AgentLostError(
                f"the harness's agent on {self.label} could not start {argv[0]}: {reply or 'no answer'}"
            )
        process.pid = int(reply["pid"])
        return process

    def forget(self, ident: int) -> None:
        with self._lock:
            self._processes.pop(ident, None)

    def read(self, paths: Sequence[str], offset: int = 0, timeout: float = 10.0) -> bytes:
        """The files' contents (from ``offset`` in each), missing ones skipped."""
        return base64.b64decode(self.request("read", timeout, paths=list(paths), offset=offset)["data"])

    def read_pcap(self, path: str, offset: int, snap: int | None, timeout: float = 10.0) -> tuple[bytes, int]:
        """A pcap being written, from ``offset``: (bytes, how many of the file's they stand for), at
        most pcaptrim.LIMIT of them; with ``snap``, whole records each cut to ``snap`` bytes
        (harness/remote/pcaptrim.py), on its host."""
        reply = self.request("read", timeout, paths=[path], offset=offset, snap=snap)
        return base64.b64decode(reply["data"]), int(reply["consumed"])

    def mark(self, address: str, token: bytes, flush: bool = False) -> None:
        """A datagram to ``address``'s discard port, sent from the agent's host, and with ``flush`` the
        filler that pushes it into tcpdump's file at once (harness/remote/marker.py)."""
        self.request("mark", 10.0, address=address, token=token.decode("ascii"), flush=flush)

    def free_port(self, pair: bool = False) -> int:
        """A free port on the agent's host (and its successor free too, for ``pair``)."""
        return int(self.request("free_port", 10.0, pair=pair)["port"])

    def tempdir(self) -> str:
        """A directory on the agent's host that the agent removes when it ends, even if the harness is killed."""
        path: str = self.request("tempdir", 10.0)["path"]
        return path

    def probe(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        result: dict[str, Any] = self.request("probe", timeout, request=request)["result"]
        return result

    def close(self) -> None:
        """End of its stdin: the agent kills whatever it still runs and exits."""
        self._close()
        self._reader.join(10.0)


class AgentProcess(Process):
    """A program the agent started: its output and exit arrive as events on the agent's stream."""

    def __init__(self, link: AgentLink, ident: int, argv: Sequence[str]) -> None:
        super().__init__(argv)
        self._link = link
        self._ident = ident
        self.pid = 0
        self._lines: deque[str] = deque(maxlen=OUTPUT_LINES)
        self._status: int | None = None
        self._lost = False
        self._exited = threading.Event()

    def event(self, message: dict[str, Any]) -> None:
        if "line" in message:
            self._lines.append(message["line"])
        elif "exit" in message:
            if message["exit"] is None:  # the agent went away: so did its programs
                self._lost = True
                self._status = -9
            else:
                self._status = int(message["exit"])
            self._exited.set()
            self._link.forget(self._ident)

    def poll(self) -> int | None:
        return self._status

    def signal(self, signum: int) -> None:
        if self._exited.is_set():
            return
        with contextlib.suppress(HarnessError):  # gone meanwhile: nothing left to signal
            self._link.request("signal", 10.0, proc=self._ident, signum=int(signum))

    def wait(self, timeout: float) -> int | None:
        self._exited.wait(timeout)
        return self._status

    def output(self) -> list[str]:
        return list(self._lines)

    def describe_status(self) -> str:
        if self._lost:
            return f"unknown: the harness's agent on {self._link.label} went away ({self._link.said()})"
        return super().describe_status()


class _Answer:
    """One reply, handed from the reader thread to the waiting request."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._value: dict[str, Any] | None = None

    def set(self, value: dict[str, Any]) -> None:
        self._value = value
        self._event.set()

    def get(self, timeout: float) -> dict[str, Any] | None:
        self._event.wait(timeout)
        return self._value


def start_piped(label: str, popen: Callable[[], subprocess.Popen[bytes]]) -> AgentLink:
    """An agent behind pipes: a local process, or an SSH session (``popen`` starts it with stdin,
    stdout and stderr piped). Closing the link closes its stdin and reaps it."""
    process = popen()
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    def write(line: bytes) -> None:
        stdin.write(line)
        stdin.flush()

    def chunks() -> Chunks:
        while data := os.read(stdout.fileno(), 1 << 16):
            yield 1, data

    def close() -> None:
        with contextlib.suppress(OSError):
            stdin.close()
        try:
            process.wait(10.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    try:
        return AgentLink(label, write, chunks(), close, stderr=process.stderr)
    except BaseException:
        close()
        raise
