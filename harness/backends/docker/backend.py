"""Docker backend: server and client in separate containers on a private bridge network.

Both containers idle; each test's server is started in the server container with ``docker exec``,
and the probes and the lab client run in the client container, so every byte crosses the bridge
from one container to the other, as between the lab's two machines. Nothing is published on the
host: docker-proxy would accept connections on its own and hide refusals (TCP-FACTS).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

from harness.backends.base import Backend
from harness.backends.docker import images
from harness.backends.docker import labels as dockerlabels
from harness.backends.docker.containers import ContainerFactory, connect, start_error
from harness.backends.docker.host import DockerHost
from harness.errors import ConfigError
from harness.options import Options


class DockerBackend(Backend):
    """Per xdist worker: a network, an idle server container and an idle client container."""

    name = "docker"

    def __init__(
        self, server_host: DockerHost, client_host: DockerHost, *, resources: ExitStack, factory: ContainerFactory
    ) -> None:
        super().__init__(server_host, client_host)
        self._resources = resources
        self._factory = factory
        self._spares = 0
        self._sidecar: DockerHost | None = None
        server_host.capture_host = functools.partial(self._capture_sidecar, server_host)

    @classmethod
    def prepare(cls, options: Options, say: Callable[[str], None]) -> None:
        """A run id for all workers, the sweep of dead runs' leftovers, and the images, built once."""
        with contextlib.closing(connect()) as client:
            run = dockerlabels.new_run()
            say(f"docker run id {run}: everything it creates is labelled {dockerlabels.RUN}={run}")
            dockerlabels.sweep(client, say)
            images.ensure_images(client.api, options.rootdir, say)
            if options.server_image and not images.has_image(client.api, options.server_image):
                say(f"pulling --server-image {options.server_image}")
                with contextlib.suppress(Exception):  # create() says what is wrong if it is still missing
                    client.images.pull(options.server_image)

    @classmethod
    def create(cls, options: Options) -> DockerBackend:
        client = connect()
        tags = images.ensure_images(client.api, options.rootdir, lambda line: None)
        user_image = _user_server_image(client.api, options)
        with ExitStack() as stack:
            stack.callback(client.close)
            factory = ContainerFactory(client.api, dockerlabels.current_run(), tags)
            stack.enter_context(factory.network())
            server = _host(factory, stack, "server", user_image or tags["server"], idle=bool(user_image))
            client_host = _host(factory, stack, "client", tags["client"])
            return cls(server, client_host, resources=stack.pop_all(), factory=factory)
        raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow errors

    @contextlib.contextmanager
    def spare_server(self) -> Iterator[DockerHost]:
        """Another server container on the same network, removed on exit: for tests that stop one."""
        self._spares += 1
        with ExitStack() as stack:
            yield _host(self._factory, stack, f"spare{self._spares}", self._factory.server_image)

    def _capture_sidecar(self, server: DockerHost) -> DockerHost:
        """The client image (it has tcpdump) idling in the server container's network namespace."""
        if self._sidecar is None:
            container = self._factory.start(self._resources, "capture", self._factory.client_image, netns=server)
            self._sidecar = DockerHost(self._factory.api, container, None, "capture sidecar")
        return self._sidecar

    def close(self) -> None:
        self._resources.close()


def _host(factory: ContainerFactory, stack: ExitStack, role: str, image: str, *, idle: bool = False) -> DockerHost:
    container = factory.start(stack, role, image, idle=idle)
    host = DockerHost(factory.api, container, factory.network_name, f"{role} container")
    if idle and host.run(["sh", "-c", "exit 0"], timeout=30.0).returncode != 0:
        raise start_error(role, image, OSError("no sh"), idle)
    return host


def _user_server_image(api: Any, options: Options) -> str | None:
    """The user's image for the server container, checked: it exists, and --server-cmd says what to run."""
    image = options.server_image
    if image is None:
        return None
    options.check()
    if not images.has_image(api, image):
        raise ConfigError(f"--server-image {image}: no such image here; build or pull it first (docker images)")
    return image
