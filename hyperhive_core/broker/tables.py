"""The tables both engines reach through SQLAlchemy: turn events, the desired hive, message counts.

Plain synchronous sessions on the store's engine (SQLite's file, or PostgreSQL through psycopg's
sync driver), one per call; callers run them in a worker thread. Their errors become
`StorageError` here.
"""

from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager

from sqlalchemy import Engine, delete, func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel, col, select

from hyperhive_core.broker.models import AgentRow, EventRow, MessageRow
from hyperhive_core.broker.storage import PRUNE_EVERY
from hyperhive_core.errors import HiveError, StorageError


class EngineTables:
    """What a store keeps through SQLAlchemy sessions rather than its own hot-path connections."""

    def __init__(self, engine: Engine, translate: Callable[[BaseException], StorageError]) -> None:
        self._engine = engine
        self._translate = translate

    @property
    def engine(self) -> Engine:
        """The engine the store was opened on: the same database, for the tables other subsystems keep."""
        return self._engine

    @contextmanager
    def _session(self) -> Generator[Session]:
        try:
            with Session(self._engine, expire_on_commit=False) as session:
                yield session
        except HiveError:
            raise
        except SQLAlchemyError as exc:
            raise self._translate(exc) from exc

    def message_count(self) -> int:
        """Count every stored message."""
        with self._session() as session:
            return session.exec(select(func.count()).select_from(MessageRow)).one()

    # turn events

    def append_events(
        self, agent: str, events: Sequence[tuple[str, str]], *, now: float, keep: int, also: Sequence[SQLModel] = ()
    ) -> int:
        """Store `(type, json)` events for `agent`, dropping its oldest beyond `keep`; returns the last id.

        `also` are rows of other tables committed in the same transaction (the usage the events report).
        """
        with self._session() as session:
            rows = [EventRow(agent=agent, created_at=now, type=kind, data=data) for kind, data in events]
            session.add_all(rows)
            session.add_all(also)
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
