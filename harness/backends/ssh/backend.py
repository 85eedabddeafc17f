"""SSH backend: the echo server on a Raspberry Pi (any Linux host with sshd and python3), the client
here, so the traffic crosses the real network; with --ssh-client-host the client runs on a second
SSH host instead.

At the start of a run each SSH host gets a fresh directory ``/tmp/echolab.XXXXXX`` holding the echo
programs, the probe and harness/remote/supervise.py; the C programs are compiled there with the host's own
``cc`` on first use. Programs run from the login's home directory, so a relative ``--server-cmd``
path is relative to it. The directory lives exactly as long as one SSH session of its own: it is
removed when the run closes the session, and also when the connection drops or the harness dies.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.backends.base import Backend, Host
from harness.backends.local import LocalHost
from harness.backends.ssh.connection import Destination, resolve
from harness.backends.ssh.host import SshHost
from harness.errors import BackendUnavailableError
from harness.net.conditions import LOSSY_PROBES
from harness.options import Options


class SshBackend(Backend):
    name = "ssh"

    @classmethod
    def destinations(cls, options: Options) -> tuple[Destination, Destination | None]:
        """The server's host and the optional client host, as ssh will connect to them."""
        if not options.ssh_host:  # options.check() says so before a run; this guards direct use
            raise BackendUnavailableError("no --ssh-host")
        server = resolve(options.ssh_host, user=options.ssh_user, port=options.ssh_port, config=options.ssh_config)
        client = resolve(options.ssh_client_host, config=options.ssh_config) if options.ssh_client_host else None
        return server, client

    @classmethod
    def hosts_needing_cc(cls, options: Options) -> tuple[bool, bool]:
        """Whether the server's and the client's host must compile: the reference C programs run there."""
        wants_c = "c" in options.impls
        return wants_c and options.server_cmd is None, wants_c

    @classmethod
    def prepare(cls, options: Options, say: Callable[[str], None]) -> None:
        """Connect once before any worker does: a first contact records the host key once, and an
        unreachable host or a refused key is reported once, up front."""
        for dest, needs_cc in zip(cls.destinations(options), cls.hosts_needing_cc(options)):
            if dest is None:
                continue
            host = SshHost.connect(dest, needs_cc=needs_cc, deploy=False)
            try:
                about = host.run(
                    ["sh", "-c", 'uname -srm; python3 -V 2>&1; command -v cc || echo "no cc"'], timeout=30.0
                )
                say(f"ssh: {dest.label} reached at {host.address}: {'; '.join(about.text.splitlines())}")
            finally:
                host.close()

    @classmethod
    def create(cls, options: Options) -> SshBackend:
        server_dest, client_dest = cls.destinations(options)
        server_cc, client_cc = cls.hosts_needing_cc(options)
        server = SshHost.connect(server_dest, needs_cc=server_cc)
        try:
            client: Host = SshHost.connect(client_dest, needs_cc=client_cc) if client_dest else LocalHost()
            client.start_agent()
        except BaseException:
            server.close()
            raise
        if options.net is not None:  # applied on the Pi once per run (harness/net/ssh.py)
            client.probe_params = LOSSY_PROBES
        return cls(server_host=server, client_host=client)

    @classmethod
    def describe_target(cls, options: Options) -> str:
        try:
            server, _ = cls.destinations(options)
        except BackendUnavailableError:  # create() reports it; an id must not fail collection
            return f"ssh://{options.ssh_host or 'no-host'}"
        return f"ssh://{server.label}"
