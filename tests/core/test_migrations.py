"""The schema's versions on both engines: a new database comes up at the latest, one made before versions
were recorded is recognised as version 1 and migrated with its data, a newer one is refused untouched,
and a daemon's role that may not change the schema says who must."""

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine
from typer.testing import CliRunner

from hyperhive_core.broker import migrations
from hyperhive_core.broker.migrations import LATEST, MIGRATIONS, RECOGNISED, Dialect
from hyperhive_core.broker.postgres import open_pg_engine, open_pg_store, pg_storage_error
from hyperhive_core.broker.store import open_engine, raw_engine, storage_error
from hyperhive_core.broker.trust import TRUST_DDL, grant_host
from hyperhive_core.cli import app
from hyperhive_core.errors import SchemaVersionError, StorageError
from hyperhive_core.lock import DaemonLock
from tests.postgres import PgServer


@dataclass
class EmptyDb:
    """An empty database on one engine: a raw engine on it, the daemon's way to open it, `hivectl migrate`'s args."""

    engine: Dialect
    raw: Callable[[], Engine]
    translate: Callable[[BaseException], StorageError]
    start: Callable[[], None]  # what a daemon does at start: brings it up, or refuses
    cli: list[str]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, short_tmpdir: Path) -> Iterator[EmptyDb]:
    """A new empty database on each engine."""
    if request.param == "sqlite":
        db = short_tmpdir / "state" / "broker.sqlite"
        db.parent.mkdir(mode=0o700)
        db.touch()
        yield EmptyDb(
            "sqlite",
            lambda: raw_engine(db),
            storage_error,
            lambda: open_engine(db).dispose(),
            ["--state-dir", str(db.parent), "--run-dir", str(short_tmpdir / "run")],
        )
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = f"empty_{os.getpid()}_{short_tmpdir.name.replace('-', '_').lower()}"
    server.execute(f"CREATE DATABASE {name}")  # from template1: no hive tables
    url = server.url(name)

    async def open_and_close() -> None:
        async with open_pg_store(url, host="here", pool_size=1):
            pass

    yield EmptyDb(
        "postgresql",
        lambda: open_pg_engine(url),
        pg_storage_error,
        lambda: anyio.run(open_and_close),
        ["--database", url],
    )


def versions(db: EmptyDb) -> list[tuple[int, str]]:
    engine = db.raw()
    try:
        return [(v, d) for v, _, d in migrations.history(engine, db.translate)]
    finally:
        engine.dispose()


def run_sql(db: EmptyDb, *statements: str) -> list[tuple[object, ...]]:
    """Run `statements` in one transaction on the raw database; returns the last one's rows."""
    engine = db.raw()
    rows: list[tuple[object, ...]] = []
    try:
        with engine.begin() as conn:
            for statement in statements:
                result = conn.exec_driver_sql(statement)
                rows = [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()
    return rows


def make_v1(db: EmptyDb) -> None:
    """The database as today's main made it before versions were recorded: its tables, no `schema_version`."""
    engine = db.raw()
    try:
        with engine.begin() as conn:
            step = MIGRATIONS[0].step(db.engine)
            assert callable(step)
            step(conn)
    finally:
        engine.dispose()


LEASED = (
    "INSERT INTO message (sender, recipient, body, created_at, state, leased, reader, deliveries) "
    "VALUES ('bob', 'alice', 'kept', 1, 'DELIVERED', {true}, 'turn-loop', 1)"
)


def test_a_new_database_comes_up_at_the_latest_version(empty_db: EmptyDb) -> None:
    empty_db.start()
    assert versions(empty_db) == [(m.version, m.description) for m in MIGRATIONS]
    empty_db.start()  # and again: nothing more
    assert [v for v, _ in versions(empty_db)] == list(range(1, LATEST + 1))


def test_a_database_made_before_versions_is_recognised_as_1_and_migrated_with_its_data(empty_db: EmptyDb) -> None:
    make_v1(empty_db)
    run_sql(empty_db, LEASED.format(true="1" if empty_db.engine == "sqlite" else "true"))
    status = CliRunner().invoke(app, ["migrate", "--status", *empty_db.cli])
    assert status.exit_code == 0, status.output
    assert f"schema version 1, this hyperhive's is {LATEST}; pending: 2: message.lease_host" in status.output
    assert versions(empty_db) == []  # --status changed nothing

    done = CliRunner().invoke(app, ["migrate", *empty_db.cli])
    assert done.exit_code == 0, done.output
    assert "applied 2: message.lease_host" in done.output
    assert versions(empty_db) == [(1, RECOGNISED), (2, MIGRATIONS[1].description)]
    rows = run_sql(empty_db, "SELECT sender, body, reader, lease_host FROM message")
    assert rows == [("bob", "kept", "turn-loop", None)]

    again = CliRunner().invoke(app, ["migrate", *empty_db.cli])
    assert again.exit_code == 0, again.output
    assert "nothing to apply" in again.output
    assert len(versions(empty_db)) == 2


def test_a_database_newer_than_the_code_is_refused_and_left_untouched(empty_db: EmptyDb) -> None:
    empty_db.start()
    run_sql(
        empty_db,
        f"INSERT INTO schema_version (version, applied_at, description) VALUES ({LATEST + 1}, 0, 'from the future')",
    )
    with pytest.raises(SchemaVersionError) as caught:
        empty_db.start()
    assert f"schema version {LATEST + 1}" in str(caught.value)
    assert "upgrade hyperhive on this host" in str(caught.value)
    refused = CliRunner().invoke(app, ["migrate", *empty_db.cli])
    assert refused.exit_code == 1
    assert "upgrade hyperhive on this host" in refused.output
    assert [v for v, _ in versions(empty_db)] == [*range(1, LATEST + 1), LATEST + 1]


def test_migrate_refuses_a_sqlite_database_while_its_daemon_runs(short_tmpdir: Path) -> None:
    state = short_tmpdir / "state"
    open_engine(state / "broker.sqlite").dispose()
    lock = DaemonLock.acquire(state)  # as a running daemon holds it
    try:
        done = CliRunner().invoke(app, ["migrate", "--state-dir", str(state), "--run-dir", str(short_tmpdir / "run")])
    finally:
        lock.release()
    assert done.exit_code == 1
    assert "applies pending migrations itself when it starts" in done.output


def test_a_daemons_role_may_not_migrate_and_says_who_must(pg_server: PgServer, short_tmpdir: Path) -> None:
    name = f"roles_{os.getpid()}_{short_tmpdir.name.replace('-', '_').lower()}"
    role = f"daemon_{name}"
    pg_server.execute(f"CREATE DATABASE {name}")
    pg_server.execute(f"CREATE ROLE {role} LOGIN")
    admin_url, daemon_url = pg_server.url(name), pg_server.url(name, user=role)
    # The schema owner set the hive up before versions were recorded, and granted the daemon its rows.
    engine = open_pg_engine(admin_url)
    try:
        with engine.begin() as conn:
            step = MIGRATIONS[0].step("postgresql")
            assert callable(step)
            step(conn)
    finally:
        engine.dispose()
    with psycopg.connect(admin_url) as conn:
        for statement in TRUST_DDL:
            conn.execute(statement.encode())
        for query in grant_host(role, "here"):
            conn.execute(query)

    async def start_daemon() -> None:
        async with open_pg_store(daemon_url, host="here", pool_size=1):
            pass

    with pytest.raises(SchemaVersionError) as caught:
        anyio.run(start_daemon)
    assert "this daemon's role may not change the schema" in str(caught.value)
    assert f"run `hivectl migrate --database {daemon_url.split('?')[0]}` as the schema owner" in str(caught.value)
    engine = open_pg_engine(admin_url)
    try:
        assert migrations.history(engine, pg_storage_error) == []  # refused: nothing written
    finally:
        engine.dispose()
    done = CliRunner().invoke(app, ["migrate", "--database", admin_url])
    assert done.exit_code == 0, done.output
    # At the latest version the daemon's role only reads it (migrate granted it the new version table).
    anyio.run(start_daemon)
    with psycopg.connect(daemon_url) as conn:
        granted = conn.execute(
            sql.SQL("SELECT has_column_privilege({}, 'message', 'lease_host', 'UPDATE')").format(sql.Literal(role))
        ).fetchone()
    assert granted == (True,)
    # A role that may not even read the version is told the same way out.
    pg_server_revoke = f"REVOKE SELECT ON schema_version FROM {role}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(pg_server_revoke.encode())
    with pytest.raises(SchemaVersionError) as unreadable:
        anyio.run(start_daemon)
    assert "may not read the hive database's schema version" in str(unreadable.value)
    assert "`hivectl migrate --database" in str(unreadable.value)


def test_serve_on_a_newer_postgres_database_refuses_with_the_way_out(pg_server: PgServer, short_tmpdir: Path) -> None:
    url = pg_server.new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO schema_version (version, applied_at, description) VALUES (%s, 0, 'from the future')",
            (LATEST + 1,),
        )
    dirs = ["--state-dir", str(short_tmpdir / "state"), "--run-dir", str(short_tmpdir / "run")]
    done = CliRunner().invoke(app, ["serve", "--database", url, "--no-dashboard", "--host-name", "here", *dirs])
    assert done.exit_code == 1
    assert "upgrade hyperhive on this host" in done.output
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM daemon_host").fetchone() == (0,)  # it never ran
