"""Fixtures for the SSH backend's tests: stand-in Pis per session (see standin.py). Without Docker
they skip with the reason, and fail in CI."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.fixtures import unavailable

from .standin import CLIENT_ALIAS, Standin, StandinError, docker, running_standin


@pytest.fixture(scope="session")
def standin() -> Iterator[Standin]:
    if shutil.which("docker") is None or docker("info", timeout=20.0).returncode != 0:
        unavailable("no Docker engine answers here, and the SSH tests run against a container (ci/docker-engine.sh)")
    if shutil.which("ssh") is None:
        unavailable("no OpenSSH client here (apt-get install openssh-client)")
    with contextlib.ExitStack() as stack:
        try:
            started = stack.enter_context(running_standin())
        except StandinError as exc:
            unavailable(f"cannot start the stand-in Pi: {exc}")
        yield started


@pytest.fixture(scope="session")
def standin_with_client(standin: Standin) -> Standin:
    """The stand-in with a second one, echolab-pi-client, on the same network."""
    if CLIENT_ALIAS not in standin.containers:
        standin.start(CLIENT_ALIAS)
    return standin


@pytest.fixture
def run_tmpdir() -> Iterator[Path]:
    """A TMPDIR for a child run, short enough that its ControlMaster socket is made inside it."""
    path = Path(tempfile.mkdtemp(prefix="echolab-t-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def clean_standin(standin: Standin) -> Iterator[Standin]:
    """The stand-in, holding nothing of echolab before the test, and checked to hold nothing after it."""
    assert standin.leftovers() == [], "the stand-in holds echolab leftovers before the test"
    yield standin
    left = standin.leftovers()
    assert left == [], f"echolab left these on the stand-in: {left}"
