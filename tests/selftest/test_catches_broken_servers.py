"""The harness must catch a broken server and never fail a correct one: both are tested here by
running the behaviour suite (a pytest inside this pytest) against servers with one defect each."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BROKEN = HERE / "broken_server.py"

pytestmark = pytest.mark.slow_harness


def run_suite(server_cmd: str, *args: str) -> tuple[int, str]:
    argv = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "behaviour"), "-q", "--server-cmd", server_cmd]
    done = subprocess.run([*argv, *args], cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    return done.returncode, done.stdout + done.stderr


def broken(defect: str) -> str:
    return shlex.join([sys.executable, str(BROKEN), defect]) + " --port {port} --backlog {backlog}"


@pytest.mark.parametrize(
    ("defect", "select", "behaviour", "evidence"),
    [
        ("truncate", "mebibyte", "echo fidelity", "the echo stops at byte 1000"),
        ("drop-nul", "every_byte_value", "echo fidelity", "first differing byte at offset 0"),
        ("extra-newline", "hello_sri_lanka", "echo fidelity", "1 unexpected extra bytes from byte 13"),
        ("reset-on-close", "fin_not_reset", "half-close", "the server reset the connection (RST)"),
        ("dies-on-reset", "reset-with-echo-unread", "robustness", "the server stopped serving"),
        ("ignores-backlog", "exactly_backlog and backlog3", "listen backlog", "backlog 64 (Send-Q)"),
        ("one-client", "one_after_another", "robustness", "client 2 of 10 in a row: could not connect"),
    ],
)
def test_suite_names_the_broken_behaviour(defect, select, behaviour, evidence):
    status, report = run_suite(broken(defect), "-k", select)
    assert status == 1, f"the suite should fail against '{defect}' (exit 1), got exit {status}:\n{report}"
    assert f"BROKEN  {behaviour}" in report, report
    assert evidence in report, f"expected the evidence {evidence!r} in the report:\n{report}"


def test_server_that_never_listens_fails_with_its_command_and_output():
    status, report = run_suite(broken("never-listens"), "-k", "hello_sri_lanka", "--ready-timeout", "1")
    assert status == 1, report
    assert "the server never listened on port" in report, report
    assert "BROKEN  server start" in report, report
    assert "never-listens --port" in report, "the report should name the command it ran"
    assert "still running" in report and "thinking about it..." in report, report


def test_server_that_exits_at_once_fails_with_its_exit_status():
    status, report = run_suite(broken("exits-at-once"), "-k", "hello_sri_lanka")
    assert status == 1, report
    assert "the server exited before it listened" in report, report
    assert "exited with status 3" in report and "giving up before listening" in report, report


def test_c_server_that_dies_of_sigpipe_is_caught(tmp_path):
    cc = shutil.which("cc")
    assert cc, "a C compiler is needed for this test (apt-get install gcc)"
    binary = tmp_path / "broken_sigpipe"
    subprocess.run([cc, "-O2", "-o", str(binary), str(HERE / "broken_sigpipe.c")], check=True)
    status, report = run_suite(f"{binary} {{port}} {{backlog}}", "-k", "reset-with-echo-unread")
    assert status == 1, report
    assert "BROKEN  robustness" in report and "killed by SIGPIPE" in report, report
    assert "the server stopped serving" in report or "was not served" in report, report


def test_slow_starting_server_passes():
    status, report = run_suite(broken("slow-start"), "-k", "hello_sri_lanka or exactly_backlog")
    assert status == 0, f"a server that needs 2 s to listen is correct and must pass:\n{report}"
    assert "VERDICT: PASS" in report


def test_silent_loopback_only_server_passes_the_whole_suite():
    # Prints nothing at all: with --server-cmd only what crosses the socket is judged.
    status, report = run_suite(broken("silent"))
    assert status == 0, f"a correct server that prints nothing must pass:\n{report}"
    assert "VERDICT: PASS" in report and " skipped" in report  # concurrent-only checks do not apply


def test_server_that_resets_instead_of_fin_fails_on_the_wire_with_the_packet_table():
    status, report = run_suite(broken("reset-on-close"), "-k", "lab_exchange or fin_not_reset")
    if "packet capture" in report and "skipped" in report and "BROKEN  wire" not in report:
        pytest.skip("no packet capture on this machine (root or CAP_NET_RAW and tcpdump needed)")
    assert status == 1, report
    assert "BROKEN  wire" in report, report
    assert "lab packet 27 FIN, ACK expected, got frame" in report, report
    assert "[RST, ACK]" in report and "No.  Time" in report, "the report should show the packet table"
    assert "kept at" in report and ".pcap (open it in Wireshark)" in report, report
