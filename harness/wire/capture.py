"""A test's packet capture, and the tcpdump command line that makes it.

A host runs one tcpdump for the whole session (harness/wire/session.py); a test's ``Capture`` is its
slice of that: the records of its port between two markers, as a pcap of its own, parsed and judged
by harness/wire/, kept for Wireshark when the test fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.wire.pcap import Segment, read_pcap
from harness.wire.table import packet_table
from harness.wire.tcp import Connection, connections

READY_TIMEOUT = 10.0
MARK_PORT = 9  # discard: the markers' datagrams go there and nowhere else
MARK_TIMEOUT = 3.0
MARK_PREFIX = b"echolab-capture-mark-"
#: A marker sent by a host without the agent: ``python3 -c MARK_SCRIPT ADDRESS TOKEN``.
MARK_SCRIPT = (
    "import socket, sys; s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET, "
    f"socket.SOCK_DGRAM); s.sendto(sys.argv[2].encode(), (sys.argv[1], {MARK_PORT}))"
)


#: Kernel ring per tcpdump, KiB. In immediate mode libpcap's ring has one slot per snapshot length,
#: and a 65,600-byte slot takes a 128 KiB block: this is 2,045 slots in 256 MiB of kernel memory.
#: Measured with a correct server that writes its 1 MiB echo one byte per send() (30,000-140,000
#: segments), each worker's tcpdump running for the whole session: 32 MiB lost packets beside two
#: busy loops and a second suite; 64 MiB and 128 MiB lost none there, nor 128 MiB beside two busy
#: loops and two more suites (3 runs). Setting the ring up costs the kernel 40 ms when its pages
#: were freed a moment before and 0.3-0.4 s when not (twice that at 256 MiB, the size before).
RING_KIB = 131072
#: On a Raspberry Pi (1-8 GB) the ring stays at 32 MiB: its link cannot produce loopback's rates.
SMALL_RING_KIB = 32768


def tcpdump_argv(interface: str, tcp: str, path: str, as_root: bool = True, ring_kib: int = RING_KIB) -> list[str]:
    """tcpdump writing every TCP packet that the filter ``tcp`` selects, and every marker, to ``path``
    as it arrives.

    -U with --immediate-mode: each packet is written at once, so SIGINT loses nothing (without
    --immediate-mode, TPACKET_V3 holds packets in a ring block that tcpdump never drains).
    -s/-B: in immediate mode libpcap uses a TPACKET_V2 ring with one slot per snapshot length;
    a 64 KiB snaplen holds loopback's 64 KiB segments whole, and the ring must hold a burst of
    small segments while tcpdump is not scheduled (RING_KIB).
    -Z root: Debian's tcpdump started as root otherwise drops to the tcpdump user before opening
    the file, and cannot write into a private temp directory.
    """
    argv = ["tcpdump", "-i", interface, "-n", "-s", "65600", "-B", str(ring_kib), "-U", "--immediate-mode", "-w", path]
    return [*argv, *(["-Z", "root"] if as_root else []), f"({tcp}) or udp port {MARK_PORT}"]


class Capture:
    """One port's packets during one test: ``finish`` returns its pcap (once), ``losses`` says
    what the capture may have missed (asked only of a capture that was judged)."""

    def __init__(self, port: int, finish: Callable[[], bytes], losses: Callable[[], str | None]) -> None:
        self.port = port
        self._finish = finish
        self._losses = losses
        self._pcap: bytes | None = None
        self._loss: str | None = None
        self._asked = False
        self._segments: list[Segment] | None = None
        self.saved: Path | None = None
        #: A wire check was judged on it: its losses, if any, must be looked at before a pass.
        self.judged = False

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
