"""The docker backend's link: conditions and faults applied from helper containers.

Each helper runs echolab's ``net`` image (tc, ip, iptables) with NET_ADMIN in the network
namespace of the server's or the client's container (``network_mode=container:<id>``): the
program under test never gets NET_ADMIN, and nothing outside the lab's two containers is touched.
Loss drops at random what reaches each container on eth0 (iptables ``statistic``): each
direction loses its share in flight, and the server-side capture still shows every segment sent
(tcpdump sees one on the way in before INPUT drops it). The MTU is set on both containers' eth0;
rate and delay shape what the server's container sends (its eth0's way out, as ``tc`` shapes an
interface): replies come slower than requests, as from a Pi on a slow uplink.
Everything applied is taken off when the backend closes, and goes with the containers anyway.
"""

from __future__ import annotations

import contextlib
import platform
import shlex
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

from harness.backends.docker import labels as dockerlabels
from harness.backends.docker.host import DockerHost
from harness.errors import ConfigError, HarnessError
from harness.net.conditions import LOSSY_PROBES, Conditions

DEV = "eth0"
PARTITION = [["INPUT", "-i", DEV, "-j", "DROP"]]


class Link:
    """The link between one docker backend's server and client containers."""

    def __init__(self, factory: Any, stack: ExitStack, server: DockerHost, client: DockerHost) -> None:
        """``stack`` (the backend's) closes the link before the containers go: its rules are
        taken off, then its helpers removed, also those started later, lazily (a fault test's)."""
        self._factory = factory
        self._helper_stack = ExitStack()
        self.server, self.client = server, client
        self._helpers: dict[str, DockerHost] = {}
        self._undo: list[tuple[DockerHost, list[str]]] = []
        self.conditions: Conditions | None = None
        stack.callback(self.close)

    def close(self) -> None:
        try:
            self.clear()
        finally:
            self._helpers.clear()
            self._helper_stack.close()

    def helper(self, host: DockerHost) -> DockerHost:
        """A container with NET_ADMIN in ``host``'s network namespace, started once."""
        if host.container_id not in self._helpers:
            role = f"net-{host.name.rsplit('-', 1)[-1]}"
            container = self._factory.start(
                self._helper_stack, role, self._factory.net_image, netns=host, cap_add=["NET_ADMIN"]
            )
            helper = DockerHost(self._factory.api, container, None, f"{role} helper")
            helper.address = host.address
            self._helpers[host.container_id] = helper
        return self._helpers[host.container_id]

    def impose(self, conditions: Conditions) -> None:
        """Put ``conditions`` on both containers' eth0 for as long as the backend lives."""
        self._apply(conditions)
        self.conditions = conditions
        self.client.probe_params = LOSSY_PROBES

    @contextlib.contextmanager
    def shaped(self, conditions: Conditions) -> Iterator[None]:
        """``conditions`` for the ``with`` only (a fault test's slow link), on a link with none."""
        if self.conditions is not None or self._undo:
            raise HarnessError(f"the link is shaped already (--net {self.conditions})")
        try:
            self._apply(conditions)
            yield
        finally:
            self.clear()

    def _apply(self, conditions: Conditions) -> None:
        for host in (self.server, self.client):
            helper = self.helper(host)
            if conditions.mtu is not None:
                before = self._run(helper, ["cat", f"/sys/class/net/{DEV}/mtu"]).strip()
                self._undo.append((helper, ["ip", "link", "set", "dev", DEV, "mtu", before]))
            for command in conditions.link_commands(DEV):
                self._run(helper, command)
            shaped = conditions.egress_commands(DEV) if host is self.server else []
            if shaped:
                self._undo.append((helper, ["tc", "qdisc", "del", "dev", DEV, "root"]))
            for command in shaped:
                self._run(helper, command)
            for rule in conditions.loss_rules(DEV):
                self._add_rule(helper, rule)

    @contextlib.contextmanager
    def partitioned(self) -> Iterator[None]:
        """All traffic between the two containers dropped both ways (each drops what reaches it on
        eth0, as a cut cable would: nothing is refused or reset), healed on leaving the ``with``."""
        added = []
        try:
            for host in (self.server, self.client):
                for rule in PARTITION:
                    # -I: ahead of any loss rule, so nothing gets through by luck.
                    added.append(self._add_rule(self.helper(host), rule, insert=True))
            yield
        finally:
            for undo in reversed(added):
                self._undo.remove(undo)
                self._run(*undo)

    @contextlib.contextmanager
    def paused(self, host: DockerHost) -> Iterator[None]:
        """``docker pause``: every process of the container frozen (cgroup freezer), its kernel not."""
        self._factory.api.pause(host.container_id)
        try:
            yield
        finally:
            self._factory.api.unpause(host.container_id)

    def clear(self) -> None:
        """Take off whatever was applied (the rules live in the containers' namespaces, which
        go with them; this leaves the containers as they were for anything that outlives us)."""
        while self._undo:
            helper, command = self._undo.pop()
            with contextlib.suppress(Exception):  # the container may be gone already
                helper.run(command, timeout=30.0)
        self.conditions = None
        self.client.probe_params = {}

    def _add_rule(self, helper: DockerHost, rule: list[str], *, insert: bool = False) -> tuple[DockerHost, list[str]]:
        self._run(helper, ["iptables", "-w", "-I" if insert else "-A", *rule])
        undo = (helper, ["iptables", "-w", "-D", *rule])
        self._undo.append(undo)
        return undo

    @staticmethod
    def _run(helper: DockerHost, argv: list[str]) -> str:
        done = helper.run(argv, timeout=30.0)
        if done.returncode != 0:
            raise HarnessError(f"{shlex.join(argv)} failed in {helper.label}: {done.text.strip()[-300:]}")
        return done.stdout.decode()


def check(client: Any, image: str, conditions: Conditions, say: Callable[[str], None]) -> None:
    """Try every command ``conditions`` need in a throwaway container with NET_ADMIN and no network
    (a veth pair of its own stands in for eth0): ConfigError, one line, for the first that fails,
    naming the condition and why. This kernel has no netem, for one."""
    import docker.errors

    script = [["ip", "link", "add", DEV, "type", "veth", "peer", "name", "echolab1"], ["ip", "link", "set", DEV, "up"]]
    steps: list[tuple[str, list[str]]] = [("", command) for command in script]
    if conditions.mtu is not None:
        steps += [(conditions.part("mtu"), command) for command in conditions.link_commands(DEV)]
    for command in conditions.egress_commands(DEV):
        kind = "netem" if "netem" in command else "tbf"
        part = ",".join(conditions.needs_netem) if kind == "netem" else conditions.part("rate")
        steps.append((part, command))
    steps += [(conditions.part("loss"), ["iptables", "-w", "-A", *rule]) for rule in conditions.loss_rules(DEV)]
    shell = "; ".join(
        f"{shlex.join(command)} >/tmp/out 2>&1 || {{ echo 'FAILED {n}' >&2; cat /tmp/out >&2; exit 1; }}"
        for n, (_, command) in enumerate(steps)
    )
    say(f"--net {conditions}: trying each condition in a throwaway container")
    try:
        client.containers.run(
            image,
            ["sh", "-c", shell],
            network_mode="none",
            cap_add=["NET_ADMIN"],
            remove=True,
            labels=dockerlabels.owner_labels(dockerlabels.current_run()),
        )
    except docker.errors.ContainerError as exc:
        out = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else str(exc.stderr or "")
        lines = [line for line in out.splitlines() if line.strip()]
        at = next((i for i, line in enumerate(lines) if line.startswith("FAILED ")), None)
        part, command = steps[int(lines[at].split()[1])] if at is not None else ("", [])
        said = " ".join(line.strip() for line in lines[at + 1 if at is not None else 0 :])[:200]
        raise ConfigError(_why(conditions, part, command, said)) from None


def _why(conditions: Conditions, part: str, command: list[str], said: str) -> str:
    kernel = platform.release()
    if "netem" in command:
        return (
            f"--net {conditions}: {part} needs the netem qdisc, which this kernel ({kernel}) does not have "
            f"(tc: {said}); load it (modprobe sch_netem) or leave out delay and reorder"
        )
    if not part:
        return f"--net {conditions}: the docker backend cannot change a container's network here: {said}"
    return (
        f"--net {conditions}: {part} cannot be applied on the docker backend ({kernel}): {shlex.join(command)}: {said}"
    )
