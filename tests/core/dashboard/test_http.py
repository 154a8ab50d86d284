"""The dashboard's HTTP side with a real daemon and real agents: pages, the JSON API, actions, safety."""

import socket
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from hyperhive_core.client import open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import running_daemon
from hyperhive_core.errors import ConfigError
from tests.core.dashboard._dash import running_dashboard
from tests.helpers import IDLE_AGENT, hive_config

HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>\x1b[2J\x1b]0;owned\x07 & "q"'


async def test_the_agents_view_lists_every_agent_with_its_state_counts_and_buttons(short_tmpdir: Path) -> None:
    async with running_dashboard(short_tmpdir) as dash, open_hive_client(dash.config.host_socket) as operator:
        await operator.spawn("alice", driver="echo")
        await operator.spawn("bob", driver="echo", role="<b>reviews</b>")
        sent = await operator.send("alice", "ping")
        with anyio.fail_after(15):
            got = (await operator.recv(timeout_s=15)).messages
        assert [m.reply_to for m in got] == [sent.id]
        async with dash.logged_in() as client:
            page = await client.get("/agents")
            assert page.status_code == 200
            assert 'id="agent-alice"' in page.text
            assert 'id="agent-bob"' in page.text
            assert "&lt;b&gt;reviews&lt;/b&gt;" in page.text  # the role is the operator's, still text
            assert 'hx-post="/api/agents/alice/rebuild"' in page.text
            assert 'hx-post="/api/agents/alice/kill"' in page.text
            assert 'hx-post="/api/agents/alice/suspend"' in page.text
        async with dash.client() as client:
            rows = {a["name"]: a for a in (await client.get("/api/agents")).json()["agents"]}
        assert rows["alice"]["state"] == "running"
        assert rows["alice"]["sent"] == 1
        assert rows["alice"]["received"] == 1
        assert rows["alice"]["driver_in_use"] == "echo"
        assert rows["alice"]["last_active_at"] is not None
        assert rows["bob"]["sent"] == 0


async def test_a_send_from_the_page_goes_through_the_operator_toolset(short_tmpdir: Path) -> None:
    config_overrides: dict[str, Any] = {"agent_command": IDLE_AGENT}
    async with running_dashboard(short_tmpdir, **config_overrides) as dash:
        async with open_hive_client(dash.config.host_socket) as operator:
            await operator.spawn("alice")
        async with dash.logged_in() as client:
            headers = {"X-Hyperhive-CSRF": await csrf_of(client), "Origin": dash.origin, "HX-Request": "true"}
            done = await client.post("/api/send", data={"to": "alice", "body": "from the page"}, headers=headers)
            assert done.status_code == 200, done.text
            assert done.headers["HX-Trigger"] == "hive-changed"
            unknown = await client.post("/api/send", data={"to": "ghost", "body": "x"}, headers=headers)
            empty = await client.post("/api/send", data={"to": "alice", "body": "   "}, headers=headers)
        # The tool's own words, as hivectl would print them.
        assert unknown.status_code == 409
        assert "unknown agent &#x27;ghost&#x27;; known: alice, operator" in unknown.text
        assert empty.status_code == 409
        assert "empty" in empty.text
        async with open_hive_client(dash.config.host_socket) as operator:
            inbox = await operator.inbox("alice")
        assert [(m.sender, m.body) for m in inbox.messages] == [("operator", "from the page")]


async def test_rebuild_and_kill_act_on_the_hive_as_hivectl_does(short_tmpdir: Path) -> None:
    async with running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash:
        async with open_hive_client(dash.config.host_socket) as operator:
            before = await operator.spawn("alice")
        async with dash.client() as client:
            rebuilt = await client.post("/api/agents/alice/rebuild")
            assert rebuilt.status_code == 200, rebuilt.text
            assert rebuilt.json()["result"]["pid"] not in (None, before.pid)
            refused = await client.post("/api/agents/hm1nd/kill")
            bad_verb = await client.post("/api/agents/alice/explode")
            killed = await client.post("/api/agents/alice/kill")
            assert killed.status_code == 200, killed.text
            gone = await client.post("/api/agents/alice/kill")
        assert refused.status_code == 409
        assert "unknown agent 'hm1nd'" in refused.json()["error"]
        assert bad_verb.status_code == 404
        assert "rebuild, kill" in bad_verb.json()["error"]
        assert gone.status_code == 409
        assert "unknown agent 'alice'" in gone.json()["error"]
        assert dash.daemon.hive.agent_names == []


async def test_a_hostile_body_reaches_the_page_as_text_only(short_tmpdir: Path) -> None:
    async with running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash:
        async with open_hive_client(dash.config.host_socket) as operator:
            await operator.spawn("alice")
        async with open_hive_client(dash.config.agent_socket("alice")) as alice:
            sent = await alice.send("operator", HOSTILE)
        async with dash.client() as client:
            page = (await client.get("/messages")).text
            thread = (await client.get(f"/partials/thread/{sent.id}")).text
        for html in (page, thread):
            assert "<img" not in html
            assert "<script>window" not in html
            assert "\x1b" not in html
            assert "\x07" not in html
            assert "&lt;img src=x onerror=&quot;window.pwned=1&quot;&gt;" in html
            assert "\\x1b[2J\\x1b]0;owned\\x07 &amp; &quot;q&quot;" in html


async def test_bad_input_gets_words_that_say_what_to_give(short_tmpdir: Path) -> None:
    async with running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash:
        async with open_hive_client(dash.config.host_socket) as operator:
            await operator.spawn("alice")
        async with dash.client() as client:
            answers = {
                "reply_to text": await client.post("/api/send", data={"to": "alice", "body": "x", "reply_to": "#3"}),
                "reply_to list": await client.post("/api/send", json={"to": "alice", "body": "x", "reply_to": [1]}),
                "body not text": await client.post("/api/send", json={"to": "alice", "body": {"a": 1}}),
                "not an object": await client.post("/api/send", json=["alice", "x"]),
                "not json": await client.post("/api/send", content=b"{", headers={"Content-Type": "application/json"}),
                "after ²": await client.get("/api/messages", params={"after": "²"}),
                "limit 0": await client.get("/api/messages", params={"limit": "0"}),
                "bad agent": await client.get("/api/messages", params={"agent": "Alice!"}),
            }
            missing = await client.get("/partials/thread/999")
        words = {why: (a.status_code, a.json()["error"]) for why, a in answers.items()}
        assert words["reply_to text"][0] == 409
        assert "reply_to" in words["reply_to text"][1]
        assert words["reply_to list"][0] == 409
        assert "reply_to" in words["reply_to list"][1]
        assert words["body not text"][0] == 409
        assert "body" in words["body not text"][1]
        assert words["not an object"] == (400, "the body must be a JSON object")
        assert words["not json"][0] == 400
        assert words["after ²"] == (400, "after must be a whole number from 0 to 9223372036854775807 (got '²')")
        assert words["limit 0"][0] == 400
        assert words["bad agent"][0] == 400
        assert "no agent can be named 'Alice!'" in words["bad agent"][1]
        assert missing.status_code == 404
        assert "no such message" in missing.text


async def test_every_route_but_the_static_files_needs_the_token(short_tmpdir: Path) -> None:
    async with running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash:
        async with dash.client(bearer=False) as anonymous:
            for path in ("/agents", "/messages", "/api/agents", "/api/stats", "/sse/messages", "/terminal"):
                answer = await anonymous.get(path)
                assert answer.status_code == 401, path
                assert "hivectl dashboard" in answer.text
            assert (await anonymous.post("/api/send", json={"to": "operator", "body": "x"})).status_code == 401
            assert (await anonymous.get("/agents?token=wrong-token-000000")).status_code == 401
            assert (await anonymous.get("/static/vendor/htmx/htmx.min.js")).status_code == 200
            login = await anonymous.get(dash.login)
            # never a redirect to another site
            twisted = await anonymous.get(f"{dash.origin}//attacker.example/", params={"token": dash.token})
        assert twisted.headers["location"] == "/attacker.example/"
        assert login.status_code == 303
        assert login.headers["location"] == "/"  # the token never stays in the address bar
        cookie = login.headers["set-cookie"]
        assert "httponly" in cookie.lower()
        assert "samesite=strict" in cookie.lower()
        assert dash.token not in cookie


async def test_a_request_with_a_foreign_host_header_is_refused(short_tmpdir: Path) -> None:
    # DNS rebinding: a name the attacker controls, resolved to 127.0.0.1, must not reach the hive.
    async with running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash, dash.client() as client:
        port = dash.host.rpartition(":")[2]
        for host in (f"attacker.example:{port}", "127.0.0.1:1", f"127.0.0.2:{port}"):
            answer = await client.get("/api/agents", headers={"Host": host})
            assert answer.status_code == 421, host
        for host in (dash.host, f"localhost:{port}"):
            assert (await client.get("/api/agents", headers={"Host": host})).status_code == 200


async def test_a_forged_cross_site_post_is_refused_and_stores_nothing(short_tmpdir: Path) -> None:
    async with running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash:
        async with open_hive_client(dash.config.host_socket) as operator:
            await operator.spawn("alice")
        async with dash.logged_in() as client:
            token = await csrf_of(client)
            body = {"to": "alice", "body": "forged"}
            port = int(dash.host.rpartition(":")[2])
            forgeries = {
                # a form on another port of 127.0.0.1 (an agent's web server): same site, other origin
                "other origin": {"Origin": f"http://127.0.0.1:{port + 1}", "X-Hyperhive-CSRF": token},
                "no csrf token": {"Origin": dash.origin},
                "wrong csrf token": {"Origin": dash.origin, "X-Hyperhive-CSRF": "0" * 64},
                "cross-site fetch": {"Sec-Fetch-Site": "cross-site", "X-Hyperhive-CSRF": token},
                "same-site fetch": {"Sec-Fetch-Site": "same-site", "X-Hyperhive-CSRF": token, "Origin": dash.origin},
            }
            for why, headers in forgeries.items():
                answer = await client.post("/api/send", data=body, headers=headers)
                assert answer.status_code == 403, why
            # Another site may not read anything either, only open a page.
            read = await client.get("/api/agents", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"})
            assert read.status_code == 403
            navigate = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
            assert (await client.get("/agents", headers=navigate)).status_code == 200
            own = {"Origin": dash.origin, "Sec-Fetch-Site": "same-origin", "X-Hyperhive-CSRF": token}
            assert (
                await client.post("/api/send", data={"to": "alice", "body": "mine"}, headers=own)
            ).status_code == 200
        async with open_hive_client(dash.config.host_socket) as operator:
            bodies = [m.body for m in (await operator.inbox("alice")).messages]
        assert bodies == ["mine"]


async def test_every_answer_forbids_framing_and_inline_scripts(short_tmpdir: Path) -> None:
    async with running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash, dash.client() as client:
        for path in ("/agents", "/api/agents", "/static/app.js"):
            headers = (await client.get(path)).headers
            assert "script-src 'self'" in headers["content-security-policy"]
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert headers["x-frame-options"] == "DENY"
            assert headers["referrer-policy"] == "no-referrer"
        assert (await client.get("/agents")).headers["cache-control"] == "no-store"


async def test_off_loopback_the_daemon_refuses_to_start_without_a_configured_token(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, dashboard="0.0.0.0:0")
    error = await refused_start(config)
    assert isinstance(error, ConfigError)
    assert "off loopback" in str(error)
    assert "--dashboard-token-file" in str(error)
    assert not config.host_socket.exists()


async def test_off_loopback_a_configured_token_is_the_only_key(short_tmpdir: Path) -> None:
    token_file = short_tmpdir / "token"
    token_file.write_text("a-secret-the-operator-chose-42\n")
    short = short_tmpdir / "short"
    short.write_text("too-short\n")
    bad = hive_config(short_tmpdir / "b", dashboard="0.0.0.0:0", dashboard_token_file=short)
    error = await refused_start(bad)
    assert isinstance(error, ConfigError)
    assert "at least 16 characters" in str(error)
    async with running_dashboard(short_tmpdir / "g", dashboard="0.0.0.0:0", dashboard_token_file=token_file) as dash:
        assert dash.token == "a-secret-the-operator-chose-42"
        assert not (dash.config.state_dir / "dashboard.token").exists()
        async with dash.client() as client:
            assert (await client.get("/api/agents")).status_code == 200


async def test_a_busy_port_stops_the_start_with_words_that_say_what_to_do(short_tmpdir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        error = await refused_start(hive_config(short_tmpdir, dashboard=f"127.0.0.1:{port}"))
    assert isinstance(error, ConfigError)
    assert f"127.0.0.1:{port}" in str(error)
    assert "--no-dashboard" in str(error)


async def test_the_token_is_kept_for_the_hive_and_survives_a_restart(short_tmpdir: Path) -> None:
    async with running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as first:
        token = first.token
        info = first.config.dashboard_info
        assert info.stat().st_mode & 0o777 == 0o600
    assert not info.exists()  # gone with the daemon
    kept = short_tmpdir / "state" / "dashboard.token"
    assert kept.stat().st_mode & 0o777 == 0o600
    async with running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as second:
        assert second.token == token


async def refused_start(config: HiveConfig) -> BaseException:
    """The one error a daemon's start failed with, out of the task groups around it."""
    with pytest.raises(BaseExceptionGroup) as caught:
        async with running_daemon(config):
            pass
    leaves: list[BaseException] = list(caught.value.exceptions)
    while len(leaves) == 1 and isinstance(leaves[0], BaseExceptionGroup):
        leaves = list(cast(BaseExceptionGroup[BaseException], leaves[0]).exceptions)
    [error] = leaves
    return error


async def csrf_of(client: Any) -> str:
    """The CSRF token a logged-in page carries."""
    page = (await client.get("/agents")).text
    return page.split('name="hyperhive-csrf" content="', 1)[1].split('"', 1)[0]
