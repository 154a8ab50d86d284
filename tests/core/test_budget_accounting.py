"""The accounting, fast: usage sums by UTC day, which limit a spend reaches, and the keeper on a clock of its own.

The keeper runs on the real store, broker and event log (on each engine: SQLite in a temp dir, and
a database of the test PostgreSQL) with a clock the test moves, so a UTC midnight is a step of the
clock, not a wait.
"""

import json
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio

from hyperhive_core.broker.broker import Broker
from hyperhive_core.broker.events import EventLog
from hyperhive_core.broker.storage import MessageStore
from hyperhive_core.budget.keeper import NEW_DAY, BudgetKeeper
from hyperhive_core.budget.ledger import Ledger
from hyperhive_core.budget.limits import HIVE_SCOPE, BudgetSource, Limits, overrun
from hyperhive_core.budget.store import BudgetStore
from hyperhive_core.budget.usage import MAX_TURN_USD, Usage, next_day_at, turn_usage, utc_day
from tests.conftest import HiveDb

BEFORE_MIDNIGHT = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC).timestamp()
AFTER_MIDNIGHT = datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC).timestamp()


def usage_event(cost_usd: object = 0.0, input_tokens: object = 0, **more: object) -> dict[str, Any]:
    """A `usage` turn event as the agent's claude driver reports it."""
    return {
        "type": "hive",
        "subtype": "usage",
        "message": "…",
        "input_tokens": input_tokens,
        "output_tokens": 0,
        "cost_usd": cost_usd,
        **more,
    }


def test_utc_days_turn_at_midnight_utc_whatever_the_local_zone() -> None:
    assert (utc_day(BEFORE_MIDNIGHT), utc_day(AFTER_MIDNIGHT)) == ("2026-03-31", "2026-04-01")
    assert next_day_at(BEFORE_MIDNIGHT) == AFTER_MIDNIGHT - 1


def test_per_day_sums_start_over_at_utc_midnight_and_totals_do_not() -> None:
    ledger = Ledger()
    ledger.seed({"alice": Usage(input_tokens=100, cost_usd=1.0, turns=1)}, {}, "2026-03-31")
    ledger.add("alice", Usage(input_tokens=10, cost_usd=0.5, turns=1), "2026-03-31")
    ledger.add("bob", Usage(output_tokens=5, cost_usd=0.25, turns=1), "2026-03-31")
    assert ledger.today("2026-03-31", "alice") == Usage(input_tokens=10, cost_usd=0.5, turns=1)
    assert ledger.today("2026-03-31").cost_usd == 0.75
    assert ledger.today("2026-04-01", "alice") == Usage()  # the new day has used nothing yet
    ledger.add("alice", Usage(input_tokens=1, cost_usd=0.125, turns=1), "2026-04-01")
    assert ledger.today("2026-04-01", "alice") == Usage(input_tokens=1, cost_usd=0.125, turns=1)
    assert ledger.today("2026-04-01", "bob") == Usage()
    assert ledger.total("alice") == Usage(input_tokens=111, cost_usd=1.625, turns=3)
    assert ledger.total().cost_usd == 1.875
    # a turn stamped with an earlier day (the clock was set back) counts towards the day the ledger is on
    ledger.add("bob", Usage(cost_usd=1.0, turns=1), "2026-03-31")
    assert ledger.today("2026-04-01", "bob").cost_usd == 1.0
    assert ledger.agents() == ["alice", "bob"]


def test_a_limit_is_spent_once_usage_reaches_it_and_the_first_spent_one_is_named() -> None:
    today, total = Usage(input_tokens=900, cost_usd=0.5), Usage(input_tokens=5000, cost_usd=3.0)
    day = "2026-03-31"
    assert overrun("alice", Limits(usd_per_day=0.51, tokens_total=5001), today, total, day) is None
    spent = overrun("alice", Limits(usd_per_day=0.51, tokens_total=5000), today, total, day)
    assert spent is not None
    assert (spent.limit, spent.used, spent.allowed) == ("tokens_total", 5000, 5000)
    assert spent.describe() == "alice used 5,000 tokens of its 5,000-token total budget"
    daily = overrun(HIVE_SCOPE, Limits(usd_per_day=0.5), today, total, day)
    assert daily is not None
    assert daily.hive_wide
    assert daily.describe() == (
        "the hive used $0.5000 of its $0.5000 per-day budget (UTC day 2026-03-31; it renews at 00:00 UTC)"
    )
    zero = overrun("bob", Limits(usd_total=0), Usage(), Usage(), day)
    assert zero is not None  # a limit of 0 pauses before the first turn


def test_a_usage_report_is_bounded_and_can_never_lower_a_total() -> None:
    assert turn_usage({"type": "hive", "subtype": "turn_end"}) is None
    assert turn_usage({"type": "result", "total_cost_usd": 5}) is None  # claude's own events are not counted
    hostile = turn_usage(usage_event(cost_usd=-5.0, input_tokens=float("nan"), output_tokens=-1, duration_ms="x"))
    assert hostile == (Usage(turns=1), 0)
    huge = turn_usage(usage_event(cost_usd=1e300, input_tokens=10**30))
    assert huge is not None
    assert huge[0].cost_usd == MAX_TURN_USD
    assert huge[0].input_tokens == 10**9
    honest = turn_usage(usage_event(cost_usd=0.0016, input_tokens=200, cache_read_input_tokens=7, duration_ms=646))
    assert honest == (Usage(input_tokens=200, cache_read_tokens=7, cost_usd=0.0016, turns=1), 646)


@dataclass
class Rig:
    """A keeper over a real database, broker and event log, on a clock the test sets."""

    keeper: BudgetKeeper
    broker: Broker
    events: EventLog
    store: MessageStore
    clock: list[float]

    async def record(self, agent: str, events: list[dict[str, Any]]) -> None:
        """What `report_events` does with an agent's events: store them with their usage, then count it."""
        rows = self.keeper.usage_rows(agent, events)
        await self.events.append(agent, events, also=rows)
        await self.keeper.counted(agent, rows)

    def subtypes(self, agent: str) -> list[str]:
        """The agent's logged events, as `type/subtype`."""
        return [f"{row.type}/{json.loads(row.data)['subtype']}" for row in self.store.events(agent, after=0, limit=99)]

    async def notices(self, recipient: str) -> list[str]:
        """What the daemon told `recipient` (queued for it, unread)."""
        return [m.body for m in await self.store.peek(recipient, 100) if m.sender == "hive"]


class DesiredBudgets:
    """Limits kept outside the database, as desired-state files would keep them: another `BudgetSource`."""

    def __init__(self, files: dict[str, Limits]) -> None:
        self.files = files
        self.loaded: dict[str, Limits] = {}

    async def load(self) -> None:
        self.loaded = dict(self.files)

    def limits(self, scope: str) -> Limits:
        return self.loaded.get(scope, Limits())

    def scopes(self) -> list[str]:
        return sorted(self.loaded)

    async def put(self, scope: str, limits: Limits) -> None:
        self.files[scope] = self.loaded[scope] = limits


@asynccontextmanager
async def keeper_rig(
    hive_db: HiveDb, agents: tuple[str, ...] = ("alice", "bob", "hm1nd"), source: BudgetSource | None = None
) -> AsyncGenerator[Rig]:
    """A keeper on a new store of `hive_db` (a second rig on it is the daemon started again)."""
    store = await hive_db.open()
    broker = Broker(store)
    events = EventLog(store)
    clock = [BEFORE_MIDNIGHT - 60]
    keeper = BudgetKeeper(
        BudgetStore(store.engine), broker, events, lambda: agents, source=source, clock=lambda: clock[0]
    )
    broker.gate = keeper
    await keeper.open()
    await keeper.settle()
    yield Rig(keeper, broker, events, store, clock)


async def test_a_per_day_budget_pauses_an_agent_until_the_next_utc_day(hive_db: HiveDb) -> None:
    with anyio.fail_after(10):
        async with keeper_rig(hive_db) as rig:
            keeper, broker = rig.keeper, rig.broker
            await keeper.set_limits("alice", usd_per_day=1.0)
            await rig.record("alice", [usage_event(0.6)])
            assert keeper.paused("alice") is None
            rig.clock[0] = BEFORE_MIDNIGHT
            await rig.record("alice", [usage_event(0.6)])
            over = keeper.paused("alice")
            assert over is not None
            assert (over.limit, over.used, over.day) == ("usd_per_day", 1.2, "2026-03-31")
            assert keeper.paused("bob") is None
            await broker.send("operator", "alice", "work")
            assert (await broker.recv("alice", timeout_s=0, limit=10)).messages == []  # held, at once
            assert rig.store.queued("alice") == 1
            rig.clock[0] = AFTER_MIDNIGHT
            await keeper.new_day()
            got = await broker.recv("alice", timeout_s=0, limit=10)
            assert [m.body for m in got.messages] == ["work"]
            spend = keeper.spend("alice")
            assert (spend.day, spend.today.cost_usd, spend.total.cost_usd) == ("2026-04-01", 0, 1.2)
            assert rig.subtypes("alice") == ["hive/usage", "hive/usage", "hive/paused", "hive/held", "hive/resumed"]
            operator, manager = await rig.notices("operator"), await rig.notices("hm1nd")
    assert len(operator) == 2
    assert operator[0].startswith("budget: alice's turns are paused: alice used $1.2000 of its $1.0000 per-day")
    assert "hivectl budget alice --usd-per-day N" in operator[0]
    assert operator[1] == f"budget: alice resume their turns: {NEW_DAY}."
    assert [m.split(" (This notice")[0] for m in manager] == operator
    assert "do not reply" in manager[0]


async def test_the_hive_budget_pauses_every_agent_with_one_notice_and_a_waiting_recv_wakes_when_raised(
    hive_db: HiveDb,
) -> None:
    with anyio.fail_after(10):
        async with keeper_rig(hive_db) as rig:
            keeper, broker = rig.keeper, rig.broker
            await keeper.set_limits(HIVE_SCOPE, tokens_total=1000)
            await rig.record("alice", [usage_event(input_tokens=600), usage_event(input_tokens=400)])
            assert [keeper.paused(a) is not None for a in ("alice", "bob", "hm1nd")] == [True, True, True]
            await broker.send("operator", "bob", "for bob")
            got: list[str] = []
            async with anyio.create_task_group() as tg:

                async def bob_waits() -> None:
                    got.extend(m.body for m in (await broker.recv("bob", timeout_s=30, limit=10)).messages)

                tg.start_soon(bob_waits)
                await anyio.wait_all_tasks_blocked()
                assert got == []
                await keeper.set_limits(HIVE_SCOPE, tokens_total=2000)
            assert got == ["for bob"]
            assert keeper.spend(HIVE_SCOPE).total.tokens == 1000
            [paused, resumed] = await rig.notices("operator")
    assert paused.startswith("budget: every agent's turns are paused (alice, bob, hm1nd): the hive used 1,000 tokens")
    assert resumed == "budget: alice, bob, hm1nd resume their turns: the operator changed the budget."


async def test_usage_and_budgets_outlive_the_keeper_and_a_pause_is_taken_up_quietly(hive_db: HiveDb) -> None:
    with anyio.fail_after(10):
        async with keeper_rig(hive_db) as rig:
            await rig.keeper.set_limits("alice", usd_total=0.5)
            await rig.record("alice", [usage_event(0.5, input_tokens=10)])
            told = await rig.notices("operator")
            assert len(told) == 1
        async with keeper_rig(hive_db) as again:
            assert again.keeper.limits("alice") == Limits(usd_total=0.5)
            assert again.keeper.spend("alice").total == Usage(input_tokens=10, cost_usd=0.5, turns=1)
            assert again.keeper.paused("alice") is not None
            assert await again.notices("operator") == told  # nothing new: the operator was told before
            # clearing the limits resumes it; an empty budget is forgotten
            await again.keeper.set_limits("alice", clear=True)
            assert again.keeper.paused("alice") is None
            assert again.keeper.scopes() == []
            assert again.subtypes("alice") == ["hive/usage", "hive/paused", "hive/paused", "hive/resumed"]


async def test_the_keeper_enforces_limits_from_another_budget_source_unchanged(hive_db: HiveDb) -> None:
    files = {"bob": Limits(tokens_per_day=50)}
    with anyio.fail_after(10):
        async with keeper_rig(hive_db, source=DesiredBudgets(files)) as rig:
            await rig.record("bob", [usage_event(input_tokens=50)])
            assert rig.keeper.paused("bob") is not None
            await rig.broker.send("operator", "bob", "waits")
            assert (await rig.broker.recv("bob", timeout_s=0, limit=1)).messages == []
            await rig.keeper.set_limits("bob", tokens_per_day=100)
            assert rig.keeper.paused("bob") is None
            assert (await rig.notices("operator"))[
                -1
            ] == "budget: bob resume their turns: the operator changed the budget."
    assert files == {"bob": Limits(tokens_per_day=100)}
