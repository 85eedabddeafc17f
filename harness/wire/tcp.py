"""TCP connections on the wire: split a capture into connections and judge them.

Pure analysis: no capture, no sockets. The judgements rest on sequence arithmetic, not on exact
packet shapes, because kernels legitimately differ (TCP-FACTS): an ACK may ride on data instead of
going alone, PSH may be set or not, a teardown takes 3 or 4 segments, options vary.

Every pass is linear in the number of segments: a 1 MiB echo in one-byte segments is judged in
about the time a 1 MiB echo in 64 KiB segments is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from harness.wire.pcap import ACK, FIN, HALF_SPACE, RST, SEQ_SPACE, SYN, Endpoint, Segment


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
        own, peer = isns_of(seg, (self.client, *self._find_isns()))
        return relative_to(seg.seq, own), relative_to(seg.ack, peer)

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


def isns_of(seg: Segment, isns: tuple[Endpoint, int | None, int | None]) -> tuple[int | None, int | None]:
    """(the ISN of the segment's sender, the ISN of its peer), given (client, client ISN, server ISN)."""
    client, client_isn, server_isn = isns
    return (client_isn, server_isn) if seg.src == client else (server_isn, client_isn)


def relative_to(number: int, isn: int | None) -> int:
    return (number - isn) % SEQ_SPACE if isn is not None else number


def connections(segments: Iterable[Segment], server_port: int) -> list[Connection]:
    """Split segments to or from ``server_port`` into connections, in order of their first segment.

    A new SYN with another ISN on a 4-tuple already seen starts a new connection (port reuse).
    """
    return split(segments, server_port)[0]


def split(segments: Iterable[Segment], server_port: int) -> tuple[list[Connection], list[int]]:
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
    """SYN from the client; SYN/ACK acknowledging its ISN + 1; the client's ACK of the server's ISN + 1.
    On a lossy link the SYN and the SYN/ACK may be retransmitted (the same sequence numbers) before
    the handshake completes: the first of each is judged and the copies passed over."""
    segs = conn.segments
    if len(segs) < 3:
        return f"expected a three-way handshake, the capture holds {len(segs)} segment(s) of this connection"
    syn = segs[0]
    if not (conn.from_client(syn) and syn.flags & (SYN | ACK | RST) == SYN):
        return f"the connection does not start with the client's SYN (frame {syn.no}: [{syn.flag_names}])"
    rest = [s for s in segs[1:] if not (s.flags & (SYN | ACK | RST) == SYN and s.seq == syn.seq)]
    synack = rest[0] if rest else segs[1]
    if conn.from_client(synack) or not synack.has(SYN | ACK):
        return f"the SYN (frame {syn.no}) is not answered by a SYN/ACK (frame {synack.no}: [{synack.flag_names}])"
    if synack.ack != (syn.seq + 1) % SEQ_SPACE:
        return f"the SYN/ACK (frame {synack.no}) acknowledges {synack.ack}, not the client's ISN + 1 = {syn.seq + 1}"
    later = [s for s in rest[1:] if not (not conn.from_client(s) and s.has(SYN | ACK) and s.seq == synack.seq)]
    if not later:
        return "the handshake's third segment, the client's ACK, is missing"
    third = later[0]
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
            if not seg.length or (seg.src == conn.client) != from_client:
                continue
            end = _signed(seg.seq + (1 if seg.flags & SYN else 0) + seg.length - base)
            if highest is None or highest < end:
                seq, _ = conn.relative(seg)
                return f"the {who}'s data in frame {seg.no} (Seq={seq} Len={seg.length}) is never acknowledged"
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
        data_end = (fin.seq + fin.length) % SEQ_SPACE
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


def covers(ack: int, end: int) -> bool:
    """Whether cumulative ``ack`` is at or past ``end`` in sequence space (RFC 1982 comparison)."""
    return (ack - end) % SEQ_SPACE < SEQ_SPACE // 2


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
            and seg.length == self.length
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
        if conn.from_client(seg) == step.from_client and seg.length:
            got += seg.length
            if got >= step.length:
                return n if got == step.length and n > 1 else 0
        elif seg.length or conn.from_client(seg) == step.from_client:
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
            pairs.append(f"{step.label:<30} frame {seg.no}: [{seg.flag_names}] Len={seg.length}")
            i += 1
        elif pieces and seg is not None:
            # The same bytes written in pieces: a correct sender may chunk its data as it likes.
            end = segs[i + pieces - 1]
            pairs.append(f"{step.label:<30} frames {seg.no}-{end.no}: {step.length} bytes in pieces, with the ACKs")
            i += pieces
        elif step.optional:
            pairs.append(f"{step.label:<30} (not sent alone: acknowledged by the next segment)")
        else:
            got = f"frame {seg.no}: [{seg.flag_names}] Len={seg.length}" if seg else "the end of the capture"
            problem = f"lab packet {step.label} expected, got {got}"
            break
    if problem is None and i < len(segs):
        problem = f"{len(segs) - i} segment(s) more than the lab's exchange, from frame {segs[i].no}"
    return problem, "\n".join(pairs)
