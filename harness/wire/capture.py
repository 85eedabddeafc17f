"""A test's packet capture, and the tcpdump command line that makes it.

A host runs one tcpdump for the whole session (harness/wire/session.py); a test's ``Capture`` is its
slice of that: the records of its port between two markers, as a pcap of its own, parsed and judged
by harness/wire/, kept for Wireshark when the test fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.remote import marker
from harness.wire.pcap import Segment, read_pcap
from harness.wire.table import packet_table
from harness.wire.tcp import Connection, connections

READY_TIMEOUT = 10.0
MARK_PORT = marker.DISCARD  # the markers' datagrams go there and nowhere else
MARK_TIMEOUT = 3.0
MARK_PREFIX = b"echolab-capture-mark-"
#: A marker sent by a host without the agent: ``python3 -c MARK_SCRIPT ADDRESS TOKEN [flush]``
#: (harness/remote/marker.py's ``send``, through loopback).
MARK_SCRIPT = (
    "import socket, sys; a = sys.argv[1]; s = socket.socket(socket.AF_INET6 if ':' in a else socket.AF_INET, "
    f"socket.SOCK_DGRAM); s.sendto(sys.argv[2].encode(), (a, {MARK_PORT})); "
    f"[s.sendto(bytes({marker.FILL[1]}), (a, {MARK_PORT})) for _ in range({marker.FILL[0]} if sys.argv[3:] else 0)]"
)


#: Kernel ring per tcpdump, KiB: a TPACKET_V3 ring of 256 blocks of 128 KiB, each block packed with
#: as many packets as fit, so it holds some 250,000 small segments or 256 of loopback's 64 KiB ones.
#: With --immediate-mode libpcap uses a TPACKET_V2 ring instead, one 128 KiB block per packet
#: whatever its size: it took 256 MiB of kernel memory to hold 2,045 packets, and that ring's set-up
#: cost the kernel 0.3-0.7 s per tcpdump when its pages had not just been freed (measured here).
RING_KIB = 32768


def tcpdump_argv(interface: str, tcp: str, path: str, as_root: bool = True) -> list[str]:
    """tcpdump writing every TCP packet that the filter ``tcp`` selects, and every marker, to ``path``.

    Without --immediate-mode, libpcap reads a TPACKET_V3 ring (RING_KIB): the kernel hands tcpdump
    a block of packets when it is full or a second after it was opened; -U then writes each packet
    of it at once. A marker that must be in the file now is followed by a block's worth of filler
    (harness/remote/marker.py), so waiting for it costs a millisecond, not a second.
    -s: a 64 KiB snapshot holds loopback's 64 KiB segments whole.
    -Z root: Debian's tcpdump started as root otherwise drops to the tcpdump user before opening
    the file, and cannot write into a private temp directory.
    """
    argv = ["tcpdump", "-i", interface, "-n", "-s", "65600", "-B", str(RING_KIB), "-U", "-w", path]
    return [*argv, *(["-Z", "root"] if as_root else []), f"({tcp}) or udp port {MARK_PORT}"]


class Capture:
    """One port's packets during one test: ``finish`` returns its pcap (once), ``losses`` says
    what the capture may have missed (asked only of a capture that was judged)."""

    def __init__(
        self,
        port: int,
        finish: Callable[[], bytes],
        losses: Callable[[], str | None],
        headers_only: Callable[[], None] = lambda: None,
    ) -> None:
        self.port = port
        self._finish = finish
        self._losses = losses
        self._headers_only = headers_only
        self._pcap: bytes | None = None
        self._loss: str | None = None
        self._asked = False
        self._segments: list[Segment] | None = None
        self.saved: Path | None = None
        #: A wire check was judged on it: its losses, if any, must be looked at before a pass.
        self.judged = False

    def headers_only(self) -> None:
        """Its test judges the segments' headers, never their payload (a reset): the records of a
        large segment may be read cut to their headers (harness/wire/session.py's SNAP), so a probe
        that moves megabytes costs no more to capture than one that moves none. Each segment keeps
        its length on the wire (Segment.length)."""
        self._headers_only()

    def stop(self) -> bytes:
        """The pcap, complete up to now; idempotent."""
        if self._pcap is None:
            self._pcap = self._finish()
        return self._pcap

    def loss(self) -> str | None:
        """What this capture may lack (packets tcpdump dropped, a missing end marker); None if nothing."""
        self.stop()
        if not self._asked:
            self._loss = self._losses()
            self._asked = True
        return self._loss

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
