"""The agent's turn events on their way to the daemon's per-agent event log (`hivectl logs`).

Events are JSON objects: claude's stream-json lines as they came, and the loop's own, shaped
`{"type": "hive", "subtype": "turn_start" | "turn_end" | "turn_error" | "driver" | ..., "message": ...}`.
`EventLog` buffers them, scrubs secrets, caps their size and reports them in batches. Reporting is
best effort: a refused or failed `report_events` is logged and the events dropped, never raised,
so the event log can never break a turn.
"""

import json
import logging
from collections.abc import Sequence
from typing import Any, cast

from hyperhive_agent.errors import AgentError
from hyperhive_agent.tools import MAX_EVENTS_PER_CALL, AgentTools

logger = logging.getLogger(__name__)

# The daemon keeps events up to 16 KiB and cuts larger ones itself; cutting here too keeps events
# small, and a batch stops at BATCH_BYTES of JSON, well under the daemon's 1 MiB line limit
# (non-ASCII text grows up to 6 bytes a character once escaped on the wire).
MAX_EVENT_BYTES = 16 * 1024
BATCH_BYTES = 256 * 1024
REDACTED = "[redacted]"

JsonObject = dict[str, Any]


def hive_event(subtype: str, message: str, **fields: object) -> JsonObject:
    """One of the loop's own events, e.g. `hive_event("turn_error", "claude crashed", exit_code=2)`."""
    return {"type": "hive", "subtype": subtype, "message": message, **fields}


class Redactor:
    """Replaces known secret values (an API key, a token) with `[redacted]` in text."""

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        self._secrets: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Sequence[str]) -> None:
        """Scrub `secrets` too from now on (a key the operator put in place while the agent runs)."""
        known = dict.fromkeys((*self._secrets, *(s for s in secrets if s)))
        # longest first, so a secret that contains another is replaced whole
        self._secrets = tuple(sorted(known, key=len, reverse=True))

    def text(self, text: str) -> str:
        """`text` with every secret replaced."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def event(self, event: JsonObject) -> JsonObject:
        """`event` with every secret replaced anywhere inside it."""
        if not self._secrets:
            return event
        encoded = json.dumps(event, ensure_ascii=False)
        scrubbed = self.text(encoded)
        return event if scrubbed == encoded else cast(JsonObject, json.loads(scrubbed))


def cap_event(event: JsonObject) -> JsonObject:
    """`event` itself, or, past `MAX_EVENT_BYTES`, its type and subtype with the head of its JSON."""
    encoded = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    size = len(encoded.encode())
    if size <= MAX_EVENT_BYTES:
        return event
    return {
        "type": str(event.get("type", "unknown")),
        "subtype": event.get("subtype"),
        "truncated": True,
        "bytes": size,
        "head": encoded[: MAX_EVENT_BYTES // 2],
    }


def _next_batch(pending: list[JsonObject]) -> list[JsonObject]:
    """The oldest events that fit one report_events call: at most 100, and BATCH_BYTES (always one)."""
    size = 0
    for i, event in enumerate(pending[:MAX_EVENTS_PER_CALL]):
        size += len(json.dumps(event))  # as the wire has it: ASCII, non-ASCII escaped
        if i and size > BATCH_BYTES:
            return pending[:i]
    return pending[:MAX_EVENTS_PER_CALL]


class EventLog:
    """Buffers events and reports them through the current connection's `report_events`.

    Bind it to each new connection's tools; events emitted while unbound (before the first
    connection) wait for it, up to one batch.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        self._redactor = redactor or Redactor()
        self._tools: AgentTools | None = None
        self._pending: list[JsonObject] = []
        self._warned = False

    def bind(self, tools: AgentTools | None) -> None:
        """Report through `tools` from now on (None: hold events until bound again)."""
        self._tools = tools

    def emit(self, event: JsonObject) -> None:
        """Queue `event`; a full batch is reported at once."""
        self._pending.append(cap_event(self._redactor.event(event)))
        if len(self._pending) >= MAX_EVENTS_PER_CALL:
            self.flush()

    def flush(self) -> None:
        """Report every queued event; on failure log once per outage and drop them."""
        tools = self._tools
        if tools is None:
            # not connected yet: keep the newest batch for the first connection
            del self._pending[:-MAX_EVENTS_PER_CALL]
            return
        while self._pending:
            batch = _next_batch(self._pending)
            del self._pending[: len(batch)]
            try:
                tools.report_events(batch)
            except (AgentError, ValueError) as exc:
                if not self._warned:
                    logger.warning("could not report %d turn event(s), dropping them: %s", len(batch), exc)
                    self._warned = True
                continue
            self._warned = False

    @property
    def pending(self) -> int:
        """How many events wait to be reported."""
        return len(self._pending)
