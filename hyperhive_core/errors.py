"""The one error tree of hyperhive_core; every message is something a person (or a model) can act on.

    HiveError
    ├── ConfigError
    ├── InvalidAgentNameError        (a name breaks the naming rules)
    ├── UnknownAgentError            (no agent of that name in the hive)
    ├── AgentExistsError
    ├── NotPermittedError            (a principal called a tool that is not theirs)
    ├── BackendError
    │   └── BackendUnavailableError  (the backend's tool is missing on this host)
    ├── BrokerError
    │   ├── BodyTooLargeError
    │   ├── InboxFullError
    │   ├── UnknownMessageError      (reply_to names no message the caller took part in)
    │   ├── ConversationLimitError   (two agents answered each other too long unsupervised)
    │   ├── RateLimitedError         (a sender is over its rate)
    │   └── StorageError             (SQLite refused: disk full, locked, corrupt)
    ├── DaemonUnavailableError       (a client found no daemon on the socket)
    └── ToolCallError                (the daemon refused a client's tool call; its words)

Foreign errors (SQLAlchemy, CalledProcessError, OSError) are translated at exactly one boundary
per subsystem and chained, so they never escape it.
"""

from collections.abc import Iterable
from pathlib import Path


class HiveError(Exception):
    """Root of every error hyperhive raises on purpose."""


class ConfigError(HiveError):
    """The configuration cannot be used as given."""


class InvalidAgentNameError(HiveError):
    """An agent name breaks the naming rules."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"invalid agent name {name!r}: {reason}")
        self.name = name
        self.reason = reason


class UnknownAgentError(HiveError):
    """No agent of that name is in the hive."""

    def __init__(self, agent: str, known: Iterable[str]) -> None:
        self.agent = agent
        self.known = sorted(known)
        listing = ", ".join(self.known) if self.known else "none yet"
        super().__init__(f"unknown agent {agent!r}; known: {listing}")


class AgentExistsError(HiveError):
    """An agent of that name is already in the hive."""

    def __init__(self, agent: str) -> None:
        super().__init__(f"agent {agent!r} already exists; use rebuild to restart it or kill to remove it")
        self.agent = agent


class NotPermittedError(HiveError):
    """A principal asked for something only another principal may do."""

    def __init__(self, principal: str, action: str, hint: str) -> None:
        super().__init__(f"{principal} may not {action}: {hint}")
        self.principal = principal
        self.action = action


class BackendError(HiveError):
    """A lifecycle backend failed to carry out a verb."""


class BackendUnavailableError(BackendError):
    """The backend's tool is not installed on this host."""


class BrokerError(HiveError):
    """The message broker refused or failed an operation."""


class BodyTooLargeError(BrokerError):
    """A message body is over the configured limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"message body is {size} bytes, over the limit of {limit} bytes; split it or send a file path instead"
        )
        self.size = size
        self.limit = limit


class InboxFullError(BrokerError):
    """The recipient's inbox holds as many unread messages as it may."""

    def __init__(self, agent: str, limit: int) -> None:
        super().__init__(f"inbox of {agent!r} is full ({limit} unread messages); wait until it reads some")
        self.agent = agent
        self.limit = limit


class UnknownMessageError(BrokerError):
    """A message id names no message the caller sent or received."""

    def __init__(self, message_id: int) -> None:
        super().__init__(f"no message {message_id} was sent to or by you; reply_to takes an id that recv gave you")
        self.message_id = message_id


class ConversationLimitError(BrokerError):
    """Two agents exchanged too many messages with no operator or manager message in between."""

    def __init__(self, sender: str, recipient: str, limit: int) -> None:
        super().__init__(
            f"{sender} and {recipient} have exchanged {limit} messages with no message from the operator "
            f"or hm1nd in between (the runaway guard); it resets when the operator or hm1nd writes to either "
            f"of you: report to them instead of answering"
        )
        self.sender = sender
        self.recipient = recipient
        self.limit = limit


class RateLimitedError(BrokerError):
    """A sender sent more messages than its rate allows."""

    def __init__(self, sender: str, limit: int, window_s: float, retry_after_s: float) -> None:
        super().__init__(
            f"{sender} sent {limit} messages in the last {window_s:g} s, the most allowed (rate limit); "
            f"try again in {retry_after_s:.1f} s"
        )
        self.sender = sender
        self.limit = limit
        self.window_s = window_s
        self.retry_after_s = retry_after_s


class StorageError(BrokerError):
    """The database refused a read or a write; nothing was half-written."""


class DaemonUnavailableError(HiveError):
    """No daemon answers on the socket a client was pointed at."""

    def __init__(self, socket: Path, reason: str) -> None:
        super().__init__(
            f"no hyperhive daemon at {socket} ({reason}); start one with `hivectl serve` "
            "or point --run-dir / HYPERHIVE_RUN_DIR at a running one"
        )
        self.socket = socket
        self.reason = reason


class ToolCallError(HiveError):
    """The daemon refused a tool call; the message is the daemon's explanation."""

    def __init__(self, tool: str, reason: str) -> None:
        # The SDK prefixes every tool error with this; the reason alone is what a person needs.
        prefix = f"Error executing tool {tool}: "
        self.tool = tool
        self.reason = reason.removeprefix(prefix)
        super().__init__(self.reason)
