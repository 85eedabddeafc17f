"""Docker backend: server and client in separate containers on a private bridge network.

Both containers idle; each test's server is started in the server container with ``docker exec``,
and the probes and the lab client run in the client container, so every byte crosses the bridge
from one container to the other, as between the lab's two machines. Nothing is published on the
host: docker-proxy would accept connections on its own and hide refusals (TCP-FACTS).
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import docker.errors

from harness import dockerlabels, images
from harness.backends.base import Backend, Completed, Host, OutputLog, Process
from harness.capture import Capture, tcpdump_argv
from harness.containers import ContainerFactory, connect, start_error
from harness.dockerexec import Exec, ExecOutput, run_to_end
from harness.errors import ConfigError, HarnessError
from harness.options import Options
from harness.procnet import Listener, listeners_from_ss

_CAPTURES = itertools.count(1)
PID_MARK = "echolab-exec-pid "


class DockerProcess(Process):
    """A program run with ``docker exec`` in its own session, so a signal reaches all it started."""

    def __init__(self, host: DockerHost, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        super().__init__(argv)
        self._host = host
        # sh prints its pid, then becomes the program; every exec is a session leader (runc calls
        # setsid), so that pid is also the process group of whatever the program starts. stderr
        # goes into stdout's pipe: the engine copies two pipes separately and would reorder lines.
        wrapper = ["sh", "-c", f'echo "{PID_MARK}$$"; exec "$@" 2>&1', "sh", *argv]
        try:
            self._job = Exec(host.api, host.container_id, wrapper, env=env)
        except docker.errors.APIError as exc:  # e.g. the container is not running
            raise OSError(exc.explanation or str(exc)) from None
        stream = io.BufferedReader(ExecOutput(self._job))
        self._job.sock.settimeout(30.0)
        first = stream.readline().decode("utf-8", "replace").rstrip("\r\n")
        self._job.sock.settimeout(None)
        self._host_pid = self._job.host_pid() if host.host_visible else None
        said = first.removeprefix(PID_MARK)
        if first.startswith(PID_MARK) and said.isdigit():
            self.pid = int(said)  # in the container's pid namespace
            first = ""
        else:
            # The engine can lose an exec's first output (moby/moby#27289): the pid then comes
            # from the engine, and the line read is the program's own.
            pid = _namespace_pid(self._host_pid) if self._host_pid is not None else None
            if pid is None:
                stream.close()
                raise OSError(f"{first or 'nothing'} instead of its pid from sh (the container needs sh)")
            self.pid = pid
        self._log = OutputLog(stream, first=[first] if first else [])

    def poll(self) -> int | None:
        return self._job.poll()

    def signal(self, signum: int) -> None:
        self._host.signal_group(signum, host_pid=self._host_pid, pid=self.pid)

    def wait(self, timeout: float) -> int | None:
        status = self._job.wait(timeout)
        if status is not None:
            self._log.drain()
        return status

    def stop(self, grace: float = 2.0) -> int | None:
        status = super().stop(grace)
        if self._host_pid is not None:  # whatever the program left in its group goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._host_pid, signal.SIGKILL)
        return status

    def output(self) -> list[str]:
        return self._log.lines()


class DockerHost(Host):
    """A running container; programs run in it with ``docker exec``."""

    def __init__(self, api: Any, container: Any, network: str | None, label: str) -> None:
        container.reload()
        self.api = api
        self.container_id: str = container.id
        self.name: str = container.name
        self.label = f"{label} {self.name}"
        if network is not None:
            self.address = container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
            self.label += f" ({self.address})"
        self.init_pid = int(container.attrs["State"]["Pid"])
        self.host_visible = _runs_here(self.init_pid, self.container_id)
        #: Makes (once) a container in this one's network namespace that has tcpdump; None: no capture.
        self.capture_host: Callable[[], DockerHost] | None = None

    def _spawn(self, argv: Sequence[str], env: dict[str, str] | None) -> Process:
        return DockerProcess(self, argv, env)

    def _run(self, argv: Sequence[str], input: bytes | None, timeout: float) -> Completed:
        job = Exec(self.api, self.container_id, argv, stdin=input is not None)
        try:
            stdout, stderr, status = run_to_end(job, input, timeout)
        except TimeoutError:
            if self.host_visible:  # else it lives on until the container is removed
                self.signal_group(signal.SIGKILL, host_pid=job.host_pid())
            raise HarnessError(f"{argv[0]} did not finish within {timeout:g} s in {self.label}") from None
        return Completed(argv, status, stdout, stderr)

    def signal_group(self, signum: int, *, host_pid: int | None, pid: int | None = None) -> None:
        """Signal a process group in this container: from this machine when the daemon runs here
        and we may, else with kill inside it (``pid`` as the container sees it)."""
        if host_pid is not None:
            try:
                os.killpg(host_pid, signum)
                return
            except ProcessLookupError:
                return  # gone already
            except PermissionError:  # the container's root is not us
                pid = pid or _namespace_pid(host_pid)
        if pid is not None:
            self.run(["sh", "-c", 'kill -s "$1" -- "-$2"', "sh", signal.Signals(signum).name[3:], str(pid)])

    def echo_program(self, role: str, impl: str) -> list[str]:
        if impl == "c":
            return [f"/opt/echolab/bin/{role}"]
        return ["python3", "-m", f"echo.{role}"]  # the image sets PYTHONPATH=/opt/echolab

    def probe_argv(self) -> list[str]:
        return ["python3", "/opt/echolab/probe.py"]

    def free_port(self) -> int:
        """8888 as in the lab, unless a socket of an earlier test (even in TIME_WAIT) still holds it."""
        used = {
            int(row.split()[1].rsplit(":", 1)[1], 16) for row in self.read_proc_net().splitlines()[1:] if ":" in row
        }
        return next(port for port in range(8888, 65536) if port not in used)

    def read_proc_net(self) -> str:
        if self.host_visible:  # the container's network namespace, read from here: no exec
            with contextlib.suppress(OSError):
                return "".join(Path(f"/proc/{self.init_pid}/net/{name}").read_text() for name in ("tcp", "tcp6"))
        return super().read_proc_net()

    def start_capture(self, port: int) -> Capture:
        """tcpdump on eth0 of this container's namespace, run from a sidecar that shares it, so
        the capture works whatever the server's image holds (--server-image)."""
        if self.capture_host is None:
            return super().start_capture(port)
        sidecar = self.capture_host()
        path = f"/tmp/echolab-{port}-{next(_CAPTURES)}.pcap"
        # With the daemon here, the sidecar's files are in reach through /proc: no exec needed.
        local = Path(f"/proc/{sidecar.init_pid}/root{path}") if sidecar.host_visible else None

        def fetch() -> bytes:
            if local is not None:
                with contextlib.suppress(OSError):
                    return local.read_bytes()
            return sidecar.run(["cat", path]).stdout

        def cleanup() -> None:
            if local is not None:
                with contextlib.suppress(OSError):
                    return local.unlink()
            sidecar.run(["rm", "-f", path])

        process = sidecar.spawn(tcpdump_argv("eth0", port, path))
        mark_to = self.address if self.host_visible else None  # containers are routable from here
        return Capture.start(process, port, fetch=fetch, cleanup=cleanup, mark_to=mark_to)

    def listen_detail(self, port: int) -> list[Listener] | None:
        """From this machine's ss inside the container's namespace, so an image without ss works too."""
        nsenter, ss = shutil.which("nsenter"), shutil.which("ss")
        if self.host_visible and nsenter and ss:
            argv = [nsenter, "-t", str(self.init_pid), "-n", ss, "-Hlnt", f"sport = :{port}"]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            if done.returncode == 0:
                return listeners_from_ss(done.stdout, port)
        return super().listen_detail(port)


def _namespace_pid(host_pid: int) -> int | None:
    """The pid a process has in its container, from its NSpid line (innermost namespace last)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    return None


def _runs_here(pid: int, container_id: str) -> bool:
    """Whether the daemon runs on this machine: the container's init is then one of our processes."""
    try:
        return container_id in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


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
