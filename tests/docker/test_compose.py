"""docker/docker-compose.yml (`make up`): brought up without a terminal, it echoes through the lab client.

Driven with whichever compose CLI is here, `docker compose` (v2) or Debian's `docker-compose` (v1),
since testcontainers' DockerCompose only knows v2. The project name is unique to this test, the
images are the ones the harness built (nothing to build, and nothing shared is removed), and
`down` always runs.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.backends.docker import labels as dockerlabels
from harness.backends.docker.images import BuildContext
from harness.fixtures import unavailable

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker" / "docker-compose.yml"


def compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    v1 = shutil.which("docker-compose")
    return [v1] if v1 else None


@pytest.fixture
def compose(docker_backend, docker_client):
    """Run compose for a project of this test's own; ``down`` and a check for leftovers at the end."""
    cli = compose_cli()
    if cli is None:
        unavailable("neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)")
    project = f"echolab-compose-{os.urandom(4).hex()}"
    context = BuildContext.of(ROOT)
    labels = dockerlabels.owner_labels(dockerlabels.current_run())
    subnet = random.choice(list(ipaddress.ip_network("172.31.0.0/16").subnets(new_prefix=28))[:-1])
    env = {
        **os.environ,
        "ECHOLAB_SERVER_IMAGE": context.tag("server"),
        "ECHOLAB_CLIENT_IMAGE": context.tag("client"),
        "ECHOLAB_RUN": labels[dockerlabels.RUN],
        "ECHOLAB_HOST": labels[dockerlabels.HOST],
        "ECHOLAB_PID": labels[dockerlabels.PID],
        "ECHOLAB_PID_START": labels[dockerlabels.PID_START],
        "ECHOLAB_SUBNET": str(subnet),
    }

    def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        argv = [*cli, "-p", project, "-f", str(COMPOSE_FILE), *args]
        return subprocess.run(argv, input=input, capture_output=True, env=env, timeout=180, check=False)

    try:
        yield run
    finally:
        down = run("down", "--volumes", "--remove-orphans", "--timeout", "2")
        mine = {"label": f"com.docker.compose.project={project}"}
        left = [c.name for c in docker_client.containers.list(all=True, filters=mine)]
        left += [n.name for n in docker_client.networks.list(filters=mine)]
        assert down.returncode == 0 and not left, f"compose down: {down.stderr.decode()[-1000:]}; left: {left}"


def test_compose_lab_echoes_a_line_through_the_lab_client(compose):
    # -T: no terminal here; the line goes in on stdin as the lab's student would type it.
    done = compose("run", "--rm", "-T", "client", input=b"Hello\n")
    out, err = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, f"compose run client: exit {done.returncode}\nstdout {out!r}\nstderr {err[-2000:]}"
    assert "Connected" in out and "Server reply :\nHello\n" in out, f"stdout {out!r}\nstderr {err[-2000:]}"
