"""Each process's block of local ports is its own, so a worker's capture sees no other run's traffic."""

from __future__ import annotations

import subprocess
import sys

from harness.backends.local import BLOCK, LocalHost, worker_ports

HOLD = (
    "from harness.backends.local import worker_ports; import sys; "
    "print(worker_ports().start, flush=True); sys.stdin.read()"
)


def test_concurrent_processes_hold_disjoint_blocks_and_free_ports_come_from_their_own() -> None:
    holders = [
        subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    try:
        starts = {int(holder.stdout.readline()) for holder in holders}  # type: ignore[union-attr]
        mine = worker_ports()
        assert len(starts | {mine.start}) == 4, f"blocks shared: {sorted(starts)} and {mine.start}"
        assert len(mine) == BLOCK
        assert all(LocalHost().free_port() in mine for _ in range(20))
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()


def test_a_block_is_free_again_once_its_holder_has_ended() -> None:
    done = subprocess.run([sys.executable, "-c", HOLD], input="", capture_output=True, text=True, check=True)
    start = int(done.stdout)
    again = subprocess.run(
        [sys.executable, "-c", f"import socket; socket.socket(socket.AF_UNIX).bind('\\0echolab-ports-{start}')"],
        check=False,
    )
    assert again.returncode == 0
