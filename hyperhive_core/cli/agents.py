"""The agent verbs of hivectl: spawn, kill, rebuild, list, status."""

from typing import Annotated

import typer

from hyperhive_core.cli._common import Json, call_daemon, console, print_json
from hyperhive_core.cli._render import agent_panel, agents_table
from hyperhive_core.client import HiveClient
from hyperhive_core.mcp.models import AgentInfo, StopReceipt

Names = Annotated[list[str], typer.Argument(help="Agent names: lowercase letters, digits, '-', at most 9.")]
Name = Annotated[str, typer.Argument(help="The agent's name.")]


def spawn(ctx: typer.Context, names: Names, json: Json = False) -> None:
    """Add agents to the hive and start them."""

    async def act(client: HiveClient) -> list[AgentInfo]:
        return [await client.spawn(name) for name in names]

    spawned = call_daemon(ctx, act)
    if json:
        print_json(spawned)
    else:
        console.print(agents_table(spawned))


def kill(ctx: typer.Context, names: Names, json: Json = False) -> None:
    """Stop agents and remove them (their sockets too); their message history stays."""

    async def act(client: HiveClient) -> list[StopReceipt]:
        return [await client.kill(name) for name in names]

    killed = call_daemon(ctx, act)
    if json:
        print_json(killed)
    else:
        for receipt in killed:
            console.print(f"killed {receipt.name}", markup=False)


def rebuild(ctx: typer.Context, names: Names, json: Json = False) -> None:
    """Reconcile agents: stop, re-create the socket, start again (idempotent)."""

    async def act(client: HiveClient) -> list[AgentInfo]:
        return [await client.rebuild(name) for name in names]

    rebuilt = call_daemon(ctx, act)
    if json:
        print_json(rebuilt)
    else:
        console.print(agents_table(rebuilt))


def list_agents(ctx: typer.Context, json: Json = False) -> None:
    """Show the hive: every agent's state, pid, uptime and unread count."""
    agents = call_daemon(ctx, HiveClient.list_agents)
    if json:
        print_json(agents)
    else:
        console.print(agents_table(agents))


def status(ctx: typer.Context, name: Name, json: Json = False) -> None:
    """Show one agent in detail."""

    async def act(client: HiveClient) -> AgentInfo:
        return await client.status(name)

    info = call_daemon(ctx, act)
    if json:
        print_json(info)
    else:
        console.print(agent_panel(info))
