"""hivectl's approval and reconcile verbs against a live daemon: approvals, approvals show, approve,
deny, plan (exit 0/1/2), reconcile, suspend, resume, rollback."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperhive_core.client import open_hive_client
from hyperhive_core.mcp.models import AgentInfo
from tests.cli._hive import LiveHive, cli_env, error_line, invoke, live_hive
from tests.core.approvals._git import push_files
from tests.helpers import IDLE_AGENT, hive_config


@pytest.fixture
def hive(short_tmpdir: Path) -> Iterator[LiveHive]:
    # No watch of main: a push is applied only when the test says so (plan sees it first).
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, manager_command=IDLE_AGENT, watch_interval_s=3600)
    with live_hive(config) as live:
        live.ok("spawn", "--manager")
        yield live


def propose_spawn(hive: LiveHive, name: str, role: str = "", reason: str = "") -> int:
    """The manager proposes an agent, through its own socket."""

    async def propose() -> int:
        async with open_hive_client(hive.config.agent_socket("hm1nd")) as manager:
            return (await manager.propose_spawn(name, role=role, reason=reason)).id

    return hive.portal.call(propose)


def push(hive: LiveHive, files: dict[str, str | None], message: str) -> None:
    hive.portal.call(push_files, hive.config, hive.config.state_dir.parent / "clone", files, message)


def test_approvals_lists_shows_and_approves_a_proposal(hive: LiveHive) -> None:
    proposal = propose_spawn(hive, "worker", role="count words", reason="the operator asked")
    status = hive.json("status")
    assert (status["pending_proposals"], len(status["main"])) == (1, 40)
    assert "1 proposals wait for a verdict (hivectl approvals)" in status["warnings"]
    assert "1 waiting for a verdict" in hive.ok("status").stdout
    table = hive.ok("approvals").stdout
    row = next(line for line in table.splitlines() if "spawn worker" in line)
    assert str(proposal) in row
    assert "hm1nd" in row
    assert "proposed" in row
    [listed] = hive.json("approvals")
    assert (listed["id"], listed["state"], listed["summary"]) == (proposal, "proposed", "spawn worker")
    shown = hive.ok("approvals", "show", str(proposal)).stdout
    assert "the operator asked" in shown
    assert '+role = "count words"' in shown
    assert "if approved now" in shown
    assert "worker" in next(line for line in shown.splitlines() if "create" in line)
    assert hive.json("approvals", "show", str(proposal))["plan"]["steps"][0]["action"] == "create"

    out = hive.ok("approve", str(proposal)).stdout
    assert f"proposal {proposal} (spawn worker) applied: worker is Ready" in out
    assert "already applied by operator" in error_line(hive.run("approve", str(proposal)))
    assert "no proposals" in hive.ok("approvals").stdout
    assert [p["state"] for p in hive.json("approvals", "--all")] == ["applied"]
    agents = {a["name"]: a for a in hive.json("list")}
    assert (agents["worker"]["state"], agents["worker"]["sync"]) == ("running", "Ready")
    assert "Ready" in next(line for line in hive.ok("list").stdout.splitlines() if "worker" in line)


def test_deny_needs_a_reason_and_the_verdict_is_final(hive: LiveHive) -> None:
    proposal = propose_spawn(hive, "scout")
    assert hive.run("deny", str(proposal)).exit_code == 2  # --reason is required
    out = hive.ok("deny", str(proposal), "--reason", "not now").stdout
    assert f"proposal {proposal} (spawn scout) denied: not now" in out
    assert "already denied by operator: not now" in error_line(hive.run("approve", str(proposal)))
    assert f"no proposal {proposal + 1}" in error_line(hive.run("approvals", "show", str(proposal + 1)))


def test_plan_exits_0_in_sync_1_with_differences_and_2_on_a_refused_main(hive: LiveHive) -> None:
    result = hive.run("plan")
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.stdout
    push(hive, {"agents/zed.toml": 'role = "z"\n'}, "zed by hand")
    result = hive.run("plan")
    assert result.exit_code == 1, result.output
    assert "create" in next(line for line in result.stdout.splitlines() if "zed" in line)
    plan = json.loads(hive.run("plan", "--json").stdout)
    assert [(s["agent"], s["action"]) for s in plan["steps"]] == [("zed", "create")]
    push(hive, {"agents/zed.toml": "driver = 'gpt'\n"}, "broken zed")
    result = hive.run("plan")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: main ")
    assert "agents/zed.toml line 1: driver: " in result.stderr
    line = error_line(hive.run("reconcile"))  # refused, nothing applied
    assert "agents/zed.toml line 1" in line


def test_plan_without_a_daemon_exits_2(short_tmpdir: Path) -> None:
    result = invoke(cli_env(short_tmpdir / "run", short_tmpdir / "state"), "plan")
    assert result.exit_code == 2
    assert "no hyperhive daemon at" in result.stderr


def test_reconcile_suspend_resume_and_rollback(hive: LiveHive) -> None:
    hive.ok("spawn", "alice", "--role", "write")
    before = hive.portal.call(lambda: _main(hive))
    hive.ok("rebuild", "alice", "--role", "review")
    assert hive.json("status", "alice")["role"] == "review"
    suspended = hive.ok("suspend", "alice").stdout
    assert "Suspended" in suspended
    assert "Suspended" in next(line for line in hive.ok("list").stdout.splitlines() if "alice" in line)
    hive.ok("resume", "alice")
    out = hive.ok("rollback", "alice", before).stdout
    assert f"rollback alice to {before[:12]}" in out
    assert hive.json("status", "alice")["role"] == "write"
    assert "no revision 'nope'" in error_line(hive.run("rollback", "alice", "nope"))
    report = hive.json("reconcile", "alice")
    assert report["steps"] == []
    status = hive.ok("status", "alice").stdout
    assert "sync" in status
    assert "rebuild done" in status
    AgentInfo.model_validate(hive.json("status", "alice"))


async def _main(hive: LiveHive) -> str:
    from tests.core.approvals._git import bare

    return (await bare(hive.config, "rev-parse", "main")).strip()


def test_spawn_on_another_host_place_and_drain(hive: LiveHive) -> None:
    here = hive.config.host_name
    hive.ok("spawn", "bob", "--host", "far")
    assert hive.json("status", "bob")["detail"] == "pending on far"
    plan = hive.run("plan")
    assert plan.exit_code == 1  # something main wants is not as it says here
    assert "bob" in next(line for line in plan.stdout.splitlines() if "elsewhere" in line)
    refused = error_line(hive.run("place", "bob", "nowhere"))
    assert "host 'nowhere' has never run a daemon of this hive" in refused
    assert "--force" in refused
    assert "cannot drain 'far' onto itself" in error_line(hive.run("drain", "far", "--to", "far"))
    assert "no agent of main is placed on host 'gone'" in error_line(hive.run("drain", "gone"))
    out = hive.ok("drain", "far").stdout
    assert f"drain far to {here}" in out
    assert "create" in next(line for line in out.splitlines() if "bob" in line)
    assert hive.json("status", "bob")["state"] == "running"
