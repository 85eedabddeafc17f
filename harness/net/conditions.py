"""``--net CONDITIONS``: what to do to the link between the client host and the server host.

Pure parsing and the commands that apply each condition (tc, ip, iptables), no hosts: the
backends run the commands. ``loss=5%,rate=1mbit,mtu=576,delay=50ms,reorder=10%``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import ConfigError

EXAMPLE = "--net loss=5%,mtu=576"
KEYS = ("loss", "rate", "mtu", "delay", "reorder")
#: The conditions only netem applies (a kernel module many kernels have, this project's CI kernel not).
NETEM = ("delay", "reorder")
#: IPv4 needs 68 bytes (RFC 791); a bridge's veth takes up to 1500 here.
MTU_RANGE = (68, 1500)
# A lost segment waits out a retransmission timeout (200 ms and up, doubling each time it is lost
# again): under --net, probes wait this long for owed bytes before calling them missing.
LOSSY_IDLE_FLOOR = 3.0  # 0.2 + 0.4 + 0.8 + 1.6 s: the same segment lost four times running
LOSSY_TIMEOUT_FLOOR = 6.0  # a connect's SYN sent at 0, 1, 2, 3, 4 and 5 s (Linux 6.5+)
#: What a client host's probes get under --net (Host.probe_params), on every backend.
LOSSY_PROBES = {"idle_floor": LOSSY_IDLE_FLOOR, "timeout_floor": LOSSY_TIMEOUT_FLOOR}
#: The scripted server's wait for the rest of a client's line, and between the halves of a split
#: echo, under --net (0.3 s on a clean link): a segment of the line lost twice running comes
#: 0.2 + 0.4 s late, and a line that arrives late is no line sent in pieces.
LOSSY_GATHER = 1.0


@dataclass(frozen=True)
class Conditions:
    """What the link does: each None is left alone. ``text`` is how the user wrote it."""

    text: str
    loss: float | None = None  # percent of TCP segments dropped, each way
    rate_kbit: int | None = None  # what the server host sends
    mtu: int | None = None  # both hosts
    delay_ms: float | None = None  # what the server host sends
    reorder: float | None = None  # percent of packets sent ahead of the others (needs delay)

    @classmethod
    def parse(cls, text: str) -> Conditions:
        """The conditions in ``text``; ConfigError (one line) naming what is wrong."""
        found: dict[str, object] = {}
        for part in (p.strip() for p in text.split(",")):
            key, eq, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not part or not eq or not value:
                raise ConfigError(f"--net {text!r}: {part or 'an empty part'!r} is not KEY=VALUE, e.g. {EXAMPLE}")
            if key not in KEYS:
                raise ConfigError(f"--net {text!r}: unknown condition {key!r}; choose from {', '.join(KEYS)}")
            if key in found:
                raise ConfigError(f"--net {text!r}: {key} is given twice")
            found[key] = _PARSERS[key](text, value)
        if "reorder" in found and "delay" not in found:
            raise ConfigError(f"--net {text!r}: reorder needs a delay to reorder against (netem), e.g. delay=50ms")
        return cls(
            text=",".join(part.strip() for part in text.split(",")),
            loss=found.get("loss"),  # type: ignore[arg-type]  # each parser returns its field's type
            rate_kbit=found.get("rate"),  # type: ignore[arg-type]
            mtu=found.get("mtu"),  # type: ignore[arg-type]
            delay_ms=found.get("delay"),  # type: ignore[arg-type]
            reorder=found.get("reorder"),  # type: ignore[arg-type]
        )

    def __str__(self) -> str:
        return self.text

    @property
    def needs_netem(self) -> list[str]:
        return [part for part in self.text.split(",") if part.split("=")[0] in NETEM]

    def part(self, key: str) -> str:
        """How the user wrote one condition, e.g. ``loss=5%``."""
        return next(part for part in self.text.split(",") if part.split("=")[0] == key)

    def egress_commands(
        self, dev: str = "eth0", parent: str = "root", handles: tuple[int, int] = (1, 2)
    ) -> list[list[str]]:
        """tc commands for the server host's way out: netem (delay, reorder) at ``parent`` (the
        root, or an htb class), tbf (rate) below it; their handles are ``handles[0]:`` and
        ``handles[1]:``. Only that way: requests arrive at full speed and replies leave slowly, so a
        server's send buffer fills and its send() comes back short (a fast reader never lets it).
        tbf also cuts what the kernel hands it in one piece (GSO) into frames, as a NIC would."""
        commands = []
        at = ["root"] if parent == "root" else ["parent", parent]
        if self.delay_ms is not None:
            netem = ["netem", "delay", f"{self.delay_ms:g}ms"]
            if self.reorder is not None:
                netem += ["reorder", f"{self.reorder:g}%"]
            commands.append(["tc", "qdisc", "add", "dev", dev, *at, "handle", f"{handles[0]}:", *netem])
            at = ["parent", f"{handles[0]}:"]
        if self.rate_kbit is not None:
            # Packets waiting longer than 400 ms are dropped (so a rate limit also causes loss: TCP-FACTS).
            tbf = ["tbf", "rate", f"{self.rate_kbit}kbit", "burst", f"{self.burst}b", "latency", "400ms"]
            commands.append(["tc", "qdisc", "add", "dev", dev, *at, "handle", f"{handles[1]}:", *tbf])
        return commands

    @property
    def burst(self) -> int:
        """The rate's bucket in bytes: one frame (or 1 ms at the rate, if more), so that frames
        leave one at a time at the rate, as on a slow link, not two back to back."""
        return max((self.rate_kbit or 0) // 8, (self.mtu or 1500) + 100)

    @property
    def probability(self) -> str:
        """``loss`` as iptables' statistic match takes it: 5% is ``0.05``."""
        return f"{(self.loss or 0) / 100:.6f}".rstrip("0")

    def link_commands(self, dev: str = "eth0") -> list[list[str]]:
        return [["ip", "link", "set", "dev", dev, "mtu", str(self.mtu)]] if self.mtu is not None else []

    def loss_rules(self, dev: str = "eth0") -> list[list[str]]:
        """iptables rule specs (after ``-A``/``-D``) for each host: it drops ``loss`` percent of the
        TCP segments that reach it on ``dev``, so each direction loses its share in flight. (Not on
        the way out: a segment OUTPUT drops is an error to the sending kernel, which then stalls and
        backs off as no lost packet makes it.) The capture on the server's side sees every segment
        sent, a lost one included: tcpdump taps a packet on the way in before INPUT drops it.
        Resets are spared: TCP never sends a RST again, so a lost one leaves its peer waiting for
        good, and a check of what a server does after a reset could never be judged."""
        if self.loss is None:
            return []
        chance = ["-p", "tcp", "!", "--tcp-flags", "RST", "RST"]
        chance += ["-m", "statistic", "--mode", "random", "--probability", self.probability]
        return [["INPUT", "-i", dev, *chance, "-j", "DROP"]]


def _percent(text: str, value: str, key: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)%", value)
    if not match or not 0 < float(match[1]) < 100:
        raise ConfigError(f"--net {text!r}: {key}={value} is not a percentage between 0 and 100, e.g. {key}=5%")
    return float(match[1])


def _loss(text: str, value: str) -> float:
    return _percent(text, value, "loss")


def _reorder(text: str, value: str) -> float:
    return _percent(text, value, "reorder")


def _rate(text: str, value: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(kbit|mbit|gbit)", value.lower())
    kbit = float(match[1]) * {"kbit": 1, "mbit": 1000, "gbit": 1000_000}[match[2]] if match else 0
    if not match or not 8 <= kbit <= 10_000_000:
        raise ConfigError(
            f"--net {text!r}: rate={value} is not a rate from 8kbit to 10gbit (kbit, mbit or gbit), e.g. rate=1mbit"
        )
    return int(kbit)


def _mtu(text: str, value: str) -> int:
    low, high = MTU_RANGE
    if not value.isdigit() or not low <= int(value) <= high:
        raise ConfigError(f"--net {text!r}: mtu={value} is not a number of bytes from {low} to {high}, e.g. mtu=576")
    return int(value)


def _delay(text: str, value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms|s)", value)
    if not match or float(match[1]) <= 0:
        raise ConfigError(f"--net {text!r}: delay={value} is not a time in us, ms or s, e.g. delay=50ms")
    return float(match[1]) * {"us": 0.001, "ms": 1, "s": 1000}[match[2]]


_PARSERS = {"loss": _loss, "rate": _rate, "mtu": _mtu, "delay": _delay, "reorder": _reorder}
