"""The ssh backend's link: --net conditions put on the Pi, for the lab's traffic only.

Everything is applied on the server's host through ``sudo -n`` and matches only TCP between it
and the client host's address on the device that reaches it, never the Pi's SSH port: the Pi's own
link to the workstation (this run's connection too) is never shaped or dropped. Loss on the way in
is an iptables INPUT drop; on the way out the lab's packets are marked in mangle POSTROUTING (after
routing, so no route changes) and a share of them marked again to be dropped by a classifier of an
htb root qdisc, which tells the sending TCP that the packet left: a loss in flight, which it
retransmits (a netfilter drop on the way out is an error to the sender, which stalls instead). The
rate is an htb class for the lab's mark; everything else passes the htb unshaped. The interface's
MTU is not changed (the SSH link shares it): the lab's MSS is clamped both ways instead (TCPMSS on
SYNs), so its segments are those a link of that MTU carries. Delay and reordering are netem under
the lab's class, where the Pi's kernel has it.

The marks are matched by classic BPF (cls_bpf, ``ld mark``): no fw classifier or gact action is
needed, which some kernels lack (this project's CI kernel has neither).

harness/remote/shape.py applies the commands as root in an SSH session of its own, once per run
from the controlling process, and takes them off when that session's stdin closes: at the run's
end, and also if the harness is killed (its connection closes).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import select
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

from harness.backends.ssh.connection import Destination, close_quietly, last_line
from harness.backends.ssh.host import SshHost
from harness.errors import BackendUnavailableError, ConfigError, HarnessError
from harness.net.conditions import NETEM, Conditions

#: A step: the condition it serves (``loss=5%``), the command, and the command that takes it off
#: (None where an earlier step's undo takes it off too: deleting the root qdisc removes its classes).
Step = tuple[str, list[str], list[str] | None]

MARK_MASK = 0xFF000000  # the mark bits used, so other users' marks (lower bits) are left alone
LAB_MARK = 0xEC000000  # the lab's packets on the way out
DROP_MARK = 0xED000000  # the share of them to drop
LAB_CLASS = "1:10"
UNLIMITED = "10gbit"  # the lab's htb class: its own rate never holds anything back
SKF_AD_MARK = 0xFFFFF000 + 20  # classic BPF's ancillary load of skb->mark (SKF_AD_OFF + SKF_AD_MARK)
TC_ACT_SHOT, TC_ACT_UNSPEC = 2, 0xFFFFFFFF  # cls_bpf direct-action verdicts (-1: the next filter)
APPLY_TIMEOUT = 90.0


def mark_program(mark: int, hit: int, miss: int) -> str:
    """tc's classic BPF bytecode: ``hit`` for a packet whose mark (masked) is ``mark``, else ``miss``."""
    return f"5,32 0 0 {SKF_AD_MARK},84 0 0 {MARK_MASK},21 0 1 {mark},6 0 0 {hit},6 0 0 {miss}"


def steps(conditions: Conditions, dev: str, client: str, ssh_port: int) -> list[Step]:
    """The commands that put ``conditions`` on the lab's traffic: TCP between this host and
    ``client`` on ``dev``, not to or from ``ssh_port``. Rules go to the top of their chains (a
    firewall's ACCEPT further down must not let the lab's packets past them), in this order."""
    inbound = ["-i", dev, "-s", client, "-p", "tcp", "!", "--dport", str(ssh_port)]
    outbound = ["-o", dev, "-d", client, "-p", "tcp", "!", "--sport", str(ssh_port)]
    no_reset = ["!", "--tcp-flags", "RST", "RST"]  # TCP never sends a RST again: conditions.loss_rules
    chance = ["-m", "statistic", "--mode", "random", "--probability", conditions.probability]
    found: list[Step] = []
    position: dict[tuple[str, str], int] = {}

    def rule(part: str, table: str, chain: str, spec: list[str]) -> None:
        at = position[table, chain] = position.get((table, chain), 0) + 1
        iptables = ["iptables", "-w", "-t", table]
        found.append((part, [*iptables, "-I", chain, str(at), *spec], [*iptables, "-D", chain, *spec]))

    def tc(part: str, kind: str, *spec: str) -> None:  # undone with the root qdisc
        found.append((part, ["tc", kind, "add", "dev", dev, *spec], None))

    if conditions.mtu is not None:
        mss = ["--tcp-flags", "SYN,RST", "SYN", "-j", "TCPMSS", "--set-mss", str(conditions.mtu - 40)]
        rule(conditions.part("mtu"), "mangle", "PREROUTING", [*inbound, *mss])  # the client's SYN
        rule(conditions.part("mtu"), "mangle", "POSTROUTING", [*outbound, *mss])  # this host's SYN/ACK
    if conditions.loss is not None:
        rule(conditions.part("loss"), "filter", "INPUT", [*inbound, *no_reset, *chance, "-j", "DROP"])
    egress = [part for part in conditions.text.split(",") if part.split("=")[0] in ("loss", "rate", *NETEM)]
    if not egress:
        return found
    # No default class: what no filter claims (everything but the lab's traffic) goes straight through.
    root = ["tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb"]
    found.append((",".join(egress), root, ["tc", "qdisc", "del", "dev", dev, "root"]))
    classed = conditions.rate_kbit is not None or conditions.delay_ms is not None
    if classed:  # marked first: the share of it to drop is marked again after
        rule(",".join(egress), "mangle", "POSTROUTING", [*outbound, *_set_mark(LAB_MARK)])
    if conditions.loss is not None:
        loss = conditions.part("loss")
        rule(loss, "mangle", "POSTROUTING", [*outbound, *no_reset, *chance, *_set_mark(DROP_MARK)])
        drop = mark_program(DROP_MARK, TC_ACT_SHOT, TC_ACT_UNSPEC)
        tc(loss, "filter", "parent", "1:", "prio", "1", "bpf", "bytecode", drop, "da")
    if not classed:
        return found
    # The class only sorts the lab's packets out; tbf and netem below it shape them as on docker.
    tc(",".join(egress), "class", "parent", "1:", "classid", LAB_CLASS, "htb", "rate", UNLIMITED, "ceil", UNLIMITED)
    for command in conditions.egress_commands(dev, parent=LAB_CLASS, handles=(10, 20)):
        part = ",".join(conditions.needs_netem) if "netem" in command else conditions.part("rate")
        found.append((part, command, None))
    lab = mark_program(LAB_MARK, TC_ACT_UNSPEC, 0)  # classic: -1 is the filter's own class, 0 no match
    tc(",".join(egress), "filter", "parent", "1:", "prio", "2", "bpf", "bytecode", lab, "classid", LAB_CLASS)
    return found


def _set_mark(mark: int) -> list[str]:
    return ["-j", "MARK", "--set-xmark", f"{mark:#x}/{MARK_MASK:#x}"]


def client_address(server: SshHost, client: Destination | None) -> str:
    """The client host's address as the Pi sees it: where this machine's SSH connection comes from
    (SSH_CONNECTION), or the source address the client host uses towards the server."""
    if client is None:
        if server.seen_from is None:
            raise ConfigError(f"cannot tell this machine's address as {server.label} sees it (no SSH_CONNECTION)")
        return server.seen_from
    host = SshHost.connect(client, needs_cc=False, deploy=False)
    try:
        done = host.run(["ip", "-o", "route", "get", server.address], timeout=30.0)
    finally:
        host.close()
    found = re.search(r"\bsrc (\S+)", done.text)
    if done.returncode != 0 or found is None:
        said = last_line(done.text + done.stderr.decode(errors="replace"))
        raise ConfigError(f"cannot tell {client.label}'s address towards {server.address}: ip route get: {said}")
    return found[1]


def route_device(server: SshHost, client: str) -> str:
    """The device the server's host reaches ``client`` on."""
    done = server.run(["ip", "-o", "route", "get", client], timeout=30.0)
    found = re.search(r"\bdev (\S+)", done.text)
    if done.returncode != 0 or found is None:
        said = last_line(done.text + done.stderr.decode(errors="replace"))
        raise ConfigError(f"{server.label} has no route to {client}: ip route get: {said}")
    if found[1] == "lo":
        raise ConfigError(f"{client} is {server.label}'s own address: there is no link between two hosts to shape")
    return found[1]


class Shaping:
    """``conditions`` in force on the server's host, for as long as shape.py's session lasts."""

    def __init__(self, server: SshHost, conditions: Conditions, session: subprocess.Popen[bytes]) -> None:
        self.server, self.conditions, self._session = server, conditions, session

    @classmethod
    def start(cls, server: SshHost, conditions: Conditions, client: str) -> Shaping:
        """Apply ``conditions`` to the lab's traffic with ``client``; ConfigError, one line, naming the
        condition and why where it cannot be (nothing is left applied then)."""
        where = f"--net {conditions} cannot be applied on {server.label}"
        if ipaddress.ip_address(client).version != 4:
            raise ConfigError(f"{where}: the lab's traffic comes from {client}, and --net on ssh shapes IPv4 only")
        sudo = [] if server.dest.user == "root" else ["sudo", "-n"]
        if sudo:
            done = server.run([*sudo, "true"], timeout=30.0)
            if done.returncode != 0:
                said, user = last_line(done.stderr.decode(errors="replace")), server.dest.user
                raise ConfigError(
                    f"{where}: its login {user} has no passwordless sudo (sudo -n true: {said}), and tc and "
                    f"iptables run as root; allow it there ({user} ALL=(ALL) NOPASSWD: ALL in /etc/sudoers.d/) "
                    "or use --backend docker"
                )
        dev = route_device(server, client)
        spec = {"dev": dev, "steps": steps(conditions, dev, client, server.dest.effective_port)}
        if not server.workdir:
            server.deploy()
        session = server.connection.popen([*sudo, "python3", f"{server.workdir}/remote/shape.py", json.dumps(spec)])
        shaping = cls(server, conditions, session)
        try:
            answer = shaping._answer(APPLY_TIMEOUT)
            if not answer.get("ok"):
                raise ConfigError(f"{where}: {_why(conditions, answer, server.label)}")
        except BaseException:
            shaping.stop()
            raise
        return shaping

    def _answer(self, timeout: float) -> dict[str, Any]:
        """shape.py's next line, as JSON."""
        stdout = self._session.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else b""
        try:
            answer: dict[str, Any] = json.loads(line)
        except ValueError:
            said = line.decode(errors="replace").strip() or "no answer"
            if not ready:
                said = f"no answer within {timeout:g} s"
            elif self._session.poll() is not None and self._session.stderr is not None:
                said = last_line(self._session.stderr.read().decode(errors="replace")) if not line else said
            raise HarnessError(f"shape.py on {self.server.label}: {said}") from None
        return answer

    def stop(self) -> list[str]:
        """Take everything off (shape.py undoes at end of its stdin); what could not be undone."""
        close_quietly(self._session.stdin)
        try:
            answer = self._answer(APPLY_TIMEOUT) if self._session.poll() is None else {}
        except HarnessError as exc:
            answer = {"failed_undo": [str(exc)]}
        try:
            self._session.wait(10.0)
        except subprocess.TimeoutExpired:
            self._session.kill()
            self._session.wait()
        close_quietly(self._session.stdout)
        close_quietly(self._session.stderr)
        return list(answer.get("failed_undo", []))


def _why(conditions: Conditions, answer: dict[str, Any], label: str) -> str:
    kernel = answer.get("kernel", "?")
    if "missing" in answer:
        return f"{answer['missing']} is not installed there (sudo apt-get install iproute2 iptables)"
    if "qdisc" in answer:
        return (
            f"its {answer['dev']} already has a {answer['qdisc']} root qdisc, which echolab could not give back "
            "after the run (another run's conditions? remove it with sudo tc qdisc del dev "
            f"{answer['dev']} root if it is a leftover)"
        )
    part, command, said = answer.get("failed", ""), answer.get("command", []), answer.get("said", "")
    if "netem" in command:
        return (
            f"{part} needs the netem qdisc, which {label}'s kernel ({kernel}) does not have (tc: {said}); "
            "load it (sudo modprobe sch_netem) or leave out delay and reorder"
        )
    return f"{part} failed on its kernel ({kernel}): {' '.join(command)}: {said}"


@contextlib.contextmanager
def shaped(
    conditions: Conditions, server: Destination, client: Destination | None, say: Callable[[str], None]
) -> Iterator[Shaping]:
    """``conditions`` on the lab's traffic between ``server`` and the client host (this machine
    when ``client`` is None) for the ``with``, applied from a connection of its own."""
    with contextlib.ExitStack() as stack:
        try:
            host = SshHost.connect(server, needs_cc=False, deploy=False)
            stack.callback(host.close)
            address = client_address(host, client)
            shaping = Shaping.start(host, conditions, address)
        except BackendUnavailableError as exc:
            raise ConfigError(f"--net {conditions} cannot be applied on {server.label}: {exc}") from None
        stack.callback(_stopped, shaping, say)
        clamp = f"; mtu={conditions.mtu} as an MSS clamp to {conditions.mtu - 40}" if conditions.mtu else ""
        say(
            f"--net {conditions} applied on {host.label} to TCP with {address} only "
            f"(not its SSH port {server.effective_port}){clamp}"
        )
        yield shaping


def _stopped(shaping: Shaping, say: Callable[[str], None]) -> None:
    failed = shaping.stop()
    if failed:
        say(f"--net {shaping.conditions}: could not take off everything on {shaping.server.label}: {'; '.join(failed)}")
