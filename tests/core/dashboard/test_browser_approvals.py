"""The approvals and history views in a real headless browser: the manager proposes on its socket, the page decides.

One browser (conftest.py) and one hive for the module. The manager is an idle process here: the
test speaks for it on its socket, as claude would, and reads what the operator tells it there.
Agents are real (`hive-agent serve`, echo driver). Screenshots: `approvals.png`, `history.png`.
"""

import functools
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from playwright.sync_api import Page

from hyperhive_core.cli._safe import escape_controls
from hyperhive_core.client import open_hive_client
from hyperhive_core.mcp.models import MessageView
from tests.cli._hive import live_hive
from tests.core.dashboard._browser import HOSTILE, Site, needs_chromium, screenshot
from tests.helpers import IDLE_AGENT, hive_config

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    root = Path(tempfile.mkdtemp(prefix="hh-", dir="/tmp"))
    try:
        config = hive_config(root, dashboard="127.0.0.1:0", manager_command=IDLE_AGENT)
        with live_hive(config) as hive:
            hive.ok("spawn", "alice", "--driver", "echo", "--role", "write the release notes")
            hive.portal.call(spawn_manager, config.host_socket)
            info: dict[str, Any] = json.loads(config.dashboard_info.read_text())
            yield Site(hive, info["url"], info["login"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def spawn_manager(host_socket: Path) -> None:
    with anyio.fail_after(30):
        async with open_hive_client(host_socket) as operator:
            await operator.spawn_manager()


def propose(site: Site, name: str, *, role: str, reason: str) -> int:
    """The manager proposes a new agent (echo driver) on its socket; the proposal's id."""
    return site.hive.portal.call(functools.partial(manager_proposes_spawn, site, name, role=role, reason=reason))


async def manager_proposes_spawn(site: Site, name: str, *, role: str, reason: str) -> int:
    """The manager proposes a new agent through its own socket, as claude would; the proposal's id."""
    with anyio.fail_after(30):
        async with open_hive_client(site.hive.config.agent_socket("hm1nd")) as manager:
            return (await manager.propose_spawn(name, role=role, driver="echo", reason=reason)).id


async def manager_hears(site: Site, text: str) -> MessageView:
    """The first message to the manager whose body holds `text` (what came before it is taken too)."""
    with anyio.fail_after(30):
        async with open_hive_client(site.hive.config.agent_socket("hm1nd")) as manager:
            while True:
                for message in (await manager.recv(timeout_s=10)).messages:
                    if text in message.body:
                        return message


def test_denying_with_a_reason_from_the_page_tells_the_manager(page: Page, site: Site) -> None:
    proposal = propose(site, "scout", role="look around", reason="we might need a scout")
    page.goto(site.url + "approvals")
    card = page.locator(f"#proposal-{proposal}")
    card.locator(".summary", has_text="spawn scout").wait_for()
    card.locator("form.deny input[name=reason]").fill("not before the release")
    card.locator("form.deny button").click()
    page.locator("#notice p.ok", has_text=f"proposal {proposal} (spawn scout): denied").wait_for()
    page.locator(f'#decided-{proposal}[data-state="denied"]', has_text="not before the release").wait_for()
    assert page.locator(f"#proposal-{proposal}").count() == 0
    told = site.hive.portal.call(manager_hears, site, f"proposal {proposal} ")
    assert (told.sender, told.body) == (
        "operator",
        f"proposal {proposal} (spawn scout): denied by operator: not before the release",
    )


def test_approving_a_proposal_from_the_page_starts_the_agent(page: Page, site: Site) -> None:
    proposal = propose(site, "worker", role="count words", reason="alice's notes need counting")
    page.goto(site.url + "approvals")
    card = page.locator(f"#proposal-{proposal}")
    card.locator(".diff .add", has_text='+role = "count words"').wait_for()
    assert card.locator(".plan .action").inner_text() == "create"
    assert card.locator(".message").inner_text() == "alice's notes need counting"
    screenshot(page, "approvals", full_page=True)
    card.locator("button.approve").click()
    page.locator("#notice p.ok", has_text=f"proposal {proposal} (spawn worker): applied").wait_for()
    page.locator(f'#decided-{proposal}[data-state="applied"]').wait_for()
    # The agent runs: it answers a message, on the page's live stream.
    page.goto(site.url + "messages")
    page.locator("#conn", has_text="live").wait_for()
    site.hive.ok("send", "worker", "count these words")
    page.locator('article.msg[data-sender="worker"] .body:text-is("echo: count these words")').wait_for()
    told = site.hive.portal.call(manager_hears, site, f"proposal {proposal} ")
    assert told.body == f"proposal {proposal} (spawn worker): approved by operator and applied; worker is Ready."


def test_suspend_and_resume_from_the_agents_view(page: Page, site: Site) -> None:
    row = page.locator("#agent-alice")
    row.locator(".sync .badge", has_text="Ready").wait_for()
    row.locator("button", has_text="suspend").click()
    page.locator('#agent-alice[data-sync="Suspended"]').wait_for()
    page.locator("#agent-alice button", has_text="resume").click()
    page.locator('#agent-alice[data-sync="Ready"]').wait_for()
    page.locator("#agent-alice button", has_text="suspend").wait_for()


def test_a_hostile_proposal_renders_inert(page: Page, site: Site) -> None:
    proposal = propose(site, "mallory", role=HOSTILE, reason=HOSTILE)
    page.goto(site.url + "approvals")
    card = page.locator(f"#proposal-{proposal}")
    card.wait_for()
    assert card.locator(".message").inner_text() == escape_controls(HOSTILE)
    assert card.locator(".diff .add", has_text="+role = ").inner_text().startswith('+role = "<img src=x onerror=')
    assert card.locator("img").count() == 0
    assert card.locator("script").count() == 0
    assert page.evaluate("window.pwned") is None


def test_the_history_shows_mains_commits_and_each_diff(page: Page, site: Site) -> None:
    page.goto(site.url + "history")
    newest = page.locator("table.commits tr.commit").first
    newest.wait_for()
    rows = page.locator("table.commits tr.commit .subject")
    subjects = [rows.nth(i).inner_text().split("\n", 1)[0] for i in range(rows.count())]
    assert "spawn alice" in subjects
    assert subjects[-1] == "a new hive"
    spawn = page.locator("table.commits tr.commit", has_text="spawn alice")
    spawn.locator(".chip", has_text="Requested-By: operator").wait_for()
    spawn.locator("button", has_text="diff").click()
    rev = spawn.get_attribute("data-rev")
    page.locator(f"#d-{rev} .diff .add", has_text='+role = "write the release notes"').wait_for()
    page.locator(f"#d-{rev} pre.message", has_text="spawn alice").wait_for()
    screenshot(page, "history", full_page=True)
