"""An agent's clone of the operator's repository, with real git: made once, kept, published back, never mixed up."""

import subprocess
from pathlib import Path

import pytest

from hyperhive_core.errors import WorkspaceError
from hyperhive_core.lifecycle.workspace import branch_state, prepare_clone, publish_branch


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def project(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README").write_text("hi\n")
    git(path, "add", "README")
    git(path, "-c", "user.name=op", "-c", "user.email=op@example.invalid", "commit", "-qm", "start")
    return path


def commit(clone: Path, name: str) -> str:
    (clone / name).write_text(name)
    git(clone, "add", name)
    git(clone, "commit", "-qm", f"add {name}")
    return git(clone, "rev-parse", "HEAD")


def test_a_clone_is_made_once_and_its_work_is_published_and_picked_up_by_a_later_agent_of_that_name(
    tmp_path: Path,
) -> None:
    repo = project(tmp_path / "project")
    base = git(repo, "rev-parse", "HEAD")
    clone = tmp_path / "agents" / "alice" / "work"
    prepare_clone("alice", repo, clone)
    assert git(clone, "branch", "--show-current") == "hive/alice"
    assert git(clone, "config", "user.email") == "alice@hyperhive.invalid"
    (clone / ".hive-claude-session").write_text("session\n")
    head = commit(clone, "notes")
    assert git(clone, "status", "--porcelain") == ""  # the turn loop's files stay out of commits
    prepare_clone("alice", repo, clone)  # a restart keeps the clone and its work
    assert git(clone, "rev-parse", "HEAD") == head
    assert branch_state("alice", repo).head is None
    assert publish_branch("alice", repo, clone) == head
    state = branch_state("alice", repo)
    assert (state.branch, state.head, state.ahead) == ("hive/alice", head, 1)
    assert state.commits == ((head[:7], "add notes"),)
    assert git(repo, "rev-parse", "HEAD") == base
    assert git(repo, "status", "--porcelain") == ""
    # alice removed with her clone gone: a new alice goes on from her branch, not from HEAD
    later = tmp_path / "later" / "alice" / "work"
    prepare_clone("alice", repo, later)
    assert git(later, "rev-parse", "HEAD") == head


def test_a_work_dir_holding_a_clone_of_another_repository_is_refused(tmp_path: Path) -> None:
    clone = tmp_path / "work"
    prepare_clone("alice", project(tmp_path / "one"), clone)
    with pytest.raises(WorkspaceError) as caught:
        prepare_clone("alice", project(tmp_path / "two"), clone)
    assert caught.value.path == str(clone)
    assert f"a clone of {tmp_path / 'one'}, not of {tmp_path / 'two'}" in caught.value.problem
