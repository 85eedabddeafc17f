"""--net finds what a perfect link hides, refuses what it cannot apply, and leaves nothing behind.

A client that prints one recv() per line passes on a clean link and fails once the MTU splits a
reply; a server that ignores short writes loses bytes under a rate limit. Both run in an image of
their own on docker, as a student's would (--client-image, --server-image). The refusal of delay
on a kernel without netem is the behaviour under test here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CLIENTS_IN_IMAGE, ROOT, ClientSuite, Suite, run_pytest
from .test_no_leaks import eventually

pytestmark = pytest.mark.slow_harness

PRINTS = "client: prints replies"
FIDELITY = "echo fidelity"
# The client suite without its forced split (the harness's scripted server writing each echo in
# two parts): only the link may split a reply here.
NO_FORCED_SPLIT = ("-k", "not in_two_parts")
# The server suite's echo checks: a 1 MiB echo, a 300 kB stream, many messages on one connection.
ECHOES = ("-k", "echoes_a_mebibyte or stream_not_messages or many_messages")


@pytest.fixture(scope="module")
def docker_clients(request: pytest.FixtureRequest) -> ClientSuite:
    return ClientSuite("docker", CLIENTS_IN_IMAGE, request.getfixturevalue("clients_image"))


@pytest.fixture(scope="module")
def docker_servers(request: pytest.FixtureRequest) -> Suite:
    return Suite("docker", request.getfixturevalue("broken_image"))


def test_single_recv_client_passes_a_clean_link_and_fails_a_small_mtu_slow_one(docker_clients):
    clean = docker_clients.run("single_recv", *NO_FORCED_SPLIT)
    assert clean.status == 0 and clean.last_line.startswith("VERDICT: PASS"), str(clean)
    slow = docker_clients.run("single_recv", *NO_FORCED_SPLIT, "--net", "mtu=576,rate=1mbit")
    assert slow.status == 1 and slow.broken == {PRINTS}, f"expected {PRINTS!r} BROKEN under the slow link: {slow}"
    assert "under mtu=576,rate=1mbit:" in slow.report, str(slow)


def test_a_correct_client_passes_the_same_slow_link(docker_clients):
    slow = docker_clients.run("sends_newline", *NO_FORCED_SPLIT, "--net", "mtu=576,rate=1mbit")
    assert slow.status == 0 and slow.last_line.startswith("VERDICT: PASS"), str(slow)


def test_server_that_ignores_short_writes_loses_bytes_under_a_rate_limit(docker_servers):
    # On a clean link its send buffer mostly has room (whether it fills depends on the machine's
    # load: a bug that comes and goes); replies leaving at 10 Mbit/s fill it every time.
    slow = docker_servers.run("ignores-short-writes", *ECHOES, "--net", "rate=10mbit")
    assert slow.status == 1 and slow.broken == {FIDELITY}, f"expected {FIDELITY!r} BROKEN under rate=10mbit: {slow}"
    assert "got" in slow.report and "back" in slow.report, str(slow)


def test_a_correct_server_passes_the_same_rate_limit(docker_servers):
    slow = docker_servers.run("correct", *ECHOES, "--net", "rate=10mbit")
    assert slow.status == 0 and slow.states.get(FIDELITY) == "ok", str(slow)


@pytest.mark.skipif(Path("/sys/module/sch_netem").exists(), reason="this kernel has netem: delay is applied")
def test_delay_on_a_kernel_without_netem_stops_the_run_in_one_line():
    run = run_pytest([str(ROOT / "tests" / "behaviour"), "--backend", "docker", "--net", "loss=1%,delay=50ms"])
    errors = [line for line in run.report.splitlines() if line.startswith("ERROR:")]
    assert run.status == 4 and len(errors) == 1, str(run)
    assert "delay=50ms needs the netem qdisc, which this kernel" in errors[0] and "modprobe sch_netem" in errors[0]
    assert "Traceback" not in run.report and "passed" not in run.report, str(run)


def docker_ps(*filters: str) -> list[str]:
    argv = ["docker", "ps", "-aq", *(arg for f in filters for arg in ("--filter", f))]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()


def test_ctrl_c_under_net_leaves_no_helper_or_container():
    # A server that never listens keeps the child in readiness polling with the link shaped by its
    # helpers: Ctrl-C it there. Its rules live in the containers' namespaces, which go with them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    argv = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "behaviour"), "--backend", "docker"]
    argv += ["--net", "loss=5%,rate=10mbit,mtu=1000", "--server-cmd", "sleep 3600 {port}"]
    argv += ["--ready-timeout", "60", "-k", "hello_sri_lanka", "-p", "no:cacheprovider"]
    child = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        run = next((line.split("docker run id ")[1].split(":")[0] for line in child.stdout if "run id " in line), "")
        assert run, "the child run never said its run id"
        helpers = lambda: docker_ps(f"label=org.echolab.run={run}", "label=org.echolab.role=net-server")  # noqa: E731
        assert eventually(helpers, timeout=60.0), f"run {run} never started its net helpers"
        os.kill(child.pid, signal.SIGINT)
        child.wait(120)  # removing five containers takes a while on a loaded machine
        left = docker_ps(f"label=org.echolab.run={run}")
        assert left == [], f"containers of run {run} outlived its Ctrl-C: {left}"
    finally:
        child.kill()
        child.wait()


def test_a_faults_run_leaves_no_helper_behind():
    # The faults suite starts its helpers lazily, mid-run: they go with the run like the rest.
    run = run_pytest([str(ROOT / "tests" / "faults"), "--backend", "docker", "-k", "does_not_heal"])
    assert run.status == 0, str(run)
    started = next(line for line in run.report.splitlines() if "docker run id " in line)
    run_id = started.split("docker run id ")[1].split(":")[0]
    assert docker_ps(f"label=org.echolab.run={run_id}") == [], f"containers of run {run_id} outlived it"
