"""The hive: which agents exist, their sockets and processes, and who may send to whom.

The desired hive lives in the database (an agent exists from spawn to kill, and runs again after
a daemon restart while enabled); the runtime (sockets, processes) is rebuilt from it by `restore`.
Lifecycle verbs on one agent are serialised by a per-agent lock; a failed spawn leaves nothing behind.
"""

import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer

from hyperhive_core.broker.broker import Broker
from hyperhive_core.broker.events import EventLog
from hyperhive_core.broker.guard import RunawayGuard
from hyperhive_core.broker.models import AgentRow, MessageRow
from hyperhive_core.broker.readers import ReaderRegistry
from hyperhive_core.broker.refusals import RefusalLog
from hyperhive_core.broker.store import Appended
from hyperhive_core.budget.keeper import BudgetKeeper
from hyperhive_core.budget.store import BudgetStore
from hyperhive_core.budget.views import limits_view, pause_reason, usage_view
from hyperhive_core.config import HiveConfig
from hyperhive_core.errors import AgentExistsError, HiveError, UnknownAgentError
from hyperhive_core.lifecycle.base import AgentSpec, AgentStatus, LifecycleBackend, Limits
from hyperhive_core.mcp.models import AgentInfo, AgentResources, MessageView, PeerInfo
from hyperhive_core.mcp.sockets import SocketHost
from hyperhive_core.names import MANAGER, OPERATOR, validate_agent_name

logger = logging.getLogger(__name__)

ServerFactory = Callable[[str], MCPServer[Any]]
DRIVERS = ("auto", "claude", "echo")
# An agent's own words for its driver (with the reason for a fallback) are cut at this length.
MAX_DRIVER_IN_USE_CHARS = 500


def message_view(row: MessageRow) -> MessageView:
    """The wire view of a stored message."""
    assert row.id is not None, "a stored message has an id"
    return MessageView(
        id=row.id,
        sender=row.sender,
        recipient=row.recipient,
        body=row.body,
        created_at=datetime.fromtimestamp(row.created_at, UTC),
        reply_to=row.reply_to,
        state=row.state,
        deliveries=row.deliveries,
    )


def _mib_to_bytes(mib: int | None) -> int | None:
    return None if mib is None else mib * 1024 * 1024


def _resources(status: AgentStatus) -> AgentResources | None:
    limits, usage = status.limits, status.usage
    if limits is None and usage is None:
        return None
    resources = AgentResources()
    if limits is not None:
        resources.memory_limit_bytes, resources.pids_limit, resources.cpus_limit = (
            limits.memory_bytes,
            limits.pids,
            limits.cpus,
        )
    if usage is not None:
        resources.memory_bytes, resources.memory_peak_bytes = usage.memory_bytes, usage.memory_peak_bytes
        resources.pids, resources.cpu_s, resources.oom_kills = usage.pids, usage.cpu_s, usage.oom_kills
    return resources


class Hive:
    """Agents, their sockets and processes, and the rules for messages between principals."""

    def __init__(
        self,
        config: HiveConfig,
        broker: Broker,
        backend: LifecycleBackend,
        sockets: SocketHost,
        agent_server: ServerFactory,
    ) -> None:
        self.config = config
        self.broker = broker
        self.backend = backend
        self.events = EventLog(broker.store)
        self.guard = RunawayGuard(
            max_exchanges=config.max_exchanges, rate_limit=config.rate_limit, rate_window_s=config.rate_window_s
        )
        self.refusals = RefusalLog()
        self.readers = ReaderRegistry()
        # Usage and budgets: a paused agent's recv hands nothing out (the broker asks the keeper).
        self.budgets = BudgetKeeper(BudgetStore(broker.store.engine), broker, self.events, lambda: self.agent_names)
        broker.gate = self.budgets
        # Names this daemon's unnamed readers, so a lease can never outlive its daemon under the same name.
        self.boot_id = secrets.token_hex(4)
        self.started_at = time.time()
        self._sockets = sockets
        # Builds the MCP server for a principal's socket: the agent toolset, or the manager's for hm1nd.
        self._agent_server = agent_server
        self._agents: dict[str, AgentRow] = {}
        self._locks: dict[str, anyio.Lock] = {}
        # The driver each agent last said it answers with (its `driver` events); in memory, as an
        # agent that starts again (also after a daemon restart) says it again at once.
        self._drivers_in_use: dict[str, str] = {}

    # principals

    @property
    def agent_names(self) -> list[str]:
        """Every agent of the hive, sorted."""
        return sorted(self._agents)

    def _require(self, name: str) -> AgentRow:
        try:
            return self._agents[name]
        except KeyError:
            raise UnknownAgentError(name, self._agents) from None

    def _recipient(self, name: str) -> str:
        if name == OPERATOR or name in self._agents:
            return name
        raise UnknownAgentError(name, [*self._agents, OPERATOR])

    async def send(
        self, sender: str, to: str, body: str, *, reply_to: int | None = None, key: str | None = None
    ) -> Appended:
        """Send `body` from `sender` to `to`, durably; with `key`, a repeat of an earlier send is stored once.

        Raises:
            UnknownAgentError: `to` is neither an agent nor the operator.
            ConversationLimitError: the runaway guard refused it.
            BrokerError: the broker refused the message (size, inbox depth, reply_to, key, storage).
        """
        recipient = self._recipient(to)
        self.guard.admit(sender, recipient)
        try:
            appended = await self.broker.send(sender, recipient, body, reply_to=reply_to, key=key)
        except BaseException:
            self.guard.forget(sender, recipient)
            raise
        if appended.duplicate:
            self.guard.forget(sender, recipient)
        return appended

    def failpoint(self, name: str) -> None:
        """Die here, by SIGKILL, when the crash tests armed `name` (HYPERHIVE_FAILPOINTS); else nothing."""
        if name in self.config.failpoints:
            logger.warning("failpoint %s: killing the daemon on purpose", name)
            os.kill(os.getpid(), signal.SIGKILL)

    async def refused(self, sender: str, recipient: str, reason: str) -> None:
        """Remember a refused send: `list`/`status` count it, the recipient's inbox view shows it, and
        the sender's event log says why it went quiet (at most once a second, however hard it floods)."""
        # Only a real principal's inbox view lists refusals: a made-up name must not grow the log.
        known = recipient if recipient == OPERATOR or recipient in self._agents else ""
        if self.refusals.record(sender, known, reason):
            event = {"type": "hive", "subtype": "refused", "to": recipient[:40], "message": reason}
            try:
                await self.events.append(sender, [event])
            except HiveError:
                logger.warning("could not log a refused send of %s", sender, exc_info=True)

    async def peers(self, caller: str) -> list[PeerInfo]:
        """Everyone `caller` can send to, with their state."""
        peers = [PeerInfo(name=OPERATOR, state="operator")] if caller != OPERATOR else []
        for name in self.agent_names:
            if name != caller:
                status = await self.backend.status(name)
                peers.append(PeerInfo(name=name, state=status.state))
        return peers

    # lifecycle

    def _lock(self, name: str) -> anyio.Lock:
        return self._locks.setdefault(name, anyio.Lock())

    def _spec(self, row: AgentRow) -> AgentSpec:
        config = self.config
        # -I: the work dir (the agent's cwd, which it writes) is not on the import path, so a
        # hyperhive_agent/ the agent leaves there cannot replace the turn loop at its next start.
        if row.name == MANAGER:
            command = config.manager_command or (sys.executable, "-I", "-u", "-m", "hyperhive_mind", "serve")
        else:
            command = config.agent_command or (sys.executable, "-I", "-u", "-m", "hyperhive_agent", "serve")
        env = {"HIVE_ROLE": row.role, "HIVE_DRIVER": row.driver, "HIVE_TURN_TIMEOUT_S": f"{config.turn_timeout_s:g}"}
        agent_dir = config.agent_state_dir(row.name)
        return AgentSpec(
            name=row.name,
            socket_dir=config.agent_socket_dir(row.name),
            work_dir=agent_dir / "work",
            log_path=agent_dir / "agent.log",
            command=tuple(command),
            env=tuple(env.items()),
            share_net=config.share_net,
            claude_config_dir=config.claude_config_dir,
            limits=Limits(
                memory_bytes=_mib_to_bytes(row.memory_mb if row.memory_mb is not None else config.agent_memory_mb),
                pids=row.pids if row.pids is not None else config.agent_pids,
                cpus=row.cpus if row.cpus is not None else config.agent_cpus,
            ),
        )

    async def _open_socket(self, name: str) -> None:
        await self._sockets.open(self.config.agent_socket(name), self._agent_server(name), label=f"agent {name}")

    async def _bring_up(self, row: AgentRow) -> None:
        self._drivers_in_use.pop(row.name, None)
        spec = self._spec(row)
        await self._open_socket(row.name)
        await self.backend.create(spec)
        await self.backend.start(spec)

    async def spawn(
        self,
        name: str,
        *,
        role: str = "",
        driver: str = "auto",
        memory_mb: int | None = None,
        pids: int | None = None,
        cpus: float | None = None,
    ) -> AgentInfo:
        """Add an agent to the hive and start it; limits left None are the daemon's defaults.

        Raises:
            InvalidAgentNameError: the name breaks the naming rules.
            AgentExistsError: an agent of that name exists.
            BackendError: the backend could not start it (nothing is left behind).
        """
        validate_agent_name(name)
        return await self._spawn(name, role=role, driver=driver, memory_mb=memory_mb, pids=pids, cpus=cpus)

    async def spawn_manager(self, *, role: str = "", driver: str = "auto") -> AgentInfo:
        """Add the manager (hm1nd) to the hive and start it; its socket offers the manager's toolset.

        Raises:
            AgentExistsError: the manager already runs.
            BackendError: the backend could not start it.
        """
        return await self._spawn(MANAGER, role=role, driver=driver)

    async def _spawn(
        self,
        name: str,
        *,
        role: str,
        driver: str,
        memory_mb: int | None = None,
        pids: int | None = None,
        cpus: float | None = None,
    ) -> AgentInfo:
        if driver not in DRIVERS:
            raise ValueError(f"unknown driver {driver!r}; choose one of {', '.join(DRIVERS)}")
        async with self._lock(name):
            if name in self._agents:
                raise AgentExistsError(name)
            row = AgentRow(
                name=name,
                backend=self.backend.info.name,
                enabled=True,
                created_at=time.time(),
                role=role,
                driver=driver,
                memory_mb=memory_mb,
                pids=pids,
                cpus=cpus,
            )
            try:
                await self._bring_up(row)
                # shielded: once written the row must be known in memory too, or the two disagree.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self.broker.store.put_agent, row)
                    self._agents[name] = row
            except BaseException:
                # A spawn that did not finish (refused row, failed start, cancelled call) leaves no
                # process and no socket behind: `list` would not show them.
                with anyio.CancelScope(shield=True):
                    if name not in self._agents:
                        await self._tear_down(name)
                raise
        return await self.status(name)

    async def _tear_down(self, name: str) -> None:
        await self.backend.stop(name, grace_s=self.config.stop_grace_s)
        await self.backend.destroy(name)
        await self._sockets.close(self.config.agent_socket(name))

    async def kill(self, name: str) -> None:
        """Stop an agent and remove it from the hive; its messages stay as history.

        Raises:
            UnknownAgentError: no agent has that name.
        """
        async with self._lock(name):
            self._require(name)
            with anyio.CancelScope(shield=True):
                await self._tear_down(name)
                await anyio.to_thread.run_sync(self.broker.store.delete_agent, name)
            del self._agents[name]
            self._drivers_in_use.pop(name, None)

    async def rebuild(self, name: str) -> AgentInfo:
        """Reconcile an agent: stop it, re-create its socket and start it again; idempotent.

        Raises:
            UnknownAgentError: no agent has that name.
            BackendError: the backend could not start it.
        """
        async with self._lock(name):
            row = self._require(name)
            with anyio.CancelScope(shield=True):
                await self.backend.stop(name, grace_s=self.config.stop_grace_s)
            await self._bring_up(row)
            if not row.enabled:
                row.enabled = True
                await anyio.to_thread.run_sync(self.broker.store.put_agent, row)
        return await self.status(name)

    async def restore(self) -> None:
        """Re-create every agent's socket and start those that should run; one failure stops no other."""
        rows = await anyio.to_thread.run_sync(self.broker.store.agents)
        for row in rows:
            self._agents[row.name] = row
            try:
                if row.enabled:
                    await self._bring_up(row)
                else:
                    await self._open_socket(row.name)
            except Exception:
                logger.exception("could not restore agent %s", row.name)

    def note_events(self, name: str, events: list[dict[str, Any]]) -> None:
        """Learn from an agent's reported turn events which driver answers for it now."""
        for event in events:
            in_use = event.get("in_use")
            if event.get("type") == "hive" and event.get("subtype") == "driver" and isinstance(in_use, str):
                self._drivers_in_use[name] = in_use[:MAX_DRIVER_IN_USE_CHARS]

    # views

    async def status(self, name: str) -> AgentInfo:
        """The agent's state, process, uptime and unread count.

        Raises:
            UnknownAgentError: no agent has that name.
        """
        row = self._require(name)
        unread = await self.broker.unread_counts()
        return await self._info(row, unread)

    async def list(self) -> list[AgentInfo]:
        """Every agent of the hive, by name."""
        unread = await self.broker.unread_counts()
        return [await self._info(self._agents[name], unread) for name in self.agent_names]

    async def _info(self, row: AgentRow, unread: dict[str, int]) -> AgentInfo:
        status = await self.backend.status(row.name)
        now = time.time()
        refused, last = self.refusals.of_sender(row.name)
        spend = self.budgets.spend(row.name)
        return AgentInfo(
            name=row.name,
            backend=row.backend,
            state=status.state,
            pid=status.pid,
            started_at=datetime.fromtimestamp(status.started_at, UTC) if status.started_at else None,
            uptime_s=round(now - status.started_at, 3) if status.started_at else None,
            unread=unread.get(row.name, 0),
            sandbox=status.sandbox,
            socket=str(self.config.agent_socket(row.name)),
            detail=status.detail,
            role=row.role,
            driver=row.driver,
            driver_in_use=self._drivers_in_use.get(row.name, ""),
            throttled="; ".join(t.reason for t in self.guard.throttles() if t.sender == row.name),
            containment=status.containment,
            resources=_resources(status),
            refused=refused,
            last_refusal=last.reason if last is not None else "",
            usage_today=usage_view(spend.today),
            usage_total=usage_view(spend.total),
            budget=limits_view(spend.limits),
            paused=pause_reason(spend.paused),
        )
