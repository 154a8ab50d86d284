"""The agent verbs of hivectl: spawn, kill, rebuild, list, status, logs.

Verbs on several names are all-or-nothing in what they check and honest in what they do: every
name is checked first (well-formed, present or absent as the verb needs) and nothing is done if one
fails; then each is applied and each outcome reported, exit 1 if any failed.
"""

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel
from rich.text import Text

from hyperhive_core.cli._client import OperatorClient
from hyperhive_core.cli._common import (
    Json,
    RunDir,
    StateDir,
    call_daemon,
    console,
    fail,
    print_json,
    report_failure,
    use_dirs,
)
from hyperhive_core.cli._render import agent_panel, agents_table, branch_text, event_line, hive_panel
from hyperhive_core.errors import AgentExistsError, HiveError, InvalidAgentNameError, ToolCallError, UnknownAgentError
from hyperhive_core.mcp.models import AgentInfo, AgentList, EventList, HiveStatus, StopReceipt
from hyperhive_core.names import validate_agent_name

FOLLOW_WAIT_S = 30.0
# A change reconciles at once: as long as a step may take (a container's rebuild), not a call's default.
LIFECYCLE_WAIT_S = 900.0


class Driver(StrEnum):
    """How an agent answers its messages."""

    AUTO = "auto"
    CLAUDE = "claude"
    ECHO = "echo"


class PermissionMode(StrEnum):
    """claude's permission modes (`claude --permission-mode`)."""

    DEFAULT = "default"
    ACCEPT_EDITS = "acceptEdits"
    BYPASS_PERMISSIONS = "bypassPermissions"
    PLAN = "plan"
    DONT_ASK = "dontAsk"


def split_tools(text: str) -> list[str]:
    """`--tools "Read,Grep,Bash(git add, git commit)"`: split at the commas outside parentheses."""
    tools: list[str] = []
    depth, start = 0, 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            tools.append(text[start:index])
            start = index + 1
    tools.append(text[start:])
    return [tool.strip() for tool in tools if tool.strip()]


def _absolute(path: Path) -> str:
    # The daemon has its own working dir: a path is sent as the operator means it, from here.
    return str(path.expanduser().resolve())


Names = Annotated[list[str], typer.Argument(help="Agent names: lowercase letters, digits, '-', at most 9.")]
Name = Annotated[str, typer.Argument(help="The agent's name.")]


class Outcome(BaseModel):
    """What a verb did to one name."""

    name: str
    ok: bool
    agent: AgentInfo | None = None
    error: str | None = None


def _check_names(
    client: OperatorClient, names: list[str], verb: str, *, must_exist: bool, validate: bool = False
) -> None:
    """Refuse the whole command, doing nothing, when one of `names` cannot take `verb`."""
    problems: list[str] = []
    seen: set[str] = set()
    known = {a.name for a in client.call("list_agents", {}, AgentList).agents}
    for name in names:
        if name in seen:
            problems.append(f"{name!r} is given twice")
            continue
        seen.add(name)
        try:
            if validate:
                validate_agent_name(name)
            if must_exist and name not in known:
                raise UnknownAgentError(name, known)
            if not must_exist and name in known:
                raise AgentExistsError(name)
        except (InvalidAgentNameError, UnknownAgentError, AgentExistsError) as exc:
            problems.append(str(exc))
    if problems:
        raise HiveError(f"nothing was {verb}: {'; '.join(problems)}")


def _apply(names: list[str], one: Callable[[str], AgentInfo | None]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for name in names:
        try:
            outcomes.append(Outcome(name=name, ok=True, agent=one(name)))
        except ToolCallError as exc:
            outcomes.append(Outcome(name=name, ok=False, error=exc.reason))
    return outcomes


def _report(outcomes: list[Outcome], verb: str, *, json: bool, table: bool = True) -> None:
    if json:
        print_json([o.model_dump(mode="json", exclude_none=True) for o in outcomes])
    else:
        done = [o for o in outcomes if o.ok]
        if table and done:
            console.print(agents_table([o.agent for o in done if o.agent is not None]))
        elif not table:
            for outcome in done:
                console.print(f"{verb} {outcome.name}", markup=False)
        for outcome in outcomes:
            if not outcome.ok:
                report_failure(f"{outcome.name}: {outcome.error}")
    if any(not o.ok for o in outcomes):
        raise typer.Exit(1)


def spawn(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Agent names: lowercase letters, digits, '-', at most 9.")
    ] = None,
    role: Annotated[str, typer.Option(help="What the agents are for; it opens each agent's prompt.")] = "",
    driver: Annotated[Driver, typer.Option(help="auto: claude when logged in, else echo.")] = Driver.AUTO,
    manager: Annotated[bool, typer.Option("--manager", help="Start the manager agent hm1nd (no NAME).")] = False,
    memory_mb: Annotated[int | None, typer.Option(min=16, help="Memory limit in MiB (default: the daemon's).")] = None,
    pids: Annotated[int | None, typer.Option(min=8, help="Most processes and threads at once.")] = None,
    cpus: Annotated[float | None, typer.Option(min=0.01, help="CPUs it may use, e.g. 0.5.")] = None,
    tools: Annotated[
        str | None,
        typer.Option(
            help="claude's tools, comma-separated names or rules: 'Read,Grep,Bash(git *)'; '' for the hive's "
            "tools only. Default: Bash, Read, Edit, Write, Glob, Grep (the sandbox is the boundary).",
        ),
    ] = None,
    permission_mode: Annotated[
        PermissionMode | None, typer.Option(help="claude's permission mode (default: tools not allowed are refused).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="claude's model, e.g. sonnet (default: claude's own).")] = None,
    network: Annotated[
        bool | None, typer.Option("--network/--no-network", help="Share the host's network (default: the daemon's).")
    ] = None,
    ro_dir: Annotated[
        list[Path] | None, typer.Option("--ro-dir", help="A host dir the agent may read, at the same path (repeat).")
    ] = None,
    rw_dir: Annotated[
        list[Path] | None, typer.Option("--rw-dir", help="A host dir the agent may write, at the same path (repeat).")
    ] = None,
    repo: Annotated[
        Path | None,
        typer.Option(help="A git repository: the agent works in its own clone of it, on branch hive/NAME."),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="The host whose daemon runs them (a hive across hosts; default: this daemon's host)."),
    ] = None,
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Add agents: commit each to main (the state repo) and start it; --manager starts the manager, hm1nd."""
    use_dirs(ctx, run_dir, state_dir)
    if manager == bool(names):
        raise fail("give agent names, or --manager alone")
    extra_dirs = [{"path": _absolute(p), "mode": "ro"} for p in ro_dir or ()]
    extra_dirs += [{"path": _absolute(p), "mode": "rw"} for p in rw_dir or ()]
    settings: dict[str, Any] = {
        "tools": split_tools(tools) if tools is not None else None,
        "permission_mode": permission_mode.value if permission_mode is not None else None,
        "model": model,
        "network": network,
        "extra_dirs": extra_dirs or None,
        "repo": _absolute(repo) if repo is not None else None,
        "host": host,
    }
    settings = {key: value for key, value in settings.items() if value is not None}
    if manager and settings:
        raise fail(f"--manager takes --role and --driver only, not {', '.join(sorted(settings))}")

    def act(client: OperatorClient) -> list[Outcome]:
        if manager:
            info = client.call(
                "spawn_manager", {"role": role, "driver": driver.value}, AgentInfo, wait_s=LIFECYCLE_WAIT_S
            )
            return [Outcome(name=info.name, ok=True, agent=info)]
        wanted = names or []
        _check_names(client, wanted, "spawned", must_exist=False, validate=True)
        limits = {k: v for k, v in (("memory_mb", memory_mb), ("pids", pids), ("cpus", cpus)) if v is not None}
        return _apply(
            wanted,
            lambda name: client.call(
                "spawn",
                {"name": name, "role": role, "driver": driver.value, **limits, **settings},
                AgentInfo,
                wait_s=LIFECYCLE_WAIT_S,
            ),
        )

    _report(call_daemon(ctx, act), "spawned", json=json)


def kill(
    ctx: typer.Context, names: Names, json: Json = False, run_dir: RunDir = None, state_dir: StateDir = None
) -> None:
    """Remove agents from main and stop them (their sockets too); their message history stays."""
    use_dirs(ctx, run_dir, state_dir)

    def act(client: OperatorClient) -> list[Outcome]:
        _check_names(client, names, "killed", must_exist=True)

        def one(name: str) -> None:
            client.call("kill", {"name": name}, StopReceipt, wait_s=LIFECYCLE_WAIT_S)

        return _apply(names, one)

    _report(call_daemon(ctx, act), "killed", json=json, table=False)


def rebuild(
    ctx: typer.Context,
    names: Names,
    role: Annotated[str | None, typer.Option(help="New role: committed to main first.")] = None,
    driver: Annotated[Driver | None, typer.Option(help="New driver: committed to main first.")] = None,
    network: Annotated[
        bool | None, typer.Option("--network/--no-network", help="Share the host's network: committed first.")
    ] = None,
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Rebuild agents: stop, re-create the socket, start again; new settings are committed to main first."""
    use_dirs(ctx, run_dir, state_dir)
    arguments: dict[str, Any] = {}
    if role is not None:
        arguments["role"] = role
    if driver is not None:
        arguments["driver"] = driver.value
    if network is not None:
        arguments["network"] = network

    def act(client: OperatorClient) -> list[Outcome]:
        _check_names(client, names, "rebuilt", must_exist=True)
        return _apply(
            names, lambda name: client.call("rebuild", {"name": name, **arguments}, AgentInfo, wait_s=LIFECYCLE_WAIT_S)
        )

    _report(call_daemon(ctx, act), "rebuilt", json=json)


def list_agents(ctx: typer.Context, json: Json = False, run_dir: RunDir = None, state_dir: StateDir = None) -> None:
    """Show the hive: every agent's state, pid, uptime and unread count."""
    use_dirs(ctx, run_dir, state_dir)
    agents = call_daemon(ctx, lambda client: client.call("list_agents", {}, AgentList).agents)
    if json:
        print_json(agents)
    else:
        console.print(agents_table(agents))


def status(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="The agent's name; none: the hive as a whole.")] = None,
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Show one agent in detail, or the hive as a whole (daemon, database, disk, warnings)."""
    use_dirs(ctx, run_dir, state_dir)
    info: Any
    if name is None:
        info = call_daemon(ctx, lambda client: client.call("hive_status", {}, HiveStatus))
        render: Literal["hive", "agent"] = "hive"
    else:
        info = call_daemon(ctx, lambda client: client.call("agent_status", {"name": name}, AgentInfo))
        render = "agent"
    if json:
        print_json(info)
    elif render == "hive":
        console.print(hive_panel(info))
    else:
        console.print(agent_panel(info))


def logs(
    ctx: typer.Context,
    name: Name,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events as they come.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, max=1000, help="How many recent events.")] = 50,
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Show an agent's turn events: claude's text, tool calls and results, errors, cost and duration."""
    use_dirs(ctx, run_dir, state_dir)

    def act(client: OperatorClient) -> None:
        page = client.call("agent_logs", {"name": name, "limit": lines}, EventList)
        if not json:
            # an agent on a repository: its branch and commits first, as the repository has them now
            branch = client.call("agent_status", {"name": name}, AgentInfo).branch
            if branch is not None:
                for part in ("branch", "commits"):
                    console.print(Text(f"{part}: ", style="dim") + branch_text(branch, part), soft_wrap=True)
        show(page)
        while follow:
            arguments = {"name": name, "after": page.last_id or 0, "limit": 1000, "wait_s": FOLLOW_WAIT_S}
            page = client.call("agent_logs", arguments, EventList, wait_s=FOLLOW_WAIT_S)
            show(page)

    def show(page: EventList) -> None:
        for event in page.events:
            if json:
                print_json(event, compact=True)
            else:
                console.print(event_line(event), soft_wrap=True)

    try:
        call_daemon(ctx, act)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
