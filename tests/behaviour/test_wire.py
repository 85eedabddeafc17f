"""The exchange on the wire, as the lab reads it in Wireshark: handshake, data and ACKs, teardown.

These tests are about packets only: with --wire off they are deselected; where no capture can be
made they are not judged (and CI fails the run).
"""

from __future__ import annotations

import pytest

from harness.checks import LOSSY_CONNECT, captured, connect, exchange, failure, text, wire_problem
from harness.wire.table import connection_table, originals
from harness.wire.tcp import (
    dropped_syn_problem,
    handshake_problem,
    lab_ladder,
    ladder_problem,
    reset_problem,
    teardown_problem,
)

pytestmark = pytest.mark.behaviour("wire")


def test_packet_capture_works_here(wire, server_host, client_host, backend):
    port = server_host.free_port()
    capture = captured(wire.watch(port))
    result = connect(client_host, backend.server_address, port)
    assert capture.connection(result["local_port"]) is not None, f"the capture saw nothing:\n{capture.table()}"


@pytest.mark.needs("echo fidelity", "half-close")  # the lab's exchange is an echo, then FIN for FIN
@pytest.mark.lab_ladder(5)  # the HTML report draws the lab's packets beside this capture
def test_lab_exchange_matches_the_wireshark_capture_packet_for_packet(client_host, echo_server, net_conditions):
    # The lab: connect, send "Hello", read the echo, close. Packets 11-13, 18-21, 26-28 in its capture.
    capture = captured(echo_server.capture)
    result = exchange(client_host, echo_server, text("Hello"))
    conn = capture.connection(result["local_port"])
    assert conn is not None, failure(f"no packets from port {result['local_port']}", echo_server)
    # Under --net, what a lost segment costs (retransmissions, duplicate ACKs) is left out of the
    # comparison: the capture on the server's side holds every segment sent once (harness/net).
    problem, pairing = ladder_problem(originals(conn) if net_conditions else conn, lab_ladder(5))
    evidence = f"{problem}\nlab packet -> captured:\n{pairing}\n\n{connection_table(conn)}"
    assert problem is None, failure(evidence, echo_server)
    for judge in (handshake_problem, teardown_problem):
        on_wire = judge(conn)
        assert on_wire is None, failure(f"{on_wire}\n{connection_table(conn)}", echo_server)


@pytest.mark.parametrize("how", ["reset", "garbage"], ids=["so-linger-zero", "close-with-unread-data"])
@pytest.mark.needs("echo fidelity")  # the unread data is the server's echo
def test_client_reset_is_a_rst_on_the_wire(client_host, echo_server, how):
    # SO_LINGER {1, 0}, or close() with unread received data (RFC 2525 2.17): RST, not FIN.
    captured(echo_server.capture)
    result = client_host.probe("abuse", host=echo_server.address, port=echo_server.port, how=how)
    on_wire = wire_problem(echo_server.capture, result["local_port"], lambda c: reset_problem(c, by_client=True))
    assert on_wire is None, failure(on_wire, echo_server)


@pytest.mark.serves("iterative")
@pytest.mark.needs("listen backlog")
def test_backlog_overflow_retransmits_the_same_syn_unanswered(start_server_on, client_host, net_conditions):
    # Waits out one SYN retransmission (1 s, the initial RTO): the only test here that does.
    server = start_server_on(backlog=1)
    captured(server.capture)
    patience = LOSSY_CONNECT if net_conditions is not None else {"connect_timeout": 1.5}
    result = client_host.probe("backlog", host=server.address, port=server.port, limit=6, **patience)
    assert result["served_echo"], failure(f"the client served while the queue fills got no echo: {result}", server)
    assert result["stopped_by"] == "timeout", failure(f"expected the queue to fill: {result}", server)
    on_wire = wire_problem(server.capture, result["failed_port"], dropped_syn_problem)
    assert on_wire is None, failure(on_wire, server)
