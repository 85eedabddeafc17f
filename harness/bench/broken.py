"""How quickly the verdict on a broken server arrives: the behaviour suite against each deliberately
broken server of tests/selftest/broken_server.py, next to the same suite on the reference server.

Most runs of echolab are on broken servers (issue 9: at most 2x the reference on the same backend).
Each round runs the reference server and every broken one on each backend, in an order rotated from
round to round; a ratio is the median of the rounds' ratios. Each run must end as the self-tests
require (exit 1 and ``VERDICT: FAIL - broken: ...``, or exit 0 and ``VERDICT: PASS`` for a correct
but odd server); one that does not is a bench error, shown instead of its time. On docker the broken
server runs from an image of its own, as a student brings one with ``--server-image``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from harness.bench import suite
from harness.bench.model import Figure, Figures

Say = Callable[[str], None]
SECTION = "broken"
METRIC = "suite wall time"
REFERENCE = "reference"
#: Each must fail the suite: exit status 1, the last verdict line ``FAIL - broken: ...``.
DEFECTS = (
    "drop-last-byte",
    "first-chunk-only",
    "stop-at-64k",
    "no-fin",
    "reset-on-close",
    "ignores-backlog",
    "one-client",
    "dies-on-reset",
)
#: Correct but odd: must pass. One send() per byte makes the largest captures a correct server can.
CORRECT = ("one-byte-writes",)
QUICK = ("drop-last-byte", "no-fin")
#: A round runs the suite 2 x 10 times, some 5 minutes on two cores: fewer rounds than the servers'.
ROUNDS = 3
FAIL = "VERDICT: FAIL - broken: "
PASS = "VERDICT: PASS"
IN_IMAGE = "/opt/selftest/broken_server.py"
IMAGE_LABELS = {"org.echolab.run": "test-image"}  # as the self-tests' broken images


def subject(backend: str, server: str) -> str:
    return f"{backend} {server}"


def _split(f: Figure) -> tuple[str, str]:
    backend, server = f.subject.split(" ", 1)
    return backend, server


def declare(figs: Figures, servers: tuple[str, ...], skipped: dict[str, str | None]) -> None:
    """The reference and ``servers`` on each backend; a backend in ``skipped`` gets its rows with the reason."""
    for backend in ("local", "docker"):
        for server in (REFERENCE, *servers):
            expected = "exit 1, FAIL" if server in DEFECTS else "exit 0, PASS"
            figs.add(
                Figure(
                    SECTION,
                    METRIC,
                    subject(backend, server),
                    "s",
                    "lower",
                    reference=subject(backend, REFERENCE),
                    skipped=skipped.get(backend),
                    extra={"backend": backend, "server": server, "expected": expected},
                )
            )


def measure(figs: Figures, root: Path, rounds: int, say: Say) -> None:
    """Every declared run, ``rounds`` times, the order rotated per round."""
    rows: dict[str, list[Figure]] = {}
    for f in figs.items:
        if f.section == SECTION and f.skipped is None:
            rows.setdefault(_split(f)[0], []).append(f)
    with ExitStack() as stack:
        image = None
        if "docker" in rows:
            try:
                image = stack.enter_context(_broken_image(root, say))
            except Exception as exc:  # no daemon, no base image: the docker rows say so, local goes on
                reason = f"no broken-server image: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                say(f"harness: docker broken-server rows skipped: {reason}")
                for f in rows.pop("docker"):
                    f.skipped = reason
        for k in range(rounds):
            for figures in rows.values():
                turn = k % len(figures)
                for f in figures[turn:] + figures[:turn]:
                    if f.error is None:
                        _run(f, root, image, f"round {k + 1}/{rounds}", say)


def _run(f: Figure, root: Path, image: str | None, tag: str, say: Say) -> None:
    backend, server = _split(f)
    try:
        run = suite.run_suite(root, backend, "on", say, *_server_args(root, backend, server, image))
    except subprocess.TimeoutExpired:
        f.error = f"{tag}: the suite did not finish within {suite.SUITE_TIMEOUT:g} s"
        say(f"harness: ERROR {f.subject}: {f.error}")
        return
    status, verdict = (1, FAIL) if server in DEFECTS else (0, PASS)
    if run.status != status or not run.verdict.startswith(verdict):
        f.error = (
            f"{tag}: exit {run.status}, {run.verdict or 'no VERDICT line'} ({run.summary}); "
            f"expected exit {status} and {verdict.strip()}..."
        )
        say(f"harness: ERROR {f.subject}: {f.error}")
        return
    f.samples.append(run.seconds)
    found = run.verdict[len(FAIL) :] if verdict == FAIL else ""
    seen = [b for b in str(f.extra.get("broken") or "").split(" | ") if b]
    f.extra.update(
        exit_status=run.status,
        verdict=run.verdict,
        summary=run.summary,
        # Differing rounds are all kept: a verdict that changes from run to run is worth seeing.
        broken=" | ".join(dict.fromkeys([*seen, found])) if found else None,
    )
    say(f"harness: {tag} {f.subject}: {run.seconds:.1f} s, {run.verdict} ({run.summary})")


def _server_args(root: Path, backend: str, server: str, image: str | None) -> list[str]:
    """The suite's arguments for ``server``: none for the reference; else the broken server's
    command, on docker from ``image`` (which holds it at IN_IMAGE)."""
    if server == REFERENCE:
        return []
    if backend == "docker":
        assert image is not None
        command = f"python3 {IN_IMAGE} {server} --port {{port}} --backlog {{backlog}}"
        return ["--server-image", image, "--server-cmd", command]
    program = [sys.executable, str(broken_server(root)), server]
    return ["--server-cmd", shlex.join(program) + " --port {port} --backlog {backlog}"]


def broken_server(root: Path) -> Path:
    return root / "tests" / "selftest" / "broken_server.py"


@contextmanager
def _broken_image(root: Path, say: Say) -> Iterator[str]:
    """echolab's server image plus broken_server.py, removed at the end (also on Ctrl-C or a failure);
    then whatever a suite killed outright left behind is swept."""
    from harness.backends.docker import containers, images
    from harness.backends.docker import labels as dockerlabels

    client = containers.connect()
    with ExitStack() as stack:
        stack.callback(client.close)
        stack.callback(dockerlabels.sweep, client, say)
        base = images.ensure_images(client.api, root, say)["server"]
        tag = f"echolab-bench-broken:{os.getpid()}"
        say(f"harness: building {tag} (FROM {base}, plus broken_server.py at {IN_IMAGE})")
        yield stack.enter_context(
            images.derived_image(client.api, base, {IN_IMAGE: broken_server(root)}, tag, IMAGE_LABELS)
        )
