"""What several toolsets share: the typed arguments a model reads in the tools' schemas, and the
one place a `HiveError` becomes the tool error the caller sees."""

from collections.abc import Generator
from contextlib import contextmanager
from typing import Annotated, Literal

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from hyperhive_core.approvals.agentfile import ExtraDir, PermissionMode
from hyperhive_core.errors import HiveError

AgentName = Annotated[str, Field(description="The agent's name: lowercase letters, digits, '-', at most 9 characters.")]
Role = Annotated[str, Field(description="What the agent is for, in plain words; it opens the agent's prompt.")]
DriverName = Annotated[
    Literal["auto", "claude", "echo"],
    Field(description="auto: claude when installed and logged in, else echo; claude; echo (replies 'echo: <body>')."),
]
MemoryMb = Annotated[
    int | None, Field(ge=16, le=1024 * 1024, description="Its memory limit in MiB; leave out for the hive's default.")
]
Pids = Annotated[int | None, Field(ge=8, le=1_000_000, description="Most processes and threads it may have at once.")]
Cpus = Annotated[float | None, Field(gt=0, le=1024, description="CPUs it may use, e.g. 0.5 or 2.")]

Tools = Annotated[
    list[str] | None,
    Field(
        max_length=100,
        description="claude's tools, offered and allowed without asking: names or rules (Read, Bash(git *)); "
        "null: the working set (Bash, Read, Edit, Write, Glob, Grep); []: the hive's tools only.",
    ),
]
PermissionModeName = Annotated[
    PermissionMode | None, Field(description="claude's permission mode; null: default (tools not allowed are refused).")
]
Model = Annotated[str | None, Field(max_length=128, description="claude's model (sonnet, opus...); null: its default.")]
Network = Annotated[bool | None, Field(description="Share the host's network; null: the daemon's setting.")]
ExtraDirs = Annotated[
    list[ExtraDir] | None,
    Field(max_length=50, description="Host dirs in its sandbox at the same path: [{path, mode: ro|rw}].", default=None),
]
Repo = Annotated[
    str | None,
    Field(
        max_length=4096,
        description="A git repository (absolute path on the daemon's host): the agent works in its own clone, "
        "on branch hive/<name>, which is fetched back into the repository after each turn.",
    ),
]


def claude_section(tools: list[str] | None, permission_mode: str | None, model: str | None) -> dict[str, object]:
    """The `[claude]` settings a spawn asks for (left out: the defaults)."""
    return {"tools": tools, "permission_mode": permission_mode, "model": model}


def sandbox_section(network: bool | None, extra_dirs: list[ExtraDir] | None, repo: str | None) -> dict[str, object]:
    """The `[sandbox]` settings a spawn asks for (left out: the defaults)."""
    dirs = [d.model_dump() for d in extra_dirs] if extra_dirs else None
    return {"network": network, "extra_dirs": dirs, "repo": repo}


@contextmanager
def tool_errors() -> Generator[None]:
    """Turn a `HiveError` into the tool error the caller sees; the message says what to do."""
    try:
        yield
    except HiveError as exc:
        raise ToolError(str(exc)) from exc


Host = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="The host whose daemon runs it (a hive across hosts); null: this daemon's host.",
    ),
]
