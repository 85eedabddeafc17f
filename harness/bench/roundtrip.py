"""What one probe costs the harness: a refused connect() run on a host, through its agent or, as before
the agent, as a program of its own (``docker exec``, a local ``python3 probe.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from harness.backends.base import Host
from harness.backends.local import LocalHost
from harness.bench.model import Figure, Figures

METRIC = "probe round trip"
REPS = 30
Say = Callable[[str], None]


def declare(figs: Figures, skipped: dict[str, str | None]) -> list[Figure]:
    rows = []
    for subject, note, reference in (
        ("docker agent", "a connect probe through the client container's agent", "docker exec"),
        ("docker exec", "the same probe as its own docker exec of probe.py (before the agent)", "docker exec"),
        ("local agent", "a connect probe through this machine's agent", "local process"),
        ("local process", "the same probe as its own python3 probe.py (before the agent)", "local process"),
    ):
        skip = skipped.get(subject.split()[0])
        rows.append(figs.add(Figure("harness", METRIC, subject, "ms", "lower", reference, note=note, skipped=skip)))
    return rows


def _time(host: Host, reps: int) -> list[float]:
    """ms per refused connect() from ``host`` to a closed port of its own."""
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        result = host.probe("connect", host=host.address, port=1, timeout=2.0)
        samples.append(1000 * (time.perf_counter() - started))
        if result.get("outcome") != "refused":
            raise RuntimeError(f"a connect to port 1 of {host.label} was not refused: {result}")
    return samples


def _both(host: Host, agent_fig: Figure, process_fig: Figure, reps: int) -> None:
    agent = host.agent
    assert agent is not None, f"no agent on {host.label}"
    agent_fig.samples += _time(host, reps)
    host.agent = None  # as before the agent: a program per probe
    try:
        process_fig.samples += _time(host, reps)
    finally:
        host.agent = agent


def measure(figs: Figures, root: Path, say: Say, docker_skipped: str | None) -> None:
    rows = {f.subject: f for f in declare(figs, {"docker": docker_skipped})}
    local = LocalHost()
    with ExitStack() as stack:
        local.start_agent()
        stack.callback(local.close)
        _both(local, rows["local agent"], rows["local process"], REPS)
    if docker_skipped is None:
        try:
            _docker(root, rows, say)
        except Exception as exc:  # the row says why
            rows["docker agent"].skipped = rows["docker exec"].skipped = f"{type(exc).__name__}: {exc}"[:200]
    for f in rows.values():
        if f.value is not None:
            say(f"harness: {METRIC}, {f.subject}: {f.value:.1f} ms (median of {len(f.samples)})")


def _docker(root: Path, rows: dict[str, Figure], say: Say) -> None:
    from harness.backends.docker import containers, images
    from harness.backends.docker import labels as dockerlabels
    from harness.backends.docker.host import DockerHost

    client = containers.connect()
    with ExitStack() as stack:
        stack.callback(client.close)
        tags = images.ensure_images(client.api, root, say)
        factory = containers.ContainerFactory(client.api, dockerlabels.current_run(), tags)
        stack.enter_context(factory.network())
        container = factory.start(stack, "bench-probe", tags["client"])
        host = DockerHost(client.api, container, factory.network_name, "client container")
        host.start_agent()
        stack.callback(host.close)
        _both(host, rows["docker agent"], rows["docker exec"], REPS)
