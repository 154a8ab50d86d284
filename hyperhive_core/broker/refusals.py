"""Sends the daemon refused, remembered so the operator sees who is failing to reach whom, and why.

In memory, like the runaway guard's counts: per sender a count and the latest reason, and the
latest refusals of sends to each recipient (bounded), for the recipient's inbox view.
"""

import time
from collections import deque
from dataclasses import dataclass, field

# Refusals of sends to one recipient that its inbox view shows.
KEEP_PER_RECIPIENT = 20
# A refusal goes into the sender's event log at most this often; the rest are counted.
EVENT_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class RefusedSend:
    """One refused send."""

    sender: str
    recipient: str
    reason: str
    at: float


@dataclass(slots=True)
class _SenderRecord:
    count: int = 0
    last: RefusedSend | None = None
    logged_at: float = -1e9


@dataclass(slots=True)
class RefusalLog:
    """Counts and the latest reasons of refused sends."""

    _senders: dict[str, _SenderRecord] = field(default_factory=dict[str, _SenderRecord])
    _recipients: dict[str, deque[RefusedSend]] = field(default_factory=dict[str, deque[RefusedSend]])

    def record(self, sender: str, recipient: str, reason: str, *, now: float | None = None) -> bool:
        """Remember a refused send; True when it should also go into the sender's event log now."""
        now = time.time() if now is None else now
        refusal = RefusedSend(sender, recipient, reason, now)
        record = self._senders.setdefault(sender, _SenderRecord())
        record.count += 1
        record.last = refusal
        if recipient:
            self._recipients.setdefault(recipient, deque(maxlen=KEEP_PER_RECIPIENT)).append(refusal)
        if now - record.logged_at >= EVENT_EVERY_S:
            record.logged_at = now
            return True
        return False

    def of_sender(self, sender: str) -> tuple[int, RefusedSend | None]:
        """How many of `sender`'s sends were refused, and the latest one."""
        record = self._senders.get(sender)
        return (0, None) if record is None else (record.count, record.last)

    def to_recipient(self, recipient: str) -> list[RefusedSend]:
        """The latest refused sends addressed to `recipient`, oldest first."""
        return list(self._recipients.get(recipient, ()))
