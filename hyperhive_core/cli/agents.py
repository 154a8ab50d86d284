"""The agent verbs of hivectl: spawn, kill, rebuild, list, status, logs."""

from enum import StrEnum
from typing import Annotated

import typer

from hyperhive_core.cli._client import OperatorClient
from hyperhive_core.cli._common import Json, call_daemon, console, fail, print_json
from hyperhive_core.cli._render import agent_panel, agents_table, event_line
from hyperhive_core.mcp.models import AgentInfo, AgentList, EventList, StopReceipt

FOLLOW_WAIT_S = 30.0


class Driver(StrEnum):
    """How an agent answers its messages."""

    AUTO = "auto"
    CLAUDE = "claude"
    ECHO = "echo"


Names = Annotated[list[str], typer.Argument(help="Agent names: lowercase letters, digits, '-', at most 9.")]
Name = Annotated[str, typer.Argument(help="The agent's name.")]


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
    json: Json = False,
) -> None:
    """Add agents to the hive and start them; --manager starts the manager, hm1nd."""
    if manager == bool(names):
        raise fail("give agent names, or --manager alone")

    def act(client: OperatorClient) -> list[AgentInfo]:
        if manager:
            return [client.call("spawn_manager", {"role": role, "driver": driver.value}, AgentInfo)]
        limits = {k: v for k, v in (("memory_mb", memory_mb), ("pids", pids), ("cpus", cpus)) if v is not None}
        arguments = [{"name": name, "role": role, "driver": driver.value, **limits} for name in names or ()]
        return [client.call("spawn", a, AgentInfo) for a in arguments]

    spawned = call_daemon(ctx, act)
    if json:
        print_json(spawned)
    else:
        console.print(agents_table(spawned))


def kill(ctx: typer.Context, names: Names, json: Json = False) -> None:
    """Stop agents and remove them (their sockets too); their message history stays."""

    def act(client: OperatorClient) -> list[StopReceipt]:
        return [client.call("kill", {"name": name}, StopReceipt) for name in names]

    killed = call_daemon(ctx, act)
    if json:
        print_json(killed)
    else:
        for receipt in killed:
            console.print(f"killed {receipt.name}", markup=False)


def rebuild(ctx: typer.Context, names: Names, json: Json = False) -> None:
    """Reconcile agents: stop, re-create the socket, start again (idempotent)."""

    def act(client: OperatorClient) -> list[AgentInfo]:
        return [client.call("rebuild", {"name": name}, AgentInfo) for name in names]

    rebuilt = call_daemon(ctx, act)
    if json:
        print_json(rebuilt)
    else:
        console.print(agents_table(rebuilt))


def list_agents(ctx: typer.Context, json: Json = False) -> None:
    """Show the hive: every agent's state, pid, uptime and unread count."""
    agents = call_daemon(ctx, lambda client: client.call("list_agents", {}, AgentList).agents)
    if json:
        print_json(agents)
    else:
        console.print(agents_table(agents))


def status(ctx: typer.Context, name: Name, json: Json = False) -> None:
    """Show one agent in detail."""

    def act(client: OperatorClient) -> AgentInfo:
        return client.call("agent_status", {"name": name}, AgentInfo)

    info = call_daemon(ctx, act)
    if json:
        print_json(info)
    else:
        console.print(agent_panel(info))


def logs(
    ctx: typer.Context,
    name: Name,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events as they come.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, max=1000, help="How many recent events.")] = 50,
    json: Json = False,
) -> None:
    """Show an agent's turn events: claude's text, tool calls and results, errors, cost and duration."""

    def act(client: OperatorClient) -> None:
        page = client.call("agent_logs", {"name": name, "limit": lines}, EventList)
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
