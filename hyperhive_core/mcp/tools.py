"""The toolsets: what each principal's MCP server offers, built per principal so identity is fixed.

An agent's server knows only that agent's name (taken from the socket it listens on), so nothing
in a request can claim another identity. Tools are thin: validate, call the hive, return a model.
Their docstrings are the descriptions a model reads. `HiveError` becomes a tool error in one place.
"""

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.request_state import RequestStateBoundary
from mcp_types import CallToolResult, InputRequiredResult
from pydantic import Field, ValidationError

from hyperhive_agent import wire
from hyperhive_core.approvals.control import HiveControl
from hyperhive_core.broker.database import backup_database
from hyperhive_core.broker.events import MAX_EVENTS_PER_CALL
from hyperhive_core.broker.models import EventRow
from hyperhive_core.broker.readers import ReaderKey, unnamed_reader
from hyperhive_core.budget.limits import HIVE_SCOPE
from hyperhive_core.budget.views import limits_view, pause_reason, scope_view, usage_view
from hyperhive_core.errors import ConfigError, NotPermittedError
from hyperhive_core.hive import Hive, message_view
from hyperhive_core.mcp._params import AgentName, tool_errors
from hyperhive_core.mcp.connection import Connection, connection_lifespan, connection_of
from hyperhive_core.mcp.lifecycle_tools import register_manager_lifecycle, register_operator_lifecycle
from hyperhive_core.mcp.models import (
    MAX_RECV_BATCH,
    MAX_RECV_TIMEOUT_S,
    AckReceipt,
    BackupReceipt,
    BudgetList,
    BudgetView,
    EventList,
    EventReceipt,
    EventView,
    HiveStatus,
    Identity,
    InboxView,
    PeerList,
    RecvResult,
    Refusal,
    SendReceipt,
    ShutdownReceipt,
)
from hyperhive_core.names import MANAGER, OPERATOR
from hyperhive_core.states import MessageState

logger = logging.getLogger(__name__)

# What reaches the model (claude puts a server's instructions in its system prompt): they name only
# tools the model is given. The turn loop's own tools (it fetches messages and reports events for
# the model) are hidden from claude, so they must not be named here.
AGENT_INSTRUCTIONS = """\
You are {name}, an agent in a hyperhive: a group of Claude Code agents that talk by messages.
Messages addressed to you arrive in your prompt, each with its id and sender. Use send to answer
one (pass its id as reply_to) or to message another agent or the operator (the human running the
hive), peers to see who is there, and inbox to peek at what waits for you."""

MANAGER_INSTRUCTIONS = """\
You are hm1nd, the manager of a hyperhive: a group of Claude Code agents that talk by messages.
Besides the agent tools (send, inbox, whoami, peers) you can propose to grow and shrink the hive:
spawn, kill, rebuild and propose (new settings) each return a proposal id at once, and the change
happens only when the operator approves it; the operator's message tells you the outcome, and
proposals lists yours. See the hive with list_agents and agent_status. Split work among agents,
keep their conversations bounded, and report to the operator."""

OPERATOR_INSTRUCTIONS = """\
The operator's console of a hyperhive: spawn, kill, rebuild and inspect agents (each change is a
commit to the state repo's main, then reconciled), decide the manager's proposals (approvals,
approve, deny), see the plan, send messages as 'operator', and peek at any agent's inbox."""

To = Annotated[str, Field(description="Recipient: an agent name (see the peers tool) or 'operator'.")]
Body = Annotated[str, Field(description="The message text (at most 64 KiB by default).")]
ReplyTo = Annotated[
    int | None,
    Field(
        ge=1,
        le=wire.MAX_MESSAGE_ID,
        description="Id of the message you are answering (from recv); marks it acknowledged.",
    ),
]
Key = Annotated[
    str | None,
    Field(
        pattern=wire.KEY_PATTERN,
        description="Idempotency key (printable ASCII, at most 128): a repeated send with the same key is stored "
        "once and returns the first one's id; use it to retry a send safely.",
    ),
]
TimeoutS = Annotated[
    float, Field(ge=0, le=MAX_RECV_TIMEOUT_S, description="Seconds to wait for a first message; 0 returns at once.")
]
After = Annotated[
    int | None,
    Field(
        ge=0,
        le=wire.MAX_MESSAGE_ID,
        description="Your cursor: the id of the last message you finished. Acknowledges it and every earlier one "
        "this reader was given; what it is given from now on comes back if it goes away before a later cursor "
        "covers it. Leave it out to take messages for good.",
    ),
]
Reader = Annotated[
    str | None,
    Field(
        pattern=wire.READER_PATTERN,
        description="Name this reader so its leases survive a reconnect: when it comes back under the same name, "
        "it is handed first what it held beyond its cursor. Without a name, the reader is this connection.",
    ),
]
AckIds = Annotated[
    list[Annotated[int, Field(ge=1, le=wire.MAX_MESSAGE_ID)]],
    Field(min_length=1, max_length=wire.MAX_ACK_IDS, description="Ids of messages recv handed you."),
]
MaxBatch = Annotated[int, Field(ge=1, le=MAX_RECV_BATCH, description="Most messages to take in one call.")]
PeekLimit = Annotated[int, Field(ge=0, le=MAX_RECV_BATCH, description="Most queued messages to show.")]
Events = Annotated[
    list[dict[str, Any]],
    Field(max_length=MAX_EVENTS_PER_CALL, description="Turn events (claude stream-json objects), oldest first."),
]
UsdLimit = Annotated[
    float | None, Field(ge=0, le=1_000_000, description="US dollars; 0 pauses at once; leave out to keep it.")
]
TokenLimit = Annotated[
    int | None, Field(ge=0, le=10**15, description="Tokens (all kinds); 0 pauses at once; leave out to keep it.")
]
# The tools only a supervisor has: an agent asking for one is told who can, not just "unknown tool".
PRIVILEGED_TOOLS = frozenset(
    {"spawn", "spawn_manager", "kill", "rebuild", "list_agents", "agent_status", "agent_logs", "shutdown"}
    | {"propose", "proposals", "approvals", "approval", "approve", "deny", "plan", "reconcile", "suspend", "resume"}
    | {"rollback", "place", "drain"}
)
# The operator's alone: an agent (the manager too) must not raise its own budget.
OPERATOR_TOOLS = frozenset({"budgets", "set_budget"})


class HiveServer(MCPServer[Any]):
    """A principal's MCP server: its identity fixed, every refusal in words that say what to do.

    Every `send` call counts against its sender's rate before anything else, refused calls too.
    A call with arguments outside the tool's schema is refused naming the field and the bound; a
    tool that crashes is logged (rate-limited) and answered without a traceback.
    """

    def __init__(self, principal: str, hive: Hive, **kwargs: Any) -> None:
        # One lifespan per connection the SDK serves: the state that ends with that connection.
        super().__init__(lifespan=connection_lifespan, **kwargs)
        self.principal = principal
        self.hive = hive

    def refuse(self, name: str) -> str | None:
        """Why `name` is not this principal's tool, or None when it is."""
        return None

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """Run a tool as this principal; a refused `send` is counted and remembered."""
        if (refusal := self.refuse(name)) is not None:
            raise ToolError(refusal)
        if name != wire.SEND:
            return await self._call(name, arguments, context)
        recipient = str(arguments.get("to", ""))[: wire.MAX_READER_CHARS]
        try:
            with tool_errors():
                self.hive.guard.attempt(self.principal)
            return await self._call(name, arguments, context)
        except ToolError as exc:
            await self.hive.refused(self.principal, recipient, str(exc))
            raise

    async def _call(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError as exc:
            logger.error("tool %s of %s crashed: %r", name, self.principal, exc.__cause__)
            raise ToolError(
                f"{name} failed inside the daemon ({type(exc.__cause__).__name__}); nothing was changed by the "
                "failed part: try again, and if it fails again tell the operator (the daemon's log has it)"
            ) from exc
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(_invalid_arguments(name, exc.__cause__)) from exc
            raise


def _invalid_arguments(tool: str, error: ValidationError) -> str:
    problems: list[str] = []
    for item in error.errors(include_url=False)[:5]:
        field_name = ".".join(str(part) for part in item["loc"]) or "arguments"
        got = repr(item.get("input"))
        got = got if len(got) <= 60 else got[:57] + "..."
        problems.append(f"{field_name}: {item['msg']} (got {got})")
    return f"{tool}: invalid arguments: {'; '.join(problems)}; see the tool's input schema and call again"


class AgentServer(HiveServer):
    """An agent's MCP server: refuses the manager's and operator's tools with an explanation."""

    def refuse(self, name: str) -> str | None:
        """The supervisors' tools are not an agent's: say who can."""
        if name in OPERATOR_TOOLS:
            return str(NotPermittedError(self.principal, f"call {name}", "only the operator sees and sets budgets"))
        if name not in PRIVILEGED_TOOLS:
            return None
        refusal = NotPermittedError(
            self.principal,
            f"call {name}",
            f"only the manager ({MANAGER}) and the operator change or inspect the hive; "
            f"send your request to {MANAGER} or to the operator",
        )
        return str(refusal)


S = TypeVar("S", bound=MCPServer[Any])
# The SDK's built-in middleware we run without, by type: anything else (a security layer added
# upstream) stays, and is logged so it is noticed.
LEAN_WITHOUT = (OpenTelemetryMiddleware, RequestStateBoundary)


def _lean(server: S) -> S:
    """Drop two of the SDK's built-in middlewares: a tracing span per request and the request-state seal.

    Nothing here exports OpenTelemetry traces and no tool of ours uses request state (the
    2026-07-28 multi-round flow), yet the two cost about a fifth of the daemon's time per call
    under load (measured with benchmarks/run.py: throughput ~490 -> ~600 msg/s).
    """
    kept = [m for m in server.middleware if not isinstance(m, LEAN_WITHOUT)]
    for middleware in kept:
        logger.info("keeping the SDK's middleware %s", type(middleware).__name__)
    server.middleware[:] = kept
    return server


class _Readers(set[ReaderKey]):
    """The readers a connection has read as."""


def _reader(hive: Hive, connection: Connection, principal: str, name: str | None) -> tuple[str, bool]:
    """The reader a cursor recv reads as, and whether it just (re)attached on this connection.

    Per-connection state lives with the connection the call came in on: when it ends, an unnamed
    reader's leases go back to the queue, and a named reader's are held for it if this was its
    last connection.
    """
    key = ReaderKey(principal, name or unnamed_reader(hive.boot_id, connection.id))
    readers = connection.state.setdefault("readers", _Readers())
    assert isinstance(readers, _Readers)
    if key in readers:
        return key.reader, False
    if len(readers) >= wire.MAX_READERS_PER_CONNECTION:
        raise ToolError(
            f"this connection already reads as {wire.MAX_READERS_PER_CONNECTION} readers; a connection may not "
            "read as more: reuse a reader name, or open another connection"
        )
    readers.add(key)
    if key.named:
        hive.readers.attach(key)

    async def let_go() -> None:
        if not key.named:
            await hive.broker.release_reader(key.principal, key.reader)
        elif hive.readers.detach(key):
            await hive.broker.hold_reader(key.principal, key.reader)

    connection.on_close(let_go)
    return key.reader, key.named


def _register_messaging(server: MCPServer[Any], hive: Hive, principal: str) -> None:
    @server.tool()
    async def send(to: To, body: Body, reply_to: ReplyTo = None, key: Key = None) -> SendReceipt:
        """Send a message; returns once it is stored durably, with its id."""
        with tool_errors():
            appended = await hive.send(principal, to, body, reply_to=reply_to, key=key)
        hive.failpoint("send-committed")
        view = message_view(appended.row)
        return SendReceipt(id=view.id, recipient=view.recipient, created_at=view.created_at)

    @server.tool()
    async def recv(
        ctx: Context[Connection, Any],
        timeout_s: TimeoutS = 30.0,
        max: MaxBatch = 10,
        after: After = None,
        reader: Reader = None,
    ) -> RecvResult:
        """Wait up to timeout_s for messages to you and take them (each message is handed out once)."""
        with tool_errors():
            if after is None and reader is None:
                got = await hive.broker.recv(principal, timeout_s=timeout_s, limit=max)
            else:
                name, returning = _reader(hive, connection_of(ctx), principal, reader)
                got = await hive.broker.recv(
                    principal, timeout_s=timeout_s, limit=max, after=after, reader=name, returning=returning
                )
            counts = await hive.broker.counts(principal)
        return RecvResult(
            messages=[message_view(r) for r in got.messages],
            remaining=counts.get(MessageState.QUEUED, 0),
            already_sent=[message_view(r) for r in got.already_sent],
        )

    @server.tool()
    async def ack(ids: AckIds) -> AckReceipt:
        """Acknowledge messages recv handed you: you are done with them, they are never handed out again."""
        with tool_errors():
            acked, not_yours = await hive.broker.ack(principal, ids)
        return AckReceipt(acked=acked, not_yours=not_yours)

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
    refused = [
        Refusal(sender=r.sender, recipient=r.recipient, reason=r.reason, at=datetime.fromtimestamp(r.at, UTC))
        for r in hive.refusals.to_recipient(agent)
    ]
    return InboxView(
        agent=agent,
        queued=counts.get(MessageState.QUEUED, 0),
        delivered=counts.get(MessageState.DELIVERED, 0),
        messages=[message_view(r) for r in rows],
        refused=refused,
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
        # noted first: whoever reads the stored events must find `status` already saying the same
        hive.note_events(name, events)
        with tool_errors():
            # the usage the events report is committed with them (no second fsync), then counted
            usage = hive.budgets.usage_rows(name, events)
            stored = await hive.events.append(name, events, also=usage)
            await hive.budgets.counted(name, usage)
            # after the events are stored: the branch's own event follows the turn's end in the log
            await hive.after_events(name, events)
        return EventReceipt(stored=stored)


def build_agent_server(name: str, hive: Hive, control: HiveControl) -> MCPServer[Any]:
    """The MCP server on agent `name`'s socket: messaging for that agent only (the manager's for hm1nd)."""
    if name == MANAGER:
        return build_manager_server(hive, control)
    server = _lean(AgentServer(name, hive, name="hyperhive", instructions=AGENT_INSTRUCTIONS.format(name=name)))
    _register_messaging(server, hive, name)
    _register_agent_extras(server, hive, name)
    return server


def build_manager_server(hive: Hive, control: HiveControl) -> MCPServer[Any]:
    """The MCP server on hm1nd's socket: the agent tools plus proposals (spawn, kill, rebuild, propose),
    proposals, list_agents and agent_status."""
    server = _lean(HiveServer(MANAGER, hive, name="hyperhive-manager", instructions=MANAGER_INSTRUCTIONS))
    _register_messaging(server, hive, MANAGER)
    _register_agent_extras(server, hive, MANAGER)
    register_manager_lifecycle(server, control)
    return server


def _event_view(row: EventRow) -> EventView:
    assert row.id is not None, "a stored event has an id"
    return EventView(
        id=row.id, created_at=datetime.fromtimestamp(row.created_at, UTC), type=row.type, data=json.loads(row.data)
    )


# Disk free under this many times the reserve, or a database this full of its cap, is a warning.
DISK_WARN_FACTOR = 4
DB_WARN_FRACTION = 0.9


async def hive_overview(hive: Hive) -> HiveStatus:
    """The hive as a whole, with warnings for what needs the operator's eye."""
    config = hive.config
    database_bytes = 0
    for suffix in ("", "-wal"):
        try:
            database_bytes += (await anyio.Path(str(config.broker_path) + suffix).stat()).st_size
        except FileNotFoundError:
            pass
    disk = hive.broker.disk
    free = disk.free_bytes()
    limit = config.max_db_mb * 1024 * 1024 if config.max_db_mb else None
    warnings: list[str] = []
    if free < disk.min_free_bytes * DISK_WARN_FACTOR:
        warnings.append(
            f"the disk is nearly full: {free // 2**20} MiB free; below {disk.min_free_bytes // 2**20} MiB new "
            "messages are refused (hivectl serve --min-free-mb)"
        )
    if limit is not None and database_bytes >= limit * DB_WARN_FRACTION:
        warnings.append(
            f"the database is at {database_bytes * 100 // limit}% of its limit (--max-db-mb {config.max_db_mb})"
        )
    warnings.extend(f"{t.sender}: {t.reason}" for t in hive.guard.throttles())
    budgets = hive.budgets
    spend = budgets.spend(HIVE_SCOPE)
    paused = [name for name in hive.agent_names if budgets.paused(name) is not None]
    if spend.paused is not None:
        warnings.append(f"every agent's turns are paused: {pause_reason(spend.paused)}")
    else:
        warnings.extend(f"{name}: turns paused: {pause_reason(budgets.paused(name))}" for name in paused)
    now = datetime.now(UTC)
    started = datetime.fromtimestamp(hive.started_at, UTC)
    return HiveStatus(
        pid=os.getpid(),
        started_at=started,
        uptime_s=round((now - started).total_seconds(), 3),
        run_dir=str(config.run_dir),
        state_dir=str(config.state_dir),
        backend=hive.backend.info.name,
        agents=len(hive.agent_names),
        messages=hive.broker.store.totals(),
        database_bytes=database_bytes,
        database_limit_bytes=limit,
        disk_free_bytes=free,
        min_free_bytes=disk.min_free_bytes,
        warnings=warnings,
        usage_today=usage_view(spend.today),
        usage_total=usage_view(spend.total),
        budget=limits_view(spend.limits),
        paused=paused,
    )


def build_operator_server(hive: Hive, control: HiveControl, *, stop_requested: anyio.Event) -> MCPServer[Any]:
    """The MCP server on host.sock: the operator's whole console, applied directly."""
    server = _lean(HiveServer(OPERATOR, hive, name="hyperhive-operator", instructions=OPERATOR_INSTRUCTIONS))
    _register_messaging(server, hive, OPERATOR)

    @server.tool()
    async def inbox(agent: Annotated[str, Field(description="Whose inbox; default the operator's.")] = OPERATOR,
                    limit: PeekLimit = 20) -> InboxView:  # fmt: skip
        """Peek at any agent's (or your own) queued messages and counts without taking any."""
        with tool_errors():
            if agent != OPERATOR:
                await hive.status(agent)
            return await _inbox(hive, agent, limit)

    register_operator_lifecycle(server, control)

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
    async def hive_status() -> HiveStatus:
        """The hive as a whole: daemon, database and disk, message counts, main, and warnings."""
        with tool_errors():
            status = await hive_overview(hive)
            await control.describe_hive(status)
            return status

    @server.tool()
    async def budgets() -> BudgetList:
        """The hive's budget and every agent's (with what each used today and in all), and who is paused."""
        keeper = hive.budgets
        scopes = sorted({*hive.agent_names, *keeper.used(), *keeper.scopes()} - {HIVE_SCOPE})
        return BudgetList(hive=scope_view(keeper, HIVE_SCOPE), agents=[scope_view(keeper, s) for s in scopes])

    @server.tool()
    async def set_budget(
        agent: Annotated[
            str | None, Field(description="The agent whose budget to change; leave out (or 'hive') for the hive's.")
        ] = None,
        usd_per_day: UsdLimit = None,
        tokens_per_day: TokenLimit = None,
        usd_total: UsdLimit = None,
        tokens_total: TokenLimit = None,
        clear: Annotated[bool, Field(description="Remove every limit of this budget first.")] = False,
    ) -> BudgetView:
        """Change a budget; a paused agent whose budgets are no longer spent resumes its turns."""
        changes = {
            k: v
            for k, v in (
                ("usd_per_day", usd_per_day),
                ("tokens_per_day", tokens_per_day),
                ("usd_total", usd_total),
                ("tokens_total", tokens_total),
            )
            if v is not None
        }
        if not changes and not clear:
            raise ToolError(
                "set_budget: give a limit to set (usd_per_day, tokens_per_day, usd_total, tokens_total) or clear; "
                "the budgets tool shows them"
            )
        scope = HIVE_SCOPE if agent in (None, HIVE_SCOPE) else agent
        with tool_errors():
            if scope != HIVE_SCOPE:
                await hive.status(scope)  # an unknown name is refused with the known ones
            await hive.budgets.set_limits(scope, clear=clear, **changes)
        return scope_view(hive.budgets, scope)

    @server.tool()
    async def backup(
        path: Annotated[str, Field(description="Absolute path of a new file for the copy (never overwritten).")],
    ) -> BackupReceipt:
        """Take an online copy of the hive database, which `hivectl serve --restore PATH` can start from."""
        with tool_errors():
            dest = Path(path)
            if not dest.is_absolute():
                raise ConfigError(f"backup path {path!r} is relative; give an absolute path")
            size = await anyio.to_thread.run_sync(backup_database, hive.config.broker_path, dest)
        return BackupReceipt(path=str(dest), bytes=size)

    @server.tool()
    async def shutdown() -> ShutdownReceipt:
        """Stop the daemon: agents are stopped, messages stay stored, the hive comes back on the next serve."""
        stop_requested.set()
        return ShutdownReceipt(stopping=True)

    return server
