"""The browser tests' fixtures: one chromium per module, a fresh context (own cookies) per test."""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.core.dashboard._browser import WAIT_MS, Site, chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 760})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(site.login)  # logs in, then lands on /agents without the token
    try:
        yield page
        assert errors == []
    finally:
        context.close()
