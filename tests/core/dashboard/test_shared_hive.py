"""The dashboard of a hive across hosts: two daemons on one real PostgreSQL, one of them serving the
page. Its reads go to the shared database, its agents view shows every host's agents (and those of
a down host as such), and its live stream shows what the other daemon committed."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import psycopg

from hyperhive_core.client import HiveClient, open_hive_client
from hyperhive_core.daemon import running_daemon
from tests.core.dashboard._dash import Dash, running_dashboard, sse
from tests.core.test_postgres import placed_on
from tests.helpers import IDLE_AGENT, hive_config
from tests.postgres import PgServer

WAIT_S = 30
HOST_ONE, HOST_TWO, HOST_GONE = "host-one", "host-two", "host-gone"
OTHER_VIEWS = ("/approvals", "/api/approvals", "/history", "/stats", "/api/stats", "/terminal/bob", "/messages")


def place_on_a_down_host(url: str, agent: str, host: str) -> None:
    """Record `agent` on `host`, a host whose daemon last heart-beat long ago (as one that died)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO daemon_host (host, heartbeat_at) VALUES (%s, 0)", (host,))
        conn.execute("INSERT INTO placement (name, host, heartbeat_at) VALUES (%s, %s, 0)", (agent, host))


@dataclass(frozen=True, slots=True)
class Shared:
    """Host one serves the dashboard (alice runs there); host two runs bob; carol's host is down."""

    dash: Dash
    operator: HiveClient
    two: Path


@asynccontextmanager
async def shared_hive(pg_server: PgServer, root: Path) -> AsyncGenerator[Shared]:
    url = pg_server.new_database()
    on = {"agent_command": IDLE_AGENT, "database": url}
    two = hive_config(root / "two", host_name=HOST_TWO, **on)
    async with (
        running_dashboard(root / "one", host_name=HOST_ONE, **on) as dash,
        running_daemon(two),
        open_hive_client(dash.config.host_socket) as operator,
        open_hive_client(two.host_socket) as operator_two,
    ):
        await operator.spawn("alice")
        await operator_two.spawn("bob")
        place_on_a_down_host(url, "carol", HOST_GONE)
        with anyio.fail_after(WAIT_S):
            await placed_on(url, "bob")  # within host two's heart-beat
        yield Shared(dash, operator, two.agent_socket("bob"))


async def test_the_agents_view_on_postgresql_shows_each_agents_host_and_a_down_hosts_agents(
    pg_server: PgServer, short_tmpdir: Path
) -> None:
    async with shared_hive(pg_server, short_tmpdir) as hive, hive.dash.client() as client:
        api = await client.get("/api/agents")
        html = await client.get("/agents")
        partial = await client.get("/partials/agents")
        # The other views answer on PostgreSQL too (the approvals' rows are in the shared database).
        others = {path: (await client.get(path)).status_code for path in OTHER_VIEWS}
    assert api.status_code == html.status_code == partial.status_code == 200
    assert others == dict.fromkeys(OTHER_VIEWS, 200)
    agents: dict[str, Any] = {a["name"]: a for a in api.json()["agents"]}
    assert {name: a["host"] for name, a in agents.items()} == {"alice": HOST_ONE, "bob": HOST_TWO, "carol": HOST_GONE}
    assert "<th>host</th>" in html.text
    for body in (html.text, partial.text):
        for name, host in (("alice", HOST_ONE), ("bob", HOST_TWO), ("carol", HOST_GONE)):
            assert f'data-agent="{name}"' in body
            assert f'<td class="host">{host}</td>' in body
    row = partial.text[partial.text.index('id="agent-carol"') :]
    row = row[: row.index("</tr>")]
    assert 'class="agent down"' in partial.text
    assert "host down" in row
    assert f"its host {HOST_GONE} stopped heart-beating" in row
    assert "host down" not in partial.text.replace(row, "")  # alice's and bob's hosts are up


async def test_the_dashboard_on_postgresql_streams_what_another_daemon_committed_and_reads_threads_and_turns(
    pg_server: PgServer, short_tmpdir: Path
) -> None:
    async with shared_hive(pg_server, short_tmpdir) as hive, hive.dash.client() as client:
        with anyio.fail_after(WAIT_S):
            async with client.stream("GET", "/sse/messages") as response:
                events = aiter(sse(response))
                # Committed by host two's daemon: host one's stream hears of it through the database.
                async with open_hive_client(hive.two) as bob:
                    sent = await bob.send("alice", "hello <b>from host two</b>")
                event = await anext(events)
            assert (event.event, event.id) == ("msg", str(sent.id))
            assert "hello &lt;b&gt;from host two&lt;/b&gt;" in event.data
            async with open_hive_client(hive.dash.config.agent_socket("alice")) as alice:
                reply = await alice.send("bob", "and back", reply_to=sent.id)
            # alice's turn events, stored in the shared database, open her terminal
            async with open_hive_client(hive.dash.config.agent_socket("alice")) as alice:
                await alice.report_events([{"type": "result", "subtype": "success", "is_error": False}])
            async with client.stream("GET", "/sse/terminal/alice") as response:
                line = await anext(aiter(sse(response)))
            # bob's, of host two: followed from host one's page
            async with client.stream("GET", "/sse/terminal/bob") as response:
                events = aiter(sse(response))
                async with open_hive_client(hive.two) as bob:
                    await bob.report_events([{"type": "result", "subtype": "success", "is_error": False}])
                remote = await anext(events)
        listed = (await client.get("/api/messages", params={"agent": "bob"})).json()["messages"]
        after = (await client.get("/api/messages", params={"after": sent.id})).json()["messages"]
        thread = await client.get(f"/partials/thread/{reply.id}")
        page = await client.get("/messages", params={"agent": "bob"})
    assert [(m["id"], m["sender"], m["recipient"]) for m in listed] == [
        (sent.id, "bob", "alice"),
        (reply.id, "alice", "bob"),
    ]
    assert [(m["id"], m["reply_to"], m["state"]) for m in after] == [(reply.id, sent.id, "queued")]
    assert thread.status_code == 200
    assert f'id="m-{sent.id}"' in thread.text
    assert f'id="m-{reply.id}"' in thread.text
    assert page.status_code == 200
    assert f'id="m-{reply.id}"' in page.text
    assert line.event == "line"
    assert "turn done" in line.data
    assert (remote.event, "turn done" in remote.data) == ("line", True)
