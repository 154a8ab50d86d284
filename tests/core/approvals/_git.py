"""Plain git against the state repo, as an operator would use it: clone, edit, commit, push."""

import os
from collections.abc import Mapping
from pathlib import Path

import anyio

from hyperhive_core.client import HiveClient
from hyperhive_core.config import HiveConfig
from hyperhive_core.mcp.models import EventView

# The operator's own git, with the machine's and the user's config out of the way.
GIT_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Ada Operator",
    "GIT_AUTHOR_EMAIL": "ada@example.org",
    "GIT_COMMITTER_NAME": "Ada Operator",
    "GIT_COMMITTER_EMAIL": "ada@example.org",
}


async def git(*args: str, cwd: Path | None = None) -> str:
    """Run git; its stdout."""
    done = await anyio.run_process(["git", *args], cwd=cwd, env=GIT_ENV, check=True)
    return done.stdout.decode()


async def bare(config: HiveConfig, *args: str) -> str:
    """Run git inside the daemon's bare state repo."""
    return await git("--git-dir", str(config.state_repo), *args)


async def clone(config: HiveConfig, dest: Path) -> Path:
    """A work tree of the state repo."""
    await git("clone", "--quiet", str(config.state_repo), str(dest))
    return dest


async def commit_and_push(work: Path, files: Mapping[str, str | None], message: str) -> str:
    """Write (None: delete) files in a clone, commit them, push to main; the new commit."""
    await git("pull", "--quiet", "--ff-only", "origin", "main", cwd=work)
    for path, text in files.items():
        if text is None:
            await git("rm", "--quiet", path, cwd=work)
        else:
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            await git("add", path, cwd=work)
    await git("commit", "--quiet", "-m", message, cwd=work)
    await git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    return (await git("rev-parse", "HEAD", cwd=work)).strip()


async def hive_events(client: HiveClient, agent: str, *, until: str, count: int = 1) -> list[EventView]:
    """An agent's events, waiting (bounded by the caller) until `count` hive events of subtype `until`."""
    events: list[EventView] = []
    after = 0
    while sum(1 for e in events if e.data.get("type") == "hive" and e.data.get("subtype") == until) < count:
        page = await client.agent_logs(agent, after=after, limit=1000, wait_s=10)
        events += page.events
        after = page.last_id or after
    return events


def hive_subtypes(events: list[EventView]) -> list[str]:
    """The subtypes of the hive's own events (what the reconciler did to the agent), in order."""
    return [str(e.data.get("subtype")) for e in events if e.data.get("type") == "hive"]


async def push_files(config: HiveConfig, scratch: Path, files: Mapping[str, str | None], message: str) -> str:
    """Change files on main with plain git (a clone in `scratch`, made once, then a push); the new commit."""
    if not (scratch / ".git").exists():
        await clone(config, scratch)
    return await commit_and_push(scratch, files, message)
