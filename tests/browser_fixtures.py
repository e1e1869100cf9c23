"""Debian's Chromium for the browser tests, driven by playwright: skipped without it, failing in CI."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI runs the browser tests)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Checked before a test starts servers, so a missing browser costs no Rasa start-up."""
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if not path:
        skip_or_fail("no Chromium: install Debian's package with `apt-get install -y chromium`")
    return Path(path)


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        # Root in a container has no user namespace for Chromium's sandbox.
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()
