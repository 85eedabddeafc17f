"""Reading pcaps of every link type tcpdump writes, and judging TCP exchanges by sequence arithmetic."""

from __future__ import annotations

import io
import socket
import struct

import dpkt
import pytest

from harness.wire import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    connections,
    data_problem,
    handshake_problem,
    lab_ladder,
    ladder_problem,
    packet_table,
    read_pcap,
    refused_problem,
    teardown_problem,
)

CLIENT, SERVER = ("10.9.0.2", 50390), ("10.9.0.3", 8888)
C_ISN, S_ISN = 1000, 5000


def tcp(src, dst, flags, seq, ack, *, data=b""):
    segment = dpkt.tcp.TCP(sport=src[1], dport=dst[1], seq=seq, ack=ack, flags=flags, win=502, data=data)
    segment.off = 5
    packet = dpkt.ip.IP(
        src=socket.inet_aton(src[0]), dst=socket.inet_aton(dst[0]), p=dpkt.ip.IP_PROTO_TCP, data=segment
    )
    packet.len = len(bytes(packet))
    return packet


def lab_exchange(message=b"Hello", server_ends_with=FIN | ACK):
    """The textbook ten segments: handshake, data and ACKs, FIN/ACK teardown."""
    n = len(message)
    return [
        tcp(CLIENT, SERVER, SYN, C_ISN, 0),
        tcp(SERVER, CLIENT, SYN | ACK, S_ISN, C_ISN + 1),
        tcp(CLIENT, SERVER, ACK, C_ISN + 1, S_ISN + 1),
        tcp(CLIENT, SERVER, PSH | ACK, C_ISN + 1, S_ISN + 1, data=message),
        tcp(SERVER, CLIENT, ACK, S_ISN + 1, C_ISN + 1 + n),
        tcp(SERVER, CLIENT, PSH | ACK, S_ISN + 1, C_ISN + 1 + n, data=message),
        tcp(CLIENT, SERVER, ACK, C_ISN + 1 + n, S_ISN + 1 + n),
        tcp(CLIENT, SERVER, FIN | ACK, C_ISN + 1 + n, S_ISN + 1 + n),
        tcp(SERVER, CLIENT, server_ends_with, S_ISN + 1 + n, C_ISN + 2 + n),
        tcp(CLIENT, SERVER, ACK, C_ISN + 2 + n, S_ISN + 2 + n),
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
    [dpkt.pcap.DLT_EN10MB, dpkt.pcap.DLT_LINUX_SLL, dpkt.pcap.DLT_LINUX_SLL2, dpkt.pcap.DLT_RAW],
    ids=["ethernet", "sll", "sll2", "raw-ip"],
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
