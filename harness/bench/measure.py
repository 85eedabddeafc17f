"""The echo servers' figures, measured in interleaved rounds so that drift hits every server alike.

Each round runs every server once per figure, in an order rotated from round to round; a figure
is the median of its rounds. All servers run at once (idle ones cost nothing), on loopback.

Placement: for round trips and requests/s the generator runs on the first CPU and every server
(with any children it forks) on the others, so each server gets the same core and every round trip
crosses cores alike (unpinned, a round trip's cost depends on where the scheduler put the two
sides, which dwarfs the differences measured). The bulk stream runs unpinned, iperf3 included:
all of them measured faster when the kernel may spread its receive work.
"""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.bench import procstat
from harness.bench.load import LoadError, LoadGenerator, iperf3
from harness.bench.model import Figure, Figures
from harness.bench.servers import EchoServer, RunningEcho

Say = Callable[[str], None]
RTT_REFERENCE = "minimal-c"
STREAM_REFERENCE = "iperf3"
RPS_REFERENCE = "uvloop"


@dataclass(frozen=True)
class Plan:
    rounds: int
    rtt_seconds: float
    stream_seconds: float
    rps_seconds: float
    conns: tuple[int, ...] = (10, 100)
    rtt_size: int = 64
    rps_size: int = 1024


@dataclass
class Generator:
    """Evidence that the load generator was not what limited the figures (see ``summary``)."""

    runs: list[dict[str, Any]] = field(default_factory=list)

    def summary(self, conns: tuple[int, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "how": "one C thread (loadgen.c), epoll, non-blocking, closed loop: a request leaves when the previous "
            "echo is complete. Its CPU time over the measured window is getrusage(RUSAGE_SELF); the server's is "
            "/proc/PID/schedstat summed over the server's session (forked children too). Capacity: the best of its "
            "runs' rates divided by the share of a core it used in that run. Proof it is not the limit: it drives "
            "the fastest server measurably harder than the others with the same code per request",
        }
        for n in conns:
            runs = [r for r in self.runs if r["conns"] == n]
            if not runs:
                continue
            by_server: dict[str, list[dict[str, Any]]] = {}
            for r in runs:
                by_server.setdefault(r["server"], []).append(r)
            rates = {s: statistics.median(r["rps"] for r in rs) for s, rs in by_server.items()}
            fastest, slowest = max(rates, key=rates.__getitem__), min(rates, key=rates.__getitem__)
            per_request = statistics.median(r["cpu_us_per_request"] for r in runs if r["cpu_us_per_request"] > 0)
            # What it could drive with a whole core: each run's rate over the share of a core it used.
            capacity = max(r["rps"] * 100 / r["gen_cpu_pct"] for r in runs if r["gen_cpu_pct"] > 0)
            out[f"conns_{n}"] = {
                "fastest": fastest,
                "fastest_rps": rates[fastest],
                "slowest": slowest,
                "slowest_rps": rates[slowest],
                "fastest_over_slowest": rates[fastest] / rates[slowest] if rates[slowest] else None,
                "yardstick_rps": rates.get(RPS_REFERENCE),
                "generator_cpu_pct_at_fastest": statistics.median(r["gen_cpu_pct"] for r in by_server[fastest]),
                "server_cpu_pct_at_fastest": statistics.median(r["server_cpu_pct"] for r in by_server[fastest]),
                "generator_cpu_us_per_request": per_request,
                "generator_capacity_rps": capacity,
            }
        return out


def _figures_for(figs: Figures, server: EchoServer, plan: Plan, skipped: str | None) -> None:
    name = server.name
    for metric in ("p50", "p99"):
        figs.add(Figure("rtt", metric, name, "us", "lower", reference=RTT_REFERENCE, skipped=skipped))
    figs.add(Figure("stream", "mb_per_s", name, "MB/s", "higher", reference=STREAM_REFERENCE, skipped=skipped))
    if server.concurrent:
        for n in plan.conns:
            figs.add(Figure("rps", f"rps@{n}", name, "req/s", "higher", reference=RPS_REFERENCE, skipped=skipped))
    figs.add(Figure("memory", "peak_rss", name, "MB", "lower", reference=RPS_REFERENCE, skipped=skipped))


def declare(figs: Figures, servers: list[EchoServer], missing: dict[str, str], plan: Plan) -> None:
    """Every server's figures, present from the start: a skipped server's rows say why."""
    for server in servers:
        _figures_for(figs, server, plan, missing.get(server.needs) if server.needs else None)
    figs.add(
        Figure(
            "stream",
            "mb_per_s",
            STREAM_REFERENCE,
            "MB/s",
            "higher",
            reference=STREAM_REFERENCE,
            note="one-way, not an echo: the loopback ceiling",
            skipped=missing.get("iperf3"),
        )
    )


def _fail(figure: Figure | None, exc: Exception, say: Say) -> None:
    if figure is not None and figure.skipped is None:
        figure.skipped = f"failed: {exc}"
        say(f"  {figure.subject} {figure.section} {figure.metric}: {figure.skipped}")


def _rotated(items: list[RunningEcho], k: int) -> list[RunningEcho]:
    k %= max(1, len(items))
    return items[k:] + items[:k]


class CpuWindow:
    """The server's CPU time between the generator's "ready" and "done", and its memory at "done"."""

    def __init__(self, pid: int, sample_memory: bool) -> None:
        self.pid = pid
        self.sample_memory = sample_memory
        self.start = self.stop = 0.0
        self.memory: procstat.Memory | None = None

    def __call__(self, mark: str) -> None:
        if mark == "ready":
            self.start = procstat.cpu_seconds(self.pid)
        elif mark == "done":
            self.stop = procstat.cpu_seconds(self.pid)
            if self.sample_memory:
                self.memory = procstat.memory(self.pid)

    def pct(self, seconds: float) -> float:
        return 100 * (self.stop - self.start) / seconds if seconds else 0.0


@dataclass
class EchoBench:
    """The rounds over the running servers, filling in their figures."""

    figs: Figures
    running: list[RunningEcho]
    gen: LoadGenerator
    plan: Plan
    say: Say
    #: iperf3's binary, its server's port and pid; None: no ceiling row.
    iperf: tuple[str, int, int] | None = None
    #: Pin as the module says (needs 2+ CPUs).
    pin: bool = True
    generator: Generator = field(default_factory=Generator)
    memory_at_peak: dict[str, list[procstat.Memory]] = field(default_factory=dict)

    def run(self) -> Generator:
        """All rounds of round trip, stream and requests/s; memory at the highest connection count."""
        for k in range(self.plan.rounds):
            tag = f"round {k + 1}/{self.plan.rounds}"
            self.place(pinned=True)
            self.round_trips(_rotated(self.running, k), tag)
            self.place(pinned=False)
            stream_order: list[RunningEcho | None] = [*_rotated(self.running, k), None]  # None: iperf3
            for item in stream_order if k % 2 == 0 else reversed(stream_order):
                if item is None:
                    self.ceiling(tag)
                else:
                    self.stream(item, tag)
            self.place(pinned=True)
            for n in self.plan.conns:
                for r in _rotated([r for r in self.running if r.server.concurrent], k):
                    self.requests(r, n, tag)
        self.place(pinned=False)
        _memory_figures(self.figs, self.running, self.memory_at_peak, max(self.plan.conns))
        return self.generator

    def place(self, pinned: bool) -> None:
        """Servers (and their children) on CPUs 1.., the generator on CPU 0; or everything anywhere."""
        cpus = sorted(os.sched_getaffinity(0))
        pinned = pinned and self.pin and len(cpus) >= 2
        self.gen.cpu = cpus[0] if pinned else None
        leaders = [r.pid for r in self.running] + ([self.iperf[2]] if self.iperf else [])
        for pid in (p for leader in leaders for p in procstat.session(leader)):
            with contextlib.suppress(OSError):  # a child that just exited
                os.sched_setaffinity(pid, set(cpus[1:]) if pinned else set(cpus))

    def round_trips(self, servers: list[RunningEcho], tag: str) -> None:
        """One generator run for all servers: back-to-back round trips, the servers taking turns in
        blocks of milliseconds (see loadgen.c), so that they are compared at the same moments."""
        figures = {r.server.name: (self._figure("rtt", "p50", r), self._figure("rtt", "p99", r)) for r in servers}
        todo = [r for r in servers if figures[r.server.name][0].skipped is None]
        if not todo:
            return
        try:
            res = self.gen.rtt([r.port for r in todo], self.plan.rtt_size, self.plan.rtt_seconds)
        except LoadError as exc:
            if len(todo) == 1:
                for f in figures[todo[0].server.name]:
                    _fail(f, exc, self.say)
            else:  # find the server that failed: each one alone
                for r in todo:
                    self.round_trips([r], tag)
            return
        for r, one in zip(todo, res["servers"]):
            p50, p99 = figures[r.server.name]
            p50.samples.append(one["p50_us"])
            p99.samples.append(one["p99_us"])
            p50.extra["round_trips"] = int(p50.extra.get("round_trips") or 0) + int(one["count"])
            self.say(f"{tag} rtt    {r.server.name:18} p50 {one['p50_us']:7.1f} us  p99 {one['p99_us']:7.1f} us")

    def _figure(self, section: str, metric: str, r: RunningEcho) -> Figure:
        f = self.figs.get(section, metric, r.server.name)
        assert f is not None, (section, metric, r.server.name)  # declare() made every server's figures
        return f

    def stream(self, r: RunningEcho, tag: str) -> None:
        f = self.figs.get("stream", "mb_per_s", r.server.name)
        if f is None or f.skipped:
            return
        window = CpuWindow(r.pid, sample_memory=False)
        try:
            res = self.gen.stream(r.port, self.plan.stream_seconds, on_mark=window)
        except LoadError as exc:
            _fail(f, exc, self.say)
            return
        f.samples.append(res["mb_per_s"])
        f.cpu.append((res["cpu_pct"], window.pct(res["seconds"])))
        if res["bytes"] == 0:
            f.extra["stalled_rounds"] = int(f.extra.get("stalled_rounds") or 0) + 1
        if not res["byte_exact"]:
            f.extra["byte_exact"] = False
            f.extra["lost_bytes"] = int(f.extra.get("lost_bytes") or 0) + int(res["lost"])
            stalled = f.extra.get("stalled_rounds")
            f.note = (
                "NOT byte-exact: what came back was right, but the server never echoed the last "
                f"{f.extra['lost_bytes']} bytes sent (over the rounds) before closing"
                + (f"; stalled (nothing echoed in the window) in {stalled} round(s)" if stalled else "")
            )
        elif "byte_exact" not in f.extra:
            f.extra["byte_exact"] = True
        self.say(
            f"{tag} stream {r.server.name:18} {res['mb_per_s']:8.0f} MB/s  byte-exact {res['byte_exact']}, "
            f"generator {res['cpu_pct']:3.0f}% CPU, server {f.cpu[-1][1]:3.0f}%"
        )

    def ceiling(self, tag: str) -> None:
        f = self.figs.get("stream", "mb_per_s", STREAM_REFERENCE)
        if self.iperf is None or f is None or f.skipped:
            return
        try:
            res = iperf3(self.iperf[0], self.iperf[1], self.plan.stream_seconds, self.gen.cpu)
            f.cpu.append((res["sender_cpu_pct"], res["receiver_cpu_pct"]))
        except LoadError as exc:
            _fail(f, exc, self.say)
            return
        f.samples.append(res["mb_per_s"])
        self.say(f"{tag} stream {'iperf3 (one-way)':18} {res['mb_per_s']:8.0f} MB/s")

    def requests(self, r: RunningEcho, n: int, tag: str) -> None:
        f = self.figs.get("rps", f"rps@{n}", r.server.name)
        if f is None or f.skipped:
            return
        window = CpuWindow(r.pid, sample_memory=n == max(self.plan.conns))
        try:
            res = self.gen.rps(r.port, n, self.plan.rps_size, self.plan.rps_seconds, on_mark=window)
        except LoadError as exc:
            _fail(f, exc, self.say)
            return
        f.samples.append(res["rps"])
        server_cpu = window.pct(res["seconds"])
        self.generator.runs.append(
            {
                "server": r.server.name,
                "conns": n,
                "rps": res["rps"],
                "gen_cpu_pct": res["cpu_pct"],
                "cpu_us_per_request": res["cpu_us_per_request"],
                "server_cpu_pct": server_cpu,
            }
        )
        f.cpu.append((res["cpu_pct"], server_cpu))
        if window.memory is not None:
            self.memory_at_peak.setdefault(r.server.name, []).append(window.memory)
        self.say(
            f"{tag} rps@{n:<3} {r.server.name:18} {res['rps']:9.0f} req/s  "
            f"generator {res['cpu_pct']:3.0f}% CPU, server {server_cpu:3.0f}%"
        )


def _memory_figures(
    figs: Figures, running: list[RunningEcho], at_peak: dict[str, list[procstat.Memory]], peak_conns: int
) -> None:
    """Concurrent servers: the most their processes held together with every connection open (the
    generator holds them while /proc is read). Iterative ones never hold more than one client: their
    high-water mark over the whole run."""
    for r in running:
        f = figs.get("memory", "peak_rss", r.server.name)
        if f is None or f.skipped:
            continue
        hwm = procstat.peak_rss_mb(r.pid)
        f.extra["run_high_water_mb"] = round(hwm, 1)
        samples = at_peak.get(r.server.name, [])
        if samples:
            top = max(samples, key=lambda m: m.rss_mb)
            f.samples.append(top.rss_mb)
            f.extra.update(processes=top.processes, pss_mb=round(top.pss_mb, 1))
            f.note = f"{peak_conns} connections open" + (
                f": VmRSS summed over {top.processes} processes (shared pages counted in each; Pss {top.pss_mb:.1f} MB)"
                if top.processes > 1
                else ""
            )
            if hwm > 1.5 * top.rss_mb:
                f.note += f"; {hwm:.0f} MB at its peak in the run (VmHWM)"
        elif hwm:
            f.samples.append(hwm)
            f.note = "one client at a time: its peak over the whole run (VmHWM)"
