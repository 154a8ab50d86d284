"""`hivectl backup` and `hivectl doctor` on a hive's PostgreSQL database: a backup pg_restore brings back,
and a doctor that names a down host and what its daemon left leased."""

import json
import subprocess
import time
from pathlib import Path

import anyio
import psycopg
import pytest
from typer.testing import CliRunner

from hyperhive_core.broker.broker import Broker
from hyperhive_core.broker.pgops import pg_tool, redact
from hyperhive_core.broker.placement import DOWN_AFTER_S, Placement
from hyperhive_core.broker.postgres import open_pg_store
from hyperhive_core.cli import app
from tests.postgres import PgServer


def messages(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id, sender, recipient, body, state::text FROM message ORDER BY id").fetchall()


async def fill(url: str, *, host: str, bodies: list[str]) -> None:
    async with open_pg_store(url, host=host, pool_size=2) as store:
        await Placement(store.pool, host).publish(["alice"], now=time.time())
        broker = Broker(store)
        for body in bodies:
            await broker.send("operator", "alice", body)
        await store.claim("alice", 1, now=time.time(), reader="turn-loop")


def test_a_backup_of_a_postgres_hive_restores_into_a_new_database(pg_server: PgServer, short_tmpdir: Path) -> None:
    url = pg_server.new_database()
    anyio.run(lambda: fill(url, host="host-a", bodies=["one", "two", "three"]))
    dest = short_tmpdir / "hive.dump"
    done = CliRunner().invoke(app, ["backup", str(dest), "--database", url])
    assert done.exit_code == 0, done.output
    assert "pg_restore --no-owner --dbname=" in done.output
    assert dest.stat().st_mode & 0o777 == 0o600
    assert not dest.with_name("hive.dump.part").exists()
    again = CliRunner().invoke(app, ["backup", str(dest), "--database", url])
    assert again.exit_code == 1
    assert "exists; choose a new file" in again.output

    restored_name = f"restored_{short_tmpdir.name.replace('-', '_').lower()}"
    pg_server.execute(f"CREATE DATABASE {restored_name}")
    restored = pg_server.url(restored_name)
    subprocess.run([pg_tool("pg_restore"), "--no-owner", f"--dbname={restored}", dest], check=True, capture_output=True)
    assert messages(restored) == messages(url)
    assert [body for _, _, _, body, _ in messages(restored)] == ["one", "two", "three"]


def test_a_failed_backup_says_why_and_leaves_no_file(pg_server: PgServer, short_tmpdir: Path) -> None:
    dest = short_tmpdir / "hive.dump"
    done = CliRunner().invoke(app, ["backup", str(dest), "--database", pg_server.url("no_such_database")])
    assert done.exit_code == 1
    assert "pg_dump of postgresql://postgres@/no_such_database failed" in done.output
    assert not dest.exists()
    assert not dest.with_name("hive.dump.part").exists()


def test_doctor_names_a_down_host_and_the_messages_its_daemon_left_leased(
    pg_server: PgServer, short_tmpdir: Path
) -> None:
    url = pg_server.new_database()
    anyio.run(lambda: fill(url, host="host-b", bodies=["one", "two"]))
    dirs = ["--state-dir", str(short_tmpdir / "state"), "--run-dir", str(short_tmpdir / "run")]
    up = doctor(url, dirs)
    assert up["host host-b"][0] == "ok"
    assert up["host host-b"][1].startswith("up (heartbeat")
    assert up["schema"] == ("ok", "version 2 (the latest)")
    assert up["messages"] == ("ok", "queued 1, delivered 1, acked 0")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE daemon_host SET heartbeat_at = %s", (time.time() - 3 * DOWN_AFTER_S,))
    down = doctor(url, dirs, exit_code=1)
    status, detail = down["host host-b"]
    assert status == "fail"
    assert "1 agents placed on it, 1 messages leased by its daemon" in detail
    assert "start `hivectl serve --database postgresql://postgres@/" in detail


def doctor(url: str, dirs: list[str], *, exit_code: int = 0) -> dict[str, tuple[str, str]]:
    """`hivectl doctor --database URL --json`: each check's (status, detail), by name."""
    done = CliRunner().invoke(app, ["doctor", "--database", url, "--json", *dirs])
    assert done.exit_code == exit_code, done.output
    return {c["check"]: (c["status"], c["detail"]) for c in json.loads(done.output)}


def test_doctor_says_an_unreachable_database_fails(short_tmpdir: Path) -> None:
    dirs = ["--state-dir", str(short_tmpdir / "state"), "--run-dir", str(short_tmpdir / "run")]
    url = f"postgresql://hive@/hive?host={short_tmpdir}&port=1"
    done = CliRunner().invoke(app, ["doctor", "--database", url, "--json", *dirs])
    assert done.exit_code == 1
    assert "cannot reach or read postgresql://hive@/hive" in done.output


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("connect to postgresql://hive:s3cret@db/hive failed", "s3cret"),
        ("bad conninfo: host=db password=s3cret user=hive", "s3cret"),
        ("postgresql://hive@db/hive?sslpassword=s3cret&sslmode=verify-full", "s3cret"),
    ],
)
def test_what_a_tool_prints_is_shown_without_passwords(text: str, hidden: str) -> None:
    assert hidden not in redact(text)
    assert "***" in redact(text)
