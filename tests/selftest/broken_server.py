"""An echo server with one deliberate defect, to prove the behaviour suite catches each kind.

    python3 broken_server.py DEFECT --port P [--backlog N]

Any other DEFECT (e.g. "correct") runs a correct echo server.
Defects that must fail the suite: truncate (at byte 1000), drop-nul, extra-newline, drop-last-byte
(of every read), first-chunk-only (echoes one read per connection), stop-at-64k, no-fin (forgets
close(): the client's FIN is never answered), reset-on-close, dies-on-reset, ignores-backlog,
one-client, never-listens, exits-at-once, ignores-short-writes (reads 4 KiB, one non-blocking send()
per read: what does not fit in the socket's buffer is lost; on a fast link it shows only under load,
under --net rate=... always).
Correct but unusual servers that must pass: slow-start (listens after 2 s), silent (prints nothing),
loopback-only (binds 127.0.0.1: only reachable from the same host), one-byte-writes (one send() per
byte), coalesced (reads until the socket is drained, then writes it back in one go).
Standard library only, Python 3.9+: it also runs inside the server container.
"""

from __future__ import annotations

import argparse
import contextlib
import select
import socket
import struct
import sys
import time

LIMITS = {"truncate": 1000, "stop-at-64k": 65536}
forgotten: list[socket.socket] = []  # no-fin: connections it never closes


def transform(data: bytes, defect: str, sent: int, reads: int) -> bytes:
    """What the defect makes of one read before it is written back."""
    if defect in LIMITS:
        return data[: max(0, LIMITS[defect] - sent)]
    if defect == "drop-nul":
        return data.replace(b"\x00", b"")
    if defect == "extra-newline":
        return data + b"\n"
    if defect == "drop-last-byte":
        return data[:-1]
    if defect == "first-chunk-only":
        return data if reads == 1 else b""
    return data


def write(conn: socket.socket, data: bytes, defect: str) -> None:
    if defect == "ignores-short-writes":
        # send() may take fewer bytes than given (a full send buffer, a slow peer); the rest is
        # never sent. MSG_DONTWAIT makes it short at once instead of blocking until there is room.
        with contextlib.suppress(BlockingIOError):
            conn.send(data, socket.MSG_DONTWAIT)
        return
    if defect == "one-byte-writes":
        for i in range(len(data)):
            conn.sendall(data[i : i + 1])
    else:
        conn.sendall(data)


def read(conn: socket.socket, defect: str) -> bytes:
    data = conn.recv(4096 if defect == "ignores-short-writes" else 65536)
    if defect == "coalesced" and data:
        # Everything the client has sent so far, in one write: other segment boundaries than it wrote.
        while len(data) < 1 << 20 and select.select([conn], [], [], 0.002)[0]:
            more = conn.recv(65536)
            if not more:
                break  # EOF: the next recv sees it again and ends the session
            data += more
    return data


def serve(conn: socket.socket, defect: str) -> bool:
    """One client; False when the connection must stay open (no-fin)."""
    sent = reads = 0
    while True:
        try:
            data = read(conn, defect)
        except ConnectionResetError:
            if defect == "dies-on-reset":
                raise
            return True
        if not data:
            break
        reads += 1
        data = transform(data, defect, sent, reads)
        try:
            write(conn, data, defect)
        except (BrokenPipeError, ConnectionResetError):
            if defect == "dies-on-reset":
                raise
            return True
        sent += len(data)
    if defect == "reset-on-close":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return defect != "no-fin"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("defect")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backlog", type=int, default=3)
    args = parser.parse_args()
    talk = args.defect != "silent"
    if args.defect == "exits-at-once":
        print("broken_server: giving up before listening", flush=True)
        return 3
    if args.defect == "never-listens":
        print("broken_server: thinking about it...", flush=True)
        time.sleep(3600)
    if args.defect == "slow-start":
        time.sleep(2.0)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1" if args.defect == "loopback-only" else "0.0.0.0", args.port))
    listener.listen(64 if args.defect == "ignores-backlog" else args.backlog)
    if talk:
        print(f"broken_server ({args.defect}) listening on {args.port}", flush=True)
    while True:
        conn, _ = listener.accept()
        if args.defect == "ignores-short-writes":
            # A fixed 128 KiB buffer (the kernel doubles what is asked): a reader on a fast link
            # mostly keeps room in it; a slow link always fills it.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        if serve(conn, args.defect):
            conn.close()
        else:
            forgotten.append(conn)
        if args.defect == "one-client":
            return 0


if __name__ == "__main__":
    sys.exit(main())
