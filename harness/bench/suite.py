"""The harness's own figures: wall time of the behaviour suite per backend and with capture on and
off, and how long a server takes to be ready on each backend against the bare minimum."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from harness.backends.docker.labels import RUN_ENV
from harness.backends.local import LocalHost
from harness.bench.model import Figure, Figures
from harness.bench.servers import HOST
from harness.server import ServerSpec, start_server
from harness.wait import until

Say = Callable[[str], None]
SUITE_TIMEOUT = 900.0
INTERRUPT_GRACE = 30.0
SUMMARY = re.compile(r"\d+ (passed|failed|error)")


SUITE = "suite wall time"
#: The same tests with capture on and off: the wire-only tests (test_wire.py) are skipped with
#: --wire off, so the whole suite's two times differ by more than what capture costs.
SAME_TESTS = "suite without test_wire.py"
WIRE_ONLY = "tests/behaviour/test_wire.py"


def suite_subject(backend: str, wire: str) -> str:
    return f"{backend} --wire {wire}"


def declare_suites(figs: Figures, skipped: dict[str, str | None]) -> None:
    """The whole suite per backend and --wire (docker against local with the same --wire), and the
    tests both --wire settings run (on against off: what capture costs)."""
    for backend in ("local", "docker"):
        for wire in ("off", "on"):
            subject = suite_subject(backend, wire)
            ref = suite_subject("local", wire) if backend == "docker" else subject
            figs.add(Figure("harness", SUITE, subject, "s", "lower", reference=ref, skipped=skipped.get(backend)))
        for wire in ("off", "on"):
            figs.add(
                Figure(
                    "harness",
                    SAME_TESTS,
                    suite_subject(backend, wire),
                    "s",
                    "lower",
                    reference=suite_subject(backend, "off"),
                    note="capture's cost" if wire == "on" else "",
                    skipped=skipped.get(backend),
                )
            )
    figs.add(
        Figure(
            "harness",
            SUITE,
            suite_subject("ssh", "on"),
            "s",
            "lower",
            reference=suite_subject("local", "on"),
            note="against the stand-in Pi (tests/ssh/standin.py: sshd in a container), the client on this machine",
            skipped=skipped.get("ssh"),
        )
    )


@dataclass(frozen=True)
class SuiteRun:
    """One finished ``pytest tests/behaviour``: wall time, exit status, pytest's summary line and
    the last ``VERDICT:`` line of echolab's verdict ("" when there is none)."""

    seconds: float
    status: int
    summary: str
    verdict: str


def run_suite(root: Path, backend: str, wire: str, say: Say, *extra: str) -> SuiteRun:
    """``pytest tests/behaviour -n auto`` in a subprocess, ``extra`` appended to its arguments."""
    argv = [sys.executable, "-m", "pytest", "tests/behaviour", "-n", "auto", "-q", "--backend", backend, "--wire", wire]
    argv += extra
    # Run as from a terminal: not as a worker of a pytest that runs this bench (the smoke test),
    # and with a docker run id of its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != RUN_ENV}
    say(f"harness: {' '.join(argv[2:])}")
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=SUITE_TIMEOUT)
    finally:
        if proc.poll() is None:  # Ctrl-C or the timeout: the whole pytest (and its workers) goes
            _interrupt(proc)
    elapsed = time.monotonic() - started
    lines = [line for line in out.splitlines() if SUMMARY.search(line)]
    summary = lines[-1] if lines else (out.strip().splitlines() or [""])[-1]
    verdict = next((line for line in reversed(out.splitlines()) if line.startswith("VERDICT:")), "")
    return SuiteRun(elapsed, proc.returncode, summary.strip("= "), verdict)


def _interrupt(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C for the pytest's whole process group, so that it removes its containers as it does
    for a student; SIGKILL if it has not finished after INTERRUPT_GRACE seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=INTERRUPT_GRACE)  # read on: a full pipe would block its cleanup
    finally:  # also when a second Ctrl-C cuts the wait short
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def measure_suites(figs: Figures, root: Path, say: Say, rounds: int = 3) -> None:
    """Every declared suite run once per round, in the declared order and then backwards in the
    next round, so that a figure and its reference are run side by side and drift cancels out. A
    suite takes 3-10 s and one run of it varies by up to 7% here: a ratio is the median of the
    rounds' ratios (Figures.ratio), not one pair's."""
    wanted = [f for f in figs.items if f.section == "harness" and f.metric in (SUITE, SAME_TESTS) and not f.skipped]
    with ExitStack() as stack:
        ssh: list[str] = []
        for number in range(rounds):
            for f in wanted if number % 2 == 0 else reversed(wanted):
                if f.skipped:  # the stand-in could not start in an earlier round
                    continue
                backend = f.subject.split(" --wire ")[0]
                extra = ["--ignore", WIRE_ONLY] if f.metric == SAME_TESTS else []
                if backend == "ssh":
                    if not ssh:
                        try:
                            ssh = stack.enter_context(standin_options(root, say))
                        except Exception as exc:  # no stand-in here: this row says why
                            f.skipped = f"no stand-in Pi: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                            continue
                    extra += ssh
                _measure_suite(f, root, extra, say)


@contextlib.contextmanager
def standin_options(root: Path, say: Say) -> Iterator[list[str]]:
    """The stand-in Pi of the SSH tests, running until the end of the ``with``: the suite's options for it."""
    sys.path.insert(0, str(root))
    from tests.ssh.standin import ALIAS, running_standin

    with running_standin() as standin:
        say(f"harness: stand-in Pi {ALIAS} at {standin.address}")
        yield ["--ssh-host", ALIAS, "--ssh-config", str(standin.config)]


def _measure_suite(f: Figure, root: Path, extra: list[str], say: Say) -> None:
    backend, wire = f.subject.split(" --wire ")
    try:
        run = run_suite(root, backend, wire, say, *extra)
    except subprocess.TimeoutExpired:
        f.skipped = f"did not finish within {SUITE_TIMEOUT:g} s"
        return
    f.samples.append(run.seconds)
    f.extra.update(exit_status=run.status, summary=run.summary)
    if run.status != 0:
        f.note = f"the suite did not pass (exit {run.status}): {run.summary}"
    say(f"harness: {f.metric}, {f.subject}: {run.seconds:.1f} s ({run.summary})")


def _bare_local_ready(argv: list[str], port: int) -> float:
    """The floor: spawn the same server with nothing around it and poll its port tightly."""
    with ExitStack() as stack:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(proc.wait)
        stack.callback(proc.kill)

        def listening() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited before it listened on port {port}")
            text = "".join(Path(p).read_text() for p in ("/proc/net/tcp", "/proc/net/tcp6") if Path(p).exists())
            return f":{port:04X} 00000000:0000 0A" in text

        until(listening, timeout=10, what=f"{argv[0]} listening on port {port}", interval=0.0005)
        return time.monotonic() - started


def measure_local_ready(figs: Figures, impls: tuple[str, ...], reps: int, say: Say) -> None:
    """harness.server.start_server on the local backend against a bare spawn of the same program."""
    host = LocalHost()
    for impl in impls:
        spec = ServerSpec(impl)
        harness_fig = figs.add(
            Figure("harness", "ready", f"local {impl} server", "ms", "lower", reference=f"local {impl} bare spawn")
        )
        bare_fig = figs.add(
            Figure(
                "harness",
                "ready",
                f"local {impl} bare spawn",
                "ms",
                "lower",
                reference=f"local {impl} bare spawn",
                note="Popen of the same argv, port polled every 0.5 ms",
            )
        )
        host.echo_program("server", impl)  # compile (C) before anything is timed
        for _ in range(reps):
            started = time.monotonic()
            server = start_server(host, HOST, spec, backlog=3, mode="iterative", ready_timeout=10.0)
            harness_fig.samples.append(1000 * (time.monotonic() - started))
            server.stop()
            port = host.free_port()
            bare_fig.samples.append(
                1000 * _bare_local_ready(spec.argv(host, port=port, backlog=3, mode="iterative"), port)
            )
        say(
            f"harness: local {impl} server ready in {harness_fig.value:.0f} ms "
            f"(bare spawn {bare_fig.value:.0f} ms), median of {reps}"
        )


def declare_docker_ready(figs: Figures, skipped: str | None) -> tuple[Figure, Figure]:
    harness_fig = figs.add(
        Figure(
            "harness",
            "ready",
            "docker server container",
            "ms",
            "lower",
            reference="docker run --rm",
            note="container started by the backend's ContainerFactory, then the Python server in it via start_server",
            skipped=skipped,
        )
    )
    bare_fig = figs.add(
        Figure(
            "harness",
            "ready",
            "docker run --rm",
            "ms",
            "lower",
            reference="docker run --rm",
            note="`docker run --rm IMAGE true` of the server image, to completion",
            skipped=skipped,
        )
    )
    return harness_fig, bare_fig


def measure_docker_ready(figs: Figures, root: Path, reps: int, say: Say) -> None:
    """A server container made ready by the docker backend, against a bare ``docker run --rm``."""
    harness_fig, bare_fig = declare_docker_ready(figs, None)
    try:
        _docker_ready(harness_fig, bare_fig, root, reps, say)
    except Exception as exc:  # the backend is being built: whatever it raises, this part skips
        reason = f"docker backend not usable here: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        harness_fig.skipped = bare_fig.skipped = reason
        say(f"harness: docker start-to-ready skipped: {reason}")


def _docker_ready(harness_fig: Figure, bare_fig: Figure, root: Path, reps: int, say: Say) -> None:
    from harness.backends.docker import containers, images
    from harness.backends.docker import labels as dockerlabels
    from harness.backends.docker.host import DockerHost

    client = containers.connect()
    with ExitStack() as stack:
        stack.callback(client.close)
        tags = images.ensure_images(client.api, root, say)
        image = tags["server"]
        factory = containers.ContainerFactory(client.api, dockerlabels.current_run(), tags)
        stack.enter_context(factory.network())
        for rep in range(reps):
            started = time.monotonic()
            done = subprocess.run(
                ["docker", "run", "--rm", image, "true"], capture_output=True, timeout=120, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"docker run --rm {image} true: {done.stderr.decode()[-200:]}")
            bare_fig.samples.append(1000 * (time.monotonic() - started))
            with ExitStack() as one:
                started = time.monotonic()
                container = factory.start(one, f"bench-ready{rep}", image)
                host = DockerHost(client.api, container, factory.network_name, "server container")
                server = start_server(
                    host, host.address, ServerSpec("python"), backlog=3, mode="iterative", ready_timeout=30
                )
                harness_fig.samples.append(1000 * (time.monotonic() - started))
                one.callback(server.stop)
        say(
            f"harness: docker server container ready in {harness_fig.value:.0f} ms "
            f"(docker run --rm {bare_fig.value:.0f} ms), median of {reps}"
        )


def docker_unavailable() -> str | None:
    """Why the docker figures cannot be measured here, or None when a daemon answers."""
    try:
        from harness.backends.docker import containers

        containers.connect().close()
    except Exception as exc:
        return f"no docker backend: {str(exc).splitlines()[0][:160]}"
    return None
