"""The report tests' helpers: synthetic packets (packets.py) and a headless Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("ECHOLAB_CHROMIUM", "/usr/bin/chromium")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (Playwright's own browser download is not used). In CI
    a missing browser fails the test; elsewhere it is skipped, saying what would enable it."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright is not installed (make venv installs it: pyproject's dev extra)"
    if missing is None and not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium, as ci/host-tools.sh does)"
    if missing is not None:
        if in_ci():
            pytest.fail(f"CI needs a browser to open the HTML report: {missing}")
        pytest.skip(missing)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
