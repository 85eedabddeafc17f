"""Robustness: clients that reset, vanish or send garbage end only their own session."""

from __future__ import annotations

import pytest

from harness.checks import echo_problem, exchange, failure, headers_only, text, wire_problem
from harness.wire.tcp import reset_problem

# Each test ends by having the next client echoed: it relies on a working echo.
pytestmark = [pytest.mark.behaviour("robustness"), pytest.mark.needs("echo fidelity")]


def assert_still_serving(client_host, server, after: str) -> None:
    result = exchange(client_host, server, text(f"still there after {after}?"), ending="close")
    problem = echo_problem(result)
    assert problem is None, failure(f"the next client after {after} was not served: {problem}", server)


@pytest.mark.parametrize(
    "how",
    ["reset", "reset_unread", "vanish", "garbage"],
    ids=["reset-after-echo", "reset-with-echo-unread", "vanish", "garbage-then-close"],
)
def test_survives_a_misbehaving_client_and_serves_the_next(client_host, echo_server, how):
    # reset_unread leaves the echo unread and resets: the server's next write fails with EPIPE or
    # ECONNRESET, and a C server that does not ignore SIGPIPE dies of it (TCP-FACTS). Its probe moves
    # some 20 MB before the server is stuck; the wire check looks at the flags only.
    if how == "reset_unread":
        headers_only(echo_server.capture)
    ports = []
    for i in range(3):
        result = client_host.probe("abuse", host=echo_server.address, port=echo_server.port, how=how)
        assert result["connected"], failure(
            f"the server stopped serving: after {i} client(s) doing '{how}', the next could not connect "
            f"({result['error']})",
            echo_server,
        )
        ports.append(result["local_port"])
    assert_still_serving(client_host, echo_server, f"three clients that did '{how}'")
    if how.startswith("reset"):  # SO_LINGER {1, 0}: the client's kernel sends RST, not FIN
        for port in ports:
            on_wire = wire_problem(echo_server.capture, port, lambda c: reset_problem(c, by_client=True))
            assert on_wire is None, failure(f"client from port {port} doing '{how}': {on_wire}", echo_server)


def test_serves_clients_one_after_another(client_host, echo_server):
    for i in range(10):
        result = exchange(client_host, echo_server, text(f"client number {i}"), ending="close")
        problem = echo_problem(result)
        assert problem is None, failure(f"client {i + 1} of 10 in a row: {problem}", echo_server)
