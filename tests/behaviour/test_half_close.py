"""Half-close: after the client's shutdown(SHUT_WR), every byte still comes back, then the server's FIN."""

from __future__ import annotations

import pytest

from harness.checks import ending_problem, exchange, failure, random_bytes, text

pytestmark = pytest.mark.behaviour("half-close")


def test_half_close_echoes_everything_before_fin(client_host, echo_server):
    # FIN goes out straight after the last write, long before the echo is back.
    result = exchange(client_host, echo_server, random_bytes(256 * 1024, seed=3), lockstep=False, ending="half_close")
    problem = ending_problem(result)
    assert problem is None, failure(f"256 KiB then shutdown(SHUT_WR): {problem}", echo_server)


def test_half_close_right_after_a_short_message(client_host, echo_server):
    result = exchange(client_host, echo_server, text("Hello"), lockstep=False, ending="half_close")
    problem = ending_problem(result)
    assert problem is None, failure(f"'Hello' then shutdown(SHUT_WR): {problem}", echo_server)


def test_server_answers_fin_with_fin_not_reset(client_host, echo_server):
    result = exchange(client_host, echo_server, text("HelloSriLanka"), ending="shutdown")
    problem = ending_problem(result)
    assert problem is None, failure(f"after the echo, the client shut down its side: {problem}", echo_server)
