"""The server suite on a server that resets instead of sending its FIN, with every report asked for
(under xdist, as `make check` runs): the HTML page opened in headless Chromium, the JUnit file
against the xunit2 schema, results.json against the fields Gradescope documents."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "tests" / "selftest" / "broken_server.py"
SCHEMA = Path(__file__).resolve().parent / "junit-10.xsd"
#: Kept for CI's artifacts (reports/ is ignored by git); the README's screenshot is a copy of it.
SCREENSHOT = ROOT / "reports" / "report-of-a-broken-server.png"
WEIGHTS = """\
"echo fidelity" = 40
"half-close" = 30
"wire" = 10
"robustness" = 5
"listen backlog" = 5
"connection refused" = 5
"lab client" = 5
"""

pytestmark = pytest.mark.slow_harness


@dataclass
class Reports:
    status: int
    output: str
    page: Path
    junit: Path
    results: Path


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Reports:
    """One run for this module's tests, also when xdist hands them to different workers: the first
    worker runs it under a lock in the run's shared temp directory, the others read its files."""
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if uid is None:
        out = tmp_path_factory.mktemp("reports")
    else:
        out = tmp_path_factory.getbasetemp().parent / f"reports-{uid}"
        out.mkdir(exist_ok=True)
    with open(out / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = out / "done.json"
        if not done.is_file():
            status, output = run_suite(out)
            done.write_text(json.dumps({"status": status, "output": output}))
        found = json.loads(done.read_text())
    return Reports(
        found["status"], found["output"], out / "report" / "index.html", out / "junit.xml", out / "results.json"
    )


def run_suite(out: Path) -> tuple[int, str]:
    (out / "weights.toml").write_text(WEIGHTS)
    command = shlex.join([sys.executable, str(BROKEN), "reset-on-close"]) + " --port {port} --backlog {backlog}"
    argv = [
        *(sys.executable, "-m", "pytest", str(ROOT / "tests" / "behaviour"), "-n", "2"),
        *("--server-cmd", command, "--report", str(out / "report")),
        *("--junitxml", str(out / "junit.xml"), "--results-json", str(out / "results.json")),
        *("--weights", str(out / "weights.toml")),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert "VERDICT: FAIL - broken: half-close" in output, output[-4000:]
    return done.returncode, output


def test_the_html_report_opens_in_chromium_with_the_broken_behaviour_and_the_rst(reports, browser):
    assert reports.status == 1, reports.output[-3000:]
    assert f"echolab report: {reports.page}" in reports.output
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    started = time.monotonic()
    page.goto(reports.page.as_uri(), wait_until="load")
    loaded = time.monotonic() - started
    assert page.title().startswith("echolab report: VERDICT: FAIL")
    verdict = page.locator("#verdict").inner_text()
    assert "BROKEN     half-close" in verdict and "VERDICT: FAIL - broken: half-close" in verdict
    broken = page.locator("section.behaviour", has=page.locator("h2", has_text="BROKEN"))
    assert broken.locator("h2").inner_text().split() == ["BROKEN", "half-close"]
    failed = broken.locator("details.o-failed").first
    assert failed.get_attribute("open") is not None, "a failed test is shown open"
    assert "the server reset the connection (RST)" in failed.locator("pre.evidence").inner_text()
    rst = failed.locator("svg.ladder line.k-rst").first
    box = rst.bounding_box()
    assert box is not None and box["width"] > 300, f"the RST arrow is drawn across the ladder: {box}"
    label = failed.locator("svg.ladder text.l.k-rst").first.text_content() or ""
    assert label.startswith("[RST, ACK] Seq="), label
    pcap = failed.locator("a", has_text="pcap").first.get_attribute("href") or ""
    assert not pcap.startswith("/") and (reports.page.parent / pcap).is_file(), pcap
    assert all(url.startswith("file://") for url in requests), f"the page fetched {requests}"
    failed.scroll_into_view_if_needed()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    print(f"screenshot: {SCREENSHOT}; page loaded in {loaded:.2f} s")
    page.close()


def test_the_junit_file_is_valid_xunit2_and_carries_evidence_and_pcaps(reports):
    xmlschema = pytest.importorskip("xmlschema", reason="xmlschema is in pyproject's dev extra (make venv)")
    xmlschema.XMLSchema(str(SCHEMA)).validate(str(reports.junit))
    suite = ET.parse(reports.junit).getroot().find("testsuite")
    assert suite is not None
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["echolab.behaviour.half-close"] == "BROKEN"
    assert properties["echolab.behaviour.echo fidelity"] == "ok"
    assert properties["echolab.verdict"] == "VERDICT: FAIL - broken: half-close"
    failed = [case for case in suite.iter("testcase") if case.find("failure") is not None]
    assert failed, "the broken server fails tests"
    for case in failed:
        out = case.findtext("system-out") or ""
        assert "echolab behaviour: half-close" in out, out
        attachments = [line[len("[[ATTACHMENT|") : -2] for line in out.splitlines() if line.startswith("[[ATTACHMENT|")]
        assert attachments and all(Path(path).is_file() for path in attachments), out


GRADESCOPE_TOP = {"score", "execution_time", "output", "visibility", "stdout_visibility", "extra_data", "tests"}
GRADESCOPE_TEST = {"score", "max_score", "status", "name", "number", "output", "tags", "visibility", "extra_data"}
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def test_results_json_has_gradescopes_fields_and_its_scores_add_up(reports):
    results = json.loads(reports.results.read_text())
    assert set(results) <= GRADESCOPE_TOP and {"score", "execution_time", "tests"} <= set(results)
    assert isinstance(results["execution_time"], int) and results["visibility"] in VISIBILITY
    tests = {test["name"]: test for test in results["tests"]}
    for test in results["tests"]:
        assert set(test) <= GRADESCOPE_TEST and {"name", "score", "max_score", "status", "output"} <= set(test)
        assert test["status"] in ("passed", "failed") and test["visibility"] in VISIBILITY
        assert 0 <= test["score"] <= test["max_score"]
        assert isinstance(test["output"], str) and test["output"]
    assert results["score"] == sum(test["score"] for test in results["tests"])
    assert sum(test["max_score"] for test in results["tests"]) == 100  # the weights file's total
    assert (tests["half-close"]["score"], tests["half-close"]["status"]) == (0, "failed")
    assert "the server reset the connection (RST)" in tests["half-close"]["output"]
    assert (tests["echo fidelity"]["score"], tests["echo fidelity"]["status"]) == (40, "passed")
    assert tests["lab client"]["score"] == 0 and "half-close" in tests["lab client"]["output"]  # not judged
