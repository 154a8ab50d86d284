"""An agent's workspace on the host: its work dir as a clone of the operator's repository, and extra dirs.

`--repo PATH` makes the agent's work dir a clone of PATH on a branch of its own, `hive/<name>`.
A clone, not a `git worktree`: a worktree's `.git` points into the main repository's `.git`, so
committing from it writes the main repository's objects, refs and reflogs, and git runs the hooks
and config of that `.git` for the operator later. Binding it writable into the sandbox would let
the agent rewrite every branch and plant a hook the operator's own git runs outside any sandbox.
A clone made with `--no-hardlinks` holds its own copy of every object, so nothing of the
operator's repository is bound into the sandbox at all (hardlinked objects would be the same
files, writable by their owner). The price is the disk of one copy per agent.

The agent's commits reach the operator's repository when the daemon fetches `hive/<name>` from
the clone into it (after each turn, and when the agent is removed): the branch is the operator's
to review and merge, and is never deleted by the hive. Every git command here runs in the
operator's repository; the agent's clone is only read through `git upload-pack`, which git
designs to be safe in a repository someone else controls.
"""

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hyperhive_core.errors import WorkspaceError
from hyperhive_core.lifecycle.base import ExtraMount

logger = logging.getLogger(__name__)

BRANCH_PREFIX = "hive/"
GIT_TIMEOUT_S = 300.0
# The turn loop keeps its files in the work dir; the agent's commits leave them out.
EXCLUDED = "/.hive-*\n"
CLONE_TEMP = ".clone.tmp"
MAX_COMMITS = 20


def branch_of(name: str) -> str:
    """The branch agent `name` works on, in its clone and in the operator's repository."""
    return f"{BRANCH_PREFIX}{name}"


@dataclass(frozen=True, slots=True)
class BranchState:
    """An agent's branch as the operator's repository has it."""

    branch: str
    head: str | None  # None: not fetched yet (the agent has made no commit that was published)
    ahead: int  # commits on it that the repository's HEAD does not have
    commits: tuple[tuple[str, str], ...]  # (short sha, subject) of those, newest first, at most MAX_COMMITS


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env |= {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    return env


def _git(agent: str, repo: Path, *args: str, cwd: Path | None = None) -> str:
    """Run git for agent `agent`; the one place its failures become `WorkspaceError`."""
    # -c safe.directory: the operator named this repository; a daemon running as another user may use it.
    argv = ["git", "-c", f"safe.directory={repo}", *args]
    try:
        done = subprocess.run(
            argv, cwd=cwd or repo, env=_env(), capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True
        )
    except FileNotFoundError as exc:
        raise WorkspaceError(agent, str(repo), "git is not installed; install it (apt-get install git)") from exc
    except subprocess.TimeoutExpired as exc:
        raise WorkspaceError(agent, str(repo), f"git {args[0]} took longer than {GIT_TIMEOUT_S:g} s") from exc
    except subprocess.CalledProcessError as exc:
        said = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise WorkspaceError(agent, str(repo), f"git {args[0]} failed: {said[-1] if said else exc.returncode}") from exc
    return done.stdout


def check_repo(agent: str, repo: Path) -> None:
    """Refuse a `--repo` that is not a git repository with a commit to start from.

    Raises:
        WorkspaceError: it is missing, not a repository, or has no commit yet.
    """
    if not repo.is_absolute():
        raise WorkspaceError(agent, str(repo), "give the repository as an absolute path")
    if not repo.is_dir():
        raise WorkspaceError(agent, str(repo), "no such directory; give the path of a git repository")
    try:
        _git(agent, repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    except WorkspaceError:
        raise WorkspaceError(
            agent, str(repo), "not a git repository with a commit (git init, and commit something first)"
        ) from None


def check_extra_dirs(agent: str, dirs: Sequence[ExtraMount], hive_dirs: Sequence[Path]) -> None:
    """Refuse extra dirs that do not exist, or that would put the hive's own dirs in the agent's reach.

    Raises:
        WorkspaceError: the first dir that cannot be bound, and why.
    """
    for mount in dirs:
        path = mount.path
        if not path.is_absolute() or not path.is_dir():
            raise WorkspaceError(agent, str(path), "no such directory on this host; create it or fix the path")
        real = path.resolve()
        if real == Path("/"):
            raise WorkspaceError(agent, str(path), "the root directory cannot be an extra dir")
        for hive_dir in hive_dirs:
            hive_real = hive_dir.resolve()
            if real == hive_real or hive_real in real.parents or real in hive_real.parents:
                raise WorkspaceError(
                    agent,
                    str(path),
                    f"it overlaps the hive's own {hive_dir} (other agents' sockets and state); choose another dir",
                )


def hidden_paths(agent: str, repo: Path) -> list[Path]:
    """The repository's checkouts (its main work tree and every worktree): masked in the agent's sandbox."""
    listing = _git(agent, repo, "worktree", "list", "--porcelain")
    paths = [Path(line.removeprefix("worktree ")) for line in listing.splitlines() if line.startswith("worktree ")]
    return [path for path in dict.fromkeys([repo, *paths]) if path.is_dir()]


def _origin_of(work_dir: Path) -> str | None:
    """The repository a clone was made from, read from its config file as text (not run as a repository)."""
    try:
        done = subprocess.run(
            ["git", "config", "--file", str(work_dir / ".git" / "config"), "--get", "remote.origin.url"],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def prepare_clone(agent: str, repo: Path, work_dir: Path) -> None:
    """Make `work_dir` a clone of `repo` on branch hive/<agent>; an existing clone of it is kept as it is.

    The branch starts where the operator's `hive/<agent>` is, when an earlier agent of this name
    left one, else at the repository's HEAD.

    Raises:
        WorkspaceError: git failed, or the work dir already holds something else.
    """
    branch = branch_of(agent)
    if (work_dir / ".git").exists():
        origin = _origin_of(work_dir)
        if origin is not None and Path(origin) == repo:
            return  # its work so far, on a restart or rebuild
        raise WorkspaceError(
            agent,
            str(work_dir),
            f"the work dir already holds a clone of {origin or 'an unknown repository'}, not of {repo}; "
            "move it away (its commits are yours) or spawn the agent under another name",
        )
    check_repo(agent, repo)
    temporary = work_dir.parent / CLONE_TEMP
    shutil.rmtree(temporary, ignore_errors=True)
    work_dir.parent.mkdir(parents=True, exist_ok=True)
    _git(agent, repo, "clone", "--quiet", "--no-hardlinks", "--no-checkout", str(repo), str(temporary))
    try:
        # Into the work dir as it is: an agent of this name may have left its session files there.
        work_dir.mkdir(exist_ok=True)
        (temporary / ".git").rename(work_dir / ".git")
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    remote_branch = f"refs/remotes/origin/{branch}"
    try:
        _git(agent, repo, "rev-parse", "--verify", "--quiet", remote_branch, cwd=work_dir)
        start = remote_branch
    except WorkspaceError:
        start = "HEAD"
    # --force: a clone made with --no-checkout has an empty index, which a plain checkout would keep.
    _git(agent, repo, "checkout", "--quiet", "--force", "-B", branch, start, cwd=work_dir)
    # Commits inside the sandbox need an author; there is no global git config there.
    _git(agent, repo, "config", "user.name", f"{agent} (hyperhive agent)", cwd=work_dir)
    _git(agent, repo, "config", "user.email", f"{agent}@hyperhive.invalid", cwd=work_dir)
    exclude = work_dir / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with exclude.open("a") as file:
        file.write(EXCLUDED)
    logger.info("agent %s works in %s, a clone of %s on %s (from %s)", agent, work_dir, repo, branch, start)


def publish_branch(agent: str, repo: Path, work_dir: Path) -> str | None:
    """Fetch the agent's branch from its clone into the operator's repository; its head there, None if none.

    Forced: `hive/<agent>` in the repository mirrors the agent's branch (branch off it to change it).

    Raises:
        WorkspaceError: git failed (the branch is checked out in a worktree of the repository, say).
    """
    branch = branch_of(agent)
    if not (work_dir / ".git").is_dir():
        return None
    listing = _git(agent, repo, "ls-remote", "--heads", str(work_dir), f"refs/heads/{branch}")
    if not listing.strip():
        return None
    _git(agent, repo, "fetch", "--quiet", "--no-tags", str(work_dir), f"+refs/heads/{branch}:refs/heads/{branch}")
    return listing.split()[0]


def branch_state(agent: str, repo: Path) -> BranchState:
    """The agent's branch in the operator's repository, with the commits its HEAD does not have yet.

    Raises:
        WorkspaceError: git failed.
    """
    branch = branch_of(agent)
    ref = f"refs/heads/{branch}"
    try:
        head = _git(agent, repo, "rev-parse", "--verify", "--quiet", ref).strip()
    except WorkspaceError:
        return BranchState(branch, None, 0, ())
    ahead = int(_git(agent, repo, "rev-list", "--count", f"HEAD..{ref}").strip() or 0)
    log = _git(agent, repo, "log", f"--max-count={MAX_COMMITS}", "--format=%h%x09%s", f"HEAD..{ref}")
    commits = tuple((sha, subject) for sha, _, subject in (line.partition("\t") for line in log.splitlines()))
    return BranchState(branch, head, ahead, commits)
