"""A hive across hosts: one desired state (a shared git remote), each daemon running the agents placed
on its host, drain. Two daemons on one PostgreSQL, with separate run and state dirs, stand for two hosts."""

import functools
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import psycopg
import pytest

from hyperhive_core.approvals.views import CommitReceipt
from hyperhive_core.broker import placement
from hyperhive_core.client import open_hive_client
from hyperhive_core.daemon import running_daemon
from hyperhive_core.errors import ToolCallError
from hyperhive_core.mcp.models import AgentInfo
from hyperhive_core.states import AgentState
from tests.helpers import IDLE_AGENT, daemon_process, hive_config
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


GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "laptop",
    "GIT_AUTHOR_EMAIL": "op@laptop.invalid",
    "GIT_COMMITTER_NAME": "laptop",
    "GIT_COMMITTER_EMAIL": "op@laptop.invalid",
}


async def git(*args: str | Path, cwd: Path | None = None) -> str:
    """Run git as an operator on a laptop would (their own config left out)."""
    done = await anyio.run_process(["git", *map(str, args)], cwd=cwd, env={**os.environ, **GIT_ENV}, check=True)
    return done.stdout.decode()


async def bare_remote(root: Path) -> Path:
    """The shared desired state: an empty bare repository every host's daemon mirrors."""
    path = root / "desired.git"
    await git("init", "--quiet", "--bare", "--initial-branch=main", path)
    return path


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait (the caller bounds it) until `check` holds, looking again every tenth of a second."""
    while True:
        if await check():
            return
        await anyio.sleep(0.1)  # another process's state: nothing in this one to wait on


async def test_agents_are_run_by_the_host_main_places_them_on_and_drained_from_a_dead_one(
    pg_server: PgServer, short_tmpdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A host is down after 3 s of silence (host a runs in this process, and judges it).
    monkeypatch.setattr(placement, "DOWN_AFTER_S", 3.0)
    url = pg_server.new_database()
    remote = await bare_remote(short_tmpdir)
    shared = {"database": url, "desired_remote": str(remote), "desired_fetch_s": 0.2}
    a = hive_config(short_tmpdir / "a", agent_command=IDLE_AGENT, host_name="host-a", **shared)
    b = hive_config(short_tmpdir / "b", agent_command=IDLE_AGENT)
    on_b = {"host_name": "host-b", **shared}
    with anyio.fail_after(120):
        async with running_daemon(a), open_hive_client(a.host_socket) as operator_a:
            async with daemon_process(b, overrides=on_b) as doomed, open_hive_client(b.host_socket) as operator_b:
                # Both hosts commit to main at once: each change lands (the loser of the race retries).
                async with anyio.create_task_group() as tg:
                    tg.start_soon(functools.partial(operator_a.spawn, "alice"))
                    tg.start_soon(functools.partial(operator_b.spawn, "carol"))
                assert (await operator_a.spawn("bob", host="host-b")).host == "host-b"

                async def bob_runs_on_b() -> bool:
                    try:
                        return (await operator_b.status("bob")).state == AgentState.RUNNING
                    except ToolCallError:
                        return False  # host b has not fetched the main that has bob yet

                await until(bob_runs_on_b)
                wanted = {
                    n: ("host-a" if n == "alice" else "host-b", AgentState.RUNNING) for n in ("alice", "bob", "carol")
                }

                async def both_see_the_hive() -> bool:
                    seen = [
                        {i.name: (i.host, i.state) for i in await o.list_agents()} for o in (operator_a, operator_b)
                    ]
                    return seen == [wanted, wanted]

                await until(both_see_the_hive)
                assert a.agent_socket("alice").exists()
                assert not a.agent_socket("bob").exists()
                assert not b.agent_socket("alice").exists()
                # A send from host a's agent to host b's just works.
                async with (
                    open_hive_client(a.agent_socket("alice")) as alice,
                    open_hive_client(b.agent_socket("bob")) as bob,
                ):
                    peers = {peer.name: peer.state for peer in (await alice.peers()).peers}
                    assert peers == {"operator": "operator", "bob": AgentState.RUNNING, "carol": AgentState.RUNNING}
                    await alice.send("bob", "hello across hosts")
                    [got] = (await bob.recv(timeout_s=30)).messages
                    assert (got.sender, got.body) == ("alice", "hello across hosts")
                    # Queued for bob, not handed out: it must reach bob wherever he runs next.
                    await alice.send("bob", "before the drain")

                # An operator on a laptop pushes to the desired remote: the right host applies it.
                laptop = short_tmpdir / "laptop"
                await git("clone", "--quiet", remote, laptop)
                bob_file = laptop / "agents" / "bob.toml"
                bob_file.write_text('role = "edited on a laptop"\n' + bob_file.read_text())
                (laptop / "agents" / "dave.toml").write_text('role = "nobody places me"\n')
                await git("commit", "--quiet", "-am", "edit bob", cwd=laptop)
                await git("add", "agents/dave.toml", cwd=laptop)
                await git("commit", "--quiet", "-m", "add dave without a host", cwd=laptop)
                await git("push", "--quiet", "origin", "main", cwd=laptop)

                async def bob_edited() -> bool:
                    return (await operator_b.status("bob")).role == "edited on a laptop"

                await until(bob_edited)

                # Each host fetches on its own clock: host-a may see the push after host-b did.
                async def a_has_fetched() -> bool:
                    return any(s.agent == "dave" for s in (await operator_a.plan()).steps)

                await until(a_has_fetched)
                # A file that names no host on a shared hive is run by nobody, and the plan says what to do.
                plan = await operator_a.plan()
                [dave] = [s for s in plan.steps if s.agent == "dave"]
                assert dave.action == "unplaced"
                assert "hivectl place dave HOST" in dave.reason
                warnings = (await operator_a.hive_status()).warnings
                assert any(w.startswith("placed on no host, so run by nobody: dave") for w in warnings)

                doomed.kill()
                assert await doomed.wait() == -9

                async def b_is_down() -> bool:
                    listed = {i.name: i for i in await operator_a.list_agents()}
                    return "stopped heart-beating" in listed["bob"].detail

                await until(b_is_down)
            # Draining onto a host nobody has seen is refused, with what to do.
            with pytest.raises(ToolCallError) as refused:
                await operator_a.call("drain", {"host": "host-b", "to": "host-z"}, CommitReceipt)
            assert "never run a daemon" in refused.value.reason
            assert "--force" in refused.value.reason
            drained = await operator_a.call("drain", {"host": "host-b"}, CommitReceipt)
            assert drained.summary == "drain host-b to host-a"
            assert {(s.agent, s.action, s.ok) for s in drained.report.steps} == {
                ("bob", "create", True),
                ("carol", "create", True),
            }
            async with open_hive_client(a.agent_socket("bob")) as bob:
                assert "before the drain" in [m.body for m in (await bob.recv(timeout_s=30)).messages]
            # Host b comes back (in this process: one daemon start less to wait for) and runs none of
            # them: main places them on host a now.
            again = b.model_copy(update=on_b)
            async with running_daemon(again), open_hive_client(b.host_socket) as operator_b:
                for name in ("bob", "carol"):
                    assert (await operator_b.status(name)).host == "host-a"
                assert [(s.agent, s.action) for s in (await operator_b.plan()).steps] == [("dave", "unplaced")]


async def test_on_one_host_a_file_naming_another_host_is_reported_and_not_run_here(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, host_name="here")
    with anyio.fail_after(60):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            placed = await operator.spawn("bob", host="there")
            assert (placed.state, placed.host, placed.detail) == (AgentState.MISSING, "there", "pending on there")
            assert not config.agent_socket("bob").exists()
            [step] = (await operator.plan()).steps
            assert (step.agent, step.action) == ("bob", "elsewhere")
            assert "placed on host there, not on this one (here)" in step.reason
            # Placed here, it runs here; placed away again, it stops here (its workspace stays).
            receipt = await operator.call("place", {"name": "bob", "host": "here"}, CommitReceipt)
            assert [(s.agent, s.action, s.ok) for s in receipt.report.steps] == [("bob", "create", True)]
            receipt = await operator.call("place", {"name": "bob", "host": "there", "force": True}, CommitReceipt)
            assert [(s.agent, s.action, s.ok) for s in receipt.report.steps] == [("bob", "depart", True)]
            assert (config.agent_state_dir("bob") / "work").is_dir()
            listed = {a.name: (a.state, a.detail) for a in await operator.list_agents()}
            assert listed["bob"] == (AgentState.MISSING, "pending on there")
            # Another host's agent is rebuilt there, not here.
            with pytest.raises(ToolCallError, match="bob is placed on host there, not on this one"):
                await operator.call("rebuild", {"name": "bob"}, AgentInfo)
            # Without --force, a host no daemon of the hive ever ran on is refused.
            with pytest.raises(ToolCallError, match="has never run a daemon of this hive"):
                await operator.call("place", {"name": "alice", "host": "there"}, CommitReceipt)
