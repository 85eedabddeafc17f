"""Half-close: after the client's shutdown(SHUT_WR), every byte still comes back, then the server's FIN."""

from __future__ import annotations

import pytest

from harness.checks import echoed_exactly, ending_problem, exchange, failure, payload, random_bytes, text, wire_problem
from harness.wire.tcp import teardown_problem

pytestmark = [pytest.mark.behaviour("half-close"), pytest.mark.needs("echo fidelity")]


def assert_orderly_close(server, result, sent, what):
    """Every byte, then the server's FIN, at the socket; on the wire the data, then a FIN from each
    side behind its data, each acknowledged (3 or 4 segments), and no RST."""
    problem = ending_problem(result)
    assert problem is None, failure(f"{what}: {problem}", server)
    on_wire = wire_problem(server.capture, result["local_port"], echoed_exactly(sent), teardown_problem)
    assert on_wire is None, failure(f"{what}: {on_wire}", server)


def test_half_close_echoes_everything_before_fin(client_host, echo_server):
    # FIN goes out straight after the last write, long before the echo is back.
    data = random_bytes(256 * 1024, seed=3)
    result = exchange(client_host, echo_server, data, lockstep=False, ending="half_close")
    assert_orderly_close(echo_server, result, payload(data), "256 KiB then shutdown(SHUT_WR)")


def test_half_close_right_after_a_short_message(client_host, echo_server):
    result = exchange(client_host, echo_server, text("Hello"), lockstep=False, ending="half_close")
    assert_orderly_close(echo_server, result, b"Hello", "'Hello' then shutdown(SHUT_WR)")


def test_server_answers_fin_with_fin_not_reset(client_host, echo_server):
    result = exchange(client_host, echo_server, text("HelloSriLanka"), ending="shutdown")
    assert_orderly_close(echo_server, result, b"HelloSriLanka", "after the echo, the client shut down its side")
