"""Agents that work: the real claude-code, through the real daemon and bubblewrap, against the fake API.

Each agent's settings (its tools, permission mode, model, extra dirs, repository) go into its
agent file at spawn, and from there into its sandbox and its claude: a Bash call runs in the work
dir and its output reaches the model, a tool the agent was not given is refused by claude, an
extra dir bound read-only cannot be written, and an agent on a repository commits in its own clone
while the operator's checkout and another agent's clone stay as they were.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from hyperhive_core.client import HiveClient, open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import running_daemon
from tests.agent._claude import claude_path, needs_claude
from tests.fakes.messages_api import (
    ApiError,
    ApiRequest,
    MessagesApi,
    Model,
    Reply,
    ToolUse,
    call,
    say,
    send,
    serve_messages_api,
)
from tests.helpers import hive_config, needs_bwrap

pytestmark = [needs_claude, needs_bwrap]

BOUND_S = 90.0
WORKING_SET = {"Bash", "Read", "Edit", "Write", "Glob", "Grep"}


@pytest.fixture
def claude_dir(short_tmpdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real claude on the daemon's PATH (agents inherit it) and the operator's claude config dir."""
    monkeypatch.setenv("PATH", claude_path())
    path = short_tmpdir / "claude"
    path.mkdir()
    return path


async def events_until(operator: HiveClient, agent: str, subtype: str) -> list[dict[str, Any]]:
    """The agent's stored events, followed until one has `subtype`."""
    seen: list[dict[str, Any]] = []
    after: int | None = None
    while not any(event.get("subtype") == subtype for event in seen):
        page = await operator.agent_logs(agent, after=after, wait_s=5)
        seen += [event.data for event in page.events]
        after = page.last_id if page.last_id is not None else after
    return seen


def agent_of(request: ApiRequest) -> str:
    """Which agent's claude made the request (its prompt opens with `You are <name>,`)."""
    found = re.search(r"You are (\S+),", request.transcript())
    assert found is not None, "every turn's prompt names its agent"
    return found.group(1)


def results_of(request: ApiRequest) -> str:
    """The text of the tool results the request carries (what the model's last tool calls gave back)."""
    texts: list[str] = []
    for block in request.tool_results(-1):
        content = block.get("content")
        texts.append(content if isinstance(content, str) else json.dumps(content))
    return "\n".join(texts)


def bash_then_report(command: str) -> Model:
    """A model that runs `command` with Bash, sends its tool result to the operator, then stops."""

    def model(request: ApiRequest) -> Reply:
        last = [use.get("name") for use in request.last_tool_uses()]
        if request.answers_tools and last == ["Bash"]:
            return call(send("operator", "bash said:\n" + results_of(request)))
        if request.answers_tools:
            return say("Done.")
        if request.hive_messages():
            return call(ToolUse("Bash", {"command": command, "description": "work"}))
        return say("Nothing to do.")

    return model


async def test_bash_runs_in_the_work_dir_its_output_reaches_the_model_and_an_extra_dir_bound_read_only_stays_so(
    short_tmpdir: Path, claude_dir: Path
) -> None:
    config = hive_config(short_tmpdir, claude_config_dir=claude_dir)
    ro, rw = short_tmpdir / "ro", short_tmpdir / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "data.txt").write_text("read me\n")
    command = f"pwd; echo made > made.txt; cat {ro}/data.txt; touch {ro}/new 2>&1; echo wrote > {rw}/out.txt; echo end"
    api = MessagesApi(bash_then_report(command))
    # overloaded first: claude retries it with backoff, and the turn goes on
    api.queue(ApiError(529, "Overloaded"))
    async with serve_messages_api(api):
        api.write_settings(claude_dir)
        with anyio.fail_after(BOUND_S):
            async with running_daemon(config), open_hive_client(config.host_socket) as operator:
                await operator.spawn(
                    "alice", extra_dirs=[{"path": str(ro), "mode": "ro"}, {"path": str(rw), "mode": "rw"}]
                )
                await operator.send("alice", "run it")
                [report] = (await operator.recv(timeout_s=BOUND_S)).messages
                events = await events_until(operator, "alice", "turn_end")
                status = await operator.status("alice")
    work_dir = config.agent_state_dir("alice") / "work"
    said = report.body
    # the command ran in the agent's work dir, inside the sandbox, and its output came back to the model
    assert said.startswith(f"bash said:\n{work_dir}\n")
    assert "read me" in said
    assert "Read-only file system" in said
    assert said.rstrip().endswith("end")
    assert (work_dir / "made.txt").read_text() == "made\n"
    assert (rw / "out.txt").read_text() == "wrote\n"
    assert not (ro / "new").exists()
    [after_bash] = [r for r in api.model_requests() if [u.get("name") for u in r.last_tool_uses()] == ["Bash"]]
    assert str(work_dir) in results_of(after_bash)
    # the 529 was retried by claude (with its backoff), shown in the agent's log, and the turn still done
    retries = [e for e in events if e.get("subtype") == "api_retry"]
    assert [e.get("error_status") for e in retries] == [529]
    assert retries[0]["retry_delay_ms"] > 0
    assert isinstance(api.model_requests()[0].reply, ApiError)
    # the working set by default; the extra dirs are claude's working dirs too
    first = api.model_requests()[1]
    assert {name for name in first.tool_names if not name.startswith("mcp__")} - {"DeferredToolPlaceholder"} == (
        WORKING_SET
    )
    [init] = [e for e in events if e.get("subtype") == "init"]
    assert init["permissionMode"] == "default"
    assert status.settings["sandbox.extra_dirs"] == [{"path": str(ro), "mode": "ro"}, {"path": str(rw), "mode": "rw"}]
    assert status.not_applied == []


async def test_an_agent_has_only_the_tools_and_the_permission_mode_and_model_its_spawn_gave_it(
    short_tmpdir: Path, claude_dir: Path
) -> None:
    config = hive_config(short_tmpdir, claude_config_dir=claude_dir)
    api = MessagesApi(bash_then_report("echo hello > planted.txt"))
    async with serve_messages_api(api):
        api.write_settings(claude_dir)
        with anyio.fail_after(BOUND_S):
            async with running_daemon(config), open_hive_client(config.host_socket) as operator:
                await operator.spawn("bob", tools=["Read", "Grep"], permission_mode="dontAsk", model="sonnet")
                # a settings file in the work dir, which the agent could write, widens nothing
                work_dir = config.agent_state_dir("bob") / "work"
                (work_dir / ".claude").mkdir()
                (work_dir / ".claude" / "settings.json").write_text(
                    json.dumps({"permissions": {"allow": ["Bash"], "defaultMode": "bypassPermissions"}})
                )
                await operator.send("bob", "run it")
                [report] = (await operator.recv(timeout_s=BOUND_S)).messages
                events = await events_until(operator, "bob", "turn_end")
    # claude refused the call itself: Bash is not among bob's tools
    assert "No such tool available: Bash" in report.body
    assert not (work_dir / "planted.txt").exists()
    requests = api.model_requests()
    assert all(agent_of(r) == "bob" for r in requests)
    offered = {name for name in requests[0].tool_names if not name.startswith("mcp__")}
    assert offered - {"DeferredToolPlaceholder"} == {"Read", "Grep"}
    assert "mcp__hive__send" in requests[0].tool_names
    assert {"mcp__hive__recv", "mcp__hive__report_events"}.isdisjoint(requests[0].tool_names)
    assert all("sonnet" in str(r.body.get("model")) for r in requests)
    # the hive server's instructions, which reach the model, name only tools bob is given
    said = requests[0].context_text.split("\n## hive\n", 1)[1].split("\n\n", 1)[0]
    named = re.findall(r"\b(send|recv|ack|inbox|whoami|peers|report_events)\b", said)
    assert "send" in named
    assert all(f"mcp__hive__{tool}" in requests[0].tool_names for tool in named)
    [init] = [e for e in events if e.get("subtype") == "init"]
    assert init["permissionMode"] == "dontAsk"
    # the agent file on main says so, for the operator and for git
    text = (
        await anyio.run_process(["git", "--git-dir", str(config.state_repo), "show", "main:agents/bob.toml"])
    ).stdout
    assert 'tools = ["Read", "Grep"]' in text.decode()
    assert 'permission_mode = "dontAsk"' in text.decode()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def make_repo(path: Path) -> str:
    """An operator's repository with one commit on main; its head."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README").write_text("the operator's project\n")
    git(path, "add", "README")
    git(path, "-c", "user.name=op", "-c", "user.email=op@example.invalid", "commit", "-qm", "start")
    return git(path, "rev-parse", "HEAD").strip()


def committing_model(request: ApiRequest) -> Reply:
    """alice writes a file and commits it in her clone; bob only answers."""
    if agent_of(request) != "alice":
        return call(send("operator", "bob: nothing to do")) if not request.answers_tools else say("Done.")
    command = "echo 'by alice' > notes.txt && git add notes.txt && git commit -qm 'alice: add notes' && git status -s"
    return bash_then_report(command)(request)


async def hivectl(config: HiveConfig, *args: str) -> str:
    done = await anyio.run_process(
        [sys.executable, "-m", "hyperhive_core", "--run-dir", str(config.run_dir), *args],
        env={**os.environ, "COLUMNS": "300"},
    )
    return done.stdout.decode()


async def test_an_agent_commits_in_its_own_clone_on_its_branch_and_the_checkout_and_other_clones_stay_untouched(
    short_tmpdir: Path, claude_dir: Path
) -> None:
    config = hive_config(short_tmpdir, claude_config_dir=claude_dir)
    repo = short_tmpdir / "project"
    base = make_repo(repo)
    async with serve_messages_api(MessagesApi(committing_model)) as api:
        api.write_settings(claude_dir)
        with anyio.fail_after(BOUND_S):
            async with running_daemon(config), open_hive_client(config.host_socket) as operator:
                for name in ("alice", "bob"):
                    await operator.spawn(name, repo=str(repo))
                await operator.send("alice", "write the notes")
                await operator.send("bob", "hello")
                reports = (await operator.recv(timeout_s=BOUND_S, max=2)).messages
                while len(reports) < 2:
                    reports += (await operator.recv(timeout_s=BOUND_S)).messages
                events = await events_until(operator, "alice", "branch")
                status = await operator.status("alice")
                shown = await hivectl(config, "status", "alice")
                logs = await hivectl(config, "logs", "alice")
                await operator.kill("alice")
    alice, bob = (config.agent_state_dir(name) / "work" for name in ("alice", "bob"))
    assert sorted(m.sender for m in reports) == ["alice", "bob"]
    # alice committed in her own clone, on her branch, leaving no file of the turn loop's uncommitted
    assert git(alice, "branch", "--show-current").strip() == "hive/alice"
    assert git(alice, "log", "--format=%s", "-1").strip() == "alice: add notes"
    assert git(alice, "status", "--porcelain") == ""
    # the operator's checkout is as it was: same HEAD, same files, nothing staged or untracked
    assert git(repo, "rev-parse", "HEAD").strip() == base
    assert git(repo, "status", "--porcelain") == ""
    assert not (repo / "notes.txt").exists()
    # bob's clone, on his branch, has nothing of alice's
    assert git(bob, "branch", "--show-current").strip() == "hive/bob"
    assert git(bob, "rev-parse", "HEAD").strip() == base
    assert not (bob / "notes.txt").exists()
    # the commit reached the repository as hive/alice after the turn, and stays after the kill
    head = git(repo, "rev-parse", "refs/heads/hive/alice").strip()
    assert git(repo, "log", "--format=%s", "-1", "hive/alice").strip() == "alice: add notes"
    assert git(repo, "rev-parse", "hive/alice~1").strip() == base
    assert alice.is_dir()
    [branch] = [e for e in events if e.get("subtype") == "branch"]
    assert branch["head"] == head
    # status and logs show the branch and its commits
    assert status.branch is not None
    assert (status.branch.branch, status.branch.head, status.branch.ahead) == ("hive/alice", head, 1)
    assert status.branch.commits == [f"{head[:7]} alice: add notes"]
    for text in (shown, logs):
        assert "hive/alice" in text
        assert "alice: add notes" in text
