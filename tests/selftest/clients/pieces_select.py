"""Echo client that prints each reply in pieces, as they arrive: correct, written differently.

It waits with ``select`` on stdin and the socket together, so it notices at once when the server
closes, even while nobody types. After sending a line it writes every chunk received to stdout
immediately, until it has as many bytes as it sent, then ends the reply with a newline.
"""

import os
import select
import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    out = sys.stdout.buffer
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    print("Socket created", flush=True)
    try:
        sock.connect((host, port))
    except OSError as exc:
        print(f"connect failed: {exc}", file=sys.stderr)
        return 1
    print("Connected", flush=True)

    typed = b""  # what os.read() gave us beyond the current line
    while True:
        out.write(b"Enter message : ")
        out.flush()
        while b"\n" not in typed:
            readable, _, _ = select.select([sys.stdin, sock], [], [])
            # Readable before anything was sent: the server closed (anything else it sends is dropped).
            if sock in readable and not sock.recv(1 << 16):
                print("\nServer closed the connection", file=sys.stderr)
                return 1
            if sys.stdin in readable:
                data = os.read(sys.stdin.fileno(), 1 << 16)
                if not data and not typed:
                    out.write(b"\n")
                    out.flush()
                    sock.shutdown(socket.SHUT_WR)
                    sock.close()
                    return 0
                typed += data or b"\n"  # EOF ends a last line typed without Enter
        line, _, typed = typed.partition(b"\n")
        line = line.rstrip(b"\r")
        if not line:
            continue

        sock.sendall(line)
        out.write(b"Server reply :\n")
        got = 0
        while got < len(line):
            select.select([sock], [], [])
            chunk = sock.recv(len(line) - got)
            if not chunk:
                print("\nServer closed the connection", file=sys.stderr)
                return 1
            out.write(chunk)
            out.flush()
            got += len(chunk)
        out.write(b"\n")
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
