"""Reading pcaps of every link type tcpdump writes, and judging TCP exchanges by sequence arithmetic."""

from __future__ import annotations

import io
import socket
import struct

import dpkt
import pytest

from harness.wire.pcap import ACK, FIN, PSH, RST, SYN, read_pcap
from harness.wire.table import connection_table, packet_table
from harness.wire.tcp import (
    Connection,
    connections,
    data_problem,
    handshake_problem,
    lab_ladder,
    ladder_problem,
    refused_problem,
    teardown_problem,
)

CLIENT, SERVER = ("10.9.0.2", 50390), ("10.9.0.3", 8888)
C_ISN, S_ISN = 1000, 5000


def tcp(src, dst, flags, seq, ack, *, data=b"", win=502):
    """An IPv4 TCP packet; sequence numbers are taken modulo 2**32."""
    segment = dpkt.tcp.TCP(
        sport=src[1], dport=dst[1], seq=seq % 2**32, ack=ack % 2**32, flags=flags, win=win, data=data
    )
    segment.off = 5
    packet = dpkt.ip.IP(
        src=socket.inet_aton(src[0]), dst=socket.inet_aton(dst[0]), p=dpkt.ip.IP_PROTO_TCP, data=segment
    )
    packet.len = len(bytes(packet))
    return packet


def lab_exchange(message=b"Hello", server_ends_with=FIN | ACK, *, client=CLIENT, c_isn=C_ISN, s_isn=S_ISN):
    """The textbook ten segments: handshake, data and ACKs, FIN/ACK teardown."""
    n = len(message)
    return [
        tcp(client, SERVER, SYN, c_isn, 0),
        tcp(SERVER, client, SYN | ACK, s_isn, c_isn + 1),
        tcp(client, SERVER, ACK, c_isn + 1, s_isn + 1),
        tcp(client, SERVER, PSH | ACK, c_isn + 1, s_isn + 1, data=message),
        tcp(SERVER, client, ACK, s_isn + 1, c_isn + 1 + n),
        tcp(SERVER, client, PSH | ACK, s_isn + 1, c_isn + 1 + n, data=message),
        tcp(client, SERVER, ACK, c_isn + 1 + n, s_isn + 1 + n),
        tcp(client, SERVER, FIN | ACK, c_isn + 1 + n, s_isn + 1 + n),
        tcp(SERVER, client, server_ends_with, s_isn + 1 + n, c_isn + 2 + n),
        tcp(client, SERVER, ACK, c_isn + 2 + n, s_isn + 2 + n),
    ]


def frame(packet, linktype):
    if linktype == dpkt.pcap.DLT_EN10MB:
        return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=packet))
    if linktype == dpkt.pcap.DLT_LINUX_SLL:
        # packet type, ARPHRD_ETHER, address length, 8 address bytes, protocol (sll.h)
        return struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 6 + b"\0\0", 0x0800) + bytes(packet)
    if linktype == dpkt.pcap.DLT_LINUX_SLL2:
        # protocol, reserved, interface index, ARPHRD_ETHER, packet type, address length, address
        return struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\x02" * 6 + b"\0\0") + bytes(packet)
    return bytes(packet)


def pcap(packets, linktype=dpkt.pcap.DLT_EN10MB) -> bytes:
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, linktype=linktype)
    for i, packet in enumerate(packets):
        writer.writepkt(frame(packet, linktype), ts=1700000000 + i * 0.001)
    return out.getvalue()


@pytest.mark.parametrize(
    "linktype",
    [dpkt.pcap.DLT_EN10MB, dpkt.pcap.DLT_LINUX_SLL, dpkt.pcap.DLT_LINUX_SLL2, dpkt.pcap.DLT_RAW, 101],
    ids=["ethernet", "sll", "sll2", "raw-ip", "raw-ip-as-libpcap-writes-it"],
)
def test_reads_every_link_type_tcpdump_writes(linktype):
    segments = read_pcap(pcap(lab_exchange(), linktype))
    assert [s.flag_names for s in segments][:4] == ["SYN", "SYN, ACK", "ACK", "PSH, ACK"]
    assert segments[3].src == CLIENT and segments[3].payload == b"Hello"


def test_the_textbook_exchange_passes_every_judge():
    (conn,) = connections(read_pcap(pcap(lab_exchange())), SERVER[1])
    assert handshake_problem(conn) is None
    assert data_problem(conn, b"Hello", b"Hello") is None
    assert teardown_problem(conn) is None
    problem, pairing = ladder_problem(conn, lab_ladder(5))
    assert problem is None, pairing


def test_piggybacked_acks_and_three_segment_teardown_still_match_the_lab():
    packets = lab_exchange()
    del packets[6]  # the client's ACK of the echo rides on its FIN
    del packets[4]  # the server's ACK of "Hello" rides on the echo
    (conn,) = connections(read_pcap(pcap(packets)), SERVER[1])
    problem, pairing = ladder_problem(conn, lab_ladder(5))
    assert problem is None, pairing
    assert teardown_problem(conn) is None


def test_an_echo_written_one_byte_at_a_time_still_matches_the_lab():
    # A correct server may write "Hello" in five pieces; the client acknowledges as they come.
    n = 5
    packets = lab_exchange()[:5]
    for i in range(n):
        packets.append(tcp(SERVER, CLIENT, PSH | ACK, S_ISN + 1 + i, C_ISN + 1 + n, data=b"Hello"[i : i + 1]))
        packets.append(tcp(CLIENT, SERVER, ACK, C_ISN + 1 + n, S_ISN + 2 + i))
    packets += lab_exchange()[7:]
    (conn,) = connections(read_pcap(pcap(packets)), SERVER[1])
    problem, pairing = ladder_problem(conn, lab_ladder(5))
    assert problem is None, pairing
    assert "frames 6-14: 5 bytes in pieces, with the ACKs" in pairing
    assert data_problem(conn, b"Hello", b"Hello") is None


def test_pieces_that_add_up_to_more_than_the_echo_do_not_match():
    packets = lab_exchange()[:5]
    packets.append(tcp(SERVER, CLIENT, PSH | ACK, S_ISN + 1, C_ISN + 6, data=b"Hel"))
    packets.append(tcp(SERVER, CLIENT, PSH | ACK, S_ISN + 4, C_ISN + 6, data=b"lo!"))
    (conn,) = connections(read_pcap(pcap(packets)), SERVER[1])
    problem, _ = ladder_problem(conn, lab_ladder(5))
    assert problem == "lab packet 20 PSH, ACK Len=5 expected, got frame 6: [PSH, ACK] Len=3"


def test_a_reset_instead_of_fin_is_named_with_its_frame():
    (conn,) = connections(read_pcap(pcap(lab_exchange(server_ends_with=RST | ACK))), SERVER[1])
    assert teardown_problem(conn) == "the server reset the connection (frame 9: [RST, ACK]) instead of a FIN"
    problem, _ = ladder_problem(conn, lab_ladder(5))
    assert problem == "lab packet 27 FIN, ACK expected, got frame 9: [RST, ACK] Len=0"


def test_wrong_synack_and_unacknowledged_data_are_caught():
    packets = lab_exchange()
    packets[1] = tcp(SERVER, CLIENT, SYN | ACK, S_ISN, C_ISN + 7)
    del packets[4], packets[4]  # nobody acknowledges "Hello" and no echo comes back
    (conn,) = connections(read_pcap(pcap(packets)), SERVER[1])
    assert "acknowledges 1007, not the client's ISN + 1 = 1001" in handshake_problem(conn)
    assert data_problem(conn, b"Hello", b"Hello") == "the server's data segments carry 0 bytes, not the 5 it sent"


def test_refused_syn_is_answered_by_rst_ack():
    packets = [tcp(CLIENT, SERVER, SYN, C_ISN, 0), tcp(SERVER, CLIENT, RST | ACK, 0, C_ISN + 1)]
    (conn,) = connections(read_pcap(pcap(packets)), SERVER[1])
    assert refused_problem(conn) is None


def test_packet_table_reads_like_wiresharks_list():
    table = packet_table(read_pcap(pcap(lab_exchange())), SERVER[1]).splitlines()
    assert table[0].split() == ["No.", "Time", "Source", "Destination", "Protocol", "Length", "Info"]
    assert table[1].endswith("50390 \u2192 8888 [SYN] Seq=0 Win=502 Len=0")
    assert "8888 \u2192 50390 [SYN, ACK] Seq=0 Ack=1" in table[2]
    assert "50390 \u2192 8888 [PSH, ACK] Seq=1 Ack=1 Win=502 Len=5" in table[4]


def tcp6(src, dst, flags, seq, ack, *, data=b"", options=b"", hop_by_hop=False):
    """An IPv6 TCP packet as bytes, optionally behind a hop-by-hop options header (RFC 8200 4.3)."""
    segment = dpkt.tcp.TCP(sport=src[1], dport=dst[1], seq=seq, ack=ack, flags=flags, win=502, opts=options)
    segment.off = 5 + len(options) // 4
    segment.data = data
    payload = bytes(segment)
    if hop_by_hop:
        payload = bytes([dpkt.ip.IP_PROTO_TCP, 0, 1, 4, 0, 0, 0, 0]) + payload  # one PadN option
    header = struct.pack(
        "!IHBB16s16s",
        6 << 28,
        len(payload),
        0 if hop_by_hop else dpkt.ip.IP_PROTO_TCP,
        64,
        socket.inet_pton(socket.AF_INET6, src[0]),
        socket.inet_pton(socket.AF_INET6, dst[0]),
    )
    return header + payload


def test_reads_ipv6_extension_headers_and_names_the_options_like_wireshark():
    client, server = ("fd00::2", 50390), ("fd00::3", 8888)
    syn_options = b"\x02\x04\x05\xb4\x04\x02\x08\x0a" + struct.pack("!II", 7, 0) + b"\x01\x03\x03\x07"
    sack = b"\x01\x01\x05\x0a" + struct.pack("!II", S_ISN + 11, S_ISN + 21)  # bytes 11-20 arrived
    packets = [
        tcp6(client, server, SYN, C_ISN, 0, options=syn_options, hop_by_hop=True),
        tcp6(server, client, SYN | ACK, S_ISN, C_ISN + 1, options=b"\x01\x01\x04\x02"),
        tcp6(client, server, ACK, C_ISN + 1, S_ISN + 1, options=sack),
    ]
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, linktype=101)
    for i, packet in enumerate(packets):
        writer.writepkt(packet, ts=1700000000 + i * 0.001)
    segments = read_pcap(out.getvalue())
    assert [(s.src, s.dst, s.flag_names) for s in segments] == [
        (client, server, "SYN"),
        (server, client, "SYN, ACK"),
        (client, server, "ACK"),
    ]
    table = packet_table(segments, server[1]).splitlines()
    assert table[1].endswith("[SYN] Seq=0 Win=502 Len=0 MSS=1460 SACK_PERM TSval=7 TSecr=0 WS=128"), table[1]
    # The SYN/ACK carries no window scale, so neither side's window is scaled (RFC 7323 2.2).
    assert table[3].endswith("[ACK] Seq=1 Ack=1 Win=502 Len=0 SLE=11 SRE=21"), table[3]


def retransmission_exchange(c_isn=C_ISN, s_isn=S_ISN):
    """The client sends five 10-byte segments; the second is lost on the way, so the server
    acknowledges the first and then repeats that ACK three times (duplicate ACKs) until the client
    retransmits the second (RFC 5681 fast retransmit); then the server acknowledges all 50 bytes."""
    send = [tcp(CLIENT, SERVER, PSH | ACK, c_isn + 1 + 10 * i, s_isn + 1, data=bytes([65 + i]) * 10) for i in range(5)]
    ack = [tcp(SERVER, CLIENT, ACK, s_isn + 1, c_isn + 1 + n) for n in (10, 10, 10, 10, 50)]
    return [
        tcp(CLIENT, SERVER, SYN, c_isn, 0),
        tcp(SERVER, CLIENT, SYN | ACK, s_isn, c_isn + 1),
        tcp(CLIENT, SERVER, ACK, c_isn + 1, s_isn + 1),
        send[0],  # frame 4
        ack[0],
        send[1],  # frame 6: lost after the capture saw it
        send[2],
        ack[1],  # frame 8: duplicate ACK 1
        send[3],
        ack[2],  # frame 10: duplicate ACK 2
        send[4],
        ack[3],  # frame 12: duplicate ACK 3
        send[1],  # frame 13: the retransmission
        ack[4],
        tcp(CLIENT, SERVER, FIN | ACK, c_isn + 51, s_isn + 1),
        tcp(SERVER, CLIENT, FIN | ACK, s_isn + 1, c_isn + 52),
        tcp(CLIENT, SERVER, ACK, c_isn + 52, s_isn + 2),
    ]


@pytest.mark.parametrize("c_isn", [C_ISN, 2**32 - 25], ids=["isn-1000", "isn-wraps"])
def test_retransmissions_and_duplicate_acks_are_marked_like_wireshark(c_isn):
    table = packet_table(read_pcap(pcap(retransmission_exchange(c_isn=c_isn))), SERVER[1]).splitlines()
    marked = {int(line.split()[0]): line[line.index("[TCP") :] for line in table[1:] if "[TCP" in line}
    assert marked == {
        8: "[TCP Dup ACK] 8888 \u2192 50390 [ACK] Seq=1 Ack=11 Win=502 Len=0",
        10: "[TCP Dup ACK] 8888 \u2192 50390 [ACK] Seq=1 Ack=11 Win=502 Len=0",
        12: "[TCP Dup ACK] 8888 \u2192 50390 [ACK] Seq=1 Ack=11 Win=502 Len=0",
        13: "[TCP Retransmission] 50390 \u2192 8888 [PSH, ACK] Seq=11 Ack=1 Win=502 Len=10",
    }, "\n".join(table)


def test_a_retransmission_is_counted_once_and_acknowledged_by_the_highest_ack():
    (conn,) = connections(read_pcap(pcap(retransmission_exchange())), SERVER[1])
    sent = b"".join(bytes([65 + i]) * 10 for i in range(5))
    assert conn.stream(from_client=True) == sent
    assert data_problem(conn, sent, b"") is None
    assert teardown_problem(conn) is None


def test_a_window_change_or_data_is_not_a_duplicate_ack():
    packets = retransmission_exchange()
    packets[7] = tcp(SERVER, CLIENT, ACK, S_ISN + 1, C_ISN + 11, win=400)  # a window update
    packets[9] = tcp(SERVER, CLIENT, ACK, S_ISN + 1, C_ISN + 11, win=400)  # the same again: a duplicate
    packets[11] = tcp(SERVER, CLIENT, PSH | ACK, S_ISN + 1, C_ISN + 11, win=400, data=b"x")
    table = packet_table(read_pcap(pcap(packets)), SERVER[1]).splitlines()
    assert [int(line.split()[0]) for line in table[1:] if "[TCP Dup ACK]" in line] == [10]


def test_a_new_isn_on_the_same_ports_is_a_new_connection_not_a_retransmission():
    packets = lab_exchange() + lab_exchange(c_isn=C_ISN + 90_000, s_isn=S_ISN + 70_000)
    segments = read_pcap(pcap(packets))
    assert len(connections(segments, SERVER[1])) == 2
    for port in (SERVER[1], None):
        table = packet_table(segments, port)
        assert "[TCP" not in table, table


def long_exchange(rounds=164, retransmit_at=80, refused_at=100):
    """A connection echoing ``rounds`` 10-byte messages (data, echo, ACK), about 500 segments: the
    echo of round ``retransmit_at`` is sent twice, and another client is refused in round
    ``refused_at``; then the FIN teardown."""
    packets = lab_exchange()[:3]
    c, s = C_ISN + 1, S_ISN + 1
    for i in range(rounds):
        message = bytes([48 + i % 10]) * 10
        packets.append(tcp(CLIENT, SERVER, PSH | ACK, c, s, data=message))
        echo = tcp(SERVER, CLIENT, PSH | ACK, s, c + 10, data=message)
        packets += [echo, echo] if i == retransmit_at else [echo]
        c, s = c + 10, s + 10
        packets.append(tcp(CLIENT, SERVER, ACK, c, s))
        if i == refused_at:
            other = ("10.9.0.2", 50391)
            packets += [tcp(other, SERVER, SYN, 77, 0), tcp(SERVER, other, RST | ACK, 0, 78)]
    return [
        *packets,
        tcp(CLIENT, SERVER, FIN | ACK, c, s),
        tcp(SERVER, CLIENT, FIN | ACK, s, c + 1),
        tcp(CLIENT, SERVER, ACK, c + 1, s + 1),
    ]


def test_a_long_table_folds_to_a_screen_keeping_the_handshake_teardown_and_every_anomaly():
    segments = read_pcap(pcap(long_exchange()))
    assert len(segments) == 3 + 164 * 3 + 1 + 2 + 3
    table = packet_table(segments, SERVER[1]).splitlines()
    assert len(table) < 40, "\n".join(table)
    shown = [int(line.split()[0]) for line in table[1:] if not line.startswith("...")]
    last = len(segments)
    # Handshake 1-3; data rows 4, 5, 7, 8 (and the ACK 6 between: a fold line would not be shorter);
    # frame 246 (round 80's echo, again); the refused SYN and its RST, 308 and 309; the last 4 data
    # rows (round 163's data and echo, the two of round 162 and the ACKs between) and the teardown.
    assert shown == [1, 2, 3, 4, 5, 6, 7, 8, 246, 308, 309, *range(last - 8, last + 1)], "\n".join(table)
    assert "[TCP Retransmission] 8888 \u2192 50390 [PSH, ACK] Seq=801 Ack=811" in table[10]
    assert "[RST, ACK]" in table[13]
    # Folded: frames 9-245 (round 1's ACK, rounds 2-79, round 80's data and first echo); 247-307
    # (round 80's ACK, rounds 81-100); 310-492 (rounds 101-161).
    folds = [line for line in table if line.startswith("...")]
    assert folds == [
        f"... 237 data segments ({79 * 20} bytes) ...",
        f"... 61 data segments ({20 * 20} bytes) ...",
        f"... {last - 8 - 310} data segments ({(162 - 101) * 20} bytes) ...",
    ]


def test_a_short_table_or_fold_false_shows_every_row():
    segments = read_pcap(pcap(long_exchange()))
    assert len(packet_table(segments, SERVER[1], fold=False).splitlines()) == len(segments) + 1
    (conn, _) = connections(segments, SERVER[1])
    assert len(connection_table(conn, fold=False).splitlines()) == len(conn.segments) + 1
    assert "..." in connection_table(conn)
    short = packet_table(read_pcap(pcap(lab_exchange())), SERVER[1])
    assert len(short.splitlines()) == 11
    assert "..." not in short


def test_an_unacknowledged_echo_and_a_wrong_echo_are_caught():
    (conn,) = connections(read_pcap(pcap(lab_exchange()[:6])), SERVER[1])  # the client never ACKs the echo
    assert data_problem(conn, b"Hello", b"Hello") == "the server's data in frame 6 (Seq=1 Len=5) is never acknowledged"
    (conn,) = connections(read_pcap(pcap(lab_exchange(b"Hellp"))), SERVER[1])
    assert data_problem(conn, b"Hellp", b"Hello") == (
        "the server's data segments carry 5 bytes, not the 5 it sent (same length, other bytes)"
    )


@pytest.mark.parametrize(("c_isn", "s_isn"), [(2**32 - 3, 2**32 - 1), (2**32 - 1, 2**32 - 6)])
def test_sequence_numbers_that_wrap_past_2_32_are_judged_right(c_isn, s_isn):
    message = b"Hello, world"
    (conn,) = connections(read_pcap(pcap(lab_exchange(message, c_isn=c_isn, s_isn=s_isn))), SERVER[1])
    assert handshake_problem(conn) is None
    assert data_problem(conn, message, message) is None
    assert teardown_problem(conn) is None
    assert conn.stream(from_client=False) == message
    assert "50390 \u2192 8888 [FIN, ACK] Seq=13 Ack=13" in connection_table(conn)
    packets = lab_exchange(message, c_isn=c_isn, s_isn=s_isn)[:6]
    packets.append(tcp(CLIENT, SERVER, ACK, c_isn + 13, s_isn + 12))  # one byte short of the echo
    (conn,) = connections(read_pcap(pcap(packets)), SERVER[1])
    assert data_problem(conn, message, message) == "the server's data in frame 6 (Seq=1 Len=12) is never acknowledged"


def test_a_connection_begun_before_the_capture_is_shown_with_absolute_numbers():
    packets = lab_exchange()[3:]  # no handshake: tcpdump started after it
    (conn,) = connections(read_pcap(pcap(packets)), SERVER[1])
    assert conn.client_isn is None and conn.server_isn is None
    assert data_problem(conn, b"Hello", b"Hello") == "the client's data segments carry 0 bytes, not the 5 it sent"
    assert data_problem(conn, b"", b"") is None
    assert teardown_problem(conn) is None
    assert f"[PSH, ACK] Seq={C_ISN + 1} Ack={S_ISN + 1}" in connection_table(conn)


def test_isns_follow_segments_appended_after_they_were_first_asked_for():
    segments = read_pcap(pcap(lab_exchange()))
    conn = Connection(client=CLIENT, server=SERVER)
    assert conn.client_isn is None
    conn.add(segments[0])
    assert (conn.client_isn, conn.server_isn) == (C_ISN, None)
    conn.segments.append(segments[1])
    assert conn.server_isn == S_ISN
    assert conn.relative(segments[1]) == (0, 1)
