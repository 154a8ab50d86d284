"""Budgets through the real daemon and its sockets: agents report usage as their turn loop does.

The agents here are idle processes; the test speaks on an agent's socket for it (`report_events`,
`recv`), exactly as its turn loop would. The claude end of it is in test_claude_e2e.py.
"""

import sqlite3
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from hyperhive_core.broker.store import open_engine
from hyperhive_core.client import HiveClient, ToolCallError, open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import running_daemon
from hyperhive_core.mcp.models import BudgetView
from tests.helpers import IDLE_AGENT, hive_config


def usage(cost_usd: float, input_tokens: int = 100, output_tokens: int = 20) -> dict[str, Any]:
    """A turn's `usage` event, as the claude driver reports it after claude's result."""
    return {
        "type": "hive",
        "subtype": "usage",
        "message": "…",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cost_usd": cost_usd,
        "duration_ms": 500,
    }


@asynccontextmanager
async def as_agent(config: HiveConfig, name: str) -> AsyncGenerator[HiveClient]:
    """A session on `name`'s own socket: what its turn loop speaks."""
    async with open_hive_client(config.agent_socket(name)) as client:
        yield client


async def logged_until(operator: HiveClient, agent: str, wanted: Callable[[dict[str, Any]], bool]) -> None:
    """Follow `agent`'s event log until an event satisfies `wanted`."""
    after: int | None = None
    while True:
        page = await operator.agent_logs(agent, after=after, wait_s=5)
        if any(wanted(event.data) for event in page.events):
            return
        after = page.last_id if page.last_id is not None else after


def from_hive(client_messages: list[Any]) -> list[str]:
    return [m.body for m in client_messages if m.sender == "hive"]


async def test_a_spent_budget_holds_the_agents_messages_tells_operator_and_manager_and_a_raise_resumes_it(
    short_tmpdir: Path,
) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, manager_command=IDLE_AGENT)
    with anyio.fail_after(30):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            await operator.spawn_manager()
            view = await operator.set_budget("alice", usd_total=0.01)
            assert (view.scope, view.limits.usd_total, view.paused) == ("alice", 0.01, "")
            async with as_agent(config, "alice") as alice:
                await alice.report_events([{"type": "result", "total_cost_usd": 0.02}, usage(0.02)])
                status = await operator.status("alice")
                assert status.paused == "budget: alice used $0.0200 of its $0.0100 total budget"
                assert (status.usage_total.cost_usd, status.usage_total.tokens, status.usage_total.turns) == (
                    0.02,
                    120,
                    1,
                )
                # its messages stay queued: recv hands out nothing, at once or after waiting
                await operator.send("alice", "more work")
                assert (await alice.recv(timeout_s=0, after=0, reader="turn-loop")).messages == []
                assert (await operator.inbox("alice")).queued == 1
                told = from_hive((await operator.recv(timeout_s=5)).messages)
                manager_told = from_hive((await operator.inbox("hm1nd")).messages)
                handed: list[str] = []
                async with anyio.create_task_group() as tg:

                    async def turn_loop_waits() -> None:
                        got = await alice.recv(timeout_s=30, after=0, reader="turn-loop")
                        handed.extend(m.body for m in got.messages)

                    tg.start_soon(turn_loop_waits)
                    await operator.send("alice", "and this")
                    # the waiting recv saw it arrive and held it (so it waits in the daemon now)
                    await logged_until(operator, "alice", lambda e: e.get("subtype") == "held" and e["queued"] == 2)
                    raised = await operator.set_budget("alice", usd_total=1.0)
                    assert raised.paused == ""
                assert handed == ["more work", "and this"]
                assert (await operator.status("alice")).paused == ""
                resumed = from_hive((await operator.recv(timeout_s=5)).messages)
            logged = [e.data for e in (await operator.agent_logs("alice")).events]
    assert told == [
        "budget: alice's turns are paused: alice used $0.0200 of its $0.0100 total budget. Its messages stay "
        "queued; raising its budget resumes it (hivectl budget alice --usd-total N)."
    ]
    assert manager_told == [told[0] + " (This notice is from the hive daemon: do not reply to it; tell the operator "
                            "if the work needs more.)"]  # fmt: skip
    assert resumed == ["budget: alice resume their turns: the operator changed the budget."]
    assert [e.get("subtype") for e in logged] == [None, "usage", "paused", "held", "held", "resumed"]
    assert logged[2]["limit"] == "usd_total"
    assert logged[3]["queued"] == 1


async def test_usage_shows_per_agent_and_for_the_hive_and_a_kill_does_not_forgive_it(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    with anyio.fail_after(30):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            await operator.spawn("bob")
            async with as_agent(config, "alice") as alice:
                await alice.report_events([usage(0.25, 1000, 100), {"type": "hive", "subtype": "turn_end"}])
                await alice.report_events([usage(0.5, 2000, 200)])
            async with as_agent(config, "bob") as bob:
                await bob.report_events([usage(0.125, 10, 1)])
            agents = {a.name: a for a in await operator.list_agents()}
            assert (agents["alice"].usage_total.tokens, agents["alice"].usage_total.cost_usd) == (3300, 0.75)
            assert agents["alice"].usage_today == agents["alice"].usage_total
            assert agents["bob"].usage_total.turns == 1
            hive = await operator.hive_status()
            assert (hive.usage_total.tokens, hive.usage_total.cost_usd, hive.usage_total.turns) == (3311, 0.875, 3)
            assert hive.paused == []
            # the hive's budget: spent already, so everyone pauses, and status says so
            await operator.set_budget(tokens_per_day=3000)
            # the operator is no agent: it is handed the notice while every agent is paused
            [notice] = (await operator.recv(timeout_s=0)).messages
            assert notice.sender == "hive"
            assert notice.body.startswith("budget: every agent's turns are paused (alice, bob): the hive used 3,311")
            hive = await operator.hive_status()
            assert hive.paused == ["alice", "bob"]
            assert hive.budget.tokens_per_day == 3000
            assert any(
                w.startswith("every agent's turns are paused: budget: the hive used 3,311") for w in hive.warnings
            )
            await operator.set_budget(clear=True)
            # a kill and a spawn under the same name keep its usage: no fresh budget by respawning
            await operator.set_budget("alice", usd_total=0.75)
            await operator.kill("alice")
            budgets = await operator.budgets()
            assert [v.scope for v in budgets.agents] == ["alice", "bob"]  # killed, yet its usage counts
            assert budgets.hive.total.cost_usd == 0.875
            reborn = await operator.spawn("alice")
            assert reborn.usage_total.cost_usd == 0.75
            assert reborn.paused.startswith("budget: alice used $0.7500 of its $0.7500 total budget")


async def test_the_daemon_restarts_with_its_usage_and_budgets_and_a_paused_agent_stays_paused_quietly(
    short_tmpdir: Path,
) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    with anyio.fail_after(30):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            await operator.set_budget("alice", tokens_total=100)
            async with as_agent(config, "alice") as alice:
                await alice.report_events([usage(0.01)])
            await operator.send("alice", "queued before the restart")
            assert len(from_hive((await operator.recv(timeout_s=5)).messages)) == 1
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            status = await operator.status("alice")
            assert status.paused == "budget: alice used 120 tokens of its 100-token total budget"
            assert status.budget.tokens_total == 100
            async with as_agent(config, "alice") as alice:
                assert (await alice.recv(timeout_s=0, after=0, reader="turn-loop")).messages == []
            assert (await operator.recv(timeout_s=0)).messages == []  # told once, before the restart
            await operator.set_budget("alice", tokens_total=1000)
            async with as_agent(config, "alice") as alice:
                got = await alice.recv(timeout_s=5, after=0, reader="turn-loop")
    assert [m.body for m in got.messages] == ["queued before the restart"]


async def test_budget_changes_that_cannot_be_made_are_refused_saying_what_to_do(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, manager_command=IDLE_AGENT)
    with anyio.fail_after(30):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            await operator.spawn_manager()
            refusals: list[str] = []
            for agent, limits in (
                ("ghost", {"usd_total": 1}),
                ("alice", {}),
                ("alice", {"usd_per_day": -1}),
                ("alice", {"tokens_total": 10**16}),
            ):
                with pytest.raises(ToolCallError) as caught:
                    await operator.call("set_budget", {"agent": agent, **limits}, BudgetView)
                refusals.append(caught.value.reason)
            async with as_agent(config, "alice") as alice:
                with pytest.raises(ToolCallError) as by_agent:
                    await alice.set_budget("alice", usd_total=100)
            async with as_agent(config, "hm1nd") as manager:
                with pytest.raises(ToolCallError) as by_manager:
                    await manager.set_budget("alice", usd_total=100)
            assert (await operator.budgets()).agents[0].limits.usd_total is None
    assert refusals[0] == "unknown agent 'ghost'; known: alice, hm1nd"
    assert refusals[1].startswith(
        "set_budget: give a limit to set (usd_per_day, tokens_per_day, usd_total, tokens_total)"
    )
    assert refusals[2].startswith(
        "set_budget: invalid arguments: usd_per_day: Input should be greater than or equal to 0"
    )
    assert refusals[3].startswith("set_budget: invalid arguments: tokens_total: Input should be less than or equal to")
    assert by_agent.value.reason == "alice may not call set_budget: only the operator sees and sets budgets"
    assert "Unknown tool" in by_manager.value.reason


def test_a_database_from_before_budgets_gains_their_tables_when_opened(short_tmpdir: Path) -> None:
    db = short_tmpdir / "broker.sqlite"
    open_engine(db).dispose()
    with sqlite3.connect(db) as old:
        old.execute("DROP TABLE usage")
        old.execute("DROP TABLE budget")
        old.execute(
            "INSERT INTO agent (name, backend, enabled, created_at, role, driver) VALUES ('a', 'x', 1, 0, '', 'auto')"
        )
    engine = open_engine(db)
    engine.dispose()
    with sqlite3.connect(db) as upgraded:
        tables = {row[0] for row in upgraded.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        indexes = {row[0] for row in upgraded.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        agents = upgraded.execute("SELECT name FROM agent").fetchall()
    assert {"usage", "budget"} <= tables
    assert "ix_usage_agent_day" in indexes
    assert agents == [("a",)]
