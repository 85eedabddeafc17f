"""The stand-in Raspberry Pi: a container running a real OpenSSH server, and how tests drive it.

The image comes from docker/sshd.Dockerfile. Each session (each xdist worker) starts its own
container on its own labelled bridge network, a /28 from 172.31.0.0/16, with a key generated for
the run and an ssh_config that names it ``echolab-pi``; everything is removed at the end, also on
failure (tests/ssh/conftest.py holds the fixtures).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from harness import build
from harness.backends.docker.labels import RUN_ENV, current_run, owner_labels
from harness.wait import WaitTimeoutError, until

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "sshd.Dockerfile"
ALIAS = "echolab-pi"
CLIENT_ALIAS = "echolab-pi-client"
#: The logins the run's key opens: pi may sudo without a password, student may not.
USERS = ("pi", "student")
# This project's own range for stand-ins (the docker backend uses 172.30.0.0/16): 4096 /28s, tried
# from a random one on, so xdist workers and concurrent runs each find a free one.
SUBNETS = list(ipaddress.IPv4Network("172.31.0.0/16").subnets(new_prefix=28))
# Evidence of echolab on the stand-in: its directories, and any process running from one. Written so
# the script's own text never matches, not even in a forked copy of the shell about to exec awk.
LEFTOVERS = "ls -d /tmp/[e]cholab.* 2>/dev/null; ps -eo pid=,args= | awk '/[e]cholab/'"


def docker(*argv: str, input: bytes | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *argv], input=input, capture_output=True, timeout=timeout, check=False)


class StandinError(Exception):
    """The stand-in could not be built or started: the environment's fault, not the backend's."""


def checked(done: subprocess.CompletedProcess[bytes], what: str) -> str:
    if done.returncode != 0:
        raise StandinError(f"{what} failed: {done.stderr.decode(errors='replace').strip()[-500:]}")
    return done.stdout.decode().strip()


class Standin:
    """Stand-in Pis on a network of their own: ``echolab-pi``, and ``echolab-pi-client`` once a test
    needs a second host. One key for the run logs in to both; ``config`` is an ssh_config naming them."""

    def __init__(self, run: str, tag: str, network: str, subnet: ipaddress.IPv4Network, workdir: Path) -> None:
        self.run, self.tag, self.network, self.subnet, self.dir = run, tag, network, subnet, workdir
        self.containers: dict[str, str] = {}  # alias -> container name
        self.addresses: dict[str, str] = {}
        self.key = self.new_key("id_ed25519")
        self.known_hosts = workdir / "known_hosts"
        self.config = workdir / "ssh_config"

    @property
    def address(self) -> str:
        return self.addresses[ALIAS]

    def start(self, alias: str) -> None:
        """Start one more stand-in on the network, with the run's key installed for pi and student."""
        name = f"{alias}-{self.run}-{os.getpid()}"
        argv = ["run", "-d", "--name", name, *label_args(self.run), "--network", self.network, "--hostname", alias]
        # A Pi's pi is root through sudo: --net's tc and iptables need NET_ADMIN in the container.
        checked(docker(*argv, "--cap-add", "NET_ADMIN", self.tag), "docker run")
        self.containers[alias] = name
        inspect = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name)
        self.addresses[alias] = checked(inspect, "docker inspect")
        for user in USERS:
            self.exec(
                ["install", "-o", user, "-g", user, "-m", "600", "/dev/stdin", f"/home/{user}/.ssh/authorized_keys"],
                input=self.key.with_suffix(".pub").read_bytes(),
                on=alias,
            )
        self.ssh_config(self.config.name)
        wait_for_sshd(self.addresses[alias])

    def close(self) -> None:
        for name in self.containers.values():
            docker("rm", "-f", "-v", name)
        docker("network", "rm", self.network)
        shutil.rmtree(self.dir, ignore_errors=True)

    def exec(self, argv: Sequence[str], *, user: str = "root", input: bytes | None = None, on: str = ALIAS) -> str:
        done = docker("exec", "-i", "-u", user, self.containers[on], *argv, input=input)
        return checked(done, f"docker exec {' '.join(argv)}")

    def leftovers(self) -> list[str]:
        """Directories and processes of echolab still on any of the stand-ins."""
        return [
            f"{alias}: {line}"
            for alias in self.containers
            for line in self.exec(["sh", "-c", LEFTOVERS], on=alias).splitlines()
        ]

    def unused_address(self) -> str:
        """An address inside the stand-ins' own subnet where nothing answers: ARP goes unanswered
        and connect() fails with EHOSTUNREACH, without a packet leaving this machine."""
        return str(self.subnet.broadcast_address - 1)

    def ssh_config(self, name: str, **settings: str) -> Path:
        """An ssh_config naming every stand-in by its alias; ``settings`` change echolab-pi's entry
        (another IdentityFile, HostName, known_hosts), an empty value drops a setting."""
        path = self.dir / name
        blocks = []
        for alias, address in self.addresses.items():
            values = {
                "HostName": address,
                "User": "pi",
                "IdentityFile": str(self.key),
                "IdentitiesOnly": "yes",  # a developer's agent keys must not stand in for the run's key
                "UserKnownHostsFile": str(self.known_hosts),
                "GlobalKnownHostsFile": "/dev/null",
                **(settings if alias == ALIAS else {}),
            }
            blocks.append(f"Host {alias}\n" + "".join(f"  {key} {value}\n" for key, value in values.items() if value))
        path.write_text("".join(blocks))
        return path

    def new_key(self, name: str) -> Path:
        key = self.dir / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
        return key


def image_tag() -> str:
    """Named by the Dockerfile's content: an unchanged Dockerfile reuses the image it built."""
    return "echolab-pi-standin:" + hashlib.sha256(DOCKERFILE.read_bytes()).hexdigest()[:12]


def ensure_image() -> str:
    """Build the image unless it exists; a lock keeps xdist workers from building it side by side."""
    tag = image_tag()
    lock_path = build.cache_dir().parent / "pi-standin-build.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if docker("image", "inspect", tag).returncode != 0:
            done = docker("build", "-q", "-t", tag, "-", input=DOCKERFILE.read_bytes(), timeout=900.0)
            if done.returncode != 0:
                raise StandinError(
                    f"building {tag} from {DOCKERFILE.name} failed (is debian:bullseye-slim there? "
                    "`ci/base-image.sh debian:bullseye-slim` makes it offline): "
                    f"{done.stderr.decode(errors='replace').strip()[-400:]}"
                )
    return tag


def label_args(run: str) -> list[str]:
    labels = {**owner_labels(run), "org.echolab.role": "pi-standin"}
    return [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]


def create_network(name: str, run: str) -> ipaddress.IPv4Network:
    start = random.randrange(len(SUBNETS))
    for subnet in SUBNETS[start:] + SUBNETS[:start]:
        done = docker("network", "create", *label_args(run), "--subnet", str(subnet), name)
        if done.returncode == 0:
            return subnet
        if b"overlap" not in done.stderr:
            checked(done, f"docker network create {name}")
    raise StandinError("no free /28 left in 172.31.0.0/16 for a stand-in network")


def wait_for_sshd(address: str) -> None:
    def connect() -> None:
        with socket.create_connection((address, 22), timeout=0.5) as sock:
            if not sock.recv(64).startswith(b"SSH-"):
                raise ConnectionError("no SSH banner")

    def answers() -> bool:
        try:
            connect()
        except OSError:
            return False
        return True

    until(answers, timeout=30, what=f"sshd on {address} sending its banner", interval=(0.02, 0.5))


@contextlib.contextmanager
def running_standin() -> Iterator[Standin]:
    """Build, start and tear down the stand-in; teardown runs whatever happened in between."""
    run = current_run()
    tag = ensure_image()
    network = f"echolab-pi-net-{run}-{os.getpid()}"
    subnet = create_network(network, run)
    standin = Standin(run, tag, network, subnet, Path(tempfile.mkdtemp(prefix="echolab-standin-")))
    try:
        standin.start(ALIAS)
        yield standin
    finally:
        standin.close()


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a pytest or make started by a test: none of the outer make's variables
    (MAKEFLAGS would hand it the outer command line's settings) and none of this pytest's."""
    drop = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", RUN_ENV)
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST_")}
    env.update(extra)
    return env


def run_suite(*args: str, timeout: float = 600.0, **env: str) -> subprocess.CompletedProcess[str]:
    """The behaviour suite as a user runs it, in a child pytest; returns its exit status and output."""
    argv = [sys.executable, "-m", "pytest", "tests/behaviour", *args]
    return subprocess.run(
        argv, cwd=ROOT, env=child_env(**env), capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_no_control_directories(tmpdir: Path) -> None:
    """No ControlMaster directory of a finished or killed run left in its TMPDIR (polled: a killed
    run's reapers remove them a moment after it died)."""
    with contextlib.suppress(WaitTimeoutError):
        until(lambda: not list(tmpdir.glob("echolab-ssh-*")), timeout=10, what="the run's ssh directories going")
    left = sorted(path.name for path in tmpdir.glob("echolab-ssh-*"))
    assert left == [], f"the run left its ControlMaster directories behind: {left}"
