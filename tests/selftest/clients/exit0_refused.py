"""Echo client that is right in everything but its exit status when the connection is refused.

Bug: on a refused connection it prints an error and calls ``sys.exit()`` with no argument, which
is exit status 0: a script (or a marker) running it cannot tell it failed. A correct client exits
with a non-zero status when it cannot connect.
"""

import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    print("Socket created", flush=True)
    try:
        sock.connect((host, port))
    except ConnectionRefusedError:
        print("Connection refused: is the server running?")
        sys.exit()
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
