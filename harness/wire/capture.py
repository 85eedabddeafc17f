"""Real tcpdump around a test: started before its traffic, stopped so the file is complete.

A host starts tcpdump its own way (a local process, a sidecar container sharing the server's
network namespace, sudo on a Pi); what follows is shared: wait for "listening on", stop with
SIGINT, fetch the file, parse it (harness/wire/).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import CaptureUnavailableError
from harness.process import Process
from harness.wait import WaitTimeoutError, until
from harness.wire.pcap import Segment, read_pcap
from harness.wire.table import packet_table
from harness.wire.tcp import Connection, connections

READY_TIMEOUT = 10.0
MARK_PORT = 9  # discard: the flush marker's datagrams go there and nowhere else
MARK_TIMEOUT = 3.0


#: Kernel ring per tcpdump, KiB. In immediate mode libpcap's ring has one slot per snapshot length
#: (64 KiB), so this is 4,096 slots. Measured with a correct server that writes its 1 MiB echo one
#: byte per send() (30,000-140,000 segments): 32 MiB lost 100-2,900 packets on a quiet machine;
#: 128 MiB lost none there but 8,694 in one of three runs beside two busy loops; 256 MiB lost none
#: in nine runs beside two and three busy loops. Pinned kernel memory, only while a test captures.
RING_KIB = 262144
#: On a Raspberry Pi (1-8 GB) the ring stays at 32 MiB: its link cannot produce loopback's rates.
SMALL_RING_KIB = 32768


def tcpdump_argv(interface: str, port: int, path: str, as_root: bool = True, ring_kib: int = RING_KIB) -> list[str]:
    """tcpdump writing every packet on ``port`` to ``path`` as it arrives.

    -U with --immediate-mode: each packet is written at once, so SIGINT loses nothing (without
    --immediate-mode, TPACKET_V3 holds packets in a ring block that tcpdump never drains).
    -s/-B: in immediate mode libpcap uses a TPACKET_V2 ring with one slot per snapshot length;
    a 64 KiB snaplen holds loopback's 64 KiB segments whole, and the ring must hold a burst of
    small segments while tcpdump is not scheduled (RING_KIB).
    -Z root: Debian's tcpdump started as root otherwise drops to the tcpdump user before opening
    the file, and cannot write into a private temp directory.
    """
    argv = ["tcpdump", "-i", interface, "-n", "-s", "65600", "-B", str(ring_kib), "-U", "--immediate-mode", "-w", path]
    return [*argv, *(["-Z", "root"] if as_root else []), f"tcp port {port} or udp port {MARK_PORT}"]


class Capture:
    """One tcpdump for one server port; ``stop()`` is idempotent and returns the pcap bytes."""

    def __init__(
        self,
        process: Process,
        port: int,
        fetch: Callable[[], bytes],
        cleanup: Callable[[], None],
        mark_to: str | None = None,
    ) -> None:
        self.process = process
        self.port = port
        self._fetch = fetch
        self._cleanup = cleanup
        self._mark_to = mark_to
        self._pcap: bytes | None = None
        self._segments: list[Segment] | None = None
        self.saved: Path | None = None
        #: A wire check was judged on it: its losses, if any, must be looked at before a pass.
        self.judged = False

    @classmethod
    def start(
        cls,
        process: Process,
        port: int,
        fetch: Callable[[], bytes],
        cleanup: Callable[[], None],
        mark_to: str | None = None,
    ) -> Capture:
        """Wait until tcpdump reports it is listening; traffic before that would be missed.

        ``mark_to`` is the captured host's address as this machine reaches it: ``stop`` sends a
        marker datagram there and waits for it in the file before stopping tcpdump (see flush).
        """
        capture = cls(process, port, fetch, cleanup, mark_to)

        def listening() -> bool:
            if process.poll() is not None:
                return True
            return any("listening on" in line for line in process.output())

        with contextlib.suppress(WaitTimeoutError):  # judged just below, with tcpdump's own words
            # Reading its output is cheap; every ms here is per test.
            until(listening, timeout=READY_TIMEOUT, what="tcpdump listening", interval=0.005)
        if process.poll() is not None or not any("listening on" in line for line in process.output()):
            said = " | ".join(process.output()[-3:]) or "nothing"
            process.kill()
            cleanup()
            raise CaptureUnavailableError(f"tcpdump did not start capturing ({process.describe_status()}): {said}")
        return capture

    def flush(self) -> bytes | None:
        """The file once tcpdump has written everything captured so far; None if that cannot be told.

        tcpdump stops at SIGINT without reading what is still queued in its kernel ring, so a busy
        machine can lose a connection's last packets. A UDP datagram sent to the captured host now
        is queued behind them; once the file holds it, they are all in the file too, and the file is
        cut right after it (the datagram's payload ends its record), whatever tcpdump writes later.
        """
        if self._mark_to is None:
            return None
        token = b"echolab-capture-mark-" + secrets.token_hex(8).encode()
        family = socket.AF_INET6 if ":" in self._mark_to else socket.AF_INET
        mark_to = self._mark_to
        sent = [0.0]

        def flushed() -> bytes | None:
            if time.monotonic() - sent[0] > 0.25:  # again: a datagram may be lost on a real network
                with contextlib.suppress(OSError):  # ICMP unreachable from an earlier mark, say
                    sock.sendto(token, (mark_to, MARK_PORT))
                sent[0] = time.monotonic()
            content = self._fetch()
            end = content.find(token)
            return content[: end + len(token)] if end >= 0 else None

        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            try:  # polling a file another process appends to
                return until(flushed, timeout=MARK_TIMEOUT, what="the capture's flush marker", interval=0.005)
            except WaitTimeoutError:
                return None

    def stop(self) -> bytes:
        """The pcap. With a flush marker in the file, tcpdump is told to stop but not waited for:
        everything of interest is already read (its exit, some 30 ms, would cost every test)."""
        if self._pcap is None:
            flushed = self.flush() if self.process.poll() is None else None
            self.process.signal(signal.SIGINT)
            try:
                if flushed is not None:
                    self._pcap = flushed
                else:
                    if self.process.wait(10.0) is None:
                        self.process.kill()
                    self._pcap = self._fetch()
            finally:
                self._cleanup()
        return self._pcap

    @property
    def dropped(self) -> int:
        """Packets the kernel dropped before tcpdump read them, from its closing statistics (this
        waits for tcpdump to exit: ask only when a wire check failed)."""
        self.stop()
        if self.process.wait(10.0) is None:
            self.process.kill()
        for line in self.process.output():
            match = re.match(r"(\d+) packets? dropped by kernel", line)
            if match:
                return int(match.group(1))
        return 0

    def segments(self) -> list[Segment]:
        if self._segments is None:
            self._segments = read_pcap(self.stop())
        return self._segments

    def connections(self) -> list[Connection]:
        return connections(self.segments(), self.port)

    def connection(self, client_port: int) -> Connection | None:
        """The connection the client made from ``client_port`` (the last one, if the port was reused)."""
        found = [conn for conn in self.connections() if conn.client[1] == client_port]
        return found[-1] if found else None

    def table(self) -> str:
        return packet_table(self.segments(), self.port)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.stop())
        self.saved = path
        return path


@dataclass(frozen=True)
class NoCapture:
    """A capture that could not be made for one server: that test's wire checks are not judged."""

    port: int
    reason: str
