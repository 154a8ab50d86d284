"""The hive database's life: checked and opened at start, marked while it runs, closed cleanly, backed up.

`open_database` refuses a damaged database (see `integrity`) before anything writes to it; with
`restore` it first puts a backup in place, with `salvage` it starts from what SQLite can still read.
Either way the files it replaces are kept in `<state dir>/damaged-<time>/`. `backup_database`
takes an online copy with SQLite's backup API: a consistent snapshot, while the daemon writes on.
"""

import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from hyperhive_core.broker.integrity import (
    WAY_OUT,
    RunState,
    check_files,
    check_opened,
    marker_path,
    read_marker,
    wal_path,
    write_marker,
)
from hyperhive_core.broker.store import DbLimits, HiveStore, open_engine
from hyperhive_core.errors import ConfigError, DatabaseDamagedError, StorageError

logger = logging.getLogger(__name__)

# Pages copied per step of an online backup: the daemon's writer waits at most this long at a time.
BACKUP_PAGES_PER_STEP = 1024


@dataclass(frozen=True, slots=True)
class StartFrom:
    """How to start when the database cannot be used as it is: from a backup, or from what is left."""

    restore: Path | None = None
    salvage: bool = False


AS_IS = StartFrom()


def _related(db: Path) -> list[Path]:
    return [p for p in (db, wal_path(db), db.with_name(db.name + "-shm"), marker_path(db)) if p.exists()]


def _set_aside(db: Path, *, keep_originals: bool) -> Path | None:
    """Keep the database's files in `damaged-<time>/` beside it: copied, or moved away."""
    files = _related(db)
    if not files:
        return None
    aside = db.parent / f"damaged-{time.strftime('%Y%m%dT%H%M%S')}"
    aside.mkdir(mode=0o700, exist_ok=True)
    for path in files:
        if keep_originals:
            shutil.copy2(path, aside / path.name)
        else:
            os.replace(path, aside / path.name)
    logger.warning("kept the database's files as they were in %s", aside)
    return aside


def _check_backup(backup: Path) -> None:
    try:
        with sqlite3.connect(f"file:{backup}?mode=ro", uri=True) as connection:
            if [row[0] for row in connection.execute("PRAGMA quick_check(1)")] != ["ok"]:
                raise ConfigError(f"the backup {backup} fails SQLite's integrity check; choose another")
            connection.execute("SELECT count(*) FROM message").fetchone()
    except sqlite3.Error as exc:
        raise ConfigError(f"{backup} is not a hive database backup ({exc}); choose another") from exc


def _restore(db: Path, backup: Path) -> None:
    if not backup.is_file():
        raise ConfigError(f"no backup at {backup}; hivectl backup PATH takes one while the daemon runs")
    _check_backup(backup)
    _set_aside(db, keep_originals=False)
    shutil.copyfile(backup, db)
    db.chmod(0o600)
    with sqlite3.connect(db) as connection:
        last = int(connection.execute("SELECT coalesce(max(id), 0) FROM message").fetchone()[0])
    write_marker(db, RunState.STOPPED, last)
    logger.warning("restored the hive database from %s (messages up to id %d)", backup, last)


def _salvage(db: Path) -> None:
    _set_aside(db, keep_originals=True)
    marker_path(db).unlink(missing_ok=True)
    logger.warning("starting from what SQLite can still read of %s", db)


def _make_private(db: Path) -> None:
    """Create the database file 0600 before SQLite does (it would use the umask); tighten an old one.

    SQLite gives its -wal and -shm files the database file's mode.
    """
    try:
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT, 0o600))
        for path in _related(db):
            path.chmod(0o600)
    except OSError as exc:
        raise ConfigError(f"cannot create {db}: {exc}") from exc


def open_database(
    db: Path, limits: DbLimits, *, lease_hold_s: float, start: StartFrom = AS_IS
) -> tuple[Engine, HiveStore]:
    """Check, open and mark the hive database; blocking (run it in a thread).

    Raises:
        DatabaseDamagedError: the database lost or mangled what it had committed (says the way out).
        ConfigError: a backup to restore cannot be used.
        StorageError: SQLite cannot open it.
    """
    try:
        if start.restore is not None:
            _restore(db, start.restore)
        elif start.salvage:
            # What SQLite can read is what the hive starts with: a WAL it cannot use is ignored,
            # a damaged frame ends what it reads of the log.
            _salvage(db)
        marker = read_marker(db)
        if not start.salvage and (problem := check_files(db, marker)) is not None:
            raise DatabaseDamagedError(db, problem, WAY_OUT)
        _make_private(db)
        if marker is not None:
            try:
                with sqlite3.connect(db) as connection:
                    check_opened(connection, db, marker)
            except sqlite3.DatabaseError as exc:
                raise DatabaseDamagedError(db, f"SQLite cannot read it ({exc})", WAY_OUT) from exc
    except OSError as exc:
        raise StorageError(f"cannot prepare the hive database {db}: {exc}") from exc
    engine = open_engine(db, limits)
    store = HiveStore(engine, limits, lease_hold_s=lease_hold_s)
    write_marker(db, RunState.RUNNING, store.last_id)
    return engine, store


def mark_running(db: Path, last_id: int) -> None:
    """Record `last_id`, the highest id committed so far, so a later loss of it is noticed; blocking."""
    write_marker(db, RunState.RUNNING, last_id)


def close_database(db: Path, engine: Engine, store: HiveStore) -> None:
    """Close cleanly: SQLite checkpoints the WAL into the database and deletes it; blocking."""
    last = store.last_id
    write_marker(db, RunState.STOPPING, last)
    engine.dispose()
    write_marker(db, RunState.STOPPED, last)


def backup_database(db: Path, dest: Path) -> int:
    """Copy the live database to `dest` (which must not exist) with SQLite's backup API; returns its bytes.

    Raises:
        ConfigError: `dest` exists or its dir cannot be written.
        StorageError: SQLite failed the copy.
    """
    if dest.exists():
        raise ConfigError(f"{dest} exists; choose a new file for the backup (nothing was overwritten)")
    tmp = dest.with_name(dest.name + ".part")
    try:
        source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            target = sqlite3.connect(tmp)
            try:
                source.backup(target, pages=BACKUP_PAGES_PER_STEP)
            finally:
                target.close()
        finally:
            source.close()
        # The copy is a plain rollback-journal database: one file, nothing else to carry.
        with sqlite3.connect(tmp) as connection:
            connection.execute("PRAGMA journal_mode=DELETE")
        os.chmod(tmp, 0o600)
        os.replace(tmp, dest)
    except sqlite3.Error as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"the backup to {dest} failed: {exc}") from exc
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the backup {dest}: {exc}") from exc
    return dest.stat().st_size
