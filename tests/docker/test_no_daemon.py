"""Without a daemon, a run that asks for --backend docker stops in one line before any test, with
exit status 4: on a workstation as in CI (a run that judged nothing must not look like a success)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "unix:///nonexistent/docker.sock"
REASON = f"ERROR: --backend docker cannot be used: no Docker daemon answers at {NOWHERE}: start it"


def run_without_daemon(ci: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(DOCKER_HOST=NOWHERE, CI=ci)
    argv = [sys.executable, "-m", "pytest", "-p", "no:xdist", "-rs", "--backend", "docker", "tests/behaviour"]
    argv += ["-k", "hello_sri_lanka"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("ci", ["false", "true"])
def test_no_daemon_stops_the_run_in_one_line(ci):
    code, report = run_without_daemon(ci)
    lines = [line for line in report.splitlines() if line.strip()]
    assert code == 4 and len(lines) == 1 and lines[0].startswith(REASON), report[-3000:]
