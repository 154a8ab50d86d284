"""The hive on a real PostgreSQL: daemons sharing one database wake each other's readers (NOTIFY, and a
re-check when a notification is lost), never share a message, and a daemon serves its agents from it."""

import functools
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from hyperhive_core.broker.broker import Broker
from hyperhive_core.broker.listener import listen_for_messages
from hyperhive_core.broker.placement import DOWN_AFTER_S, Placement
from hyperhive_core.broker.postgres import open_pg_store
from hyperhive_core.broker.storage import Appended, AppendRequest
from hyperhive_core.broker.trust import prepare_database
from hyperhive_core.cli import app
from hyperhive_core.client import open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import running_daemon
from hyperhive_core.errors import BrokerError, ToolCallError
from hyperhive_core.mcp.models import RecvResult
from hyperhive_core.states import AgentState
from tests.helpers import IDLE_AGENT, daemon_process, hive_config
from tests.postgres import PgServer


@asynccontextmanager
async def daemon_broker(url: str, *, recheck_s: float) -> AsyncGenerator[Broker]:
    """What one daemon runs on a shared database: its store, its broker, its listener."""
    async with open_pg_store(url) as store, anyio.create_task_group() as tg:
        broker = Broker(store)
        await tg.start(functools.partial(listen_for_messages, url, store, broker, recheck_s=recheck_s))
        yield broker
        tg.cancel_scope.cancel()


async def test_a_send_through_one_daemon_wakes_a_recv_waiting_on_another(pg_server: PgServer) -> None:
    url = pg_server.new_database()
    got: list[str] = []
    # The re-check is far off: only the notification can wake the reader in time.
    async with daemon_broker(url, recheck_s=600) as a, daemon_broker(url, recheck_s=600) as b:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:

                async def wait_for_one() -> None:
                    got.extend(m.body for m in (await b.recv("alice", timeout_s=60, limit=1)).messages)

                tg.start_soon(wait_for_one)
                await anyio.wait_all_tasks_blocked()
                await a.send("bob", "alice", "across hosts")
    assert got == ["across hosts"]


async def test_a_message_whose_notification_was_lost_is_delivered_by_the_recheck(pg_server: PgServer) -> None:
    url = pg_server.new_database()
    got: list[str] = []
    async with daemon_broker(url, recheck_s=0.2) as b:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:

                async def wait_for_one() -> None:
                    got.extend(m.body for m in (await b.recv("alice", timeout_s=60, limit=1)).messages)

                tg.start_soon(wait_for_one)
                await anyio.wait_all_tasks_blocked()
                # Committed with no NOTIFY at all: as if the notification was lost.
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    await conn.execute(
                        "INSERT INTO message (sender, recipient, body, created_at, state, leased, deliveries) "
                        "VALUES ('bob', 'alice', 'unannounced', 0, 'QUEUED', false, 0)"
                    )
    assert got == ["unannounced"]


async def test_two_daemons_reading_one_inbox_never_share_a_message(pg_server: PgServer) -> None:
    url = pg_server.new_database()
    total = 200
    received: list[int] = []
    sent: list[int] = []
    async with daemon_broker(url, recheck_s=0.5) as a, daemon_broker(url, recheck_s=0.5) as b:

        async def consume(broker: Broker) -> None:
            while len(received) < total:
                rows = (await broker.recv("alice", timeout_s=0.5, limit=5)).messages
                received.extend(r.id or 0 for r in rows)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for broker in (a, b, a, b):
                    tg.start_soon(consume, broker)
                sent.extend(
                    [(await (a if i % 2 else b).send("bob", "alice", f"m{i}")).row.id or 0 for i in range(total)]
                )
    assert sorted(received) == sorted(sent)


async def test_a_daemon_on_postgresql_keeps_what_it_was_sent_across_a_restart(
    pg_server: PgServer, short_tmpdir: Path
) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, database=pg_server.new_database())
    with anyio.fail_after(60):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            sent = await operator.send("alice", "kept in postgres")
            async with open_hive_client(config.agent_socket("alice")) as alice:
                await alice.send("operator", "hello from alice")
            got = (await operator.recv(timeout_s=5, max=10)).messages
            assert [m.body for m in got] == ["hello from alice"]
        async with running_daemon(config), open_hive_client(config.agent_socket("alice")) as alice:
            back = (await alice.recv(timeout_s=5, max=10)).messages
            assert [(m.id, m.body) for m in back] == [(sent.id, "kept in postgres")]


def test_a_database_url_with_a_password_is_refused_and_the_password_never_shown() -> None:
    result = CliRunner().invoke(
        app, ["serve", "--database", "postgresql://hive:s3cret@db.example/hive", "--no-dashboard"]
    )
    assert result.exit_code == 1
    assert "passfile=PATH" in result.output
    assert "s3cret" not in result.output


@pytest.mark.parametrize("url", ["mysql://db/hive", "sqlite:///x.db"], ids=["mysql", "sqlite"])
def test_a_database_url_that_is_not_postgresql_is_refused(url: str) -> None:
    result = CliRunner().invoke(app, ["serve", "--database", url, "--no-dashboard"])
    assert result.exit_code == 1
    assert "must start with postgresql://" in result.output


async def placed_on(url: str, name: str) -> str:
    """Wait until `name` is placed on a live host (its daemon's heartbeat published it); returns the host."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while True:
            row = await (await conn.execute("SELECT host FROM placement WHERE name = %s", (name,))).fetchone()
            if row is not None:
                return str(row[0])
            await anyio.sleep(0.05)


async def test_agents_of_two_daemons_on_one_database_talk_across_hosts(pg_server: PgServer, short_tmpdir: Path) -> None:
    url = pg_server.new_database()
    one = hive_config(short_tmpdir / "one", agent_command=IDLE_AGENT, database=url, host_name="host-one")
    two = hive_config(short_tmpdir / "two", agent_command=IDLE_AGENT, database=url, host_name="host-two")
    with anyio.fail_after(60):
        async with (
            running_daemon(one),
            running_daemon(two),
            open_hive_client(one.host_socket) as operator_one,
            open_hive_client(two.host_socket) as operator_two,
        ):
            await operator_one.spawn("alice")
            await operator_two.spawn("bob")
            assert (await placed_on(url, "alice"), await placed_on(url, "bob")) == ("host-one", "host-two")
            async with (
                open_hive_client(one.agent_socket("alice")) as alice,
                open_hive_client(two.agent_socket("bob")) as bob,
            ):
                sent = await alice.send("bob", "hello from host one")
                # bob's daemon is woken by the commit's notification: well within recv's 30 s.
                [got] = (await bob.recv(timeout_s=30, max=10)).messages
                assert (got.id, got.sender, got.body) == (sent.id, "alice", "hello from host one")
                await bob.send("alice", "and back", reply_to=got.id)
                [answer] = (await alice.recv(timeout_s=30, max=10)).messages
                assert (answer.sender, answer.body, answer.reply_to) == ("bob", "and back", got.id)
            # Either host's operator sees the whole hive, each agent with its host.
            for operator in (operator_one, operator_two):
                listed = {a.name: (a.host, a.state) for a in await operator.list_agents()}
                assert listed == {"alice": ("host-one", AgentState.RUNNING), "bob": ("host-two", AgentState.RUNNING)}
            # An agent no host runs is still refused, with the names the sender may use.
            with pytest.raises(ToolCallError) as caught:
                await operator_one.send("carol", "anyone?")
            assert "carol" in caught.value.reason


async def test_a_daemon_killed_under_load_loses_no_acknowledged_send_and_stores_none_twice(
    pg_server: PgServer, short_tmpdir: Path
) -> None:
    url = pg_server.new_database()
    one = hive_config(short_tmpdir / "one", agent_command=IDLE_AGENT)
    two = hive_config(short_tmpdir / "two", agent_command=IDLE_AGENT, database=url, host_name="host-two")
    on_one = {"database": url, "host_name": "host-one"}
    total, kill_at = 60, 25
    acknowledged: dict[int, int] = {}  # i -> the id the daemon answered with
    received: list[int] = []
    # A bound, not a wait: about 40 s on a loaded machine, and it overran 120 s when parallel suites
    # loaded it further (three daemon starts, 120 sends and their reads).
    with anyio.fail_after(300):
        async with running_daemon(two), open_hive_client(two.host_socket) as operator_two:
            await operator_two.spawn("bob")
            async with daemon_process(one, overrides=on_one) as doomed:
                async with open_hive_client(one.host_socket) as operator_one:
                    await operator_one.spawn("alice")
                await placed_on(url, "bob")
                async with open_hive_client(one.agent_socket("alice")) as alice, anyio.create_task_group() as tg:

                    async def send_until_killed() -> None:
                        for i in range(total):
                            if i == kill_at:
                                doomed.kill()  # SIGKILL, with sends going on both sides
                            try:
                                acknowledged[i] = (await alice.send("bob", f"m{i}", key=f"k{i}")).id
                            except Exception:  # the daemon died under this call: its outcome is unknown
                                return

                    tg.start_soon(send_until_killed)
                    cursor = 0
                    while len(received) < kill_at - 1:
                        got = (await bob_recv(two, cursor)).messages
                        received.extend(m.id for m in got)
                        cursor = max([cursor, *received])
                assert await doomed.wait() == -9
            # The host comes back: its agent again, and the same sends retried with their keys.
            async with daemon_process(one, overrides=on_one), open_hive_client(one.agent_socket("alice")) as alice:
                for i in range(total):
                    receipt = await alice.send("bob", f"m{i}", key=f"k{i}")
                    assert acknowledged.setdefault(i, receipt.id) == receipt.id  # stored once, before or now
                cursor = max(received, default=0)
                while len(set(received)) < total:
                    got = (await bob_recv(two, cursor)).messages
                    received.extend(m.id for m in got)
                    cursor = max([cursor, *received])
    # Every send is there once, and bob got each exactly once (his cursor acknowledged as he went).
    assert sorted(received) == sorted(acknowledged.values())
    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = await (
            await conn.execute("SELECT body, count(*) FROM message GROUP BY body HAVING count(*) > 1")
        ).fetchall()
        assert rows == []


async def bob_recv(config: HiveConfig, cursor: int) -> RecvResult:
    """One cursor read of bob's inbox on `config`'s daemon, as the turn loop reads."""
    async with open_hive_client(config.agent_socket("bob")) as bob:
        return await bob.recv(timeout_s=10, max=20, after=cursor, reader="turn-loop")


GROUP_WITH_A_FORGERY = (
    ("alice", "bob", "first of a group"),
    ("bob", "alice", "forged amid them"),
    ("alice", "bob", "last of it"),
)


async def test_the_database_refuses_a_daemon_writing_as_another_hosts_agent(pg_server: PgServer) -> None:
    admin_url = pg_server.new_database()
    database = admin_url.split("/")[3].split("?")[0]
    roles = {"host-one": f"one_{database}", "host-two": f"two_{database}"}
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        for role in roles.values():
            await admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    await prepare_database(admin_url, {role: host for host, role in roles.items()})
    one_url, two_url = (pg_server.url(database, user=roles[h]) for h in ("host-one", "host-two"))
    async with open_pg_store(one_url) as one, open_pg_store(two_url) as two:
        assert await Placement(one.pool, "host-one").publish(["alice"], now=time.time()) == []
        assert await Placement(two.pool, "host-two").publish(["bob"], now=time.time()) == []
        broker = Broker(one)
        sent = await broker.send("alice", "bob", "from alice, placed here")
        assert sent.row.sender == "alice"
        # host-one's daemon writes as bob, who is host-two's: the database says no, whatever Python does.
        with pytest.raises(BrokerError) as caught:
            await broker.send("bob", "alice", "forged")
        assert "only send as the agents placed on its host" in str(caught.value)
        # In one group commit with alice's sends, the forged one fails alone.
        now = time.time()
        grouped = await one.append_many(
            [AppendRequest(sender, recipient, body, None, now, 100) for sender, recipient, body in GROUP_WITH_A_FORGERY]
        )
        assert [type(o) for o in grouped] == [Appended, BrokerError, Appended]
        async with await psycopg.AsyncConnection.connect(one_url, autocommit=True) as rogue:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await rogue.execute(
                    "INSERT INTO message (sender, recipient, body, created_at, state, leased, deliveries) "
                    "VALUES ('bob', 'alice', 'forged by hand', 0, 'QUEUED', false, 0)"
                )
            # ...nor place bob on its own host to get round it.
            moved = await rogue.execute("UPDATE placement SET host = 'host-one' WHERE name = 'bob'")
            assert moved.rowcount == 0  # another host's rows are not its to change
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await rogue.execute("INSERT INTO placement VALUES ('mallory', 'host-two', 0)")
        assert await Placement(one.pool, "host-one").publish(["alice", "bob"], now=time.time()) == ["bob"]
    async with await psycopg.AsyncConnection.connect(admin_url) as admin:
        rows = await (await admin.execute("SELECT sender, body FROM message ORDER BY id")).fetchall()
        assert rows == [("alice", "from alice, placed here"), ("alice", "first of a group"), ("alice", "last of it")]
        placed = await (await admin.execute("SELECT name, host FROM placement ORDER BY name")).fetchall()
        assert placed == [("alice", "host-one"), ("bob", "host-two")]


def test_migrate_makes_a_database_ready_and_refuses_a_grant_it_cannot_read(pg_server: PgServer) -> None:
    url = pg_server.new_database()
    done = CliRunner().invoke(app, ["migrate", "--database", url, "--grant", "hive_a=host-a"])
    assert done.exit_code == 1  # no such role yet: the database says so, nothing half-done
    assert "hive database refused" in done.output
    pg_server.execute("DO $$ BEGIN CREATE ROLE hive_a LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    done = CliRunner().invoke(app, ["migrate", "--database", url, "--grant", "hive_a=host-a"])
    assert done.exit_code == 0, done.output
    assert "hive_a runs host-a" in done.output
    bad = CliRunner().invoke(app, ["migrate", "--database", url, "--grant", "host-a"])
    assert bad.exit_code == 1
    assert "is not ROLE=HOST" in bad.output


async def test_a_restart_recovers_only_its_own_hosts_leases_and_a_down_hosts_come_back(pg_server: PgServer) -> None:
    url = pg_server.new_database()

    async def leases() -> list[tuple[str, str, str | None, bool, str | None]]:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            rows = await (
                await conn.execute(
                    "SELECT body, state::text, reader, held_until IS NOT NULL, lease_host FROM message ORDER BY id"
                )
            ).fetchall()
        return [(str(body), str(state), reader, bool(held), host) for body, state, reader, held, host in rows]

    async with open_pg_store(url, host="host-b") as b:
        await Placement(b.pool, "host-b").publish(["alice"], now=time.time())
        for i in range(4):
            await Broker(b).send("operator", "alice", f"m{i}")
        assert [m.body for m in await b.claim("alice", 1, now=time.time(), reader="~b-1")] == ["m0"]
        assert [m.body for m in await b.claim("alice", 2, now=time.time(), reader="turn-loop")] == ["m1", "m2"]
        b_holds = [
            ("m0", "DELIVERED", "~b-1", False, "host-b"),
            ("m1", "DELIVERED", "turn-loop", False, "host-b"),
            ("m2", "DELIVERED", "turn-loop", False, "host-b"),
        ]
        # host-a's daemon (re)starts while host-b's works on its leases: they stay host-b's.
        async with open_pg_store(url, host="host-a") as a:
            assert await leases() == [*b_holds, ("m3", "QUEUED", None, False, None)]
            assert [m.body for m in await a.claim("alice", 10, now=time.time(), reader="~a-1")] == ["m3"]
            # Not while host-b heart-beats, even were alice placed here too.
            await Placement(a.pool, "host-a").publish(["alice"], now=time.time())
            assert await a.adopt_orphans(now=time.time(), down_after_s=DOWN_AFTER_S) == []
            assert (await leases())[:3] == b_holds
    # host-b's daemon dies: its store gone without releasing anything, its heartbeat goes stale.
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        stale = time.time() - 2 * DOWN_AFTER_S
        await admin.execute("UPDATE daemon_host SET heartbeat_at = %s WHERE host = 'host-b'", (stale,))
        await admin.execute("UPDATE placement SET heartbeat_at = %s WHERE host = 'host-b'", (stale,))
    async with open_pg_store(url, host="host-a") as a:
        # host-a takes alice over (its heartbeat places her here), then what host-b held comes back.
        assert await Placement(a.pool, "host-a").publish(["alice"], now=time.time()) == []
        assert await a.adopt_orphans(now=time.time(), down_after_s=DOWN_AFTER_S) == ["alice"]
        # (m3 too: host-a's own restart put its unnamed reader's lease back in the queue.)
        assert [m.body for m in await a.claim("alice", 10, now=time.time(), reader="~a-2")] == ["m0", "m3"]
        back = await a.reclaim("alice", "turn-loop", after=0, now=time.time())
        assert [(m.body, m.deliveries) for m in back] == [("m1", 2), ("m2", 2)]
        assert await a.adopt_orphans(now=time.time(), down_after_s=DOWN_AFTER_S) == []
    assert [(body, host) for body, _, _, _, host in await leases()] == [
        ("m0", "host-a"),
        ("m1", "host-a"),
        ("m2", "host-a"),
        ("m3", "host-a"),
    ]


async def test_a_spawned_agents_first_send_is_stored_under_the_trust_rules(
    pg_server: PgServer, short_tmpdir: Path
) -> None:
    # Row-level security lets a daemon's role send only as agents placed on its host: a new agent is
    # placed before its socket listens (not left to the next heartbeat), so its first send is stored.
    admin_url = pg_server.new_database()
    database = admin_url.split("/")[3].split("?")[0]
    role = f"one_{database}"
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    await prepare_database(admin_url, {role: "host-one"})
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    overrides = {"database": pg_server.url(database, user=role), "host_name": "host-one"}
    with anyio.fail_after(120):
        async with daemon_process(config, overrides=overrides), open_hive_client(config.host_socket) as operator:
            for name in ("alice", "bob", "carol"):
                await operator.spawn(name)
                async with open_hive_client(config.agent_socket(name)) as agent:
                    receipt = await agent.send("operator", f"first words of {name}")
                assert receipt.id > 0
