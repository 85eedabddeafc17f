"""The docker backend's hosts: exec with stdin, output and exit codes, signals to process groups,
and the kernel views (ports in use, listeners, ss) with and without the shortcuts through /proc."""

from __future__ import annotations

import signal

import pytest

from harness.errors import HarnessError
from harness.server import ServerSpec, start_server

COUNT = """
import os, sys
want = "".join(arg + "\\0" for arg in sys.argv[1:]).encode()
def runs(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().startswith(want)
    except OSError:  # gone meanwhile
        return False
print(sum(runs(p) for p in os.listdir("/proc") if p.isdigit()))
"""


def count_processes(host, *argv: str) -> int:
    """How many processes in the container run exactly ``argv`` (and possibly more arguments)."""
    done = host.run(["python3", "-c", COUNT, *argv])
    assert done.returncode == 0, done
    return int(done.text)


def test_run_feeds_stdin_and_keeps_stdout_stderr_and_status_apart(docker_backend):
    done = docker_backend.client_host.run(["sh", "-c", "cat; echo oops >&2; exit 3"], input=b"Hello\n")
    assert (done.returncode, done.stdout, done.stderr) == (3, b"Hello\n", b"oops\n"), done


def test_run_of_a_missing_program_fails_with_its_reason(docker_backend):
    """As on this machine: the error a start raises (through the container's agent)."""
    with pytest.raises(FileNotFoundError, match="no-such-program"):
        docker_backend.client_host.run(["no-such-program"])


def test_run_that_overstays_its_timeout_is_stopped(docker_backend):
    host = docker_backend.client_host
    with pytest.raises(HarnessError, match=r"did not finish within 0\.5 s"):
        host.run(["sleep", "77"], timeout=0.5)
    assert count_processes(host, "sleep", "77") == 0, "the timed-out program is still running"


def test_signal_reaches_everything_the_program_started(docker_backend):
    host = docker_backend.client_host
    process = host.spawn(["sh", "-c", "sleep 300 & sleep 300 & echo started; wait"])
    assert count_processes(host, "sleep", "300") == 2
    process.stop()
    assert process.describe_status() == "killed by SIGTERM"
    assert count_processes(host, "sleep", "300") == 0, "the program's children outlived it"


def test_output_interleaves_stdout_and_stderr_and_status_names_the_signal(docker_backend):
    process = docker_backend.client_host.spawn(["sh", "-c", "echo one; echo two >&2; echo three; kill -9 $$"])
    assert process.wait(10.0) == -signal.SIGKILL
    assert process.output() == ["one", "two", "three"]
    assert process.describe_status() == "killed by SIGKILL"


@pytest.mark.parametrize("shortcuts", [True, False], ids=["via-proc", "via-exec"])
def test_server_lifecycle_with_and_without_host_shortcuts(docker_backend, shortcuts):
    """Without them (a daemon on another machine) everything goes through docker exec instead."""
    with docker_backend.spare_server() as host:
        host.host_visible = shortcuts and host.host_visible
        server = start_server(host, host.address, ServerSpec("c"), backlog=5, mode="iterative", ready_timeout=10.0)
        try:
            assert host.listeners(server.port), server.evidence()
            detail = host.listen_detail(server.port)
            assert detail and detail[0].backlog == 5, detail
            assert host.free_port() != server.port, "free_port offered a port the server listens on"
        finally:
            server.stop()
        assert server.process.poll() is not None
        assert not host.listeners(server.port), "something still listens after stop()"
