"""``python -m harness.bench [--quick] [--out DIR]``: measure the echo servers and the harness.

Phases: compile the C load generator and minimal echo into a temporary directory; start every
echo server on loopback; interleaved rounds of round trip, stream and requests/s; then the
harness (server start-to-ready, behaviour-suite wall times, what a failing test's evidence costs to
render, and interleaved rounds of the suite on the reference server and on broken ones, per backend).
Everything started is stopped at the end, also on Ctrl-C or a failure. Output: a table on stdout,
``bench.json``, ``bench.png`` and ``table.txt`` in the results directory; progress on stderr.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from harness.bench import broken, net, render, report, roundtrip, suite
from harness.bench.load import LoadGenerator
from harness.bench.measure import RPS_REFERENCE, EchoBench, Generator, Plan, declare
from harness.bench.model import Figures
from harness.bench.servers import (
    EXTERNAL_TOOLS,
    HOST,
    QUICK,
    SERVERS,
    free_port,
    start,
    start_all,
    toolbox,
    wait_listening,
)
from harness.bench.targets import evaluate

ROOT = Path(__file__).resolve().parents[2]
FULL = Plan(rounds=5, rtt_seconds=1.5, stream_seconds=0.5, rps_seconds=0.5)
QUICK_PLAN = Plan(rounds=1, rtt_seconds=0.6, stream_seconds=0.3, rps_seconds=0.3)
CI_REQUIRED = (*EXTERNAL_TOOLS, "uvloop")


STARTED = time.monotonic()


def say(line: str) -> None:
    print(f"bench: {time.monotonic() - STARTED:5.1f}s {line}", file=sys.stderr, flush=True)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smoke check in well under a minute: tiny runs, fewer servers"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench-results", help="results directory (default bench-results/)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds (default 5, harness and broken-server suites 3; quick 1)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="never pin (default: round trips and requests/s run with the generator on CPU 0 and the servers on "
        "the others; see harness/bench/measure.py)",
    )
    parser.add_argument("--no-harness", action="store_true", help="skip the harness figures (suite runs, start-up)")
    return parser.parse_args(argv)


def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds every `with`: servers, generator, temporary directory


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except KeyboardInterrupt:
        say("interrupted: everything the bench started has been stopped")
        return 130


def run(args: argparse.Namespace) -> int:
    plan = QUICK_PLAN if args.quick else FULL
    if args.rounds:
        plan = Plan(args.rounds, plan.rtt_seconds, plan.stream_seconds, plan.rps_seconds)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started, t0 = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.monotonic()
    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cpus) >= 2
    placement = (
        f"round trips and requests/s: generator on CPU {cpus[0]}, servers on CPUs {cpus[1:]}; stream unpinned"
        if pin
        else "nothing pinned"
    )
    figs = Figures()
    with ExitStack() as stack:
        tools = stack.enter_context(toolbox(say))
        for tool, why in tools.missing.items():
            say(f"{'ERROR (CI=true) ' if in_ci() else ''}skipping the {tool} rows: {why}")
        servers = [s for s in SERVERS if not args.quick or s.name in QUICK]
        declare(figs, servers, tools.missing, plan)
        usable = [s for s in servers if not (s.needs and s.needs in tools.missing)]
        with ExitStack() as running_stack:
            running, failed = start_all(running_stack, usable, tools, say)
            for f in figs.items:
                if f.subject in failed:
                    f.skipped = failed[f.subject]
            started_pids = [r.pid for r in running]
            iperf = None
            if "iperf3" in tools.found:
                port = free_port()
                server = start(running_stack, [tools.found["iperf3"], "-s", "-B", HOST, "-p", str(port)])
                wait_listening(server, port, "iperf3 -s")
                iperf = (tools.found["iperf3"], port, server.pid)
                started_pids.append(server.pid)
            say(
                f"{plan.rounds} round(s): rtt {plan.rtt_seconds:g} s for all servers in turn, stream "
                f"{plan.stream_seconds:g} s and requests/s {plan.rps_seconds:g} s per server; {placement}"
            )
            gen = LoadGenerator(tools.binary("loadgen"))
            generator = EchoBench(figs, running, gen, plan, say, iperf, pin).run()
        _harness(figs, args, say)
    figs.compute_ratios()
    targets = evaluate(figs, plan.conns)
    evidence = _generator_evidence(generator, plan)
    run_info: dict[str, Any] = {
        "schema": "echolab-bench/1",
        "started": started,
        "duration_s": round(time.monotonic() - t0, 1),
        "quick": bool(args.quick),
        "machine": {
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_start": _loadavg(),
        },
        "plan": {
            "rounds": plan.rounds,
            "rtt_seconds": plan.rtt_seconds,
            "stream_seconds": plan.stream_seconds,
            "rps_seconds": plan.rps_seconds,
            "conns": list(plan.conns),
            "rtt_size": plan.rtt_size,
            "rps_size": plan.rps_size,
        },
        "placement": placement,
        "references": {
            "rtt": "minimal-c",
            "stream": "iperf3",
            "rps": "uvloop",
            "memory": "uvloop",
            "harness": "per row: suite --wire off / local suite / bare spawn / docker run --rm",
            "broken": "the behaviour suite on the reference server, same backend, same rounds",
        },
        "missing_tools": tools.missing,
        # What the run started: all stopped and removed by now (the smoke test checks).
        "cleanup": {"tempdir": str(tools.bindir), "server_pids": started_pids},
    }
    text = report.table(run_info, figs, targets, evidence)
    sys.stdout.write(text)
    (out / "table.txt").write_text(text)
    report.write_json(out / "bench.json", run_info, figs, targets, evidence)
    try:
        report.write_png(out / "bench.png", run_info, figs)
    except ImportError as exc:
        say(f"no chart: {exc} (pip install -e '.[bench]')")
    say(f"wrote {out / 'table.txt'}, {out / 'bench.json'}, {out / 'bench.png'}")
    missing_in_ci = [t for t in CI_REQUIRED if t in tools.missing] if in_ci() else []
    if missing_in_ci:
        say(f"ERROR: CI=true but {', '.join(missing_in_ci)} missing: run ci/host-tools.sh and install '.[bench]'")
        return 1
    return 0


def _harness(figs: Figures, args: argparse.Namespace, say: Any) -> None:
    if args.no_harness:
        return
    if args.quick:
        suite.measure_local_ready(figs, ("python",), 2, say)
        suite.declare_suites(
            figs, {"local": "--quick: the suite runs take minutes", "docker": "--quick", "ssh": "--quick"}
        )
        suite.declare_docker_ready(figs, "--quick")
        roundtrip.measure(figs, ROOT, say, "--quick")
        render.measure(figs, ROOT, 3, say, {render.PASSING: "--quick: its capture and renders take 5-10 s"})
        broken.declare(figs, broken.QUICK, {"docker": "--quick: local only"})
        broken.measure(figs, ROOT, args.rounds or 1, say)
        net.declare(figs, net.QUICK, suite.docker_unavailable(), "--quick: the suite runs take minutes")
        net.measure(figs, ROOT, 1, say)
        return
    suite.measure_local_ready(figs, ("python", "c"), 5, say)
    no_docker = suite.docker_unavailable()
    if no_docker:
        say(f"harness: docker figures skipped: {no_docker}")
        suite.declare_docker_ready(figs, no_docker)
    else:
        suite.measure_docker_ready(figs, ROOT, 3, say)
    roundtrip.measure(figs, ROOT, say, no_docker)
    suite.declare_suites(figs, {"docker": no_docker, "ssh": no_docker})
    suite.measure_suites(figs, ROOT, say, args.rounds or 3)
    render.measure(figs, ROOT, 5, say)
    broken.declare(figs, (*broken.DEFECTS, *broken.CORRECT), {"docker": no_docker})
    broken.measure(figs, ROOT, args.rounds or broken.ROUNDS, say)
    net.declare(figs, net.CONDITIONS, no_docker, None)
    net.measure(figs, ROOT, args.rounds or 3, say)


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _generator_evidence(generator: Generator, plan: Plan) -> dict[str, Any]:
    """The generator's figures, and in words whether it was what limited the requests/s."""
    evidence = generator.summary(plan.conns)
    verdict = []
    for n in plan.conns:
        g = evidence.get(f"conns_{n}")
        if not g:
            continue
        spread = g["fastest_over_slowest"] or 0
        verdict.append(
            f"{n} conns: the same generator drove {g['fastest']} {spread:.2f}x harder than {g['slowest']}"
            + (": the slower servers were limited by themselves" if spread >= 1.2 else "")
        )
        yardstick = g["yardstick_rps"]
        if yardstick and g["fastest"] != RPS_REFERENCE:
            verdict.append(
                f"{n} conns: it drove {g['fastest']} {g['fastest_rps'] / yardstick:.2f}x harder than the uvloop "
                "yardstick, so uvloop and every server slower than it were not held back by the generator"
            )
        headroom = (g["generator_capacity_rps"] or 0) / g["fastest_rps"] if g["fastest_rps"] else 0
        if headroom < 1.2:
            verdict.append(
                f"{n} conns: at {g['fastest']} the generator used {g['generator_cpu_pct_at_fastest']:.0f}% of its "
                f"core (capacity ~{headroom:.2f}x that rate): the top figure itself may be generator-bound"
            )
    evidence["verdict"] = verdict
    return evidence


if __name__ == "__main__":
    sys.exit(main())
