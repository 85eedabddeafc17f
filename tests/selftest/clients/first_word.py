"""Echo client that sends only the first word of each line.

Bug: ``line.split()[0]`` keeps the first word, so "hello world" reaches the server as "hello".
Everything else is right: it reads back the whole echo of what it sent, and stops at EOF and when
the server closes. A correct client sends the whole line (it may strip the trailing newline).
"""

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

    while True:
        print("Enter message : ", end="", flush=True)
        line = sys.stdin.buffer.readline()
        if not line:
            break
        if not line.strip():
            continue
        message = line.split()[0]
        sock.sendall(message)
        reply = b""
        while len(reply) < len(message):
            chunk = sock.recv(len(message) - len(reply))
            if not chunk:
                print("Server closed the connection", file=sys.stderr)
                return 1
            reply += chunk
        out.write(b"Server reply :\n" + reply + b"\n")
        out.flush()

    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
