"""The agent (harness/remote/agent.py) over a real pipe: what it runs, what it answers, how it ends."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import remote
from harness.agent import AgentLink, AgentLostError, start_piped
from harness.backends.local import LocalHost
from harness.errors import HarnessError
from harness.wait import until

AGENT = Path(remote.__file__).resolve().parent / "agent.py"
PIPES = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}


@pytest.fixture
def agent() -> Iterator[AgentLink]:
    link = start_piped("test agent", lambda: subprocess.Popen([sys.executable, str(AGENT)], **PIPES))
    yield link
    link.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_run_returns_status_and_both_streams(agent: AgentLink) -> None:
    done = agent.run(["sh", "-c", "cat; echo err >&2; exit 3"], b"in\x00put", timeout=10.0)
    assert (done.returncode, done.stdout, done.stderr) == (3, b"in\x00put", b"err\n")


def test_a_missing_program_is_the_oserror_a_local_start_raises(agent: AgentLink) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        agent.spawn(["no-such-program-here"], None)
    assert caught.value.filename == "no-such-program-here"


def test_a_command_that_overruns_its_timeout_is_a_harness_error(agent: AgentLink) -> None:
    started = time.monotonic()
    with pytest.raises(HarnessError, match=r"did not finish within 0\.3 s"):
        agent.run(["sleep", "30"], None, timeout=0.3)
    assert time.monotonic() - started < 10


def test_spawned_program_streams_its_lines_and_exit(agent: AgentLink) -> None:
    process = agent.spawn(["sh", "-c", 'echo one; echo two >&2; echo "$X"; exit 4'], {"X": "three"})
    assert process.wait(10.0) == 4
    assert process.output() == ["one", "two", "three"]
    assert process.describe_status() == "exited with status 4"


def test_a_signal_reaches_the_whole_group_of_a_spawned_program(agent: AgentLink, tmp_path: Path) -> None:
    pidfile = tmp_path / "child"
    process = agent.spawn(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], None)
    until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=10.0, what="the child's pid")
    child = int(pidfile.read_text())
    process.signal(signal.SIGTERM)
    assert process.wait(10.0) == -signal.SIGTERM
    until(lambda: not alive(child), timeout=5.0, what="the program's child gone with it")


def test_a_probe_runs_in_the_agent_and_answers(agent: AgentLink) -> None:
    result = agent.probe({"op": "connect", "host": "127.0.0.1", "port": 1, "timeout": 1.0}, timeout=10.0)
    assert result["outcome"] == "refused"


def test_a_free_port_from_the_agent_can_be_bound_and_a_pair_has_its_successor_free(agent: AgentLink) -> None:
    for pair in (False, True):
        port = agent.free_port(pair)
        taken = [socket.socket() for _ in range(2 if pair else 1)]
        try:
            for offset, sock in enumerate(taken):
                sock.bind(("", port + offset))  # OSError here: the port was not free
        finally:
            for sock in taken:
                sock.close()


def test_closing_the_stream_kills_what_the_agent_still_runs(tmp_path: Path) -> None:
    link = start_piped("test agent", lambda: subprocess.Popen([sys.executable, str(AGENT)], **PIPES))
    process = link.spawn(["sleep", "60"], None)
    link.close()  # as when the harness dies: the agent's stdin ends
    until(lambda: not alive(process.pid), timeout=10.0, what="the program killed with its agent")
    assert process.wait(5.0) is not None


def test_an_agent_that_dies_ends_every_wait_with_what_it_said() -> None:
    crash = (
        "import sys; sys.stderr.write('agent exploded\\n'); sys.stdout.write('{\"ready\": 1}\\n'); "
        "sys.stdout.flush(); sys.stdin.readline()"
    )
    link = start_piped("test agent", lambda: subprocess.Popen([sys.executable, "-c", crash], **PIPES))
    try:
        with pytest.raises(AgentLostError, match="agent exploded"):
            link.request("ping", 10.0)  # the fake reads one line, then exits without answering
    finally:
        link.close()


def test_an_agent_that_cannot_start_says_why_in_one_error() -> None:
    with pytest.raises(AgentLostError, match="No such file"):
        start_piped("test agent", lambda: subprocess.Popen([sys.executable, "/nonexistent/agent.py"], **PIPES))


def test_a_host_whose_agent_is_gone_starts_another_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    host = LocalHost()
    host.start_agent()
    try:
        first = host.agent
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        until(lambda: first.lost, timeout=10.0, what="the killed agent's stream ending")
        with caplog.at_level(logging.WARNING, logger="echolab.commands"):
            assert host.run(["echo", "again"]).stdout == b"again\n"
        assert host.agent is not first and host.agent is not None and not host.agent.lost
        assert "agent is gone" in caplog.text
    finally:
        host.close()
