"""Plain synchronous SQL over the hive's SQLite file: messages and the desired hive.

WAL with `synchronous=FULL`, so a committed row survives `kill -9` and power loss alike. Every
method is one transaction; SQLAlchemy errors are translated to `StorageError` here and nowhere else.
Callers serialise writes (the async broker holds a one-slot limiter); reads may run beside them.
"""

import logging
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, Table, delete, event, func, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel, col, create_engine, select

from hyperhive_core.broker.models import AgentRow, EventRow, MessageRow, MessageState
from hyperhive_core.errors import HiveError, InboxFullError, StorageError, UnknownMessageError

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
# Pruning an agent's old events costs a DELETE; do it once every this many appends.
PRUNE_EVERY = 100
MESSAGE_TABLE = cast(Table, MessageRow.__table__)  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]  # sqlmodel adds __table__ at runtime


def open_engine(path: Path) -> Engine:
    """Open (creating if needed) the SQLite database at `path` with the broker's durability settings.

    Raises:
        StorageError: the file cannot be opened or its tables cannot be created.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:  # pyright: ignore[reportUnusedFunction]  # registered by the decorator
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: fsync the WAL on every commit, so an acknowledged send survives power loss too.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.close()

        SQLModel.metadata.create_all(engine)
        _add_missing_columns(engine)
    except (SQLAlchemyError, OSError) as exc:
        raise StorageError(f"cannot open the hive database {path}: {exc}") from exc
    return engine


def _add_missing_columns(engine: Engine) -> None:
    """Bring an older database up to the models: columns added since are added with their defaults."""
    with engine.begin() as conn:
        for table in SQLModel.metadata.sorted_tables:
            present = {row[1] for row in conn.execute(text(f'PRAGMA table_info("{table.name}")'))}
            for column in table.columns:
                if column.name in present:
                    continue
                default: object = getattr(column.default, "arg", None)
                kind = column.type.compile(dialect=engine.dialect)
                literal = (
                    "NULL" if default is None else repr(default if not isinstance(default, bool) else int(default))
                )
                conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind} DEFAULT {literal}'))
                logger.info("added column %s.%s to the hive database", table.name, column.name)


class HiveStore:
    """Messages and the desired hive in one SQLite file."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def _session(self) -> Generator[Session]:
        try:
            with Session(self._engine, expire_on_commit=False) as session:
                yield session
        except HiveError:
            raise
        except SQLAlchemyError as exc:
            raise StorageError(f"the hive database refused the operation: {exc.__class__.__name__}: {exc}") from exc

    # messages

    def append(
        self, sender: str, recipient: str, body: str, *, reply_to: int | None, now: float, max_depth: int
    ) -> MessageRow:
        """Commit a new queued message and return it; a reply acknowledges the message it answers.

        Raises:
            InboxFullError: the recipient already has `max_depth` unread messages.
            UnknownMessageError: `reply_to` names no message the sender took part in.
        """
        with self._session() as session:
            queued = session.exec(
                select(func.count())
                .select_from(MessageRow)
                .where(col(MessageRow.recipient) == recipient, col(MessageRow.state) == MessageState.QUEUED)
            ).one()
            if queued >= max_depth:
                raise InboxFullError(recipient, max_depth)
            if reply_to is not None:
                original = session.get(MessageRow, reply_to)
                if original is None or sender not in (original.sender, original.recipient):
                    raise UnknownMessageError(reply_to)
                if original.recipient == sender and original.state == MessageState.DELIVERED:
                    original.state = MessageState.ACKED
                    original.acked_at = now
                    session.add(original)
            row = MessageRow(sender=sender, recipient=recipient, body=body, created_at=now, reply_to=reply_to)
            session.add(row)
            session.commit()
            return row

    def claim(self, recipient: str, limit: int, *, now: float) -> list[MessageRow]:
        """Mark up to `limit` of the oldest queued messages delivered and return them, in one statement."""
        oldest = (
            select(col(MessageRow.id))
            .where(col(MessageRow.recipient) == recipient, col(MessageRow.state) == MessageState.QUEUED)
            .order_by(col(MessageRow.id))
            .limit(limit)
        )
        # One UPDATE … RETURNING: the select and the state change cannot interleave with another claim.
        statement = (
            update(MessageRow)
            .where(col(MessageRow.id).in_(oldest.scalar_subquery()))
            .values(state=MessageState.DELIVERED, delivered_at=now)
            .returning(*MESSAGE_TABLE.columns)
        )
        with self._session() as session:
            result = session.connection().execute(statement)
            rows = [MessageRow.model_validate(dict(zip(result.keys(), r, strict=True))) for r in result]
            session.commit()
        return sorted(rows, key=lambda r: r.id or 0)

    def peek(self, recipient: str, limit: int) -> list[MessageRow]:
        """Return the oldest queued messages for `recipient` without changing them."""
        with self._session() as session:
            return list(
                session.exec(
                    select(MessageRow)
                    .where(col(MessageRow.recipient) == recipient, col(MessageRow.state) == MessageState.QUEUED)
                    .order_by(col(MessageRow.id))
                    .limit(limit)
                ).all()
            )

    def counts(self, recipient: str) -> dict[MessageState, int]:
        """Count `recipient`'s messages by state."""
        with self._session() as session:
            rows = session.exec(
                select(col(MessageRow.state), func.count())
                .where(col(MessageRow.recipient) == recipient)
                .group_by(col(MessageRow.state))
            ).all()
        return {MessageState(state): n for state, n in rows}

    def unread_counts(self) -> dict[str, int]:
        """Count queued messages per recipient, for everyone at once."""
        with self._session() as session:
            rows = session.exec(
                select(col(MessageRow.recipient), func.count())
                .where(col(MessageRow.state) == MessageState.QUEUED)
                .group_by(col(MessageRow.recipient))
            ).all()
        return dict(rows)

    def message_count(self) -> int:
        """Count every stored message."""
        with self._session() as session:
            return session.exec(select(func.count()).select_from(MessageRow)).one()

    # turn events

    def append_events(self, agent: str, events: Sequence[tuple[str, str]], *, now: float, keep: int) -> int:
        """Store `(type, json)` events for `agent`, dropping its oldest beyond `keep`; returns the last id."""
        with self._session() as session:
            rows = [EventRow(agent=agent, created_at=now, type=kind, data=data) for kind, data in events]
            session.add_all(rows)
            session.flush()
            last = rows[-1].id or 0
            if last % PRUNE_EVERY < len(rows):
                session.connection().execute(
                    delete(EventRow).where(col(EventRow.agent) == agent, col(EventRow.id) <= last - keep)
                )
            session.commit()
            return last

    def events(self, agent: str, *, after: int | None, limit: int) -> list[EventRow]:
        """`agent`'s events after id `after`, oldest first; with `after=None`, the last `limit` of them."""
        with self._session() as session:
            query = select(EventRow).where(col(EventRow.agent) == agent)
            if after is None:
                newest = session.exec(query.order_by(col(EventRow.id).desc()).limit(limit)).all()
                return list(reversed(newest))
            return list(session.exec(query.where(col(EventRow.id) > after).order_by(col(EventRow.id)).limit(limit)))

    # the desired hive

    def agents(self) -> Sequence[AgentRow]:
        """Every agent of the desired hive, by name."""
        with self._session() as session:
            return session.exec(select(AgentRow).order_by(col(AgentRow.name))).all()

    def put_agent(self, row: AgentRow) -> None:
        """Insert or replace an agent of the desired hive."""
        with self._session() as session:
            session.merge(row)
            session.commit()

    def delete_agent(self, name: str) -> None:
        """Remove an agent from the desired hive; its messages stay as history."""
        with self._session() as session:
            row = session.get(AgentRow, name)
            if row is not None:
                session.delete(row)
                session.commit()

    def check(self) -> None:
        """Run SQLite's quick integrity check.

        Raises:
            StorageError: the database is damaged.
        """
        with self._session() as session:
            result = session.connection().execute(text("PRAGMA quick_check")).scalar_one()
        if result != "ok":
            raise StorageError(f"the hive database failed its integrity check: {result}")
