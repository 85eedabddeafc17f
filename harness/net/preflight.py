"""Before any test: can this backend put the run's --net conditions on its link? One line if not."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from harness.errors import ConfigError
from harness.options import Options


def refuse(name: str, options: Options) -> None:
    """ConfigError naming the conditions and why, where backend ``name`` cannot take ``--net`` at all."""
    conditions = options.net
    if conditions is None:
        return
    if name == "local":
        raise ConfigError(
            f"--net {conditions} cannot be applied on --backend local: its server and client talk over this "
            "machine's loopback, which is no link between two hosts (and shaping it would touch every "
            "program here); use --backend docker"
        )


def try_on(name: str, options: Options, say: Callable[[str], None]) -> contextlib.AbstractContextManager[object]:
    """After the backend is prepared: every command the conditions need, tried once (the kernel may
    lack a qdisc, such as netem); ConfigError naming the condition and why. On ssh the conditions
    stay applied until the returned context closes (the Pi is one for every worker: the run's
    controlling process applies them once); elsewhere each backend applies its own."""
    conditions = options.net
    if conditions is not None and name == "ssh":
        from harness.backends.ssh.backend import SshBackend
        from harness.net.ssh import shaped

        return shaped(conditions, *SshBackend.destinations(options), say)
    if conditions is not None and name == "docker":
        from harness.backends.docker import images
        from harness.backends.docker.containers import connect
        from harness.net.docker import check

        with contextlib.closing(connect()) as client:
            tags = images.ensure_images(client.api, options.rootdir, say)
            check(client, tags["net"], conditions, say)
    return contextlib.nullcontext()
