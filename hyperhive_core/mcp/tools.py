"""The toolsets: what each principal's MCP server offers, built per principal so identity is fixed.

An agent's server knows only that agent's name (taken from the socket it listens on), so nothing
in a request can claim another identity. Tools are thin: validate, call the hive, return a model.
Their docstrings are the descriptions a model reads. `HiveError` becomes a tool error in one place.
"""

from collections.abc import Generator
from contextlib import contextmanager
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from hyperhive_core.broker.models import MessageState
from hyperhive_core.errors import HiveError
from hyperhive_core.hive import Hive, message_view
from hyperhive_core.mcp.models import (
    AgentInfo,
    AgentList,
    Identity,
    InboxView,
    PeerList,
    RecvResult,
    SendReceipt,
    StopReceipt,
)
from hyperhive_core.names import OPERATOR

MAX_RECV_TIMEOUT_S = 600.0
MAX_RECV_BATCH = 100

AGENT_INSTRUCTIONS = """\
You are {name}, an agent in a hyperhive: a group of Claude Code agents that talk by messages.
Call recv to wait for messages addressed to you, send to message another agent or the operator
(the human running the hive), peers to see who is there, inbox to peek without consuming.
Reply to a message by passing its id as reply_to."""

OPERATOR_INSTRUCTIONS = """\
The operator's console of a hyperhive: spawn, kill, rebuild and inspect agents, send messages as
'operator', receive the agents' replies, and peek at any agent's inbox."""

To = Annotated[str, Field(description="Recipient: an agent name (see the peers tool) or 'operator'.")]
Body = Annotated[str, Field(description="The message text (at most 64 KiB by default).")]
ReplyTo = Annotated[
    int | None, Field(description="Id of the message you are answering (from recv); marks it acknowledged.")
]
TimeoutS = Annotated[
    float, Field(ge=0, le=MAX_RECV_TIMEOUT_S, description="Seconds to wait for a first message; 0 returns at once.")
]
MaxBatch = Annotated[int, Field(ge=1, le=MAX_RECV_BATCH, description="Most messages to take in one call.")]
PeekLimit = Annotated[int, Field(ge=0, le=MAX_RECV_BATCH, description="Most queued messages to show.")]
AgentName = Annotated[str, Field(description="The agent's name: lowercase letters, digits, '-', at most 9 characters.")]


@contextmanager
def tool_errors() -> Generator[None]:
    """Turn a `HiveError` into the tool error the caller sees; the message says what to do."""
    try:
        yield
    except HiveError as exc:
        raise ToolError(str(exc)) from exc


def _register_messaging(server: MCPServer[Any], hive: Hive, principal: str) -> None:
    @server.tool()
    async def send(to: To, body: Body, reply_to: ReplyTo = None) -> SendReceipt:
        """Send a message; returns once it is stored durably, with its id."""
        with tool_errors():
            row = await hive.send(principal, to, body, reply_to=reply_to)
        view = message_view(row)
        return SendReceipt(id=view.id, recipient=view.recipient, created_at=view.created_at)

    @server.tool()
    async def recv(timeout_s: TimeoutS = 30.0, max: MaxBatch = 10) -> RecvResult:
        """Wait up to timeout_s for messages to you and take them (each message is handed out once)."""
        with tool_errors():
            rows = await hive.broker.recv(principal, timeout_s=timeout_s, limit=max)
            counts = await hive.broker.counts(principal)
        return RecvResult(messages=[message_view(r) for r in rows], remaining=counts.get(MessageState.QUEUED, 0))

    @server.tool()
    async def whoami() -> Identity:
        """Your name in the hive, as the daemon knows it from your socket."""
        return Identity(name=principal, role="operator" if principal == OPERATOR else "agent")

    @server.tool()
    async def peers() -> PeerList:
        """Everyone you can send to, with their state."""
        with tool_errors():
            return PeerList(peers=await hive.peers(principal))


async def _inbox(hive: Hive, agent: str, limit: int) -> InboxView:
    rows = await hive.broker.peek(agent, limit)
    counts = await hive.broker.counts(agent)
    return InboxView(
        agent=agent,
        queued=counts.get(MessageState.QUEUED, 0),
        delivered=counts.get(MessageState.DELIVERED, 0),
        messages=[message_view(r) for r in rows],
    )


def build_agent_server(name: str, hive: Hive) -> MCPServer[Any]:
    """The MCP server on agent `name`'s socket: messaging for that agent only."""
    server: MCPServer[Any] = MCPServer(name="hyperhive", instructions=AGENT_INSTRUCTIONS.format(name=name))
    _register_messaging(server, hive, name)

    @server.tool()
    async def inbox(limit: PeekLimit = 20) -> InboxView:
        """Peek at your queued messages and counts without taking any."""
        with tool_errors():
            return await _inbox(hive, name, limit)

    return server


def build_operator_server(hive: Hive, *, stop_requested: anyio.Event) -> MCPServer[Any]:
    """The MCP server on host.sock: the operator's whole console, applied directly."""
    server: MCPServer[Any] = MCPServer(name="hyperhive-operator", instructions=OPERATOR_INSTRUCTIONS)
    _register_messaging(server, hive, OPERATOR)

    @server.tool()
    async def inbox(agent: Annotated[str, Field(description="Whose inbox; default the operator's.")] = OPERATOR,
                    limit: PeekLimit = 20) -> InboxView:  # fmt: skip
        """Peek at any agent's (or your own) queued messages and counts without taking any."""
        with tool_errors():
            if agent != OPERATOR:
                await hive.status(agent)
            return await _inbox(hive, agent, limit)

    @server.tool()
    async def spawn(name: AgentName) -> AgentInfo:
        """Add an agent to the hive and start it."""
        with tool_errors():
            return await hive.spawn(name)

    @server.tool()
    async def kill(name: AgentName) -> StopReceipt:
        """Stop an agent and remove it (its socket too); its message history stays."""
        with tool_errors():
            await hive.kill(name)
        return StopReceipt(name=name, removed=True)

    @server.tool()
    async def rebuild(name: AgentName) -> AgentInfo:
        """Reconcile an agent: stop it, re-create its socket, start it again."""
        with tool_errors():
            return await hive.rebuild(name)

    @server.tool()
    async def list_agents() -> AgentList:
        """Every agent: state, pid, uptime and unread count."""
        with tool_errors():
            return AgentList(agents=await hive.list())

    @server.tool()
    async def agent_status(name: AgentName) -> AgentInfo:
        """One agent: state, pid, uptime, unread count and why it is in that state."""
        with tool_errors():
            return await hive.status(name)

    @server.tool()
    async def shutdown() -> str:
        """Stop the daemon: agents are stopped, messages stay stored, the hive comes back on the next serve."""
        stop_requested.set()
        return "shutting down"

    return server
