"""Running the C load generator (loadgen.c) and iperf3 against a port, and reading their figures.

The generator tells us on stdout when its measured window starts ("ready") and ends ("done"),
so the server's CPU time is read over exactly that window; with ``hold`` it keeps every
connection open after "done" until we have read the server's memory.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from harness.bench.servers import HOST

Hook = Callable[[str], None]
GRACE = 30.0  # seconds a run may take beyond its window (connects, warm-up, drain) before it is killed


class LoadError(RuntimeError):
    """The generator or iperf3 failed: the server misbehaved (closed, reset, wrong bytes) or hung."""


class LoadGenerator:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        #: Pin the generator's runs to this CPU (None: let the scheduler place them).
        self.cpu: int | None = None

    def rtt(self, ports: list[int], size: int, seconds: float) -> dict[str, Any]:
        """Round trips to every port in turn; ``servers`` holds each one's percentiles, in order."""
        return self._run(["rtt", HOST, str(size), f"{seconds:g}", *map(str, ports)], seconds)

    def stream(self, port: int, seconds: float, on_mark: Hook | None = None) -> dict[str, Any]:
        return self._run(["stream", HOST, str(port), f"{seconds:g}"], seconds, on_mark)

    def rps(self, port: int, conns: int, size: int, seconds: float, on_mark: Hook | None = None) -> dict[str, Any]:
        argv = ["rps", HOST, str(port), str(conns), str(size), f"{seconds:g}", "hold"]
        return self._run(argv, seconds, on_mark, hold=True)

    def _run(self, args: list[str], seconds: float, on_mark: Hook | None = None, hold: bool = False) -> dict[str, Any]:
        proc = subprocess.Popen(
            [self.binary, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        # A watchdog, not a sleep: a server that stops answering must not hang the bench.
        watchdog = threading.Timer(seconds + GRACE, proc.kill)
        watchdog.start()
        try:
            if self.cpu is not None:
                os.sched_setaffinity(proc.pid, {self.cpu})
            assert proc.stdout is not None and proc.stdin is not None
            last = ""
            for line in proc.stdout:
                last = line.strip()
                if last in ("ready", "done") and on_mark is not None:
                    on_mark(last)
                if last == "done" and hold:
                    proc.stdin.write("\n")  # release the held run: every connection now closes
                    proc.stdin.flush()
            status = proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        try:
            result: dict[str, Any] = json.loads(last)
        except ValueError:
            stderr = proc.stderr.read() if proc.stderr else ""
            raise LoadError(
                f"loadgen {' '.join(args)}: status {status}, no result ({last!r} {stderr[-200:]})"
            ) from None
        if status != 0 or "error" in result:
            raise LoadError(f"loadgen {' '.join(args)}: {result.get('error', f'status {status}')}")
        return result


def iperf3(binary: str, port: int, seconds: float, cpu: int | None = None) -> dict[str, Any]:
    """One iperf3 TCP stream over loopback to a running ``iperf3 -s``: the one-way ceiling."""
    # iperf3 takes whole seconds, and -t 0 means "forever": never below 1.
    argv = [binary, "-c", HOST, "-p", str(port), "-t", str(max(1, math.ceil(seconds))), "-J"]
    if cpu is not None:
        argv[1:1] = ["-A", str(cpu)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + GRACE, check=False)
    except subprocess.TimeoutExpired:
        raise LoadError(f"iperf3 did not finish within {seconds + GRACE:g} s") from None
    try:
        report = json.loads(done.stdout)
        end = report["end"]
        return {
            "mb_per_s": end["sum_received"]["bits_per_second"] / 8e6,
            "seconds": end["sum_received"]["seconds"],
            "sender_cpu_pct": end["cpu_utilization_percent"]["host_total"],
            "receiver_cpu_pct": end["cpu_utilization_percent"]["remote_total"],
        }
    except (ValueError, KeyError, TypeError):
        raise LoadError(f"iperf3: status {done.returncode}: {(done.stdout + done.stderr)[-300:]}") from None
