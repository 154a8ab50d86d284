"""The agents page of a hive across hosts in a real browser: two daemons on one real PostgreSQL."""

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.cli._hive import live_hive
from tests.core.dashboard._browser import Site, needs_chromium, screenshot
from tests.core.dashboard.test_shared_hive import HOST_GONE, HOST_ONE, HOST_TWO, place_on_a_down_host
from tests.helpers import IDLE_AGENT, hive_config
from tests.postgres import PgServer

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def site(pg_server: PgServer) -> Iterator[Site]:
    root = Path(tempfile.mkdtemp(prefix="hh-", dir="/tmp"))
    url = pg_server.new_database()
    on: dict[str, Any] = {"agent_command": IDLE_AGENT, "database": url}
    one = hive_config(root / "one", dashboard="127.0.0.1:0", host_name=HOST_ONE, **on)
    two = hive_config(root / "two", host_name=HOST_TWO, **on)
    try:
        with live_hive(one) as hive_one, live_hive(two) as hive_two:
            hive_one.ok("spawn", "alice")
            hive_two.ok("spawn", "bob")
            place_on_a_down_host(url, "carol", HOST_GONE)
            info: dict[str, Any] = json.loads(one.dashboard_info.read_text())
            yield Site(hive_one, info["url"], info["login"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_agents_page_shows_every_hosts_agents_and_marks_those_of_a_down_host(page: Page, site: Site) -> None:
    # bob is listed once host two's heart-beat placed him: the table refreshes itself until then.
    for name, host in (("alice", HOST_ONE), ("bob", HOST_TWO), ("carol", HOST_GONE)):
        page.locator(f"#agent-{name} td.host", has_text=host).wait_for()
    carol = page.locator("#agent-carol")
    carol.locator(".flag", has_text="host down").wait_for()
    assert "down" in (carol.get_attribute("class") or "").split()
    assert page.locator("tr.agent .flag", has_text="host down").count() == 1
    assert page.locator("thead th", has_text="host").count() == 1
    screenshot(page, "agents-hosts")
