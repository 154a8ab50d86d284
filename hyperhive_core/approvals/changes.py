"""Changes to the desired hive: what the operator commits to main and the manager proposes.

A change is a set of files (None deletes) with a one-line summary, built against one snapshot of
main, so a builder's checks (the agent exists, or does not) hold for the commit it becomes. The
commit message says what and who: the summary, the details, and trailers (`Requested-By`, or
`Proposal-Id`, `Base`, `Proposed-By`) that `git log` shows and tools can read.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hyperhive_core.approvals.agentfile import (
    AGENT_SUFFIX,
    AGENTS_DIR,
    AgentFile,
    Driver,
    agent_path,
    parse_agent,
    render_agent,
    settings_diff,
)
from hyperhive_core.approvals.repo import Author, Snapshot, StateRepo
from hyperhive_core.errors import (
    AgentExistsError,
    InvalidChangeError,
    NothingToProposeError,
    PlacementError,
    UnknownAgentError,
)
from hyperhive_core.names import MANAGER, OPERATOR

OPERATOR_AUTHOR = Author("operator", "operator@hyperhive.invalid")
MANAGER_AUTHOR = Author(MANAGER, f"{MANAGER}@hyperhive.invalid")
DAEMON_AUTHOR = Author("hyperhive", "daemon@hyperhive.invalid")
SECTIONS = ("claude", "sandbox", "limits", "budget", "nixos")


def author_of(principal: str) -> Author:
    """The commit author for a principal of the hive."""
    return {OPERATOR: OPERATOR_AUTHOR, MANAGER: MANAGER_AUTHOR}.get(principal) or Author(
        principal, f"{principal}@hyperhive.invalid"
    )


@dataclass(frozen=True, slots=True)
class Change:
    """Files to write (None: delete) for one agent, and what to call it."""

    agent: str
    summary: str
    files: Mapping[str, bytes | None]
    details: str = ""

    def message(self, trailers: Mapping[str, str]) -> str:
        """The commit message: summary, details, trailers."""
        parts = [self.summary]
        if self.details:
            parts.append(self.details)
        parts.append("\n".join(f"{key}: {value}" for key, value in trailers.items()))
        return "\n\n".join(parts) + "\n"


class AgentEdit(BaseModel):
    """A change to some of an agent's settings; what is left out stays as it is.

    A section (claude, sandbox, limits, budget, nixos) is merged key by key: `{"sandbox":
    {"network": false}}` changes the network alone; a key set to null goes back to its default.
    """

    model_config = ConfigDict(extra="forbid")

    role: str | None = Field(default=None, description="What the agent is for; it opens its prompt.")
    driver: Driver | None = Field(default=None, description="auto, claude or echo.")
    backend: str | None = Field(default=None, description="The lifecycle backend (local, nixos).")
    host: str | None = Field(default=None, description="Where it runs (multi-host).")
    claude: dict[str, Any] | None = Field(default=None, description="model, tools (a list), permission_mode.")
    sandbox: dict[str, Any] | None = Field(
        default=None, description="network (true/false), extra_dirs ([{path, mode: ro|rw}]), repo."
    )
    limits: dict[str, Any] | None = Field(default=None, description="memory_mb, cpus, pids.")
    budget: dict[str, Any] | None = Field(
        default=None, description="usd_per_day, usd_total, tokens_per_day, tokens_total."
    )
    nixos: dict[str, Any] | None = Field(default=None, description="packages: nixpkgs attribute names.")

    def fields(self) -> list[str]:
        """The top-level settings this edit touches."""
        return sorted(self.model_dump(exclude_none=True))


def edited(name: str, file: AgentFile, edit: AgentEdit) -> AgentFile:
    """`file` with `edit` applied.

    Raises:
        InvalidChangeError: the result breaks the agent file's rules (the field is named).
    """
    data = file.model_dump(mode="json")
    for key, value in edit.model_dump(exclude_none=True).items():
        data[key] = {**data[key], **value} if key in SECTIONS else value
    try:
        return AgentFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"])
        problem = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        raise InvalidChangeError(name, field, problem) from None


def describe(file: AgentFile) -> str:
    """The settings that differ from the defaults, one `key = value` a line (for commit messages)."""
    return "\n".join(f"{key} = {value!r}" for key, value in settings_diff(file).items())


def agents_in(snapshot: Snapshot) -> list[str]:
    """The agents a snapshot has files for."""
    return sorted(
        path.removeprefix(f"{AGENTS_DIR}/").removesuffix(AGENT_SUFFIX)
        for path in snapshot.files
        if path.startswith(f"{AGENTS_DIR}/") and path.endswith(AGENT_SUFFIX)
    )


async def current(repo: StateRepo, snapshot: Snapshot, name: str) -> AgentFile:
    """Agent `name`'s settings in `snapshot`.

    Raises:
        UnknownAgentError: it has no file there.
        AgentFileError: its file is not valid (fix it on main first).
    """
    path = agent_path(name)
    blob = snapshot.files.get(path)
    if blob is None:
        raise UnknownAgentError(name, agents_in(snapshot))
    raw = (await repo.blobs([blob]))[blob]
    return parse_agent(path, raw)[1]


def spawn(snapshot: Snapshot, name: str, file: AgentFile) -> Change:
    """A new agent.

    Raises:
        AgentExistsError: main has it already.
    """
    if agent_path(name) in snapshot.files:
        raise AgentExistsError(name)
    what = "the manager" if name == MANAGER else name
    return Change(name, f"spawn {what}", {agent_path(name): render_agent(name, file).encode()}, describe(file))


def kill(snapshot: Snapshot, name: str) -> Change:
    """An agent removed.

    Raises:
        UnknownAgentError: main has no such agent.
    """
    if agent_path(name) not in snapshot.files:
        raise UnknownAgentError(name, agents_in(snapshot))
    return Change(name, f"kill {name}", {agent_path(name): None})


async def edit(repo: StateRepo, snapshot: Snapshot, name: str, changes: AgentEdit, *, verb: str = "edit") -> Change:
    """Some settings of an agent changed.

    Raises:
        UnknownAgentError: main has no such agent.
        InvalidChangeError: the result is not a valid agent file.
        NothingToProposeError: nothing would change.
    """
    before = await current(repo, snapshot, name)
    after = edited(name, before, changes)
    if after == before:
        raise NothingToProposeError(name)
    summary = f"{verb} {name}: {', '.join(changes.fields())}"
    return Change(name, summary, {agent_path(name): render_agent(name, after).encode()}, describe(after))


async def rebuild(repo: StateRepo, snapshot: Snapshot, name: str) -> Change:
    """The same settings with the next generation: the agent is rebuilt once applied.

    Raises:
        UnknownAgentError: main has no such agent.
    """
    before = await current(repo, snapshot, name)
    after = before.model_copy(update={"generation": before.generation + 1})
    details = f"generation {before.generation} -> {after.generation}: the same settings, rebuilt"
    return Change(name, f"rebuild {name}", {agent_path(name): render_agent(name, after).encode()}, details)


async def rollback(repo: StateRepo, snapshot: Snapshot, name: str, rev: str) -> Change:
    """Agent `name`'s file as it was at commit `rev` (removed, if it had none then).

    Raises:
        NothingToProposeError: the file is the same at `rev` as on main.
        UnknownAgentError: the agent is neither on main nor at `rev`.
    """
    path = agent_path(name)
    then = (await repo.snapshot(rev)).files.get(path)
    now = snapshot.files.get(path)
    if then is None and now is None:
        raise UnknownAgentError(name, agents_in(snapshot))
    if then == now:
        raise NothingToProposeError(name)
    content = (await repo.blobs([then]))[then] if then is not None else None
    if content is not None:
        parse_agent(path, content)  # an old file the schema no longer accepts is refused, not committed
    effect = "as it was" if content is not None else "removed, as it did not exist then"
    return Change(name, f"rollback {name} to {rev[:12]}", {path: content}, f"agents/{name}.toml {effect} at {rev}")


async def place(repo: StateRepo, snapshot: Snapshot, name: str, host: str) -> Change:
    """Agent `name` placed on `host`: its daemon runs it, the one it leaves stops it.

    Raises:
        UnknownAgentError: main has no such agent.
        NothingToProposeError: it is placed there already.
    """
    before = await current(repo, snapshot, name)
    if before.host == host:
        raise NothingToProposeError(name)
    after = before.model_copy(update={"host": host})
    was = before.host or "no host"
    return Change(
        name, f"place {name} on {host}", {agent_path(name): render_agent(name, after).encode()}, f"was: {was}"
    )


async def drain(repo: StateRepo, snapshot: Snapshot, host: str, to: str) -> Change:
    """Every agent placed on `host` placed on `to` instead, in one commit.

    Raises:
        PlacementError: no agent of main is placed on `host`.
    """
    names = agents_in(snapshot)
    paths = [agent_path(name) for name in names]
    contents = await repo.blobs([snapshot.files[path] for path in paths])
    files: dict[str, bytes | None] = {}
    moved: list[str] = []
    for name, path in zip(names, paths, strict=True):
        file = parse_agent(path, contents[snapshot.files[path]])[1]
        if file.host == host:
            files[path] = render_agent(name, file.model_copy(update={"host": to})).encode()
            moved.append(name)
    if not moved:
        raise PlacementError(f"no agent of main is placed on host {host!r}; nothing was committed (`hivectl list`)")
    return Change("", f"drain {host} to {to}", files, f"moved from {host} to {to}: {', '.join(moved)}")
