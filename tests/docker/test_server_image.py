"""--server-image: the user's server in the user's own image, judged like the reference one.

The image here is what a student might bring: Debian with nothing but their compiled server (no
python, no ss, no tcpdump), so the backlog checks must read its kernel, and the capture its
packets, from outside the container.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import docker.errors
import pytest

from harness.backends.docker.backend import DockerBackend
from harness.backends.docker.images import BuildContext
from harness.command import ServerCommand
from harness.errors import ConfigError
from harness.options import Options

ROOT = Path(__file__).resolve().parents[2]
# No {backlog}: the server keeps its own, which the backlog test can only learn from ss.
SERVER_CMD = "echo-server --port {port}"


@pytest.fixture(scope="module")
def user_image(docker_client, docker_backend):
    """Build an image FROM ``base`` holding only the reference C server; removed afterwards."""
    made = []

    def build(base: str) -> str:
        server_image = BuildContext.of(ROOT).tag("server")
        dockerfile = (
            f"FROM {server_image} AS reference\n"
            f"FROM {base}\n"
            "COPY --from=reference /opt/echolab/bin/server /usr/local/bin/echo-server\n"
        )
        tag = f"echolab-test-user-server:{base.replace(':', '-').replace('/', '-')}"
        docker_client.images.build(
            fileobj=io.BytesIO(dockerfile.encode()), tag=tag, labels={"org.echolab.run": "test-image"}, rm=True
        )
        made.append(tag)
        return tag

    yield build
    for tag in made:
        with contextlib.suppress(docker.errors.APIError):  # in use by a parallel test's container: the
            docker_client.images.remove(tag, force=True)  # next run's build replaces it


def test_behaviour_suite_passes_for_a_server_in_an_image_without_python_or_ss(user_image):
    tag = user_image("debian:bookworm-slim")
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-rs", "tests/behaviour", "--backend", "docker"]
    argv += [
        "--server-image",
        tag,
        "--server-cmd",
        SERVER_CMD,
        "-k",
        "backlog or hello_sri or refused or capture_works",
    ]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    report = done.stdout[-4000:] + done.stderr[-2000:]
    assert done.returncode == 0 and "VERDICT: PASS" in report, report
    assert "backlog is unknown" not in report, f"ss must be read from outside the image:\n{report}"


def test_server_image_without_sleep_is_refused_with_what_it_needs(user_image):
    tag = user_image("scratch")
    options = Options(backends=("docker",), rootdir=ROOT, server_image=tag, server_cmd=ServerCommand.parse(SERVER_CMD))
    with pytest.raises(ConfigError, match="needs sleep and sh"):
        DockerBackend.create(options)


def test_server_image_without_server_cmd_is_a_config_error():
    with pytest.raises(ConfigError, match="give its command too"):
        DockerBackend.create(Options(backends=("docker",), rootdir=ROOT, server_image="debian:bookworm-slim"))


def test_client_image_without_python3_is_one_line_before_any_test():
    # The harness drives a client at a terminal with harness/remote/drive.py inside its container.
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "tests/client", "--backend", "docker"]
    argv += ["--client-image", "debian:bookworm-slim", "--client-cmd", "./client {host} {port}"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 4 and len(lines) == 1, lines
    assert "--client-image debian:bookworm-slim has no python3" in lines[0], lines


def test_a_missing_server_image_is_one_error_line_before_any_test():
    # Tried as a pull first (no registry answers here); then named, exit 4, not 28 tests "not judged".
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "tests/behaviour", "--backend", "docker"]
    argv += ["--server-image", "echolab-no-such-image:0", "--server-cmd", "./server {port}"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    assert done.returncode == 4 and len(errors) == 1, lines
    assert "--server-image echolab-no-such-image:0: no such image here" in errors[0], lines
    assert not any("not judged" in line or "passed" in line for line in lines), lines
