"""grader/ end to end: the autograder image built from its zip's files, run on a submitted server.c
the way Gradescope runs it, leaves a results.json whose scores add up to the weights' total."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from harness.cmdline import OPTIONS
from harness.fixtures import unavailable

ROOT = Path(__file__).resolve().parents[2]
GRADER = ROOT / "grader"
LABEL = "org.echolab.run"

pytestmark = pytest.mark.slow_harness


@pytest.fixture(scope="module")
def docker(pytestconfig):
    if "docker" not in pytestconfig.stash[OPTIONS].backends:
        pytest.skip("the grader runs in a container: --backend docker (make test, where an engine answers) runs it")
    from harness.backends.docker.containers import connect

    try:
        client = connect()
    except Exception as exc:
        unavailable(f"backend docker unavailable: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def grader_image(docker, tmp_path_factory):
    """The autograder image (grader/Dockerfile over grader/build_zip.py --unpacked), removed after."""
    context = tmp_path_factory.mktemp("grader") / "context"
    subprocess.run([sys.executable, str(GRADER / "build_zip.py"), "--unpacked", str(context), "--wheels"], check=True)
    tag = f"echolab-grader-test:{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}"
    try:
        docker.images.build(path=str(context), tag=tag, labels={LABEL: "grader-test"}, rm=True, forcerm=True)
        yield tag
    finally:
        with contextlib.suppress(Exception):  # never built: nothing to remove
            docker.images.remove(tag, force=True)


def grade(docker, image: str, server_c: bytes, directory: Path) -> tuple[dict, str]:
    """Run the autograder as Gradescope does on a submission of one server.c: (results.json, its log)."""
    submission, results = directory / "submission", directory / "results"
    submission.mkdir(parents=True)
    results.mkdir()
    (submission / "server.c").write_bytes(server_c)
    volumes = {
        str(submission): {"bind": "/autograder/submission", "mode": "ro"},
        str(results): {"bind": "/autograder/results", "mode": "rw"},
    }
    container = docker.containers.run(image, volumes=volumes, labels={LABEL: "grader-test"}, detach=True)
    try:
        status = container.wait(timeout=600)["StatusCode"]
        log = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert status == 0, log[-4000:]
    assert (results / "results.json").is_file(), log[-4000:]
    return json.loads((results / "results.json").read_text()), log


def test_the_autograder_grades_a_submitted_server_c(docker, grader_image, tmp_path):
    weights = tomllib.loads((GRADER / "weights.toml").read_text())

    found, log = grade(docker, grader_image, b"int main(void) { return missing; }\n", tmp_path / "broken")
    assert found["score"] == 0 and "does not compile" in found["output"] and "missing" in found["output"], log
    assert {test["name"] for test in found["tests"]} == set(weights)

    found, log = grade(docker, grader_image, (ROOT / "echo" / "server.c").read_bytes(), tmp_path / "reference")
    tests = {test["name"]: test for test in found["tests"]}
    assert set(tests) == set(weights), log[-3000:]
    assert all(tests[name]["max_score"] == points for name, points in weights.items())
    assert found["score"] == sum(test["score"] for test in found["tests"])
    failed = {name: test["output"] for name, test in tests.items() if test["status"] != "passed"}
    assert found["score"] == sum(weights.values()), f"the reference server lost points: {failed}\n{log[-3000:]}"
    assert (tmp_path / "reference" / "results" / "report" / "index.html").is_file()
