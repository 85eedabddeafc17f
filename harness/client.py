"""A client as the system under test: the scripted server it talks to, a session at its terminal,
and how what it did is judged and worded.

The scripted server (harness/remote/scripted_server.py) runs on the server host and records what
the client sends, line by line; the client runs under a pseudo-terminal on the client host,
driven by harness/remote/drive.py. Its output is judged with its prompts and labels set aside:
only where the replies stand in it, and whether anything of a reply stands anywhere else.
"""

from __future__ import annotations

import json
import random
import shlex
import string
from dataclasses import dataclass, field
from typing import Any

from harness.backends.base import Host
from harness.command import LAB_ADDRESS, ClientCommand
from harness.errors import HarnessError, ServerStartError
from harness.evidence import tail_block
from harness.process import Process
from harness.wait import WaitTimeoutError, until
from harness.wire.capture import Capture, NoCapture

#: Runs of this many characters of a reply, found outside where that reply stands, are reply bytes
#: printed again (a stale buffer, a duplicate). Labels are words; replies are random tokens, so a
#: label shares no 8-character run with them.
RUN = 8
EXIT_LIMIT = 2.0  # seconds a client may take to exit after EOF, the server's close, or a refusal


def words(count: int, seed: int) -> str:
    """A line of random lowercase tokens: unlike any prompt or label, and unlike every other line."""
    rng = random.Random(seed)
    alphabet = string.ascii_lowercase + string.digits
    return " ".join("".join(rng.choice(alphabet) for _ in range(rng.randint(3, 9))) for _ in range(count))


def line_of(length: int, seed: int) -> str:
    """A line of exactly ``length`` characters, spaces included."""
    text = words(length // 4 + 2, seed)
    return text[:length].rstrip() + "x" * (length - len(text[:length].rstrip()))


@dataclass(frozen=True)
class ClientSpec:
    """Which client to drive: a reference implementation, or the user's ``--client-cmd``."""

    impl: str
    command: ClientCommand | None = None

    @property
    def served_on_client_host(self) -> bool:
        """A client with the lab's hard-coded 127.0.0.1 reaches a server on its own host only."""
        return self.command is not None and self.command.hard_coded_host

    def argv(self, host: Host, address: str, port: int) -> list[str]:
        if self.command is not None:
            return self.command.argv(host=address, port=port)
        return [*host.echo_program("client", self.impl), "--host", address, "--port", str(port)]

    def describe(self) -> str:
        return f"--client-cmd {self.command.template!r}" if self.command else f"reference {self.impl} client"


class ScriptedServer:
    """The harness's echo server for one test, and what it saw (its events, one JSON line each)."""

    def __init__(self, host: Host, address: str, port: int, mode: str, process: Process) -> None:
        self.host = host
        self.address = address
        self.port = port
        self.mode = mode
        self.process = process
        self.capture: Capture | NoCapture | None = None

    @property
    def control(self) -> tuple[str, int]:
        return self.address, self.port + 1

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.process.output():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    def received(self) -> dict[int, bytes]:
        """The bytes received after the driver's mark for each line, by line number."""
        lines: dict[int, bytes] = {}
        current = 0
        for event in self.events():
            if event["event"] == "mark":
                current = int(event["line"])
                lines.setdefault(current, b"")
            elif event["event"] == "recv":
                lines[current] = lines.get(current, b"") + bytes.fromhex(event["hex"])
        return lines

    def first_reads(self) -> dict[int, bytes]:
        """In gather mode: what each line's first read gathered before the server echoed."""
        lines: dict[int, bytes] = {}
        current, gathering = 0, False
        for event in self.events():
            kind = event["event"]
            if kind == "mark":
                current, gathering = int(event["line"]), True
                lines[current] = b""
            elif kind == "recv" and gathering:
                lines[current] = lines.get(current, b"") + bytes.fromhex(event["hex"])
            elif kind == "echoed":
                gathering = False
        return lines

    def saw(self, kind: str) -> bool:
        return any(event["event"] == kind for event in self.events())

    def ending(self, timeout: float = EXIT_LIMIT) -> str | None:
        """How the client's connection ended as the server saw it ("eof", "reset"), waiting for the
        server to say so (its events reach the harness a moment after the client has exited)."""

        def ended() -> str | None:
            return next((kind for kind in ("eof", "reset") if self.saw(kind)), None)

        try:
            return until(ended, timeout=timeout, what="the scripted server seeing the connection end")
        except WaitTimeoutError:
            return None

    def peer_port(self) -> int | None:
        accepted = [event for event in self.events() if event["event"] == "accepted"]
        return int(accepted[-1]["peer"][1]) if accepted else None

    def evidence(self) -> str:
        shown = [line for line in self.process.output() if '"event": "recv"' not in line][-12:]
        return f"scripted server ({self.mode}) on {self.address}:{self.port}\n" + tail_block("its events", shown)

    def stop(self) -> None:
        self.process.stop()


def start_scripted(
    host: Host, address: str, mode: str, port: int | None, *, ready_timeout: float = 10.0, delay: float | None = None
) -> ScriptedServer:
    """The scripted server on ``host``, listening on ``port`` and port + 1 (its control port); with
    ``port`` None on a free pair, another one if a program takes it before the server binds it.
    ``delay``: its gather and split wait, if not its own 0.3 s."""
    for attempt in range(1, 4):
        chosen = port if port is not None else free_pair(host)
        argv = [*host.remote_argv("scripted_server"), "--port", str(chosen), "--mode", mode]
        argv += ["--delay", f"{delay:g}"] if delay is not None else []
        try:
            process = host.spawn(argv)
        except OSError as exc:
            raise HarnessError(f"cannot start the scripted server on {host.label}: {exc}") from None

        def listening(process: Process = process, chosen: int = chosen) -> bool:
            if process.poll() is not None:
                raise ServerStartError(f"the scripted server exited: {' | '.join(process.output()[-3:])}")
            return bool(host.listeners(chosen)) and bool(host.listeners(chosen + 1))

        try:
            until(listening, timeout=ready_timeout, what=f"the scripted server on {host.label}:{chosen}")
        except (WaitTimeoutError, ServerStartError) as exc:
            process.stop()
            if port is None and attempt < 3 and "Address already in use" in str(exc):
                continue
            raise HarnessError(str(exc)) from None
        return ScriptedServer(host, address, chosen, mode, process)
    raise AssertionError("unreachable")  # pragma: no cover


def free_pair(host: Host) -> int:
    """A port whose successor is free too: the scripted server's echo and control ports."""
    return host.free_port(pair=True)


@dataclass
class Session:
    """One client session at a terminal (the driver's result) and the lines it was given."""

    argv: list[str]
    lines: list[str]
    eof: bool
    result: dict[str, Any]
    wire: str = ""
    server: ScriptedServer | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def output(self) -> bytes:
        return b"".join(bytes.fromhex(chunk[1]) for chunk in self.result.get("chunks", []))

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def status(self) -> str:
        if not self.result.get("started", True):
            return f"could not be started: {self.result.get('error')}"
        if self.result.get("stopped_early") is not None:
            after = self.result["stopped_early"]
            return f"still running {after:g} s after its input ended (stopped then: this test does not judge its end)"
        if self.result.get("still_running"):
            return f"still running {EXIT_LIMIT:g} s after its input ended (killed then)"
        code = self.result.get("exit")
        how = f"killed by signal {-code}" if isinstance(code, int) and code < 0 else f"exited with status {code}"
        return f"{how}, {self.result.get('exit_after')} s after its input ended"

    def evidence(self) -> str:
        """The block every client failure ends with: what was typed, what the server got, what the
        client printed, how it ended."""
        typed = "\n".join(f"  line {i}: {shorten(line)!r}" for i, line in enumerate(self.lines, 1)) or "  (nothing)"
        parts = [
            f"client {shlex.join(self.argv)}: {self.status()}",
            f"typed at its terminal{' then EOF (^D)' if self.eof else ''}:\n{typed}",
        ]
        if self.server is not None:
            got = self.server.received()
            received = "\n".join(f"  line {i}: {shorten(got.get(i, b''))!r}" for i in range(1, len(self.lines) + 1))
            parts.append(f"the server received, per line:\n{received or '  (nothing)'}")
            parts.append(self.server.evidence())
        parts.append(tail_block("the client printed", self.text.splitlines()[-25:]))
        stderr = bytes.fromhex(self.result.get("stderr", "")).decode("utf-8", "replace").strip()
        if stderr:
            parts.append(tail_block("on stderr", stderr.splitlines()[-5:]))
        return "\n".join(parts)


def shorten(value: str | bytes, keep: int = 60) -> str | bytes:
    if len(value) <= 2 * keep:
        return value
    cut = f"...({len(value) - 2 * keep} more)..."
    return value[:keep] + (cut.encode() if isinstance(value, bytes) else cut) + value[-keep:]  # type: ignore[operator]


def drive(
    client_host: Host,
    argv: list[str],
    lines: list[str],
    *,
    eof: bool = True,
    server: ScriptedServer | None = None,
    settle: float = 0.2,
    until_printed: list[str] | None = None,
) -> Session:
    """Run the client at a terminal on its host: type ``lines`` (each once it waits for input),
    then EOF if asked, and give it EXIT_LIMIT seconds to exit; with ``until_printed`` (a test that
    does not judge how it ends), only until it has printed each of those texts and gone quiet."""
    request = {
        "argv": argv,
        "lines": lines,
        "eof": eof,
        "control": list(server.control) if server is not None else None,
        "settle": settle,
        "first_wait": 3.0,
        "reply_wait": 10.0,  # only a client that sends nothing waits this out; a slow machine must not
        "exit_wait": EXIT_LIMIT,
        "until_printed": [text.encode("utf-8").hex() for text in until_printed] if until_printed is not None else None,
    }
    done = client_host.run([*client_host.remote_argv("drive"), json.dumps(request)], timeout=120.0)
    output = done.stdout.decode("utf-8", "replace").splitlines()
    try:
        result: dict[str, Any] = json.loads(output[-1])
    except (IndexError, ValueError):
        raise HarnessError(
            f"the client driver on {client_host.label} printed no result (status {done.returncode}): "
            f"{done.stderr.decode('utf-8', 'replace')[-400:]}"
        ) from None
    if "drive_error" in result:
        raise HarnessError(f"the client driver on {client_host.label} failed: {result['drive_error']}")
    if server is not None:  # its events reach us a moment later: judge only once all are in
        try:
            until(lambda: server.saw("end"), timeout=10.0, what="the scripted server's events")
        except WaitTimeoutError as exc:
            raise HarnessError(f"{exc}\n{server.evidence()}") from None
    return Session(argv, lines, eof, result, server=server)


def connect_problem(session: Session) -> str | None:
    """None if the client connected to its scripted server; else how it ended instead, in its own
    last words first (a wrong command, a missing file, a crash at start say why on stderr)."""
    server = session.server
    if server is None or server.saw("accepted"):
        return None
    stderr = bytes.fromhex(session.result.get("stderr", "")).decode("utf-8", "replace").strip().splitlines()
    printed = session.text.strip().splitlines()
    said = f"; its last words: {shorten(stderr[-1])!r}" if stderr else ""
    said = said or (f"; it printed {shorten(printed[-1])!r} last" if printed else "; it printed nothing")
    return f"the client never connected to the server at {server.address}:{server.port}: it {session.status()}{said}"


def sent_problem(session: Session, gathered: dict[int, bytes]) -> str | None:
    """Each line's text reached the server whole before its echo (with or without a newline)."""
    for number, line in enumerate(session.lines, 1):
        got = gathered.get(number, b"")
        text = line.encode("utf-8")
        if got.rstrip(b"\r\n") == text:
            continue
        where = _first_difference(text, got.rstrip(b"\r\n"))
        return (
            f"line {number} ({len(text)} characters) did not reach the server whole: it received "
            f"{len(got)} bytes before echoing, {shorten(got)!r}; first difference at character {where}"
        )
    return None


def printed_problem(session: Session, replies: list[bytes]) -> str | None:
    """Each reply (what the server echoed for a line) printed exactly once, whole (in pieces is
    fine), in order; and no run of reply bytes anywhere else in the output (a stale buffer, a
    reply printed twice). Prompts and labels are whatever stands between the replies."""
    out = session.output
    position = 0
    spans = []
    for number, reply in enumerate(replies, 1):
        text = reply.rstrip(b"\r\n")
        if not text:
            continue
        found = out.find(text, position)
        if found < 0:
            return f"the reply to line {number} ({len(text)} bytes, {shorten(text)!r}) is not printed whole" + (
                _closest(out, text, position)
            )
        spans.append((found, found + len(text), number))
        position = found + len(text)
    texts = [reply.rstrip(b"\r\n") for reply in replies]
    runs = {text[i : i + RUN] for text in texts for i in range(len(text) - RUN + 1)}
    gaps = zip([(0, 0), *((end, number) for _, end, number in spans)], [start for start, _, _ in spans] + [len(out)])
    for (start, before), end in gaps:
        gap = out[start:end]
        hit = next((i for i in range(len(gap) - RUN + 1) if gap[i : i + RUN] in runs), None)
        if hit is not None:
            where = f"after the reply to line {before}" if before else "before the first reply"
            return (
                f"reply bytes printed where no reply belongs ({where}): {gap[hit : hit + 40]!r} at output byte "
                f"{start + hit} (a stale buffer, or a reply printed twice)"
            )
    return None


def _closest(out: bytes, text: bytes, start: int) -> str:
    """Where the longest start of ``text`` stands in the output, and the first byte that differs
    there, marked: what was printed instead of the rest of the reply."""
    low, high, at = 0, len(text), -1
    while low < high:  # the longest prefix printed somewhere after ``start`` (binary search)
        mid = (low + high + 1) // 2
        found = out.find(text[:mid], start)
        if found >= 0:
            low, at = mid, found
        else:
            high = mid - 1
    if low == 0:
        return "; no byte of it appears in the output"
    printed = out[at + low : at + low + 24]
    return (
        f"; its first {low} bytes are printed at output byte {at}, then it differs:\n"
        f"  expected ...{text[max(0, low - 16) : low]!r} >>> {text[low : low + 24]!r}\n"
        f"  printed  ...{out[max(at, at + low - 16) : at + low]!r} >>> {printed!r}"
    )


def _first_difference(expected: bytes, got: bytes) -> int:
    limit = min(len(expected), len(got))
    return next((i for i in range(limit) if expected[i] != got[i]), limit)


def run_client(
    client_host: Host,
    spec: ClientSpec,
    lines: list[str],
    *,
    server: ScriptedServer | None = None,
    at: tuple[str, int] | None = None,
    eof: bool = True,
    settle: float = 0.2,
    until_printed: list[str] | None = None,
) -> Session:
    """The client under test against ``server`` (or an address ``at`` which nothing may serve).
    ``until_printed``: see drive; [] for a test that judges neither its output nor its end."""
    address, port = (server.address, server.port) if server is not None else (at or LAB_ADDRESS)
    argv = spec.argv(client_host, address, port)
    return drive(client_host, argv, lines, eof=eof, server=server, settle=settle, until_printed=until_printed)
