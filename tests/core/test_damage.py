"""A damaged database is refused, never started short; one daemon per state dir.

Each case runs the real `hivectl serve --detach`, has an agent commit 50 messages, kills the daemon
(-9, or a clean shutdown), damages the files the way a disk or a person would, and starts again.
"""

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from hyperhive_core.broker.integrity import wal_path
from hyperhive_core.client import open_hive_client
from hyperhive_core.config import HiveConfig
from tests.helpers import REPO, hive_config, kill_hard, start_daemon_process

MESSAGES = 50


def hivectl(config: HiveConfig, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real hivectl against `config`'s dirs; its exit code and output, whatever they are."""
    dirs = ["--run-dir", str(config.run_dir), "--state-dir", str(config.state_dir)]
    return subprocess.run(
        [sys.executable, "-m", "hyperhive_core", *args, *dirs],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


async def hive_with_messages(config: HiveConfig) -> int:
    """Start a daemon, spawn alice, have her commit MESSAGES messages to the operator; the daemon's pid."""
    pid = await start_daemon_process(config)
    async with open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice", driver="echo")
    async with open_hive_client(config.agent_socket("alice")) as alice:
        for i in range(MESSAGES):
            await alice.send("operator", f"report {i}")
    return pid


def operator_messages(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return int(connection.execute("SELECT count(*) FROM message WHERE recipient = 'operator'").fetchone()[0])


def scribble(path: Path, offset: int, length: int) -> None:
    with path.open("r+b") as file:
        file.seek(offset)
        file.write(os.urandom(length))


def truncate(db: Path) -> None:
    db.write_bytes(b"")


def garble_wal_header(db: Path) -> None:
    scribble(wal_path(db), 0, 32)


def delete_wal(db: Path) -> None:
    wal_path(db).unlink()


def garble_wal_frame(db: Path) -> None:
    # The middle of the log: the page data of a frame with committed frames after it.
    wal = wal_path(db)
    scribble(wal, wal.stat().st_size // 2, 64)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (truncate, "is empty (0 bytes)"),
        (garble_wal_header, "write-ahead log broker.sqlite-wal has"),
        (delete_wal, "write-ahead log is missing after a daemon stopped uncleanly"),
        (garble_wal_frame, "of the write-ahead log broker.sqlite-wal is damaged"),
    ],
    ids=["db-truncated", "wal-header", "wal-deleted", "wal-frame"],
)
async def test_a_damaged_database_is_refused_with_the_way_out(short_tmpdir: Path, damage: object, words: str) -> None:
    assert callable(damage)
    config = hive_config(short_tmpdir)
    with anyio.fail_after(60):
        pid = await hive_with_messages(config)
        await kill_hard(pid)
    assert wal_path(config.broker_path).exists()
    damage(config.broker_path)
    before = sorted(p.name for p in config.state_dir.iterdir())
    refused = hivectl(config, "serve", "--detach")
    assert refused.returncode == 1, refused.stdout
    [line] = refused.stderr.splitlines()
    assert line.startswith("error: the hive database")
    assert words in line
    assert "hivectl serve --restore BACKUP" in line
    assert "hivectl serve --salvage" in line
    # Refused means untouched: no file added, removed or rewritten.
    assert sorted(p.name for p in config.state_dir.iterdir()) == before
    # Nothing listens: the socket file is the killed daemon's.
    with socket.socket(socket.AF_UNIX) as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(str(config.host_socket))
    doctor = hivectl(config, "doctor")
    assert doctor.returncode == 1
    assert "fail" in doctor.stdout


async def test_a_backup_taken_while_running_restores_every_message(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir)
    backup = short_tmpdir / "hive.backup"
    with anyio.fail_after(60):
        pid = await hive_with_messages(config)
        took = hivectl(config, "backup", str(backup))
        assert took.returncode == 0, took.stderr
        assert f"hivectl serve --restore {backup}" in took.stdout
        assert hivectl(config, "backup", str(backup)).returncode == 1  # never overwritten
        await kill_hard(pid)
    truncate(config.broker_path)
    restored = hivectl(config, "serve", "--detach", "--restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    try:
        assert operator_messages(config.broker_path) == MESSAGES
        assert [p.name for p in config.state_dir.glob("damaged-*/broker.sqlite")] == ["broker.sqlite"]
    finally:
        assert hivectl(config, "shutdown").returncode == 0


async def test_salvage_starts_from_what_is_left_and_keeps_a_copy(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir)
    with anyio.fail_after(60):
        pid = await hive_with_messages(config)
        await kill_hard(pid)
    garble_wal_header(config.broker_path)
    assert hivectl(config, "serve", "--detach").returncode == 1
    salvaged = hivectl(config, "serve", "--detach", "--salvage")
    assert salvaged.returncode == 0, salvaged.stderr
    try:
        [aside] = config.state_dir.glob("damaged-*")
        assert (aside / "broker.sqlite-wal").exists()
        doctor = hivectl(config, "doctor")
        assert doctor.returncode == 0, doctor.stdout
    finally:
        assert hivectl(config, "shutdown").returncode == 0
    # Stopped cleanly now: the next start needs no way out.
    again = hivectl(config, "serve", "--detach")
    assert again.returncode == 0, again.stderr
    assert hivectl(config, "shutdown").returncode == 0


async def test_a_clean_stop_and_a_kill_9_both_start_again_with_every_message(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir)
    with anyio.fail_after(60):
        pid = await hive_with_messages(config)
        await kill_hard(pid)
    started = hivectl(config, "serve", "--detach")
    assert started.returncode == 0, started.stderr
    assert hivectl(config, "shutdown").returncode == 0
    assert not wal_path(config.broker_path).exists()
    started = hivectl(config, "serve", "--detach")
    assert started.returncode == 0, started.stderr
    assert hivectl(config, "shutdown").returncode == 0
    assert operator_messages(config.broker_path) == MESSAGES


def test_two_daemons_started_at_once_have_exactly_one_winner(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir)
    argv = [sys.executable, "-m", "hyperhive_core", "--run-dir", str(config.run_dir), "--state-dir",
            str(config.state_dir), "serve", "--detach"]  # fmt: skip
    both = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO) for _ in "ab"]
    results = [(p.wait(timeout=60), *p.communicate()) for p in both]
    try:
        assert sorted(code for code, _, _ in results) == [0, 1]
        [(_, won, _)] = [r for r in results if r[0] == 0]
        [(_, _, lost)] = [r for r in results if r[0] == 1]
        winner = int((config.run_dir / "daemon.pid").read_text())
        assert f"pid {winner}" in won
        [line] = lost.splitlines()
        assert line.startswith(f"error: another hyperhive daemon (pid {winner}) already runs on")
        # The loser wrote nothing into the winner's log.
        assert "another hyperhive daemon" not in (config.state_dir / "daemon.log").read_text()
        # And a third, later, is refused the same way while the first serves.
        third = hivectl(config, "serve")
        assert third.returncode == 1
        assert f"(pid {winner})" in third.stderr
    finally:
        assert hivectl(config, "shutdown").returncode == 0
