"""Without a daemon the docker tests say so in one line: skipped on a workstation, failed in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "unix:///nonexistent/docker.sock"
REASON = f"backend docker unavailable: no Docker daemon answers at {NOWHERE}: start it"


def run_without_daemon(ci: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(DOCKER_HOST=NOWHERE, CI=ci)
    argv = [sys.executable, "-m", "pytest", "-p", "no:xdist", "-rs", "--backend", "docker", "tests/behaviour"]
    argv += ["-k", "hello_sri_lanka"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(("ci", "status", "outcome"), [("false", 0, "skipped"), ("true", 1, "failed")])
def test_no_daemon_skips_locally_and_fails_in_ci(ci, status, outcome):
    code, report = run_without_daemon(ci)
    assert code == status and REASON in report and f"1 {outcome}" in report, report[-3000:]
