"""The SQL tables: every message ever sent, and the desired hive (which agents exist, which should run).

Times are unix seconds (float): compact, ordered, and free of SQLite's timezone loss.
"""

from sqlalchemy import BigInteger, Index, Integer, text
from sqlmodel import Field, SQLModel

from hyperhive_core.states import MessageState

# Ids that grow for the hive's life: 64-bit on PostgreSQL (a bigserial), while SQLite keeps its
# INTEGER PRIMARY KEY, which is its 64-bit rowid (a BIGINT key there would not be).
ID_TYPE = BigInteger().with_variant(Integer(), "sqlite")


class MessageRow(SQLModel, table=True):
    """One message; the row is the source of truth, in-process wake-ups only hint at it."""

    __tablename__ = "message"  # pyright: ignore[reportAssignmentType, reportIncompatibleVariableOverride]  # sqlmodel types it as a declared_attr
    __table_args__ = (
        Index("ix_message_inbox", "recipient", "state", "id"),
        # One message per (sender, key): a retried send finds the row its first attempt stored.
        Index(
            "ux_message_key",
            "sender",
            "idem_key",
            unique=True,
            sqlite_where=text("idem_key IS NOT NULL"),
            postgresql_where=text("idem_key IS NOT NULL"),
        ),
        # A reader's leases, for its cursor and for a reader that comes back.
        Index(
            "ix_message_reader", "recipient", "reader", sqlite_where=text("leased = 1"), postgresql_where=text("leased")
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    sender: str
    recipient: str
    body: str
    created_at: float
    reply_to: int | None = Field(default=None, sa_type=ID_TYPE)
    state: MessageState = MessageState.QUEUED
    delivered_at: float | None = None
    acked_at: float | None = None
    # Handed out by a recv that acknowledges by cursor: until that reader's cursor covers it, it
    # belongs to the reader; it returns to the queue when an unnamed reader's session ends, or
    # when a named reader stays away past `held_until` (nothing an agent did not finish is lost).
    leased: bool = False
    # Who holds the lease: a name the reader chose (the turn loop's), or "~<daemon>-<connection>".
    reader: str | None = None
    # Set while a named reader is away (its session ended, the daemon restarted): its leases wait
    # for it until then, and go back to the queue after.
    held_until: float | None = None
    # How many times it was handed out: more than 1 means a reader got it before and did not finish.
    deliveries: int = 0
    # The sender's idempotency key, if it gave one.
    idem_key: str | None = None


class AgentRow(SQLModel, table=True):
    """An agent of the desired hive: it exists until killed, and runs again after a restart when `enabled`."""

    __tablename__ = "agent"  # pyright: ignore[reportAssignmentType, reportIncompatibleVariableOverride]  # as above

    name: str = Field(primary_key=True)
    backend: str
    enabled: bool = True
    created_at: float
    role: str = ""
    driver: str = "auto"
    # Its own limits, set at spawn (None: the daemon's defaults).
    memory_mb: int | None = None
    pids: int | None = None
    cpus: float | None = None


class EventRow(SQLModel, table=True):
    """One event of an agent's turns (a claude stream-json line, or the turn loop's own), kept for logs."""

    __tablename__ = "event"  # pyright: ignore[reportAssignmentType, reportIncompatibleVariableOverride]  # as above
    __table_args__ = (Index("ix_event_agent", "agent", "id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    agent: str
    created_at: float
    type: str
    data: str  # the event as JSON text, exactly as reported (truncated past the size limit)


class AgentStateRow(SQLModel, table=True):
    """What the reconciler last did to an agent: the revision and settings it applied, its state and why."""

    __tablename__ = "agent_state"  # pyright: ignore[reportAssignmentType, reportIncompatibleVariableOverride]  # as above

    name: str = Field(primary_key=True)
    # The hash of the agent's settings it runs with (None: never brought up), and the main it came from.
    applied_hash: str | None = None
    applied_rev: str | None = None
    # The settings it runs with, as JSON: a plan says which fields main changed.
    applied_config: str = ""
    # The main and the settings hash of the latest step tried on it, successful or not.
    attempted_rev: str | None = None
    attempted_hash: str | None = None
    # Ready | Progressing | Failed, and a reason a person can act on.
    state: str = "Progressing"
    reason: str = ""
    # Suspended: the reconciler leaves it as it is (no restart, no change from main) until resumed.
    suspended: bool = False
    # Restarts after the agent died (or failed to start) in a row, and when the next one is due.
    failures: int = 0
    retry_at: float | None = None
    updated_at: float = 0.0


class JournalRow(SQLModel, table=True):
    """One reconcile step, written before it acts: an agent's short history, and what a crash cut short."""

    __tablename__ = "reconcile_journal"  # pyright: ignore[reportAssignmentType, reportIncompatibleVariableOverride]  # as above
    __table_args__ = (Index("ix_journal_agent", "agent", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    agent: str
    rev: str
    # create | start | rebuild | remove | prune | restart | exited
    step: str
    cause: str
    # started (written before acting) | done | failed | interrupted (the daemon died during it)
    state: str = "started"
    detail: str = ""
    started_at: float
    finished_at: float | None = None


class ProposalRow(SQLModel, table=True):
    """A change the manager proposed: its commit on a proposal branch, and the operator's verdict."""

    __tablename__ = "proposal"  # pyright: ignore[reportAssignmentType, reportIncompatibleVariableOverride]  # as above
    __table_args__ = (Index("ix_proposal_state", "state", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    proposer: str
    # spawn | kill | rebuild | edit
    kind: str
    agent: str
    summary: str
    message: str = ""
    base: str
    commit: str | None = None
    # The files it changes, comma-separated: main changing one of them since `base` makes it stale.
    paths: str = ""
    # proposed | approved | denied | expired | stale | applying | applied | degraded
    state: str = "proposed"
    reason: str = ""
    created_at: float
    expires_at: float
    decided_at: float | None = None
    decided_by: str | None = None
    # The commit on main that merged it.
    merged_rev: str | None = None
    # The last state the proposer was told about (the outcome message is sent once per state).
    notified: str | None = None


class UsageRow(SQLModel, table=True):
    """What one model turn of an agent used, as its turn loop reported it (see hyperhive_core/budget)."""

    __tablename__ = "usage"  # pyright: ignore[reportAssignmentType, reportIncompatibleVariableOverride]  # as above
    __table_args__ = (Index("ix_usage_agent_day", "agent", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    agent: str
    created_at: float
    day: str  # the UTC date it was recorded on, YYYY-MM-DD: what per-day budgets count by
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0
    duration_ms: int = 0


class BudgetRow(SQLModel, table=True):
    """The operator's limits for one agent, or for the whole hive (scope `hive`); None: no limit."""

    __tablename__ = "budget"  # pyright: ignore[reportAssignmentType, reportIncompatibleVariableOverride]  # as above

    scope: str = Field(primary_key=True)
    usd_per_day: float | None = None
    tokens_per_day: int | None = None
    usd_total: float | None = None
    tokens_total: int | None = None
    updated_at: float = 0.0
