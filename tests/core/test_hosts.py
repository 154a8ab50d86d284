"""A hive across hosts: one desired state (a shared git remote), each daemon running the agents placed
on its host, drain. Two daemons on one PostgreSQL, with separate run and state dirs, stand for two hosts."""

from pathlib import Path

import anyio
import psycopg

from hyperhive_core.client import open_hive_client
from hyperhive_core.daemon import running_daemon
from tests.helpers import IDLE_AGENT, hive_config
from tests.postgres import PgServer


async def state_rows(url: str) -> dict[str, str]:
    """The reconcile state rows of the shared database: name -> state."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = await (await conn.execute("SELECT name, state FROM agent_state")).fetchall()
    return {str(name): str(state) for name, state in rows}


async def journal_of(url: str, agent: str) -> list[str]:
    """The reconcile journal's steps for `agent`, oldest first."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = await (
            await conn.execute("SELECT step FROM reconcile_journal WHERE agent = %s ORDER BY id", (agent,))
        ).fetchall()
    return [str(step) for (step,) in rows]


async def test_a_daemon_starting_leaves_another_hosts_agents_and_their_rows_alone(
    pg_server: PgServer, short_tmpdir: Path
) -> None:
    url = pg_server.new_database()
    one = hive_config(short_tmpdir / "one", agent_command=IDLE_AGENT, database=url, host_name="host-one")
    two = hive_config(short_tmpdir / "two", agent_command=IDLE_AGENT, database=url, host_name="host-two")
    with anyio.fail_after(60):
        async with running_daemon(two), open_hive_client(two.host_socket) as operator_two:
            await operator_two.spawn("bob")
            # host one starts after bob runs on host two: its reconciler reads the shared rows.
            async with running_daemon(one):
                pass
            assert (await state_rows(url)).get("bob") == "Ready"
            assert await journal_of(url, "bob") == ["create"]
            assert (await operator_two.status("bob")).sync == "Ready"
