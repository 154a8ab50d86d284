"""The `StorageError` for an error of a SQLAlchemy engine on either of the hive's databases.

The tables kept through SQLAlchemy (the approvals', the budgets', the dashboard's reads) run on the
store's engine, which is SQLite's file or a PostgreSQL database: its errors get that engine's words
(a locked or full file; a server that cannot be reached).
"""

from sqlalchemy import Engine

from hyperhive_core.broker.store import storage_error
from hyperhive_core.errors import StorageError


def engine_error(engine: Engine, exc: BaseException) -> StorageError:
    """The `StorageError` for `exc`, raised by `engine`, in words that say what to do."""
    if engine.dialect.name == "postgresql":
        # Imported here: psycopg (and libpq) cost nothing to a daemon on SQLite.
        from hyperhive_core.broker.postgres import pg_storage_error

        return pg_storage_error(exc)
    return storage_error(exc)
