"""--report, --results-json and --weights: what cannot work is one line and exit 4 before anything
runs; the weights name only behaviours the suites judge."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.gate import BEHAVIOURS
from tests.unit.test_usage_errors import pytest_run  # the suite run as a user starts it

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("weights", "extra", "message"),
    [
        (None, ["--report", "{tmp}/a-file/report"], "a-file/report: cannot write there: Not a directory"),
        (None, ["--results-json", "{tmp}/a-file/results.json"], "cannot write there"),
        (None, ["--results-json", "{tmp}"], ": is a directory, not a file"),
        ('"echo fidelity" = ', ["--results-json", "{tmp}/r.json"], "not TOML"),
        ('"echo fidelty" = 10', ["--results-json", "{tmp}/r.json"], 'no behaviour "echo fidelty"; the behaviours are'),
        ('"echo fidelity" = "ten"', ["--results-json", "{tmp}/r.json"], "points are a number, 0 or more"),
        ('"echo fidelity" = 10', [], "--weights gives points for --results-json: name the results file too"),
    ],
    ids=["report-unwritable", "results-unwritable", "results-is-a-dir", "bad-toml", "unknown", "not-a-number", "alone"],
)
def test_bad_report_option_is_one_line_and_exit_4(tmp_path, weights, extra, message):
    (tmp_path / "a-file").write_text("")
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in extra]
    if weights is not None:
        (tmp_path / "weights.toml").write_text(weights + "\n")
        args += ["--weights", str(tmp_path / "weights.toml")]
    done = pytest_run(*args)
    assert done.returncode == 4, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_missing_weights_file_is_one_line(tmp_path):
    done = pytest_run("--results-json", str(tmp_path / "r.json"), "--weights", str(tmp_path / "nope.toml"))
    assert done.returncode == 4 and "No such file or directory" in done.stderr, done.stderr


def test_the_weights_know_every_behaviour_the_suites_judge():
    marked = set()
    for path in (ROOT / "tests").glob("*/test_*.py"):
        marked.update(re.findall(r'mark\.behaviour\("([^"]+)"\)', path.read_text()))
    assert marked, "no behaviour markers found"
    assert marked <= set(BEHAVIOURS), f"harness.gate.BEHAVIOURS leaves out {sorted(marked - set(BEHAVIOURS))}"
