"""When the harness itself fails (a probe that crashed, a backend that went away), the program under
test is not blamed: the test is not judged, with the harness's own words, and the run is INCOMPLETE."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_a_harness_error_in_a_behaviour_test_is_not_judged_never_broken(tmp_path):
    (tmp_path / "test_fault.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from harness.errors import HarnessError

            pytestmark = pytest.mark.behaviour("echo fidelity")

            def test_the_probe_crashes():
                raise HarnessError("probe 'exchange' on this machine printed no result")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 1, report
    assert "BROKEN" not in report, report
    assert "VERDICT: INCOMPLETE - not judged: echo fidelity" in report, report
    assert "the harness failed: HarnessError: probe 'exchange' on this machine printed no result" in report, report
