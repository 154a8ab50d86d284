"""The one error tree of hyperhive_core; every message is something a person (or a model) can act on.

    HiveError
    ├── ConfigError
    │   └── DaemonRunningError       (another daemon holds the state dir or run dir)
    ├── InvalidAgentNameError        (a name breaks the naming rules)
    ├── UnknownAgentError            (no agent of that name in the hive)
    ├── AgentExistsError
    ├── NotPermittedError            (a principal called a tool that is not theirs)
    ├── BackendError
    │   ├── BackendUnavailableError  (the backend's tool is missing on this host)
    │   └── WorkspaceError           (an agent's repository or extra dir cannot be used)
    ├── BrokerError
    │   ├── BodyTooLargeError
    │   ├── EmptyBodyError
    │   ├── KeyReusedError           (an idempotency key came back with a different message)
    │   ├── InboxFullError
    │   ├── UnknownMessageError      (reply_to names no message the caller took part in)
    │   ├── ConversationLimitError   (two agents answered each other too long unsupervised)
    │   ├── RateLimitedError         (a sender is over its rate)
    │   └── StorageError             (SQLite refused: disk full, locked, corrupt)
    │       ├── DatabaseFullError    (the disk or the size limit; reads keep working)
    │       ├── DatabaseDamagedError (found at start: the daemon refuses to run on it)
    │       └── SchemaVersionError   (the schema is newer than the code, or needs a migration first)
    ├── ApprovalError
    │   ├── AgentFileError           (a desired-state file on main is not valid: file, line, field)
    │   ├── StateRepoError           (git failed, or the state repo cannot be used)
    │   ├── UnknownRevisionError     (no such commit in the state repo)
    │   ├── UnknownProposalError
    │   ├── ProposalDecidedError     (a verdict on a proposal that already has one)
    │   ├── StaleProposalError       (main changed the proposal's files since its base)
    │   ├── InvalidChangeError       (a proposed or asked-for change fails the agent file's rules)
    │   └── NothingToProposeError    (a change that changes nothing)
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


class DaemonRunningError(ConfigError):
    """Another daemon holds the lock on the state dir (or the run dir) this one was asked to use."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"another hyperhive daemon ({holder}) already runs on {path}; stop it with `hivectl shutdown` "
            "or choose other --state-dir/--run-dir"
        )
        self.path = path
        self.pid = pid


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


class WorkspaceError(BackendError):
    """An agent's repository (`--repo`) or extra dir cannot be used as asked."""

    def __init__(self, agent: str, path: str, problem: str) -> None:
        super().__init__(f"agent {agent!r}: {path}: {problem}")
        self.agent = agent
        self.path = path
        self.problem = problem


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


class EmptyBodyError(BrokerError):
    """A message body is empty or only whitespace."""

    def __init__(self) -> None:
        super().__init__("message body is empty; write what the recipient should read")


class BodyNotTextError(BrokerError):
    """A message body holds what no engine stores as text: a NUL character or a lone surrogate."""

    def __init__(self) -> None:
        super().__init__(
            "message body holds a NUL character or a lone surrogate, which is not text the hive stores; "
            "send plain text (encode binary data, e.g. as base64)"
        )


class KeyReusedError(BrokerError):
    """An idempotency key that stored one message came back with a different one."""

    def __init__(self, key: str, message_id: int) -> None:
        super().__init__(
            f"idempotency key {key!r} already stored message {message_id}, with another recipient, body or "
            "reply_to; a retry must repeat the call exactly, and a new message needs a new key"
        )
        self.key = key
        self.message_id = message_id


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
    """Two agents (the manager counts as one) exchanged too many messages with no operator message between."""

    def __init__(self, sender: str, recipient: str, limit: int) -> None:
        super().__init__(
            f"{sender} and {recipient} have exchanged {limit} messages with no message from the operator "
            f"in between (the runaway guard); it resets when the operator writes to either of you: "
            f"report to the operator instead of answering"
        )
        self.sender = sender
        self.recipient = recipient
        self.limit = limit


class RateLimitedError(BrokerError):
    """A sender sent more messages than its rate allows."""

    def __init__(self, sender: str, limit: int, window_s: float, retry_after_s: float) -> None:
        super().__init__(
            f"{sender} called send {limit} times in the last {window_s:g} s, the most allowed (rate limit; "
            f"refused calls count too); wait {retry_after_s:.1f} s before sending again"
        )
        self.sender = sender
        self.limit = limit
        self.window_s = window_s
        self.retry_after_s = retry_after_s


class StorageError(BrokerError):
    """The database refused a read or a write; nothing was half-written."""


class DatabaseFullError(StorageError):
    """The disk or the database's size limit leaves no room for new messages; reading still works."""


class SchemaVersionError(StorageError):
    """The database's schema version does not fit this code: newer than it knows, or behind and not
    upgradable by this process; the message says who must do what."""

    def __init__(self, reason: str, *, current: int) -> None:
        super().__init__(reason)
        self.current = current


class DatabaseDamagedError(StorageError):
    """The database lost or mangled what it had committed: the daemon will not run on it."""

    def __init__(self, path: Path, problem: str, way_out: str) -> None:
        super().__init__(f"the hive database {path} is damaged: {problem}; nothing was changed. {way_out}")
        self.path = path
        self.problem = problem


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


class ApprovalError(HiveError):
    """The desired hive (the state repo, its files, proposals) refused or failed an operation."""


class AgentFileError(ApprovalError):
    """A file of the desired hive on main is not valid; the hive stays as it runs."""

    def __init__(self, path: str, line: int, field: str, problem: str) -> None:
        where = f"{path} line {line}" if line else path
        subject = f"{field}: " if field else ""
        super().__init__(
            f"{where}: {subject}{problem}; fix the file on main (or roll it back with git revert): nothing was applied"
        )
        self.path = path
        self.line = line
        self.field = field
        self.problem = problem


class StateRepoError(ApprovalError):
    """git failed on the state repo, or the repo cannot be used."""


class UnknownRevisionError(ApprovalError):
    """A revision names no commit of the state repo."""

    def __init__(self, rev: str) -> None:
        super().__init__(f"no revision {rev!r} in the state repo; `git log` in a clone of it lists them")
        self.rev = rev


class UnknownProposalError(ApprovalError):
    """No proposal has that id."""

    def __init__(self, proposal: int) -> None:
        super().__init__(f"no proposal {proposal}; `hivectl approvals` lists them")
        self.proposal = proposal


class ProposalDecidedError(ApprovalError):
    """A verdict was asked for on a proposal that already has one: the first verdict wins."""

    def __init__(self, proposal: int, state: str, by: str | None, reason: str) -> None:
        who = f" by {by}" if by else ""
        why = f": {reason}" if reason else ""
        super().__init__(f"proposal {proposal} is already {state}{who}{why}; the first verdict stands")
        self.proposal = proposal
        self.state = state


class StaleProposalError(ApprovalError):
    """Main changed a file the proposal changes since the proposal was made: it is never applied."""

    def __init__(self, proposal: int, paths: list[str], base: str, main: str) -> None:
        super().__init__(
            f"proposal {proposal} is stale: {', '.join(paths)} changed on main since it was proposed (base "
            f"{base[:12]}, main now {main[:12]}); it was not applied: the manager must propose again on the new main"
        )
        self.proposal = proposal
        self.paths = paths


class NothingToProposeError(ApprovalError):
    """A change that leaves the desired hive as it is."""

    def __init__(self, agent: str) -> None:
        super().__init__(f"that change leaves agent {agent!r} as it is on main; nothing was proposed or committed")
        self.agent = agent


class PlacementError(ApprovalError):
    """A placement the operator asked for cannot be made (an unknown or down host, nothing to move)."""


class InvalidChangeError(ApprovalError):
    """A change to an agent (proposed, or asked for by the operator) would make an invalid agent file."""

    def __init__(self, agent: str, field: str, problem: str) -> None:
        super().__init__(f"agent {agent!r}: {field}: {problem}; nothing was proposed or committed")
        self.agent = agent
        self.field = field
        self.problem = problem
