"""A connection as a ladder diagram (Wireshark's flow graph): client and server as two vertical
lines, one arrow per segment in time order, drawn as inline SVG.

Rows come from the packet table's own reading (harness/wire/table.py): the same retransmission
marks, and the same folding of long data phases. Linear in the number of segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from harness.wire.pcap import ACK, FIN, RST, SYN
from harness.wire.table import RETRANSMISSION, analysis, fold_line
from harness.wire.tcp import Connection, Step

WIDTH = 560
CLIENT_X, SERVER_X = 100, 478
TOP, ROW = 44, 22


@dataclass(frozen=True)
class Arrow:
    """One row of a ladder: a segment (frame number, seconds, direction, label, kind) or a fold."""

    no: str
    time: str
    from_client: bool
    label: str
    kind: str  # syn, data, ack, fin, rst, retrans, dropped; fold for a folded run


def arrows(conn: Connection) -> list[Arrow]:
    """The connection's segments as arrows, labelled as Wireshark's flow graph labels them
    (``[SYN] Seq=0``, ``[PSH, ACK] Seq=1 Ack=1 Len=13``), folded like the packet table."""
    segs = conn.segments
    marks, kept = analysis(segs, conn.server[1])
    # A server that never answered: its client's SYNs were dropped (an accept queue full).
    unanswered = not any(not conn.from_client(seg) for seg in segs)
    out: list[Arrow] = []
    run, run_bytes = 0, 0
    for i, seg in enumerate(segs):
        if kept is not None and not kept[i]:
            run, run_bytes = run + 1, run_bytes + seg.length
            continue
        if run:
            out.append(Arrow("", "", True, fold_line(run, run_bytes), "fold"))
            run, run_bytes = 0, 0
        seq, ack = conn.relative(seg)
        label = f"{marks[i]}[{seg.flag_names}] Seq={seq}"
        if seg.flags & ACK:
            label += f" Ack={ack}"
        if seg.length:
            label += f" Len={seg.length}"
        kind = _kind(seg.flags, bool(seg.length), marks[i])
        if unanswered and seg.flags & SYN:
            kind, label = "dropped", f"{label} (never answered)"
        out.append(Arrow(str(seg.no), f"{seg.time:.6f}", conn.from_client(seg), label, kind))
    if run:
        out.append(Arrow("", "", True, fold_line(run, run_bytes), "fold"))
    return out


def _kind(flags: int, data: bool, mark: str) -> str:
    if flags & RST:
        return "rst"
    if mark == RETRANSMISSION:
        return "retrans"
    if flags & SYN:
        return "syn"
    if flags & FIN:
        return "fin"
    return "data" if data else "ack"


def lab_arrows(ladder: Sequence[Step]) -> list[Arrow]:
    """The lab's own capture (``lab_ladder``) drawn the same way, its packet numbers on the left."""
    out = []
    for step in ladder:
        number, _, name = step.label.partition(" ")
        flags = name.split(" Len=")[0].replace("(4-segment teardown)", "").strip()
        label = f"[{flags}]" + (f" Len={step.length}" if step.length else "")
        label += " (optional)" if step.optional else ""
        out.append(Arrow(number, "", step.from_client, label, _kind(step.flags, bool(step.length), "")))
    return out


def svg(rows: Sequence[Arrow], client: str, server: str) -> str:
    """The ladder as one inline <svg>; its arrowheads are the page's shared markers (``DEFS``)."""
    height = TOP + ROW * len(rows) + 8
    middle = (CLIENT_X + SERVER_X) // 2
    parts = [
        f'<svg class="ladder" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img"'
        f' aria-label="ladder diagram: {escape(client)} and {escape(server)}">',
        f'<text class="end" x="{CLIENT_X}" y="14">{escape(" ".join(("client", client)).strip())}</text>',
        f'<text class="end r" x="{WIDTH - 2}" y="14">{escape(" ".join(("server", server)).strip())}</text>',
        f'<line class="life" x1="{CLIENT_X}" y1="22" x2="{CLIENT_X}" y2="{height}"/>',
        f'<line class="life" x1="{SERVER_X}" y1="22" x2="{SERVER_X}" y2="{height}"/>',
    ]
    for i, row in enumerate(rows):
        y = TOP + ROW * i + 12
        if row.kind == "fold":
            parts.append(f'<text class="fold" x="{middle}" y="{y - 2}">{escape(row.label)}</text>')
            continue
        start, end = (CLIENT_X, SERVER_X) if row.from_client else (SERVER_X, CLIENT_X)
        if row.kind == "dropped":  # stops short of the server: it never got there
            end = start + (end - start) * 3 // 4
        else:
            end += -3 if row.from_client else 3
        when = f"{row.no} {row.time}".strip()
        parts.append(
            f'<text class="t" x="2" y="{y + 3}">{when}</text>'
            f'<line class="k-{row.kind}" x1="{start}" y1="{y}" x2="{end}" y2="{y}"/>'
            f'<text class="l k-{row.kind}" x="{middle}" y="{y - 4}">{escape(row.label)}</text>'
        )
        if row.kind == "dropped":
            parts.append(f'<text class="x" x="{end}" y="{y + 4}">\u2715</text>')
    parts.append("</svg>")
    return "".join(parts)


#: Arrowheads shared by every ladder of a page, one colour per kind (an <svg> of their own).
DEFS = (
    '<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>'
    + "".join(
        f'<marker id="head-{kind}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7"'
        f' orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="{colour}"/></marker>'
        for kind, colour in (
            ("syn", "#1f5fbf"),
            ("data", "#222"),
            ("ack", "#777"),
            ("fin", "#6a3d9a"),
            ("rst", "#d00"),
            ("retrans", "#e08000"),
        )
    )
    + "</defs></svg>"
)
