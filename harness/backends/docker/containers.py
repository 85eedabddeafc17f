"""The docker backend's network and containers: made with testcontainers, labelled, removed.

Names and subnets never collide: each backend's names carry the run id, the xdist worker and a
serial number, and its network takes a random /28 of echolab's range, another one if that is
taken. Every container and network carries the run's labels (harness/backends/docker/labels.py).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import random
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import docker.errors
from testcontainers.core.container import DockerContainer

from harness.backends.docker import labels as dockerlabels
from harness.errors import BackendUnavailableError, ConfigError

#: Each backend's network is a /28 somewhere in here (override with ECHOLAB_DOCKER_SUBNETS).
SUBNETS = ipaddress.ip_network(os.environ.get("ECHOLAB_DOCKER_SUBNETS", "172.30.0.0/16"))
PREFIX = 28  # 14 addresses: the gateway, the two hosts, spare servers
TRIES = 20
START_HELP = "start it (sudo systemctl start docker, or `sudo dockerd &`), or set DOCKER_HOST"
_SERIAL = itertools.count(1)


def connect() -> Any:
    """A client of the daemon that DOCKER_HOST (or the default socket) names, known to answer."""
    from docker.client import DockerClient

    try:
        client = DockerClient.from_env()
        client.ping()
    except Exception as exc:  # the SDK raises several kinds (DockerException, requests' errors)
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise BackendUnavailableError(f"no Docker daemon answers at {where}: {START_HELP}") from exc
    return client


class ContainerFactory:
    """Makes one backend's network and containers, named and labelled for its run and worker."""

    def __init__(self, api: Any, run: str, images: dict[str, str]) -> None:
        from testcontainers.core.config import testcontainers_config

        # Cleanup is by label (harness/backends/docker/labels.py), not by Ryuk: its image cannot be pulled
        # everywhere (no registry here). testcontainers' own setting, for the containers we start.
        testcontainers_config.ryuk_disabled = True
        self.api = api  # the docker SDK's low-level client, for the hosts' exec calls
        self.run = run
        self.server_image = images["server"]
        self.client_image = images["client"]
        self.net_image = images.get("net", images["client"])  # tc, ip, iptables: harness/net/docker.py
        # Unique on this daemon: the run, the xdist worker, and which backend of this process.
        self.base = f"echolab-{run}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{next(_SERIAL)}"
        self._network: Any = None

    @property
    def network_name(self) -> str:
        return str(self._network.name)

    @contextlib.contextmanager
    def network(self) -> Iterator[Any]:
        """A user-defined bridge on a small subnet of our own; another one if that is taken."""
        from docker.types import IPAMConfig, IPAMPool
        from testcontainers.core.network import Network

        subnets = list(SUBNETS.subnets(new_prefix=PREFIX))
        for subnet in random.sample(subnets, min(len(subnets), TRIES)):
            network = Network(
                docker_network_kw={
                    "driver": "bridge",
                    "ipam": IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet))]),
                    "labels": dockerlabels.owner_labels(self.run),
                }
            )
            network.name = f"{self.base}-net"
            with ExitStack() as stack:
                # Ctrl-C may land after the daemon made it and before testcontainers knows it.
                stack.callback(self._remove_network, network.name)
                try:
                    stack.enter_context(network)  # testcontainers creates it, and removes it on exit
                except docker.errors.APIError as exc:
                    if "overlap" in str(exc).lower():  # "Pool overlaps with other one on this address space"
                        continue
                    raise BackendUnavailableError(f"cannot create network {network.name}: {exc.explanation}") from None
                self._network = network
                yield network
            return
        raise BackendUnavailableError(
            f"no free /{PREFIX} left in {SUBNETS} after {TRIES} tries: remove leftover networks "
            f"(docker network ls --filter label={dockerlabels.RUN}) or set ECHOLAB_DOCKER_SUBNETS"
        )

    def start(
        self,
        stack: ExitStack,
        role: str,
        image: str,
        *,
        idle: bool = False,
        netns: Any = None,
        cap_add: list[str] | None = None,
    ) -> Any:
        """Start a container on the network and return the SDK's view of it; ``stack`` removes it.
        ``idle``: the user's own image, kept up by ``sleep infinity`` whatever its entrypoint.
        ``netns``: a host whose network namespace it joins instead (a capture sidecar).
        ``cap_add``: capabilities for echolab's own helpers (NET_ADMIN for the link's), never a program's."""
        name = f"{self.base}-{role}"
        kwargs: dict[str, Any] = {"labels": {**dockerlabels.owner_labels(self.run), "org.echolab.role": role}}
        if idle:
            # sleep itself as PID 1 (no init): if the image has none, the start fails right here.
            kwargs.update(entrypoint=["sleep", "infinity"])
        if netns is not None:
            kwargs.update(network_mode=f"container:{netns.container_id}")
        else:
            kwargs.update(network=self._network, hostname=role)
        if cap_add:
            kwargs.update(cap_add=cap_add)
        container = _Container(image, name=name, **kwargs)
        # Removal by name is arranged first: Ctrl-C may land after the daemon created the
        # container and before testcontainers knows it. Then testcontainers owns it: its context
        # manager removes it on the way out, and at once when the start fails half-way.
        stack.callback(self._remove_own, name)
        try:
            stack.enter_context(container)
        except Exception as exc:
            raise start_error(role, image, exc, idle) from None
        return container.get_wrapped_container()

    def remove(self, name: str) -> None:
        """Remove a container (by name or id) with its volumes, whether it runs or not; gone already is fine."""
        with contextlib.suppress(docker.errors.NotFound):  # removed already, or never made
            self.api.remove_container(name, force=True, v=True)

    def _remove_own(self, name: str) -> None:
        """Remove the container of that name if this process made it: a create that failed on a name
        already taken must not remove the other owner's container."""
        try:
            labels = self.api.inspect_container(name)["Config"].get("Labels") or {}
        except docker.errors.NotFound:
            return
        mine = dockerlabels.owner_labels(self.run)
        if all(labels.get(key) == mine[key] for key in (dockerlabels.RUN, dockerlabels.HOST, dockerlabels.PID)):
            self.remove(name)

    def _remove_network(self, name: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_network(name)


class _Container(DockerContainer):
    """testcontainers' container, whose removal tolerates a test having removed it already."""

    def stop(self, force: bool = True, delete_volume: bool = True) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            super().stop(force, delete_volume)


def start_error(role: str, image: str, exc: Exception, idle: bool) -> Exception:
    reason = str(getattr(exc, "explanation", None) or exc).splitlines()[0]
    if idle and ("executable file not found" in reason or "no sh" in reason):
        return ConfigError(
            f"--server-image {image} cannot idle: the docker backend keeps it up with `sleep infinity` and runs "
            f"--server-cmd in it through `sh`, so the image needs sleep and sh (coreutils or busybox)"
        )
    return BackendUnavailableError(f"cannot start the {role} container from {image}: {reason}")
