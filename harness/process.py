"""Programs on a host: a long-running one (``Process``) and a finished one (``Completed``), with
their output kept for evidence and every command logged on ``echolab.commands``."""

from __future__ import annotations

import logging
import shlex
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO

OUTPUT_LINES = 400  # how much of a server's output is kept for failure reports
COMMANDS = logging.getLogger("echolab.commands")


@dataclass(frozen=True)
class Completed:
    """A finished command: its status and everything it wrote."""

    argv: Sequence[str]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


class OutputLog:
    """The last lines a process wrote, collected by a thread so a chatty process never blocks."""

    def __init__(self, stream: IO[bytes], first: Iterable[str] = ()) -> None:
        self._lines: deque[str] = deque(first, maxlen=OUTPUT_LINES)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            with self._lock:
                self._lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
        stream.close()

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def drain(self, timeout: float = 1.0) -> None:
        """Wait for the pipe's last lines after the process ended."""
        self._thread.join(timeout)


class Process(ABC):
    """A long-running program on a host (the echo server), with its output kept for evidence."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.where = "host"  # the host's label, for the command log
        self.started = time.monotonic()
        #: After a failed exit, what the host can add to explain it (e.g. "; port N is already in use").
        self.exit_hint: Callable[[], str] | None = None
        self._hint: str | None = None

    @abstractmethod
    def poll(self) -> int | None:
        """The exit status, or None while it runs."""

    @abstractmethod
    def signal(self, signum: int) -> None:
        """Send a signal to the program (and anything it started)."""

    @abstractmethod
    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds; the exit status, or None if it still runs."""

    @abstractmethod
    def output(self) -> list[str]:
        """Its last lines of stdout and stderr, interleaved as written."""

    def kill(self) -> int | None:
        """SIGKILL and reap: afterwards nothing of it listens any more."""
        if self.poll() is None:
            self.signal(signal.SIGKILL)
        status = self.wait(10.0)
        self._log_end()
        return status

    def stop(self, grace: float = 2.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        if self.poll() is None:
            self.signal(signal.SIGTERM)
            if self.wait(grace) is None:
                return self.kill()
        self._log_end()
        return self.poll()

    def _log_end(self) -> None:
        took = time.monotonic() - self.started
        COMMANDS.debug("%s: %s -> %s after %.2f s", self.where, shlex.join(self.argv), self.describe_status(), took)

    def describe_status(self) -> str:
        status = self.poll()
        if status is None:
            return "still running"
        if status < 0:
            return f"killed by {signal.Signals(-status).name}"
        if status > 0 and self.exit_hint is not None and self._hint is None:
            self._hint = self.exit_hint()
        return f"exited with status {status}{self._hint or ''}"
