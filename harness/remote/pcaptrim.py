"""Reading a pcap that tcpdump is writing, with every large record cut to its headers.

A test that judges only a connection's flags (a reset: harness/wire/tcp.py's reset_problem) can
have its capture read this way: records longer than ``snap`` bytes come back cut to ``snap`` (their
original length kept in the record header, as tcpdump -s writes them), so the payload it never
looks at is not read, sent from a Pi over SSH, or parsed. Where it matters: the probe that resets
with its echo unread moves some 20 MB before the server is stuck, and the harness fetched all of
it through the agent, from a Pi as base64 in one message, to look at the RST flags. Standard
library only, Python 3.9+: the agent uses it on its host, the harness on this machine.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Optional, Tuple

GLOBAL_HEADER = 24  # a pcap file's header; then each record: a 16-byte header and the frame
RECORD_HEADER = 16
LITTLE = (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")  # microsecond and nanosecond pcaps


#: The most one read takes from the file: an agent's answer is one message, which must cross a Pi's
#: link well within the harness's 10 s for a request (a 20 MB burst in another worker's slice took
#: longer on the stand-in Pi under load). A slice behind more is read in several.
LIMIT = 4 << 20


def read(path: str, offset: int, snap: Optional[int] = None, limit: int = LIMIT) -> Tuple[bytes, int]:
    """Up to ``limit`` of the file's bytes from ``offset`` (where a record or the file starts) and
    how many of the file's bytes they stand for. With ``snap``: whole records only (at least one,
    however long), each cut to ``snap`` bytes."""
    try:
        with open(path, "rb") as file:
            magic = file.read(4)
            file.seek(offset)
            data = file.read(limit)
            if snap is not None and data:
                data += _rest_of_first_record(file, data, magic, offset == 0)
    except FileNotFoundError:
        return b"", 0
    if snap is None:
        return data, len(data)
    return trim(data, magic, snap, at_start=offset == 0)


def _rest_of_first_record(file: BinaryIO, data: bytes, magic: bytes, at_start: bool) -> bytes:
    """What ``data`` lacks of its first record (one longer than the limit is read whole)."""
    start = GLOBAL_HEADER if at_start else 0
    if len(data) < start + RECORD_HEADER:
        return b""
    captured = struct.unpack_from(("<" if magic in LITTLE else ">") + "8xI", data, start)[0]
    missing = start + RECORD_HEADER + captured - len(data)
    return file.read(missing) if missing > 0 else b""


def trim(data: bytes, magic: bytes, snap: int, at_start: bool) -> Tuple[bytes, int]:
    """``data``'s whole records, each cut to ``snap`` bytes, and how many bytes of ``data`` they
    stand for (a record still being written is left for the next read)."""
    position = GLOBAL_HEADER if at_start else 0
    if len(data) < position:
        return b"", 0
    header = struct.Struct(("<" if magic in LITTLE else ">") + "IIII")
    out = [data[:position]]
    size = len(data)
    while position + RECORD_HEADER <= size:
        seconds, fraction, captured, length = header.unpack_from(data, position)
        end = position + RECORD_HEADER + captured
        if end > size:
            break
        if captured > snap:
            out.append(header.pack(seconds, fraction, snap, length))
            out.append(data[position + RECORD_HEADER : position + RECORD_HEADER + snap])
        else:
            out.append(data[position:end])
        position = end
    return b"".join(out), position
