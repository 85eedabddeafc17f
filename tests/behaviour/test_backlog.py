"""Listen backlog: a busy one-at-a-time server's accept queue holds backlog + 1 connections (Linux).

See TCP-FACTS: the queue is full only when it holds more than N (sk_acceptq_is_full), a SYN that
finds it full is dropped silently, and the probe connects one at a time with TCP_SYNCNT=1 so a
dropped SYN costs 0.4 s, not a retransmission schedule.
"""

from __future__ import annotations

import pytest

from harness.checks import fill_backlog, own_backlog, wire_problem
from harness.gate import NotJudged
from harness.wire.tcp import dropped_syn_problem, handshake_problem

# Every backlog test begins by having one client echoed: it relies on a working echo.
pytestmark = [pytest.mark.behaviour("listen backlog"), pytest.mark.needs("echo fidelity")]


@pytest.mark.serves("iterative")
@pytest.mark.backlogs(1, 3, 5)
def test_backlog_admits_exactly_backlog_plus_one_while_busy(
    start_server_on, server_host, client_host, backlog, net_conditions
):
    server = start_server_on(backlog=backlog)
    listen_backlog = backlog if backlog is not None else own_backlog(server_host, server)
    if listen_backlog is None:
        raise NotJudged("the server's own listen() backlog is unknown: no {backlog} in --server-cmd and no ss")
    lossy = net_conditions is not None
    seen = fill_backlog(client_host, server_host, server, limit=listen_backlog + 8, lossy=lossy)
    result = seen.result
    assert result["served_echo"], f"the client served while the queue fills got no echo\n{server.evidence()}"
    expected = listen_backlog + 1
    if lossy and not seen.kernel:
        raise NotJudged(f"under --net {net_conditions} the queue is judged by the server's kernel (ss), not available")
    # Under --net a connect whose handshake ACK (and the data behind it) was lost counts as complete
    # on the client before the server queues it (TCP-FACTS): there the server's kernel is the judge.
    completed_ok = seen.completed >= expected if lossy else seen.completed == expected
    assert completed_ok and result["stopped_by"] == "timeout", (
        f"listen({listen_backlog}) while one client is served: expected exactly {expected} more connects to "
        f"complete and connect #{expected + 1} to time out (SYN dropped); {seen.completed} completed and the "
        f"probe stopped by {result['stopped_by']}\n{seen.kernel_summary()}\n{server.evidence()}"
    )
    # On the wire: every queued connection completed its handshake; the one over the limit sent a
    # SYN that nobody answered (its retransmission is test_wire's business: it takes a second).
    for port in result["queued_ports"]:
        on_wire = wire_problem(server.capture, port, handshake_problem)
        assert on_wire is None, f"queued connection from port {port}: {on_wire}\n{server.evidence()}"
    on_wire = wire_problem(server.capture, result["failed_port"], lambda c: dropped_syn_problem(c, retransmitted=False))
    assert on_wire is None, f"connection over the limit: {on_wire}\n{server.evidence()}"
    if seen.kernel:
        assert seen.kernel[0].queued == expected, f"{seen.kernel_summary()}\n{server.evidence()}"
        if backlog is not None:
            assert seen.kernel[0].backlog == backlog, (
                f"the server was asked for --backlog {backlog} but listens with backlog "
                f"{seen.kernel[0].backlog}\n{seen.kernel_summary()}\n{server.evidence()}"
            )


@pytest.mark.serves("iterative")
@pytest.mark.backlogs(3)
@pytest.mark.needs("robustness")  # serving client after client, which the queue then relies on
def test_queued_clients_are_served_in_order_when_the_served_one_leaves(
    start_server_on, server_host, client_host, backlog, net_conditions
):
    server = start_server_on(backlog=backlog)
    listen_backlog = backlog if backlog is not None else own_backlog(server_host, server) or 3
    seen = fill_backlog(client_host, server_host, server, limit=listen_backlog + 4, lossy=net_conditions is not None)
    unserved = [entry for entry in seen.result.get("drained", []) if not entry["ok"]]
    assert seen.result["served_echo"] and not unserved, (
        f"after the served client left, each queued connection (oldest first) should get its echo; "
        f"not served: {unserved}\n{server.evidence()}"
    )


@pytest.mark.serves("concurrent")
def test_concurrent_server_admits_every_client_at_once(start_server_on, client_host):
    # A burst of connects may outrun accept() for a moment; a roomy queue keeps that from costing a
    # 1 s SYN retransmission. What is judged is that all 20 are served while all stay open.
    server = start_server_on(backlog=32, mode="concurrent")
    result = client_host.probe("concurrent", host=server.address, port=server.port, clients=20)
    failures = [outcome for outcome in result["outcomes"] if outcome != "ok"]
    assert result["opened"] == 20 and not failures, (
        f"20 clients at once, all kept open: {result['opened']} connected, problems: {failures[:5]}\n"
        f"{server.evidence()}"
    )
