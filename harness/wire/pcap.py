"""Packets from a pcap: every TCP segment tcpdump wrote, whatever the link type, as ``Segment``s.

dpkt reads the pcap's records; the link, IP and TCP headers are decoded with struct (see read_pcap).
"""

from __future__ import annotations

import io
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dpkt

from harness.remote import pcaptrim

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = (1 << bit for bit in range(8))
# Wireshark names the flags from the lowest bit up: [SYN, ACK], [PSH, ACK], [FIN, ACK], [RST, ACK].
FLAG_NAMES = tuple(
    zip((FIN, SYN, RST, PSH, ACK, URG, ECE, CWR), ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"))
)
SEQ_SPACE = 1 << 32
HALF_SPACE = SEQ_SPACE // 2

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
    payload: bytes  # as captured: shorter than ``length`` only where the record was cut (SNAP)
    options: tuple[tuple[int, bytes], ...] = ()
    length: int = -1  # the payload's length on the wire, from the IP header (-1: len(payload))

    def __post_init__(self) -> None:
        if self.length < 0:
            object.__setattr__(self, "length", len(self.payload))

    def has(self, flags: int) -> bool:
        return self.flags & flags == flags

    @property
    def flag_names(self) -> str:
        return ", ".join(name for bit, name in FLAG_NAMES if self.flags & bit)

    @property
    def seq_len(self) -> int:
        """Sequence space consumed: the payload, plus one each for SYN and FIN."""
        return self.length + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)


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
            src, dst, tcp, end, wire_end = found
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
                    length=max(0, wire_end - tcp - header_len),
                )
            )
    return segments


# The record layout, as the hosts' reader (harness/remote/pcaptrim.py) has it.
GLOBAL_HEADER, RECORD_HEADER, _MAGIC_LITTLE = pcaptrim.GLOBAL_HEADER, pcaptrim.RECORD_HEADER, pcaptrim.LITTLE


class PcapRecords:
    """The records of a pcap being written (tcpdump -U), read in place: each one's length, and the
    TCP ports of its frame. For slicing a growing file without parsing it twice."""

    def __init__(self, header: bytes) -> None:
        order = "<" if header[:4] in _MAGIC_LITTLE else ">"
        self._length = struct.Struct(order + "8xI")
        link_type = struct.unpack_from(order + "20xI", header)[0] & 0x0FFFFFFF
        self._ip_offset = _link_decoder(link_type)

    def length(self, buffer: bytes, position: int) -> int:
        """The captured length of the record whose header starts at ``position``."""
        return int(self._length.unpack_from(buffer, position)[0])

    def ports(self, buffer: bytes, start: int, end: int) -> tuple[int, int] | None:
        """(source port, destination port) of the TCP segment in the frame at buffer[start:end]."""
        frame = memoryview(buffer)[start:end]
        found = _tcp_bounds(frame, self._ip_offset(frame))  # type: ignore[arg-type]
        if found is None or found[2] + 4 > len(frame):
            return None
        sport, dport = _PORTS.unpack_from(frame, found[2])
        return sport, dport


_PORTS = struct.Struct("!HH")


def pcap_records(header: bytes) -> PcapRecords:
    """A reader of records for the pcap whose global header is ``header``; ValueError for a link
    type the harness cannot decode."""
    return PcapRecords(header)


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


def _tcp_bounds(frame: bytes, ip: int) -> tuple[bytes, bytes, int, int, int] | None:
    """(source address, destination address, offset of the TCP header, end of its payload in the
    frame, where that end would be had the record not been cut) of an IP packet at ``ip`` that
    carries the start of a TCP segment; None for anything else."""
    if ip < 0 or len(frame) <= ip:
        return None
    version = frame[ip] >> 4
    return _ipv4_tcp(frame, ip) if version == 4 else _ipv6_tcp(frame, ip) if version == 6 else None


def _ipv4_tcp(frame: bytes, ip: int) -> tuple[bytes, bytes, int, int, int] | None:
    header_len = (frame[ip] & 0x0F) * 4
    if len(frame) < ip + header_len + 20 or header_len < 20 or frame[ip + 9] != _IPPROTO_TCP:
        return None
    if (frame[ip + 6] & 0x1F) or frame[ip + 7]:
        return None  # a later fragment: no TCP header in it
    total = frame[ip + 2] << 8 | frame[ip + 3]
    # A total length of 0 comes from segmentation offload; Ethernet pads short frames past it.
    end = min(ip + total, len(frame)) if total else len(frame)
    return frame[ip + 12 : ip + 16], frame[ip + 16 : ip + 20], ip + header_len, end, ip + total if total else end


def _ipv6_tcp(frame: bytes, ip: int) -> tuple[bytes, bytes, int, int, int] | None:
    if len(frame) < ip + 40:
        return None
    payload_len = frame[ip + 4] << 8 | frame[ip + 5]
    end = min(ip + 40 + payload_len, len(frame)) if payload_len else len(frame)  # 0: a jumbogram
    wire_end = ip + 40 + payload_len if payload_len else end
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
    return frame[ip + 8 : ip + 24], frame[ip + 24 : ip + 40], offset, end, wire_end


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
