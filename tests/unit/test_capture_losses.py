"""A test's captures are judged complete from tcpdump's own drop counts (SIGUSR1): each capture
that was judged asks once, and two captures that ended before one report share it (a second
report would find no packet captured since the first, which is how a fresh report is told from
an old one)."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator

import pytest

from harness.backends.local import LocalHost
from harness.fixtures import unavailable


@pytest.fixture
def host() -> Iterator[LocalHost]:
    if shutil.which("tcpdump") is None:
        unavailable("tcpdump is not installed (apt-get install tcpdump)")
    local = LocalHost()
    local.start_agent()
    yield local
    local.close()


def test_two_captures_stopped_together_both_have_their_drop_counts(host: LocalHost) -> None:
    ports = [host.free_port(), host.free_port()]
    captures = [host.start_capture(port) for port in ports]
    for port in ports:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", port))
            listener.listen()
            socket.create_connection(("127.0.0.1", port)).close()
    for capture in captures:
        capture.stop()
    assert [capture.loss() for capture in captures] == [None, None]
    assert all(capture.segments() for capture in captures), "each capture holds its own handshake"
