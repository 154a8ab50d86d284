"""A database that lost what it had committed is refused at start, never run short.

SQLite recovers from kill -9 by itself, but not from its files being damaged or lost afterwards: a
database truncated to nothing opens as an empty hive, a write-ahead log with a mangled header or
frame is silently ignored from that point on, and a deleted WAL takes every commit since the last
checkpoint with it. So the daemon keeps `broker.marker` beside the database: a small JSON file,
replaced atomically, saying whether the last daemon stopped cleanly and the highest message id it
knew committed. Before SQLite touches the files, `check_files` reads them raw (the WAL's header and
frame checksums, as SQLite writes them); after opening, `check_opened` runs `PRAGMA quick_check`
after an unclean stop and compares the highest id with the marker's.
"""

import json
import logging
import os
import sqlite3
import struct
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from hyperhive_core.errors import DatabaseDamagedError

logger = logging.getLogger(__name__)

MARKER_NAME = "broker.marker"
WAL_MAGIC = (0x377F0682, 0x377F0683)  # little-endian, big-endian checksums
WAL_HEADER_BYTES = 32
WAL_FRAME_HEADER_BYTES = 24
WAL_FORMAT = 3007000
WAY_OUT = (
    "To start from a backup (hivectl backup takes one while the daemon runs): hivectl serve --restore BACKUP. "
    "To start from what can still be read, keeping a copy of the damaged files: hivectl serve --salvage. "
    "hivectl doctor shows what is wrong."
)


class RunState(StrEnum):
    """What the daemon was doing with the database when the marker was last written."""

    RUNNING = "running"
    STOPPING = "stopping"  # about to close: the WAL may be checkpointed and deleted any moment
    STOPPED = "stopped"  # closed cleanly: the WAL was checkpointed into the database


@dataclass(frozen=True, slots=True)
class Marker:
    """The last daemon's word on the database: how it left it and the highest id it committed."""

    state: RunState
    last_id: int
    pid: int
    at: float


def marker_path(db: Path) -> Path:
    """Where the marker of database `db` lives."""
    return db.with_name(MARKER_NAME)


def wal_path(db: Path) -> Path:
    """The write-ahead log of database `db`."""
    return db.with_name(db.name + "-wal")


def read_marker(db: Path) -> Marker | None:
    """The marker beside `db`, or None when there is none (a new hive, or one from before markers).

    Raises:
        DatabaseDamagedError: the marker exists but cannot be read.
    """
    path = marker_path(db)
    try:
        data = json.loads(path.read_text())
        return Marker(state=RunState(data["state"]), last_id=int(data["last_id"]), pid=int(data["pid"]), at=data["at"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatabaseDamagedError(db, f"its marker {path} cannot be read ({exc})", WAY_OUT) from exc


def write_marker(db: Path, state: RunState, last_id: int) -> None:
    """Replace the marker atomically and durably (write, fsync, rename, fsync the dir)."""
    path = marker_path(db)
    tmp = path.with_name(path.name + ".tmp")
    marker = Marker(state=state, last_id=last_id, pid=os.getpid(), at=time.time())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(asdict(marker)).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    """SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from (s0, s1)."""
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def check_wal(wal: Path) -> str | None:
    """What is wrong with the write-ahead log `wal`, in words; None when SQLite would read all of it.

    A header SQLite cannot use, or a frame that fails its checksum with frames of the same log
    after it, means SQLite would drop committed transactions. A partial frame at the very end
    (a write cut short before its commit) is normal and not reported.
    """
    try:
        size = wal.stat().st_size
    except FileNotFoundError:
        return None
    if size < WAL_HEADER_BYTES:
        return None  # a log whose header was never completed holds no commit
    with wal.open("rb") as file:
        header = file.read(WAL_HEADER_BYTES)
        magic, version, page_size, _seq, salt1, salt2, c1, c2 = struct.unpack(">8I", header)
        if magic not in WAL_MAGIC or version != WAL_FORMAT:
            return f"the write-ahead log {wal.name} has no valid header ({size} bytes of it would be ignored)"
        big_endian = magic == WAL_MAGIC[1]
        if _checksum(header[:24], 0, 0, big_endian) != (c1, c2):
            return f"the write-ahead log {wal.name} has a damaged header ({size} bytes of it would be ignored)"
        frame_bytes = WAL_FRAME_HEADER_BYTES + page_size
        s0, s1 = c1, c2
        frame = 0
        while True:
            data = file.read(frame_bytes)
            if len(data) < frame_bytes:
                return None
            _page, _commit, f_salt1, f_salt2, f_c1, f_c2 = struct.unpack(">6I", data[:24])
            if (f_salt1, f_salt2) != (salt1, salt2):
                return None  # the rest is left from an earlier log: SQLite stops here too
            s0, s1 = _checksum(data[:8], s0, s1, big_endian)
            s0, s1 = _checksum(data[24:], s0, s1, big_endian)
            frame += 1
            if (s0, s1) != (f_c1, f_c2):
                later = _frames_of_this_log(file, frame_bytes, (salt1, salt2))
                if later:
                    return (
                        f"frame {frame} of the write-ahead log {wal.name} is damaged; SQLite would drop it and the "
                        f"{later} frames written after it"
                    )
                return None  # the last frames, cut short before their commit: nothing committed is lost


def _frames_of_this_log(file: BinaryIO, frame_bytes: int, salts: tuple[int, int]) -> int:
    """How many of the frames left in `file` belong to the same log generation (carry its salts)."""
    count = 0
    while len(data := file.read(frame_bytes)) == frame_bytes:
        if struct.unpack(">2I", data[8:16]) == salts:
            count += 1
    return count


def check_files(db: Path, marker: Marker | None) -> str | None:
    """What is wrong with the database's files, read raw before SQLite opens them; None if nothing is."""
    try:
        size = db.stat().st_size
    except FileNotFoundError:
        size = None
    if marker is not None and not size:
        what = "is missing" if size is None else "is empty (0 bytes)"
        return (
            f"it {what}, but this state dir held a hive (its last daemon committed messages up to id {marker.last_id})"
        )
    if problem := check_wal(wal_path(db)):
        return problem
    if marker is not None and marker.state == RunState.RUNNING and size and not wal_path(db).exists():
        return (
            "its write-ahead log is missing after a daemon stopped uncleanly (pid "
            f"{marker.pid}): every message committed since the last checkpoint would be lost"
        )
    return None


def check_opened(connection: sqlite3.Connection, db: Path, marker: Marker | None) -> int:
    """Check an opened database against the marker; returns its highest message id.

    Raises:
        DatabaseDamagedError: its integrity check fails, or it lacks messages that were committed.
    """
    if marker is not None and marker.state != RunState.STOPPED:
        # After an unclean stop: SQLite's own structural check (pages, indexes, free list).
        rows = [row[0] for row in connection.execute("PRAGMA quick_check(5)")]
        if rows != ["ok"]:
            raise DatabaseDamagedError(db, f"its integrity check fails: {'; '.join(rows)}", WAY_OUT)
    last_id = int(connection.execute("SELECT coalesce(max(id), 0) FROM message").fetchone()[0])
    if marker is not None and last_id < marker.last_id:
        raise DatabaseDamagedError(
            db,
            f"its highest message id is {last_id}, but messages up to id {marker.last_id} were committed",
            WAY_OUT,
        )
    return last_id
