"""`hivectl backup` (an online copy of the hive database), `hivectl doctor` (what is wrong, and the way
out) and `hivectl migrate` (the schema brought up to date; on PostgreSQL, the hosts' roles bound).

Both work with the daemon running or not: backup asks the daemon when one runs (its snapshot is
consistent with what it writes) and copies the file itself when none does; doctor only reads.
"""

import os
import shutil
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table
from rich.text import Text

from hyperhive_core.cli._client import OperatorClient
from hyperhive_core.cli._common import Json, RunDir, StateDir, console, fail, print_json, use_dirs
from hyperhive_core.cli._safe import printable
from hyperhive_core.config import MIN_FREE_MB
from hyperhive_core.errors import DaemonUnavailableError, HiveError
from hyperhive_core.mcp.models import BackupReceipt

if TYPE_CHECKING:
    from hyperhive_core.broker.migrations import Migration, SchemaStatus

Status = Literal["ok", "warn", "fail"]
STATUS_STYLE = {"ok": "green", "warn": "bold yellow", "fail": "bold red"}


Database = Annotated[
    str | None,
    typer.Option(
        envvar="HYPERHIVE_DATABASE",
        show_default=False,
        help="The hive's PostgreSQL URL (its password in a pgpass file); without it, the state dir's SQLite file.",
    ),
]


def backup(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A new file for the copy; never overwritten.")],
    database: Database = None,
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Take an online copy of the hive database; `hivectl serve --restore PATH` starts from it (on PostgreSQL:
    a pg_dump, which pg_restore restores)."""
    d = use_dirs(ctx, run_dir, state_dir)
    dest = path.resolve()
    if database is not None:
        _backup_postgres(database, dest, json=json)
        return
    try:
        try:
            with OperatorClient(d.host_socket) as client:
                receipt = client.call("backup", {"path": str(dest)}, BackupReceipt)
        except DaemonUnavailableError:
            from hyperhive_core.broker.database import backup_database
            from hyperhive_core.lock import lock_holder

            if lock_holder(d.state_dir) is not None:
                raise
            db = d.state_dir / "broker.sqlite"
            if not db.exists():
                raise HiveError(f"no hive database at {db}; nothing to back up") from None
            receipt = BackupReceipt(path=str(dest), bytes=backup_database(db, dest))
    except HiveError as exc:
        raise fail(str(exc)) from None
    if json:
        print_json(receipt)
    else:
        console.print(
            f"backed up the hive database to {receipt.path} ({receipt.bytes:,} bytes); "
            f"start from it with: hivectl serve --restore {receipt.path}",
            markup=False,
            soft_wrap=True,
        )


def _backup_postgres(database: str, dest: Path, *, json: bool) -> None:
    from hyperhive_core.broker.dburl import check_database_url
    from hyperhive_core.broker.pgops import backup_postgres, restore_hint

    try:
        check_database_url(database)
        receipt = BackupReceipt(path=str(dest), bytes=backup_postgres(database, dest))
    except (ValueError, HiveError) as exc:
        raise fail(str(exc)) from None
    if json:
        print_json(receipt)
    else:
        console.print(
            f"backed up the hive database to {receipt.path} ({receipt.bytes:,} bytes, pg_dump's custom format); "
            f"{restore_hint(dest)}",
            markup=False,
            soft_wrap=True,
        )


@dataclass(frozen=True, slots=True)
class Check:
    """One finding of the doctor."""

    name: str
    status: Status
    detail: str


def _private_dir(name: str, path: Path) -> Check:
    try:
        info = path.stat()
    except FileNotFoundError:
        return Check(name, "warn", f"{path} does not exist yet (hivectl serve creates it)")
    if not stat.S_ISDIR(info.st_mode):
        return Check(name, "fail", f"{path} is not a directory")
    if info.st_uid != os.geteuid():
        return Check(name, "fail", f"{path} belongs to uid {info.st_uid}, not to you ({os.geteuid()})")
    if info.st_mode & 0o077:
        return Check(name, "fail", f"{path} has mode {oct(info.st_mode & 0o777)}; chmod 700 {path}")
    return Check(name, "ok", str(path))


def _database_checks(state_dir: Path, running: bool) -> list[Check]:
    from hyperhive_core.broker.integrity import RunState, check_files, read_marker
    from hyperhive_core.errors import DatabaseDamagedError

    db = state_dir / "broker.sqlite"
    try:
        marker = read_marker(db)
    except DatabaseDamagedError as exc:
        return [Check("database", "fail", str(exc))]
    if not db.exists() and marker is None:
        return [Check("database", "ok", f"no database yet at {db} (a new hive)")]
    checks: list[Check] = []
    problem = None if running else check_files(db, marker)
    if problem is not None:
        checks.append(Check("database files", "fail", f"{problem}; see `hivectl serve --help` (--restore, --salvage)"))
        return checks
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            rows = [row[0] for row in connection.execute("PRAGMA quick_check(5)")]
            last_id = int(connection.execute("SELECT coalesce(max(id), 0) FROM message").fetchone()[0])
    except sqlite3.Error as exc:
        return [*checks, Check("database", "fail", f"SQLite cannot read {db}: {exc}")]
    if rows != ["ok"]:
        return [*checks, Check("database", "fail", f"integrity check: {'; '.join(rows)}")]
    if marker is not None and last_id < marker.last_id:
        return [
            *checks,
            Check("database", "fail", f"messages up to id {marker.last_id} were committed, it holds up to {last_id}"),
        ]
    size = db.stat().st_size
    state = "" if marker is None else f"; last stop: {marker.state}" if marker.state != RunState.RUNNING else ""
    checks.append(Check("database", "ok", f"{db}: {size:,} bytes, messages up to id {last_id}, intact{state}"))
    return checks


def _postgres_checks(database: str) -> list[Check]:
    from hyperhive_core.broker.dburl import check_database_url

    try:
        check_database_url(database)
    except ValueError as exc:
        return [Check("database", "fail", str(exc))]
    from hyperhive_core.broker.pgops import check_postgres
    from hyperhive_core.broker.placement import DOWN_AFTER_S

    return [Check(f.name, f.status, f.detail) for f in check_postgres(database, down_after_s=DOWN_AFTER_S)]


def doctor(
    ctx: typer.Context,
    database: Database = None,
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Check the hive's dirs, database (SQLite's file, or with --database the shared PostgreSQL: schema, trust,
    hosts and their heartbeats) and disk, with the daemon running or not; exit 1 if something fails."""
    from hyperhive_core.lock import lock_holder

    d = use_dirs(ctx, run_dir, state_dir)
    pid = lock_holder(d.state_dir)
    checks = [
        _private_dir("state dir", d.state_dir),
        _private_dir("run dir", d.run_dir),
        Check("daemon", "ok", f"running (pid {pid})" if pid else "not running"),
    ]
    if database is None:
        checks.extend(_database_checks(d.state_dir, running=pid is not None))
    else:
        checks.extend(_postgres_checks(database))
    if d.state_dir.exists():
        free = shutil.disk_usage(d.state_dir).free
        level: Status = "ok" if free >= MIN_FREE_MB * 2**20 * 4 else "warn" if free >= MIN_FREE_MB * 2**20 else "fail"
        checks.append(Check("disk", level, f"{free / 2**20:,.0f} MiB free on the state dir's disk"))
    if json:
        print_json([{"check": c.name, "status": c.status, "detail": c.detail} for c in checks])
    else:
        table = Table("CHECK", "STATUS", "DETAIL", title="hivectl doctor", title_justify="left")
        for c in checks:
            table.add_row(c.name, Text(c.status, style=STATUS_STYLE[c.status]), printable(c.detail))
        console.print(table)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


def migrate(
    ctx: typer.Context,
    database: Annotated[
        str | None,
        typer.Option(
            envvar="HYPERHIVE_DATABASE",
            show_default=False,
            help="The PostgreSQL URL, as the schema's owner (its password in a pgpass file); "
            "without it, the state dir's SQLite database (with its daemon stopped).",
        ),
    ] = None,
    grant: Annotated[
        list[str] | None,
        typer.Option(help="ROLE=HOST: let login role ROLE run the daemon of HOST, and only as its agents; repeatable."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", "--status", help="Show the schema's version and what is pending; change nothing."),
    ] = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Bring the hive database's schema up to this hyperhive's (each migration in its own transaction);
    on PostgreSQL, with --grant, also the rules that bind each host's role."""
    from hyperhive_core.broker.migrations import LATEST, Migration, SchemaStatus

    def pending(status: SchemaStatus) -> str:
        steps = "; ".join(f"{m.version}: {m.description}{'' if m.online else ' (offline)'}" for m in status.pending)
        return f"pending: {steps}" if steps else "nothing pending"

    def applied(done: list[Migration]) -> str:
        steps = "; ".join(f"{m.version}: {m.description}" for m in done)
        return f"applied {steps}" if steps else "nothing to apply"

    grants: dict[str, str] = {}
    for item in grant or []:
        role, sep, host = item.partition("=")
        if not sep or not role or not host:
            raise fail(f"--grant {item!r} is not ROLE=HOST (a login role, and the --host-name of its daemon)")
        grants[role] = host
    try:
        if database is None:
            if grants:
                raise fail("--grant is for a PostgreSQL database shared by several hosts; give --database URL too")
            where, status, done = _migrate_sqlite(use_dirs(ctx, run_dir, state_dir).state_dir, dry_run=dry_run)
            granted = ""
        else:
            where, status, done = _migrate_postgres(database, grants, dry_run=dry_run)
            granted = ", ".join(f"{role} runs {host}" for role, host in sorted(grants.items()))
    except (ValueError, HiveError) as exc:
        raise fail(str(exc)) from None
    if dry_run:
        newer = " (newer than this hyperhive: upgrade it on this host)" if status.newer else ""
        line = f"{where}: schema version {status.current}{newer}, this hyperhive's is {LATEST}; {pending(status)}"
    else:
        line = f"{where}: {applied(done)}; schema version {LATEST}" + (f"; {granted}" if granted else "")
    console.print(line, markup=False, soft_wrap=True)


def _migrate_sqlite(state_dir: Path, *, dry_run: bool) -> tuple[str, "SchemaStatus", list["Migration"]]:
    """The state dir's database: its status, and (unless `dry_run`) what was applied, under the daemon's lock."""
    from hyperhive_core.broker.migrations import status_of
    from hyperhive_core.broker.store import open_engine, raw_engine, storage_error
    from hyperhive_core.errors import DaemonRunningError
    from hyperhive_core.lock import DaemonLock

    db = state_dir / "broker.sqlite"
    if not db.exists():
        raise HiveError(f"no hive database at {db}; `hivectl serve` creates it (at the latest schema)")
    try:
        # The daemon's own lock: it applies what is pending at start, and nothing may change its file under it.
        lock = DaemonLock.acquire(state_dir)
    except DaemonRunningError as exc:
        if not dry_run:
            raise HiveError(f"{exc}; a daemon applies pending migrations itself when it starts") from None
        lock = None
    try:
        engine = raw_engine(db)
        try:
            status = status_of(engine, storage_error)
        finally:
            engine.dispose()
        if not dry_run:
            open_engine(db).dispose()
    finally:
        if lock is not None:
            lock.release()
    return str(db), status, [] if dry_run else list(status.pending)


def _migrate_postgres(
    database: str, grants: dict[str, str], *, dry_run: bool
) -> tuple[str, "SchemaStatus", list["Migration"]]:
    import anyio

    from hyperhive_core.broker.dburl import check_database_url, shown
    from hyperhive_core.broker.migrations import status_of
    from hyperhive_core.broker.postgres import open_pg_engine, pg_storage_error

    check_database_url(database)
    engine = open_pg_engine(database)
    try:
        status = status_of(engine, pg_storage_error)
    finally:
        engine.dispose()
    if dry_run:
        return shown(database), status, []
    from hyperhive_core.broker.trust import prepare_database

    return shown(database), status, anyio.run(prepare_database, database, grants)
