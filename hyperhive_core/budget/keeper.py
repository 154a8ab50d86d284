"""The budget keeper: counts each turn's usage and pauses an agent's turns while a budget is spent.

A pause is the broker's recv gate: a paused agent's `recv` hands nothing out, so its messages stay
queued, and the turn it is in (if any) finishes but no next one starts. The gate reads the totals
and limits in memory on each call, so it is right at every moment, also for an agent spawned or
restored a moment ago. Changes are judged after every recorded turn, every change of a budget and
at each UTC midnight: each is told to the operator and the manager (a message each, from `hive`)
and written to the agent's event log. A pause found at daemon start (they were told before), or of
an agent new to the keeper, is only written to its log.

What the keeper can know: the usage the agent's turn loop reports (see the README's trust model).
It bounds each report, never lets one lower a total, and keeps usage by name (a kill and a spawn
do not reset it), but an agent that lies about its turns cannot be caught here.
"""

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskStatus

from hyperhive_core.broker.broker import Broker
from hyperhive_core.broker.events import EventLog
from hyperhive_core.broker.models import UsageRow
from hyperhive_core.budget.ledger import Ledger
from hyperhive_core.budget.limits import HIVE_SCOPE, NO_LIMITS, BudgetSource, LimitName, Limits, Overrun, overrun
from hyperhive_core.budget.store import BudgetStore, StoredBudgets, row_usage, usage_row
from hyperhive_core.budget.usage import Usage, next_day_at, turn_usage, utc_day
from hyperhive_core.errors import HiveError
from hyperhive_core.names import HIVE, MANAGER, OPERATOR

logger = logging.getLogger(__name__)

# Woken this long after 00:00 UTC, so the clock surely reads the new day.
MIDNIGHT_SLACK_S = 1.0
RAISED = "the operator changed the budget"
NEW_DAY = "a new UTC day began"
FLAGS: dict[LimitName, str] = {
    "usd_per_day": "--usd-per-day",
    "tokens_per_day": "--tokens-per-day",
    "usd_total": "--usd-total",
    "tokens_total": "--tokens-total",
}
TO_MANAGER = " (This notice is from the hive daemon: do not reply to it; tell the operator if the work needs more.)"


@dataclass(frozen=True, slots=True)
class Spend:
    """One scope's limits and what it used, on UTC day `day` and in total; `paused` when spent."""

    limits: Limits
    today: Usage
    total: Usage
    day: str
    paused: Overrun | None = None


def _event(subtype: str, message: str, **fields: object) -> dict[str, Any]:
    return {"type": "hive", "subtype": subtype, "message": message, **fields}


class BudgetKeeper:
    """Usage and budgets for the hive; the broker's recv gate (`hold`)."""

    def __init__(
        self,
        store: BudgetStore,
        broker: Broker,
        events: EventLog,
        agents: Callable[[], Iterable[str]],
        *,
        source: BudgetSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        # The limits: the operator's settings in the database unless another source is given.
        self._source = source or StoredBudgets(store, clock=clock)
        self._broker = broker
        self._events = events
        # The hive's agents now (the manager among them): pauses are judged for these.
        self._agents = agents
        self._clock = clock
        self._ledger = Ledger()
        # The pauses last judged (and told of); the gate itself reads the totals live.
        self._paused: dict[str, Overrun] = {}
        # Agents judged before: a pause of one not among them is not news to anyone.
        self._known: set[str] = set()
        # Queued messages a paused agent was last told about in its log, so each arrival is noted once.
        self._held: dict[str, int] = {}
        # Records, budget changes and the midnight check judge pauses one at a time.
        self._lock = anyio.Lock()

    # the limits, as the source has them

    def limits(self, scope: str) -> Limits:
        """`scope`'s limits (an agent's name, or `hive`)."""
        return self._source.limits(scope)

    def scopes(self) -> list[str]:
        """Every scope with limits, sorted."""
        return self._source.scopes()

    # views

    def spend(self, scope: str) -> Spend:
        """`scope`'s limits and usage (today is the clock's UTC day), and its pause if paused."""
        day = utc_day(self._clock())
        agent = None if scope == HIVE_SCOPE else scope
        today, total = self._ledger.today(day, agent), self._ledger.total(agent)
        paused = self._overrun(agent, day)
        return Spend(self.limits(scope), today, total, day, paused)

    def paused(self, agent: str) -> Overrun | None:
        """Why `agent`'s turns are paused (its budget or the hive's is spent), if they are."""
        return self._overrun(agent, utc_day(self._clock()))

    def used(self) -> list[str]:
        """Every agent that has used anything, sorted (killed ones too)."""
        return self._ledger.agents()

    # life

    async def open(self) -> None:
        """Read the usage sums and budgets from the database: from now on the gate holds who is over.

        Raises:
            StorageError: the database cannot be read.
        """
        now = self._clock()
        totals, today = await anyio.to_thread.run_sync(self._store.sums, utc_day(now))
        self._ledger.seed(totals, today, utc_day(now))
        await self._source.load()

    async def settle(self) -> None:
        """Take up the pauses of the hive's agents quietly (at start: they were told when they began)."""
        async with self._lock:
            await self._judge(self._clock(), why=None)

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Judge the pauses again at each UTC midnight (per-day budgets renew), until cancelled."""
        task_status.started()
        while True:
            now = self._clock()
            await anyio.sleep(next_day_at(now) - now + MIDNIGHT_SLACK_S)
            await self.new_day()

    async def new_day(self) -> None:
        """Resume the agents a per-day budget paused, now that the UTC day has changed."""
        async with self._lock:
            await self._judge(self._clock(), why=NEW_DAY)

    # writes

    def usage_rows(self, agent: str, events: list[dict[str, Any]]) -> list[UsageRow]:
        """The usage rows for the `usage` events among `agent`'s turn events, stamped now.

        The caller commits them with the events that report them (one transaction: the log and
        the counts cannot disagree), then hands them to `counted`.
        """
        found = [usage for event in events if (usage := turn_usage(event)) is not None]
        if not found:
            return []
        now = self._clock()
        return [usage_row(agent, usage, duration_ms=duration_ms, now=now) for usage, duration_ms in found]

    async def counted(self, agent: str, rows: list[UsageRow]) -> None:
        """Count committed usage rows of `agent`; pause it (or the hive) when that spends a budget."""
        if not rows:
            return
        async with self._lock:
            for row in rows:
                self._ledger.add(agent, row_usage(row), row.day)
            # a turn only adds: the one resume it can bring is a per-day budget the new day renewed
            await self._judge(self._clock(), why=NEW_DAY)

    async def set_limits(self, scope: str, *, clear: bool = False, **changes: float | int | None) -> Limits:
        """Change `scope`'s limits (`clear` first removes them all); resumes what is no longer spent.

        Raises:
            StorageError: the database refused the change; nothing changed.
        """
        async with self._lock:
            limits = (NO_LIMITS if clear else self.limits(scope)).changed(**changes)
            await self._source.put(scope, limits)
            await self._judge(self._clock(), why=RAISED)
        return limits

    # the broker's recv gate

    async def hold(self, recipient: str, queued: int) -> bool:
        """Whether `recipient`'s messages must stay queued now (its turns are paused).

        A message that arrives while it is paused is noted once in its event log. The operator is
        never held: it must read the notices.
        """
        if recipient == OPERATOR or not self._source.scopes():
            return False  # no budget at all: nothing to look up on this hot path
        over = self._overrun(recipient, utc_day(self._clock()))
        if over is None:
            return False
        if queued > self._held.get(recipient, 0):
            self._held[recipient] = queued
            note = f"{queued} message(s) wait: its turns are paused ({over.describe()})"
            await self._log(recipient, _event("held", note, queued=queued))
        return True

    # judging

    def _overrun(self, agent: str | None, day: str) -> Overrun | None:
        """The spent budget that pauses `agent` (None: that pauses every agent), if any; from memory."""
        ledger = self._ledger
        hive = overrun(HIVE_SCOPE, self.limits(HIVE_SCOPE), ledger.today(day), ledger.total(), day)
        if hive is not None or agent is None:
            return hive
        return overrun(agent, self.limits(agent), ledger.today(day, agent), ledger.total(agent), day)

    async def _judge(self, now: float, *, why: str | None) -> None:
        """Pause every agent whose budget (or the hive's) is spent, resume the others; tell of each change.

        `why` says why a resume happens; None (at start) writes the events but sends no messages.
        """
        day = utc_day(now)
        agents = list(self._agents())
        paused: list[tuple[str, Overrun]] = []
        quiet: list[tuple[str, Overrun]] = []
        resumed: list[str] = []
        for agent in agents:
            over = self._overrun(agent, day)
            before = self._paused.get(agent)
            if over is None:
                if before is not None:
                    del self._paused[agent]
                    self._held.pop(agent, None)
                    resumed.append(agent)
                continue
            self._paused[agent] = over  # the amounts grow while it stays paused
            if before is None:
                (paused if why is not None and agent in self._known else quiet).append((agent, over))
        for gone in set(self._paused) - set(agents):
            del self._paused[gone]
            self._held.pop(gone, None)
        self._known = set(agents)
        for agent in resumed:
            self._broker.wake(agent)  # its waiting recv looks again
        await self._tell(paused, quiet, resumed, why or RAISED)

    async def _tell(
        self, paused: list[tuple[str, Overrun]], quiet: list[tuple[str, Overrun]], resumed: list[str], why: str
    ) -> None:
        for agent, over in [*paused, *quiet]:
            note = f"turns paused: {over.describe()}; its messages stay queued until the budget is raised"
            await self._log(agent, _event("paused", note, scope=over.scope, limit=over.limit))
        for agent in resumed:
            await self._log(agent, _event("resumed", f"turns resume: {why}"))
        notices: list[str] = []
        hive_wide = [(agent, over) for agent, over in paused if over.hive_wide]
        if hive_wide:
            over = hive_wide[0][1]
            names = ", ".join(agent for agent, _ in hive_wide)
            notices.append(
                f"budget: every agent's turns are paused ({names}): {over.describe()}. Their messages stay "
                f"queued; raising the hive's budget resumes them (hivectl budget {FLAGS[over.limit]} N)."
            )
        for agent, over in paused:
            if not over.hive_wide:
                notices.append(
                    f"budget: {agent}'s turns are paused: {over.describe()}. Its messages stay queued; raising "
                    f"its budget resumes it (hivectl budget {agent} {FLAGS[over.limit]} N)."
                )
        if resumed:
            notices.append(f"budget: {', '.join(resumed)} resume their turns: {why}.")
        for body in notices:
            await self._notify(body)

    async def _notify(self, body: str) -> None:
        """Tell the operator, and the manager when the hive has one; a refused message is logged, not raised."""
        recipients = [(OPERATOR, body)]
        if MANAGER in self._agents():
            recipients.append((MANAGER, body + TO_MANAGER))
        for recipient, text in recipients:
            try:
                await self._broker.send(HIVE, recipient, text)
            except HiveError as exc:
                logger.warning("could not tell %s about a budget: %s", recipient, exc)

    async def _log(self, agent: str, event: dict[str, Any]) -> None:
        try:
            await self._events.append(agent, [event])
        except HiveError as exc:
            logger.warning("could not log a budget event of %s: %s", agent, exc)
