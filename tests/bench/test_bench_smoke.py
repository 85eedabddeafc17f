"""`make bench QUICK=1` as a smoke check: the quick bench runs, and its table, JSON and chart have
the right shape. Never its speed: the figures are whatever this machine gives at the moment."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICK_SERVERS = ("python-concurrent", "c-concurrent", "minimal-c", "socat", "ncat", "uvloop")
NEEDED = {"socat": "ci/host-tools.sh", "ncat": "ci/host-tools.sh", "iperf3": "ci/host-tools.sh"}
SECTIONS = ("rtt", "stream", "rps", "memory", "harness", "broken")
#: What --quick runs of the broken-server suites: local only, these two against the reference.
QUICK_DEFECTS = ("drop-last-byte", "no-fin")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    if importlib.util.find_spec("matplotlib") is None:
        if in_ci():
            pytest.fail("CI=true but matplotlib is missing: the bench needs pip install -e '.[bench]'")
        pytest.skip("the bench's chart needs matplotlib: pip install -e '.[bench]' (make bench does)")
    out = tmp_path_factory.mktemp("bench-results")
    done = subprocess.run(
        [sys.executable, "-m", "harness.bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return done, out


@pytest.fixture(scope="module")
def result(quick: tuple[subprocess.CompletedProcess[str], Path]) -> dict[str, Any]:
    done, out = quick
    assert done.returncode == 0, f"the quick bench exited {done.returncode}:\n{done.stderr[-3000:]}"
    doc: dict[str, Any] = json.loads((out / "bench.json").read_text())
    return doc


def test_quick_bench_prints_a_table_with_every_section_and_the_targets(
    quick: tuple[subprocess.CompletedProcess[str], Path], result: dict[str, Any]
) -> None:
    done, out = quick
    for heading in (
        "ROUND TRIP",
        "ONE STREAM",
        "REQUESTS/S",
        "MEMORY",
        "HARNESS",
        "BROKEN SERVERS",
        "TARGETS",
        "LOAD GENERATOR",
    ):
        assert heading in done.stdout, f"no {heading} section in the table:\n{done.stdout}"
    for server in QUICK_SERVERS:
        assert server in done.stdout, f"{server} missing from the table:\n{done.stdout}"
    assert (out / "table.txt").read_text() == done.stdout
    assert "bench: " in done.stderr, "no progress lines on stderr"


def test_quick_bench_json_has_figures_with_references_and_ratios(result: dict[str, Any]) -> None:
    assert result["schema"] == "echolab-bench/1" and result["quick"] is True
    assert isinstance(result["duration_s"], (int, float))
    assert {"kernel", "cpus", "python", "loadavg_start"} <= result["machine"].keys()
    assert set(result["references"]) == set(SECTIONS)
    figures = result["figures"]
    assert {f["section"] for f in figures} == set(SECTIONS)
    for f in figures:
        assert {"metric", "subject", "value", "unit", "reference", "ratio", "samples", "status", "reason"} <= f.keys()
        assert f["status"] in ("ok", "skipped", "no data", "error"), f
        if f["status"] == "ok":
            # >= 0, not > 0: a server may stall (ncat -e cat can deadlock on a bulk stream).
            assert isinstance(f["value"], (int, float)) and f["value"] >= 0, f
            assert all(isinstance(s, (int, float)) for s in f["samples"]), f
            assert f["ratio"] is None or isinstance(f["ratio"], (int, float)), f
        else:
            assert f["value"] is None and isinstance(f["reason"], (str, type(None))), f
    by = {(f["section"], f["metric"], f["subject"]): f for f in figures}
    # The references themselves are measured, so the ratios mean something.
    for key in (
        ("rtt", "p50", "minimal-c"),
        ("rps", "rps@10", "c-concurrent"),
        ("harness", "ready", "local python server"),
    ):
        assert by[key]["status"] == "ok", by[key]
    assert by[("rtt", "p50", "minimal-c")]["ratio"] == pytest.approx(1.0)


def test_quick_bench_times_broken_servers_against_the_reference_with_their_verdicts(
    quick: tuple[subprocess.CompletedProcess[str], Path], result: dict[str, Any]
) -> None:
    rows = {f["subject"]: f for f in result["figures"] if f["section"] == "broken"}
    assert set(rows) == {f"{b} {s}" for b in ("local", "docker") for s in ("reference", *QUICK_DEFECTS)}, rows
    reference = rows["local reference"]
    assert reference["status"] == "ok" and reference["value"] > 0, reference
    assert reference["extra"]["verdict"].startswith("VERDICT: PASS") and reference["extra"]["exit_status"] == 0
    for defect in QUICK_DEFECTS:
        row = rows[f"local {defect}"]
        assert row["status"] == "ok", f"the suite against {defect} did not end as it must: {row['reason']}"
        assert row["value"] > 0 and row["ratio"] > 0 and row["reference"] == "local reference", row
        assert row["extra"]["exit_status"] == 1, row
        found = row["extra"]["broken"]
        assert isinstance(found, str) and found, f"{defect}: no broken behaviour recorded: {row}"
        assert row["extra"]["verdict"] == f"VERDICT: FAIL - broken: {found}", row
        line = next(line for line in quick[0].stdout.splitlines() if line.startswith(f"  local   {defect} "))
        assert f"FAIL - broken: {found}" in line and f"{row['ratio']:.2f}x" in line, line
    for subject, row in rows.items():
        if subject.startswith("docker "):
            assert row["status"] == "skipped" and "--quick" in row["reason"], row


def test_quick_bench_times_the_evidence_of_a_failing_mebibyte_echo(result: dict[str, Any]) -> None:
    by = {f["subject"]: f for f in result["figures"] if f["metric"] == "evidence render"}
    failing = by["failing 1 MiB echo"]
    assert failing["status"] == "ok" and failing["unit"] == "ms", failing
    assert 0 < failing["value"] < 60_000 and len(failing["samples"]) >= 3, failing
    extra = failing["extra"]
    assert extra["segments"] > 0 and extra["table_lines"] > 1 and extra["pcap_bytes"] > 1 << 20, extra
    assert "not the 1048576 it sent" in extra["problem"], f"the failing echo should be judged wrong: {extra}"
    assert by["passing 1 MiB echo"]["status"] == "skipped", "--quick leaves out the one-byte-writes capture"
    target = next(t for t in result["targets"] if "failing 1 MiB echo" in t["target"])
    assert target["status"] in ("met", "missed"), target


def test_quick_bench_json_evaluates_every_target(result: dict[str, Any]) -> None:
    targets = result["targets"]
    assert len(targets) >= 10
    for t in targets:
        assert t["status"] in ("met", "missed", "not measured"), t
        assert isinstance(t["target"], str) and isinstance(t["detail"], str)
        assert t["miss_pct"] is None or (t["status"] == "missed" and t["miss_pct"] >= 0), t


def test_quick_bench_json_shows_the_generator_is_measured(result: dict[str, Any]) -> None:
    generator = result["generator"]
    assert isinstance(generator["how"], str) and isinstance(generator["verdict"], list)
    g = generator["conns_10"]
    for key in ("fastest_rps", "slowest_rps", "generator_cpu_pct_at_fastest", "generator_capacity_rps"):
        assert isinstance(g[key], (int, float)), (key, g)


def test_quick_bench_draws_a_png(quick: tuple[subprocess.CompletedProcess[str], Path], result: dict[str, Any]) -> None:
    png = (quick[1] / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "bench.png is not a PNG"


def test_quick_bench_leaves_nothing_running(result: dict[str, Any]) -> None:
    cleanup = result["cleanup"]
    assert not Path(cleanup["tempdir"]).exists(), f"the bench left {cleanup['tempdir']} behind"
    alive = [pid for pid in cleanup["server_pids"] if Path(f"/proc/{pid}").exists()]
    assert not alive, f"servers still running after the bench: {alive}"


def test_bench_tools_are_installed(result: dict[str, Any]) -> None:
    """socat, ncat, iperf3 and uvloop: skipped rows locally, a failure in CI."""
    missing = result["missing_tools"]
    if missing and not in_ci():
        pytest.skip("the bench skipped rows: " + "; ".join(missing.values()))
    assert not missing, f"CI=true but the bench lacks {', '.join(missing)}: " + "; ".join(missing.values())
