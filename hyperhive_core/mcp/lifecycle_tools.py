"""The lifecycle toolsets: the manager proposes, the operator commits, decides and reconciles.

On hm1nd's socket `spawn`, `kill`, `rebuild` and `propose` write a proposal and return its id at
once; nothing runs until the operator approves. On host.sock the same verbs commit to main and
reconcile, and the operator has the approvals (`approvals`, `approval`, `approve`, `deny`) and
the reconciler's verbs (`plan`, `reconcile`, `suspend`, `resume`, `rollback`). Thin: validate,
call `HiveControl`, return a model.
"""

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from hyperhive_core.approvals.changes import AgentEdit
from hyperhive_core.approvals.control import HiveControl
from hyperhive_core.approvals.views import (
    CommitReceipt,
    PlanView,
    ProposalDetail,
    ProposalList,
    ProposalView,
    ReconcileReport,
    Verdict,
)
from hyperhive_core.errors import NotPermittedError
from hyperhive_core.mcp._params import (
    AgentName,
    Cpus,
    DriverName,
    ExtraDirs,
    Host,
    MemoryMb,
    Model,
    Network,
    PermissionModeName,
    Pids,
    Repo,
    Role,
    Tools,
    claude_section,
    sandbox_section,
    tool_errors,
)
from hyperhive_core.mcp.models import AgentInfo, AgentList, StopReceipt
from hyperhive_core.names import MANAGER, OPERATOR
from hyperhive_core.states import ProposalState

Why = Annotated[
    str, Field(max_length=4000, description="Why: what the operator reads when deciding, and the commit says.")
]
ProposalId = Annotated[int, Field(ge=1, le=2**63 - 1, description="The proposal's id (from approvals or proposals).")]
NetworkChange = Annotated[bool | None, Field(description="Share the host's network; null: leave as it is.")]
StateFilter = Annotated[
    Literal["pending", "decided", "all"], Field(description="pending: waiting for a verdict; decided; all.")
]


def _states(which: str) -> list[ProposalState] | None:
    if which == "pending":
        return [ProposalState.PROPOSED]
    if which == "decided":
        return [s for s in ProposalState if s != ProposalState.PROPOSED]
    return None


def _refuse_self(actor: str, name: str, verb: str) -> None:
    if actor == MANAGER and name == MANAGER:
        raise NotPermittedError(MANAGER, f"{verb} itself", "only the operator can do that")


def _register_views(server: MCPServer[Any], control: HiveControl, *, with_history: bool) -> None:
    hive = control.hive

    @server.tool()
    async def list_agents() -> AgentList:
        """Every agent: state, pid, uptime, unread count, how it stands against main, any throttle."""
        with tool_errors():
            return AgentList(agents=await hive.list())

    @server.tool()
    async def agent_status(name: AgentName) -> AgentInfo:
        """One agent: state, pid, uptime, role, how it stands against main and why."""
        with tool_errors():
            info = await hive.status(name)
            if with_history:
                info.history = await control.history(name)
            return info


def register_manager_lifecycle(server: MCPServer[Any], control: HiveControl) -> None:
    """hm1nd's lifecycle tools: each change is a proposal the operator approves or denies."""

    @server.tool()
    async def spawn(
        name: AgentName,
        role: Role = "",
        driver: DriverName = "auto",
        reason: Why = "",
        tools: Tools = None,
        permission_mode: PermissionModeName = None,
        model: Model = None,
        network: Network = None,
        extra_dirs: ExtraDirs = None,
        repo: Repo = None,
        host: Host = None,
    ) -> ProposalView:
        """Propose a new agent; returns the proposal at once. It runs only once the operator approves."""
        with tool_errors():
            claude = {k: v for k, v in claude_section(tools, permission_mode, model).items() if v is not None}
            sandbox = {k: v for k, v in sandbox_section(network, extra_dirs, repo).items() if v is not None}
            edit = AgentEdit(role=role, driver=driver, host=host, claude=claude or None, sandbox=sandbox or None)
            return await control.propose("spawn", name, message=reason, edit=edit)

    @server.tool()
    async def kill(name: AgentName, reason: Why = "") -> ProposalView:
        """Propose stopping and removing an agent; it happens only once the operator approves."""
        with tool_errors():
            _refuse_self(MANAGER, name, "kill")
            return await control.propose("kill", name, message=reason)

    @server.tool()
    async def rebuild(name: AgentName, reason: Why = "") -> ProposalView:
        """Propose restarting an agent from its settings; it happens only once the operator approves."""
        with tool_errors():
            _refuse_self(MANAGER, name, "rebuild")
            return await control.propose("rebuild", name, message=reason)

    @server.tool()
    async def propose(name: AgentName, changes: AgentEdit, reason: Why = "") -> ProposalView:
        """Propose new settings for an agent (role, driver, sandbox.network, budget...); only what you give changes."""
        with tool_errors():
            _refuse_self(MANAGER, name, "edit")
            return await control.propose("edit", name, message=reason, edit=changes)

    @server.tool()
    async def proposals(state: StateFilter = "all") -> ProposalList:
        """Your proposals, newest first, with where each stands (proposed, applied, denied and why...)."""
        with tool_errors():
            return ProposalList(proposals=await control.proposals.find(states=_states(state), proposer=MANAGER))

    _register_views(server, control, with_history=False)


def register_operator_lifecycle(server: MCPServer[Any], control: HiveControl) -> None:
    """The operator's lifecycle tools: changes commit to main and reconcile at once."""

    @server.tool()
    async def spawn(
        name: AgentName,
        role: Role = "",
        driver: DriverName = "auto",
        memory_mb: MemoryMb = None,
        pids: Pids = None,
        cpus: Cpus = None,
        tools: Tools = None,
        permission_mode: PermissionModeName = None,
        model: Model = None,
        network: Network = None,
        extra_dirs: ExtraDirs = None,
        repo: Repo = None,
        host: Host = None,
    ) -> AgentInfo:
        """Add an agent: commit it to main as the operator (its limits and settings too), and start it (on
        `host`: that host's daemon starts it)."""
        with tool_errors():
            limits = {"memory_mb": memory_mb, "pids": pids, "cpus": cpus}
            return await control.spawn(
                name,
                role=role,
                driver=driver,
                limits=limits,
                claude=claude_section(tools, permission_mode, model),
                sandbox=sandbox_section(network, extra_dirs, repo),
                host=host,
            )

    @server.tool()
    async def spawn_manager(role: Role = "", driver: DriverName = "auto") -> AgentInfo:
        """Start the manager agent hm1nd, whose socket offers the proposal tools."""
        with tool_errors():
            return await control.spawn_manager(role=role, driver=driver)

    @server.tool()
    async def kill(name: AgentName) -> StopReceipt:
        """Remove an agent from main and stop it (its socket too); its message history stays."""
        with tool_errors():
            await control.kill(name)
        return StopReceipt(name=name, removed=True)

    @server.tool()
    async def rebuild(
        name: AgentName,
        role: Annotated[str | None, Field(description="A new role; null: unchanged.")] = None,
        driver: Annotated[DriverName | None, Field(description="A new driver; null: unchanged.")] = None,
        network: NetworkChange = None,
    ) -> AgentInfo:
        """Rebuild an agent; with new settings, commit them to main first."""
        with tool_errors():
            sandbox = {"network": network} if network is not None else None
            edit = AgentEdit(role=role, driver=driver, sandbox=sandbox)
            return await control.rebuild(name, edit)

    @server.tool()
    async def rollback(
        name: AgentName,
        rev: Annotated[str, Field(max_length=200, description="A commit of the state repo (sha, main~2...).")],
    ) -> CommitReceipt:
        """Commit an agent's settings as they were at an earlier commit, and reconcile it."""
        with tool_errors():
            return await control.rollback(name, rev)

    @server.tool()
    async def place(
        name: AgentName,
        host: Annotated[str, Field(min_length=1, max_length=253, description="The host whose daemon will run it.")],
        force: Annotated[bool, Field(description="Place it even on a host that is down or never seen.")] = False,
    ) -> CommitReceipt:
        """Commit an agent placed on another host: the host it leaves stops it, the new one runs it."""
        with tool_errors():
            return await control.place(name, host, force=force)

    @server.tool()
    async def drain(
        host: Annotated[str, Field(min_length=1, max_length=253, description="The host to empty.")],
        to: Annotated[str | None, Field(description="The host that takes its agents; null: this daemon's.")] = None,
        force: Annotated[bool, Field(description="Drain even onto a host that is down or never seen.")] = False,
    ) -> CommitReceipt:
        """Commit, as one change, every agent placed on `host` placed on `to`; each host then reconciles."""
        with tool_errors():
            return await control.drain(host, to=to, force=force)

    @server.tool()
    async def reconcile(
        name: Annotated[str | None, Field(description="One agent; null: the whole hive.")] = None,
    ) -> ReconcileReport:
        """Bring the running hive (or one agent) to main now, without waiting for a restart's backoff."""
        with tool_errors():
            return await control.reconcile(name)

    @server.tool()
    async def plan() -> PlanView:
        """The difference between main and what runs: what a reconcile would start, stop or rebuild."""
        with tool_errors():
            return await control.reconciler.plan()

    @server.tool()
    async def suspend(name: AgentName) -> AgentInfo:
        """Stop reconciling one agent: it stays as it is (no restarts, no change from main) until resumed."""
        with tool_errors():
            await control.reconciler.suspend(name, by=OPERATOR)
            return await control.hive.status(name)

    @server.tool()
    async def resume(name: AgentName) -> AgentInfo:
        """Reconcile a suspended agent again, now."""
        with tool_errors():
            await control.reconciler.resume(name, by=OPERATOR)
            return await control.hive.status(name)

    @server.tool()
    async def approvals(
        state: StateFilter = "pending",
        limit: Annotated[int, Field(ge=1, le=1000, description="Most proposals to list.")] = 200,
    ) -> ProposalList:
        """Proposals, newest first: pending ones by default."""
        with tool_errors():
            found = await control.proposals.find(states=_states(state))
            return ProposalList(proposals=found[:limit])

    @server.tool()
    async def approval(proposal: ProposalId) -> ProposalDetail:
        """One proposal: its message, the diff of its files, and what approving it now would do."""
        with tool_errors():
            return await control.proposals.show(proposal)

    @server.tool()
    async def approve(proposal: ProposalId) -> Verdict:
        """Merge a proposal into main (refused as stale if main changed its files) and apply it."""
        with tool_errors():
            return await control.proposals.approve(proposal, by=OPERATOR)

    @server.tool()
    async def deny(
        proposal: ProposalId,
        reason: Annotated[str, Field(min_length=1, max_length=4000, description="Why; the proposer reads it.")],
    ) -> Verdict:
        """Refuse a proposal; the proposer is told the reason."""
        with tool_errors():
            return await control.proposals.deny(proposal, by=OPERATOR, reason=reason)

    _register_views(server, control, with_history=True)
