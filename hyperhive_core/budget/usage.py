"""Usage as the daemon counts it: tokens and US dollars, summed per agent by UTC day.

A turn's usage arrives as the agent's `usage` turn event (`hyperhive_agent.wire.USAGE_EVENT`).
The agent reports it, so the daemon only bounds it: a field that is missing, negative, not a
number or absurd counts as nothing (or as the bound), never as a refund.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hyperhive_agent import wire

# Past these, a single turn's report is not believed; it counts as the bound (an agent that
# over-reports only spends its own budget, and SQLite's integers stay in range).
MAX_TURN_TOKENS = 10**9
MAX_TURN_USD = 10_000.0


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens by kind, cost and turns; adds up."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0
    turns: int = 0

    @property
    def tokens(self) -> int:
        """Every token the API processed for it: input, output, cache writes and cache reads."""
        return self.input_tokens + self.output_tokens + self.cache_creation_tokens + self.cache_read_tokens

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_tokens + other.cache_creation_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cost_usd + other.cost_usd,
            self.turns + other.turns,
        )


NO_USAGE = Usage()


def _bounded(value: object, bound: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    number = float(value)
    return min(number, bound) if math.isfinite(number) and number > 0 else 0.0


def turn_usage(event: dict[str, Any]) -> tuple[Usage, int] | None:
    """A `usage` turn event's usage (one turn) and duration in ms; None for any other event."""
    if event.get("type") != "hive" or event.get("subtype") != wire.USAGE_EVENT:
        return None
    tokens = [int(_bounded(event.get(key), MAX_TURN_TOKENS)) for key in wire.USAGE_TOKEN_FIELDS]
    usage = Usage(*tokens, cost_usd=_bounded(event.get("cost_usd"), MAX_TURN_USD), turns=1)
    return usage, int(_bounded(event.get("duration_ms"), 2**31))


def utc_day(at: float) -> str:
    """The UTC date of unix time `at`, YYYY-MM-DD: what per-day budgets count by."""
    return datetime.fromtimestamp(at, UTC).date().isoformat()


def next_day_at(at: float) -> float:
    """The unix time the UTC day after the one `at` falls on begins."""
    day = datetime.fromtimestamp(at, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (day + timedelta(days=1)).timestamp()
