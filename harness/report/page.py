"""The HTML report: one self-contained page (inline CSS and SVG, nothing fetched) with the verdict
per behaviour, each test's outcome and evidence, and a ladder diagram beside the packet table for
every connection it captured, each linked to its pcap.

Rendering is linear in the packets: each pcap is read once, each connection drawn once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import jinja2

from harness.report.ladder import DEFS, arrows, lab_arrows, svg
from harness.report.model import Exhibit, Run
from harness.verdict import Record
from harness.wire.pcap import read_pcap
from harness.wire.table import connection_table
from harness.wire.tcp import connections, lab_ladder, ladder_problem

PAGE = "index.html"


@dataclass
class Drawn:
    """One captured connection as the page shows it."""

    title: str
    ladder: str  # inline SVG
    table: str
    pcap: str  # relative to the page
    lab: str | None = None  # the lab's own ladder beside it (SVG), and how its packets pair up
    pairing: str = ""
    lab_problem: str | None = None


def draw(test: Exhibit, page_dir: Path) -> tuple[list[Drawn], list[str]]:
    """Every connection of the test's captures, and a line for each capture that could not be read."""
    drawn, problems = [], []
    for path, port in test.captures:
        link = os.path.relpath(path, page_dir)
        try:
            segments = read_pcap(path)
        except (OSError, ValueError) as exc:
            problems.append(f"capture {link} could not be read: {exc}")
            continue
        conns = connections(segments, port)
        if not conns:
            problems.append(f"capture {link}: no packet of port {port}")
        for conn in conns:
            client, server = (f"{host}:{port}" for host, port in (conn.client, conn.server))
            item = Drawn(
                title=f"{client} \u2192 {server}, {len(conn.segments)} segment(s)",
                ladder=svg(arrows(conn), client, server),
                table=connection_table(conn),
                pcap=link,
            )
            if test.lab_ladder is not None:
                steps = lab_ladder(test.lab_ladder)
                item.lab = svg(lab_arrows(steps), "", "")
                item.lab_problem, item.pairing = ladder_problem(conn, steps)
            drawn.append(item)
    return drawn, problems


def write_page(run: Run, directory: Path) -> Path:
    """Write the report into ``directory``; its path."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "."),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    template = environment.get_template("page.html.j2")
    target = directory / PAGE

    def drawn(record: Record) -> tuple[list[Drawn], list[str]]:
        return draw(run.evidence(record), directory)

    # The template draws one test at a time (a generator): the page never holds every ladder at once.
    with open(target, "w", encoding="utf-8") as out:
        for chunk in template.generate(run=run, drawn=drawn, defs=DEFS):
            out.write(chunk)
    return target
