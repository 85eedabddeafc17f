"""A slice's end marker comes after everything tcpdump captured before it: after a probe that moved
20 MB, a Pi's tcpdump may write for seconds before the marker. The wait lasts while the file grows
and gives up only once it has stood still for MARK_TIMEOUT (a stalled tcpdump, a marker lost for
good); the marker is sent again when the file stands still. Pinned with a stand-in for tcpdump's
file, written by a thread, so the timings are the test's own."""

from __future__ import annotations

import io
import threading
import time

import dpkt

from harness.wire.capture import MARK_TIMEOUT
from harness.wire.session import SessionCapture
from tests.unit.test_headers_only import segment


class Writer:
    """tcpdump's file: a backlog of records written over ``backlog`` seconds, then the markers
    sent so far (a marker sent while the backlog is written comes after it), unless ``lose``."""

    def __init__(self, backlog: float, lose: bool = False) -> None:
        out = io.BytesIO()
        self.pcap = dpkt.pcap.Writer(out, linktype=101)
        self.out = out
        self.lock = threading.Lock()
        self.marks: list[bytes] = []
        self.lose = lose
        self.done = threading.Event()
        threading.Thread(target=self._write, args=(backlog,), daemon=True).start()

    def _write(self, backlog: float) -> None:
        end = time.monotonic() + backlog
        while time.monotonic() < end and not self.done.is_set():
            with self.lock:
                self.pcap.writepkt(segment(b"b" * 1000), ts=time.time())
            time.sleep(0.05)
        while not self.done.is_set():
            with self.lock:
                for token in self.marks if not self.lose else []:
                    self.pcap.writepkt(token, ts=time.time())  # small: read as a marker wherever it is
                self.marks.clear()
            time.sleep(0.01)

    def mark(self, token: bytes, flush: bool) -> None:
        with self.lock:
            self.marks.append(token)
            self.sent = getattr(self, "sent", 0) + 1

    def fetch(self, offset: int, snap: int | None) -> tuple[bytes, int]:
        with self.lock:
            data = self.out.getvalue()[offset:]
        return data, len(data)


class Alive:
    """A tcpdump that runs and, on SIGUSR1, reports more packets captured each time, none dropped."""

    def __init__(self) -> None:
        self.reports = 0

    def poll(self) -> int | None:
        return None

    def signal(self, signum: int) -> None:
        self.reports += 1

    def output(self) -> list[str]:
        n = self.reports
        return [f"{n} packets captured, {n} packets received by filter, 0 packets dropped by kernel"]


def session(writer: Writer) -> SessionCapture:
    return SessionCapture("stand-in", Alive(), writer.fetch, writer.mark, lambda: None)  # type: ignore[arg-type]


def test_an_end_marker_behind_a_long_backlog_is_waited_for() -> None:
    writer = Writer(backlog=MARK_TIMEOUT + 1.5)
    capture = session(writer).open(8888)
    time.sleep(0.1)  # the start marker is read with the first records
    started = time.monotonic()
    capture.stop()
    waited = time.monotonic() - started
    writer.done.set()
    assert capture.loss() is None, capture.loss()
    assert waited > MARK_TIMEOUT, f"the marker came {waited:.1f} s later, after the backlog"


def test_a_file_that_stands_still_without_the_marker_ends_the_wait() -> None:
    writer = Writer(backlog=0.2, lose=True)
    capture = session(writer).open(8888)
    started = time.monotonic()
    capture.stop()
    waited = time.monotonic() - started
    writer.done.set()
    assert "incomplete" in (capture.loss() or ""), capture.loss()
    assert MARK_TIMEOUT <= waited < MARK_TIMEOUT + 2.0, f"gave up after {waited:.1f} s"
    assert writer.sent > 3, "the end marker is sent again while the file stands still"
