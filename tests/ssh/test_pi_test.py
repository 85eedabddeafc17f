"""`make pi-test` end to end against the stand-in Pi, exactly as a user runs it against a real one."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.wait import WaitTimeoutError, until

from .standin import ALIAS, ROOT, Standin, assert_no_control_directories, child_env


@pytest.mark.timeout(900)  # the whole suite over SSH, python and c; slower still on a busy CI machine
def test_make_pi_test_passes_for_python_and_c_and_leaves_nothing(clean_standin: Standin, tmp_path: Path) -> None:
    junit = tmp_path / "pi-test.xml"
    argv = ["make", "pi-test", f"HOST={ALIAS}", "USER=pi", "PORT=22", f"SSH_CONFIG={clean_standin.config}",
            "IMPL=python,c", f"JUNIT={junit}"]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=900, check=False)
    report = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{report[-6000:]}"
    assert "VERDICT: PASS" in report, report[-3000:]
    cases = ET.parse(junit).getroot().iter("testcase")
    outcomes: dict[str, list[str]] = {"python": [], "c": []}
    for case in cases:
        name = case.get("name", "")
        for impl, results in outcomes.items():
            if name.endswith(f"[ssh://pi@{ALIAS}-{impl}]"):
                bad = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
                results.append(f"{name}: {bad[0]}" if bad else "passed")
    for impl, results in outcomes.items():
        assert results, f"no --impl {impl} test in the JUnit XML {junit}"
        assert set(results) == {"passed"}, f"--impl {impl}: {[r for r in results if r != 'passed']}"
    # Teardown left nothing behind: the clean_standin fixture checks the Pi for directories and processes.


def test_user_from_the_ssh_config_when_make_gets_none(clean_standin: Standin, tmp_path: Path) -> None:
    # No USER= on the command line: the environment's USER (the login name) must not be taken;
    # the ssh config's User pi is.
    argv = ["make", "pi-test", f"HOST={ALIAS}", f"SSH_CONFIG={clean_standin.config}", f"JUNIT={tmp_path / 'j.xml'}",
            "PYTEST_ARGS=-k hello_sri_lanka"]  # fmt: skip
    env = child_env(USER="somebody-else")
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    report = done.stdout + done.stderr
    assert done.returncode == 0 and f"(ssh://pi@{ALIAS}-python)" in report, report[-3000:]


def interrupted_run(standin: Standin, tmpdir: Path, signum: int) -> tuple[subprocess.Popen[str], str]:
    """Start the suite over SSH, wait until its server runs on the Pi, then send ``signum`` to the
    whole run as a terminal would (Ctrl-C reaches the process group); return it and its output."""
    env = child_env(TMPDIR=str(tmpdir))
    argv = [sys.executable, "-m", "pytest", "tests/behaviour", "-q", "--backend", "ssh", "--ssh-host", ALIAS,
            "--ssh-config", str(standin.config), "-k", "mebibyte or backlog or one_after_another"]  # fmt: skip
    child = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        until(
            lambda: any("supervise.py" in line for line in standin.leftovers()),
            timeout=60,
            what="the run's programs on the stand-in",
            interval=(0.02, 0.2),
        )
        os.killpg(child.pid, signum)
        output, _ = child.communicate(timeout=60)
    except BaseException:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        raise
    return child, output


def test_ctrl_c_mid_run_leaves_nothing_on_the_pi_or_here(clean_standin: Standin, run_tmpdir: Path) -> None:
    child, output = interrupted_run(clean_standin, run_tmpdir, signal.SIGINT)
    assert child.returncode != 0, output
    assert "KeyboardInterrupt" in output or "Interrupted" in output, output[-2000:]
    # The control socket's directory is made under TMPDIR; the run removed it on its way out.
    assert list(run_tmpdir.glob("echolab-ssh-*")) == [], "a ControlMaster directory is left behind"
    masters = [args for args in local_commands() if "ControlMaster=yes" in args and str(run_tmpdir) in args]
    assert masters == [], f"the run's ControlMaster still runs: {masters}"
    # clean_standin: no process and no directory left on the Pi.


def test_killed_run_leaves_nothing_on_the_pi(clean_standin: Standin, run_tmpdir: Path) -> None:
    # SIGKILL gives the harness no chance to clean up: the master dies with it (setpriv --pdeathsig),
    # the Pi sees the connection close, and the sessions there stop the server and remove the directory.
    # Here, each connection's reaper sees its pipe close and removes the control socket's directory.
    interrupted_run(clean_standin, run_tmpdir, signal.SIGKILL)
    with contextlib.suppress(WaitTimeoutError):
        until(lambda: clean_standin.leftovers() == [], timeout=20, what="the Pi cleaning up", interval=(0.05, 0.5))
    left = clean_standin.leftovers()
    assert left == [], f"after the run was killed, the Pi still holds: {left}"
    assert_no_control_directories(run_tmpdir)


def local_commands() -> list[str]:
    """Command lines of this machine's processes."""
    commands = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            commands.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return commands
