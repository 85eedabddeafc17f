"""The exchange on the wire, as the lab reads it in Wireshark: handshake, data and ACKs, teardown."""

from __future__ import annotations

import pytest

from harness.checks import connect, exchange, failure, text, wire_problem
from harness.plugin import unavailable
from harness.wire import (
    dropped_syn_problem,
    handshake_problem,
    lab_ladder,
    ladder_problem,
    reset_problem,
    teardown_problem,
)

pytestmark = pytest.mark.behaviour("wire")


@pytest.fixture
def capture_needed(wire):
    """These tests are about packets: without a capture they cannot run (and CI must have one)."""
    if wire.reason is not None and wire.enabled:
        unavailable(wire.reason)
    if not wire.enabled:
        pytest.skip(wire.reason)


def test_packet_capture_works_here(wire, server_host, client_host, backend, capture_needed):
    port = server_host.free_port()
    capture = wire.watch(port)
    if capture is None:
        unavailable(wire.reason or "no capture")
    result = connect(client_host, backend.server_address, port)
    assert capture.connection(result["local_port"]) is not None, f"the capture saw nothing:\n{capture.table()}"


def test_lab_exchange_matches_the_wireshark_capture_packet_for_packet(client_host, echo_server, capture_needed):
    # The lab: connect, send "Hello", read the echo, close. Packets 11-13, 18-21, 26-28 in its capture.
    if echo_server.capture is None:
        unavailable("no capture of the server")
    result = exchange(client_host, echo_server, text("Hello"))
    conn = echo_server.capture.connection(result["local_port"])
    assert conn is not None, failure(f"no packets from port {result['local_port']}", echo_server)
    problem, pairing = ladder_problem(conn, lab_ladder(5))
    assert problem is None, failure(f"{problem}\nlab packet -> captured:\n{pairing}\n\n{conn.table()}", echo_server)
    for judge in (handshake_problem, teardown_problem):
        on_wire = judge(conn)
        assert on_wire is None, failure(f"{on_wire}\n{conn.table()}", echo_server)


@pytest.mark.parametrize("how", ["reset", "garbage"], ids=["so-linger-zero", "close-with-unread-data"])
def test_client_reset_is_a_rst_on_the_wire(client_host, echo_server, capture_needed, how):
    # SO_LINGER {1, 0}, or close() with unread received data (RFC 2525 2.17): RST, not FIN.
    result = client_host.probe("abuse", host=echo_server.address, port=echo_server.port, how=how)
    on_wire = wire_problem(echo_server.capture, result["local_port"], lambda c: reset_problem(c, by_client=True))
    assert on_wire is None, failure(on_wire, echo_server)


@pytest.mark.serves("iterative")
def test_backlog_overflow_retransmits_the_same_syn_unanswered(start_server_on, client_host, capture_needed):
    # Waits out one SYN retransmission (1 s, the initial RTO): the only test here that does.
    server = start_server_on(backlog=1)
    result = client_host.probe("backlog", host=server.address, port=server.port, limit=6, connect_timeout=1.5)
    assert result["stopped_by"] == "timeout", failure(f"expected the queue to fill: {result}", server)
    on_wire = wire_problem(server.capture, result["failed_port"], dropped_syn_problem)
    assert on_wire is None, failure(on_wire, server)
