"""Refused connections: with nothing listening, a connect is refused at once (RST), not left hanging."""

from __future__ import annotations

import pytest

from harness.checks import connect, echo_problem, exchange, failure, text, wire_problem
from harness.wire.tcp import refused_problem

pytestmark = pytest.mark.behaviour("connection refused")


def test_nothing_listening_is_refused_at_once(backend, server_host, client_host, wire):
    port = server_host.free_port()
    capture = wire.watch(port)
    result = connect(client_host, backend.server_address, port, timeout=2.0)
    assert result["outcome"] == "refused", (
        f"connect to {backend.server_address}:{port} with nothing listening: expected ECONNREFUSED "
        f"within 2 s, got {result['outcome']} after {result['elapsed']:.3f} s"
    )
    on_wire = wire_problem(capture, result["local_port"], refused_problem)
    assert on_wire is None, on_wire


@pytest.mark.needs("echo fidelity")  # it shows the server served before it was killed
def test_killed_server_refuses_new_connections(client_host, echo_server):
    before = exchange(client_host, echo_server, text("alive?"), ending="close")
    assert echo_problem(before) is None, failure(f"echo before the kill: {echo_problem(before)}", echo_server)
    echo_server.kill()
    result = connect(client_host, echo_server.address, echo_server.port)
    assert result["outcome"] == "refused", failure(
        f"after SIGKILL of the server, expected new connections refused, got {result['outcome']}", echo_server
    )
    on_wire = wire_problem(echo_server.capture, result["local_port"], refused_problem)
    assert on_wire is None, failure(f"after SIGKILL of the server: {on_wire}", echo_server)


def test_lab_client_reports_refused_clearly(backend, server_host, client_host, lab_client):
    port = server_host.free_port()
    done = client_host.run([*lab_client, "--host", backend.server_address, "--port", str(port)], input=b"Hello\n")
    stderr = done.stderr.decode("utf-8", "replace").strip()
    assert done.returncode == 3, f"lab client against a closed port: expected exit 3 (refused), got {done.returncode}"
    assert len(stderr.splitlines()) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert "refused" in stderr, f"the message does not say the connection was refused: {stderr!r}"
