"""The lab's interactive TCP echo client: send each line typed, print what the server sends back.

Exit status: 0 after EOF on stdin, 2 bad arguments, 3 connection refused, 4 server unreachable or
silent (timeout), 5 the server closed or reset the connection mid-session, 1 anything else.
Standard library only and Python 3.9+, so it runs on a stock Raspberry Pi.
"""

from __future__ import annotations

import argparse
import errno
import selectors
import socket
import sys
from typing import List, NoReturn, Optional

PROG = "echo.client"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_SERVER_GONE = 0, 1, 2, 3, 4, 5
CHUNK = 65536
UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.EHOSTDOWN}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see --help)\n")


class ClientError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def port_number(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {value}")
    return value


def seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"timeout must be > 0 seconds, got {text}")
    return value


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port_number, default=8888)
    parser.add_argument("--timeout", type=seconds, default=10.0, help="seconds to connect or to wait for a reply")
    return parser.parse_args(argv)


def say(text: str, end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


def connect(host: str, port: int, timeout: float) -> socket.socket:
    where = f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ClientError(EXIT_UNREACHABLE, f"cannot resolve {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    say("Socket created")
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except ConnectionRefusedError:
        sock.close()
        raise ClientError(EXIT_REFUSED, f"connection refused by {where} (is the server running?)") from None
    except socket.timeout:
        sock.close()
        raise ClientError(EXIT_UNREACHABLE, f"no answer from {where} within {timeout:g} s") from None
    except OSError as exc:
        sock.close()
        status = EXIT_UNREACHABLE if exc.errno in UNREACHABLE else EXIT_ERROR
        raise ClientError(status, f"cannot connect to {where}: {exc.strerror or exc}") from None
    say("Connected")
    return sock


def exchange(sock: socket.socket, message: bytes, timeout: float) -> bytes:
    """Send one message and read back exactly as many bytes: TCP is a stream, replies may split.

    Writing and reading go on together, so a line longer than both socket buffers cannot deadlock.
    """
    pending = memoryview(message)
    reply = bytearray()
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while len(reply) < len(message):
            ready = sel.select(timeout)
            if not ready:
                raise ClientError(EXIT_UNREACHABLE, "no reply from the server in time")
            try:
                if ready[0][1] & selectors.EVENT_WRITE and pending:
                    pending = pending[sock.send(pending) :]
                    if not pending:
                        sel.modify(sock, selectors.EVENT_READ)
                if ready[0][1] & selectors.EVENT_READ:
                    chunk = sock.recv(min(CHUNK, len(message) - len(reply)))
                    if not chunk:
                        raise ClientError(EXIT_SERVER_GONE, "server closed the connection before replying")
                    reply += chunk
            except (BlockingIOError, socket.timeout):
                continue
            except (ConnectionResetError, BrokenPipeError):
                raise ClientError(EXIT_SERVER_GONE, "server reset the connection") from None
    return bytes(reply)


def close_cleanly(sock: socket.socket) -> None:
    """Send our FIN, then read until the server's: a close with unread data would be a reset."""
    try:
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(CHUNK):
            pass
    except OSError:
        pass
    sock.close()


def run(args: argparse.Namespace) -> int:
    sock = connect(args.host, args.port, args.timeout)
    stdin = sys.stdin.buffer
    while True:
        say("Enter message : ", end="")
        line = stdin.readline()
        if not line:
            say("")
            close_cleanly(sock)
            return EXIT_OK
        message = line.rstrip(b"\r\n")
        if not message:
            continue
        reply = exchange(sock, message, args.timeout)
        say("Server reply :")
        sys.stdout.buffer.write(reply + b"\n")
        sys.stdout.flush()


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except ClientError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
