"""The runaway guard: bounds on what agents send, enforced in the daemon where no agent can skip them.

Two rules. A pair of agents may exchange at most `max_exchanges` messages in a row with no
message from a supervisor (the operator or the manager) to either of them; a supervisor's message
resets every pair it touches. And each agent may send at most `rate_limit` messages per
`rate_window_s` (a sliding window). Supervisors are never limited. The state is in memory: a
daemon restart forgives everyone, which errs on the side of letting work continue.
"""

import time
from collections import deque
from dataclasses import dataclass

from hyperhive_core.config import MAX_EXCHANGES, RATE_LIMIT, RATE_WINDOW_S
from hyperhive_core.errors import ConversationLimitError, RateLimitedError
from hyperhive_core.names import MANAGER, OPERATOR

SUPERVISORS = frozenset({OPERATOR, MANAGER})


@dataclass(frozen=True, slots=True)
class Throttle:
    """Why a sender is being refused right now."""

    sender: str
    reason: str


class RunawayGuard:
    """Checks a message before it is stored, and records it after."""

    def __init__(
        self,
        *,
        max_exchanges: int = MAX_EXCHANGES,
        rate_limit: int = RATE_LIMIT,
        rate_window_s: float = RATE_WINDOW_S,
    ) -> None:
        self.max_exchanges = max_exchanges
        self.rate_limit = rate_limit
        self.rate_window_s = rate_window_s
        self._exchanges: dict[frozenset[str], int] = {}
        self._sent: dict[str, deque[float]] = {}
        self._blocked_pairs: dict[frozenset[str], str] = {}

    def check(self, sender: str, recipient: str, *, now: float | None = None) -> None:
        """Refuse a message that would break a bound; records nothing.

        Raises:
            ConversationLimitError: `sender` and `recipient` are agents that answered each other too long.
            RateLimitedError: `sender` is over its rate.
        """
        if sender in SUPERVISORS:
            return
        now = time.monotonic() if now is None else now
        times = self._sent.get(sender)
        if times is not None:
            while times and times[0] <= now - self.rate_window_s:
                times.popleft()
            if len(times) >= self.rate_limit:
                raise RateLimitedError(sender, self.rate_limit, self.rate_window_s, times[0] + self.rate_window_s - now)
        if recipient not in SUPERVISORS:
            pair = frozenset({sender, recipient})
            if self._exchanges.get(pair, 0) >= self.max_exchanges:
                self._blocked_pairs[pair] = sender
                raise ConversationLimitError(sender, recipient, self.max_exchanges)

    def record(self, sender: str, recipient: str, *, now: float | None = None) -> None:
        """Count a message that was stored."""
        if sender in SUPERVISORS:
            # A supervisor speaking to an agent resets every conversation that agent is in.
            for pair in [p for p in self._exchanges if recipient in p]:
                del self._exchanges[pair]
                self._blocked_pairs.pop(pair, None)
            return
        now = time.monotonic() if now is None else now
        self._sent.setdefault(sender, deque()).append(now)
        if recipient not in SUPERVISORS:
            pair = frozenset({sender, recipient})
            self._exchanges[pair] = self._exchanges.get(pair, 0) + 1

    def admit(self, sender: str, recipient: str) -> None:
        """Check and count a message in one step, so concurrent sends cannot all slip under a bound.

        Raises:
            ConversationLimitError: `sender` and `recipient` are agents that answered each other too long.
            RateLimitedError: `sender` is over its rate.
        """
        now = time.monotonic()
        self.check(sender, recipient, now=now)
        self.record(sender, recipient, now=now)

    def forget(self, sender: str, recipient: str) -> None:
        """Uncount an admitted message that was not stored after all (refused by the broker)."""
        if sender in SUPERVISORS:
            return
        if times := self._sent.get(sender):
            times.pop()
        pair = frozenset({sender, recipient})
        if recipient not in SUPERVISORS and self._exchanges.get(pair, 0) > 0:
            self._exchanges[pair] -= 1

    def throttles(self, *, now: float | None = None) -> list[Throttle]:
        """Every sender the guard is refusing right now, and why."""
        now = time.monotonic() if now is None else now
        found: list[Throttle] = []
        for sender, times in self._sent.items():
            recent = [t for t in times if t > now - self.rate_window_s]
            if len(recent) >= self.rate_limit:
                wait_s = recent[0] + self.rate_window_s - now
                found.append(Throttle(sender, f"rate limit: {len(recent)} messages in {self.rate_window_s:g} s; "
                                              f"clears in {wait_s:.0f} s"))  # fmt: skip
        for pair, sender in self._blocked_pairs.items():
            other = next(iter(pair - {sender}), sender)
            found.append(
                Throttle(
                    sender,
                    f"runaway guard: {self.max_exchanges} messages with {other} and no operator or hm1nd "
                    f"message in between; a message from either to {sender} or {other} resets it",
                )
            )
        return found
