"""TCP on the wire: read a pcap (dpkt), split it into connections, judge them, print Wireshark's way.

Pure analysis: no capture, no sockets. The judgements rest on sequence arithmetic, not on exact
packet shapes, because kernels legitimately differ (TCP-FACTS): an ACK may ride on data instead of
going alone, PSH may be set or not, a teardown takes 3 or 4 segments, options vary.
"""

from __future__ import annotations

import io
import socket
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dpkt
import dpkt.sll
import dpkt.sll2

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = (1 << bit for bit in range(8))
# Wireshark names the flags from the lowest bit up: [SYN, ACK], [PSH, ACK], [FIN, ACK], [RST, ACK].
FLAG_NAMES = tuple(
    zip((FIN, SYN, RST, PSH, ACK, URG, ECE, CWR), ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"))
)
SEQ_SPACE = 1 << 32

Endpoint = tuple[str, int]


@dataclass(frozen=True)
class Segment:
    """One TCP segment as captured: frame number from 1, seconds since the first frame."""

    no: int
    time: float
    src: Endpoint
    dst: Endpoint
    flags: int
    seq: int
    ack: int
    win: int
    frame_len: int
    payload: bytes
    options: tuple[tuple[int, bytes], ...] = ()

    def has(self, flags: int) -> bool:
        return self.flags & flags == flags

    @property
    def flag_names(self) -> str:
        return ", ".join(name for bit, name in FLAG_NAMES if self.flags & bit)

    @property
    def seq_len(self) -> int:
        """Sequence space consumed: the payload, plus one each for SYN and FIN."""
        return len(self.payload) + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)


def read_pcap(source: str | Path | bytes) -> list[Segment]:
    """Every TCP segment in a pcap written by tcpdump: Ethernet, Linux cooked (SLL, SLL2) or raw IP."""
    segments: list[Segment] = []
    with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as handle:
        reader = dpkt.pcap.Reader(handle)
        decode = _decoder(reader.datalink())
        first: float | None = None
        for number, (stamp, frame) in enumerate(reader, start=1):
            ip = _ip(decode(frame))
            if ip is None or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            first = stamp if first is None else first
            family = socket.AF_INET6 if isinstance(ip, dpkt.ip6.IP6) else socket.AF_INET
            segments.append(
                Segment(
                    no=number,
                    time=stamp - first,
                    src=(socket.inet_ntop(family, ip.src), tcp.sport),
                    dst=(socket.inet_ntop(family, ip.dst), tcp.dport),
                    flags=tcp.flags,
                    seq=tcp.seq,
                    ack=tcp.ack,
                    win=tcp.win,
                    frame_len=len(frame),
                    payload=bytes(tcp.data),
                    options=tuple((kind, bytes(data)) for kind, data in dpkt.tcp.parse_opts(tcp.opts)),
                )
            )
    return segments


def _decoder(datalink: int) -> Callable[[bytes], Any]:
    kinds: dict[int, Callable[[bytes], Any]] = {
        dpkt.pcap.DLT_EN10MB: dpkt.ethernet.Ethernet,
        dpkt.pcap.DLT_LINUX_SLL: dpkt.sll.SLL,
        dpkt.pcap.DLT_LINUX_SLL2: dpkt.sll2.SLL2,
        dpkt.pcap.DLT_RAW: _raw_ip,
        12: _raw_ip,  # DLT_RAW as OpenBSD numbers it, which libpcap writes on some systems
    }
    if datalink not in kinds:
        raise ValueError(f"unsupported pcap link type {datalink}")
    return kinds[datalink]


def _raw_ip(frame: bytes) -> Any:
    return dpkt.ip6.IP6(frame) if frame and frame[0] >> 4 == 6 else dpkt.ip.IP(frame)


def _ip(packet: Any) -> Any:
    while packet is not None and not isinstance(packet, (dpkt.ip.IP, dpkt.ip6.IP6)):
        packet = getattr(packet, "data", None)
        if isinstance(packet, bytes):
            return None
    return packet


@dataclass
class Connection:
    """One TCP connection (one 4-tuple, one client ISN), seen from the capture."""

    client: Endpoint
    server: Endpoint
    segments: list[Segment] = field(default_factory=list)

    def from_client(self, seg: Segment) -> bool:
        return seg.src == self.client

    @property
    def client_isn(self) -> int | None:
        syns = [s for s in self.segments if self.from_client(s) and s.flags & SYN]
        return syns[0].seq if syns else None

    @property
    def server_isn(self) -> int | None:
        synacks = [s for s in self.segments if not self.from_client(s) and s.has(SYN | ACK)]
        return synacks[0].seq if synacks else None

    def relative(self, seg: Segment) -> tuple[int, int]:
        """(seq, ack) relative to each side's ISN, as Wireshark shows them."""
        own, peer = (self.client_isn, self.server_isn) if self.from_client(seg) else (self.server_isn, self.client_isn)
        seq = (seg.seq - own) % SEQ_SPACE if own is not None else seg.seq
        ack = (seg.ack - peer) % SEQ_SPACE if peer is not None else seg.ack
        return seq, ack

    def stream(self, from_client: bool) -> bytes:
        """The bytes one side sent, reassembled by sequence number (retransmissions counted once)."""
        isn = self.client_isn if from_client else self.server_isn
        if isn is None:
            return b""
        data = bytearray()
        for seg in self.segments:
            if self.from_client(seg) != from_client or not seg.payload:
                continue
            offset = (seg.seq - isn - 1) % SEQ_SPACE
            if offset > len(data):
                data.extend(b"\0" * (offset - len(data)))  # a gap: shown as a mismatch, not hidden
            data[offset : offset + len(seg.payload)] = seg.payload
        return bytes(data)

    def table(self) -> str:
        return packet_table(self.segments, self.server[1])


def connections(segments: Iterable[Segment], server_port: int) -> list[Connection]:
    """Split segments to or from ``server_port`` into connections, in order of their first segment.

    A new SYN with another ISN on a 4-tuple already seen starts a new connection (port reuse).
    """
    found: list[Connection] = []
    current: dict[tuple[Endpoint, Endpoint], Connection] = {}
    for seg in segments:
        if seg.dst[1] == server_port:
            client, server = seg.src, seg.dst
        elif seg.src[1] == server_port:
            client, server = seg.dst, seg.src
        else:
            continue
        key = (client, server)
        conn = current.get(key)
        fresh_syn = seg.src == client and seg.flags & SYN and not seg.flags & ACK
        if conn is None or (fresh_syn and conn.client_isn not in (None, seg.seq)):
            conn = Connection(client=client, server=server)
            current[key] = conn
            found.append(conn)
        conn.segments.append(seg)
    return found


def handshake_problem(conn: Connection) -> str | None:
    """SYN from the client; SYN/ACK acknowledging its ISN + 1; the client's ACK of the server's ISN + 1."""
    segs = conn.segments
    if len(segs) < 3:
        return f"expected a three-way handshake, the capture holds {len(segs)} segment(s) of this connection"
    syn, synack, third = segs[0], segs[1], segs[2]
    if not (conn.from_client(syn) and syn.flags & (SYN | ACK | RST) == SYN):
        return f"the connection does not start with the client's SYN (frame {syn.no}: [{syn.flag_names}])"
    if conn.from_client(synack) or not synack.has(SYN | ACK):
        return f"the SYN (frame {syn.no}) is not answered by a SYN/ACK (frame {synack.no}: [{synack.flag_names}])"
    if synack.ack != (syn.seq + 1) % SEQ_SPACE:
        return f"the SYN/ACK (frame {synack.no}) acknowledges {synack.ack}, not the client's ISN + 1 = {syn.seq + 1}"
    if not conn.from_client(third) or not third.flags & ACK or third.flags & (SYN | RST):
        return f"the handshake's third segment (frame {third.no}) is not the client's ACK: [{third.flag_names}]"
    if third.ack != (synack.seq + 1) % SEQ_SPACE:
        return f"the client's ACK (frame {third.no}) acknowledges {third.ack}, not the server's ISN + 1"
    return None


def data_problem(conn: Connection, sent: bytes, echoed: bytes) -> str | None:
    """Each side's segments concatenate to exactly what it sent, and every segment is acknowledged."""
    for from_client, expected, who in ((True, sent, "client"), (False, echoed, "server")):
        got = conn.stream(from_client)
        if got != expected:
            return (
                f"the {who}'s data segments carry {len(got)} bytes, not the {len(expected)} it sent"
                f"{'' if len(got) != len(expected) else ' (same length, other bytes)'}"
            )
        peer_acks = [s.ack for s in conn.segments if conn.from_client(s) != from_client and s.flags & ACK]
        for seg in conn.segments:
            if conn.from_client(seg) != from_client or not seg.payload:
                continue
            end = (seg.seq + len(seg.payload)) % SEQ_SPACE
            if not any(_covers(ack, end) for ack in peer_acks):
                seq, _ = conn.relative(seg)
                return f"the {who}'s data in frame {seg.no} (Seq={seq} Len={len(seg.payload)}) is never acknowledged"
    return None


def teardown_problem(conn: Connection) -> str | None:
    """An orderly close: a FIN from each side, each acknowledged (FIN takes one sequence number), no RST."""
    resets = [s for s in conn.segments if s.flags & RST]
    if resets:
        who = "client" if conn.from_client(resets[0]) else "server"
        return f"the {who} reset the connection (frame {resets[0].no}: [{resets[0].flag_names}]) instead of a FIN"
    for from_client, who in ((True, "client"), (False, "server")):
        fins = [s for s in conn.segments if conn.from_client(s) == from_client and s.flags & FIN]
        if not fins:
            return f"no FIN from the {who}"
        data_end = (fins[0].seq + len(fins[0].payload)) % SEQ_SPACE
        isn = conn.client_isn if from_client else conn.server_isn
        sent = len(conn.stream(from_client))
        if isn is not None and data_end != (isn + 1 + sent) % SEQ_SPACE:
            return f"the {who}'s FIN (frame {fins[0].no}) is not behind all {sent} bytes it sent"
        fin_end = (fins[0].seq + fins[0].seq_len) % SEQ_SPACE
        acks = [s for s in conn.segments if conn.from_client(s) != from_client and s.flags & ACK]
        if not any(_covers(s.ack, fin_end) for s in acks):
            return f"the {who}'s FIN (frame {fins[0].no}) is never acknowledged (ack = its seq + 1)"
    return None


def reset_problem(conn: Connection, by_client: bool) -> str | None:
    """A reset is due from one side (SO_LINGER {1, 0}, or close with unread data: RFC 2525 2.17)."""
    who = "client" if by_client else "server"
    if any(s.flags & RST and conn.from_client(s) == by_client for s in conn.segments):
        return None
    return f"expected a RST from the {who}; there is none"


def refused_problem(conn: Connection) -> str | None:
    """Nothing listening: the client's SYN is answered by RST/ACK acknowledging ISN + 1."""
    syn = next((s for s in conn.segments if conn.from_client(s) and s.flags & SYN), None)
    if syn is None:
        return "no SYN from the client in the capture"
    answers = [s for s in conn.segments if not conn.from_client(s)]
    if not answers:
        return f"the SYN (frame {syn.no}) got no answer at all"
    first = answers[0]
    if not first.has(RST | ACK) or first.ack != (syn.seq + 1) % SEQ_SPACE:
        return (
            f"the SYN (frame {syn.no}) is answered by [{first.flag_names}] (frame {first.no}), not RST/ACK for ISN + 1"
        )
    return None


def dropped_syn_problem(conn: Connection, retransmitted: bool = True) -> str | None:
    """Accept queue full: the SYN is dropped silently: never answered, and (given a second or so)
    retransmitted with the same ISN."""
    syns = [s for s in conn.segments if conn.from_client(s) and s.flags & SYN]
    answers = [s for s in conn.segments if not conn.from_client(s)]
    if answers:
        return f"the server answered a SYN it should have dropped: frame {answers[0].no} [{answers[0].flag_names}]"
    if not syns:
        return "no SYN from the client in the capture"
    if not retransmitted:
        return None
    if len(syns) < 2:
        return f"expected the same SYN retransmitted, saw {len(syns)} SYN(s)"
    if len({s.seq for s in syns}) != 1:
        return "the retransmitted SYNs carry different ISNs"
    return None


def _covers(ack: int, end: int) -> bool:
    """Whether cumulative ``ack`` is at or past ``end`` in sequence space (RFC 1982 comparison)."""
    return (ack - end) % SEQ_SPACE < SEQ_SPACE // 2


def _options_text(seg: Segment) -> str:
    parts = []
    for kind, data in seg.options:
        if kind == dpkt.tcp.TCP_OPT_MSS and len(data) == 2:
            parts.append(f"MSS={struct.unpack('!H', data)[0]}")
        elif kind == dpkt.tcp.TCP_OPT_SACKOK:
            parts.append("SACK_PERM")
        elif kind == dpkt.tcp.TCP_OPT_TIMESTAMP and len(data) == 8:
            tsval, tsecr = struct.unpack("!II", data)
            parts.append(f"TSval={tsval} TSecr={tsecr}")
        elif kind == dpkt.tcp.TCP_OPT_WSCALE and len(data) == 1:
            parts.append(f"WS={1 << data[0]}")
    return " ".join(parts)


def _window_scale(seg: Segment) -> int:
    for kind, data in seg.options:
        if kind == dpkt.tcp.TCP_OPT_WSCALE and len(data) == 1:
            return 1 << data[0]
    return 1


def packet_table(segments: Sequence[Segment], server_port: int | None = None) -> str:
    """The capture as Wireshark's packet list: No., Time, Source, Destination, Protocol, Length, Info,
    with sequence numbers relative to each connection's ISNs and the calculated (scaled) window."""
    owner: dict[int, Connection] = {}
    if server_port is not None:
        for each in connections(segments, server_port):
            owner.update((id(seg), each) for seg in each.segments)
    scale: dict[Endpoint, int] = {}
    rows = [("No.", "Time", "Source", "Destination", "Protocol", "Length", "Info")]
    for seg in segments:
        conn = owner.get(id(seg))
        seq, ack = conn.relative(seg) if conn else (seg.seq, seg.ack)
        if seg.flags & SYN:
            scale[seg.src] = _window_scale(seg)
            win = seg.win
        else:
            win = seg.win * scale.get(seg.src, 1)
        info = f"{seg.src[1]} \u2192 {seg.dst[1]} [{seg.flag_names}] Seq={seq}"
        if seg.flags & ACK:
            info += f" Ack={ack}"
        info += f" Win={win} Len={len(seg.payload)} {_options_text(seg)}"
        rows.append((str(seg.no), f"{seg.time:.6f}", seg.src[0], seg.dst[0], "TCP", str(seg.frame_len), info))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:6])) + "  " + row[6] for row in rows]
    return "\n".join(line.rstrip() for line in lines)


@dataclass(frozen=True)
class Step:
    """One segment of a reference exchange: who sends it, its flags, its payload length."""

    label: str
    from_client: bool
    flags: int
    length: int = 0
    optional: bool = False  # an ACK that may ride on the next segment instead of going alone

    def matches(self, conn: Connection, seg: Segment) -> bool:
        special = SYN | FIN | RST
        return (
            conn.from_client(seg) == self.from_client
            and seg.has(self.flags)
            and seg.flags & special == self.flags & special
            and len(seg.payload) == self.length
        )


def lab_ladder(message_len: int) -> list[Step]:
    """The lab's Wireshark capture of "connect, send Hello, echo, close": packets 11-13, 18-21 and
    26-28, with the variations kernels may legitimately show marked optional (TCP-FACTS)."""
    return [
        Step("11 SYN", True, SYN),
        Step("12 SYN, ACK", False, SYN | ACK),
        Step("13 ACK", True, ACK),
        Step(f"18 PSH, ACK Len={message_len}", True, ACK, message_len),
        Step("19 ACK", False, ACK, optional=True),
        Step(f"20 PSH, ACK Len={message_len}", False, ACK, message_len),
        Step("21 ACK", True, ACK, optional=True),
        Step("26 FIN, ACK", True, FIN | ACK),
        Step("-- ACK (4-segment teardown)", False, ACK, optional=True),
        Step("27 FIN, ACK", False, FIN | ACK),
        Step("28 ACK", True, ACK),
    ]


def ladder_problem(conn: Connection, ladder: Sequence[Step]) -> tuple[str | None, str]:
    """Match the connection segment by segment against ``ladder``: (problem or None, the pairing)."""
    pairs: list[str] = []
    segs = list(conn.segments)
    i = 0
    problem: str | None = None
    for step in ladder:
        seg = segs[i] if i < len(segs) else None
        if seg is not None and step.matches(conn, seg):
            pairs.append(f"{step.label:<30} frame {seg.no}: [{seg.flag_names}] Len={len(seg.payload)}")
            i += 1
        elif step.optional:
            pairs.append(f"{step.label:<30} (not sent alone: acknowledged by the next segment)")
        else:
            got = f"frame {seg.no}: [{seg.flag_names}] Len={len(seg.payload)}" if seg else "the end of the capture"
            problem = f"lab packet {step.label} expected, got {got}"
            break
    if problem is None and i < len(segs):
        problem = f"{len(segs) - i} segment(s) more than the lab's exchange, from frame {segs[i].no}"
    return problem, "\n".join(pairs)
