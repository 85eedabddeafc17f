"""The lab's TCP echo server (RFC 862): every byte a client sends comes back, until it leaves.

``iterative`` mode serves one client at a time, exactly like the lab's C program, so the listen
backlog is observable; ``concurrent`` mode serves every client at once from one epoll loop.
Standard library only and Python 3.9+, so it runs on a stock Raspberry Pi.
"""

from __future__ import annotations

import argparse
import mmap
import select
import socket
import sys
from typing import Dict, List, NoReturn, Optional, Union

PROG = "echo.server"
# Bytes per recv: large reads mean fewer syscalls per byte (the lab's 2000 capped a stream at about
# a fifth of what loopback carries).
CHUNK = 256 * 1024


def read_buffer() -> mmap.mmap:
    """The one buffer every read goes into. An anonymous mmap rather than a bytearray: it is
    page-aligned, and the kernel copies a stream into page-aligned memory measurably faster
    (`make bench`); it is also reused, so no read allocates a new bytes object."""
    return mmap.mmap(-1, CHUNK)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the harness and the lab read the last line.
        self.exit(2, f"{PROG}: error: {message} (see --help)\n")


def port_number(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {value}")
    return value


def backlog_size(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"backlog must be >= 0, got {value}")
    return value


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    parser.add_argument("--port", type=port_number, default=8888, help="0 picks a free port")
    parser.add_argument("--backlog", type=backlog_size, default=3, help="listen() backlog")
    parser.add_argument("--mode", choices=("iterative", "concurrent"), default="iterative")
    return parser.parse_args(argv)


def say(line: str) -> None:
    print(line, flush=True)


def open_listener(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    say("Socket created")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    say("bind done")
    sock.listen(backlog)
    bound_host, bound_port = sock.getsockname()[:2]
    say(f"Listening on {bound_host}:{bound_port}")
    return sock


def serve_one(conn: socket.socket, buffer: mmap.mmap) -> None:
    """Echo until the client closes; a client that resets or vanishes only ends its own session."""
    view = memoryview(buffer)
    with conn:
        while True:
            try:
                n = conn.recv_into(buffer)
                if not n:
                    say("Client disconnected")
                    return
                conn.sendall(view[:n])
            except OSError as exc:  # ECONNRESET, EPIPE, ETIMEDOUT: the client is gone, not us
                say(f"Client disconnected ({exc.strerror or exc})")
                return


def serve_iterative(listener: socket.socket) -> None:
    buffer = read_buffer()
    while True:
        say("Waiting for incoming connections...")
        try:
            conn, peer = listener.accept()
        except ConnectionAbortedError:  # the client reset while still in the accept queue
            continue
        say(f"Connection accepted from {peer[0]}:{peer[1]}")
        serve_one(conn, buffer)


def accept_all(listener: socket.socket, poller: select.epoll, clients: Dict[int, socket.socket]) -> None:
    """Empty the accept queue at each wake-up, so a burst of clients never finds it full."""
    while True:
        try:
            conn, peer = listener.accept()
        except ConnectionAbortedError:
            continue
        except BlockingIOError:
            return
        conn.setblocking(False)
        clients[conn.fileno()] = conn
        poller.register(conn, select.EPOLLIN)
        say(f"Connection accepted from {peer[0]}:{peer[1]}")


def serve_concurrent(listener: socket.socket) -> None:
    """One epoll loop for every client (Linux, like the C twin). Each read is written straight
    back; only what a client's socket cannot take yet is kept, and that client is not read again
    until it has all been written (backpressure), so a client that never reads cannot make the
    server hoard memory. epoll is told only when a client's state changes: a syscall saved per echo."""
    poller = select.epoll()
    listener.setblocking(False)
    listening = listener.fileno()
    poller.register(listening, select.EPOLLIN)
    buffer = read_buffer()  # shared by all clients: each read is echoed before the next one
    view = memoryview(buffer)
    clients: Dict[int, socket.socket] = {}  # by file descriptor, as epoll reports them
    unsent: Dict[int, bytes] = {}  # clients waiting to be writable (EPOLLOUT), and what they are owed
    say("Waiting for incoming connections...")

    def finish(fd: int, why: str) -> None:
        poller.unregister(fd)
        unsent.pop(fd, None)
        clients.pop(fd).close()
        say(why)

    while True:
        for fd, _ in poller.poll():
            if fd == listening:
                accept_all(listener, poller, clients)
                continue
            conn = clients[fd]
            owed = unsent.pop(fd, None)  # not None: the client was waiting to be writable
            try:
                if owed is None:
                    data: Union[bytes, memoryview] = view[: conn.recv_into(buffer)]
                    if not data:  # FIN, and all it sent was echoed: close() sends ours
                        finish(fd, "Client disconnected")
                        continue
                else:
                    data = owed
                try:
                    sent = conn.send(data)
                except BlockingIOError:  # its socket is full: all of it waits
                    sent = 0
            except BlockingIOError:  # woken for nothing to read
                continue
            except OSError as exc:  # ECONNRESET, EPIPE: the client is gone, not us
                finish(fd, f"Client disconnected ({exc.strerror or exc})")
                continue
            if sent < len(data):
                unsent[fd] = bytes(data[sent:])
                if owed is None:
                    poller.modify(fd, select.EPOLLOUT)
            elif owed is not None:
                poller.modify(fd, select.EPOLLIN)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        listener = open_listener(args.host, args.port, args.backlog)
    except OSError as exc:
        print(f"{PROG}: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        with listener:
            if args.mode == "concurrent":
                serve_concurrent(listener)
            else:
                serve_iterative(listener)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
