"""Fixtures for the faults suite: the worker's docker backend and the link between its containers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.backends.docker.backend import DockerBackend
from harness.checks import captured
from harness.net.conditions import Conditions
from harness.server import RunningServer, ServerSpec, start_server
from harness.wire.tap import WIRE, Wire

#: A link slow enough that a 1 MiB echo takes about a second each way: a fault lands mid-echo.
SLOW = Conditions.parse("rate=8mbit")


@pytest.fixture(scope="session")
def docker_backend(_backend_pool) -> DockerBackend:
    """The worker's docker backend (skipped with the reason where no daemon answers, failed in CI)."""
    return _backend_pool.get("docker")


@pytest.fixture
def link(docker_backend):
    """The link between the server's and the client's containers; faults on it end with the test."""
    if docker_backend.link.conditions is not None:
        pytest.skip(f"the faults suite shapes the link itself; this run has --net {docker_backend.link.conditions}")
    return docker_backend.link


@pytest.fixture
def faulty_server(docker_backend, request) -> Iterator[RunningServer]:
    """The reference server, concurrent (several clients at once), its packets captured; a failing
    test's report shows them as a packet table."""
    host = docker_backend.server_host
    tap = Wire(host, enabled=True)
    request.node.stash[WIRE] = tap
    server = start_server(host, host.address, ServerSpec("python"), backlog=8, mode="concurrent", ready_timeout=10.0)
    try:
        server.capture = tap.watch(server.port)
        captured(server.capture)
        yield server
    finally:
        server.stop()
        tap.stop()
