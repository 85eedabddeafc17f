"""The helpers that run in a container's network namespace from outside it (tcpdump, the scripted
server): from this machine through nsenter where it can, else from a sidecar container. Both ways
capture the exchange and serve a scripted client; the sidecar is what a daemon on another machine gets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.backends.docker.backend import DockerBackend
from harness.backends.docker.host import DockerHost
from harness.backends.docker.netns import SIDECAR_ENV, NamespaceHost
from harness.checks import echo_problem, exchange, text
from harness.options import Options
from harness.server import ServerSpec, start_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["nsenter", "sidecar"])
def made_backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, docker_backend: DockerBackend
) -> Iterator[tuple[str, DockerBackend]]:
    """A docker backend of its own whose helpers come the ``request.param`` way."""
    if request.param == "sidecar":
        monkeypatch.setenv(SIDECAR_ENV, "1")
    with DockerBackend.create(Options(backends=("docker",), rootdir=ROOT)) as made:
        yield request.param, made


def test_the_namespace_helper_captures_the_exchange_and_runs_the_scripted_server(
    made_backend: tuple[str, DockerBackend],
) -> None:
    way, backend = made_backend
    helper = backend.scripted_host
    if way == "sidecar":
        assert isinstance(helper, DockerHost) and helper.sidecar_of is backend.server_host, helper.label
    else:
        assert isinstance(helper, NamespaceHost), helper.label
    server = start_server(
        backend.server_host, backend.server_address, ServerSpec("python"), backlog=3, mode="iterative", ready_timeout=10
    )
    try:
        capture = backend.server_host.start_capture(server.port)
        result = exchange(backend.client_host, server, text("HelloSriLanka"))
        assert echo_problem(result) is None, result
        capture.stop()
        conn = capture.connection(int(result["local_port"]))
        assert conn is not None, capture.table()
        assert capture.loss() is None
        process = helper.spawn(
            [*helper.remote_argv("scripted_server"), "--port", str(helper.free_port(pair=True)), "--mode", "echo"]
        )
        try:
            assert process.poll() is None, process.output()
        finally:
            process.stop()
    finally:
        server.stop()
