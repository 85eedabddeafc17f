"""Echo client that is correct but slow to start and quiet until connected.

Unusual: it spends a second before its first system call that matters (as a client importing a
large library does on a Raspberry Pi), prints nothing before it has connected, and resolves the
host by name. The checks must wait for it, not call it one that never connects.
"""

import socket
import sys
import time


def main():
    time.sleep(1.0)
    host, port = sys.argv[1], int(sys.argv[2])
    try:
        sock = socket.create_connection((host, port))
    except OSError as exc:
        print(f"cannot connect to {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(1)
    print(f"Connected to {host}:{port}", flush=True)

    while True:
        print("Enter message : ", end="", flush=True)
        line = sys.stdin.buffer.readline()
        if not line:
            break
        message = line.rstrip(b"\r\n")
        if not message:
            continue
        sock.sendall(message)
        reply = b""
        while len(reply) < len(message):
            chunk = sock.recv(len(message) - len(reply))
            if not chunk:
                print("Server closed the connection", file=sys.stderr)
                sys.exit(1)
            reply += chunk
        sys.stdout.buffer.write(b"Server reply :\n" + reply + b"\n")
        sys.stdout.buffer.flush()

    print()
    sock.close()


if __name__ == "__main__":
    main()
