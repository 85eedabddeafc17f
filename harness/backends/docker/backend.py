"""Docker backend: server and client in separate containers on a private bridge network.

Both containers idle; each test's server is started in the server container with ``docker exec``,
and the probes and the lab client run in the client container, so every byte crosses the bridge
from one container to the other, as between the lab's two machines. Nothing is published on the
host: docker-proxy would accept connections on its own and hide refusals (TCP-FACTS).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

from harness.backends.base import Backend, Host
from harness.backends.docker import images, netns
from harness.backends.docker import labels as dockerlabels
from harness.backends.docker.containers import ContainerFactory, connect, start_error
from harness.backends.docker.host import DockerHost
from harness.backends.docker.netns import NamespaceHost
from harness.backends.local import LocalHost
from harness.errors import ConfigError
from harness.net.docker import Link
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
        self._sidecars: dict[str, Host] = {}
        self._lock = threading.Lock()
        # Where the daemon runs here and we are root, helpers enter a container's namespace from this
        # machine (netns.py): no sidecar container to start, per worker, before the first capture.
        self._outside: LocalHost | None = None
        if netns.usable(server_host):
            self._outside = LocalHost()
            self._outside.start_agent()
            resources.callback(self._outside.close)
        #: The link between the two containers: --net's conditions, and faults (tests/faults).
        self.link: Link
        for host in (server_host, client_host):
            host.capture_host = functools.partial(self._capture_sidecar, host)

    @property
    def scripted_host(self) -> Host:
        """The scripted server runs in the server container's network namespace, from outside it: it
        has python3 even where --server-image does not."""
        return self._capture_sidecar(self.server_host)  # type: ignore[arg-type]

    @classmethod
    def prepare(cls, options: Options, say: Callable[[str], None]) -> None:
        """A run id for all workers, the sweep of dead runs' leftovers, and the images, built once."""
        with contextlib.closing(connect()) as client:
            run = dockerlabels.new_run()
            for option, image in (("--server-image", options.server_image), ("--client-image", options.client_image)):
                if image and not images.has_image(client.api, image):
                    say(f"pulling {option} {image}")
                    with contextlib.suppress(Exception):  # said just below if it is still missing
                        client.images.pull(image)
                    _user_image(client.api, option, image)  # one line, exit 4, before any test
            if options.client_image:  # a wrong image is one line before anything else is said or made
                _check_client_image(client, options.client_image, run)
            say(f"docker run id {run}: everything it creates is labelled {dockerlabels.RUN}={run}")
            dockerlabels.sweep(client, say)
            images.ensure_images(client.api, options.rootdir, say)

    @classmethod
    def create(cls, options: Options) -> DockerBackend:
        client = connect()
        tags = images.ensure_images(client.api, options.rootdir, lambda line: None)
        options.check()
        user_server = _user_image(client.api, "--server-image", options.server_image)
        user_client = _user_image(client.api, "--client-image", options.client_image)
        with ExitStack() as stack:
            stack.callback(client.close)
            factory = ContainerFactory(client.api, dockerlabels.current_run(), tags)
            stack.enter_context(factory.network())
            server, client_host = _start_together(
                stack,
                lambda sub: _host(factory, sub, "server", user_server or tags["server"], idle=bool(user_server)),
                lambda sub: _host(factory, sub, "client", user_client or tags["client"], idle=bool(user_client)),
            )
            if user_client:
                client_host.install_remote()
                client_host.start_agent()
                stack.callback(client_host.close)
            link = Link(factory, stack, server, client_host)
            if options.net is not None:
                link.impose(options.net)
            backend = cls(server, client_host, resources=stack.pop_all(), factory=factory)
            backend.link = link
            return backend
        raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow errors

    @contextlib.contextmanager
    def spare_server(self) -> Iterator[DockerHost]:
        """Another server container on the same network, removed on exit: for tests that stop one."""
        self._spares += 1
        with ExitStack() as stack:
            yield _host(self._factory, stack, f"spare{self._spares}", self._factory.server_image)

    def _capture_sidecar(self, host: DockerHost) -> Host:
        """A host in ``host``'s network namespace, for tcpdump and the scripted server: this machine
        through nsenter where it can, else echolab's client image idling in that namespace."""
        with self._lock:
            if host.container_id not in self._sidecars:
                role = "capture" if host is self.server_host else f"capture-{host.name.rsplit('-', 1)[-1]}"
                self._sidecars[host.container_id] = helper = self._make_sidecar(host, role)
                self._resources.callback(helper.close)
                self._resources.callback(host.stop_capture)  # first: its tcpdump runs there
            return self._sidecars[host.container_id]

    def _make_sidecar(self, host: DockerHost, role: str) -> Host:
        if self._outside is not None:
            return NamespaceHost(self._outside, host, role)
        container = self._factory.start(self._resources, role, self._factory.client_image, netns=host)
        sidecar = DockerHost(self._factory.api, container, None, f"{role} sidecar")
        sidecar.address = host.address
        sidecar.sidecar_of = host
        sidecar.start_agent()
        return sidecar

    def close(self) -> None:
        """Every container removed at once (each removal is some 0.2 s of the daemon's), then the rest."""
        hosts = [self.server_host, self.client_host, *self._sidecars.values()]
        ids = [host.container_id for host in hosts if isinstance(host, DockerHost)]
        removals = [threading.Thread(target=self._factory.remove, args=(cid,), daemon=True) for cid in ids]
        for removal in removals:
            removal.start()
        for removal in removals:
            removal.join(30.0)
        self._resources.close()


def _start_together(stack: ExitStack, *starts: Callable[[ExitStack], DockerHost]) -> list[DockerHost]:
    """Start containers at the same time (each start is mostly the daemon's waiting): a worker's
    backend is up sooner. Each start gets a stack of its own, entered in ``stack`` first, so what it
    made is removed whatever happens; the first start that failed raises once all have ended."""
    subs = [stack.enter_context(ExitStack()) for _ in starts]
    results: list[DockerHost | BaseException | None] = [None] * len(starts)

    def start(i: int) -> None:
        try:
            results[i] = starts[i](subs[i])
        except BaseException as exc:  # handed to the caller's thread below
            results[i] = exc

    threads = [threading.Thread(target=start, args=(i,), daemon=True) for i in range(len(starts))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:  # a Ctrl-C lands here: the starts finish first, so that the stacks then remove all they made
        for thread in threads:
            _join_through_interrupts(thread)
    hosts = []
    for result in results:
        if not isinstance(result, DockerHost):
            raise result if isinstance(result, BaseException) else AssertionError("a container start said nothing")
        hosts.append(result)
    return hosts


def _join_through_interrupts(thread: threading.Thread, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while thread.is_alive() and time.monotonic() < deadline:
        with contextlib.suppress(KeyboardInterrupt):
            thread.join(0.1)


def _host(factory: ContainerFactory, stack: ExitStack, role: str, image: str, *, idle: bool = False) -> DockerHost:
    container = factory.start(stack, role, image, idle=idle)
    host = DockerHost(factory.api, container, factory.network_name, f"{role} container")
    if idle and host.run(["sh", "-c", "exit 0"], timeout=30.0).returncode != 0:
        raise start_error(role, image, OSError("no sh"), idle)
    if not idle:  # echolab's own image has the agent; a user's may not even have python3
        host.start_agent()
        stack.callback(host.close)
    return host


def _user_image(api: Any, option: str, image: str | None) -> str | None:
    """The user's own image for a container, checked to exist."""
    if image is not None and not images.has_image(api, image):
        raise ConfigError(f"{option} {image}: no such image here; build or pull it first (docker images)")
    return image


def _check_client_image(client: Any, image: str, run: str) -> None:
    """Once, up front: the client's image can run the harness's terminal driver (python3, sh)."""
    import docker.errors

    _user_image(client.api, "--client-image", image)
    try:
        client.containers.run(
            image, ["-c", "command -v python3"], entrypoint=["sh"], remove=True, labels=dockerlabels.owner_labels(run)
        )
    except docker.errors.ContainerError:
        raise ConfigError(
            f"--client-image {image} has no python3: the harness drives your client at a terminal with a small "
            "Python program in the container (harness/remote/drive.py); add python3 to the image"
        ) from None
    except docker.errors.APIError as exc:
        raise ConfigError(f"--client-image {image} cannot run sh: {exc.explanation or exc}") from None
