"""echolab's command line: the options, read and checked once, and the targets they name."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.backends import REGISTRY, backend_class
from harness.command import CLIENT_EXAMPLE, EXAMPLE, ClientCommand, ServerCommand
from harness.errors import ConfigError
from harness.net.conditions import EXAMPLE as NET_EXAMPLE
from harness.net.conditions import Conditions
from harness.options import IMPLS, MODES, Options
from harness.report.files import read_weights, writable_dir, writable_file

OPTIONS = pytest.StashKey[Options]()


@dataclass(frozen=True)
class Target:
    """One combination the suite runs against: a backend and a reference implementation."""

    backend: str
    impl: str
    label: str

    def __str__(self) -> str:
        return self.label


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def add_options(parser: pytest.Parser) -> None:
    """echolab's command-line options, in their own group of ``pytest --help``."""
    group = parser.getgroup("echolab", "echolab: judge a TCP echo server")
    group.addoption(
        "--backend",
        default="local",
        help=f"where server and client run, comma-separated for several: {', '.join(REGISTRY)} (default local)",
    )
    group.addoption(
        "--impl",
        default="python",
        help="reference programs to use, comma-separated for both: python, c (default python); "
        "with --server-cmd it picks the lab client only",
    )
    group.addoption(
        "--server-cmd",
        default=None,
        metavar="TEMPLATE",
        help="run this echo server instead of the reference one; {port} and {backlog} are filled in, "
        f"e.g. {EXAMPLE}",
    )
    group.addoption(
        "--server-mode",
        choices=MODES,
        default="iterative",
        help="how the --server-cmd server serves clients: one at a time (iterative, like the lab) or "
        "all at once (concurrent); picks the backlog or the concurrency checks",
    )
    group.addoption(
        "--wire",
        choices=("on", "off"),
        default="on",
        help="capture each test's packets with tcpdump and check the TCP exchange (default on)",
    )
    group.addoption(
        "--keep-pcaps",
        default=None,
        metavar="DIR",
        help="keep every test's capture in DIR (a failing test's capture is always kept, in pcaps/)",
    )
    group.addoption(
        "--client-cmd",
        default=None,
        metavar="TEMPLATE",
        help="judge this echo client instead of the reference one; {host} and {port} are filled in, "
        f"e.g. {CLIENT_EXAMPLE}; without them it is served at 127.0.0.1:8888 on its own host",
    )
    group.addoption(
        "--client-image",
        default=None,
        metavar="IMAGE",
        help="docker: run --client-cmd inside this image of yours (it needs python3 and sh)",
    )
    group.addoption(
        "--server-image",
        default=None,
        metavar="IMAGE",
        help="docker: run --server-cmd inside this image of yours instead of echolab's server image",
    )
    group.addoption("--ssh-host", default=None, metavar="HOST", help="ssh: the server's host, e.g. raspberrypi.local")
    group.addoption(
        "--ssh-user", default=None, metavar="USER", help="ssh: login user (default: ssh config's User, else pi)"
    )
    group.addoption("--ssh-port", type=int, default=None, metavar="PORT", help="ssh: port of the server's sshd")
    group.addoption(
        "--ssh-client-host",
        default=None,
        metavar="HOST",
        help="ssh: run the client side on this SSH host too, instead of this workstation",
    )
    group.addoption(
        "--ssh-config", default=None, metavar="FILE", help="ssh: use this ssh_config instead of ~/.ssh/config"
    )
    group.addoption(
        "--report",
        default=None,
        metavar="DIR",
        help="write an HTML report (DIR/index.html: the verdict, each test's evidence, a ladder diagram "
        "of every captured connection) with every test's pcaps beside it",
    )
    group.addoption(
        "--results-json",
        default=None,
        metavar="FILE",
        help="write the verdict as a grader's results.json (Gradescope's format): one entry per behaviour",
    )
    group.addoption(
        "--weights",
        default=None,
        metavar="FILE",
        help='points per behaviour for --results-json, a TOML table: "echo fidelity" = 40 '
        "(default 1 point each; a behaviour the file leaves out counts 0)",
    )
    group.addoption(
        "--net",
        default=None,
        metavar="CONDITIONS",
        help="impair the link between client and server hosts for the whole run (docker): "
        f"loss=P%%, rate=Nmbit|Nkbit, mtu=N, and where the kernel has netem delay=Nms, reorder=P%%; e.g. {NET_EXAMPLE}",
    )
    group.addoption(
        "--ready-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long a server may take to start listening (default 10)",
    )


def _split(value: str, valid: tuple[str, ...] | None, what: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if not names:
        raise ConfigError(f"--{what} is empty")
    for name in names:
        if valid is not None and name not in valid:
            raise ConfigError(f"unknown --{what} {name!r}; choose from {', '.join(valid)}")
    return names


def parse_options(config: pytest.Config) -> Options:
    """The run's options, checked together: whatever cannot work is one line now, not a failure
    (or a skip) in every test later."""
    options = _read_options(config)
    options.check()
    return options


def _read_options(config: pytest.Config) -> Options:
    template = config.getoption("--server-cmd")
    return Options(
        backends=_split(config.getoption("--backend"), tuple(REGISTRY), "backend"),
        impls=_split(config.getoption("--impl"), IMPLS, "impl"),
        server_cmd=ServerCommand.parse(template) if template is not None else None,
        server_mode=config.getoption("--server-mode"),
        ready_timeout=config.getoption("--ready-timeout"),
        rootdir=Path(str(config.rootpath)),
        wire=config.getoption("--wire") == "on",
        keep_pcaps=Path(config.getoption("--keep-pcaps")) if config.getoption("--keep-pcaps") else None,
        server_image=config.getoption("--server-image"),
        client_cmd=ClientCommand.parse(client) if (client := config.getoption("--client-cmd")) is not None else None,
        client_image=config.getoption("--client-image"),
        ssh_host=config.getoption("--ssh-host"),
        ssh_user=config.getoption("--ssh-user"),
        ssh_port=config.getoption("--ssh-port"),
        ssh_client_host=config.getoption("--ssh-client-host"),
        ssh_config=config.getoption("--ssh-config"),
        report=writable_dir(config.getoption("--report"), "--report"),
        results_json=writable_file(config.getoption("--results-json"), "--results-json"),
        weights=read_weights(Path(weights)) if (weights := config.getoption("--weights")) is not None else None,
        net=Conditions.parse(net) if (net := config.getoption("--net")) is not None else None,
    )


def targets(options: Options) -> list[Target]:
    return [
        Target(backend, impl, f"{backend_class(backend).describe_target(options)}-{impl}")
        for backend in options.backends
        for impl in options.impls
    ]
