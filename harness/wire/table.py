"""A capture as Wireshark's packet list, folded to a screen when it is long.

Linear in the number of segments, like the rest of harness/wire.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import dpkt

from harness.wire.pcap import ACK, FIN, RST, SEQ_SPACE, SYN, Endpoint, Segment
from harness.wire.tcp import Connection, covers, isns_of, relative_to, split

#: A packet table longer than this many rows (about a screen) is folded; the pcap keeps every packet.
FOLD_ROWS = 60
#: Data-carrying rows a folded table keeps at each end of a connection's data.
FOLD_KEEP = 4

RETRANSMISSION = "[TCP Retransmission] "
DUP_ACK = "[TCP Dup ACK] "


def connection_table(conn: Connection, *, fold: bool = True) -> str:
    """One connection's packets as a table."""
    return packet_table(conn.segments, conn.server[1], fold=fold)


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
        if length and self.next_seq is not None and not covers(seg.seq, self.next_seq):
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
        if self.next_seq is None or covers(end, self.next_seq):
            self.next_seq = end
        if seg.flags & SYN and self.syn is None:
            self.syn = seg.seq
        if seg.flags & ACK:
            self.ack, self.win = seg.ack, seg.win
        return mark


def marks_of(segments: Sequence[Segment], server_port: int | None) -> list[str]:
    """Wireshark's mark for each segment: ``[TCP Retransmission]``, ``[TCP Dup ACK]`` or nothing."""
    _, owners = split(segments, server_port) if server_port is not None else ([], [-1] * len(segments))
    return _marks(segments, _groups(segments, owners))


def retransmissions(segments: Sequence[Segment], server_port: int | None) -> int:
    """How many segments Wireshark would mark ``[TCP Retransmission]``."""
    return sum(mark == RETRANSMISSION for mark in marks_of(segments, server_port))


def originals(conn: Connection) -> Connection:
    """The connection without the segments Wireshark marks as retransmissions or duplicate ACKs:
    the exchange as sent once, for comparing a lossy link's capture with a reference ladder."""
    marks = marks_of(conn.segments, conn.server[1])
    return Connection(conn.client, conn.server, [seg for seg, mark in zip(conn.segments, marks) if not mark])


def packet_table(segments: Sequence[Segment], server_port: int | None = None, *, fold: bool = True) -> str:
    """The capture as Wireshark's packet list: No., Time, Source, Destination, Protocol, Length, Info,
    with sequence numbers relative to each connection's ISNs, the calculated (scaled) window, and
    Wireshark's retransmission and duplicate-ACK marks.

    A table longer than ``FOLD_ROWS`` rows is folded unless ``fold`` is false: see ``_kept_rows``."""
    segs = list(segments)
    conns, owners = split(segs, server_port) if server_port is not None else ([], [-1] * len(segs))
    isns = [(conn.client, conn.client_isn, conn.server_isn) for conn in conns]
    groups = _groups(segs, owners)
    marks = _marks(segs, groups)
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
            run, run_bytes = run + 1, run_bytes + seg.length
            continue
        if run:
            folds[len(rows)] = _fold_line(run, run_bytes)
            run, run_bytes = 0, 0
        win = seg.win if seg.flags & SYN else seg.win * scale.get(seg.src, 1)
        own, peer = isns_of(seg, isns[owners[i]]) if owners[i] >= 0 else (None, None)
        info = f"{marks[i]}{seg.src[1]} \u2192 {seg.dst[1]} [{seg.flag_names}] Seq={relative_to(seg.seq, own)}"
        if seg.flags & ACK:
            info += f" Ack={relative_to(seg.ack, peer)}"
        info += f" Win={win} Len={seg.length} {_options_text(seg, peer)}"
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


def analysis(segments: Sequence[Segment], server_port: int | None = None) -> tuple[list[str], list[bool] | None]:
    """Per segment, Wireshark's mark (``[TCP Retransmission] ``, ``[TCP Dup ACK] `` or nothing), and
    which rows a folded table keeps (None: the table is short enough to show whole); the packet
    table's own reading, for other renderings of the same capture (the HTML report's ladder)."""
    segs = list(segments)
    owners = split(segs, server_port)[1] if server_port is not None else [-1] * len(segs)
    groups = _groups(segs, owners)
    marks = _marks(segs, groups)
    return marks, _kept_rows(segs, groups, marks) if len(segs) > FOLD_ROWS else None


def fold_line(rows: int, payload: int) -> str:
    """What stands for ``rows`` folded rows carrying ``payload`` bytes."""
    return _fold_line(rows, payload)


def _marks(segs: Sequence[Segment], groups: Sequence[int]) -> list[str]:
    directions: dict[tuple[int, Endpoint], _Direction] = {}
    marks = []
    for seg, group in zip(segs, groups):
        direction = directions.get((group, seg.src))
        # Without a server port, a SYN with another ISN is a new connection on the same ports.
        if direction is None or (seg.flags & SYN and direction.syn not in (None, seg.seq)):
            direction = directions[group, seg.src] = _Direction()
        marks.append(direction.mark(seg))
    return marks


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
        if seg.length:
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
