"""The hive: which agents exist, and the rules for messages between principals.

A registry and messaging rules: the desired hive lives in the state repo and the reconciler
(`approvals.reconciler`) is the one place agents are started, rebuilt and stopped; it keeps this
registry (main's agents, and those whose removal is pending) and says how each agent stands
against main (`sync`), which `list` and `status` show beside what the backend reports. An agent
that works on a repository (`--repo`) has its branch published there after each of its turns.
"""

import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import anyio

from hyperhive_core.approvals.agentfile import AgentFile, settings_diff
from hyperhive_core.approvals.placing import unplaced_reason
from hyperhive_core.broker.broker import Broker
from hyperhive_core.broker.events import EventLog
from hyperhive_core.broker.guard import RunawayGuard
from hyperhive_core.broker.models import MessageRow
from hyperhive_core.broker.readers import ReaderRegistry
from hyperhive_core.broker.refusals import RefusalLog
from hyperhive_core.broker.storage import AgentDirectory, Appended
from hyperhive_core.budget.keeper import BudgetKeeper
from hyperhive_core.budget.store import BudgetStore
from hyperhive_core.budget.views import limits_view, pause_reason, usage_view
from hyperhive_core.config import HiveConfig
from hyperhive_core.errors import HiveError, UnknownAgentError, WorkspaceError
from hyperhive_core.lifecycle.base import AgentStatus, LifecycleBackend
from hyperhive_core.lifecycle.workspace import branch_of, branch_state, publish_branch
from hyperhive_core.mcp.models import AgentInfo, AgentResources, BranchView, MessageView, PeerInfo
from hyperhive_core.names import OPERATOR
from hyperhive_core.states import AgentState, SyncState

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class AgentSync:
    """An agent against main, for `list` and `status`."""

    sync: SyncState
    reason: str
    applied_rev: str | None = None
    attempted_rev: str | None = None
    not_applied: list[str] = field(default_factory=list[str])


class SyncSource(Protocol):
    """Who says how an agent stands against main: the reconciler."""

    def sync_of(self, name: str, status: AgentStatus) -> AgentSync:
        """Agent `name` against main, given what its backend reports now."""
        ...


class Hive:
    """The agents of the hive, and the rules for messages between principals."""

    def __init__(self, config: HiveConfig, broker: Broker, backend: LifecycleBackend) -> None:
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
        self.sync: SyncSource | None = None
        # Set on a database shared by several hosts' daemons: where agents this daemon does not run live.
        self.directory: AgentDirectory | None = None
        # Main's agents placed on another host (None: on no host), kept by the reconciler.
        self.elsewhere: dict[str, str | None] = {}
        self._agents: dict[str, AgentFile] = {}
        # The head of each repo agent's branch as last published into its repository.
        self._published: dict[str, str] = {}
        # The driver each agent last said it answers with (its `driver` events); in memory, as an
        # agent that starts again (also after a daemon restart) says it again at once.
        self._drivers_in_use: dict[str, str] = {}

    # principals

    @property
    def agent_names(self) -> list[str]:
        """Every agent of the hive, sorted."""
        return sorted(self._agents)

    def _require(self, name: str) -> AgentFile:
        try:
            return self._agents[name]
        except KeyError:
            raise UnknownAgentError(name, self._agents) from None

    async def _recipient(self, name: str) -> str:
        if name == OPERATOR or name in self._agents:
            return name
        if self.directory is not None and (name in self.elsewhere or await self.directory.host_of(name) is not None):
            # Another host's agent (running, or placed there by main and not up yet): stored in the
            # shared database, its own daemon hands it out.
            return name
        raise UnknownAgentError(name, [*self._agents, OPERATOR])

    async def notify(self, recipient: str, body: str, *, key: str) -> None:
        """Tell `recipient` something as the operator (a proposal's outcome), once per `key`.

        Straight to the broker: a notice is not the operator speaking, so it neither resets nor
        counts toward the runaway guard. An unknown recipient (the manager was killed) is logged.
        """
        if recipient not in self._agents and (self.directory is None or recipient not in self.elsewhere):
            logger.warning("not telling %s (no longer in the hive): %s", recipient, body)
            return
        await self.broker.send(OPERATOR, recipient, body, key=key)

    async def send(
        self, sender: str, to: str, body: str, *, reply_to: int | None = None, key: str | None = None
    ) -> Appended:
        """Send `body` from `sender` to `to`, durably; with `key`, a repeat of an earlier send is stored once.

        Raises:
            UnknownAgentError: `to` is neither an agent nor the operator.
            ConversationLimitError: the runaway guard refused it.
            BrokerError: the broker refused the message (size, inbox depth, reply_to, key, storage).
        """
        recipient = await self._recipient(to)
        self.guard.admit(sender, recipient)
        try:
            appended = await self.broker.send(sender, recipient, body, reply_to=reply_to, key=key)
        except BaseException:
            self.guard.forget(sender, recipient)
            raise
        if appended.duplicate:
            self.guard.forget(sender, recipient)
        return appended

    def failpoint(self, name: str, agent: str | None = None) -> None:
        """Die here, by SIGKILL, when the crash tests armed `name` (or `name:agent`) in
        HYPERHIVE_FAILPOINTS; else nothing."""
        armed = self.config.failpoints
        if name in armed or (agent is not None and f"{name}:{agent}" in armed):
            logger.warning("failpoint %s (%s): killing the daemon on purpose", name, agent or "-")
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
        if self.directory is not None:
            # Another host's agents: reachable through the shared database, whatever their state here.
            running = {p.name for p in await self.directory.everyone() if p.up}
            peers.extend(
                PeerInfo(name=name, state=AgentState.RUNNING if name in running else AgentState.MISSING)
                for name in sorted(set(self.elsewhere) - set(self._agents) - {caller})
            )
        return peers

    # the registry: kept by the reconciler

    def register(self, name: str, file: AgentFile) -> None:
        """Make `name` an agent of the hive (a recipient of messages), with the settings main gives it."""
        self._agents[name] = file

    def unregister(self, name: str) -> None:
        """Forget an agent the reconciler removed; its messages stay as history."""
        self._agents.pop(name, None)
        self._drivers_in_use.pop(name, None)
        self._published.pop(name, None)

    def settings_of(self, name: str) -> AgentFile:
        """The settings agent `name` has on main (or runs with, while its removal is pending).

        Raises:
            UnknownAgentError: no agent has that name.
        """
        return self._require(name)

    def starting(self, name: str) -> None:
        """The reconciler (re)starts agent `name`: what it said about its driver is old news."""
        self._drivers_in_use.pop(name, None)

    def note_events(self, name: str, events: list[dict[str, Any]]) -> None:
        """Learn from an agent's reported turn events which driver answers for it now."""
        for event in events:
            in_use = event.get("in_use")
            if event.get("type") == "hive" and event.get("subtype") == "driver" and isinstance(in_use, str):
                self._drivers_in_use[name] = in_use[:MAX_DRIVER_IN_USE_CHARS]

    # an agent's branch (`--repo`)

    async def after_events(self, name: str, events: list[dict[str, Any]]) -> None:
        """After a turn of an agent that works on a repository: publish its branch there."""
        file = self._agents.get(name)
        if file is None or file.sandbox.repo is None:
            return
        if any(e.get("type") == "hive" and e.get("subtype") in ("turn_end", "turn_error") for e in events):
            await self.publish(name, file)

    async def publish(self, name: str, file: AgentFile) -> None:
        """Fetch agent `name`'s branch into its repository; when it moved, say so in the agent's log."""
        repo = file.sandbox.repo
        if repo is None:
            return
        work_dir = self.config.agent_state_dir(name) / "work"
        event: dict[str, Any]
        try:
            head = await anyio.to_thread.run_sync(publish_branch, name, Path(repo), work_dir, abandon_on_cancel=True)
            if head is None or self._published.get(name) == head:
                return
            self._published[name] = head
            view = await self.branch(name, file)
            assert view is not None
            listed = "; ".join(view.commits[:5]) or "nothing that HEAD lacks"
            message = f"{view.branch} is at {head[:12]} in {repo}: {view.ahead} commit(s) not in its HEAD: {listed}"
            event = {"type": "hive", "subtype": "branch", "message": message, "branch": view.branch, "head": head}
            event["commits"] = view.commits
        except WorkspaceError as exc:
            logger.warning("could not publish the branch of %s: %s", name, exc)
            event = {"type": "hive", "subtype": "branch_error", "message": str(exc)}
        try:
            await self.events.append(name, [event])
        except HiveError:
            logger.warning("could not log the branch of %s", name, exc_info=True)

    async def branch(self, name: str, file: AgentFile) -> BranchView | None:
        """Agent `name`'s branch as its repository has it; None when it works on no repository."""
        repo = file.sandbox.repo
        if repo is None:
            return None
        view = BranchView(repo=repo, branch=branch_of(name), work_dir=str(self.config.agent_state_dir(name) / "work"))
        try:
            state = await anyio.to_thread.run_sync(branch_state, name, Path(repo))
        except WorkspaceError as exc:
            view.error = str(exc)
            return view
        view.head, view.ahead = state.head, state.ahead
        view.commits = [f"{sha} {subject}" for sha, subject in state.commits]
        return view

    # views

    async def status(self, name: str) -> AgentInfo:
        """The agent's state, process, uptime and unread count; its settings and branch.

        Raises:
            UnknownAgentError: no agent has that name.
        """
        if name not in self._agents and name in self.elsewhere:
            return next(a for a in await self.list() if a.name == name)
        file = self._require(name)
        unread = await self.broker.unread_counts()
        info = await self._info(name, unread)
        info.branch = await self.branch(name, file)
        return info

    async def list(self) -> list[AgentInfo]:
        """Every agent of the hive, by name (on a database shared by several hosts: theirs too)."""
        unread = await self.broker.unread_counts()
        local = [await self._info(name, unread) for name in self.agent_names]
        pending = [
            AgentInfo(
                name=name,
                backend="-",
                state=AgentState.MISSING,
                host=host or "",
                unread=unread.get(name, 0),
                detail=f"pending on {host}" if host else unplaced_reason(name, self.config.host_name),
            )
            for name, host in self.elsewhere.items()
            if name not in self._agents
        ]
        if self.directory is None:
            return sorted([*local, *pending], key=lambda a: a.name)
        here = self.directory.host
        for info in local:
            info.host = here
        placed = {p.name: p for p in await self.directory.everyone() if p.name not in self._agents}
        remote = [
            AgentInfo(
                name=p.name,
                backend="-",
                state=AgentState.RUNNING if p.up else AgentState.MISSING,
                host=p.host,
                unread=unread.get(p.name, 0),
                detail="" if p.up else f"its host {p.host} stopped heart-beating",
            )
            for p in placed.values()
            # Run by the host main places it on (or by one that has not let go of it yet).
            if self.elsewhere.get(p.name, p.host) == p.host or p.up
        ]
        # Placed by main on a host that does not run it (yet): that host never came up, or is starting it.
        shown = {a.name for a in remote}
        return sorted([*local, *remote, *(a for a in pending if a.name not in shown)], key=lambda a: a.name)

    async def _info(self, name: str, unread: dict[str, int]) -> AgentInfo:
        row = self._agents[name]
        status = await self.backend.status(name)
        now = time.time()
        refused, last = self.refusals.of_sender(name)
        spend = self.budgets.spend(name)
        sync = self.sync.sync_of(name, status) if self.sync is not None else None
        return AgentInfo(
            name=name,
            backend=row.backend or self.backend.info.name,
            state=status.state,
            pid=status.pid,
            started_at=datetime.fromtimestamp(status.started_at, UTC) if status.started_at else None,
            uptime_s=round(now - status.started_at, 3) if status.started_at else None,
            unread=unread.get(name, 0),
            sandbox=status.sandbox,
            socket=str(self.config.agent_socket(name)),
            detail=status.detail,
            role=row.role,
            driver=row.driver,
            driver_in_use=self._drivers_in_use.get(name, ""),
            throttled="; ".join(t.reason for t in self.guard.throttles() if t.sender == name),
            containment=status.containment,
            resources=_resources(status),
            refused=refused,
            last_refusal=last.reason if last is not None else "",
            usage_today=usage_view(spend.today),
            usage_total=usage_view(spend.total),
            budget=limits_view(spend.limits),
            paused=pause_reason(spend.paused),
            sync=sync.sync if sync is not None else None,
            sync_reason=sync.reason if sync is not None else "",
            applied_rev=sync.applied_rev if sync is not None else None,
            attempted_rev=sync.attempted_rev if sync is not None else None,
            not_applied=sync.not_applied if sync is not None else [],
            settings=settings_diff(row),
        )
