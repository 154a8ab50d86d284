"""What the browser tests share: Debian's chromium and its flags, the module's hive, screenshots.

The `browser` and `page` fixtures live in this folder's conftest.py; each browser module defines
its own `site` (the hive it needs), and gets one browser for the module.
"""

import os
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.cli._hive import LiveHive
from tests.helpers import REPO

CHROMIUM = Path("/usr/bin/chromium")
# These machines have no internet: without these flags chromium's background connections fail noisily.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>\x1b[2J\x1b]0;owned\x07 & done'
SCREENSHOTS = Path(os.environ.get("HYPERHIVE_SCREENSHOTS") or REPO / "build" / "screenshots")


@contextmanager
def chromium() -> Generator[Browser]:
    """Debian's chromium, headless, driven by Playwright (which gives it a temporary user-data-dir)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


@dataclass(frozen=True, slots=True)
class Site:
    """The module's hive and where its dashboard is."""

    hive: LiveHive
    url: str
    login: str


def screenshot(page: Page, name: str, *, full_page: bool = False) -> None:
    """Save what the page shows as `<SCREENSHOTS>/<name>.png`."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
