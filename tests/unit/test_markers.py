"""A capture's end marker reaches tcpdump's file at once only because of its filler: tcpdump reads a
TPACKET_V3 ring, whose kernel hands over a block when it is full or a second after it opened
(harness/remote/marker.py). Both halves pinned with a real tcpdump on lo; the margin between them
is the block timeout itself (about 1 s against a few milliseconds)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.fixtures import unavailable
from harness.remote import marker
from harness.wire.capture import tcpdump_argv

SOON = 0.5  # well inside the ring's one-second block timeout
# An address of its own on lo: other tests' markers (to 127.0.0.1) never fill this capture's blocks.
ADDRESS = "127.0.0.77"


@pytest.fixture
def pcap(tmp_path: Path) -> Iterator[Path]:
    if shutil.which("tcpdump") is None:
        unavailable("tcpdump is not installed (apt-get install tcpdump)")
    path = tmp_path / "markers.pcap"
    argv = tcpdump_argv("lo", "tcp port 1", str(path), as_root=os.geteuid() == 0)
    argv[-1] = f"udp and dst host {ADDRESS}"  # the ring and options the harness uses, this test's traffic only
    tcpdump = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert tcpdump.stderr is not None
        said = tcpdump.stderr.readline().decode()
        if "listening on" not in said:
            unavailable(f"tcpdump cannot capture on lo here: {said.strip()}")
        marker.send(ADDRESS, b"warm-up", flush=True)  # past the first block
        time.sleep(0.05)
        yield path
    finally:
        tcpdump.terminate()
        tcpdump.wait(10)


def arrives(path: Path, token: bytes, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.exists() and token in path.read_bytes():
            return True
        time.sleep(0.005)
    return False


def test_a_flushed_marker_is_in_the_file_at_once(pcap: Path) -> None:
    token = b"echolab-test-" + secrets.token_hex(8).encode()
    marker.send(ADDRESS, token, flush=True)
    assert arrives(pcap, token, SOON), "the flushed marker did not reach tcpdump's file"


def test_without_its_filler_a_marker_waits_in_the_ring(pcap: Path) -> None:
    token = b"echolab-test-" + secrets.token_hex(8).encode()
    marker.send(ADDRESS, token, flush=False)
    assert not arrives(pcap, token, SOON), "a marker alone reached the file: the filler is not what flushes it"
    assert arrives(pcap, token, 3.0), "the ring's block timeout never handed the marker over"
