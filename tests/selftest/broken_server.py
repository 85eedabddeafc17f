"""An echo server with one deliberate defect, to prove the behaviour suite catches each kind.

    python3 broken_server.py DEFECT --port P [--backlog N]

Any other DEFECT (e.g. "correct") runs a correct echo server.
Defects that must fail the suite: truncate, drop-nul, extra-newline, reset-on-close, dies-on-reset,
ignores-backlog, one-client, never-listens, exits-at-once. Correct but unusual servers that must
pass: slow-start (listens after 2 s), silent (prints nothing, binds loopback only).
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import time


def serve(conn: socket.socket, defect: str) -> None:
    sent = 0
    while True:
        try:
            data = conn.recv(65536)
        except ConnectionResetError:
            if defect == "dies-on-reset":
                raise
            return
        if not data:
            break
        if defect == "truncate":
            data = data[: max(0, 1000 - sent)]
        elif defect == "drop-nul":
            data = data.replace(b"\x00", b"")
        elif defect == "extra-newline":
            data += b"\n"
        try:
            conn.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            if defect == "dies-on-reset":
                raise
            return
        sent += len(data)
    if defect == "reset-on-close":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


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
    listener.bind(("127.0.0.1" if args.defect == "silent" else "0.0.0.0", args.port))
    listener.listen(64 if args.defect == "ignores-backlog" else args.backlog)
    if talk:
        print(f"broken_server ({args.defect}) listening on {args.port}", flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            serve(conn, args.defect)
        if args.defect == "one-client":
            return 0


if __name__ == "__main__":
    sys.exit(main())
