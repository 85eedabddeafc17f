"""Bad options end the run at once with one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pytest_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "tests" / "behaviour"), "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--server-cmd", "./srv --port 8888"], "has no {port}"),
        (["--server-cmd", "./srv {port} 'oops"], "No closing quotation"),
        (["--server-cmd", "./srv {port} {colour}"], "unknown placeholder {colour}"),
        (["--backend", "vagrant"], "unknown --backend 'vagrant'; choose from local"),
        (["--impl", "rust"], "unknown --impl 'rust'; choose from python, c"),
        (["--server-image", "my-server"], "--server-image my-server runs your server: give its command too"),
        (["--backend", "ssh"], "--backend ssh needs --ssh-host"),
        (["--net", "loss=5"], "--net 'loss=5': loss=5 is not a percentage between 0 and 100, e.g. loss=5%"),
        (["--net", "loss=5%"], "--net loss=5% cannot be applied on --backend local: its server and client talk over"),
        (["--backend", "ssh", "--ssh-host", "pi.invalid", "--net", "rate=1mbit"], "ssh cannot be used: cannot resolve"),
        (
            ["--backend", "ssh", "--ssh-host", "pi", "--ssh-config", "/nonexistent/cfg"],
            "/nonexistent/cfg: no such file",
        ),
    ],
)
def test_bad_option_is_one_line_and_exit_4(args, message):
    done = pytest_run(*args)
    assert done.returncode == 4, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_server_command_that_does_not_exist_fails_each_test_with_its_name():
    done = pytest_run("--server-cmd", "/nonexistent/echo-server --port {port}", "-k", "hello_sri_lanka")
    assert done.returncode == 1, done.stdout
    assert "cannot start /nonexistent/echo-server --port" in done.stdout
    assert "No such file or directory" in done.stdout
