"""Nothing a run starts outlives it: not after a pass, a Ctrl-C, or the harness killed outright."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness.wait import WaitTimeoutError, until

HERE = Path(__file__).resolve().parent
MARK = "ECHOLAB_LEAK_MARK"  # an environment variable every process of a child run inherits
ROOT = HERE.parent.parent


def marked_server(tmp_path: Path) -> Path:
    """A copy of the broken-server script under a unique path, so its processes can be found."""
    home = tmp_path / f"echolab-leak-{uuid.uuid4().hex}"
    home.mkdir()
    return Path(shutil.copy(HERE / "broken_server.py", home / "server.py"))


def processes_running(path: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(path).encode() in cmdline:
            found.append(int(entry.name))
    return found


def eventually(predicate, timeout: float = 20.0) -> bool:
    try:
        return bool(until(predicate, timeout=timeout, what="the condition", interval=0.05))
    except WaitTimeoutError:
        return False


def processes_of_run(mark: str) -> list[str]:
    """Every process that inherited the run's environment mark: its agent, tcpdump, servers."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"{MARK}={mark}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{entry.name}: {argv}")
        except OSError:
            continue
    return found


def child_pytest(
    server: Path, defect: str, *args: str, mark: str = "", tmp: Path | None = None
) -> subprocess.Popen[bytes]:
    command = f"{sys.executable} {server} {defect} --port {{port}} --backlog {{backlog}}"
    env = {**os.environ, MARK: mark, **({"TMPDIR": str(tmp)} if tmp else {})}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", str(ROOT / "tests" / "behaviour"), "-q", "--server-cmd", command, *args],
        cwd=ROOT,
        env={k: v for k, v in env.items() if not k.startswith("PYTEST_XDIST")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def leftovers(tmp: Path) -> list[str]:
    """What the harness made in the run's temporary directory and left there (pytest's own is not ours)."""
    return sorted(path.name for path in tmp.iterdir() if path.name.startswith("echolab"))


def test_a_finished_run_leaves_no_server_process(tmp_path):
    server = marked_server(tmp_path)
    tmp, mark = tmp_path / "tmp", uuid.uuid4().hex
    tmp.mkdir()
    child = child_pytest(server, "correct", "-k", "fidelity or robustness", mark=mark, tmp=tmp)
    assert child.wait(120) == 0
    assert processes_running(server) == []
    assert eventually(lambda: not processes_of_run(mark)), f"still running: {processes_of_run(mark)}"
    assert leftovers(tmp) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_an_interrupted_run_leaves_no_server_process(tmp_path, signum):
    server = marked_server(tmp_path)
    tmp, mark = tmp_path / "tmp", uuid.uuid4().hex
    tmp.mkdir()
    # A server that never listens keeps the child waiting in readiness polling: interrupt it there.
    child = child_pytest(server, "never-listens", "--ready-timeout", "60", "-k", "hello_sri_lanka", mark=mark, tmp=tmp)
    try:
        assert eventually(lambda: processes_running(server)), "the child run never started its server"
        os.kill(child.pid, signum)
        child.wait(30)
        assert eventually(lambda: not processes_running(server)), (
            f"server processes {processes_running(server)} survived the harness getting {signum.name}"
        )
        assert eventually(lambda: not processes_of_run(mark)), f"survived {signum.name}: {processes_of_run(mark)}"
        assert eventually(lambda: not leftovers(tmp)), f"left in TMPDIR after {signum.name}: {leftovers(tmp)}"
    finally:
        child.kill()
        child.wait()
        for pid in processes_running(server):
            os.kill(pid, signal.SIGKILL)
