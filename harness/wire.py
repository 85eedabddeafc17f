"""TCP on the wire: read a pcap (dpkt), split it into connections, judge them, print Wireshark's way.

Pure analysis: no capture, no sockets. The judgements rest on sequence arithmetic, not on exact
packet shapes, because kernels legitimately differ (TCP-FACTS): an ACK may ride on data instead of
going alone, PSH may be set or not, a teardown takes 3 or 4 segments, options vary.

Every pass is linear in the number of segments: a 1 MiB echo in one-byte segments is judged and
printed in about the time a 1 MiB echo in 64 KiB segments is.
"""

from __future__ import annotations

import io
import socket
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = (1 << bit for bit in range(8))
# Wireshark names the flags from the lowest bit up: [SYN, ACK], [PSH, ACK], [FIN, ACK], [RST, ACK].
FLAG_NAMES = tuple(
    zip((FIN, SYN, RST, PSH, ACK, URG, ECE, CWR), ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"))
)
SEQ_SPACE = 1 << 32
HALF_SPACE = SEQ_SPACE // 2

#: A packet table longer than this many rows (about a screen) is folded; the pcap keeps every packet.
FOLD_ROWS = 60
#: Data-carrying rows a folded table keeps at each end of a connection's data.
FOLD_KEEP = 4

RETRANSMISSION = "[TCP Retransmission] "
DUP_ACK = "[TCP Dup ACK] "

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


# Headers are decoded with struct.unpack_from rather than dpkt's Ethernet/IP/TCP objects: 200,000
# packets take 3.6 s through dpkt's objects, 1.7 s this way (dpkt still reads the pcap records).
_TCP_HEADER = struct.Struct("!HHIIBBH")
_ETHERTYPE_IPV4, _ETHERTYPE_IPV6 = 0x0800, 0x86DD
_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)  # 802.1Q, 802.1ad and the older QinQ tag
_IPPROTO_TCP = 6
# IPv6 extension headers that may sit between the fixed header and TCP (RFC 8200 4.1).
_IPV6_HOP_BY_HOP, _IPV6_ROUTING, _IPV6_FRAGMENT, _IPV6_AH, _IPV6_DEST_OPTS = 0, 43, 44, 51, 60
# Raw IP: LINKTYPE_RAW (101) in files libpcap writes; DLT_RAW (12, or 14 on OpenBSD) in files some
# writers (dpkt among them) fill with the in-memory number; LINKTYPE_IPV4/IPV6 (228, 229).
_RAW_IP_LINK_TYPES = (101, 12, 14, 228, 229)


def read_pcap(source: str | Path | bytes) -> list[Segment]:
    """Every TCP segment in a pcap written by tcpdump: Ethernet, Linux cooked (SLL, SLL2) or raw IP,
    over IPv4 or IPv6. Frames that are not TCP, or too short to hold its header, are skipped."""
    segments: list[Segment] = []
    names: dict[bytes, str] = {}
    with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as handle:
        reader = dpkt.pcap.Reader(handle)
        ip_offset = _link_decoder(reader.datalink())
        first = None
        for number, (stamp, frame) in enumerate(reader, start=1):
            found = _tcp_bounds(frame, ip_offset(frame))
            if found is None:
                continue
            src, dst, tcp, end = found
            sport, dport, seq, ack, offset, flags, win = _TCP_HEADER.unpack_from(frame, tcp)
            header_len = (offset >> 4) * 4
            if header_len < 20 or tcp + header_len > len(frame):
                continue
            if first is None:
                first = stamp
            src_name = names.get(src) or names.setdefault(src, _address(src))
            dst_name = names.get(dst) or names.setdefault(dst, _address(dst))
            segments.append(
                Segment(
                    no=number,
                    time=float(stamp - first),
                    src=(src_name, sport),
                    dst=(dst_name, dport),
                    flags=(offset & 1) << 8 | flags,  # the low bit of the offset byte is NS (RFC 3540)
                    seq=seq,
                    ack=ack,
                    win=win,
                    frame_len=len(frame),
                    payload=frame[tcp + header_len : end],
                    options=_parse_options(frame[tcp + 20 : tcp + header_len]) if header_len > 20 else (),
                )
            )
    return segments


def _link_decoder(datalink: int) -> Callable[[bytes], int]:
    """For a pcap link type: a function from a frame to the offset of its IP header, or -1."""
    kinds: dict[int, Callable[[bytes], int]] = {
        dpkt.pcap.DLT_EN10MB: _ethernet_ip,
        dpkt.pcap.DLT_LINUX_SLL: _sll_ip,
        dpkt.pcap.DLT_LINUX_SLL2: _sll2_ip,
        **dict.fromkeys(_RAW_IP_LINK_TYPES, _raw_ip),
    }
    if datalink not in kinds:
        raise ValueError(f"unsupported pcap link type {datalink}")
    return kinds[datalink]


def _ethernet_ip(frame: bytes) -> int:
    offset = 12
    while len(frame) >= offset + 2:
        kind = frame[offset] << 8 | frame[offset + 1]
        if kind not in _VLAN_TAGS:
            return offset + 2 if kind in (_ETHERTYPE_IPV4, _ETHERTYPE_IPV6) else -1
        offset += 4
    return -1


def _sll_ip(frame: bytes) -> int:
    # packet type, ARPHRD type, address length, 8 address bytes, then the protocol (pcap-linktype(7))
    return 16 if len(frame) >= 16 and (frame[14] << 8 | frame[15]) in (_ETHERTYPE_IPV4, _ETHERTYPE_IPV6) else -1


def _sll2_ip(frame: bytes) -> int:
    # the protocol comes first, then 18 bytes of interface, type and address (pcap-linktype(7))
    return 20 if len(frame) >= 20 and (frame[0] << 8 | frame[1]) in (_ETHERTYPE_IPV4, _ETHERTYPE_IPV6) else -1


def _raw_ip(frame: bytes) -> int:
    return 0


def _tcp_bounds(frame: bytes, ip: int) -> tuple[bytes, bytes, int, int] | None:
    """(source address, destination address, offset of the TCP header, end of its payload) of an IP
    packet at ``ip`` that carries the start of a TCP segment; None for anything else."""
    if ip < 0 or len(frame) <= ip:
        return None
    version = frame[ip] >> 4
    return _ipv4_tcp(frame, ip) if version == 4 else _ipv6_tcp(frame, ip) if version == 6 else None


def _ipv4_tcp(frame: bytes, ip: int) -> tuple[bytes, bytes, int, int] | None:
    header_len = (frame[ip] & 0x0F) * 4
    if len(frame) < ip + header_len + 20 or header_len < 20 or frame[ip + 9] != _IPPROTO_TCP:
        return None
    if (frame[ip + 6] & 0x1F) or frame[ip + 7]:
        return None  # a later fragment: no TCP header in it
    total = frame[ip + 2] << 8 | frame[ip + 3]
    # A total length of 0 comes from segmentation offload; Ethernet pads short frames past it.
    end = min(ip + total, len(frame)) if total else len(frame)
    return frame[ip + 12 : ip + 16], frame[ip + 16 : ip + 20], ip + header_len, end


def _ipv6_tcp(frame: bytes, ip: int) -> tuple[bytes, bytes, int, int] | None:
    if len(frame) < ip + 40:
        return None
    payload_len = frame[ip + 4] << 8 | frame[ip + 5]
    end = min(ip + 40 + payload_len, len(frame)) if payload_len else len(frame)  # 0: a jumbogram
    kind, offset = frame[ip + 6], ip + 40
    while kind != _IPPROTO_TCP:
        if len(frame) < offset + 8:
            return None
        if kind == _IPV6_FRAGMENT:
            if (frame[offset + 2] << 8 | frame[offset + 3]) & 0xFFF8:
                return None  # a later fragment
            size = 8
        elif kind == _IPV6_AH:
            size = (frame[offset + 1] + 2) * 4
        elif kind in (_IPV6_HOP_BY_HOP, _IPV6_ROUTING, _IPV6_DEST_OPTS):
            size = (frame[offset + 1] + 1) * 8
        else:
            return None
        kind, offset = frame[offset], offset + size
    if len(frame) < offset + 20:
        return None
    return frame[ip + 8 : ip + 24], frame[ip + 24 : ip + 40], offset, end


def _address(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def _parse_options(raw: bytes) -> tuple[tuple[int, bytes], ...]:
    """TCP options as (kind, data), NOPs included, as dpkt.tcp.parse_opts gives them; a truncated
    option ends the list."""
    options = []
    i, size = 0, len(raw)
    while i < size:
        kind = raw[i]
        if kind > dpkt.tcp.TCP_OPT_NOP:
            if i + 1 >= size:
                break
            length = max(2, raw[i + 1])
            options.append((kind, raw[i + 2 : i + length]))
            i += length
        else:
            options.append((kind, b""))
            i += 1
    return tuple(options)


@dataclass
class Connection:
    """One TCP connection (one 4-tuple, one client ISN), seen from the capture.

    ``segments`` only grows (``add``, or appending to it): the ISNs are looked for once, in the
    segments that arrived since the last look.
    """

    client: Endpoint
    server: Endpoint
    segments: list[Segment] = field(default_factory=list)
    _indexed: list[Segment] | None = field(default=None, init=False, repr=False, compare=False)
    _seen: int = field(default=0, init=False, repr=False, compare=False)
    _isns: tuple[int | None, int | None] = field(default=(None, None), init=False, repr=False, compare=False)

    def add(self, seg: Segment) -> None:
        self.segments.append(seg)

    def from_client(self, seg: Segment) -> bool:
        return seg.src == self.client

    @property
    def client_isn(self) -> int | None:
        return self._find_isns()[0]

    @property
    def server_isn(self) -> int | None:
        return self._find_isns()[1]

    def _find_isns(self) -> tuple[int | None, int | None]:
        """(client ISN, server ISN): the first client SYN's and the first SYN/ACK's sequence numbers."""
        segs = self.segments
        if segs is not self._indexed or len(segs) < self._seen:  # replaced, not appended to: start over
            self._indexed, self._seen, self._isns = segs, 0, (None, None)
        if self._seen < len(segs):
            client_isn, server_isn = self._isns
            if client_isn is None or server_isn is None:
                for seg in segs[self._seen :]:
                    if not seg.flags & SYN:
                        continue
                    if seg.src == self.client:
                        client_isn = seg.seq if client_isn is None else client_isn
                    elif seg.flags & ACK and server_isn is None:
                        server_isn = seg.seq
                self._isns = (client_isn, server_isn)
            self._seen = len(segs)
        return self._isns

    def relative(self, seg: Segment) -> tuple[int, int]:
        """(seq, ack) relative to each side's ISN, as Wireshark shows them."""
        own, peer = _isns_of(seg, (self.client, *self._find_isns()))
        return _relative(seg.seq, own), _relative(seg.ack, peer)

    def stream(self, from_client: bool) -> bytes:
        """The bytes one side sent, reassembled by sequence number (retransmissions counted once)."""
        data = bytearray()
        for start, payload in self._pieces(from_client):
            if start > len(data):
                data.extend(bytes(start - len(data)))  # a gap: shown as a mismatch, not hidden
            data[start : start + len(payload)] = payload
        return bytes(data)

    def _stream_length(self, from_client: bool) -> int:
        """``len(self.stream(from_client))`` without building the bytes."""
        return max((start + len(payload) for start, payload in self._pieces(from_client)), default=0)

    def _pieces(self, from_client: bool) -> Iterator[tuple[int, bytes]]:
        """(offset in the stream, bytes) of each data segment of one side, in capture order."""
        isn = self._find_isns()[0 if from_client else 1]
        if isn is None:
            return
        for seg in self.segments:
            if (seg.src == self.client) != from_client or not seg.payload:
                continue
            # Data follows the SYN's own sequence number (a SYN may carry data: TCP Fast Open).
            start = _signed(seg.seq + (1 if seg.flags & SYN else 0) - isn - 1)
            payload = seg.payload
            if start < 0:  # before the first byte (a keep-alive probe before any data): not data
                if start + len(payload) <= 0:
                    continue
                payload, start = payload[-start:], 0
            yield start, payload

    def table(self, *, fold: bool = True) -> str:
        return packet_table(self.segments, self.server[1], fold=fold)


def connections(segments: Iterable[Segment], server_port: int) -> list[Connection]:
    """Split segments to or from ``server_port`` into connections, in order of their first segment.

    A new SYN with another ISN on a 4-tuple already seen starts a new connection (port reuse).
    """
    return _split(segments, server_port)[0]


def _split(segments: Iterable[Segment], server_port: int) -> tuple[list[Connection], list[int]]:
    """The connections, and for each segment the index of its connection (-1: not on the port)."""
    found: list[Connection] = []
    owners: list[int] = []
    current: dict[tuple[Endpoint, Endpoint], int] = {}
    for seg in segments:
        if seg.dst[1] == server_port:
            client, server = seg.src, seg.dst
        elif seg.src[1] == server_port:
            client, server = seg.dst, seg.src
        else:
            owners.append(-1)
            continue
        key = (client, server)
        index = current.get(key)
        fresh_syn = seg.src == client and seg.flags & SYN and not seg.flags & ACK
        if index is None or (fresh_syn and found[index].client_isn not in (None, seg.seq)):
            index = current[key] = len(found)
            found.append(Connection(client=client, server=server))
        found[index].add(seg)
        owners.append(index)
    return found, owners


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
    """Each side's segments concatenate to exactly what it sent, and every segment is acknowledged:
    the peer's highest cumulative ACK covers its end (one pass per side, TCP-FACTS)."""
    for from_client, expected, who in ((True, sent, "client"), (False, echoed, "server")):
        got = conn.stream(from_client)
        if got != expected:
            return (
                f"the {who}'s data segments carry {len(got)} bytes, not the {len(expected)} it sent"
                f"{'' if len(got) != len(expected) else ' (same length, other bytes)'}"
            )
        base = _base(conn, from_client)
        if base is None:
            continue  # this side sent nothing at all
        highest = _highest_ack(conn, from_client, base)
        for seg in conn.segments:
            if not seg.payload or (seg.src == conn.client) != from_client:
                continue
            end = _signed(seg.seq + (1 if seg.flags & SYN else 0) + len(seg.payload) - base)
            if highest is None or highest < end:
                seq, _ = conn.relative(seg)
                return f"the {who}'s data in frame {seg.no} (Seq={seq} Len={len(seg.payload)}) is never acknowledged"
    return None


def teardown_problem(conn: Connection) -> str | None:
    """An orderly close: a FIN from each side, each acknowledged (FIN takes one sequence number), no RST."""
    reset = next((s for s in conn.segments if s.flags & RST), None)
    if reset is not None:
        who = "client" if conn.from_client(reset) else "server"
        return f"the {who} reset the connection (frame {reset.no}: [{reset.flag_names}]) instead of a FIN"
    for from_client, who in ((True, "client"), (False, "server")):
        fin = next((s for s in conn.segments if s.flags & FIN and (s.src == conn.client) == from_client), None)
        if fin is None:
            return f"no FIN from the {who}"
        data_end = (fin.seq + len(fin.payload)) % SEQ_SPACE
        isn = conn.client_isn if from_client else conn.server_isn
        sent = conn._stream_length(from_client)
        if isn is not None and data_end != (isn + 1 + sent) % SEQ_SPACE:
            return f"the {who}'s FIN (frame {fin.no}) is not behind all {sent} bytes it sent"
        base = fin.seq if isn is None else isn
        highest = _highest_ack(conn, from_client, base)
        if highest is None or highest < _signed(fin.seq + fin.seq_len - base):
            return f"the {who}'s FIN (frame {fin.no}) is never acknowledged (ack = its seq + 1)"
    return None


def _signed(distance: int) -> int:
    """A distance in sequence space as a signed number: within 2**31 either way (RFC 1982)."""
    return (distance + HALF_SPACE) % SEQ_SPACE - HALF_SPACE


def _base(conn: Connection, from_client: bool) -> int | None:
    """Where one side's sequence numbers are measured from: its ISN, or (no SYN in the capture: the
    connection started before it) its first sequence number seen; None when it sent nothing."""
    isn = conn.client_isn if from_client else conn.server_isn
    if isn is not None:
        return isn
    return next((s.seq for s in conn.segments if (s.src == conn.client) == from_client), None)


def _highest_ack(conn: Connection, of_client: bool, base: int) -> int | None:
    """The peer's highest cumulative ACK of one side's data, relative to ``base``; None if no ACK."""
    acks = [s.ack for s in conn.segments if s.flags & ACK and (s.src == conn.client) != of_client]
    return max((_signed(ack - base) for ack in acks), default=None)


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
    first = next((s for s in conn.segments if not conn.from_client(s)), None)
    if first is None:
        return f"the SYN (frame {syn.no}) got no answer at all"
    if not first.has(RST | ACK) or first.ack != (syn.seq + 1) % SEQ_SPACE:
        return (
            f"the SYN (frame {syn.no}) is answered by [{first.flag_names}] (frame {first.no}), not RST/ACK for ISN + 1"
        )
    return None


def dropped_syn_problem(conn: Connection, retransmitted: bool = True) -> str | None:
    """Accept queue full: the SYN is dropped silently: never answered, and (given a second or so)
    retransmitted with the same ISN."""
    syns = [s for s in conn.segments if conn.from_client(s) and s.flags & SYN]
    answer = next((s for s in conn.segments if not conn.from_client(s)), None)
    if answer is not None:
        return f"the server answered a SYN it should have dropped: frame {answer.no} [{answer.flag_names}]"
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


def _options_text(seg: Segment, peer_isn: int | None) -> str:
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
        elif kind == dpkt.tcp.TCP_OPT_SACK and len(data) % 8 == 0:
            # SACK blocks (RFC 2018) name the peer's sequence numbers: relative to its ISN, like Ack.
            base = peer_isn or 0
            for left, right in struct.iter_unpack("!II", data):
                parts.append(f"SLE={(left - base) % SEQ_SPACE} SRE={(right - base) % SEQ_SPACE}")
    return " ".join(parts)


def _window_scale(seg: Segment) -> int | None:
    for kind, data in seg.options:
        if kind == dpkt.tcp.TCP_OPT_WSCALE and len(data) == 1:
            return 1 << min(data[0], 14)  # RFC 7323 2.3: a larger shift is taken as 14
    return None


class _Direction:
    """What the packet table remembers of one direction of one connection (Wireshark's analysis)."""

    __slots__ = ("ack", "next_seq", "syn", "win")

    def __init__(self) -> None:
        self.next_seq: int | None = None  # the highest sequence number sent so far, plus one
        self.ack: int | None = None  # the previous segment's ACK number and window
        self.win: int | None = None
        self.syn: int | None = None  # the ISN of the SYN seen, to tell a port reuse from a retransmission

    def mark(self, seg: Segment) -> str:
        """``[TCP Retransmission]``, ``[TCP Dup ACK]`` or nothing for the next segment this way."""
        length = seg.seq_len
        mark = ""
        if length and self.next_seq is not None and not _covers(seg.seq, self.next_seq):
            mark = RETRANSMISSION  # starts before what was already sent
        elif (
            not length
            and seg.flags & (ACK | SYN | FIN | RST) == ACK
            and seg.ack == self.ack
            and seg.win == self.win
            and seg.win
            and seg.seq == self.next_seq
        ):
            mark = DUP_ACK
        end = (seg.seq + length) % SEQ_SPACE
        if self.next_seq is None or _covers(end, self.next_seq):
            self.next_seq = end
        if seg.flags & SYN and self.syn is None:
            self.syn = seg.seq
        if seg.flags & ACK:
            self.ack, self.win = seg.ack, seg.win
        return mark


def packet_table(segments: Sequence[Segment], server_port: int | None = None, *, fold: bool = True) -> str:
    """The capture as Wireshark's packet list: No., Time, Source, Destination, Protocol, Length, Info,
    with sequence numbers relative to each connection's ISNs, the calculated (scaled) window, and
    Wireshark's retransmission and duplicate-ACK marks.

    A table longer than ``FOLD_ROWS`` rows is folded unless ``fold`` is false: see ``_kept_rows``."""
    segs = list(segments)
    conns, owners = _split(segs, server_port) if server_port is not None else ([], [-1] * len(segs))
    isns = [(conn.client, *conn._find_isns()) for conn in conns]
    groups = _groups(segs, owners)
    directions: dict[tuple[int, Endpoint], _Direction] = {}
    marks = []
    for seg, group in zip(segs, groups):
        direction = directions.get((group, seg.src))
        # Without a server port, a SYN with another ISN is a new connection on the same ports.
        if direction is None or (seg.flags & SYN and direction.syn not in (None, seg.seq)):
            direction = directions[group, seg.src] = _Direction()
        marks.append(direction.mark(seg))
    kept = _kept_rows(segs, groups, marks) if fold and len(segs) > FOLD_ROWS else None

    scale: dict[Endpoint, int] = {}
    rows = [("No.", "Time", "Source", "Destination", "Protocol", "Length", "Info")]
    folds: dict[int, str] = {}  # row number -> the line that stands for the rows folded before it
    run, run_bytes = 0, 0
    for i, seg in enumerate(segs):
        # The window is scaled only when both SYNs carried the option (RFC 7323 2.2), so note it
        # on every row, kept or folded.
        if seg.flags & SYN:
            factor = _window_scale(seg)
            scale[seg.src] = factor or 1
            if seg.flags & ACK and factor is None:
                scale[seg.dst] = 1
        if kept is not None and not kept[i]:
            run, run_bytes = run + 1, run_bytes + len(seg.payload)
            continue
        if run:
            folds[len(rows)] = _fold_line(run, run_bytes)
            run, run_bytes = 0, 0
        win = seg.win if seg.flags & SYN else seg.win * scale.get(seg.src, 1)
        own, peer = _isns_of(seg, isns[owners[i]]) if owners[i] >= 0 else (None, None)
        info = f"{marks[i]}{seg.src[1]} \u2192 {seg.dst[1]} [{seg.flag_names}] Seq={_relative(seg.seq, own)}"
        if seg.flags & ACK:
            info += f" Ack={_relative(seg.ack, peer)}"
        info += f" Win={win} Len={len(seg.payload)} {_options_text(seg, peer)}"
        rows.append((str(seg.no), f"{seg.time:.6f}", seg.src[0], seg.dst[0], "TCP", str(seg.frame_len), info))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = []
    for number, row in enumerate(rows):
        if number in folds:
            lines.append(folds[number])
        lines.append(("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:6])) + "  " + row[6]).rstrip())
    if run:
        lines.append(_fold_line(run, run_bytes))
    return "\n".join(lines)


def _isns_of(seg: Segment, isns: tuple[Endpoint, int | None, int | None]) -> tuple[int | None, int | None]:
    """(the ISN of the segment's sender, the ISN of its peer), given (client, client ISN, server ISN)."""
    client, client_isn, server_isn = isns
    return (client_isn, server_isn) if seg.src == client else (server_isn, client_isn)


def _relative(number: int, isn: int | None) -> int:
    return (number - isn) % SEQ_SPACE if isn is not None else number


def _groups(segments: Sequence[Segment], owners: Sequence[int]) -> list[int]:
    """A number per segment for the connection it belongs to: its index in ``connections()``, or
    (no server port given, or not on it) a number of its own per pair of endpoints."""
    pairs: dict[tuple[Endpoint, Endpoint], int] = {}
    groups = []
    first_free = max(owners, default=-1) + 1
    for seg, owner in zip(segments, owners):
        if owner >= 0:
            groups.append(owner)
            continue
        pair = (seg.src, seg.dst) if seg.src <= seg.dst else (seg.dst, seg.src)
        if pair not in pairs:
            pairs[pair] = first_free + len(pairs)
        groups.append(pairs[pair])
    return groups


def _kept_rows(segments: Sequence[Segment], groups: Sequence[int], marks: Sequence[str]) -> list[bool]:
    """The rows a folded table shows: per connection its handshake (first 3 segments), the first and
    last ``FOLD_KEEP`` data-carrying rows, everything from its first FIN or RST on; and every SYN,
    FIN, RST, retransmission and duplicate ACK anywhere."""
    kept = [bool(mark) or bool(seg.flags & (SYN | FIN | RST)) for seg, mark in zip(segments, marks)]
    seen: dict[int, int] = {}
    data_rows: dict[int, list[int]] = {}
    ending: set[int] = set()
    for i, (seg, group) in enumerate(zip(segments, groups)):
        count = seen[group] = seen.get(group, 0) + 1
        if count <= 3 or group in ending:
            kept[i] = True
        if seg.flags & (FIN | RST):
            ending.add(group)
        if seg.payload:
            data_rows.setdefault(group, []).append(i)
    for rows in data_rows.values():
        for i in rows[:FOLD_KEEP] + rows[-FOLD_KEEP:]:
            kept[i] = True
    last = len(kept) - 1
    for i in range(len(kept)):  # a fold line would take the place of a lone row: show the row
        if not kept[i] and (i == 0 or kept[i - 1]) and (i == last or kept[i + 1]):
            kept[i] = True
    return kept


def _fold_line(rows: int, payload: int) -> str:
    return f"... {rows} data segments ({payload} bytes) ..."


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


def _pieces(conn: Connection, segs: Sequence[Segment], start: int, step: Step) -> int:
    """How many segments from ``start`` carry exactly ``step``'s data in several pieces (with the
    peer's pure ACKs between them); 0 if they do not."""
    got = 0
    for n, seg in enumerate(segs[start:], 1):
        if seg.flags & (SYN | FIN | RST):
            return 0
        if conn.from_client(seg) == step.from_client and seg.payload:
            got += len(seg.payload)
            if got >= step.length:
                return n if got == step.length and n > 1 else 0
        elif seg.payload or conn.from_client(seg) == step.from_client:
            return 0
    return 0


def ladder_problem(conn: Connection, ladder: Sequence[Step]) -> tuple[str | None, str]:
    """Match the connection segment by segment against ``ladder``: (problem or None, the pairing)."""
    pairs: list[str] = []
    segs = list(conn.segments)
    i = 0
    problem: str | None = None
    for step in ladder:
        seg = segs[i] if i < len(segs) else None
        pieces = _pieces(conn, segs, i, step) if seg is not None and step.length else 0
        if seg is not None and step.matches(conn, seg):
            pairs.append(f"{step.label:<30} frame {seg.no}: [{seg.flag_names}] Len={len(seg.payload)}")
            i += 1
        elif pieces and seg is not None:
            # The same bytes written in pieces: a correct sender may chunk its data as it likes.
            end = segs[i + pieces - 1]
            pairs.append(f"{step.label:<30} frames {seg.no}-{end.no}: {step.length} bytes in pieces, with the ACKs")
            i += pieces
        elif step.optional:
            pairs.append(f"{step.label:<30} (not sent alone: acknowledged by the next segment)")
        else:
            got = f"frame {seg.no}: [{seg.flag_names}] Len={len(seg.payload)}" if seg else "the end of the capture"
            problem = f"lab packet {step.label} expected, got {got}"
            break
    if problem is None and i < len(segs):
        problem = f"{len(segs) - i} segment(s) more than the lab's exchange, from frame {segs[i].no}"
    return problem, "\n".join(pairs)
