"""The scripted server on its own (harness/remote/scripted_server.py): it answers its control port
in every state, including right after a session that ended with the server's close."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.wait import until

SCRIPT = Path(__file__).resolve().parents[2] / "harness" / "remote" / "scripted_server.py"


@pytest.fixture
def server():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, str(SCRIPT), "--host", "127.0.0.1", "--port", str(port), "--mode", "close-after-echo"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert json.loads(process.stdout.readline())["event"] == "listening"
    yield process, port
    process.kill()
    process.wait()


def ask(control: socket.socket, line: bytes) -> bytes:
    control.sendall(line)
    return control.recv(100)


def test_control_port_answers_after_a_session_the_server_closed(server):
    process, port = server
    # Both connections pending in one select: stop the server, connect both, let it go on.
    os.kill(process.pid, signal.SIGSTOP)
    control = socket.create_connection(("127.0.0.1", port + 1), timeout=5)
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    os.kill(process.pid, signal.SIGCONT)
    with control, client:
        assert ask(control, b"mark 1\n") == b"ok 1\n"
        client.sendall(b"hello")
        assert until(lambda: client.recv(100), timeout=5, what="the echo") == b"hello"
        assert ask(control, b"sync 1\n") == b"done 1\n"
        assert client.recv(100) == b""  # the server closed after its first echo
        assert ask(control, b"mark 2\n") == b"ok 2\n", "the control port must still answer"
