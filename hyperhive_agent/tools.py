"""The hive's agent tools as typed Python calls, and the values they return.

`AgentTools` is the seam drivers see; `HiveTools` implements it over an `McpClient`.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from hyperhive_agent import wire
from hyperhive_agent.client import McpClient
from hyperhive_agent.errors import ProtocolError

# The daemon refuses a larger `report_events` call; `EventLog` batches below it.
MAX_EVENTS_PER_CALL = 100
# Slack on top of a blocking tool's own timeout, so the daemon answers before our socket gives up.
BLOCKING_CALL_SLACK_S = 10.0


@dataclass(frozen=True, slots=True)
class Message:
    """A message handed out by `recv`."""

    id: int
    sender: str
    recipient: str
    body: str
    created_at: str
    reply_to: int | None = None
    state: str = "delivered"
    # More than 1: it was handed out before and that turn did not finish (a crash, a restart).
    deliveries: int = 1
    # For a message handed out again: what this agent sent since it was first handed out, so the
    # turn run again does not send it twice (the turn loop fills it in from the batch).
    sent_before: tuple["Message", ...] = ()

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "Message":
        """Build a message from one entry of `recv`'s `messages`.

        Raises:
            ProtocolError: a required field is missing or has the wrong type.
        """
        try:
            reply_to = data.get("reply_to")
            return cls(
                id=int(data["id"]),
                sender=str(data["sender"]),
                recipient=str(data["recipient"]),
                body=str(data["body"]),
                created_at=str(data["created_at"]),
                reply_to=None if reply_to is None else int(reply_to),
                state=str(data.get("state", "delivered")),
                deliveries=int(data.get("deliveries", 1)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed message from recv: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class SentMessage:
    """The daemon's receipt for a `send`: the message is committed."""

    id: int
    recipient: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Batch:
    """What one `recv` returned: the messages, how many still wait, and what we sent since some of
    these were first handed to us (when a turn over them was cut short)."""

    messages: tuple[Message, ...]
    remaining: int
    already_sent: tuple[Message, ...] = ()


class AgentTools(Protocol):
    """The hive tools a driver may call on the agent's behalf."""

    def send(self, to: str, body: str, reply_to: int | None = None, key: str | None = None) -> SentMessage:
        """Send `body` to agent `to`; with `key`, a repeat of the same send is stored once.

        Raises:
            ToolCallError: the hive refused the message (unknown recipient, too big, rate limit).
            ConnectionLostError: the connection to the hive broke.
        """
        ...

    def report_events(self, events: Sequence[dict[str, Any]]) -> int:
        """Store turn events (at most `MAX_EVENTS_PER_CALL`) in the agent's event log; returns how many.

        Raises:
            ToolCallError: the hive refused the events.
            ConnectionLostError: the connection to the hive broke.
        """
        ...


class HiveTools:
    """`AgentTools` (plus `recv`) over one MCP connection."""

    def __init__(self, client: McpClient) -> None:
        self._client = client

    def send(self, to: str, body: str, reply_to: int | None = None, key: str | None = None) -> SentMessage:
        """Send `body` to agent `to`, optionally as a reply to message `reply_to`.

        With `key` (an idempotency key), sending again what was sent before stores nothing new
        and returns the first send's receipt.

        Raises:
            ToolCallError: the hive refused the message.
            ConnectionLostError: the connection to the hive broke.
        """
        arguments: dict[str, Any] = {"to": to, "body": body}
        if reply_to is not None:
            arguments["reply_to"] = reply_to
        if key is not None:
            arguments["key"] = key
        result = self._client.call_tool(wire.SEND, arguments)
        try:
            return SentMessage(
                id=int(result["id"]), recipient=str(result["recipient"]), created_at=str(result["created_at"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed receipt from send: {result!r}") from exc

    def report_events(self, events: Sequence[dict[str, Any]]) -> int:
        """Store turn events in the agent's event log (for `hivectl logs`); returns how many were stored.

        Raises:
            ToolCallError: the hive refused the events (too many, malformed).
            ConnectionLostError: the connection to the hive broke.
        """
        result = self._client.call_tool(wire.REPORT_EVENTS, {"events": list(events)})
        try:
            return int(result["stored"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed receipt from report_events: {result!r}") from exc

    def recv(
        self, timeout_s: float = 30.0, max_messages: int = 10, after: int | None = None, reader: str | None = None
    ) -> Batch:
        """Wait up to `timeout_s` for messages; an empty batch means the wait timed out.

        `after` is the cursor: the id of the last message whose turn finished. It acknowledges
        that one and every earlier one this reader was given; what comes back is held for the
        reader until a later cursor covers it. `reader` names the reader: when its connection
        ends, what it holds waits for it to come back under that name (a daemon restart, a
        reconnect), and goes back to the queue only if it does not come back in time.

        Raises:
            ToolCallError: the hive refused the call.
            ConnectionLostError: the connection broke or the daemon did not answer in time.
        """
        arguments: dict[str, Any] = {"timeout_s": timeout_s, "max": max_messages}
        if after is not None:
            arguments["after"] = after
        if reader is not None:
            arguments["reader"] = reader
        result = self._client.call_tool(wire.RECV, arguments, timeout_s=timeout_s + BLOCKING_CALL_SLACK_S)
        return Batch(
            messages=_messages(result, "messages"),
            remaining=int(result.get("remaining", 0)),
            already_sent=_messages(result, "already_sent"),
        )


def _messages(result: dict[str, Any], field: str) -> tuple[Message, ...]:
    raw = result.get(field, [])
    if not isinstance(raw, list):
        raise ProtocolError(f"malformed {field} from recv: {result!r}")
    return tuple(Message.from_wire(cast(dict[str, Any], item)) for item in cast(list[object], raw))
