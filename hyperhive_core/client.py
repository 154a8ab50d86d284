"""A typed MCP client for the hive's sockets: what hivectl, the tests and the benchmarks speak.

`open_session` gives a plain SDK `ClientSession` on any socket (an agent's or host.sock);
`HiveClient` wraps one with a method per tool that returns the tool's pydantic model and raises
`ToolCallError` with the daemon's own words when a call is refused.
"""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import mcp_types
from mcp import ClientSession, MCPError
from pydantic import BaseModel

from hyperhive_core.approvals.views import (
    CommitReceipt,
    PlanView,
    ProposalDetail,
    ProposalList,
    ProposalView,
    ReconcileReport,
    Verdict,
)
from hyperhive_core.errors import DaemonUnavailableError, ToolCallError
from hyperhive_core.mcp.models import (
    AckReceipt,
    AgentInfo,
    AgentList,
    BudgetList,
    BudgetView,
    EventList,
    EventReceipt,
    HiveStatus,
    Identity,
    InboxView,
    PeerList,
    RecvResult,
    SendReceipt,
    ShutdownReceipt,
    StopReceipt,
)
from hyperhive_core.mcp.transport import connect_unix_streams

M = TypeVar("M", bound=BaseModel)


@asynccontextmanager
async def open_session(socket: Path) -> AsyncGenerator[ClientSession]:
    """An initialized MCP client session on `socket`.

    Raises:
        DaemonUnavailableError: nothing listens on `socket`.
    """
    try:
        async with connect_unix_streams(socket) as (read, write), ClientSession(read, write) as session:
            try:
                await session.initialize()
                # Caches every tool's output schema now, so a later call never needs a second round
                # trip to validate its result (and a call that ends the daemon still gets its answer).
                await session.list_tools()
            except MCPError as exc:
                raise DaemonUnavailableError(
                    socket, f"the daemon closed the connection during the handshake: {exc}"
                ) from exc
            yield session
    except BaseExceptionGroup as group:
        # The SDK's task groups wrap whatever the caller raised inside the session; hand the
        # caller back its own exception when it is the only one.
        raise _sole_exception(group) from None


def _sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaves: list[BaseException] = []

    def collect(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:  # pyright: ignore[reportUnknownVariableType, reportUnknownMemberType]  # a group of BaseException
                collect(inner)  # pyright: ignore[reportUnknownArgumentType]
        else:
            leaves.append(exc)

    collect(group)
    return leaves[0] if len(leaves) == 1 else group


def _text(result: mcp_types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, mcp_types.TextContent))


class HiveClient:
    """One method per tool; works on any principal's socket for the tools that principal has."""

    def __init__(self, session: ClientSession, socket: Path) -> None:
        self.session = session
        self.socket = socket

    async def _call_tool(self, tool: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        try:
            return await self.session.call_tool(tool, arguments)
        except MCPError as exc:
            raise DaemonUnavailableError(
                self.socket, f"the daemon dropped the connection during {tool}: {exc}"
            ) from exc

    async def call(self, tool: str, arguments: dict[str, Any], model: type[M]) -> M:
        """Call `tool` and validate its structured result as `model`.

        Raises:
            ToolCallError: the daemon refused the call.
        """
        result = await self._call_tool(tool, arguments)
        if result.is_error:
            raise ToolCallError(tool, _text(result))
        return model.model_validate(result.structured_content)

    async def send(self, to: str, body: str, *, reply_to: int | None = None, key: str | None = None) -> SendReceipt:
        """Send a message as this socket's principal; `key` makes a repeated send store one message."""
        arguments: dict[str, Any] = {"to": to, "body": body}
        if reply_to is not None:
            arguments["reply_to"] = reply_to
        if key is not None:
            arguments["key"] = key
        return await self.call("send", arguments, SendReceipt)

    async def recv(
        self, *, timeout_s: float = 0.0, max: int = 10, after: int | None = None, reader: str | None = None
    ) -> RecvResult:
        """Take messages addressed to this principal, waiting up to `timeout_s`.

        `after` acknowledges by cursor what this reader was handed; `reader` names the reader so
        its leases carry over to its next connection.
        """
        arguments: dict[str, Any] = {"timeout_s": timeout_s, "max": max}
        if after is not None:
            arguments["after"] = after
        if reader is not None:
            arguments["reader"] = reader
        return await self.call("recv", arguments, RecvResult)

    async def ack(self, ids: list[int]) -> AckReceipt:
        """Acknowledge messages recv handed this principal."""
        return await self.call("ack", {"ids": ids}, AckReceipt)

    async def inbox(self, agent: str | None = None, *, limit: int = 20) -> InboxView:
        """Peek at an inbox (another agent's only on host.sock)."""
        arguments: dict[str, Any] = {"limit": limit}
        if agent is not None:
            arguments["agent"] = agent
        return await self.call("inbox", arguments, InboxView)

    async def whoami(self) -> Identity:
        """Who the daemon says this socket is."""
        return await self.call("whoami", {}, Identity)

    async def peers(self) -> PeerList:
        """Everyone this principal can send to."""
        return await self.call("peers", {}, PeerList)

    async def spawn(self, name: str, *, role: str = "", driver: str = "auto", **settings: Any) -> AgentInfo:
        """Add and start an agent; `settings` are the spawn tool's other arguments (tools, repo, extra_dirs...)."""
        arguments = {"name": name, "role": role, "driver": driver, **settings}
        return await self.call("spawn", arguments, AgentInfo)

    async def spawn_manager(self, *, role: str = "", driver: str = "auto") -> AgentInfo:
        """Start the manager agent, hm1nd."""
        return await self.call("spawn_manager", {"role": role, "driver": driver}, AgentInfo)

    async def agent_logs(
        self, name: str, *, after: int | None = None, limit: int = 200, wait_s: float = 0.0
    ) -> EventList:
        """An agent's turn events after id `after` (the newest `limit` when None)."""
        arguments: dict[str, Any] = {"name": name, "limit": limit, "wait_s": wait_s}
        if after is not None:
            arguments["after"] = after
        return await self.call("agent_logs", arguments, EventList)

    async def report_events(self, events: list[dict[str, Any]]) -> int:
        """Store turn events as this socket's agent; returns how many were stored."""
        return (await self.call("report_events", {"events": events}, EventReceipt)).stored

    async def kill(self, name: str) -> StopReceipt:
        """Stop and remove an agent."""
        return await self.call("kill", {"name": name}, StopReceipt)

    async def rebuild(self, name: str) -> AgentInfo:
        """Restart an agent and re-create its socket."""
        return await self.call("rebuild", {"name": name}, AgentInfo)

    async def list_agents(self) -> list[AgentInfo]:
        """Every agent of the hive."""
        return (await self.call("list_agents", {}, AgentList)).agents

    async def status(self, name: str) -> AgentInfo:
        """One agent's state."""
        return await self.call("agent_status", {"name": name}, AgentInfo)

    async def hive_status(self) -> HiveStatus:
        """The hive as a whole."""
        return await self.call("hive_status", {}, HiveStatus)

    async def budgets(self) -> BudgetList:
        """The hive's budget and every agent's, with what each used."""
        return await self.call("budgets", {}, BudgetList)

    async def set_budget(self, agent: str | None = None, *, clear: bool = False, **limits: float | int) -> BudgetView:
        """Change an agent's budget (None: the hive's): `usd_per_day`, `tokens_per_day`, `usd_total`, `tokens_total`."""
        arguments: dict[str, Any] = {**limits, "clear": clear}
        if agent is not None:
            arguments["agent"] = agent
        return await self.call("set_budget", arguments, BudgetView)

    async def shutdown(self) -> None:
        """Ask the daemon to stop."""
        await self.call("shutdown", {}, ShutdownReceipt)

    # approvals and the reconciler

    async def reconcile(self, name: str | None = None) -> ReconcileReport:
        """Bring the hive (or one agent) to main now."""
        return await self.call("reconcile", {"name": name} if name else {}, ReconcileReport)

    async def plan(self) -> PlanView:
        """The difference between main and what runs."""
        return await self.call("plan", {}, PlanView)

    async def suspend(self, name: str) -> AgentInfo:
        """Stop reconciling one agent."""
        return await self.call("suspend", {"name": name}, AgentInfo)

    async def resume(self, name: str) -> AgentInfo:
        """Reconcile a suspended agent again."""
        return await self.call("resume", {"name": name}, AgentInfo)

    async def rollback(self, name: str, rev: str) -> CommitReceipt:
        """Commit an agent's file as it was at `rev`, and reconcile it."""
        return await self.call("rollback", {"name": name, "rev": rev}, CommitReceipt)

    async def approvals(self, state: str = "pending") -> list[ProposalView]:
        """Proposals (the operator's view)."""
        return (await self.call("approvals", {"state": state}, ProposalList)).proposals

    async def approval(self, proposal: int) -> ProposalDetail:
        """One proposal, its diff and its plan."""
        return await self.call("approval", {"proposal": proposal}, ProposalDetail)

    async def approve(self, proposal: int) -> Verdict:
        """Merge a proposal and apply it."""
        return await self.call("approve", {"proposal": proposal}, Verdict)

    async def deny(self, proposal: int, reason: str) -> Verdict:
        """Refuse a proposal."""
        return await self.call("deny", {"proposal": proposal, "reason": reason}, Verdict)

    async def propose(self, name: str, changes: dict[str, Any], reason: str = "") -> ProposalView:
        """Propose new settings for an agent (the manager's tool)."""
        return await self.call("propose", {"name": name, "changes": changes, "reason": reason}, ProposalView)

    async def propose_spawn(
        self, name: str, *, role: str = "", driver: str = "auto", reason: str = "", **settings: Any
    ) -> ProposalView:
        """Propose a new agent (the manager's `spawn`); `settings`: tools, permission_mode, repo..."""
        arguments = {"name": name, "role": role, "driver": driver, "reason": reason, **settings}
        return await self.call("spawn", arguments, ProposalView)

    async def propose_kill(self, name: str, reason: str = "") -> ProposalView:
        """Propose removing an agent (the manager's `kill`)."""
        return await self.call("kill", {"name": name, "reason": reason}, ProposalView)

    async def proposals(self, state: str = "all") -> list[ProposalView]:
        """The manager's own proposals."""
        return (await self.call("proposals", {"state": state}, ProposalList)).proposals


@asynccontextmanager
async def open_hive_client(socket: Path) -> AsyncGenerator[HiveClient]:
    """A `HiveClient` on `socket`.

    Raises:
        DaemonUnavailableError: nothing listens on `socket`.
    """
    async with open_session(socket) as session:
        yield HiveClient(session, socket)
