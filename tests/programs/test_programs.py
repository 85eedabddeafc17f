"""The reference echo programs as programs: their lines, flags, errors and exit codes, in Python and C."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import build
from harness.backends.local import LocalHost

ECHO = Path(__file__).resolve().parents[2] / "echo"


@pytest.fixture(params=["python", "c"])
def impl(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def program(role: str, impl: str) -> list[str]:
    return LocalHost().echo_program(role, impl)


def run(argv: list[str], stdin: bytes = b"", timeout: float = 20.0) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, check=False)


@pytest.fixture
def server(impl: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen([*program("server", impl), "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(4)]
    port = int(lines[2].rsplit(":", 1)[1])
    assert lines == [
        "Socket created\n",
        "bind done\n",
        lines[2],
        "Waiting for incoming connections...\n",
    ], lines
    yield proc, port
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("role", ["server", "client"])
def test_c_programs_compile_without_warnings(role: str, tmp_path: Path) -> None:
    cc = shutil.which(os.environ.get("CC", "cc"))
    assert cc, "no C compiler: install gcc"
    done = run([cc, *build.CFLAGS, "-o", str(tmp_path / role), str(ECHO / f"{role}.c")])
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode()


def test_server_prints_the_labs_lines_as_they_happen(server: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = server
    assert proc.stdout is not None
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"HelloSriLanka")
        assert sock.recv(100) == b"HelloSriLanka"
        assert proc.stdout.readline().startswith("Connection accepted from 127.0.0.1:")
    assert proc.stdout.readline() == "Client disconnected\n"
    assert proc.stdout.readline() == "Waiting for incoming connections...\n"


def test_server_reports_a_busy_port_in_one_line(impl: str, server: tuple[subprocess.Popen[str], int]) -> None:
    _, port = server
    done = run([*program("server", impl), "--port", str(port)])
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [
        f"echo.server: cannot listen on 0.0.0.0:{port}: Address already in use"
    ]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--port", "x"], "--port"),
        (["--port", "70000"], "--port"),
        (["--backlog", "-1"], "--backlog"),
        (["--mode", "forking"], "--mode"),
        (["--bogus"], "--bogus"),
    ],
)
def test_server_rejects_bad_arguments_in_one_line(impl: str, args: list[str], complaint: str) -> None:
    done = run([*program("server", impl), *args])
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2 and len(lines) == 1, (done.returncode, lines)
    assert lines[0].startswith("echo.server: error:") and complaint in lines[0], lines


def test_client_reports_refused_with_status_3(impl: str) -> None:
    port = LocalHost().free_port()
    done = run([*program("client", impl), "--port", str(port)], b"Hello\n")
    assert done.returncode == 3
    assert done.stderr.decode() == f"echo.client: connection refused by 127.0.0.1:{port} (is the server running?)\n"


def one_shot_server(behaviour: str) -> tuple[socket.socket, threading.Thread]:
    """A listener that accepts one client and then closes, resets, or says nothing at all."""
    listener = socket.create_server(("127.0.0.1", 0))

    def handle() -> None:
        conn, _ = listener.accept()
        if behaviour == "close":
            conn.recv(100)
            conn.close()
        elif behaviour == "reset":
            conn.recv(100)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()
        else:  # silent: hold the connection without echoing until the client gives up
            conn.recv(100)
            conn.settimeout(10)
            with contextlib.suppress(OSError):
                conn.recv(100)
            conn.close()
        listener.close()

    thread = threading.Thread(target=handle, daemon=True)
    thread.start()
    return listener, thread


@pytest.mark.parametrize(
    ("behaviour", "status", "message"),
    [
        ("close", 5, "echo.client: server closed the connection before replying\n"),
        ("reset", 5, "echo.client: server reset the connection\n"),
        ("silent", 4, "echo.client: no reply from the server in time\n"),
    ],
)
def test_client_exit_status_tells_what_the_server_did(impl: str, behaviour: str, status: int, message: str) -> None:
    listener, thread = one_shot_server(behaviour)
    port = listener.getsockname()[1]
    done = run([*program("client", impl), "--port", str(port), "--timeout", "0.5"], b"Hello\n")
    thread.join(15)
    assert (done.returncode, done.stderr.decode()) == (status, message)


@pytest.mark.parametrize("args", [["--port", "70000"], ["--timeout", "0"], ["--nope"]])
def test_client_rejects_bad_arguments_in_one_line(impl: str, args: list[str]) -> None:
    done = run([*program("client", impl), *args])
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("echo.client: error:"), lines


def test_client_echoes_a_line_longer_than_the_socket_buffers(
    impl: str, server: tuple[subprocess.Popen[str], int]
) -> None:
    _, port = server
    line = b"x" * (8 << 20)
    done = run([*program("client", impl), "--port", str(port)], line + b"\n", timeout=60)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout == b"Socket created\nConnected\nEnter message : Server reply :\n" + line + b"\nEnter message : \n"
    )


def test_echo_programs_run_on_python_3_9_syntax() -> None:
    # The Pi may have Python 3.9: compile the sources with the 3.9 grammar via ast feature_version.
    import ast

    for path in ECHO.glob("*.py"):  # harness/remote/ is pinned alike in tests/unit/test_layout.py
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))


def test_python_client_runs_as_a_module() -> None:
    done = run([sys.executable, "-m", "echo.client", "--help"])
    assert done.returncode == 0 and b"--port" in done.stdout
