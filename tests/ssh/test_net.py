"""--net on the ssh backend, against the stand-in Pi: the suites pass under loss with
retransmissions counted, only the lab's traffic is touched (never the SSH link), what cannot be
applied is one line, and nothing outlives the run, not even a killed one."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.backends.ssh.connection import resolve
from harness.net.conditions import Conditions
from harness.net.ssh import Shaping, shaped
from harness.wait import until

from .standin import ALIAS, CLIENT_ALIAS, ROOT, Standin, assert_no_control_directories, child_env, run_suite

# What the stand-in's firewall and queues look like; a run must leave them exactly so.
RULES = ["sh", "-c", "iptables -S; iptables -t mangle -S; tc qdisc show"]
TALLY = re.compile(r"^under loss=5%,mtu=576: (\d+) retransmissions seen in \d+ tests, every echo exact", re.M)
CLIENTS = ROOT / "tests" / "selftest" / "clients"


def on_standin(standin: Standin, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["--backend", "ssh", "--ssh-host", ALIAS, "--ssh-config", str(standin.config), *args]
    return run_suite(*argv, "-p", "no:cacheprovider", timeout=900.0)


def errors(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("ERROR:")]


@pytest.mark.timeout(900)
def test_both_suites_pass_under_loss_and_mtu_and_the_pi_is_left_as_it_was(clean_standin: Standin) -> None:
    before = clean_standin.exec(RULES)
    done = on_standin(clean_standin, "tests/client", "-n", "2", "--net", "loss=5%,mtu=576")
    report = done.stdout + done.stderr
    assert done.returncode == 0 and "VERDICT: PASS" in report, report[-5000:]
    seen = TALLY.search(report)
    assert seen and int(seen[1]) > 0, f"no retransmissions counted under loss=5%:\n{report[-3000:]}"
    assert "applied on pi@echolab-pi to TCP with" in report and "as an MSS clamp to 536" in report, report[:2000]
    assert clean_standin.exec(RULES) == before


def shaping(standin: Standin, net: str) -> contextlib.AbstractContextManager[Shaping]:
    """``net`` on the stand-in for the ``with``, applied from this process as a run's controller does."""
    return shaped(Conditions.parse(net), resolve(ALIAS, config=str(standin.config)), None, lambda line: None)


@pytest.fixture
def lossy(clean_standin: Standin) -> Iterator[Shaping]:
    with shaping(clean_standin, "loss=30%,rate=10mbit,mtu=576") as it:
        yield it


def counters(standin: Standin) -> dict[str, int]:
    """Packets each of the stand-in's iptables rules matched so far, by its rule text."""
    found = {}
    for table in ("filter", "mangle"):
        for line in standin.exec(["iptables-save", "-c", "-t", table]).splitlines():
            match = re.match(r"\[(\d+):\d+\] (-A .*)$", line)
            if match:
                found[match[2]] = int(match[1])
    return found


def test_only_the_labs_tcp_is_matched_and_ssh_works_under_heavy_loss(lossy: Shaping, clean_standin: Standin) -> None:
    rules = counters(clean_standin)
    assert len(rules) == 5, rules  # MSS both ways, drop on the way in, mark and drop-mark on the way out
    for rule in rules:
        assert f"{lossy.server.seen_from}/32" in rule and "-p tcp" in rule, rule
        assert "! --dport 22" in rule or "! --sport 22" in rule, f"this rule would touch the SSH link: {rule}"
    qdisc = clean_standin.exec(["tc", "qdisc", "show", "dev", "eth0", "root"])
    assert qdisc.startswith("qdisc htb 1: root") and "default 0" in qdisc, qdisc
    # Fresh SSH connections (handshake, key exchange, 1 MiB each way) while 30% of the lab's
    # segments are lost: none of it is matched, so none of it waits out a retransmission.
    ssh = ["ssh", "-F", str(clean_standin.config), "-o", "BatchMode=yes", ALIAS, "head -c 1048576 /dev/zero; wc -c"]
    started = time.monotonic()
    for _ in range(5):
        done = subprocess.run(ssh, input=b"x" * (1 << 20), capture_output=True, timeout=30, check=False)
        assert done.returncode == 0 and len(done.stdout) == (1 << 20) + len(b"1048576\n"), done.stderr
    assert time.monotonic() - started < 20, "SSH sessions were slow under the lab's loss"
    assert set(counters(clean_standin).values()) == {0}, (
        f"SSH traffic matched echolab's rules: {counters(clean_standin)}"
    )


def test_with_a_client_host_only_its_traffic_is_matched(standin_with_client: Standin, clean_standin: Standin) -> None:
    # --ssh-client-host: the address the client host uses towards the server (ip route get there).
    config = str(standin_with_client.config)
    client = resolve(CLIENT_ALIAS, config=config)
    with shaped(Conditions.parse("loss=5%,mtu=576"), resolve(ALIAS, config=config), client, lambda line: None):
        rules = counters(clean_standin)
    assert len(rules) == 4, rules
    assert all(f"{standin_with_client.addresses[CLIENT_ALIAS]}/32" in rule for rule in rules), rules


def netstat(standin: Standin) -> dict[str, int]:
    out = standin.exec(["nstat", "-az", "TcpRetransSegs", "TcpExtTCPRetransFail"])
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if line and not line.startswith("#")}


# One connection echoed, then it exits (or after 60 s); it writes the port it got to argv[1].
ECHO_ONCE = """import socket, sys
s = socket.create_server(("", 0))
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
c = s.accept()[0]
while True:
    b = c.recv(65536)
    if not b:
        break
    c.sendall(b)
"""


def test_a_segment_the_pi_loses_on_its_way_out_is_a_loss_in_flight_it_retransmits(clean_standin: Standin) -> None:
    # The Pi's kernel is told its segment left (htb's classifier drops it): it retransmits on the
    # peer's duplicate ACKs or its timer, and never counts a failed send (a netfilter drop would be).
    port_file = f"/tmp/port-{secrets.token_hex(4)}"
    server = shlex.join(["timeout", "60", "python3", "-c", ECHO_ONCE, port_file])
    clean_standin.exec(["sh", "-c", f"{server} >/dev/null 2>&1 &"])
    port = int(until(lambda: clean_standin.exec(["sh", "-c", f"cat {port_file} 2>/dev/null || true"]), timeout=10,
                     what="the echo server on the stand-in", interval=(0.05, 0.5)))  # fmt: skip
    with shaping(clean_standin, "loss=20%"):
        before = netstat(clean_standin)
        data = bytes(range(256)) * 1024  # 256 KiB, echoed
        assert echo(clean_standin.address, port, data) == data
        after = netstat(clean_standin)
        stats = clean_standin.exec(["tc", "-s", "qdisc", "show", "dev", "eth0", "root"])
    dropped = re.search(r"dropped (\d+)", stats)
    assert dropped and int(dropped[1]) > 0, f"htb dropped none of the Pi's segments under loss=20%: {stats}"
    assert after["TcpRetransSegs"] > before["TcpRetransSegs"], (before, after)
    assert after["TcpExtTCPRetransFail"] == before["TcpExtTCPRetransFail"], f"a send failed on the Pi: {before, after}"


def echo(address: str, port: int, data: bytes) -> bytes:
    got = bytearray()
    with socket.create_connection((address, port), timeout=30) as sock:
        reader = threading.Thread(target=lambda: got.extend(b"".join(iter(lambda: sock.recv(65536), b""))))
        reader.start()
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reader.join(60)
    return bytes(got)


def test_a_login_without_passwordless_sudo_is_refused_in_one_line(clean_standin: Standin) -> None:
    before = clean_standin.exec(RULES)
    done = on_standin(clean_standin, "-k", "hello_sri_lanka", "--ssh-user", "student", "--net", "loss=5%")
    (line,) = errors(done) or [f"no ERROR line: {done.stdout[-2000:]}"]
    assert done.returncode == 4, done.stdout[-2000:]
    assert "student@echolab-pi" in line and "has no passwordless sudo" in line and "sudo -n true" in line, line
    assert "Traceback" not in done.stdout + done.stderr
    assert clean_standin.exec(RULES) == before


@pytest.mark.skipif(Path("/sys/module/sch_netem").exists(), reason="this kernel has netem: delay is applied")
def test_delay_on_a_pi_without_netem_is_refused_in_one_line_and_nothing_stays(clean_standin: Standin) -> None:
    before = clean_standin.exec(RULES)
    done = on_standin(clean_standin, "-k", "hello_sri_lanka", "--net", "loss=1%,delay=50ms")
    (line,) = errors(done) or [f"no ERROR line: {done.stdout[-2000:]}"]
    assert done.returncode == 4, done.stdout[-2000:]
    assert "delay=50ms needs the netem qdisc, which pi@echolab-pi's kernel" in line and "modprobe sch_netem" in line
    assert "passed" not in done.stdout, done.stdout[-2000:]
    assert clean_standin.exec(RULES) == before  # the loss and the htb tried before netem are taken off


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_a_run_killed_while_shaping_leaves_no_rule_or_qdisc(
    clean_standin: Standin, run_tmpdir: Path, signum: int
) -> None:
    before = clean_standin.exec(RULES)
    # A server that never listens keeps the run in readiness polling with the conditions applied.
    argv = [sys.executable, "-m", "pytest", "tests/behaviour", "-q", "-p", "no:cacheprovider", "--backend", "ssh",
            "--ssh-host", ALIAS, "--ssh-config", str(clean_standin.config), "--net", "loss=5%,rate=10mbit,mtu=1000",
            "--server-cmd", "sleep 3600 {port}", "--ready-timeout", "60", "-k", "hello_sri_lanka"]  # fmt: skip
    child = subprocess.Popen(argv, cwd=ROOT, env=child_env(TMPDIR=str(run_tmpdir)), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    try:
        until(lambda: running(clean_standin), timeout=60, what="the run shaping the link", interval=(0.05, 0.5))
        os.killpg(child.pid, signum)
        child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
    until(
        lambda: clean_standin.exec(RULES) == before,
        timeout=30,
        what="the stand-in's rules as they were",
        interval=(0.05, 0.5),
    )
    until(lambda: clean_standin.leftovers() == [], timeout=30, what="the stand-in cleaning up", interval=(0.05, 0.5))
    assert_no_control_directories(run_tmpdir)  # its two connections' (the shaping's and the backend's)


def running(standin: Standin) -> bool:
    """Whether a run has shaped the stand-in's link and started its agent there."""
    return "htb" in standin.exec(RULES) and "agent.py" in " ".join(standin.leftovers())


@pytest.fixture(scope="module")
def single_recv(tmp_path_factory: pytest.TempPathFactory) -> str:
    """tests/selftest/clients/single_recv.c: a client that prints what one recv() returned."""
    binary = tmp_path_factory.mktemp("clients") / "single_recv"
    subprocess.run(["cc", "-O2", "-o", str(binary), str(CLIENTS / "single_recv.c")], check=True)
    return f"{binary} {{host}} {{port}}"


@pytest.mark.timeout(600)
def test_a_single_recv_client_passes_a_clean_link_and_is_broken_under_small_mtu_and_rate(
    clean_standin: Standin, single_recv: str
) -> None:
    # Not the forced split (the scripted server writing each echo in two parts): only the link splits.
    args = ("--client-cmd", single_recv, "-k", "not in_two_parts")
    clean = run_client_suite(clean_standin, *args)
    assert clean.returncode == 0 and "VERDICT: PASS" in clean.stdout, clean.stdout[-3000:]
    slow = run_client_suite(clean_standin, *args, "--net", "mtu=576,rate=1mbit")
    broken = re.findall(r"^  BROKEN +(.+?)  +\d", slow.stdout, re.M)
    assert slow.returncode == 1 and broken == ["client: prints replies"], slow.stdout[-3000:]
    assert "under mtu=576,rate=1mbit:" in slow.stdout, slow.stdout[-3000:]


def run_client_suite(standin: Standin, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest", "tests/client", "--backend", "ssh", "--ssh-host", ALIAS,
            "--ssh-config", str(standin.config), "-p", "no:cacheprovider", *args]  # fmt: skip
    return subprocess.run(argv, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=600, check=False)
