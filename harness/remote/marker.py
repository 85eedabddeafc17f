"""Capture markers: a datagram to the discard port carrying a token, sent through the captured
interface, and after an end marker the filler that pushes it out of tcpdump's kernel ring at once.

tcpdump reads a TPACKET_V3 ring (harness/wire/capture.py): the kernel hands it a block of packets
when the block is full, or after tcpdump's one-second timeout. A marker that must reach the file
now is followed by more than a block's worth of datagrams (blocks are 128 KiB for a 65,600-byte
snapshot): the block that holds the marker fills up and goes to tcpdump at once. Every sender here
goes through the loopback of the captured namespace (64 KiB datagrams); a link with a smaller MTU
gets a hundred one-frame datagrams instead. Standard library only, Python 3.9+.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Optional

DISCARD = 9
FILL = (3, 65000)  # 195,000 bytes after the marker: more than one 128 KiB block
FILL_SMALL = (100, 1400)  # 140,000 bytes in frames any link carries whole
FILLER = b"\0" * FILL[1]


def send(address: str, token: bytes, flush: bool, sock: Optional[socket.socket] = None) -> None:
    """``token`` to ``address``'s discard port, and with ``flush`` the filler after it; through
    ``sock`` if given (one made in another network namespace), else a socket of our own. Errors are
    ignored: an ICMP unreachable from an earlier marker, say (a marker that never arrives is
    noticed by the harness, which sends it again)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with contextlib.ExitStack() as stack:
        if sock is None:
            sock = stack.enter_context(socket.socket(family, socket.SOCK_DGRAM))
        with contextlib.suppress(OSError):
            sock.sendto(token, (address, DISCARD))
        if not flush:
            return
        try:
            for _ in range(FILL[0]):
                sock.sendto(FILLER, (address, DISCARD))
        except OSError:  # EMSGSIZE: not a loopback; ECONNREFUSED: the previous filler's ICMP
            with contextlib.suppress(OSError):
                for _ in range(FILL_SMALL[0]):
                    sock.sendto(FILLER[: FILL_SMALL[1]], (address, DISCARD))
