"""A scripted echo server for judging a client: it echoes the way a test asks, and says what it got.

    python3 scripted_server.py --port P [--host 0.0.0.0] [--mode echo|split|gather|close-after-echo]

Clients are served one at a time, as the lab's server does. Every event is one JSON line on stdout
("listening", "accepted", "recv" with the bytes, "echoed", "eof", "reset", "closed", "mark"), so the
harness learns exactly what the client sent, and when.

Modes: "echo" writes back each read at once; "split" writes each read back in two parts DELAY apart
(the client must not print half a reply); "gather" waits DELAY after the first byte of a line,
collecting everything that comes, and then echoes it (so a line the client sends in one go is
seen whole before any echo); "close-after-echo" echoes the first read and then closes.

A control port (--control, default P + 1) takes "mark N" lines from the harness's client driver
before it types line N, answered "ok N": the recv events between two marks are that line's bytes.
"sync N" is answered "done N" once the echo of line N has been sent (at once if it was), so the
driver types the next line only when the client has its reply; "none N" once close-after-echo has
closed the connection without echoing line N. "end" says the session is over:
the "end" event it prints follows every event of the session.
Standard library only, Python 3.9+: it runs on the server host (a container, a Pi).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import socket
import sys
import time
from typing import Any, Dict, List, Optional, Set

STARTED = time.monotonic()


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": round(time.monotonic() - STARTED, 6), **fields}), flush=True)


def listener(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(8)
    return sock


class Controls:
    """The control port: marks from the client driver, acknowledged once recorded."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.peers: List[socket.socket] = []
        self.pending: Dict[socket.socket, bytes] = {}
        self.line = 0  # the line the driver last marked
        self.echoed: Set[int] = set()  # lines whose echo has been sent
        self.syncs: Dict[int, socket.socket] = {}
        self.closed = False  # close-after-echo has closed the connection: no later line gets an echo

    def sockets(self) -> list[socket.socket]:
        return [self.sock, *self.peers]

    def handle(self, ready: socket.socket) -> None:
        if ready is self.sock:
            peer, _ = self.sock.accept()
            self.peers.append(peer)
            self.pending[peer] = b""
            return
        data = ready.recv(4096)
        if not data:
            self.peers.remove(ready)
            self.pending.pop(ready, None)
            ready.close()
            return
        buffer = self.pending[ready] + data
        *lines, self.pending[ready] = buffer.split(b"\n")
        for line in lines:
            words = line.decode("ascii", "replace").split()
            if words == ["end"]:  # the driver is done: every event before this one is out
                say("end")
                continue
            if len(words) != 2 or not words[1].isdigit():
                continue
            number = int(words[1])
            if words[0] == "mark":
                self.line = number
                say("mark", line=number)
                ready.sendall(b"ok %d\n" % number)
            elif words[0] == "sync":
                self.syncs[number] = ready
                self.answer()

    def echo_sent(self) -> None:
        self.echoed.add(self.line)
        self.answer()

    def answer(self) -> None:
        for number in [n for n in self.syncs if n in self.echoed or self.closed]:
            peer = self.syncs.pop(number)
            with contextlib.suppress(OSError):
                peer.sendall(b"%s %d\n" % (b"done" if number in self.echoed else b"none", number))

    def server_closed(self, closed: bool = True) -> None:
        """After close-after-echo's close, a sync for a line without its echo is answered "none N"
        at once: the driver need not wait for an echo that cannot come (a new connection undoes it)."""
        self.closed = closed
        self.answer()


def serve(conn: socket.socket, mode: str, delay: float, controls: Controls) -> None:
    """One client, until it closes (or, in close-after-echo, until its first echo).

    The client's bytes are read before the control port's: the driver types line N only once
    "mark N" is answered, so bytes ready together with a mark belong to an earlier line. After
    either, select again: what was ready may have been read meanwhile (gather, split)."""
    while True:
        ready, _, _ = select.select([conn, *controls.sockets()], [], [])
        if conn not in ready:
            for sock in ready:
                controls.handle(sock)
            continue
        try:
            data = conn.recv(65536)
        except ConnectionResetError:
            say("reset")
            return
        if not data:
            say("eof")
            return
        say("recv", hex=data.hex())
        if mode == "gather":
            data += gather(conn, delay, controls)
        if not echo(conn, data, mode, delay):
            return
        controls.echo_sent()
        if mode == "close-after-echo":
            conn.close()
            controls.server_closed()
            return


def gather(conn: socket.socket, delay: float, controls: Controls) -> bytes:
    """Everything else the client sends within ``delay`` of the first byte (its line, whole)."""
    got = b""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        ready, _, _ = select.select([conn, *controls.sockets()], [], [], max(0.0, deadline - time.monotonic()))
        if conn in ready:
            more = conn.recv(65536)
            if not more:
                break
            say("recv", hex=more.hex())
            got += more
        else:
            for sock in ready:
                controls.handle(sock)
    return got


def echo(conn: socket.socket, data: bytes, mode: str, delay: float) -> bool:
    parts = [data[: len(data) // 2], data[len(data) // 2 :]] if mode == "split" and len(data) > 1 else [data]
    try:
        for i, part in enumerate(parts):
            if i:
                time.sleep(delay)
            conn.sendall(part)
    except (BrokenPipeError, ConnectionResetError):
        say("reset")
        return False
    say("echoed", n=len(data))
    return True


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control", type=int, default=None, help="control port (default: port + 1)")
    parser.add_argument("--mode", choices=("echo", "split", "gather", "close-after-echo"), default="echo")
    parser.add_argument("--delay", type=float, default=0.3, help="seconds between the parts (split, gather)")
    args = parser.parse_args(argv)
    try:
        main_sock = listener(args.host, args.port)
        controls = Controls(listener(args.host, args.control or args.port + 1))
    except OSError as exc:
        print(f"scripted_server: cannot listen on port {args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    say("listening", port=args.port)
    while True:
        ready, _, _ = select.select([main_sock, *controls.sockets()], [], [])
        for sock in ready:
            if sock is not main_sock:
                controls.handle(sock)
        if main_sock in ready:  # last: a session consumes control traffic, so ``ready`` is stale after it
            conn, peer = main_sock.accept()
            controls.server_closed(False)
            say("accepted", peer=list(peer[:2]))
            with conn:
                serve(conn, args.mode, args.delay, controls)
            say("closed")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
