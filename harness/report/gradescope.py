"""The verdict as a grader's results.json, in Gradescope's autograder format
(gradescope-autograders.readthedocs.io, "Autograder Specifications": top-level ``score``,
``execution_time``, ``output``, ``tests[]`` with ``name``, ``score``, ``max_score``, ``status``,
``output``, ``visibility``).

One entry per behaviour: full points when it holds, none when it is BROKEN or could not be judged
(a grade never rests on a check that did not run). A behaviour the weights name but the run did
not judge is listed with no points, so the maximum is the same for every submission.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.report.model import Run
from harness.verdict import Record

#: Without --weights, each behaviour is worth this much.
DEFAULT_POINTS = 1.0


def results(run: Run, weights: dict[str, float] | None) -> dict[str, Any]:
    """The results.json document for a judged run."""
    tests = []
    judged = set()
    for name, state, records in run.behaviours:
        judged.add(name)
        points = DEFAULT_POINTS if weights is None else weights.get(name, 0.0)
        tests.append(
            {
                "name": name,
                "score": points if state == "ok" else 0.0,
                "max_score": points,
                "status": "passed" if state == "ok" else "failed",
                "output": _output(state, records, run),
                "visibility": "visible",
            }
        )
    for name, points in (weights or {}).items():
        if name not in judged:
            tests.append(
                {
                    "name": name,
                    "score": 0.0,
                    "max_score": points,
                    "status": "failed",
                    "output": "not run: no test of this behaviour ran for this submission",
                    "visibility": "visible",
                }
            )
    return {
        "score": sum(test["score"] for test in tests),
        "execution_time": round(run.seconds),
        "output": "\n".join(text for text, _ in run.lines),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def _output(state: str, records: list[Record], run: Run) -> str:
    """What a student reads under the behaviour: each test's outcome, and the evidence of those
    that failed or were not judged."""
    parts = [f"{state}: {len(records)} test(s)"]
    for record in records:
        parts.append(f"\n{record.outcome}: {record.name}")
        if record.outcome == "not judged":
            parts.append(f"  {record.reason}")
        elif record.outcome == "failed":
            evidence = run.evidence(record).evidence or record.reason
            parts.append("  " + evidence.replace("\n", "\n  "))
    return "\n".join(parts)


def write_results(run: Run, path: Path, weights: dict[str, float] | None) -> Path:
    path.write_text(json.dumps(results(run, weights), indent=2) + "\n", encoding="utf-8")
    return path
