"""The bench's three outputs: the table on the terminal, a JSON file for machines, a PNG chart.

Every figure is shown with its ratio to the figure's reference in the same run (round trip: the
minimal C echo; stream: iperf3; requests/s and memory: uvloop; harness: the local suite, the bare
spawn, a bare ``docker run --rm``; broken servers: the reference server on the same backend), then
the issues' targets, then the load generator's evidence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.bench import broken, render
from harness.bench.model import Figure, Figures, Target

SECTIONS = (
    ("rtt", "ROUND TRIP, 64-byte messages, one connection (x = ratio to minimal-c; lower is better)"),
    (
        "stream",
        "ONE STREAM, echoed MB/s, every byte checked (x = share of iperf3's one-way loopback ceiling; "
        "CPU = generator/server, % of one core; iperf3: sender/receiver)",
    ),
    (
        "rps",
        "REQUESTS/S, 1 KiB messages, closed loop, concurrent servers (x = ratio to uvloop; CPU = generator/server)",
    ),
    (
        "memory",
        "MEMORY (RSS including forked children, at 100 connections for concurrent servers; x = ratio to uvloop)",
    ),
    ("harness", "HARNESS (x = ratio to the row's reference)"),
    (
        broken.SECTION,
        "BROKEN SERVERS: behaviour suite wall time (pytest -n auto, --wire on) per backend, and its verdict "
        "(x = ratio to the reference server on the same backend)",
    ),
)
FORMATS = {"us": "{:.1f}", "MB/s": "{:,.0f}", "req/s": "{:,.0f}", "MB": "{:.1f}", "s": "{:.1f}", "ms": "{:.0f}"}


def _fmt(value: float | None, unit: str) -> str:
    return "-" if value is None else FORMATS.get(unit, "{:.2f}").format(value)


def _ratio(r: float | None) -> str:
    return "" if r is None else f"{r:.2f}x"


def _subjects(figs: list[Figure]) -> list[str]:
    return list(dict.fromkeys(f.subject for f in figs))


def _cpu(f: Figure | None) -> str:
    cpu = f.cpu_pct if f else None
    return f"{cpu[0]:.0f}/{cpu[1]:.0f}%" if cpu else ""


def _server_section(title: str, figs: list[Figure]) -> list[str]:
    metrics = list(dict.fromkeys(f.metric for f in figs))
    unit = figs[0].unit
    with_cpu = any(f.cpu for f in figs)
    head = f"  {'server':20}" + "".join(f"{m + ' ' + unit:>16}{'x':>7}" for m in metrics)
    if with_cpu:  # generator's / server's CPU, percent of one core, median of the rounds
        head += "".join(f"{'CPU gen/srv' if len(metrics) == 1 else m + ' CPU':>14}" for m in metrics)
    lines = [title, head]
    for subject in _subjects(figs):
        row = {f.metric: f for f in figs if f.subject == subject}
        skipped = next((f.skipped for f in row.values() if f.skipped), None)
        if skipped and all(f.value is None for f in row.values()):
            lines.append(f"  {subject:20}  skipped: {skipped}")
            continue
        cells = "".join(
            f"{_fmt(row[m].value, unit) if m in row else '':>16}{_ratio(row[m].ratio) if m in row else '':>7}"
            for m in metrics
        )
        if with_cpu:
            cells += "".join(f"{_cpu(row.get(m)):>14}" for m in metrics)
        notes = "; ".join(dict.fromkeys(f.note or (f"failed: {f.skipped}" if f.skipped else "") for f in row.values()))
        lines.append(f"  {subject:20}{cells}  {notes.strip('; ')}".rstrip())
    return lines


def _harness_section(title: str, figs: list[Figure]) -> list[str]:
    lines = [title, f"  {'what':46}{'value':>9}  {'reference':24}{'x':>7}"]
    for f in figs:
        label = f"{f.metric}: {f.subject}"
        if f.skipped:
            lines.append(f"  {label:46}  skipped: {f.skipped}")
            continue
        value = f"{_fmt(f.value, f.unit)} {f.unit}"
        ref = "" if f.reference == f.subject else (f.reference or "")
        lines.append(f"  {label:46}{value:>9}  {ref:24}{_ratio(f.ratio) if ref else '':>7}  {f.note}".rstrip())
    return lines


def _broken_section(title: str, figs: list[Figure]) -> list[str]:
    rounds = max((len(f.samples) for f in figs), default=0)
    lines = [
        title,
        f"  {rounds} interleaved round(s) in rotated order: wall time is the median, x the median of the rounds' "
        "ratios; the verdict and pytest's summary are the last round's",
        f"  {'backend':8}{'server':18}{'wall time':>10}{'x':>7}  verdict",
    ]
    for f in figs:
        backend, server = str(f.extra["backend"]), str(f.extra["server"])
        if f.error or f.skipped:
            what = f"ERROR (bench): {f.error}" if f.error else f"skipped: {f.skipped}"
            lines.append(f"  {backend:8}{server:18}  {what}")
            continue
        found = f"FAIL - broken: {f.extra['broken']}" if f.extra.get("broken") else "PASS"
        value = f"{_fmt(f.value, f.unit)} {f.unit}"
        ratio = _ratio(f.ratio) if f.reference != f.subject else ""
        lines.append(f"  {backend:8}{server:18}{value:>10}{ratio:>7}  {found} ({f.extra.get('summary')})")
    return lines


def table(run: dict[str, Any], figs: Figures, targets: list[Target], generator: dict[str, Any]) -> str:
    m = run["machine"]
    lines = [
        f"echolab bench {run['started']}  ({'quick' if run['quick'] else 'full'}, {run['plan']['rounds']} "
        f"interleaved round(s), medians; {run['duration_s']:.0f} s)",
        f"machine: Linux {m['kernel']}, {m['cpus']} CPUs, Python {m['python']}, load average at start "
        f"{m['loadavg_start']}",
        f"placement: {run['placement']}",
        "x: the median of the per-round ratios (each round measures a figure and its reference together),",
        "   so it can order servers differently from their medians when the machine's speed drifted",
        "",
    ]
    for section, title in SECTIONS:
        in_section = [f for f in figs.items if f.section == section]
        if not in_section:
            continue
        renderer = {"harness": _harness_section, broken.SECTION: _broken_section}.get(section, _server_section)
        lines += [*renderer(title, in_section), ""]
    lines.append("TARGETS (issues 6 and 9)")
    for t in targets:
        status = {"met": "met", "missed": "MISSED", "not measured": "n/m"}[t.status]
        by = f" by {t.miss_pct:.1f}%" if t.miss_pct else ""
        lines.append(f"  {status + by:18} {t.text}")
        lines.append(f"  {'':18}   {t.detail}")
        if t.why:
            lines.append(f"  {'':18}   what bounds it: {t.why}")
    lines += ["", "LOAD GENERATOR (is it the limit?)", f"  how: {generator['how']}"]
    for key, g in generator.items():
        if not key.startswith("conns_"):
            continue
        lines.append(
            f"  {key[6:]} conns: fastest {g['fastest']} {g['fastest_rps']:,.0f} req/s (generator "
            f"{g['generator_cpu_pct_at_fastest']:.0f}% of a core, server {g['server_cpu_pct_at_fastest']:.0f}%), "
            f"slowest {g['slowest']} {g['slowest_rps']:,.0f}; generator {g['generator_cpu_us_per_request']:.1f} us "
            f"CPU per request, capacity ~{g['generator_capacity_rps']:,.0f} req/s"
        )
    for line in generator.get("verdict", []):
        lines.append(f"  {line}")
    return "\n".join(lines) + "\n"


def write_json(
    path: Path, run: dict[str, Any], figs: Figures, targets: list[Target], generator: dict[str, Any]
) -> None:
    doc = {
        **run,
        "figures": [f.as_json() for f in figs.items],
        "targets": [t.as_json() for t in targets],
        "generator": generator,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


def write_png(path: Path, run: dict[str, Any], figs: Figures) -> None:
    """Eight panels, one per kind of figure; a skipped figure is simply absent from its panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(22, 9.5))
    panels = [
        ("rtt", ("p50", "p99"), "round trip, 64 B (us, lower is better)"),
        ("stream", ("mb_per_s",), "one stream, byte-exact (MB/s)"),
        ("rps", tuple(f"rps@{n}" for n in run["plan"]["conns"]), "requests/s, 1 KiB, closed loop"),
        ("memory", ("peak_rss",), "peak RSS incl. children (MB)"),
        ("harness", ("suite wall time", "suite without test_wire.py"), "behaviour suite wall time (s)"),
        ("harness", ("ready",), "server start-to-ready (ms)"),
    ]
    for ax, (section, metrics, title) in zip(axes.flat, panels):
        chosen = [f for f in figs.items if f.section == section and f.metric in metrics and f.value is not None]
        subjects = _subjects(chosen)
        series = {
            metric: [
                next((f.value or 0.0 for f in chosen if f.subject == s and f.metric == metric), 0.0) for s in subjects
            ]
            for metric in metrics
        }
        _bars(ax, title, subjects, series)
    _broken_panel(axes.flat[6], figs)
    _render_panel(axes.flat[7], figs)
    fig.suptitle(f"echolab bench {run['started']} ({'quick' if run['quick'] else 'full'})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _bars(ax: Any, title: str, subjects: list[str], series: dict[str, list[float]]) -> None:
    """Grouped bars: one group per subject, one bar per series."""
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(subjects))]
        ax.bar(xs, values, width, label=label)
    ax.set_xticks(range(len(subjects)))
    ax.set_xticklabels(subjects, rotation=35, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1 and subjects:
        ax.legend(fontsize=8)
    if not subjects:
        ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center", transform=ax.transAxes)


def _broken_panel(ax: Any, figs: Figures) -> None:
    """Each broken server's suite over the reference's, one bar per backend, against the 2x target."""
    chosen = [f for f in figs.items if f.section == broken.SECTION and f.ratio is not None]
    servers = list(dict.fromkeys(str(f.extra["server"]) for f in chosen))
    backends = list(dict.fromkeys(str(f.extra["backend"]) for f in chosen))
    series = {
        b: [
            next((f.ratio or 0.0 for f in chosen if f.extra["backend"] == b and f.extra["server"] == s), 0.0)
            for s in servers
        ]
        for b in backends
    }
    _bars(ax, "suite on broken servers, x reference server (target <= 2x)", servers, series)
    if servers:
        ax.axhline(2.0, color="red", linestyle="--", linewidth=1)
        ax.legend(fontsize=8)  # which backend, even when only one was measured


def _render_panel(ax: Any, figs: Figures) -> None:
    """What a 1 MiB echo's evidence costs to render, against the 1 s target (for the failing one)."""
    chosen = [f for f in figs.items if f.section == "harness" and f.metric == render.METRIC and f.value is not None]
    _bars(
        ax,
        "evidence render, 1 MiB echo (ms; target < 1 s failing)",
        _subjects(chosen),
        {"ms": [f.value or 0.0 for f in chosen]},
    )
    if chosen:
        ax.axhline(1000.0, color="red", linestyle="--", linewidth=1)
        ax.set_yscale("log")  # milliseconds next to seconds
        for i, f in enumerate(chosen):
            ax.annotate(f"{f.value:,.0f} ms", (i, f.value or 1.0), ha="center", va="bottom", fontsize=8)
