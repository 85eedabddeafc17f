"""A report of 300 tests with captures stays small and opens quickly, and rendering grows with the
packets, not faster (synthetic tests and pcaps: no suite run needed)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

from harness.report.model import Exhibit, Run
from harness.report.page import write_page
from harness.verdict import Record, judge
from harness.wire.pcap import ACK, PSH, RST

from .packets import C_ISN, CLIENT, S_ISN, SERVER, exchange, tcp, write_pcap

BEHAVIOURS = ("echo fidelity", "half-close", "robustness", "listen backlog", "wire")
TESTS = 300
MAX_BYTES = 5 * 1024 * 1024
MAX_LOAD_SECONDS = 2.0


def long_echo(segments: int) -> list:
    """A handshake, ``segments`` one-byte segments each acknowledged, and the lab's teardown."""
    packets = exchange()[:3]
    for i in range(segments):
        packets.append(tcp(CLIENT, SERVER, PSH | ACK, C_ISN + 1 + i, S_ISN + 1, data=b"x"))
        packets.append(tcp(SERVER, CLIENT, ACK, S_ISN + 1, C_ISN + 2 + i))
    return packets


def synthetic_run(directory: Path, tests: int, data_segments: int) -> Run:
    """``tests`` tests over five behaviours, one in ten failing with a reset; each with two
    captured connections, one of them a data phase of ``data_segments`` segments."""
    pcaps = directory / "pcaps"
    pcaps.mkdir(parents=True)
    records, evidence = [], {}
    for n in range(tests):
        nodeid = f"tests/behaviour/test_x.py::test_{n}[local-python]"
        record = Record(nodeid, BEHAVIOURS[n % len(BEHAVIOURS)], ())
        record.location = ("tests/behaviour/test_x.py", n)
        client = (CLIENT[0], 40000 + n)
        ends = RST | ACK if n % 10 == 0 else None
        packets = exchange(client=client, **({"server_ends_with": ends} if ends else {}))
        short = write_pcap(pcaps / f"test_{n}-1.pcap", packets)
        long = write_pcap(pcaps / f"test_{n}-2.pcap", long_echo(data_segments))
        if ends:
            record.outcome, record.reason = "failed", "the server reset the connection (RST)"
        records.append(record)
        evidence[nodeid] = Exhibit(
            nodeid,
            evidence="sent 13 bytes, got 13 back; the server reset the connection (RST)\n" * 3 if ends else "",
            captures=[(str(short), SERVER[1]), (str(long), SERVER[1])],
            seconds=0.4,
        )
    plugin = SimpleNamespace(verdict=judge(records), subject="synthetic", notes=[])
    return Run.of(plugin, evidence, seconds=60.0)


def test_300_tests_with_captures_stay_under_5_mb_and_open_in_under_2_s(tmp_path, browser):
    run = synthetic_run(tmp_path, TESTS, data_segments=300)
    started = time.monotonic()
    page = write_page(run, tmp_path)
    rendered = time.monotonic() - started
    size = page.stat().st_size
    assert size < MAX_BYTES, f"{size} bytes"
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    started = time.monotonic()
    tab.goto(page.as_uri(), wait_until="load")
    loaded = time.monotonic() - started
    assert tab.locator("svg.ladder").count() == 2 * TESTS
    tab.close()
    print(f"300 tests, 600 connections: {size / 1e6:.2f} MB, written in {rendered:.2f} s, loaded in {loaded:.2f} s")
    assert loaded < MAX_LOAD_SECONDS, f"the page took {loaded:.2f} s to load"


def test_rendering_grows_with_the_packets_not_faster(tmp_path):
    """Ten times the packets (folded data phases ten times as long) takes about ten times as long
    to render, not a hundred: a quadratic step would show here long before a user notices."""
    timings = []
    for segments in (300, 3000):
        run = synthetic_run(tmp_path / str(segments), 10, data_segments=segments)
        started = time.monotonic()
        write_page(run, tmp_path / str(segments))
        timings.append(time.monotonic() - started)
    print(f"rendering 10 tests with {segments // 10}- and {segments}-segment data phases: {timings}")
    assert timings[1] < 30 * timings[0], f"{timings}: 10x the packets took {timings[1] / timings[0]:.0f}x as long"
