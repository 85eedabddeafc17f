"""What the evidence of a 1 MiB echo costs to render: the pcap read, the connection split and the
judges, and the packet table, as a failing test's report does them (issue 9: under 1 s).

Two real captures on the local backend: a failing echo (broken_server.py first-chunk-only echoes
its first read and drops the rest) and a passing one by one-byte-writes (one send() per byte, some
50,000 segments: the largest capture a correct server makes). Each repetition renders from a fresh
Capture over the same pcap bytes, so nothing parsed by one is reused by the next.
"""

from __future__ import annotations

import shlex
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path

from harness.backends.local import LocalHost
from harness.bench.broken import broken_server
from harness.bench.model import Figure, Figures
from harness.checks import exchange, payload, random_bytes
from harness.command import ServerCommand
from harness.server import ServerSpec, start_server
from harness.wire.capture import Capture
from harness.wire.tcp import data_problem, teardown_problem

Say = Callable[[str], None]
METRIC = "evidence render"
MEBIBYTE = random_bytes(1 << 20, seed=1)
FAILING = "failing 1 MiB echo"
#: Subject -> broken_server.py's defect: the failing echo, which the target is about, and the worst passing one.
PASSING = "passing 1 MiB echo"
CASES = {FAILING: "first-chunk-only", PASSING: "one-byte-writes"}
#: A capture that lost packets is smaller than the real thing (and judged wrong): take it again.
RETAKES = 2


def declare(figs: Figures, skipped: Mapping[str, str]) -> list[Figure]:
    """Both cases' rows; a case in ``skipped`` (by subject) gets the reason instead of a value."""
    return [
        figs.add(
            Figure(
                "harness",
                METRIC,
                subject,
                "ms",
                "lower",
                note="pcap read + connection split + data/teardown judges + packet table",
                skipped=skipped.get(subject),
                extra={"defect": defect},
            )
        )
        for subject, defect in CASES.items()
    ]


def measure(figs: Figures, root: Path, reps: int, say: Say, skipped: Mapping[str, str] | None = None) -> None:
    """Capture each case once, then render it ``reps`` times; the figure is the median, in ms."""
    for f in declare(figs, skipped or {}):
        if f.skipped:
            continue
        defect = str(f.extra["defect"])
        try:
            pcap, server_port, client_port, dropped = _capture(root, defect)
            for _ in range(RETAKES):
                if not dropped:
                    break
                say(f"harness: {f.subject}: {dropped}, capturing again")
                pcap, server_port, client_port, dropped = _capture(root, defect)
        except Exception as exc:  # no tcpdump, not root: the row says why
            f.skipped = f"no capture of a 1 MiB echo: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            say(f"harness: {f.subject}: {f.skipped}")
            continue
        parts: dict[str, list[float]] = {"read_ms": [], "judge_ms": [], "table_ms": []}
        for _ in range(reps):
            timings, facts = _render(pcap, server_port, client_port)
            f.samples.append(sum(timings.values()))
            for key, ms in timings.items():
                parts[key].append(ms)
        f.extra.update({key: round(statistics.median(ms), 1) for key, ms in parts.items()})
        f.extra.update(facts, pcap_bytes=len(pcap), dropped=dropped)
        read, judge, table = (f.extra[key] for key in ("read_ms", "judge_ms", "table_ms"))
        f.note = (
            f"{defect}: {facts['segments']:,} segments, {len(pcap) / 1e6:.1f} MB pcap: read {read:.0f} ms, "
            f"split + judges {judge:.0f} ms, table {table:.0f} ms ({facts['table_lines']} lines); median of {reps}"
            + (f"; {dropped}" if dropped else "")
        )
        say(f"harness: {METRIC}, {f.subject}: {f.value:.0f} ms ({f.note})")


def _capture(root: Path, defect: str) -> tuple[bytes, int, int, str | None]:
    """A real 1 MiB echo by ``broken_server.py DEFECT``, captured: the pcap, the server's port, the
    client's port and what the capture lost (None: nothing)."""
    host = LocalHost()
    template = shlex.join([sys.executable, str(broken_server(root)), defect]) + " --port {port} --backlog {backlog}"
    spec = ServerSpec("python", ServerCommand.parse(template))
    with ExitStack() as stack:
        server = start_server(host, host.address, spec, backlog=3, mode="iterative", ready_timeout=10.0)
        stack.callback(server.stop)
        stack.callback(host.close)
        capture = host.start_capture(server.port)
        stack.callback(capture.stop)
        result = exchange(host, server, MEBIBYTE, lockstep=False, timeout=30)
        pcap = capture.stop()
        return pcap, server.port, int(result["local_port"]), capture.loss()
    raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow errors


def _render(pcap: bytes, server_port: int, client_port: int) -> tuple[dict[str, float], dict[str, int | str]]:
    """A failing test's report from a fresh Capture: the times of its three parts, in ms, and what it found."""
    capture = Capture(server_port, finish=lambda: pcap, losses=lambda: None)
    sent = payload(MEBIBYTE)
    t0 = time.perf_counter()
    segments = capture.segments()
    t1 = time.perf_counter()
    conn = capture.connection(client_port)
    if conn is None:
        raise RuntimeError(f"the capture holds no connection from port {client_port}")
    problems = [data_problem(conn, sent, sent), teardown_problem(conn)]  # both judged: both are timed
    t2 = time.perf_counter()
    table = capture.table()
    t3 = time.perf_counter()
    timings = {"read_ms": 1000 * (t1 - t0), "judge_ms": 1000 * (t2 - t1), "table_ms": 1000 * (t3 - t2)}
    found = "; ".join(p for p in problems if p) or "none"
    return timings, {"segments": len(segments), "table_lines": table.count("\n") + 1, "problem": found}
