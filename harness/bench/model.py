"""What a bench run produces: figures (each with its reference and ratio) and the issue's targets."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Union

Extra = Union[float, int, str, bool, None]


@dataclass
class Figure:
    """One measured quantity for one subject (a server, or a harness case), the median of its rounds."""

    section: str  # "rtt", "stream", "rps", "memory", "harness"
    metric: str  # e.g. "p50", "mb_per_s", "rps@10", "peak_rss", "suite wall time"
    subject: str  # a server's name, or a harness case such as "local, --wire on"
    unit: str
    better: str  # "lower" or "higher"
    #: The subject whose figure (same section and metric unless ``reference_metric``) is 1.00x.
    reference: str | None = None
    reference_metric: str | None = None
    samples: list[float] = field(default_factory=list)
    ratio: float | None = None
    note: str = ""
    #: Why there is no value: a missing tool, a failed run, --quick.
    skipped: str | None = None
    #: The bench's own check failed (a run ended otherwise than it must): no value, and said so.
    error: str | None = None
    extra: dict[str, Extra] = field(default_factory=dict)
    #: Per round: (the generator's, the server's) CPU use in percent of one core over the window.
    cpu: list[tuple[float, float]] = field(default_factory=list)

    @property
    def cpu_pct(self) -> tuple[float, float] | None:
        if not self.cpu:
            return None
        return statistics.median(g for g, _ in self.cpu), statistics.median(s for _, s in self.cpu)

    @property
    def value(self) -> float | None:
        return statistics.median(self.samples) if self.samples and self.skipped is None and self.error is None else None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        if self.skipped is not None:
            return "skipped"
        return "ok" if self.samples else "no data"

    def as_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "metric": self.metric,
            "subject": self.subject,
            "value": self.value,
            "unit": self.unit,
            "better": self.better,
            "reference": self.reference,
            "reference_metric": self.reference_metric or (self.metric if self.reference else None),
            "ratio": self.ratio,
            "samples": self.samples,
            "status": self.status,
            "reason": self.error or self.skipped,
            "note": self.note,
            "extra": self.extra,
            "cpu_pct": dict(zip(("generator", "server"), self.cpu_pct)) if self.cpu_pct else None,
        }


class Figures:
    """All figures of a run, found by (section, metric, subject)."""

    def __init__(self) -> None:
        self.items: list[Figure] = []

    def add(self, figure: Figure) -> Figure:
        self.items.append(figure)
        return figure

    def get(self, section: str, metric: str, subject: str) -> Figure | None:
        for f in self.items:
            if (f.section, f.metric, f.subject) == (section, metric, subject):
                return f
        return None

    def value(self, section: str, metric: str, subject: str) -> float | None:
        f = self.get(section, metric, subject)
        return f.value if f else None

    def ratio(self, section: str, metric: str, subject: str, reference: str) -> float | None:
        """``subject`` over ``reference``. Measured in the same rounds, they are paired: the median of
        the rounds' ratios, so a round in which the whole machine was slow cancels out."""
        f, ref = self.get(section, metric, subject), self.get(section, metric, reference)
        if f is None or ref is None or f.value is None or not ref.value:
            return None
        if len(f.samples) == len(ref.samples) > 1 and all(ref.samples):
            return statistics.median(a / b for a, b in zip(f.samples, ref.samples))
        return f.value / ref.value

    def compute_ratios(self) -> None:
        for f in self.items:
            if f.reference is not None:
                f.ratio = self.ratio(f.section, f.metric, f.subject, f.reference)


@dataclass
class Target:
    """One of the issue's targets, evaluated from this run's ratios."""

    text: str
    status: str  # "met", "missed", "not measured"
    detail: str
    #: How far from the bound, in percent of the bound (positive: missed by that much).
    miss_pct: float | None = None
    #: When missed: what limits it, from this run's figures.
    why: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.text,
            "status": self.status,
            "detail": self.detail,
            "miss_pct": self.miss_pct,
            "why": self.why,
        }
