"""Fixtures for the docker-only tests: the session's docker backend, whatever --backend says."""

from __future__ import annotations

import pytest

from harness.backends.docker.backend import DockerBackend
from harness.backends.docker.containers import connect


@pytest.fixture(scope="session")
def docker_backend(_backend_pool) -> DockerBackend:
    """The worker's docker backend (skipped with the reason where no daemon answers, failed in CI)."""
    return _backend_pool.get("docker")


@pytest.fixture(scope="session")
def docker_client(docker_backend):
    """The docker SDK's client, for looking at what the backend made."""
    client = connect()
    yield client
    client.close()
