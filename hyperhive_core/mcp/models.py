"""What the MCP tools return: pydantic models, so each tool has an output schema and structured content.

These are the wire shapes every principal sees (agents, the manager, the operator's hivectl); the
SQL tables in `broker/models.py` stay behind them.
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from hyperhive_core.states import AgentState, MessageState, SyncState

# Bounds of the tools' arguments, shared with hivectl (which must not import the server side).
MAX_RECV_TIMEOUT_S = 600.0
MAX_RECV_BATCH = 100


class MessageView(BaseModel):
    """One message as a principal sees it."""

    id: int = Field(description="Message id; pass it as reply_to to answer this message.")
    sender: str = Field(description="Who sent it: an agent name, 'operator', 'hm1nd', or 'hive' (the daemon).")
    recipient: str
    body: str
    created_at: datetime
    reply_to: int | None = Field(default=None, description="Id of the message this one answers, if any.")
    state: MessageState
    deliveries: int = Field(
        default=0, description="Times it was handed out; more than 1: you (or a reader of yours) got it before."
    )


class SendReceipt(BaseModel):
    """A committed message: it survives a crash of the daemon from here on."""

    id: int
    recipient: str
    created_at: datetime


class RecvResult(BaseModel):
    """Messages handed out by recv; each is handed out once and only once."""

    messages: list[MessageView]
    remaining: int = Field(description="Unread messages still queued after these.")
    already_sent: list[MessageView] = Field(
        default_factory=list[MessageView],
        description="When some of these were handed to you before (deliveries > 1) and your turn was cut "
        "short: what you sent since, so you do not send it twice.",
    )


class AckReceipt(BaseModel):
    """Messages acknowledged by ack: done with, never handed out again."""

    acked: list[int] = Field(description="Ids now acknowledged (or acknowledged before).")
    not_yours: list[int] = Field(description="Ids that were never handed to you: recv them first.")


class Refusal(BaseModel):
    """A send the daemon refused, and why."""

    sender: str
    recipient: str
    reason: str
    at: datetime


class InboxView(BaseModel):
    """A peek at an inbox: consumes nothing."""

    agent: str
    queued: int = Field(description="Unread messages waiting for recv.")
    delivered: int = Field(description="Messages recv handed out that no reply has acknowledged yet.")
    messages: list[MessageView] = Field(description="The oldest queued messages, up to the limit asked for.")
    refused: list[Refusal] = Field(
        default_factory=list[Refusal], description="The latest sends to this inbox that the daemon refused."
    )


class Identity(BaseModel):
    """Who the caller is, as the daemon knows it from the socket it connected to."""

    name: str
    role: Literal["agent", "manager", "operator"]


class PeerInfo(BaseModel):
    """Another principal the caller can send to."""

    name: str
    state: AgentState | Literal["operator"]


class PeerList(BaseModel):
    """Everyone the caller can send to."""

    peers: list[PeerInfo]


class HistoryEntry(BaseModel):
    """One reconcile step on an agent, or something that happened to it."""

    at: datetime
    step: str
    cause: str
    state: str
    detail: str = ""
    rev: str


class UsageView(BaseModel):
    """What model turns used: tokens by kind and their cost, as claude reported them."""

    tokens: int = Field(default=0, description="Every token: input, output, cache writes and cache reads.")
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = Field(default=0.0, description="In US dollars, at claude's list prices.")
    turns: int = Field(default=0, description="Model turns counted.")


class BudgetLimits(BaseModel):
    """Limits on what turns may use; null is no limit. Per day counts the current UTC day."""

    usd_per_day: float | None = None
    tokens_per_day: int | None = None
    usd_total: float | None = None
    tokens_total: int | None = None


class BudgetView(BaseModel):
    """One budget: an agent's, or the whole hive's (scope 'hive'), with what was used against it."""

    scope: str = Field(description="An agent's name, or 'hive' for the whole hive.")
    limits: BudgetLimits
    day: str = Field(description="The UTC day `today` counts, YYYY-MM-DD.")
    today: UsageView
    total: UsageView
    paused: str = Field(default="", description="Which spent limit pauses its turns, if one does.")


class BudgetList(BaseModel):
    """The hive's budget, and every agent's that has a budget or has used anything."""

    hive: BudgetView
    agents: list[BudgetView]


class AgentResources(BaseModel):
    """An agent's limits and what it uses now, as its cgroups count them (None: not limited or not counted)."""

    memory_limit_bytes: int | None = None
    memory_bytes: int | None = None
    memory_peak_bytes: int | None = None
    pids_limit: int | None = None
    pids: int | None = None
    cpus_limit: float | None = None
    cpu_s: float | None = Field(default=None, description="CPU time used since it started, in seconds.")
    oom_kills: int = Field(default=0, description="Processes of it the kernel killed for going over its memory limit.")


class BranchView(BaseModel):
    """An agent's branch in the repository it works on (`--repo`), as that repository has it."""

    repo: str
    branch: str = Field(description="hive/<name>: the agent's branch, in its clone and in the repository.")
    work_dir: str = Field(description="The agent's clone, where it commits.")
    head: str | None = Field(default=None, description="The branch's commit in the repository; null: none yet.")
    ahead: int = Field(default=0, description="Commits on the branch that the repository's HEAD does not have.")
    commits: list[str] = Field(default_factory=list[str], description="'<sha> <subject>' of those, newest first.")
    error: str = Field(default="", description="Why the branch could not be read or published, if so.")


class AgentInfo(BaseModel):
    """One agent of the hive, as the operator sees it."""

    name: str
    backend: str
    state: AgentState
    host: str = Field(
        default="", description="The host whose daemon runs it, in a hive of several hosts; empty on one host."
    )
    pid: int | None = None
    started_at: datetime | None = None
    uptime_s: float | None = None
    unread: int = 0
    sandbox: str = Field(default="", description="How the agent is isolated: bwrap, none, or the container name.")
    socket: str = ""
    detail: str = Field(default="", description="Why the agent is in its state, when there is something to say.")
    role: str = ""
    driver: str = Field(default="auto", description="The driver asked for at spawn: auto, claude or echo.")
    driver_in_use: str = Field(
        default="",
        description="The driver answering now, as the agent last reported it: 'claude', 'echo', or "
        "'echo (fallback: why)' while claude cannot run; empty until the agent reports.",
    )
    throttled: str = Field(default="", description="Which runaway-guard limit refuses its messages now, if any.")
    containment: str = Field(default="", description="What the host enforces on it: pid namespace, seccomp, cgroup.")
    resources: AgentResources | None = None
    refused: int = Field(default=0, description="Sends of this agent the daemon refused since it started.")
    last_refusal: str = Field(default="", description="Why its latest refused send was refused.")
    usage_today: UsageView = Field(default_factory=UsageView, description="What its turns used on the UTC day.")
    usage_total: UsageView = Field(
        default_factory=UsageView, description="What its turns used in all, also under this name before a kill."
    )
    budget: BudgetLimits = Field(default_factory=BudgetLimits, description="Its own limits (the hive's apply too).")
    paused: str = Field(
        default="", description="Why its turns are paused (a spent budget), if they are: its messages stay queued."
    )
    sync: SyncState | None = Field(default=None, description="Against main: Ready, Progressing, Failed or Suspended.")
    sync_reason: str = Field(default="", description="Why it is in that sync state.")
    applied_rev: str | None = Field(default=None, description="The main it runs (last applied).")
    attempted_rev: str | None = Field(default=None, description="The main of the last step tried on it.")
    not_applied: list[str] = Field(
        default_factory=list[str], description="Settings on main that this daemon does not apply yet."
    )
    history: list[HistoryEntry] = Field(
        default_factory=list[HistoryEntry], description="Its latest reconcile steps (agent_status only)."
    )
    settings: dict[str, Any] = Field(
        default_factory=dict[str, Any],
        description="Its settings on main that differ from the defaults (claude.tools, sandbox.repo...).",
    )
    branch: BranchView | None = Field(default=None, description="Its branch, when it works on a repository.")


class AgentList(BaseModel):
    """The whole hive."""

    agents: list[AgentInfo]


class EventView(BaseModel):
    """One stored turn event of an agent."""

    id: int
    created_at: datetime
    type: str
    data: dict[str, Any]


class EventList(BaseModel):
    """Turn events, oldest first; pass `last_id` as `after` to follow."""

    agent: str
    events: list[EventView]
    last_id: int | None


class EventReceipt(BaseModel):
    """Events stored by report_events."""

    stored: int


class ShutdownReceipt(BaseModel):
    """The daemon accepted a shutdown; it stops its agents and closes every socket next."""

    stopping: bool


class StopReceipt(BaseModel):
    """An agent that was stopped and removed."""

    name: str
    removed: bool


class HiveStatus(BaseModel):
    """The hive as a whole: the daemon, its database and disk, and what needs the operator's eye."""

    pid: int
    started_at: datetime
    uptime_s: float
    run_dir: str
    state_dir: str
    backend: str
    agents: int
    messages: dict[MessageState, int] = Field(description="Every stored message, by state.")
    database_bytes: int
    database_limit_bytes: int | None = Field(description="hivectl serve --max-db-mb, if set.")
    disk_free_bytes: int
    min_free_bytes: int = Field(description="Below this much free disk, new messages are refused.")
    warnings: list[str] = Field(
        description="What needs attention: a nearly full disk or database, throttles, paused agents."
    )
    usage_today: UsageView = Field(default_factory=UsageView, description="What the hive's turns used on the UTC day.")
    usage_total: UsageView = Field(default_factory=UsageView, description="What the hive's turns used in all.")
    budget: BudgetLimits = Field(default_factory=BudgetLimits, description="The hive's own limits.")
    paused: list[str] = Field(default_factory=list[str], description="Agents whose turns are paused by a budget.")
    main: str | None = Field(default=None, description="The state repo's main: the desired hive.")
    state_repo: str = Field(default="", description="Where the state repo is (a bare git repository).")
    pending_proposals: int = Field(default=0, description="Proposals waiting for the operator's verdict.")


class BackupReceipt(BaseModel):
    """An online copy of the hive database, which `hivectl serve --restore` can start from."""

    path: str
    bytes: int
