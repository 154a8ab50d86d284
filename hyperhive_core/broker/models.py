"""The SQL tables: every message ever sent, and the desired hive (which agents exist, which should run).

Times are unix seconds (float): compact, ordered, and free of SQLite's timezone loss.
"""

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from hyperhive_core.states import MessageState


class MessageRow(SQLModel, table=True):
    """One message; the row is the source of truth, in-process wake-ups only hint at it."""

    __tablename__ = "message"  # pyright: ignore[reportAssignmentType, reportIncompatibleVariableOverride]  # sqlmodel types it as a declared_attr
    __table_args__ = (Index("ix_message_inbox", "recipient", "state", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    sender: str
    recipient: str
    body: str
    created_at: float
    reply_to: int | None = None
    state: MessageState = MessageState.QUEUED
    delivered_at: float | None = None
    acked_at: float | None = None
    # Handed out by a recv that acknowledges by cursor: until acknowledged, it returns to the queue
    # when that session ends or the daemon restarts (nothing an agent did not finish is lost).
    leased: bool = False


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

    id: int | None = Field(default=None, primary_key=True)
    agent: str
    created_at: float
    type: str
    data: str  # the event as JSON text, exactly as reported (truncated past the size limit)
