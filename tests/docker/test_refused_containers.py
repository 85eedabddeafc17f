"""Refusal and its look-alikes that only containers can show (TCP-FACTS, "Refused and its look-alikes").

A dead server process in a live container is refused at once (its kernel answers the SYN with RST);
a stopped container's address answers nothing at all: EHOSTUNREACH when ARP goes unanswered, or a
timeout while the client still holds the old MAC address, never ECONNREFUSED. Each test stops its own spare server
container, so the session's containers stay usable. Always against the container's own address
from the client container, never through a published port (docker-proxy would accept).
"""

from __future__ import annotations

import pytest

from harness.checks import connect, echo_problem, exchange, failure, text
from harness.server import ServerSpec, start_server


def start_reference_server(host, impl: str = "python"):
    return start_server(host, host.address, ServerSpec(impl), backlog=3, mode="iterative", ready_timeout=10.0)


def container_state(host) -> str:
    return host.api.inspect_container(host.container_id)["State"]["Status"]


@pytest.mark.parametrize("impl", ["python", "c"])
def test_killed_server_process_in_a_live_container_is_refused(docker_backend, impl):
    with docker_backend.spare_server() as host:
        server = start_reference_server(host, impl)
        try:
            before = exchange(docker_backend.client_host, server, text("alive?"))
            assert echo_problem(before) is None, failure(f"echo before the kill: {echo_problem(before)}", server)
            server.kill()
            assert container_state(host) == "running", f"{host.label} should outlive its server process"
            result = connect(docker_backend.client_host, server.address, server.port, timeout=2.0)
        finally:
            server.stop()
    assert result["outcome"] == "refused" and result["elapsed"] < 1.0, failure(
        f"server process killed, container {host.name} still running: expected ECONNREFUSED at once "
        f"(RST from its kernel), got {result['outcome']} after {result['elapsed']:.3f} s",
        server,
    )


def test_stopped_server_container_no_longer_answers_and_is_not_refused(docker_backend):
    with docker_backend.spare_server() as host:
        server = start_reference_server(host)
        before = exchange(docker_backend.client_host, server, text("alive?"))
        assert echo_problem(before) is None, failure(f"echo before the stop: {echo_problem(before)}", server)
        host.api.stop(host.container_id, timeout=1)
        # While the client's neighbour entry for the address is fresh (15-45 s after the echo, or
        # left by an earlier spare at the same address and MAC), its SYNs go out and vanish: a
        # timeout. Without one, ARP goes unanswered: EHOSTUNREACH after about 3 s.
        result = connect(docker_backend.client_host, server.address, server.port, timeout=5.0)
        server.stop()
    assert result["outcome"] in ("timeout", "EHOSTUNREACH"), (
        f"server container {host.name} stopped: expected no answer at all (timeout or EHOSTUNREACH), "
        f"got {result['outcome']} after {result['elapsed']:.3f} s"
    )
