"""The runaway guard: bounds on what agents send, enforced in the daemon where no agent can skip them.

Two rules. A pair of agents (the manager is an agent here: claude drives it too) may exchange at
most `max_exchanges` stored messages in a row with no message from the operator to either of them;
the operator's message resets every pair it touches. And each agent may call `send` at most
`rate_limit` times per `rate_window_s` (a sliding window): every call counts, refused ones too, so
a flood of bad calls is throttled like a flood of good ones. Only the operator is never limited.
The state is in memory: a daemon restart forgives everyone, which errs on the side of letting work
continue.
"""

import time
from collections import deque
from dataclasses import dataclass

from hyperhive_core.config import MAX_EXCHANGES, RATE_LIMIT, RATE_WINDOW_S
from hyperhive_core.errors import ConversationLimitError, RateLimitedError
from hyperhive_core.names import OPERATOR

SUPERVISORS = frozenset({OPERATOR})


@dataclass(frozen=True, slots=True)
class Throttle:
    """Why a sender is being refused right now."""

    sender: str
    reason: str


class RunawayGuard:
    """Counts each send call against its sender's rate, and each stored message against its pair."""

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
        # The newest `rate_limit` calls per sender: enough to tell whether the window is full, and
        # bounded however hard a sender floods.
        self._calls: dict[str, deque[float]] = {}
        self._blocked_pairs: dict[frozenset[str], str] = {}

    def attempt(self, sender: str, *, now: float | None = None) -> None:
        """Count one `send` call by `sender`, whatever becomes of it.

        Raises:
            RateLimitedError: `sender` had already called `rate_limit` times in the window.
        """
        if sender in SUPERVISORS:
            return
        now = time.monotonic() if now is None else now
        calls = self._calls.setdefault(sender, deque(maxlen=self.rate_limit))
        full = len(calls) == self.rate_limit and calls[0] > now - self.rate_window_s
        retry_after_s = calls[0] + self.rate_window_s - now if full else 0.0
        calls.append(now)
        if full:
            raise RateLimitedError(sender, self.rate_limit, self.rate_window_s, retry_after_s)

    def admit(self, sender: str, recipient: str) -> None:
        """Count a message about to be stored against its pair; `forget` it if it is not stored.

        Raises:
            ConversationLimitError: `sender` and `recipient` are agents that answered each other too long.
        """
        if sender in SUPERVISORS:
            # The operator speaking to an agent resets every conversation that agent is in.
            for pair in [p for p in self._exchanges if recipient in p]:
                del self._exchanges[pair]
                self._blocked_pairs.pop(pair, None)
            return
        if recipient in SUPERVISORS:
            return
        pair = frozenset({sender, recipient})
        if self._exchanges.get(pair, 0) >= self.max_exchanges:
            self._blocked_pairs[pair] = sender
            raise ConversationLimitError(sender, recipient, self.max_exchanges)
        self._exchanges[pair] = self._exchanges.get(pair, 0) + 1

    def forget(self, sender: str, recipient: str) -> None:
        """Uncount an admitted message that was not stored after all (refused, or a repeated key)."""
        pair = frozenset({sender, recipient})
        if sender not in SUPERVISORS and recipient not in SUPERVISORS and self._exchanges.get(pair, 0) > 0:
            self._exchanges[pair] -= 1

    def throttles(self, *, now: float | None = None) -> list[Throttle]:
        """Every sender the guard is refusing right now, and why."""
        now = time.monotonic() if now is None else now
        found: list[Throttle] = []
        for sender, calls in self._calls.items():
            if len(calls) == self.rate_limit and calls[0] > now - self.rate_window_s:
                wait_s = calls[0] + self.rate_window_s - now
                found.append(Throttle(sender, f"rate limit: {len(calls)} send calls in {self.rate_window_s:g} s; "
                                              f"clears in {wait_s:.0f} s"))  # fmt: skip
        for pair, sender in self._blocked_pairs.items():
            other = next(iter(pair - {sender}), sender)
            found.append(
                Throttle(
                    sender,
                    f"runaway guard: {self.max_exchanges} messages with {other} and no operator message in "
                    f"between; a message from the operator to {sender} or {other} resets it",
                )
            )
        return found
