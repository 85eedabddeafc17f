"""Nothing outlives a run: every container and network carries org.echolab.run and goes at the end,
also after Ctrl-C; what a run killed outright left behind is swept by the next, and only that."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
from contextlib import ExitStack
from pathlib import Path

import docker.errors
import pytest

from harness.backends.docker import labels as dockerlabels
from harness.backends.docker.containers import ContainerFactory
from harness.wait import until

ROOT = Path(__file__).resolve().parents[2]


def child_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "--backend", "docker", *args]


def child_env() -> dict[str, str]:
    """This worker's environment without what would make the child think it is one (or this run)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != dockerlabels.RUN_ENV}


def run_id(output: str) -> str:
    match = re.search(r"docker run id (\w+)", output)
    assert match, f"the child run did not say its docker run id:\n{output[-3000:]}"
    return match[1]


def labelled(client, run: str) -> list[str]:
    wanted = {"label": f"{dockerlabels.RUN}={run}"}
    # The low-level list: the SDK's containers.list() inspects each one after listing, which fails
    # with NotFound for a container removed in between (as a run's are, while this polls).
    listed = client.api.containers(all=True, filters=wanted)
    containers = [f"container {c['Names'][0].lstrip('/')} ({c['State']})" for c in listed]
    return containers + [f"network {n.name}" for n in client.networks.list(filters=wanted)]


def test_a_finished_run_leaves_nothing_labelled(docker_client):
    argv = child_argv("-n", "2", "-k", "hello_sri_lanka or killed_server", "tests/behaviour")
    done = subprocess.run(argv, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=300, check=False)
    run = run_id(done.stdout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert labelled(docker_client, run) == [], f"left behind by run {run}"


def test_ctrl_c_mid_run_leaves_nothing_labelled(docker_client):
    child = subprocess.Popen(
        child_argv("-n", "2", "tests/behaviour"),
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        head = ""
        assert child.stdout is not None
        while "docker run id" not in head and child.poll() is None:
            head += child.stdout.readline()
        run = run_id(head)
        until(
            lambda: (
                child.poll() is not None or sum(n.startswith("container") for n in labelled(docker_client, run)) >= 2
            ),
            timeout=60,
            what=f"run {run} starting its containers",
            interval=0.2,
        )
        assert child.poll() is None, f"run {run} ended before it started its containers"
        os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        rest, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    assert "KeyboardInterrupt" in rest, rest[-3000:]
    assert labelled(docker_client, run) == [], f"left behind by run {run} after Ctrl-C:\n{rest[-3000:]}"


def test_sweep_removes_only_what_dead_owners_left(docker_client, docker_backend):
    image = docker_client.containers.get(docker_backend.client_host.container_id).image.id
    gone = subprocess.Popen(["true"])
    gone.wait()
    mine = dockerlabels.owner_labels("sweep-test")
    owners = {
        "dead": {**mine, dockerlabels.PID: str(gone.pid)},
        "live": mine,
        "elsewhere": {**mine, dockerlabels.HOST: "another-machine", dockerlabels.PID: str(gone.pid)},
    }
    suffix = os.urandom(3).hex()
    made = {
        who: docker_client.containers.create(image, name=f"echolab-sweep-{who}-{suffix}", labels=labels)
        for who, labels in owners.items()
    }
    network = docker_client.networks.create(f"echolab-sweep-dead-{suffix}", labels=owners["dead"])
    said: list[str] = []
    try:
        dockerlabels.sweep(docker_client, said.append)
        left = {c.name for c in docker_client.containers.list(all=True, filters={"name": f"echolab-sweep-.*-{suffix}"})}
        assert left == {made["live"].name, made["elsewhere"].name}, said
        assert not docker_client.networks.list(names=[network.name]), f"stale network kept; the sweep said {said}"
    finally:
        for thing in [*made.values(), network]:
            with contextlib.suppress(docker.errors.NotFound):  # the sweep's, as it should be
                thing.remove()


@pytest.mark.parametrize("labels", [{}, {dockerlabels.RUN: "by-hand"}])
def test_owner_of_something_made_by_hand_is_never_judged_dead(labels):
    assert dockerlabels.owner_alive(labels)


def test_a_start_that_fails_on_a_taken_name_leaves_the_other_owners_container(docker_client, docker_backend):
    """The removal by name arranged before a create must not remove a container someone else made."""
    image = docker_client.containers.get(docker_backend.client_host.container_id).image.id
    factory = ContainerFactory(docker_client.api, "name-clash-test", {"server": image, "client": image})
    name = f"echolab-name-clash-{uuid.uuid4().hex[:8]}"
    labels = {**dockerlabels.owner_labels("someone-else"), dockerlabels.PID: "1"}  # alive: never swept
    other = docker_client.containers.create(image, ["sleep", "60"], name=f"{name}-server", labels=labels)
    try:
        factory.base = name
        with pytest.raises(Exception), ExitStack() as stack:  # noqa: B017, PT011 - the SDK's error for a taken name
            factory.start(stack, "server", image, idle=True)
        assert docker_client.api.inspect_container(other.id)["Id"] == other.id
    finally:
        other.remove(force=True)
