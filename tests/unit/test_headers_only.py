"""A capture whose test judges headers only (Capture.headers_only) is read with its large records
cut to SNAP bytes, on the host that captured it (harness/remote/pcaptrim.py): each segment keeps
its length on the wire, its flags and numbers, and the megabytes of payload are never read."""

from __future__ import annotations

import io
import shutil
import struct
from contextlib import ExitStack

import dpkt
import pytest

from harness.backends.local import LocalHost
from harness.checks import echo_problem, exchange, headers_only
from harness.fixtures import unavailable
from harness.remote import pcaptrim
from harness.server import ServerSpec, start_server
from harness.wire.pcap import ACK, PSH, read_pcap
from harness.wire.session import SNAP

MEBIBYTE = {"random": 1 << 20, "seed": 5}


def segment(payload: bytes, seq: int = 1000) -> bytes:
    """A raw IPv4 packet carrying a TCP segment 40000 -> 8888 with ``payload``."""
    tcp = struct.pack("!HHIIBBHHH", 40000, 8888, seq, 1, 5 << 4, PSH | ACK, 512, 0, 0)
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 6, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return ip + tcp + payload


def pcap_of(*packets: bytes) -> bytes:
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, linktype=101)  # LINKTYPE_RAW: the packets start with IP
    for i, packet in enumerate(packets):
        writer.writepkt(packet, ts=1.0 + i)
    return out.getvalue()


def test_large_records_are_cut_and_keep_their_length_on_the_wire() -> None:
    whole = pcap_of(segment(b"x" * 10), segment(b"y" * 5000, seq=1010), segment(b"z" * 20, seq=6010))
    partial = whole + pcap_of(segment(b"w" * 3000))[24:-100]  # a record tcpdump is still writing
    cut, consumed = pcaptrim.trim(partial, partial[:4], SNAP, at_start=True)
    assert consumed == len(whole), "a record still being written must be left for the next read"
    segments = read_pcap(cut)
    assert [s.length for s in segments] == [10, 5000, 20]
    assert [len(s.payload) for s in segments] == [10, SNAP - 40, 20], "only the large record is cut"
    assert [s.seq_len for s in segments] == [10, 5000, 20] and segments[1].seq == 1010
    assert len(cut) < len(whole) - 4000


def test_a_read_from_a_record_boundary_has_no_file_header() -> None:
    data = pcap_of(segment(b"a" * 400), segment(b"b" * 4))
    first = 24 + 16 + len(segment(b"a" * 400))
    cut, consumed = pcaptrim.trim(data[first:], data[:4], SNAP, at_start=False)
    assert consumed == len(data) - first and cut == data[first:], "a small record passes whole"


def test_a_mebibyte_echo_captured_for_its_headers_costs_kilobytes_not_megabytes() -> None:
    if shutil.which("tcpdump") is None:
        unavailable("tcpdump is not installed (apt-get install tcpdump)")
    host = LocalHost()
    sizes = {}
    with ExitStack() as stack:
        stack.callback(host.close)
        server = start_server(host, host.address, ServerSpec("python"), backlog=3, mode="iterative", ready_timeout=10)
        stack.callback(server.stop)
        for judged in ("payload", "headers"):
            capture = host.start_capture(server.port)
            stack.callback(capture.stop)
            if judged == "headers":
                headers_only(capture)
            result = exchange(host, server, MEBIBYTE, lockstep=False, timeout=30)
            assert echo_problem(result) is None, result
            conn = capture.connection(int(result["local_port"]))
            assert conn is not None and capture.loss() is None
            data = [s for s in conn.segments if s.length]
            assert sum(s.length for s in data) == 2 << 20, "each segment's length on the wire, both ways"
            sizes[judged] = len(capture.stop())
    assert sizes["payload"] > 2 << 20, sizes
    assert sizes["headers"] < 64 * 1024, f"the payload was read even though only headers are judged: {sizes}"


@pytest.mark.parametrize("snap", [None, SNAP])
def test_a_missing_file_reads_as_nothing(tmp_path, snap) -> None:
    assert pcaptrim.read(str(tmp_path / "gone.pcap"), 0, snap) == (b"", 0)


def test_a_read_takes_at_most_the_limit_and_at_least_one_whole_record(tmp_path) -> None:
    # One answer of an agent crosses a Pi's link within the request's 10 s: a long backlog is read in pieces.
    data = pcap_of(*(segment(b"p" * 900, seq=1000 + 900 * i) for i in range(10)))
    path = tmp_path / "backlog.pcap"
    path.write_bytes(data)
    record = 16 + len(segment(b"p" * 900))
    raw, consumed = pcaptrim.read(str(path), 0, None, limit=3000)
    assert raw == data[:3000] and consumed == 3000, "uncut: the bytes up to the limit, a record cut in two included"
    cut, consumed = pcaptrim.read(str(path), 0, SNAP, limit=3000)
    assert consumed == 24 + 3 * record and len(read_pcap(cut)) == 3, "cut: the whole records within the limit"
    cut, consumed = pcaptrim.read(str(path), 24, SNAP, limit=100)
    assert consumed == record and [s.length for s in read_pcap(data[:24] + cut)] == [900], "one record at least"
    offset, lengths = 0, []
    while offset < len(data):
        cut, consumed = pcaptrim.read(str(path), offset, SNAP, limit=2500)
        lengths += [s.length for s in read_pcap(data[:24] + cut[24 if offset == 0 else 0 :])]
        offset += consumed
    assert lengths == [900] * 10, "read in pieces, every record comes once"
