"""--ssh-client-host: the client side on a second SSH host, so the traffic runs between two machines
neither of which is this one."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.backends.ssh.backend import SshBackend
from harness.backends.ssh.host import SshHost
from harness.checks import echo_problem, exchange, text
from harness.options import Options
from harness.server import ServerSpec, start_server
from harness.wait import WaitTimeoutError, until

from .standin import ALIAS, CLIENT_ALIAS, ROOT, Standin, child_env


@pytest.fixture
def two_pis(standin_with_client: Standin, clean_standin: Standin) -> Iterator[SshBackend]:
    options = Options(
        backends=("ssh",), ssh_host=ALIAS, ssh_client_host=CLIENT_ALIAS, ssh_config=str(standin_with_client.config)
    )
    backend = SshBackend.create(options)
    try:
        yield backend
    finally:
        backend.close()


def test_client_probes_run_on_the_client_host_and_reach_the_server_across_the_network(
    two_pis: SshBackend, standin_with_client: Standin
) -> None:
    assert isinstance(two_pis.client_host, SshHost) and two_pis.client_host.label == f"pi@{CLIENT_ALIAS}"
    server = start_server(
        two_pis.server_host, two_pis.server_address, ServerSpec("python"), backlog=3, mode="iterative", ready_timeout=10
    )
    try:
        result = exchange(two_pis.client_host, server, text("HelloSriLanka"))
        assert echo_problem(result) is None, result
        client_address = standin_with_client.addresses[CLIENT_ALIAS]
        said = f"Connection accepted from {client_address}:"
        # The server's output streams back on its own: it may arrive a moment after the probe's answer.
        with contextlib.suppress(WaitTimeoutError):
            until(lambda: said in "\n".join(server.process.output()), timeout=5.0, what="the server's accept line")
        assert said in "\n".join(server.process.output()), server.evidence()
    finally:
        server.stop()


@pytest.mark.timeout(900)  # the whole suite over SSH; slower still on a busy CI machine
def test_make_pi_test_with_a_client_host_passes(
    standin_with_client: Standin, clean_standin: Standin, tmp_path: Path
) -> None:
    config, junit = standin_with_client.config, tmp_path / "pi-test.xml"
    argv = ["make", "pi-test", f"HOST={ALIAS}", f"CLIENT_HOST={CLIENT_ALIAS}", f"SSH_CONFIG={config}", f"JUNIT={junit}"]
    done = subprocess.run(argv, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=900, check=False)
    report = done.stdout + done.stderr
    assert done.returncode == 0 and "VERDICT: PASS" in report, report[-6000:]
