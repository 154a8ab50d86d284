"""`hivectl` end to end: typer's CliRunner against a real daemon, its real sockets and idle agents.

The daemon runs on a blocking portal's event loop in another thread; every command runs its own
`anyio.run` in the test's thread, exactly as it does from a shell.
"""

import json
import os
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream, TaskStatus
from anyio.from_thread import start_blocking_portal

from tests.cli._hive import (
    DAEMON_DOWN,
    VERBS,
    LiveHive,
    cli_env,
    error_line,
    invoke,
    live_hive,
    report_as_agent,
    wait_for_exit,
)
from tests.helpers import IDLE_AGENT, hive_config


def agents_of(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The agents a spawn or rebuild reported, after checking each name succeeded."""
    assert all(o["ok"] for o in outcomes), outcomes
    return [o["agent"] for o in outcomes]


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in rows}


# help


def test_help_lists_every_verb() -> None:
    result = invoke({"COLUMNS": "200"}, "--help")
    assert result.exit_code == 0, result.output
    for verb in VERBS:
        assert verb in result.stdout


# spawn and list


def test_spawn_one_agent_shows_it_running_in_a_table(hive: LiveHive) -> None:
    out = hive.ok("spawn", "alice").stdout
    assert "NAME" in out
    assert "STATE" in out
    assert "alice" in out
    assert "running" in out


def test_spawn_several_agents_returns_each_as_json(hive: LiveHive) -> None:
    spawned = agents_of(hive.json("spawn", "alice", "bob"))
    assert [a["name"] for a in spawned] == ["alice", "bob"]
    for agent in spawned:
        assert agent["state"] == "running"
        assert isinstance(agent["pid"], int)
        assert agent["backend"] == "local"
        assert agent["sandbox"] == "bwrap"
        assert agent["socket"] == str(hive.config.agent_socket(agent["name"]))
        assert Path(agent["socket"]).is_socket()


def test_list_shows_every_spawned_agent_with_its_state(hive: LiveHive) -> None:
    hive.ok("spawn", "alice", "bob")
    out = hive.ok("list").stdout
    header = next(line for line in out.splitlines() if "NAME" in line)
    assert "STATE" in header
    for name in ("alice", "bob"):
        row = next(line for line in out.splitlines() if name in line)
        assert "running" in row


def test_list_of_an_empty_hive_says_how_to_spawn(hive: LiveHive) -> None:
    assert "hivectl spawn NAME" in hive.ok("list").stdout
    assert hive.json("list") == []


def test_list_json_has_state_pid_and_unread_counts(hive: LiveHive) -> None:
    hive.ok("spawn", "alice", "bob")
    hive.ok("send", "alice", "one")
    hive.ok("send", "alice", "two")
    agents = by_name(hive.json("list"))
    assert sorted(agents) == ["alice", "bob"]
    for agent in agents.values():
        assert agent["state"] == "running"
        assert isinstance(agent["pid"], int)
        assert agent["pid"] > 0
    assert agents["alice"]["unread"] == 2
    assert agents["bob"]["unread"] == 0
    assert agents["alice"]["pid"] != agents["bob"]["pid"]


# status


def test_status_shows_one_agent_in_detail(hive: LiveHive) -> None:
    pid = agents_of(hive.json("spawn", "alice"))[0]["pid"]
    out = hive.ok("status", "alice").stdout
    assert "agent alice" in out
    assert "running" in out
    assert str(pid) in out
    assert str(hive.config.agent_socket("alice")) in out


def test_status_json_matches_the_spawned_agent(hive: LiveHive) -> None:
    spawned = agents_of(hive.json("spawn", "alice"))[0]
    info = hive.json("status", "alice")
    assert info["name"] == "alice"
    assert info["state"] == "running"
    assert info["pid"] == spawned["pid"]
    assert info["unread"] == 0


# send


def test_send_reports_the_stored_message(hive: LiveHive) -> None:
    hive.ok("spawn", "alice")
    out = hive.ok("send", "alice", "hello").stdout
    assert out.startswith("sent message ")
    assert out.rstrip().endswith(" to alice")


def test_send_json_returns_the_receipt_and_queues_the_message(hive: LiveHive) -> None:
    hive.ok("spawn", "alice")
    receipt = hive.json("send", "alice", "hello")
    assert receipt["recipient"] == "alice"
    assert isinstance(receipt["id"], int)
    view = hive.json("inbox", "alice")
    assert [(m["id"], m["sender"], m["body"]) for m in view["messages"]] == [(receipt["id"], "operator", "hello")]


def test_send_dash_reads_the_body_from_stdin(hive: LiveHive) -> None:
    hive.ok("spawn", "alice")
    body = "line one\nline two [not markup]\n"
    receipt = hive.json("send", "alice", "-", input=body)
    view = hive.json("inbox", "alice")
    assert [(m["id"], m["body"]) for m in view["messages"]] == [(receipt["id"], body)]


# recv


def test_recv_takes_a_message_an_agent_sent_to_the_operator(hive: LiveHive) -> None:
    hive.ok("spawn", "alice")
    sent = hive.agent_sends("alice", "operator", "done with the task")
    out = hive.ok("recv", "--wait", "5", "--max", "10").stdout
    assert "operator received (0 still queued)" in out
    row = next(line for line in out.splitlines() if "done with the task" in line)
    assert str(sent.id) in row
    assert "alice" in row
    # each message is handed out once
    assert "no messages" in hive.ok("recv").stdout


def test_recv_json_takes_at_most_max_messages(hive: LiveHive) -> None:
    hive.ok("spawn", "alice")
    ids = [hive.agent_sends("alice", "operator", f"report {i}").id for i in range(3)]
    first = hive.json("recv", "--wait", "5", "--max", "2")
    assert [(m["id"], m["sender"], m["recipient"]) for m in first["messages"]] == [
        (ids[0], "alice", "operator"),
        (ids[1], "alice", "operator"),
    ]
    assert first["remaining"] == 1
    rest = hive.json("recv", "--max", "2")
    assert [m["body"] for m in rest["messages"]] == ["report 2"]
    assert rest["remaining"] == 0


def test_recv_shows_markup_in_a_body_literally(hive: LiveHive) -> None:
    hive.ok("spawn", "alice")
    body = "[bold red]x[/] <b>"
    hive.agent_sends("alice", "operator", body)
    out = hive.ok("recv", "--wait", "5").stdout
    assert body in out


# inbox


def test_inbox_peeks_without_taking_the_message(hive: LiveHive) -> None:
    hive.ok("spawn", "alice")
    hive.ok("send", "alice", "still here")
    for _ in range(2):
        out = hive.ok("inbox", "alice").stdout
        assert "inbox of alice: 1 queued, 0 delivered unacked" in out
        assert "still here" in out
    assert by_name(hive.json("list"))["alice"]["unread"] == 1


def test_inbox_json_counts_queued_messages(hive: LiveHive) -> None:
    hive.ok("spawn", "alice")
    hive.ok("send", "alice", "a")
    hive.ok("send", "alice", "b")
    view = hive.json("inbox", "alice", "--limit", "1")
    assert view["agent"] == "alice"
    assert view["queued"] == 2
    assert view["delivered"] == 0
    assert [m["body"] for m in view["messages"]] == ["a"]


def test_inbox_defaults_to_the_operators_own(hive: LiveHive) -> None:
    hive.ok("spawn", "alice")
    hive.agent_sends("alice", "operator", "for you")
    view = hive.json("inbox")
    assert view["agent"] == "operator"
    assert view["queued"] == 1
    assert [m["body"] for m in view["messages"]] == ["for you"]


# kill


def test_kill_removes_the_agent_and_its_socket(hive: LiveHive) -> None:
    hive.ok("spawn", "alice", "bob")
    socket = hive.config.agent_socket("alice")
    assert socket.is_socket()
    assert hive.ok("kill", "alice").stdout == "killed alice\n"
    assert "alice" not in hive.ok("list").stdout
    assert [a["name"] for a in hive.json("list")] == ["bob"]
    assert not socket.exists()


def test_kill_json_returns_a_receipt_per_agent(hive: LiveHive) -> None:
    hive.ok("spawn", "alice", "bob")
    assert hive.json("kill", "alice", "bob") == [{"name": "alice", "ok": True}, {"name": "bob", "ok": True}]
    assert hive.json("list") == []
    assert not hive.config.agent_socket("bob").exists()


# rebuild


def test_rebuild_restarts_the_agent_with_a_new_pid(hive: LiveHive) -> None:
    before = agents_of(hive.json("spawn", "alice"))[0]
    out = hive.ok("rebuild", "alice").stdout
    assert "alice" in out
    assert "running" in out
    after = hive.json("status", "alice")
    assert after["state"] == "running"
    assert after["pid"] != before["pid"]
    assert hive.config.agent_socket("alice").is_socket()


def test_rebuild_json_returns_the_running_agent(hive: LiveHive) -> None:
    before = agents_of(hive.json("spawn", "alice"))[0]
    [after] = agents_of(hive.json("rebuild", "alice"))
    assert after["name"] == "alice"
    assert after["state"] == "running"
    assert isinstance(after["pid"], int)
    assert after["pid"] != before["pid"]
    # the re-created socket answers
    hive.agent_sends("alice", "operator", "back")
    assert hive.json("inbox")["queued"] == 1


# shutdown


def test_shutdown_returns_once_the_daemon_and_its_agents_stopped(short_tmpdir: Path) -> None:
    with live_hive(hive_config(short_tmpdir, agent_command=IDLE_AGENT)) as hive:
        pid = agents_of(hive.json("spawn", "alice"))[0]["pid"]
        pidfd = os.pidfd_open(pid)
        try:
            result = hive.run("shutdown", "--wait", "10")
            assert result.exit_code == 0, result.output
            assert result.stderr == "daemon stopped\n"
            # shutdown waited: the agent is gone and the next command finds no daemon
            anyio.run(wait_for_exit, pidfd)
            assert DAEMON_DOWN in error_line(hive.run("list"))
        finally:
            os.close(pidfd)
    assert not hive.config.host_socket.exists()
    assert not hive.config.agent_socket("alice").exists()
    assert not (hive.config.run_dir / "daemon.pid").exists()


def test_shutdown_of_an_empty_hive_gets_its_answer(hive: LiveHive) -> None:
    # Nothing to stop, so the daemon closes host.sock at once: the answer must already be out.
    result = hive.run("shutdown")
    assert result.exit_code == 0, result.output
    assert result.stderr == "daemon stopped\n"


# errors


def test_a_command_without_a_daemon_says_to_start_one(short_tmpdir: Path) -> None:
    result = invoke(cli_env(short_tmpdir, short_tmpdir / "state"), "list")
    line = error_line(result)
    assert str(short_tmpdir / "host.sock") in line
    assert DAEMON_DOWN in line
    assert "hivectl serve" in line


async def hang_up_on_everyone(socket: Path, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Accept every connection on `socket` and close it at once, as a daemon does while it stops."""

    async def hang_up(stream: SocketStream) -> None:
        await stream.aclose()

    async with await anyio.create_unix_listener(socket) as listener:
        task_status.started()
        await listener.serve(hang_up)


def test_a_daemon_that_hangs_up_during_the_handshake_is_one_error_line(short_tmpdir: Path) -> None:
    with start_blocking_portal() as portal:
        future, _ = portal.start_task(hang_up_on_everyone, short_tmpdir / "host.sock")
        try:
            line = error_line(invoke(cli_env(short_tmpdir, short_tmpdir / "state"), "list"))
        finally:
            future.cancel()
    assert str(short_tmpdir / "host.sock") in line
    assert DAEMON_DOWN in line


@pytest.mark.parametrize(
    "args",
    [("status", "ghost"), ("kill", "ghost"), ("send", "ghost", "boo"), ("inbox", "ghost")],
    ids=["status", "kill", "send", "inbox"],
)
def test_an_unknown_agent_is_refused_with_the_known_ones_listed(hive: LiveHive, args: tuple[str, ...]) -> None:
    hive.ok("spawn", "alice", "bob")
    line = error_line(hive.run(*args))
    assert "unknown agent 'ghost'" in line
    assert "alice, bob" in line


@pytest.mark.parametrize(
    "name",
    ["BAD", "operator", "hm1nd", "waytoolongname", "9lives"],
    ids=["upper", "operator", "manager", "long", "digit"],
)
def test_spawn_refuses_an_invalid_name(hive: LiveHive, name: str) -> None:
    line = error_line(hive.run("spawn", name))
    assert f"invalid agent name {name!r}" in line
    assert hive.json("list") == []


def test_spawning_a_name_twice_is_refused(hive: LiveHive) -> None:
    pid = agents_of(hive.json("spawn", "alice"))[0]["pid"]
    line = error_line(hive.run("spawn", "alice"))
    assert "agent 'alice' already exists" in line
    [agent] = hive.json("list")
    assert agent["pid"] == pid
    assert agent["state"] == "running"


def test_a_body_over_the_limit_is_refused(short_tmpdir: Path) -> None:
    with live_hive(hive_config(short_tmpdir, agent_command=IDLE_AGENT, max_body_bytes=10)) as hive:
        hive.ok("spawn", "alice")
        line = error_line(hive.run("send", "alice", "eleven byte"))
        assert "11 bytes, over the limit of 10 bytes" in line
        hive.ok("send", "alice", "ten bytes!")
        assert hive.json("inbox", "alice")["queued"] == 1


@pytest.mark.parametrize("name", ["[/]", "[bold]x"], ids=["closing-tag", "opening-tag"])
def test_an_error_about_a_name_with_markup_shows_the_name_literally(hive: LiveHive, name: str) -> None:
    line = error_line(hive.run("status", name))
    assert f"unknown agent {name!r}" in line


# serve --detach


def test_serve_detach_returns_once_ready_and_shutdown_stops_it(short_tmpdir: Path) -> None:
    run_dir, state_dir = short_tmpdir / "run", short_tmpdir / "state"
    env = cli_env(run_dir, state_dir)
    hivectl = [sys.executable, "-m", "hyperhive_core", "--run-dir", str(run_dir), "--state-dir", str(state_dir)]
    serve = subprocess.run(
        [*hivectl, "serve", "--detach"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert serve.returncode == 0, serve.stderr
    pid = int((run_dir / "daemon.pid").read_text())
    pidfd = os.pidfd_open(pid)
    try:
        assert f"daemon ready (pid {pid})" in serve.stdout
        # ready means reachable: the very next command works
        assert "no agents yet" in invoke(env, "list").stdout
        shutdown = invoke(env, "shutdown")
        anyio.run(wait_for_exit, pidfd)
        assert DAEMON_DOWN in error_line(invoke(env, "list"))
        assert not (run_dir / "daemon.pid").exists()
        assert "shutdown requested by the operator" in (state_dir / "daemon.log").read_text()
        # checked last: the daemon stops either way, but shutdown must also say it succeeded
        assert shutdown.exit_code == 0, shutdown.output
        assert shutdown.stderr == "daemon stopped\n"
    finally:
        # stops the daemon only when the test failed before it stopped
        with suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        os.close(pidfd)


def test_logs_shows_an_agents_turn_readably(hive: LiveHive) -> None:
    hive.ok("spawn", "alice")
    events: list[dict[str, Any]] = [
        {"type": "system", "subtype": "init", "session_id": "s-42", "model": "m", "mcp_servers": []},
        {"type": "system", "subtype": "api_retry", "attempt": 1, "max_retries": 10, "retry_delay_ms": 610,
         "error_status": 529, "error": "overloaded"},
        {
            "type": "assistant",
            "message": {
                "content": [
                    {"type": "text", "text": "answering [bold]the operator[/]"},
                    {"type": "tool_use", "id": "t1", "name": "mcp__hive__send", "input": {"to": "operator"}},
                ]
            },
        },
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}},
        {"type": "result", "subtype": "success", "is_error": False, "duration_ms": 2500, "num_turns": 2,
         "total_cost_usd": 0.0123},
        {"type": "hive", "subtype": "turn_error", "message": "claude hung; killed after 600 s"},
    ]  # fmt: skip
    hive.portal.call(report_as_agent, hive.config.agent_socket("alice"), events)
    out = hive.ok("logs", "alice").stdout
    assert "session s-42 started" in out
    assert "API error 529 (overloaded); retry 1/10 in 0.6 s" in out
    assert "answering [bold]the operator[/] | → mcp__hive__send" in out
    assert "← ok" in out
    assert "turn done in 2.5 s, 2 turns, $0.0123" in out
    assert "[turn_error] claude hung; killed after 600 s" in out
    assert [e["type"] for e in map(json.loads, hive.ok("logs", "alice", "-n", "2", "--json").stdout.splitlines())] == [
        "result",
        "hive",
    ]


def test_logs_of_an_unknown_agent_is_one_error_line(hive: LiveHive) -> None:
    assert "unknown agent 'ghost'" in error_line(hive.run("logs", "ghost"))


def test_spawn_with_a_role_and_a_driver_shows_them_in_status(hive: LiveHive) -> None:
    hive.ok("spawn", "alice", "--role", "reviews code", "--driver", "echo")
    status = hive.json("status", "alice")
    assert (status["role"], status["driver"]) == ("reviews code", "echo")
    out = hive.ok("status", "alice").stdout
    assert "reviews code" in out


def test_spawn_manager_starts_hm1nd_and_refuses_names_beside_it(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, manager_command=IDLE_AGENT)
    with live_hive(config) as hive:
        [manager] = agents_of(hive.json("spawn", "--manager"))
        assert (manager["name"], manager["state"]) == ("hm1nd", "running")
        assert "give agent names, or --manager alone" in error_line(hive.run("spawn", "bob", "--manager"))
        assert "give agent names, or --manager alone" in error_line(hive.run("spawn"))


# spawn options: claude's tools, mode and model, the sandbox's network, extra dirs and repository


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def _project(path: Path) -> Path:
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    (path / "README").write_text("hi\n")
    _git(path, "add", "README")
    _git(path, "-c", "user.name=op", "-c", "user.email=op@example.invalid", "commit", "-qm", "start")
    return path


def test_spawn_options_go_into_the_agent_file_and_a_repo_agent_gets_its_own_clone(
    hive: LiveHive, short_tmpdir: Path
) -> None:
    repo, data, out = _project(short_tmpdir / "project"), short_tmpdir / "data", short_tmpdir / "out"
    data.mkdir()
    out.mkdir()
    hive.ok(
        "spawn", "alice", "--tools", "Read,Grep,Bash(git commit, git add *)", "--permission-mode", "dontAsk",
        "--model", "sonnet", "--no-network", "--ro-dir", str(data), "--rw-dir", str(out), "--repo", str(repo),
    )  # fmt: skip
    text = _git(hive.config.state_repo, "show", "main:agents/alice.toml")
    for line in (
        'model = "sonnet"',
        'tools = ["Read", "Grep", "Bash(git commit, git add *)"]',
        'permission_mode = "dontAsk"',
        "network = false",
        f'repo = "{repo}"',
    ):
        assert line in text
    status = hive.json("status", "alice")
    assert status["settings"]["sandbox.extra_dirs"] == [
        {"path": str(data), "mode": "ro"},
        {"path": str(out), "mode": "rw"},
    ]
    assert status["not_applied"] == []
    assert status["branch"]["branch"] == "hive/alice"
    assert status["branch"]["head"] is None  # nothing published yet
    clone = hive.config.agent_state_dir("alice") / "work"
    assert _git(clone, "branch", "--show-current").strip() == "hive/alice"
    assert _git(clone, "rev-parse", "HEAD") == _git(repo, "rev-parse", "HEAD")
    assert (clone / "README").read_text() == "hi\n"
    out_text = hive.ok("status", "alice").stdout
    assert "hive/alice" in out_text
    assert "none yet" in out_text


REFUSED_SETTINGS = [
    (["--repo", "/nonexistent/project"], "/nonexistent/project: no such directory; give the path of a git"),
    (["--repo", "."], "not a git repository with a commit"),
    (["--ro-dir", "/nonexistent/data"], "/nonexistent/data: no such directory on this host"),
    (["--rw-dir", "STATE"], "it overlaps the hive's own"),
    (["--tools", "Read,rm -rf"], "claude.tools: Value error, 'rm -rf' is no tool name or rule"),
    (["--model", "a b"], "claude.model: Value error, give a model name or alias"),
]


def test_spawn_refuses_settings_it_cannot_apply_and_commits_nothing(
    hive: LiveHive, short_tmpdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (short_tmpdir / "plain").mkdir()
    monkeypatch.chdir(short_tmpdir / "plain")  # `--repo .` is resolved from here
    for args, says in REFUSED_SETTINGS:
        given = [str(hive.config.state_dir) if a == "STATE" else a for a in args]
        line = error_line(hive.run("spawn", "alice", *given))
        assert says in line, given
    assert hive.json("list") == []
    assert "agents/alice.toml" not in _git(hive.config.state_repo, "ls-tree", "-r", "--name-only", "main")
