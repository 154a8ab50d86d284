"""The usage and budget tables: plain synchronous SQL, one transaction per call (run it in a thread).

Usage rows are written with the turn events that report them (`EventLog.append(also=...)`), and
kept for good (one per model turn, a few dozen bytes): the totals and per-day sums a budget is
checked against are read from them once, when the daemon starts.
"""

import functools
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from typing import Any

import anyio
from sqlalchemy import Engine, Row, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from hyperhive_core.broker.engine_errors import engine_error
from hyperhive_core.broker.models import BudgetRow, UsageRow
from hyperhive_core.budget.limits import NO_LIMITS, Limits
from hyperhive_core.budget.usage import Usage, utc_day

_SUMS = (
    "SELECT agent, sum(input_tokens), sum(output_tokens), sum(cache_creation_tokens), sum(cache_read_tokens), "
    "sum(cost_usd), count(*) FROM usage {where} GROUP BY agent"
)


def _by_agent(rows: Sequence[Row[Any]]) -> dict[str, Usage]:
    sums: dict[str, Usage] = {}
    for row in rows:
        agent, *numbers = tuple(row)
        i, o, cw, cr, usd, n = (number or 0 for number in numbers)
        sums[str(agent)] = Usage(int(i), int(o), int(cw), int(cr), float(usd), int(n))
    return sums


def usage_row(agent: str, usage: Usage, *, duration_ms: int, now: float) -> UsageRow:
    """The row that records one turn's `usage` at time `now` (its UTC day is what per-day budgets count)."""
    return UsageRow(
        agent=agent,
        created_at=now,
        day=utc_day(now),
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_creation_tokens=usage.cache_creation_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cost_usd=usage.cost_usd,
        duration_ms=duration_ms,
    )


def row_usage(row: UsageRow) -> Usage:
    """A usage row's usage: one turn."""
    return Usage(
        row.input_tokens, row.output_tokens, row.cache_creation_tokens, row.cache_read_tokens, row.cost_usd, turns=1
    )


class BudgetStore:
    """Usage per turn and limits per scope, in the hive's database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def _session(self) -> Generator[Session]:
        try:
            with Session(self._engine, expire_on_commit=False) as session:
                yield session
        except SQLAlchemyError as exc:
            raise engine_error(self._engine, exc) from exc

    def sums(self, day: str) -> tuple[dict[str, Usage], dict[str, Usage]]:
        """Every agent's usage in total, and on UTC day `day`."""
        with self._session() as session:
            connection = session.connection()
            totals = connection.execute(text(_SUMS.format(where=""))).all()
            today = connection.execute(text(_SUMS.format(where="WHERE day = :day")), {"day": day}).all()
        return _by_agent(totals), _by_agent(today)

    def budgets(self) -> dict[str, Limits]:
        """Every scope's limits."""
        with self._session() as session:
            rows = session.exec(select(BudgetRow)).all()
        return {row.scope: Limits(row.usd_per_day, row.tokens_per_day, row.usd_total, row.tokens_total) for row in rows}

    def put_budget(self, scope: str, limits: Limits, *, now: float) -> None:
        """Replace `scope`'s limits; with no limit left, forget the scope.

        Raises:
            StorageError: the database refused the write.
        """
        with self._session() as session:
            if limits.empty:
                row = session.get(BudgetRow, scope)
                if row is not None:
                    session.delete(row)
            else:
                session.merge(
                    BudgetRow(
                        scope=scope,
                        usd_per_day=limits.usd_per_day,
                        tokens_per_day=limits.tokens_per_day,
                        usd_total=limits.usd_total,
                        tokens_total=limits.tokens_total,
                        updated_at=now,
                    )
                )
            session.commit()


class StoredBudgets:
    """The limits in the daemon's database, read once and kept in memory (a `BudgetSource`)."""

    def __init__(self, store: BudgetStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._limits: dict[str, Limits] = {}

    async def load(self) -> None:
        """Read every scope's limits."""
        self._limits = await anyio.to_thread.run_sync(self._store.budgets)

    def limits(self, scope: str) -> Limits:
        """`scope`'s limits, or none."""
        return self._limits.get(scope, NO_LIMITS)

    def scopes(self) -> list[str]:
        """Every scope with limits, sorted."""
        return sorted(self._limits)

    async def put(self, scope: str, limits: Limits) -> None:
        """Commit `scope`'s limits, then use them.

        Raises:
            StorageError: the database refused the change; nothing changed.
        """
        put = functools.partial(self._store.put_budget, scope, limits, now=self._clock())
        await anyio.to_thread.run_sync(put)
        if limits.empty:
            self._limits.pop(scope, None)
        else:
            self._limits[scope] = limits
