"""Issue 6's and issue 9's targets, read off this run's figures: met, or missed by how much (never a
timed test)."""

from __future__ import annotations

from collections.abc import Callable

from harness.bench import broken, render
from harness.bench.model import Figures, Target

REFERENCE_SERVERS = ("python-iterative", "python-concurrent", "c-iterative", "c-concurrent")


def _at_most(value: float, bound: float) -> float:
    """Percent by which ``value`` exceeds ``bound`` (<= 0: met)."""
    return 100 * (value - bound) / bound


def _at_least(value: float, bound: float) -> float:
    """Percent by which ``value`` falls short of ``bound`` (<= 0: met)."""
    return 100 * (bound - value) / bound


def _verdict(text: str, checks: list[tuple[str, float | None, float, Callable[[float, float], float]]]) -> Target:
    """One target from several checks (label, value, bound, how): missed by the worst of them."""
    details, worst, unmeasured = [], None, []
    for label, value, bound, how in checks:
        if value is None:
            unmeasured.append(label)
            continue
        miss = how(value, bound)
        worst = miss if worst is None else max(worst, miss)
        sign = "<=" if how is _at_most else ">="
        details.append(
            f"{label} {value:.2f} ({'ok' if miss <= 0 else f'missed by {miss:.1f}%'}; needs {sign} {bound:g})"
        )
    if unmeasured:
        details.append("not measured: " + ", ".join(unmeasured))
    if worst is None:
        return Target(text, "not measured", "; ".join(details))
    # Partly measured and nothing missed so far is not yet "met".
    status = "missed" if worst > 0 else ("not measured" if unmeasured else "met")
    return Target(text, status, "; ".join(details), round(max(worst, 0.0), 1) if status == "missed" else None)


def _ratio(figs: Figures, section: str, metric: str, subject: str) -> float | None:
    f = figs.get(section, metric, subject)
    return f.ratio if f else None


def _over(figs: Figures, section: str, metric: str, a: str, b: str) -> float | None:
    return figs.ratio(section, metric, a, b)


def _cpu(figs: Figures, section: str, metric: str, subject: str) -> str:
    f = figs.get(section, metric, subject)
    cpu = f.cpu_pct if f else None
    return f"generator {cpu[0]:.0f}%, server {cpu[1]:.0f}% of a core" if cpu else "CPU not measured"


def _why_rtt(figs: Figures, server: str) -> str:
    # From the paired ratio (what the target reads), in microseconds of the minimal echo's figure.
    extra = [
        f"{metric} {(x - 1) * m:+.1f} us"
        for metric in ("p50", "p99")
        if (x := _ratio(figs, "rtt", metric, server)) is not None and (m := figs.value("rtt", metric, "minimal-c"))
    ]
    uvloop = _ratio(figs, "rtt", "p50", "uvloop")
    if server.startswith("python"):
        return (
            f"per round trip over the minimal C echo: {', '.join(extra)}: CPython's cost per event (bytecode, "
            "and the GIL released and taken back around each syscall)"
            + (f"; even uvloop, a C event loop under Python, is at {uvloop:.2f}x" if uvloop else "")
        )
    return f"per round trip over the minimal C echo: {', '.join(extra)}: within this run's noise (p99 moves most)"


def _why_stream(figs: Figures, server: str) -> str:
    floor = _ratio(figs, "stream", "mb_per_s", "minimal-c")
    cpu = _cpu(figs, "stream", "mb_per_s", server)
    return (
        (
            f"the minimal C echo gets {floor:.0%} of iperf3 in this run, so no server can do much better: "
            if floor
            else ""
        )
        + "an echo copies each byte four times (client send, server recv, server send, client recv) on two cores "
        + f"where iperf3 copies it twice, and the byte check costs the generator too ({cpu})"
    )


def evaluate(figs: Figures, conns: tuple[int, ...]) -> list[Target]:
    targets = []
    for server in REFERENCE_SERVERS:
        checks: list[tuple[str, float | None, float, Callable[[float, float], float]]] = []
        for metric in ("p50", "p99"):
            checks.append((f"{metric}/minimal-c", _ratio(figs, "rtt", metric, server), 1.05, _at_most))
            for rival in ("socat", "ncat"):
                checks.append((f"{metric}/{rival}", _over(figs, "rtt", metric, server, rival), 1.0, _at_most))
        t = _verdict(f"round trip {server}: p50, p99 <= 1.05x minimal C, below socat and ncat", checks)
        t.why = _why_rtt(figs, server) if t.status == "missed" else ""
        targets.append(t)
    for server, bound in (
        ("python-iterative", 0.55),
        ("python-concurrent", 0.55),
        ("c-iterative", 0.65),
        ("c-concurrent", 0.65),
    ):
        exact = figs.get("stream", "mb_per_s", server)
        checks = [("x iperf3", _ratio(figs, "stream", "mb_per_s", server), bound, _at_least)]
        t = _verdict(f"one stream {server}: >= {bound:.0%} of iperf3, byte-exact", checks)
        if exact is not None and exact.extra.get("byte_exact") is False:
            t.status, t.detail = "missed", t.detail + "; NOT byte-exact"
        t.why = _why_stream(figs, server) if t.status == "missed" else ""
        targets.append(t)
    for server in ("python-concurrent", "c-concurrent"):
        checks = []
        for n in conns:
            checks.append((f"@{n} x uvloop", _ratio(figs, "rps", f"rps@{n}", server), 0.9, _at_least))
            checks.append((f"@{n} x socat", _over(figs, "rps", f"rps@{n}", server, "socat"), 2.0, _at_least))
        label = ", ".join(str(n) for n in conns)
        t = _verdict(f"requests/s {server} at {label} conns: >= 0.9x uvloop, >= 2x socat", checks)
        if t.status == "missed":
            t.why = "; ".join(f"@{n}: {_cpu(figs, 'rps', f'rps@{n}', server)}" for n in conns) + (
                " (a server at ~100% is bound by itself: the kernel's TCP work per request plus its loop; "
                "a generator at ~100% means the figure is a lower bound)"
            )
        targets.append(t)
    rss = figs.value("memory", "peak_rss", "python-concurrent")
    targets.append(
        _verdict(f"memory python-concurrent at {max(conns)} conns: < 30 MB RSS", [("MB", rss, 30.0, _at_most)])
    )
    docker_suite = _verdict(
        "harness: docker suite <= 1.3x the local suite",
        [
            ("--wire on", _ratio(figs, "harness", "suite wall time", "docker --wire on"), 1.3, _at_most),
            ("--wire off", _ratio(figs, "harness", "suite wall time", "docker --wire off"), 1.3, _at_most),
        ],
    )
    if docker_suite.status == "missed":
        docker_suite.why = (
            "per test docker now costs what local does (probes and starts through the agent); per worker it "
            "creates a network and two containers and removes them: the first test's setup takes ~1.1 s longer "
            "than locally and the last one's teardown ~0.45 s (containers 0.17 s, then the network), against a "
            "suite of 4-6 s. That work is the daemon's CPU: starting each worker's containers from the "
            "controlling pytest while the workers boot only delayed their boot on two cores (tried, no gain)"
        )
    targets.append(docker_suite)
    targets.append(
        _verdict(
            "harness: ssh suite (stand-in Pi) <= 1.5x the local suite, capture on",
            [("--wire on", _ratio(figs, "harness", "suite wall time", "ssh --wire on"), 1.5, _at_most)],
        )
    )
    targets.append(
        _verdict(
            "harness: a probe through the agent on docker < 10 ms",
            [("ms", figs.value("harness", "probe round trip", "docker agent"), 10.0, _at_most)],
        )
    )
    targets.append(
        _verdict(
            "harness: server container ready <= 1.3x docker run --rm",
            [("x docker run", _ratio(figs, "harness", "ready", "docker server container"), 1.3, _at_most)],
        )
    )
    capture = _verdict(
        "harness: capture on costs <= 5% locally, <= 10% on docker (the tests both --wire settings run)",
        [
            ("local on/off", _ratio(figs, "harness", "suite without test_wire.py", "local --wire on"), 1.05, _at_most),
            ("docker on/off", _ratio(figs, "harness", "suite without test_wire.py", "docker --wire on"), 1.1, _at_most),
        ],
    )
    if capture.status == "missed":
        capture.why = (
            "one tcpdump per host for the run, on a 32 MiB ring; what remains grows with the bytes captured: "
            "tcpdump writes 23 MB per local suite, 20 MB of it the reset-with-echo-unread test's (loopback's "
            "buffers hold that much before the server is stuck), which the harness reads cut to its headers"
        )
    targets.append(capture)
    targets += [_broken_target(figs, backend) for backend in ("local", "docker")]
    targets.append(_render_target(figs))
    return targets


def _broken_target(figs: Figures, backend: str) -> Target:
    """Issue 9: the verdict on a broken server (or the correct one-byte-writes) takes at most 2x the
    reference server's suite on the same backend."""
    rows = [
        f
        for f in figs.items
        if f.section == broken.SECTION and f.subject.startswith(f"{backend} ") and f.reference != f.subject
    ]
    checks: list[tuple[str, float | None, float, Callable[[float, float], float]]] = [
        (f"{f.subject.split(' ', 1)[1]}{' (bench error)' if f.error else ''}", f.ratio, 2.0, _at_most) for f in rows
    ]
    t = _verdict(f"verdict on broken servers, {backend}: each suite <= 2x the reference server's", checks)
    if t.status == "missed":
        slow = [f for f in rows if f.ratio is not None and f.ratio > 2.0]
        t.why = "; ".join(f"{f.subject}: {f.ratio:.2f}x, {f.extra.get('summary')}" for f in slow)
    return t


def _render_target(figs: Figures) -> Target:
    f = figs.get("harness", render.METRIC, render.FAILING)
    t = _verdict(
        "evidence of a failing 1 MiB echo (pcap, judges, packet table) rendered in < 1 s",
        [("ms", f.value if f is not None else None, 1000.0, _at_most)],
    )
    if t.status == "missed" and f is not None:
        t.why = f.note
    return t
