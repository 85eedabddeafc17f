"""The run's options, parsed and validated once from the pytest command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.command import CLIENT_EXAMPLE, EXAMPLE, ClientCommand, ServerCommand
from harness.errors import ConfigError
from harness.net.conditions import Conditions

IMPLS = ("python", "c")
MODES = ("iterative", "concurrent")


@dataclass(frozen=True)
class Options:
    backends: tuple[str, ...] = ("local",)
    impls: tuple[str, ...] = ("python",)
    server_cmd: ServerCommand | None = None
    server_mode: str = "iterative"
    ready_timeout: float = 10.0
    rootdir: Path = Path()
    #: Capture each test's packets with tcpdump and check the TCP exchange.
    wire: bool = True
    #: Keep every capture here (failing tests' captures are kept in any case).
    keep_pcaps: Path | None = None
    #: docker: run the server from this image instead of the reference server image.
    server_image: str | None = None
    #: The client under test instead of the reference client, and (docker) its own image.
    client_cmd: ClientCommand | None = None
    client_image: str | None = None
    #: ssh: the server's host (e.g. a Pi), its login user and port; None user means ssh's own choice.
    ssh_host: str | None = None
    ssh_user: str | None = None
    ssh_port: int | None = None
    #: ssh: run the client side on this SSH host too, instead of this workstation.
    ssh_client_host: str | None = None
    #: ssh: an ssh_config file to use instead of ~/.ssh/config (ssh -F).
    ssh_config: str | None = None
    #: Reports: the HTML page's directory, the grader's results.json and its points per behaviour.
    report: Path | None = None
    results_json: Path | None = None
    weights: dict[str, float] | None = None
    #: --net: what to do to the link between the client host and the server host for the whole run.
    net: Conditions | None = None

    def check(self) -> None:
        """ConfigError for options that cannot work together, found before anything runs."""
        if self.server_image is not None and self.server_cmd is None:
            raise ConfigError(
                f"--server-image {self.server_image} runs your server: give its command too, e.g. {EXAMPLE}"
            )
        if self.client_image is not None and self.client_cmd is None:
            image = self.client_image
            raise ConfigError(f"--client-image {image} runs your client: give its command too, e.g. {CLIENT_EXAMPLE}")
        if "ssh" in self.backends and not self.ssh_host:
            raise ConfigError("--backend ssh needs --ssh-host, the Pi's name (make pi-test HOST=raspberrypi.local)")
        if self.ssh_config is not None and not Path(self.ssh_config).expanduser().is_file():
            raise ConfigError(f"--ssh-config {self.ssh_config}: no such file")
        if self.weights is not None and self.results_json is None:
            raise ConfigError("--weights gives points for --results-json: name the results file too")
