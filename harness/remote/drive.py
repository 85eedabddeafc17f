"""Drive an interactive client as a person at a terminal would, and say what it did.

    python3 drive.py JSON

The client runs under a pseudo-terminal (so C stdio line-buffers its output, as in the lab's
terminal), with the terminal's echo off, so its output is only what it prints. Each line is typed
once the client has gone quiet (it waits for input), after telling the scripted server (its control
port) which line comes next; then EOF (the terminal's ^D) if asked; then the client has a few
seconds to exit. The result is one JSON line: everything it printed with times, when each line was
typed, its exit status or that it was still running. Standard library only, Python 3.9+: it runs on
the client host (this machine, a container, a Pi), so the timings are the client's own.

Request: {"argv": [...], "lines": [...], "eof": true, "control": [host, port] or null,
"settle": s, "first_wait": s, "reply_wait": s, "exit_wait": s, "max_output": bytes,
"until_printed": [hex, ...] or null}. With "until_printed" (a test that does not judge how the client
ends), the wait for its exit ends as soon as it has printed each of those texts and gone quiet.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import termios
import time
from typing import Any, Dict, List, Optional

#: A terminal in canonical mode holds at most 4095 characters of a line (N_TTY_BUF_SIZE): the
#: longest line a person can type. Longer ones are cut by the terminal, not by the client.
MAX_LINE = 4095


class Session:
    """The client under its pseudo-terminal, and what it has printed so far."""

    def __init__(self, argv: List[str], max_output: int) -> None:
        self.started = time.monotonic()
        master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.ONLCR  # output as the client wrote it: no \r added before \n
        attrs[3] &= ~(termios.ECHO | termios.ECHONL)  # typed lines are not echoed into its output
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.eof_char = attrs[6][termios.VEOF]
        try:
            self.process = subprocess.Popen(
                argv, stdin=slave, stdout=slave, stderr=subprocess.PIPE, start_new_session=True, close_fds=True
            )
        except BaseException:
            os.close(slave)
            os.close(master)
            raise
        # The driver keeps the terminal's client side open too: when the client exits, Linux may
        # answer the master's read with EIO before the last output is through (the tty's buffer
        # is flushed by a worker); with a holder left there is no hangup, and all of it arrives.
        self.slave = slave
        self.master = master
        self.chunks: List[List[Any]] = []
        self.printed = 0
        self.max_output = max_output
        self.stderr = b""
        self.stderr_done = False
        self.last_output = self.started
        self.stopped_early = False  # still running once it had printed what the harness waited for

    def now(self) -> float:
        return round(time.monotonic() - self.started, 6)

    def pump(self, timeout: float) -> int:
        """Read what the client printed within ``timeout``; how many bytes that was."""
        streams = [self.master] + ([self.process.stderr] if self.process.stderr and not self.stderr_done else [])
        ready, _, _ = select.select(streams, [], [], max(timeout, 0.0))
        got = 0
        for stream in ready:
            if stream is self.master:
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # EIO: every holder of the terminal's other side is gone
                    data = b""
                kept = data[: max(0, self.max_output - self.printed)]
                self.printed += len(data)
                got += len(data)
                if data:
                    self.last_output = time.monotonic()
                if kept:  # a client that loops may print without end: keep the first max_output bytes
                    self.chunks.append([self.now(), kept.hex()])
            else:
                more = os.read(stream.fileno(), 65536)  # type: ignore[union-attr]
                self.stderr += more[: 65536 - len(self.stderr)]
                self.stderr_done = not more
                got += len(more)
        return got

    def wait_quiet(self, settle: float, limit: float) -> None:
        """Until nothing has been printed for ``settle`` seconds (the client waits for input), the
        client has exited, or ``limit`` seconds have passed."""
        start = time.monotonic()
        self.last_output = max(self.last_output, start)
        while self.process.poll() is None:
            now = time.monotonic()
            if now - self.last_output >= settle or now - start >= limit:
                return
            self.pump(min(settle - (now - self.last_output), limit - (now - start)))

    def type(self, data: bytes) -> Optional[str]:
        try:
            os.write(self.master, data)
        except OSError as exc:
            return exc.strerror or str(exc)
        return None

    def wait_exit(self, limit: float, printed: Optional[List[bytes]] = None, settle: float = 0.2) -> Optional[int]:
        """Up to ``limit`` seconds for the client to exit; with ``printed``, no longer than until
        each of those texts is in its output and it has been quiet for ``settle`` seconds."""
        deadline = time.monotonic() + limit
        while self.process.poll() is None and time.monotonic() < deadline:
            self.pump(min(0.05, deadline - time.monotonic()))
            if printed is not None and time.monotonic() - self.last_output >= settle:
                output = b"".join(bytes.fromhex(chunk[1]) for chunk in self.chunks)
                if all(text in output for text in printed):
                    self.stopped_early = True
                    break
        for _ in range(1000):  # what it printed last (a looping client may never stop)
            if not self.pump(0.05):
                break
        return self.process.poll()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.close()

    def close(self) -> None:
        os.close(self.slave)
        os.close(self.master)


class Control:
    """The scripted server's control port: "mark N" before line N, so it can tell the lines apart."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10.0)
        self.buffer = b""

    def mark(self, line: int) -> None:
        self.sock.sendall(b"mark %d\n" % line)
        try:
            answer = self.answer(10.0)
        except socket.timeout:
            raise ConnectionError(f"the scripted server did not answer mark {line} within 10 s") from None
        if answer != b"ok %d" % line:
            raise ConnectionError(f"the scripted server answered {answer!r} to mark {line}")

    def sync(self, line: int, session: Session, limit: float) -> bool:
        """Wait (reading what the client prints meanwhile) until the server has sent line's echo."""
        self.sock.sendall(b"sync %d\n" % line)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and session.process.poll() is None:
            ready, _, _ = select.select([self.sock], [], [], 0)
            if ready or b"\n" in self.buffer:
                try:
                    return self.answer(max(0.01, deadline - time.monotonic())) == b"done %d" % line
                except socket.timeout:  # half an answer by the deadline: as good as none
                    return False
            session.pump(min(0.02, max(0.0, deadline - time.monotonic())))
        return False

    def answer(self, limit: float) -> bytes:
        self.sock.settimeout(limit)
        while b"\n" not in self.buffer:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("the scripted server closed its control port")
            self.buffer += data
        answer, _, self.buffer = self.buffer.partition(b"\n")
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError):  # the server is told the session is over
            self.sock.sendall(b"end\n")
        self.sock.close()


def drive(request: Dict[str, Any]) -> Dict[str, Any]:
    control = Control(*request["control"]) if request.get("control") else None
    try:
        session = Session(list(request["argv"]), int(request.get("max_output", 1 << 20)))
    except OSError as exc:
        if control:
            control.close()
        return {"started": False, "error": exc.strerror or str(exc)}
    typed: List[List[Any]] = []
    result: Dict[str, Any] = {"started": True}
    try:
        session.wait_quiet(float(request.get("settle", 0.2)), float(request.get("first_wait", 2.0)))
        for number, line in enumerate(request.get("lines", []), 1):
            if session.process.poll() is not None:
                break
            if control:
                control.mark(number)
            text = str(line)[:MAX_LINE].encode("utf-8") + b"\n"
            typed.append([session.now(), number, session.type(text)])
            if control and not control.sync(number, session, float(request.get("reply_wait", 3.0))):
                typed[-1].append("no echo from the server")  # the client sent nothing it would echo
            session.wait_quiet(float(request.get("settle", 0.2)), float(request.get("reply_wait", 3.0)))
        ended_input = session.now()
        if request.get("eof", True) and session.process.poll() is None:
            result["eof_error"] = session.type(bytes([session.eof_char[0]]) if session.eof_char else b"\x04")
        until_printed = request.get("until_printed")
        printed = [bytes.fromhex(text) for text in until_printed] if until_printed is not None else None
        status = session.wait_exit(float(request.get("exit_wait", 2.0)), printed, float(request.get("settle", 0.2)))
        result.update(
            exit=status,
            exited_at=session.now() if status is not None else None,
            exit_after=round(session.now() - ended_input, 3) if status is not None else None,
            still_running=status is None,
            stopped_early=round(session.now() - ended_input, 3) if status is None and session.stopped_early else None,
            input_ended=ended_input,
        )
    finally:
        if session.process.poll() is None:
            session.kill()
        else:
            session.close()
        if control:
            control.close()
    result.update(typed=typed, chunks=session.chunks, printed=session.printed, stderr=session.stderr.hex())
    return result


def main() -> int:
    try:
        request = json.loads(sys.argv[1]) if len(sys.argv) > 1 else json.load(sys.stdin)
        result = drive(request)
    except Exception as exc:  # reported as data: the harness words it with context
        result = {"drive_error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
