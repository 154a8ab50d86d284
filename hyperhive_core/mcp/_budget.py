"""Budgets one connection, and one principal over all its connections, spend from: bytes held and work done.

`Allowance` bounds what is held at once (requests unanswered, in units or bytes of their parsed
size): a reader that cannot take its share stops reading, so the peer's lines wait in the kernel.
`WorkRate` bounds how fast lines are handled (a token bucket): every line costs, whether it is a
request, a notification or garbage, so one flooding agent cannot take the event loop from others.
`PrincipalBudget` holds the shared ones of one principal's socket.
"""

from dataclasses import dataclass, field

import anyio

# A parsed JSON element costs this many bytes of Python objects, about (a dict is 64 and up, a
# list slot 8, a small string 50): charged with the line's own bytes for each held request.
ELEMENT_COST_BYTES = 100
# Requests one principal may have unanswered over all its connections, and their parsed bytes.
PRINCIPAL_IN_FLIGHT = 16
PRINCIPAL_HELD_BYTES = 8 * 1024 * 1024
# Reply bytes a principal's connections may have waiting to be written before they stop reading.
PRINCIPAL_UNSENT_BYTES = 2 * 1024 * 1024
# Lines a principal may have handled per second, and in one burst. A busy claude or turn loop
# makes a few dozen calls a second; the benchmark's sequential sends about a thousand.
PRINCIPAL_LINES_PER_S = 2000.0
PRINCIPAL_LINES_BURST = 1000.0


class Allowance:
    """Units held at once, up to a capacity; one claim larger than the whole takes all of it, alone."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._changed = anyio.Event()

    def clamp(self, units: int) -> int:
        """What a claim of `units` really takes: never more than the whole."""
        return min(units, self.capacity)

    async def acquire(self, units: int) -> None:
        """Wait until `units` (clamped) fit, then hold them."""
        units = self.clamp(units)
        while self.used + units > self.capacity:
            await self._changed.wait()
        self.used += units

    def release(self, units: int) -> None:
        """Give back `units` taken with `acquire` (the same clamped amount)."""
        self.used -= self.clamp(units)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_below(self, level: int) -> None:
        """Wait until less than `level` is held (`used` counted by the caller, not by acquire)."""
        while self.used >= level:
            await self._changed.wait()

    async def wait_full(self) -> None:
        """Wait until the whole capacity is held."""
        while self.used < self.capacity:
            await self._changed.wait()

    def add(self, units: int) -> None:
        """Count `units` without waiting (bytes already there); `remove` takes them back."""
        self.used += units

    def remove(self, units: int) -> None:
        """Take back `units` counted with `add`."""
        self.used -= units
        self._changed.set()
        self._changed = anyio.Event()


class WorkRate:
    """A token bucket: `rate` units a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = anyio.current_time()
        self.waited = 0  # how many times a spender had to wait: the budget at work

    async def spend(self, cost: float) -> None:
        """Take `cost` units, waiting for the bucket to refill when it is short."""
        now = anyio.current_time()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= cost
        if self._tokens < 0:
            self.waited += 1
            # A rate limit, not synchronisation: the debt is paid in time.
            await anyio.sleep(-self._tokens / self.rate)


@dataclass(slots=True)
class PrincipalBudget:
    """What every connection of one principal's socket shares."""

    in_flight: Allowance = field(default_factory=lambda: Allowance(PRINCIPAL_IN_FLIGHT))
    held_bytes: Allowance = field(default_factory=lambda: Allowance(PRINCIPAL_HELD_BYTES))
    unsent_bytes: Allowance = field(default_factory=lambda: Allowance(PRINCIPAL_UNSENT_BYTES))
    lines: WorkRate = field(default_factory=lambda: WorkRate(PRINCIPAL_LINES_PER_S, PRINCIPAL_LINES_BURST))
