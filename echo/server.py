"""The lab's TCP echo server (RFC 862): every byte a client sends comes back, until it leaves.

``iterative`` mode serves one client at a time, exactly like the lab's C program, so the listen
backlog is observable; ``concurrent`` mode serves every client at once from one event loop.
Standard library only and Python 3.9+, so it runs on a stock Raspberry Pi.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys
from typing import Dict, List, NoReturn, Optional

PROG = "echo.server"
CHUNK = 65536


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


def serve_one(conn: socket.socket) -> None:
    """Echo until the client closes; a client that resets or vanishes only ends its own session."""
    with conn:
        while True:
            try:
                data = conn.recv(CHUNK)
                if not data:
                    say("Client disconnected")
                    return
                conn.sendall(data)
            except OSError as exc:  # ECONNRESET, EPIPE, ETIMEDOUT: the client is gone, not us
                say(f"Client disconnected ({exc.strerror or exc})")
                return


def serve_iterative(listener: socket.socket) -> None:
    while True:
        say("Waiting for incoming connections...")
        try:
            conn, peer = listener.accept()
        except ConnectionAbortedError:  # the client reset while still in the accept queue
            continue
        say(f"Connection accepted from {peer[0]}:{peer[1]}")
        serve_one(conn)


class _Session:
    __slots__ = ("eof", "pending", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = b""  # bytes read but not yet written back
        self.eof = False


def accept_all(listener: socket.socket, sel: selectors.BaseSelector, sessions: Dict[int, _Session]) -> None:
    """Empty the accept queue at each wake-up, so a burst of clients never finds it full."""
    while True:
        try:
            conn, peer = listener.accept()
        except ConnectionAbortedError:
            continue
        except BlockingIOError:
            return
        conn.setblocking(False)
        sessions[conn.fileno()] = _Session(conn)
        sel.register(conn, selectors.EVENT_READ)
        say(f"Connection accepted from {peer[0]}:{peer[1]}")


def serve_concurrent(listener: socket.socket) -> None:
    """One selector loop; a client whose echo is not yet written back is not read (backpressure)."""
    sel = selectors.DefaultSelector()
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ)
    sessions: Dict[int, _Session] = {}
    say("Waiting for incoming connections...")

    def finish(s: _Session, why: str) -> None:
        sel.unregister(s.sock)
        del sessions[s.sock.fileno()]
        s.sock.close()
        say(why)

    while True:
        for key, events in sel.select():
            if key.fileobj is listener:
                accept_all(listener, sel, sessions)
                continue
            s = sessions[key.fd]
            try:
                if events & selectors.EVENT_READ:
                    data = s.sock.recv(CHUNK)
                    if not data:
                        s.eof = True
                    s.pending += data
                if s.pending:
                    sent = s.sock.send(s.pending)
                    s.pending = s.pending[sent:]
            except BlockingIOError:
                pass
            except OSError as exc:
                finish(s, f"Client disconnected ({exc.strerror or exc})")
                continue
            if s.eof and not s.pending:
                finish(s, "Client disconnected")
            else:
                sel.modify(s.sock, selectors.EVENT_WRITE if s.pending else selectors.EVENT_READ)


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
