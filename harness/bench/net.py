"""make bench under --net: the 1 MiB echo's time and throughput on the docker link under each
condition next to the clean link, and the behaviour suite's wall time under loss against clean."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from harness.bench.model import Figure, Figures
from harness.net.conditions import Conditions
from harness.server import ServerSpec, start_server
from harness.wire.table import retransmissions

Say = Callable[[str], None]
CLEAN = "clean link"
CONDITIONS = ("loss=1%", "loss=5%", "rate=10mbit", "mtu=576", "loss=5%,mtu=576")
QUICK = ("loss=5%",)
ECHO, RATE = "1 MiB echo, docker C server", "1 MiB echo MB/s"
SUITE, SUITE_LOSS = "suite, docker --wire on", "loss=5%"
MIB = 1 << 20


def declare(figs: Figures, conditions: tuple[str, ...], skipped: str | None, suite_skipped: str | None) -> None:
    for subject in (CLEAN, *conditions):
        figs.add(Figure("harness", ECHO, subject, "ms", "lower", reference=CLEAN, skipped=skipped))
        figs.add(Figure("harness", RATE, subject, "MB/s", "higher", reference=CLEAN, skipped=skipped))
    for subject in (CLEAN, SUITE_LOSS):
        skip = skipped or suite_skipped
        figs.add(Figure("harness", SUITE, subject, "s", "lower", reference=CLEAN, skipped=skip))


def measure(figs: Figures, root: Path, rounds: int, say: Say) -> None:
    """Each declared condition: a docker backend with the link so shaped, the C server, a 1 MiB
    echo per round (written and read at once), the retransmissions its capture shows."""
    echoes = {f.subject: f for f in figs.items if f.metric == ECHO and not f.skipped}
    rates = {f.subject: f for f in figs.items if f.metric == RATE}
    if echoes:
        try:
            _own_run(root, say)
        except Exception as exc:  # no daemon, an image that cannot be built
            for subject, fig in echoes.items():
                fig.error = rates[subject].error = f"{type(exc).__name__}: {str(exc)[:160]}"
            echoes = {}
    for subject, fig in echoes.items():
        try:
            seconds, resent = _echoes(root, None if subject == CLEAN else Conditions.parse(subject), rounds)
        except Exception as exc:  # a condition this kernel refuses, a backend that cannot start
            fig.error = rates[subject].error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            say(f"harness: 1 MiB echo under {subject}: {fig.error}")
            continue
        fig.samples += [1000 * s for s in seconds]
        rates[subject].samples += [MIB / 1e6 / s for s in seconds]
        fig.extra.update(retransmissions=sum(resent))
        fig.note = f"{sum(resent)} retransmission(s) in {len(resent)} echo(es)"
        say(f"harness: 1 MiB echo under {subject}: {fig.value:.0f} ms, {rates[subject].value:.1f} MB/s, {fig.note}")
    for f in [f for f in figs.items if f.metric == SUITE and not f.skipped]:
        from harness.bench.suite import SUITE_TIMEOUT, run_suite

        extra = () if f.subject == CLEAN else ("--net", f.subject)
        try:
            run = run_suite(root, "docker", "on", say, "--impl", "python", *extra)
        except subprocess.TimeoutExpired:
            f.skipped = f"did not finish within {SUITE_TIMEOUT:g} s"
            continue
        f.samples.append(run.seconds)
        if run.status != 0:
            f.error = f"the suite did not pass (exit {run.status}): {run.summary}"
        say(f"harness: {f.metric} {f.subject}: {run.seconds:.1f} s ({run.summary})")


def _own_run(root: Path, say: Say) -> None:
    """A docker run id of this process's own (and the images): the bench may run inside a pytest
    worker (the smoke test), whose run id and worker name it inherits, and containers named after
    them would collide with that worker's own, and be removed with them."""
    from harness.backends.docker.backend import DockerBackend
    from harness.options import Options

    DockerBackend.prepare(Options(backends=("docker",), rootdir=root), lambda line: None)
    say("harness: the --net figures run under a docker run id of their own")


def _echoes(root: Path, conditions: Conditions | None, rounds: int) -> tuple[list[float], list[int]]:
    from harness.backends.docker.backend import DockerBackend
    from harness.options import Options

    seconds, resent = [], []
    with DockerBackend.create(Options(backends=("docker",), rootdir=root, net=conditions)) as backend:
        server = start_server(
            backend.server_host, backend.server_address, ServerSpec("c"), backlog=3, mode="iterative", ready_timeout=30
        )
        try:
            for seed in range(rounds):
                capture = backend.server_host.start_capture(server.port)
                try:
                    result = backend.client_host.probe(
                        "exchange",
                        host=server.address,
                        port=server.port,
                        messages=[{"random": MIB, "seed": seed}],
                        lockstep=False,
                        timeout=300.0,
                    )
                finally:
                    capture.stop()
                if result.get("first_diff") is not None or result.get("received_len") != MIB:
                    raise RuntimeError(f"the 1 MiB echo was not exact: {result}")
                seconds.append(float(result["elapsed"]))
                resent.append(retransmissions(capture.segments(), server.port))
        finally:
            server.stop()
    return seconds, resent
