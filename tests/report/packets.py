"""Synthetic TCP exchanges for the report tests: dpkt packets, written as pcaps."""

from __future__ import annotations

import socket
from pathlib import Path

import dpkt

from harness.wire.pcap import ACK, FIN, PSH, RST, SYN

CLIENT, SERVER = ("10.9.0.2", 50390), ("10.9.0.3", 8888)
C_ISN, S_ISN = 1000, 5000
LINKTYPE_RAW = 101  # raw IP, as tcpdump writes for some interfaces


def tcp(src, dst, flags, seq, ack, *, data=b""):
    segment = dpkt.tcp.TCP(sport=src[1], dport=dst[1], seq=seq % 2**32, ack=ack % 2**32, flags=flags, data=data)
    segment.off = 5
    packet = dpkt.ip.IP(
        src=socket.inet_aton(src[0]), dst=socket.inet_aton(dst[0]), p=dpkt.ip.IP_PROTO_TCP, data=segment
    )
    packet.len = len(bytes(packet))
    return packet


def exchange(message=b"Hello world!\n", server_ends_with=FIN | ACK, *, client=CLIENT):
    """The lab's ten segments; ``server_ends_with=RST | ACK`` is a server that resets instead of its FIN."""
    n, c, s = len(message), C_ISN, S_ISN
    return [
        tcp(client, SERVER, SYN, c, 0),
        tcp(SERVER, client, SYN | ACK, s, c + 1),
        tcp(client, SERVER, ACK, c + 1, s + 1),
        tcp(client, SERVER, PSH | ACK, c + 1, s + 1, data=message),
        tcp(SERVER, client, ACK, s + 1, c + 1 + n),
        tcp(SERVER, client, PSH | ACK, s + 1, c + 1 + n, data=message),
        tcp(client, SERVER, ACK, c + 1 + n, s + 1 + n),
        tcp(client, SERVER, FIN | ACK, c + 1 + n, s + 1 + n),
        tcp(SERVER, client, server_ends_with, s + 1 + n, c + 2 + n),
        tcp(client, SERVER, ACK, c + 2 + n, s + 2 + n),
    ][: 9 if server_ends_with & RST else 10]


def write_pcap(path: Path, packets, step: float = 0.0001) -> Path:
    with path.open("wb") as out:
        writer = dpkt.pcap.Writer(out, linktype=LINKTYPE_RAW)
        for i, packet in enumerate(packets):
            writer.writepkt(bytes(packet), ts=1_700_000_000 + i * step)
    return path
