"""The dashboard in a real headless browser: Debian's chromium driven by Playwright, a real daemon, real agents.

One browser (conftest.py) and one hive for the module: chromium's start is the expensive part.
Each test opens its own browser context (its own cookies), logs in with the address `hivectl
dashboard` prints and waits on what the page shows, never on time. A screenshot of each view is saved in
`build/screenshots/` (`HYPERHIVE_SCREENSHOTS=DIR` puts them elsewhere: `docs/screenshots` refreshes
the README's).
"""

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Page

from hyperhive_core.cli._safe import escape_controls
from tests.cli._hive import live_hive, report_as_agent
from tests.core.dashboard._browser import HOSTILE, WAIT_MS, Site, needs_chromium, screenshot
from tests.helpers import hive_config

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    root = Path(tempfile.mkdtemp(prefix="hh-", dir="/tmp"))
    try:
        config = hive_config(root, dashboard="127.0.0.1:0", dashboard_sample_s=0.5)
        with live_hive(config) as hive:
            hive.ok("spawn", "alice", "bob", "--driver", "echo")
            info: dict[str, Any] = json.loads(config.dashboard_info.read_text())
            yield Site(hive, info["url"], info["login"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_page_lists_the_agents(page: Page, site: Site) -> None:
    assert page.url == site.url + "agents"
    for name in ("alice", "bob"):
        row = page.locator(f"#agent-{name}")
        row.locator(".badge", has_text="running").wait_for()
        assert row.locator("td.name a").inner_text() == name
    page.locator("#agent-alice td", has_text="echo").first.wait_for()  # the driver in use, once reported
    screenshot(page, "agents")


def test_a_message_sent_with_hivectl_appears_without_a_reload(page: Page, site: Site) -> None:
    page.goto(site.url + "messages")
    page.locator("#conn", has_text="live").wait_for()
    page.evaluate("window.notReloaded = true")
    sent = site.hive.json("send", "alice", "hello from hivectl")
    message = page.locator(f"#m-{sent['id']}")
    message.wait_for()
    assert message.locator(".body").inner_text() == "hello from hivectl"
    # alice's echo arrives the same way, answering it
    reply = page.locator('article.msg[data-sender="alice"] .body:text-is("echo: hello from hivectl")')
    reply.wait_for()
    assert page.evaluate("window.notReloaded") is True
    message.locator(f"button.link:text-is('#{sent['id']}')").click()
    page.locator("#thread h2", has_text=f"thread of #{sent['id']}").wait_for()
    assert page.locator("#thread article.msg").count() == 2
    screenshot(page, "messages")


def test_an_agents_terminal_shows_its_turn(page: Page, site: Site) -> None:
    sent = site.hive.json("send", "bob", "a turn for the terminal")
    page.goto(site.url + "terminal/bob")
    lines = wait_for_terminal(page, "[turn_end]")
    assert any("[received]" in line and f"message {sent['id']}" in line for line in lines)
    assert any("[sent]" in line and "echo: a turn for the terminal" in line for line in lines)


def test_an_agents_terminal_shows_claudes_turn_and_keeps_escapes_inert(page: Page, site: Site) -> None:
    # The events claude's turn loop reports (here sent by the test through alice's own socket).
    hive = "hive"
    send = {"to": "bob", "body": "please review #12"}
    result = [{"type": "text", "text": '{"id": 13, "recipient": "bob"}'}]
    events: list[dict[str, Any]] = [
        {"type": hive, "subtype": "turn_start", "message": "turn 7: 1 message(s) from operator"},
        {"type": "system", "subtype": "init", "session_id": "5f3e", "model": "claude", "mcp_servers": [
            {"name": hive, "status": "connected"}]},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "I'll ask bob to review it.\x1b[2J"}]}},
        {"type": "assistant", "message": {"content": [{"type": "tool_use", "name": "mcp__hive__send", "input": send}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "content": result}]}},
        {"type": "result", "is_error": False, "duration_ms": 3400, "total_cost_usd": 0.0042,
         "usage": {"input_tokens": 1830, "output_tokens": 96}},
        {"type": hive, "subtype": "usage", "input_tokens": 1830, "output_tokens": 96, "cache_read_input_tokens": 0,
         "cost_usd": 0.0042, "duration_ms": 3400},
        {"type": hive, "subtype": "turn_end", "message": "turn 7 done (claude)"},
    ]  # fmt: skip
    site.hive.portal.call(report_as_agent, site.hive.config.agent_socket("alice"), events)
    page.goto(site.url + "terminal/alice")
    lines = wait_for_terminal(page, "turn 7 done")
    assert any("→ mcp__hive__send" in line for line in lines)
    assert any("I'll ask bob to review it.\\x1b[2J" in line for line in lines)  # shown, not obeyed
    screenshot(page, "terminal")


def test_a_hostile_body_renders_as_text(page: Page, site: Site) -> None:
    page.goto(site.url + "messages")
    page.locator("#conn", has_text="live").wait_for()
    sent = site.hive.agent_sends("alice", "operator", HOSTILE)  # arrives live, through the stream
    body = page.locator(f"#m-{sent.id} .body")
    body.wait_for()
    assert body.inner_text() == escape_controls(HOSTILE)
    assert page.locator("#stream img").count() == 0
    assert page.locator("#stream script").count() == 0
    assert page.evaluate("window.pwned") is None
    page.reload()  # and the same when the page renders it
    page.locator(f"#m-{sent.id}").wait_for()
    assert page.locator(f"#m-{sent.id} .body").inner_text() == escape_controls(HOSTILE)
    assert page.evaluate("window.pwned") is None


def test_a_forged_cross_site_post_is_refused(page: Page, site: Site) -> None:
    dashboard = site.url.rstrip("/")
    port = int(dashboard.rpartition(":")[2])
    site.hive.ok("send", "bob", "the operator's own")
    # An agent's web server on another port of 127.0.0.1: the same *site* as the dashboard (so the
    # browser sends its cookie), another origin. The page is served by the browser's router.
    evil = f"http://127.0.0.1:{port + 1}"
    form = (
        f'<form method="post" action="{dashboard}/api/send">'
        '<input name="to" value="bob"><input name="body" value="forged by a form"></form>'
        "<script>document.forms[0].submit()</script>"
    )
    page.route(f"{evil}/**", lambda route: route.fulfill(status=200, content_type="text/html", body=form))
    with page.expect_response(f"{dashboard}/api/send") as answer:
        page.goto(f"{evil}/form")
    assert answer.value.status == 403
    # The same page trying fetch() instead, cookie and all. Its answer is opaque to it (the browser even
    # withholds it: Cross-Origin-Resource-Policy); the promise settles once the daemon has answered.
    page.route(f"{evil}/**", lambda route: route.fulfill(status=200, content_type="text/html", body="<p>hi</p>"))
    page.goto(f"{evil}/fetch")
    with page.expect_request(f"{dashboard}/api/send"):
        page.evaluate(
            """(url) => fetch(url, {method: "POST", mode: "no-cors", credentials: "include",
                                   headers: {"Content-Type": "application/x-www-form-urlencoded"},
                                   body: "to=bob&body=forged+by+fetch"}).catch(() => null)""",
            f"{dashboard}/api/send",
        )
    # bob's turn loop takes what arrives: look at the whole history, not at his inbox.
    token = site.login.partition("?token=")[2]
    history = httpx2.get(
        f"{dashboard}/api/messages", params={"limit": 1000}, headers={"Authorization": f"Bearer {token}"}
    )
    bodies = [m["body"] for m in history.json()["messages"]]
    assert "the operator's own" in bodies
    assert not any(b.startswith("forged") for b in bodies)


def test_the_stats_view_plots_the_samples(page: Page, site: Site) -> None:
    page.goto(site.url + "stats")
    page.wait_for_function(
        "async () => (await (await fetch('/api/stats')).json()).t.length >= 4", polling=250, timeout=WAIT_MS
    )
    page.reload()
    for chart in ("rate", "queue", "cpu", "mem"):
        page.locator(f"#chart-{chart} canvas").wait_for()
    assert int(page.locator("#charts").get_attribute("data-samples") or 0) >= 4
    assert page.locator("#chart-cpu .u-legend", has_text="alice").count() == 1
    screenshot(page, "stats", full_page=True)


def wait_for_terminal(page: Page, text: str) -> list[str]:
    """The terminal's lines once one of them holds `text`."""
    page.wait_for_function(
        """(text) => {
            const term = window.hyperhiveTerminal;
            if (!term) return false;
            const buffer = term.buffer.active;
            for (let i = 0; i < buffer.length; i++) {
                const line = buffer.getLine(i);
                if (line && line.translateToString(true).includes(text)) return true;
            }
            return false;
        }""",
        arg=text,
    )
    lines: list[str] = page.evaluate(
        """() => {
            const buffer = window.hyperhiveTerminal.buffer.active;
            const lines = [];
            for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
            return lines;
        }"""
    )
    return lines
