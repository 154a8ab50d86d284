"""The plan of one agent, from main, what was applied and what runs (pure: no daemon)."""

import json
from pathlib import Path

import pytest

from hyperhive_core.approvals.agentfile import AgentFile, config_hash
from hyperhive_core.approvals.plan import plan_agent
from hyperhive_core.broker.models import AgentStateRow
from hyperhive_core.daemon import Daemon
from hyperhive_core.errors import StateRepoError
from hyperhive_core.lifecycle.base import AgentStatus
from hyperhive_core.states import AgentState
from tests.helpers import hive_config

RUNNING = AgentStatus(AgentState.RUNNING, pid=42)
STOPPED = AgentStatus(AgentState.STOPPED)
DIED = AgentStatus(AgentState.FAILED, detail="exited with code 3; see its log")


def applied(file: AgentFile, **changes: object) -> AgentStateRow:
    row = AgentStateRow(
        name="alice",
        applied_hash=config_hash(file),
        applied_config=json.dumps(file.model_dump(mode="json")),
        attempted_hash=config_hash(file),
    )
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def step(
    desired: AgentFile | None,
    state: AgentStateRow | None,
    status: AgentStatus,
    *,
    prune: bool = False,
    rebuild: bool = False,
    retry: bool = False,
) -> object:
    found = plan_agent("alice", desired, state, status, now=1000.0, prune=prune, rebuild=rebuild, retry=retry)
    return None if found is None else (found.action, found.reason)


WRITE = AgentFile(role="write")


def test_an_agent_running_as_main_says_is_left_alone() -> None:
    assert step(WRITE, applied(WRITE), RUNNING) is None


def test_a_comment_or_an_order_changes_nothing_but_a_value_rebuilds_naming_the_field() -> None:
    assert step(AgentFile(role="write"), applied(WRITE), RUNNING) is None
    changed = AgentFile(role="review", sandbox={"network": False})  # pyright: ignore[reportArgumentType]
    assert step(changed, applied(WRITE), RUNNING) == ("rebuild", "changed on main: role, sandbox.network")


@pytest.mark.parametrize(
    ("desired", "state", "status", "expected"),
    [
        (WRITE, None, STOPPED, ("create", "new on main")),
        (WRITE, applied(WRITE), STOPPED, ("start", "not running")),
        (WRITE, applied(WRITE), DIED, ("restart", "exited with code 3; see its log")),
        (None, applied(WRITE), RUNNING, ("remove", "removed from main")),
        (None, None, STOPPED, None),
    ],
    ids=["new", "stopped", "died", "removed", "gone"],
)
def test_what_differs_is_what_reconcile_does(
    desired: AgentFile | None, state: AgentStateRow | None, status: AgentStatus, expected: object
) -> None:
    assert step(desired, state, status) == expected


def test_an_agent_main_does_not_know_is_reported_and_pruned_only_when_asked() -> None:
    assert step(None, None, RUNNING) == (
        "unmanaged",
        "runs, but main does not know it; left running (prune is off in hive.toml)",
    )
    assert step(None, None, RUNNING, prune=True)[0] == "prune"  # type: ignore[index]  # a tuple here


def test_a_backoff_is_waited_for_unless_the_settings_changed_or_the_operator_asks() -> None:
    waiting = applied(WRITE, retry_at=1030.0, reason="died: exited with code 3 (restart 2)")
    assert step(WRITE, waiting, DIED) == ("wait", "died: exited with code 3 (restart 2); next attempt in 30 s")
    assert step(WRITE, waiting, DIED, retry=True) == ("restart", "exited with code 3; see its log")
    assert step(AgentFile(role="fixed"), waiting, DIED) == ("rebuild", "changed on main: role")


def test_a_suspended_agent_only_reports_what_waits_for_it() -> None:
    suspended = applied(WRITE, suspended=True)
    assert step(WRITE, suspended, DIED) is None
    assert step(AgentFile(role="review"), suspended, RUNNING)[0] == "suspended"  # type: ignore[index]
    assert step(None, suspended, RUNNING)[1].startswith("suspended by the operator: removal from main waits")  # type: ignore[index]


async def test_a_daemon_without_git_says_what_to_install(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, git="/nonexistent/git")
    with pytest.raises(StateRepoError) as caught:
        await Daemon(config).serve()
    assert "cannot run /nonexistent/git" in str(caught.value)
    assert "install it (apt-get install git)" in str(caught.value)
