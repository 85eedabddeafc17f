"""One tcpdump per host for the whole session, sliced per test by marker datagrams.

A host's tcpdump runs from its first capture to the end of the run, writing one growing pcap. A
test's capture is the slice between two markers (UDP datagrams to the discard port, each carrying a
token of its own, sent through the captured interface when the test starts watching a port and
when it stops), keeping only the records of that port. The file is read on from where the last read
stopped, and a record no open slice wants is dropped as it is read: the work grows with the packets.

Losses: tcpdump prints its cumulative "N packets dropped by kernel" on SIGUSR1 (tcpdump(1)); a slice
that was judged asks for it, and a drop since the previous report makes its wire checks not judged.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.errors import CaptureUnavailableError
from harness.process import Process
from harness.wait import WaitTimeoutError, until
from harness.wire.capture import MARK_PREFIX, MARK_TIMEOUT, READY_TIMEOUT, Capture
from harness.wire.pcap import GLOBAL_HEADER, RECORD_HEADER, PcapRecords, pcap_records

TOKEN_LEN = len(MARK_PREFIX) + 16
MARK_MAX = 200  # a marker's record is small: larger records are never searched for one
STATS = re.compile(r"(\d+) packets? captured, (\d+) packets? received by filter, (\d+) packets? dropped by kernel")
STATS_TIMEOUT = 5.0
REMARK = 0.25  # an end marker is sent again once tcpdump's file has stood still this long without it
MARK_LIMIT = 30.0  # while tcpdump keeps writing what came before the end marker (MARK_TIMEOUT if it stops)


class _Stalled(Exception):
    """tcpdump's file stood still for MARK_TIMEOUT seconds without the end marker."""


#: What is kept of a large record while every open slice wants headers only: the link header (up to
#: 20 bytes, Linux cooked v2), IPv6 with room for extension headers, and TCP with all its options.
SNAP = 160


@dataclass
class _Slice:
    port: int
    token: bytes
    dropped_before: int  # tcpdump's cumulative drops at the last report before it opened
    records: list[bytes] = field(default_factory=list)
    started: bool = False  # its start marker has been read: its records follow
    complete: bool = False  # its end marker was read too
    ended_at: float = 0.0  # when its end marker had been read
    headers_only: bool = False  # its test judges no payload: large records may be read cut (SNAP)


class SessionCapture:
    """A host's tcpdump for the run (``process``), its pcap read through ``fetch(offset, snap)`` (the
    bytes from ``offset`` to the file's current end, and how many of the file's they stand for; with
    ``snap``, whole records each cut to that many bytes), markers sent by ``mark(token, flush)`` through the interface
    it captures, and ``cleanup`` for its file once it has stopped."""

    def __init__(
        self,
        label: str,
        process: Process,
        fetch: Callable[[int, int | None], tuple[bytes, int]],
        mark: Callable[[bytes, bool], None],
        cleanup: Callable[[], None],
    ) -> None:
        self.label = label
        self.process = process
        self._fetch = fetch
        self._mark = mark
        self._cleanup = cleanup
        self._lock = threading.RLock()
        self._offset = 0  # of the first byte not read yet
        self._pending = b""  # read, but not a whole record yet
        self._header = b""
        self._records: PcapRecords | None = None
        self._open: dict[bytes, _Slice] = {}
        self._ends: dict[bytes, bool] = {}
        self._captured = -1  # tcpdump's cumulative counts at its last report
        self._dropped = 0
        self._covers = float("-inf")  # that report counts every drop before this time (its asking)

    @classmethod
    def start(
        cls,
        label: str,
        process: Process,
        fetch: Callable[[int, int | None], tuple[bytes, int]],
        mark: Callable[[bytes, bool], None],
        cleanup: Callable[[], None],
    ) -> SessionCapture:
        """Wait until tcpdump is listening (what comes before is not captured); one error line if not."""
        session = cls(label, process, fetch, mark, cleanup)

        def listening() -> bool:
            return process.poll() is not None or any("listening on" in line for line in process.output())

        with contextlib.suppress(WaitTimeoutError):  # judged just below, with tcpdump's own words
            until(listening, timeout=READY_TIMEOUT, what="tcpdump listening", interval=0.005)
        if process.poll() is not None or not any("listening on" in line for line in process.output()):
            said = " | ".join(process.output()[-3:]) or "nothing"
            status = process.describe_status()
            session.close()
            raise CaptureUnavailableError(f"tcpdump did not start capturing on {label} ({status}): {said}")
        return session

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def open(self, port: int) -> Capture:
        """``port``'s packets from now until the capture's ``stop()``."""
        piece = _Slice(port, MARK_PREFIX + secrets.token_hex(8).encode(), self._dropped)
        with self._lock:
            self._open[piece.token] = piece
        self._mark(piece.token, False)
        return Capture(
            port,
            finish=lambda: self._finish(piece),
            losses=lambda: self._losses(piece),
            headers_only=lambda: setattr(piece, "headers_only", True),
        )

    def _finish(self, piece: _Slice) -> bytes:
        """The slice's pcap, once an end marker sent now has reached the file (tcpdump has then
        written everything captured before it)."""
        end = MARK_PREFIX + secrets.token_hex(8).encode()
        with self._lock:
            self._ends[end] = False
        sent = time.monotonic()
        self._mark(end, True)
        # (when, file offset) of the last read that found new bytes: tcpdump may still be writing a
        # backlog (a probe that moved 20 MB), and the marker comes after all of it.
        progress = (sent, self._offset)

        def arrived() -> bool:
            nonlocal sent, progress
            self._read()
            now = time.monotonic()
            if self._offset != progress[1]:
                progress = (now, self._offset)
            elif now - progress[0] > MARK_TIMEOUT:
                raise _Stalled
            if self._ends[end] or not self.alive:
                return True
            # Again once the file stands still without it (the datagram was lost on a real network),
            # and every second in any case (another worker's traffic may keep a Pi's file growing).
            if now - sent > (REMARK if now - progress[0] > REMARK else 1.0):
                self._mark(end, True)
                sent = now
            return False

        # Polled fast at first (the marker's filler makes it a millisecond), then every 50 ms at most:
        # each poll of an SSH host is a request to its agent, taking CPU from the tcpdump it waits for.
        with contextlib.suppress(WaitTimeoutError, _Stalled):  # then incomplete: a loss (see _losses), never a pass
            until(arrived, timeout=MARK_LIMIT, what="the capture's end marker", interval=(0.002, 0.05))
        with self._lock:
            piece.complete = piece.started and self._ends.pop(end)
            piece.ended_at = time.monotonic()
            del self._open[piece.token]
        return self._header + b"".join(piece.records)

    def _read(self) -> None:
        """Read what tcpdump wrote since the last read and hand each record to the slices that want it."""
        with self._lock:
            # Cut only from a record's start, and only if no open slice wants a payload.
            cut = self._records is not None and not self._pending and self._open
            snap = SNAP if cut and all(piece.headers_only for piece in self._open.values()) else None
            data, consumed = self._fetch(self._offset, snap)
            self._offset += consumed
            buffer = self._pending + data if self._pending else data
            position = 0
            if self._records is None:
                if len(buffer) < GLOBAL_HEADER:
                    self._pending = buffer
                    return
                self._header = buffer[:GLOBAL_HEADER]
                self._records = pcap_records(self._header)
                position = GLOBAL_HEADER
            records = self._records
            size = len(buffer)
            while position + RECORD_HEADER <= size:
                end = position + RECORD_HEADER + records.length(buffer, position)
                if end > size:
                    break
                self._deliver(buffer, position, end)
                position = end
            self._pending = buffer[position:]

    def _deliver(self, buffer: bytes, position: int, end: int) -> None:
        frame = position + RECORD_HEADER
        if end - frame <= MARK_MAX:
            found = buffer.find(MARK_PREFIX, frame, end)
            if found >= 0:
                token = buffer[found : found + TOKEN_LEN]
                if token in self._open:
                    self._open[token].started = True
                elif token in self._ends:
                    self._ends[token] = True
                return
        if not self._open:
            return
        assert self._records is not None
        ports = self._records.ports(buffer, frame, end)
        if ports is None:
            return
        record = None
        for piece in self._open.values():
            if piece.started and piece.port in ports:
                record = record or buffer[position:end]
                piece.records.append(record)

    def _losses(self, piece: _Slice) -> str | None:
        if not piece.complete:
            return f"the capture of port {piece.port} is incomplete: its end marker never reached tcpdump's file"
        # A report asked for after the slice ended counts every drop during it: the last one may do.
        dropped = self._dropped if piece.ended_at <= self._covers else self._report()
        if dropped is None:
            return f"tcpdump on {self.label} did not report its dropped packets"
        if dropped > piece.dropped_before:
            return f"tcpdump lost {dropped - piece.dropped_before} packet(s) while port {piece.port} was captured"
        return None

    def _report(self) -> int | None:
        """tcpdump's cumulative drops, reported now (SIGUSR1): a fresh report counts more packets
        captured than any before it, since at least the last end marker and its filler came in
        between (a slice that ended before the last report was asked for uses that one instead)."""
        with self._lock:
            before = self._captured

            def reported() -> tuple[int, int] | None:
                for line in reversed(self.process.output()):
                    found = STATS.search(line)
                    if found:
                        captured, dropped = int(found.group(1)), int(found.group(3))
                        return (captured, dropped) if captured > before else None
                return None

            asked = time.monotonic()
            self.process.signal(signal.SIGUSR1)
            try:
                counts = until(reported, timeout=STATS_TIMEOUT, what="tcpdump's statistics", interval=(0.0005, 0.02))
            except WaitTimeoutError:
                return None
            assert counts is not None  # until returns only a true value
            self._captured, self._dropped = counts
            self._covers = asked
            return self._dropped

    def close(self) -> None:
        """Stop tcpdump and remove its file."""
        try:
            if self.process.poll() is None:
                self.process.signal(signal.SIGINT)
                if self.process.wait(5.0) is None:
                    self.process.kill()
        finally:
            self._cleanup()
