"""What several toolsets share: the typed arguments a model reads in the tools' schemas, and the
one place a `HiveError` becomes the tool error the caller sees."""

from collections.abc import Generator
from contextlib import contextmanager
from typing import Annotated, Literal

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

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


@contextmanager
def tool_errors() -> Generator[None]:
    """Turn a `HiveError` into the tool error the caller sees; the message says what to do."""
    try:
        yield
    except HiveError as exc:
        raise ToolError(str(exc)) from exc
