"""The operator's rough edges, each as a new user met it: names checked before anything happens,
dirs after the verb, acknowledged reads, a failed spawn that leaves nothing, honest shutdown."""

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hyperhive_core.client import open_hive_client
from hyperhive_core.config import HiveConfig
from tests.cli._hive import LiveHive, cli_env, error_line, invoke, live_hive
from tests.helpers import IDLE_AGENT, hive_config, needs_bwrap


def agent_processes(config: HiveConfig) -> list[int]:
    """Pids of processes running in an agent's work dir: every agent process (sandboxed or not) is."""
    agents = (config.state_dir / "agents").resolve()
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = Path(os.readlink(f"/proc/{entry}/cwd"))
            except OSError:
                continue
            if agents in cwd.parents:
                found.append(int(entry))
    return found


async def _recv_plain(socket: Path) -> list[int]:
    async with open_hive_client(socket) as client:
        return [m.id for m in (await client.recv(timeout_s=5, max=10)).messages]


def test_help_keeps_the_dirs_defaults() -> None:
    result = invoke({"COLUMNS": "200"}, "--help")
    assert result.exit_code == 0, result.output
    assert "[default: /run/hyperhive as root" in result.stdout
    assert "[default: /var/lib/hyperhive as root" in result.stdout


def test_dirs_can_come_after_the_verb(hive: LiveHive) -> None:
    hive.ok("spawn", "alice")
    elsewhere = {"COLUMNS": "200", "HYPERHIVE_RUN_DIR": "/nonexistent", "HYPERHIVE_STATE_DIR": "/nonexistent"}
    dirs = ["--run-dir", str(hive.config.run_dir), "--state-dir", str(hive.config.state_dir)]
    result = invoke(elsewhere, "list", *dirs)
    assert result.exit_code == 0, result.output
    assert "alice" in result.stdout
    help_text = invoke({"COLUMNS": "200"}, "serve", "--help").stdout
    assert "--run-dir" in help_text


def test_dirs_typed_before_the_verb_beat_the_environments(hive: LiveHive) -> None:
    # With the demo's env file sourced, `hivectl --state-dir X serve` served the env's dirs: the
    # verb's own --state-dir took HYPERHIVE_STATE_DIR and overrode what was typed before the verb.
    hive.ok("spawn", "alice")
    elsewhere = {"COLUMNS": "200", "HYPERHIVE_RUN_DIR": "/nonexistent", "HYPERHIVE_STATE_DIR": "/nonexistent"}
    dirs = ["--run-dir", str(hive.config.run_dir), "--state-dir", str(hive.config.state_dir)]
    result = invoke(elsewhere, *dirs, "list")
    assert result.exit_code == 0, result.output
    assert "alice" in result.stdout


def test_recv_acknowledges_what_it_printed(hive: LiveHive) -> None:
    hive.ok("spawn", "alice")
    hive.agent_sends("alice", "operator", "one")
    hive.agent_sends("alice", "operator", "two")
    out = hive.ok("recv").stdout
    assert "one" in out
    assert "two" in out
    view = hive.json("inbox")
    assert (view["queued"], view["delivered"]) == (0, 0)


def test_ack_acknowledges_by_id_and_names_what_was_never_handed_out(hive: LiveHive) -> None:
    hive.ok("spawn", "alice")
    sent = hive.agent_sends("alice", "operator", "taken by a plain recv")
    assert hive.portal.call(_recv_plain, hive.config.host_socket) == [sent.id]
    assert hive.json("inbox")["delivered"] == 1
    assert hive.json("ack", str(sent.id)) == {"acked": [sent.id], "not_yours": []}
    assert hive.json("inbox")["delivered"] == 0
    result = hive.run("ack", "999999")
    assert result.exit_code == 1
    assert "not handed to the operator (recv them first): 999999" in result.stdout


def test_a_half_invalid_multi_name_spawn_starts_nothing(hive: LiveHive) -> None:
    line = error_line(hive.run("spawn", "ok1", "BAD", "ok2"))
    assert line.startswith("error: nothing was spawned: invalid agent name 'BAD'")
    assert hive.json("list") == []
    assert agent_processes(hive.config) == []


def test_kill_with_an_unknown_name_kills_nothing(hive: LiveHive) -> None:
    hive.ok("spawn", "ok1", "carol")
    line = error_line(hive.run("kill", "ok1", "nobody", "carol"))
    assert "nothing was killed: unknown agent 'nobody'" in line
    assert [a["name"] for a in hive.json("list")] == ["carol", "ok1"]
    outcomes = hive.json("kill", "ok1", "carol")
    assert outcomes == [{"name": "ok1", "ok": True}, {"name": "carol", "ok": True}]


@contextmanager
def database_locked(db: Path) -> Generator[None]:
    """Another process's connection holds the database's write lock for the block."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with sqlite3.connect(db, isolation_level=None) as conn:
            conn.execute("BEGIN EXCLUSIVE")
            locked.set()
            release.wait(30)
            conn.execute("ROLLBACK")

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        yield
    finally:
        release.set()
        holder.join()


def test_a_spawn_whose_journal_the_database_refuses_starts_nothing_until_it_can(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, db_busy_timeout_s=0.2)
    with live_hive(config) as hive:
        with database_locked(config.broker_path):
            line = error_line(hive.run("spawn", "alice"))
            # Nothing runs while the reconcile cannot journal what it would do.
            assert agent_processes(config) == []
            assert not config.agent_socket("alice").exists()
        assert "alice: spawn alice is committed to main" in line
        assert "the hive database is locked by another process" in line
        assert "the daemon tries again by itself" in line
        # Once the lock is gone, main is applied: by the daemon's own retry, or now.
        hive.ok("reconcile")
        [alice] = hive.json("list")
        assert (alice["name"], alice["state"], alice["sync"]) == ("alice", "running", "Ready")


def test_shutdown_without_a_daemon_says_so_and_exits_0(short_tmpdir: Path) -> None:
    result = invoke(cli_env(short_tmpdir / "run", short_tmpdir / "state"), "shutdown")
    assert result.exit_code == 0, result.output
    assert "no daemon is running" in result.stderr


def test_on_a_nearly_full_disk_sends_stop_reading_goes_on_and_status_says_why(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    with live_hive(config) as hive:
        hive.ok("spawn", "alice")
        hive.agent_sends("alice", "operator", "before the disk filled up")
    # The same hive, on a disk with less free than it keeps for reads (10 TB: any disk here).
    with live_hive(config.model_copy(update={"min_free_mb": 10_000_000})) as hive:
        warnings = hive.json("status")["warnings"]
        assert any(w.startswith("the disk is nearly full") for w in warnings)
        assert "disk is nearly full" in hive.ok("status").stdout
        line = error_line(hive.run("send", "alice", "no room"))
        assert "MiB free, under the" in line
        assert "nothing was stored" in line
        assert "before the disk filled up" in hive.ok("recv").stdout
        assert hive.json("inbox")["delivered"] == 0


@pytest.mark.containers
@needs_bwrap
def test_an_echo_agents_logs_show_what_it_received_and_sent(short_tmpdir: Path) -> None:
    with live_hive(hive_config(short_tmpdir)) as hive:
        hive.ok("spawn", "alice", "--driver", "echo")
        hive.ok("send", "alice", "hello alice")
        assert "echo: hello alice" in hive.ok("recv", "--wait", "15").stdout
        logs = hive.ok("logs", "alice").stdout
        assert "[received] message" in logs
        assert "hello alice" in logs
        assert "[sent] message" in logs


def test_a_piped_list_shows_names_whole_not_cut_at_80_columns(hive: LiveHive) -> None:
    # The demo's own log showed "ali…" for alice: rich cut the piped table at 80 columns.
    name = "ninechars"
    hive.ok("spawn", name)
    env = {key: value for key, value in {**os.environ, **hive.env}.items() if key != "COLUMNS"}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("hivectl")), "list"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert name in done.stdout
    assert "…" not in done.stdout
