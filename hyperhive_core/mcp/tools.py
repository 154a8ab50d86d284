"""The toolsets: what each principal's MCP server offers, built per principal so identity is fixed.

An agent's server knows only that agent's name (taken from the socket it listens on), so nothing
in a request can claim another identity. Tools are thin: validate, call the hive, return a model.
Their docstrings are the descriptions a model reads. `HiveError` becomes a tool error in one place.
"""

import json
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult
from pydantic import Field

from hyperhive_core.broker.events import MAX_EVENTS_PER_CALL
from hyperhive_core.broker.models import EventRow
from hyperhive_core.errors import HiveError, NotPermittedError
from hyperhive_core.hive import Hive, message_view
from hyperhive_core.mcp.connection import current_connection
from hyperhive_core.mcp.models import (
    MAX_RECV_BATCH,
    MAX_RECV_TIMEOUT_S,
    AgentInfo,
    AgentList,
    EventList,
    EventReceipt,
    EventView,
    Identity,
    InboxView,
    PeerList,
    RecvResult,
    SendReceipt,
    ShutdownReceipt,
    StopReceipt,
)
from hyperhive_core.names import MANAGER, OPERATOR
from hyperhive_core.states import MessageState

AGENT_INSTRUCTIONS = """\
You are {name}, an agent in a hyperhive: a group of Claude Code agents that talk by messages.
Call recv to wait for messages addressed to you, send to message another agent or the operator
(the human running the hive), peers to see who is there, inbox to peek without consuming.
Reply to a message by passing its id as reply_to."""

MANAGER_INSTRUCTIONS = """\
You are hm1nd, the manager of a hyperhive: a group of Claude Code agents that talk by messages.
Besides the agent tools (recv, send, inbox, whoami, peers) you can grow and shrink the hive:
spawn, kill and rebuild agents, and see them with list_agents and agent_status. Split work among
agents, keep their conversations bounded, and report to the operator."""

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
After = Annotated[
    int | None,
    Field(
        description="Your cursor: the id of the last message you finished. Acknowledges it and every earlier one "
        "you were given; what you are given from now on comes back to you if your session ends before a later "
        "cursor covers it. Leave it out to take messages for good."
    ),
]
MaxBatch = Annotated[int, Field(ge=1, le=MAX_RECV_BATCH, description="Most messages to take in one call.")]
PeekLimit = Annotated[int, Field(ge=0, le=MAX_RECV_BATCH, description="Most queued messages to show.")]
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
Events = Annotated[
    list[dict[str, Any]],
    Field(max_length=MAX_EVENTS_PER_CALL, description="Turn events (claude stream-json objects), oldest first."),
]
# The tools only a supervisor has: an agent asking for one is told who can, not just "unknown tool".
PRIVILEGED_TOOLS = frozenset(
    {"spawn", "spawn_manager", "kill", "rebuild", "list_agents", "agent_status", "agent_logs", "shutdown"}
)


class AgentServer(MCPServer[Any]):
    """An agent's MCP server: refuses the manager's and operator's tools with an explanation."""

    def __init__(self, principal: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.principal = principal

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """Run a tool, or explain why a privileged one is not this agent's."""
        if name in PRIVILEGED_TOOLS:
            refusal = NotPermittedError(
                self.principal,
                f"call {name}",
                f"only the manager ({MANAGER}) and the operator change or inspect the hive; "
                f"send your request to {MANAGER} or to the operator",
            )
            raise ToolError(str(refusal))
        return await super().call_tool(name, arguments, context)


S = TypeVar("S", bound=MCPServer[Any])


def _lean(server: S) -> S:
    """Drop the SDK's built-in middleware: a tracing span per request and the request-state seal.

    Nothing here exports OpenTelemetry traces and no tool of ours uses request state (the
    2026-07-28 multi-round flow), yet the two cost about a fifth of the daemon's time per call
    under load (measured with benchmarks/run.py: throughput ~490 -> ~600 msg/s).
    """
    server.middleware.clear()
    return server


@contextmanager
def tool_errors() -> Generator[None]:
    """Turn a `HiveError` into the tool error the caller sees; the message says what to do."""
    try:
        yield
    except HiveError as exc:
        raise ToolError(str(exc)) from exc


@dataclass(slots=True)
class _Leases:
    """What one connection was handed by cursor-acknowledging recvs and has not acknowledged yet."""

    ids: set[int] = field(default_factory=set[int])


def _track_leases(hive: Hive, principal: str, after: int, handed_out: list[int]) -> None:
    connection = current_connection()
    if connection is None:  # an in-process call (tests): no session whose end could release them
        return
    leases = connection.state.get(principal)
    if not isinstance(leases, _Leases):
        held = leases = _Leases()
        connection.state[principal] = held

        async def release() -> None:
            await hive.broker.release(principal, sorted(held.ids))

        connection.on_close(release)
    leases.ids = {i for i in leases.ids if i > after} | set(handed_out)


def _register_messaging(server: MCPServer[Any], hive: Hive, principal: str) -> None:
    @server.tool()
    async def send(to: To, body: Body, reply_to: ReplyTo = None) -> SendReceipt:
        """Send a message; returns once it is stored durably, with its id."""
        with tool_errors():
            row = await hive.send(principal, to, body, reply_to=reply_to)
        view = message_view(row)
        return SendReceipt(id=view.id, recipient=view.recipient, created_at=view.created_at)

    @server.tool()
    async def recv(timeout_s: TimeoutS = 30.0, max: MaxBatch = 10, after: After = None) -> RecvResult:
        """Wait up to timeout_s for messages to you and take them (each message is handed out once)."""
        with tool_errors():
            rows = await hive.broker.recv(principal, timeout_s=timeout_s, limit=max, after=after)
            if after is not None:
                _track_leases(hive, principal, after, [r.id for r in rows if r.id is not None])
            counts = await hive.broker.counts(principal)
        return RecvResult(messages=[message_view(r) for r in rows], remaining=counts.get(MessageState.QUEUED, 0))

    @server.tool()
    async def whoami() -> Identity:
        """Your name in the hive, as the daemon knows it from your socket."""
        role = "operator" if principal == OPERATOR else "manager" if principal == MANAGER else "agent"
        return Identity(name=principal, role=role)

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


def _register_agent_extras(server: MCPServer[Any], hive: Hive, name: str) -> None:
    @server.tool()
    async def inbox(limit: PeekLimit = 20) -> InboxView:
        """Peek at your queued messages and counts without taking any."""
        with tool_errors():
            return await _inbox(hive, name, limit)

    @server.tool()
    async def report_events(events: Events) -> EventReceipt:
        """For the agent's turn loop, not for models: store this turn's events for the operator's logs."""
        with tool_errors():
            return EventReceipt(stored=await hive.events.append(name, events))


def build_agent_server(name: str, hive: Hive) -> MCPServer[Any]:
    """The MCP server on agent `name`'s socket: messaging for that agent only (the manager's for hm1nd)."""
    if name == MANAGER:
        return build_manager_server(hive)
    server = _lean(AgentServer(name, name="hyperhive", instructions=AGENT_INSTRUCTIONS.format(name=name)))
    _register_messaging(server, hive, name)
    _register_agent_extras(server, hive, name)
    return server


def build_manager_server(hive: Hive) -> MCPServer[Any]:
    """The MCP server on hm1nd's socket: the agent tools plus spawn, kill, rebuild, list_agents, agent_status."""
    server = _lean(MCPServer[Any](name="hyperhive-manager", instructions=MANAGER_INSTRUCTIONS))
    _register_messaging(server, hive, MANAGER)
    _register_agent_extras(server, hive, MANAGER)
    _register_lifecycle(server, hive, MANAGER)
    return server


def _event_view(row: EventRow) -> EventView:
    assert row.id is not None, "a stored event has an id"
    return EventView(
        id=row.id, created_at=datetime.fromtimestamp(row.created_at, UTC), type=row.type, data=json.loads(row.data)
    )


def _register_lifecycle(server: MCPServer[Any], hive: Hive, actor: str) -> None:
    """The lifecycle tools; the manager's calls apply directly until approvals turn them into proposals."""

    def refuse_self(name: str, verb: str) -> None:
        if actor == MANAGER and name == MANAGER:
            raise NotPermittedError(MANAGER, f"{verb} itself", "only the operator can do that")

    @server.tool()
    async def spawn(
        name: AgentName,
        role: Role = "",
        driver: DriverName = "auto",
        memory_mb: MemoryMb = None,
        pids: Pids = None,
        cpus: Cpus = None,
    ) -> AgentInfo:
        """Add an agent to the hive and start it."""
        with tool_errors():
            return await hive.spawn(name, role=role, driver=driver, memory_mb=memory_mb, pids=pids, cpus=cpus)

    @server.tool()
    async def kill(name: AgentName) -> StopReceipt:
        """Stop an agent and remove it (its socket too); its message history stays."""
        with tool_errors():
            refuse_self(name, "kill")
            await hive.kill(name)
        return StopReceipt(name=name, removed=True)

    @server.tool()
    async def rebuild(name: AgentName) -> AgentInfo:
        """Reconcile an agent: stop it, re-create its socket, start it again."""
        with tool_errors():
            refuse_self(name, "rebuild")
            return await hive.rebuild(name)

    @server.tool()
    async def list_agents() -> AgentList:
        """Every agent: state, pid, uptime, unread count, and any runaway-guard throttle."""
        with tool_errors():
            return AgentList(agents=await hive.list())

    @server.tool()
    async def agent_status(name: AgentName) -> AgentInfo:
        """One agent: state, pid, uptime, unread count, role, and why it is in that state."""
        with tool_errors():
            return await hive.status(name)


def build_operator_server(hive: Hive, *, stop_requested: anyio.Event) -> MCPServer[Any]:
    """The MCP server on host.sock: the operator's whole console, applied directly."""
    server = _lean(MCPServer[Any](name="hyperhive-operator", instructions=OPERATOR_INSTRUCTIONS))
    _register_messaging(server, hive, OPERATOR)

    @server.tool()
    async def inbox(agent: Annotated[str, Field(description="Whose inbox; default the operator's.")] = OPERATOR,
                    limit: PeekLimit = 20) -> InboxView:  # fmt: skip
        """Peek at any agent's (or your own) queued messages and counts without taking any."""
        with tool_errors():
            if agent != OPERATOR:
                await hive.status(agent)
            return await _inbox(hive, agent, limit)

    _register_lifecycle(server, hive, OPERATOR)

    @server.tool()
    async def spawn_manager(role: Role = "", driver: DriverName = "auto") -> AgentInfo:
        """Start the manager agent hm1nd, whose socket offers the lifecycle tools."""
        with tool_errors():
            return await hive.spawn_manager(role=role, driver=driver)

    @server.tool()
    async def agent_logs(
        name: AgentName,
        after: Annotated[int | None, Field(description="Only events after this id; none: the newest.")] = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="Most events to return.")] = 200,
        wait_s: Annotated[float, Field(ge=0, le=MAX_RECV_TIMEOUT_S, description="Wait for a first event.")] = 0.0,
    ) -> EventList:
        """An agent's turn events (claude's tool calls, text, errors, cost), oldest first."""
        with tool_errors():
            if name not in hive.agent_names:
                await hive.status(name)
            rows = await hive.events.read(name, after=after, limit=limit, wait_s=wait_s)
        return EventList(agent=name, events=[_event_view(r) for r in rows], last_id=rows[-1].id if rows else after)

    @server.tool()
    async def shutdown() -> ShutdownReceipt:
        """Stop the daemon: agents are stopped, messages stay stored, the hive comes back on the next serve."""
        stop_requested.set()
        return ShutdownReceipt(stopping=True)

    return server
