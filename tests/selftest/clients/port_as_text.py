"""Echo client that never connects: it passes the port to connect() as the text it was given.

Bug: ``sock.connect((host, sys.argv[2]))`` - the port is a string, so connect() raises TypeError
("'str' object cannot be interpreted as an integer") and the client dies with a traceback before
its first packet. Everything else is right. A correct client converts it: ``int(sys.argv[2])``.
"""

import socket
import sys


def main():
    host, port = sys.argv[1], sys.argv[2]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    print("Socket created", flush=True)
    try:
        sock.connect((host, port))
    except ConnectionRefusedError:
        print("Connection refused: is the server running?", file=sys.stderr)
        sys.exit(1)
    print("Connected", flush=True)

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
