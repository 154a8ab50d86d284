"""The hive database's schema, version by version, on both engines; `schema_version` records what ran.

Each `Migration` has a number, a line saying what it does, a step per engine, and whether it is
online-safe (only adds: a table, a nullable column, an index), which is what a PostgreSQL daemon may
apply by itself at start. Each runs in its own transaction under a lock: PostgreSQL's
`pg_advisory_xact_lock` (several hosts may start at once), SQLite's `BEGIN IMMEDIATE` (the daemon's
flock already keeps a second process away). A database made before versions were recorded (its
tables, no `schema_version`) is version 1 as it is: recorded, never re-created. A database newer than
this code is refused before anything writes to it.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

from hyperhive_core.errors import SchemaVersionError, StorageError

logger = logging.getLogger(__name__)

Dialect = Literal["sqlite", "postgresql"]
Step = Callable[[Connection], None] | tuple[str, ...]
# Any number, the same for every hyperhive: the lock `hivectl migrate` and starting daemons share.
ADVISORY_LOCK_KEY = 0x6879_7665  # "hyve"
VERSION_DDL: dict[Dialect, str] = {
    "sqlite": "CREATE TABLE IF NOT EXISTS schema_version "
    "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL, description TEXT NOT NULL)",
    "postgresql": "CREATE TABLE IF NOT EXISTS schema_version "
    "(version integer PRIMARY KEY, applied_at double precision NOT NULL, description text NOT NULL)",
}
RECOGNISED = "found as made before versioned migrations"


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: what it does, how on each engine, and whether it only adds."""

    version: int
    description: str
    online: bool
    sqlite: Step
    postgresql: Step

    def step(self, dialect: Dialect) -> Step:
        """The step for `dialect`."""
        return self.sqlite if dialect == "sqlite" else self.postgresql


def _create_v1(conn: Connection) -> None:
    """The schema as it was before versions were recorded: the models' tables and the extra indexes."""
    SQLModel.metadata.create_all(conn)
    if conn.dialect.name == "postgresql":
        # The re-check counts every recipient's queue each second: only queued rows in the index.
        conn.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS ix_message_queued ON message (recipient) WHERE state = 'QUEUED'"
        )
        # Placement's tables (see placement.py), so a daemon's role never has to create them.
        conn.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS daemon_host (host text PRIMARY KEY, heartbeat_at double precision NOT NULL)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS placement (name text PRIMARY KEY, host text NOT NULL, "
            "heartbeat_at double precision NOT NULL)"
        )
        conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_placement_host ON placement (host)")


MIGRATIONS: tuple[Migration, ...] = (
    # Online-safe: it only creates tables, on a database that has none.
    Migration(
        1, "the hive's tables: messages, agents, events, proposals, usage, budgets", True, _create_v1, _create_v1
    ),
    Migration(
        2,
        "message.lease_host: which host's daemon handed a lease out (a restart recovers only its own)",
        True,
        ("ALTER TABLE message ADD COLUMN lease_host TEXT",),
        (
            "ALTER TABLE message ADD COLUMN IF NOT EXISTS lease_host text",
            "CREATE INDEX IF NOT EXISTS ix_message_lease_host ON message (lease_host) WHERE leased",
        ),
    ),
)
LATEST = MIGRATIONS[-1].version


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where a database stands: its version (0: empty), and what this code would apply to it."""

    current: int
    pending: tuple[Migration, ...]

    @property
    def newer(self) -> bool:
        """The database is newer than this code: it must not be written."""
        return self.current > LATEST


def _dialect(conn: Connection) -> Dialect:
    name = conn.dialect.name
    if name not in ("sqlite", "postgresql"):
        raise ValueError(f"no migrations for a {name} database")
    return "sqlite" if name == "sqlite" else "postgresql"


def _has_table(conn: Connection, name: str) -> bool:
    if _dialect(conn) == "sqlite":
        found = conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    else:
        found = conn.exec_driver_sql(
            "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = %s", (name,)
        )
    return found.first() is not None


def read_version(conn: Connection) -> int:
    """The schema version of the database `conn` is on: 0 when empty, 1 for one made before versions."""
    if _has_table(conn, "schema_version"):
        return int(conn.exec_driver_sql("SELECT coalesce(max(version), 0) FROM schema_version").scalar_one())
    return 1 if _has_table(conn, "message") else 0


def status_of(engine: Engine, translate: Callable[[BaseException], StorageError]) -> SchemaStatus:
    """Read where the database stands; writes nothing.

    Raises:
        StorageError: the database cannot be read (through `translate`).
    """
    try:
        with engine.connect() as conn:
            current = read_version(conn)
    except SQLAlchemyError as exc:
        raise translate(exc) from exc
    return SchemaStatus(current, tuple(m for m in MIGRATIONS if m.version > current))


def refuse_newer(status: SchemaStatus) -> None:
    """Raise when the database is newer than this code.

    Raises:
        SchemaVersionError: it is.
    """
    if status.newer:
        raise SchemaVersionError(
            f"the hive database is at schema version {status.current}, newer than this hyperhive knows "
            f"(up to {LATEST}); nothing was changed: upgrade hyperhive on this host",
            current=status.current,
        )


def apply_pending(
    engine: Engine, translate: Callable[[BaseException], StorageError], *, only: Sequence[Migration] | None = None
) -> list[Migration]:
    """Apply what is pending, each migration in its own locked transaction; returns what this call applied.

    Another process may apply some meanwhile (on PostgreSQL): each is checked again under the lock.

    Raises:
        SchemaVersionError: the database is newer than this code.
        StorageError: the database refused (through `translate`).
    """
    status = status_of(engine, translate)
    refuse_newer(status)
    applied: list[Migration] = []
    try:
        for migration in only if only is not None else status.pending:
            with engine.connect() as conn:
                dialect = _dialect(conn)
                if dialect == "sqlite":
                    # pysqlite begins no transaction before DDL by itself: take the write lock now.
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})")
                current = read_version(conn)
                refuse_newer(SchemaStatus(current, ()))
                conn.exec_driver_sql(VERSION_DDL[dialect])
                if current == 1 and not _recorded(conn):
                    _record(conn, 1, RECOGNISED)
                if current >= migration.version:
                    conn.commit()
                    continue
                step = migration.step(dialect)
                if callable(step):
                    step(conn)
                else:
                    for statement in step:
                        conn.exec_driver_sql(statement)
                _record(conn, migration.version, migration.description)
                conn.commit()
            applied.append(migration)
            # A new database's own making is no news; a change to one that held a hive is.
            logger.log(
                logging.DEBUG if status.current == 0 else logging.INFO,
                "hive database: applied migration %d (%s)",
                migration.version,
                migration.description,
            )
    except SQLAlchemyError as exc:
        raise translate(exc) from exc
    return applied


def _recorded(conn: Connection) -> bool:
    return conn.exec_driver_sql("SELECT 1 FROM schema_version LIMIT 1").first() is not None


def _record(conn: Connection, version: int, description: str) -> None:
    conn.execute(
        text("INSERT INTO schema_version (version, applied_at, description) VALUES (:v, :at, :d)"),
        {"v": version, "at": time.time(), "d": description},
    )


def history(engine: Engine, translate: Callable[[BaseException], StorageError]) -> list[tuple[int, float, str]]:
    """What `schema_version` records, oldest first (empty before the first migration ran).

    Raises:
        StorageError: the database cannot be read (through `translate`).
    """
    try:
        with engine.connect() as conn:
            if not _has_table(conn, "schema_version"):
                return []
            rows = conn.exec_driver_sql("SELECT version, applied_at, description FROM schema_version ORDER BY version")
            return [(int(v), float(at), str(d)) for v, at, d in rows]
    except SQLAlchemyError as exc:
        raise translate(exc) from exc
