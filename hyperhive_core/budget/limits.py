"""Budgets: the operator's limits per agent and for the whole hive, and which one a spend has reached.

A limit is spent when what was used reaches it (`>=`): a limit of 0 pauses at once. Per-day
limits count the current UTC day; totals count everything the agent (or the hive) ever used,
also before a kill and a spawn under the same name, so killing an agent does not reset its budget.
"""

from dataclasses import dataclass, fields, replace
from typing import Literal, Protocol

from hyperhive_core.budget.usage import Usage
from hyperhive_core.names import HIVE

# The scope of the hive-wide budget: a reserved name, so no agent can have it.
HIVE_SCOPE = HIVE

LimitName = Literal["usd_per_day", "tokens_per_day", "usd_total", "tokens_total"]
LIMIT_NAMES: tuple[LimitName, ...] = ("usd_per_day", "tokens_per_day", "usd_total", "tokens_total")


@dataclass(frozen=True, slots=True)
class Limits:
    """One scope's limits; None is no limit."""

    usd_per_day: float | None = None
    tokens_per_day: int | None = None
    usd_total: float | None = None
    tokens_total: int | None = None

    @property
    def empty(self) -> bool:
        """No limit at all."""
        return all(getattr(self, f.name) is None for f in fields(self))

    def changed(self, **changes: float | int | None) -> "Limits":
        """These limits with `changes` applied (only the ones given)."""
        return replace(self, **changes)  # pyright: ignore[reportArgumentType]  # names checked by replace


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Overrun:
    """A spent limit: whose, which, how much was used against how much was allowed."""

    scope: str
    limit: LimitName
    used: float
    allowed: float
    day: str

    @property
    def hive_wide(self) -> bool:
        """The hive's own budget, which pauses every agent."""
        return self.scope == HIVE_SCOPE

    def describe(self) -> str:
        """In words, e.g. `alice used $0.0016 of its $0.0010 total budget`."""
        who = "the hive" if self.hive_wide else self.scope
        if self.limit.startswith("usd"):
            amounts = f"${self.used:,.4f} of its ${self.allowed:,.4f}"
        else:
            amounts = f"{int(self.used):,} tokens of its {int(self.allowed):,}-token"
        if self.limit.endswith("per_day"):
            return f"{who} used {amounts} per-day budget (UTC day {self.day}; it renews at 00:00 UTC)"
        return f"{who} used {amounts} total budget"


def overrun(scope: str, limits: Limits, today: Usage, total: Usage, day: str) -> Overrun | None:
    """The first of `limits` that `today`'s or the `total` usage has reached, if any."""
    used: dict[LimitName, float] = {
        "usd_per_day": today.cost_usd,
        "tokens_per_day": today.tokens,
        "usd_total": total.cost_usd,
        "tokens_total": total.tokens,
    }
    for name in LIMIT_NAMES:
        allowed = getattr(limits, name)
        if allowed is not None and used[name] >= allowed:
            return Overrun(scope, name, used[name], float(allowed), day)
    return None


class BudgetSource(Protocol):
    """Where the limits live: the seam between the operator's settings and their enforcement.

    The daemon's SQLite today (`store.StoredBudgets`); once approvals keep the desired hive in
    git, a source reading the agents' desired-state files can take its place, the keeper and the
    recv gate unchanged.
    """

    async def load(self) -> None:
        """Read every scope's limits (at daemon start)."""
        ...

    def limits(self, scope: str) -> Limits:
        """`scope`'s limits (an agent's name, or `HIVE_SCOPE`); `NO_LIMITS` when it has none. From memory."""
        ...

    def scopes(self) -> list[str]:
        """Every scope that has limits, sorted. From memory."""
        ...

    async def put(self, scope: str, limits: Limits) -> None:
        """Make `limits` `scope`'s (no limit at all: forget the scope).

        Raises:
            StorageError: the change could not be kept; nothing changed.
        """
        ...
