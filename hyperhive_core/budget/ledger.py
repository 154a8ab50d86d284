"""Usage totals in memory, per agent: in all and on the current UTC day. The hive's are their sums.

Seeded from the usage table when the daemon starts and kept by `add` after each row is committed,
so checking a budget (on every turn, and on every `recv` of a paused agent) reads no table.
"""

from collections.abc import Mapping

from hyperhive_core.budget.usage import NO_USAGE, Usage


class Ledger:
    """What each agent used, in total and today (the UTC day of the latest `add` or `seed`)."""

    def __init__(self) -> None:
        self._total: dict[str, Usage] = {}
        self._today: dict[str, Usage] = {}
        self._day = ""
        self._hive_total = NO_USAGE
        self._hive_today = NO_USAGE

    def seed(self, totals: Mapping[str, Usage], today: Mapping[str, Usage], day: str) -> None:
        """Start from sums read from the table: every agent's totals, and its usage on UTC day `day`."""
        self._total = dict(totals)
        self._today = dict(today)
        self._day = day
        self._hive_total = sum(self._total.values(), NO_USAGE)
        self._hive_today = sum(self._today.values(), NO_USAGE)

    def add(self, agent: str, usage: Usage, day: str) -> None:
        """Count a committed turn of `agent` on UTC day `day`; a new day starts today's sums over."""
        if day != self._day:
            self._roll(day)
        self._total[agent] = self._total.get(agent, NO_USAGE) + usage
        self._today[agent] = self._today.get(agent, NO_USAGE) + usage
        self._hive_total += usage
        self._hive_today += usage

    def _roll(self, day: str) -> None:
        # Days only move forward: a turn stamped with an earlier day (a clock set back) counts
        # towards the day the ledger is on.
        if day > self._day:
            self._day = day
            self._today = {}
            self._hive_today = NO_USAGE

    def total(self, agent: str | None = None) -> Usage:
        """`agent`'s usage since it was first spawned (None: the whole hive's)."""
        return self._hive_total if agent is None else self._total.get(agent, NO_USAGE)

    def today(self, day: str, agent: str | None = None) -> Usage:
        """`agent`'s usage on UTC day `day` (None: the whole hive's); nothing for a day not yet counted."""
        if day != self._day:
            return NO_USAGE
        return self._hive_today if agent is None else self._today.get(agent, NO_USAGE)

    def agents(self) -> list[str]:
        """Every agent that has used anything, sorted."""
        return sorted(self._total)
