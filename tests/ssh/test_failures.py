"""What goes wrong with a real Pi, provoked on the stand-in: each is one clear line naming the cause,
before any test runs, and exit status 4 (the same on a workstation and in CI: the user named the
backend, so a run that cannot reach it must not look like a success)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.wait import until

from .standin import ALIAS, Standin, run_suite

BACKEND = "ERROR: --backend ssh cannot be used: "


def suite(config: Path, *args: str, ci: str = "true") -> tuple[int, str]:
    done = run_suite(
        "-q",
        "-k",
        "hello_sri_lanka",
        "--backend",
        "ssh",
        "--ssh-host",
        ALIAS,
        "--ssh-config",
        str(config),
        *args,
        CI=ci,
    )
    return done.returncode, done.stdout + done.stderr


def reason(report: str) -> str:
    """The one line the run gave as the backend's reason, and nothing else: no test ran."""
    lines = [line for line in report.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(BACKEND), f"expected one line, got:\n{report[-3000:]}"
    return lines[0]


def test_wrong_key_fails_in_ci_as_authentication_refused(clean_standin: Standin) -> None:
    config = clean_standin.ssh_config("wrong-key", IdentityFile=str(clean_standin.new_key("not-installed")))
    status, report = suite(config)
    assert status == 4, report
    line = reason(report)
    assert "authentication refused by pi@echolab-pi" in line and "Permission denied (publickey)" in line, line


def test_wrong_key_on_a_workstation_also_stops_the_run_in_one_line(clean_standin: Standin) -> None:
    config = clean_standin.ssh_config("wrong-key-2", IdentityFile=str(clean_standin.new_key("not-installed-2")))
    status, report = suite(config, ci="")
    assert status == 4, report
    assert "authentication refused by pi@echolab-pi" in reason(report)


def test_changed_host_key_is_refused_and_says_how_to_forget_the_old_one(clean_standin: Standin) -> None:
    impostor = clean_standin.new_key("impostor-host-key")
    known_hosts = clean_standin.dir / "known_hosts-changed"
    recorded = f"{clean_standin.address} {' '.join(impostor.with_suffix('.pub').read_text().split()[:2])}\n"
    known_hosts.write_text(recorded)
    status, report = suite(clean_standin.ssh_config("changed", UserKnownHostsFile=str(known_hosts)))
    assert status == 4, report
    line = reason(report)
    assert f"host key for {clean_standin.address} has CHANGED" in line, line
    assert f'ssh-keygen -f "{known_hosts}" -R "{clean_standin.address}"' in line, line
    assert known_hosts.read_text() == recorded, "the recorded key must be left alone"


def test_unknown_host_key_is_accepted_and_recorded_on_first_contact(clean_standin: Standin) -> None:
    known_hosts = clean_standin.dir / "known_hosts-fresh"
    status, report = suite(clean_standin.ssh_config("fresh", UserKnownHostsFile=str(known_hosts)))
    assert status == 0 and "1 passed" in report, report
    host_key = clean_standin.exec(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).split()[1]
    entries = known_hosts.read_text().splitlines()
    assert any(line.split()[0] == clean_standin.address and host_key in line for line in entries), entries


def test_unreachable_host_is_named_as_unreachable(clean_standin: Standin) -> None:
    address = clean_standin.unused_address()  # inside the stand-in's subnet: nothing leaves this machine
    status, report = suite(clean_standin.ssh_config("unreachable", HostName=address))
    assert status == 4, report
    line = reason(report)
    assert f"host unreachable: pi@echolab-pi ({address} port 22)" in line, line
    assert "No route to host" in line or "timed out" in line, line


def test_unresolvable_name_is_named_as_a_resolution_failure(clean_standin: Standin) -> None:
    # An IPv4 literal with AddressFamily inet6 fails in getaddrinfo itself, as an unknown name does,
    # without a DNS query leaving this machine.
    status, report = suite(clean_standin.ssh_config("unresolvable", AddressFamily="inet6"))
    assert status == 4, report
    line = reason(report)
    assert f"cannot resolve {clean_standin.address}" in line and "Could not resolve hostname" in line, line


@pytest.fixture
def busy_port(clean_standin: Standin) -> Iterator[int]:
    """A port something else already listens on, on the stand-in (the kernel picks it)."""
    listener = (
        "import socket, time; s = socket.socket(); s.bind(('', 0)); s.listen(); "
        "print(s.getsockname()[1], flush=True); time.sleep(600)"
    )
    clean_standin.exec(["sh", "-c", f"python3 -c {shlex.quote(listener)} >/tmp/busy-port 2>&1 </dev/null &"], user="pi")
    port = until(
        lambda: clean_standin.exec(["cat", "/tmp/busy-port"]).strip(), timeout=10, what="the busy port", interval=0.05
    )
    yield int(port)
    clean_standin.exec(["sh", "-c", "pkill -u pi -f 's[.]listen'; rm -f /tmp/busy-port"])


def test_server_on_a_port_already_in_use_names_the_port(busy_port: int, clean_standin: Standin) -> None:
    # A server that insists on its own port: bind() fails with EADDRINUSE and it exits.
    server = f"python3 -c 'import socket, sys; socket.socket().bind((\"\", int(sys.argv[1])))' {busy_port} {{port}}"
    status, report = suite(clean_standin.config, "--server-cmd", server)
    assert status == 1, report
    assert "the server exited before it listened" in report, report
    assert f"port {busy_port} is already in use on pi@echolab-pi" in report, report
    assert "Address already in use" in report, report


@pytest.fixture
def without(clean_standin: Standin, request: pytest.FixtureRequest) -> Iterator[str]:
    """The stand-in with one program (python3, cc) moved off the PATH for the test."""
    program = request.param
    path = clean_standin.exec(["sh", "-c", f"command -v {program}"])
    clean_standin.exec(["mv", path, f"{path}.away"])
    try:
        yield program
    finally:
        clean_standin.exec(["mv", f"{path}.away", path])


@pytest.mark.parametrize("without", ["python3"], indirect=True)
def test_no_python3_on_the_pi_is_named(without: str, clean_standin: Standin) -> None:
    status, report = suite(clean_standin.config)
    assert status == 4, report
    assert re.search(r"no python3 on pi@echolab-pi: .*apt-get install python3", reason(report)), report


@pytest.mark.parametrize("without", ["cc"], indirect=True)
def test_no_cc_on_the_pi_is_named_for_impl_c_only(without: str, clean_standin: Standin) -> None:
    status, report = suite(clean_standin.config, "--impl", "c")
    assert status == 4, report
    assert "no C compiler (cc) on pi@echolab-pi for --impl c" in reason(report), report
    status, report = suite(clean_standin.config, "--impl", "python")
    assert status == 0 and "1 passed" in report, report


@pytest.fixture
def no_sudo(clean_standin: Standin) -> Iterator[None]:
    """pi may not sudo without a password for the test (as on a Pi set up that way)."""
    clean_standin.exec(["mv", "/etc/sudoers.d/010_pi-nopasswd", "/root/010_pi-nopasswd"])
    try:
        yield
    finally:
        clean_standin.exec(["mv", "/root/010_pi-nopasswd", "/etc/sudoers.d/010_pi-nopasswd"])


def test_capture_without_sudo_says_why(no_sudo: None, clean_standin: Standin) -> None:
    done = run_suite("-q", "-k", "packet_capture_works_here", "--backend", "ssh", "--ssh-host", ALIAS,
                     "--ssh-config", str(clean_standin.config), CI="true")  # fmt: skip
    report = done.stdout + done.stderr
    assert done.returncode == 1 and "VERDICT: INCOMPLETE - not judged: wire" in report, report
    assert "no packet capture of port" in report and "tcpdump did not start capturing" in report, report
    assert "sudo: a password is required" in report, report
